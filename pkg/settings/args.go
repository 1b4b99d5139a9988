package settings

import (
	"errors"
	"flag"
	"fmt"
)

// ParseArgs is Parse for commands that also take arguments (ids, names):
// it returns the arguments that are not flags, in order, wherever they
// stand among the flags, so "show 0:1 --json" and "show --json 0:1" both
// work. Everything after "--" is an argument.
func (s *Set) ParseArgs(args []string) ([]string, error) {
	if err := s.Parse(nil); err != nil { // applies the environment
		return nil, err
	}
	var positional []string
	for {
		if err := s.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%s: %w (see --help)", s.fs.Name(), err)
		}
		rest := s.fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
