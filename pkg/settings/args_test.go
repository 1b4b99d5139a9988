package settings

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	cases := []struct {
		args     []string
		wantPos  []string
		wantJSON bool
		wantNote string
	}{
		{[]string{"0:1", "--json", "1:2"}, []string{"0:1", "1:2"}, true, "env"},
		{[]string{"--note", "fixed", "0:1"}, []string{"0:1"}, false, "fixed"},
		{[]string{"--json", "--", "-3:1", "--note"}, []string{"-3:1", "--note"}, true, "env"},
		{nil, nil, false, "env"},
	}
	for _, tc := range cases {
		var jsonOut bool
		var note string
		s := New("cmd", "")
		s.SetLookup(func(k string) (string, bool) { return "env", k == "NOTE" })
		s.Bool(&jsonOut, "json", "", false, "")
		s.String(&note, "note", "NOTE", "", "")
		pos, err := s.ParseArgs(tc.args)
		if err != nil || !slices.Equal(pos, tc.wantPos) || jsonOut != tc.wantJSON || note != tc.wantNote {
			t.Errorf("ParseArgs(%q) = %q, %v (json=%v note=%q)", tc.args, pos, err, jsonOut, note)
		}
	}
}

func TestParseArgsErrors(t *testing.T) {
	s := New("cmd", "")
	s.SetOutput(io.Discard)
	if _, err := s.ParseArgs([]string{"0:1", "--bogus"}); err == nil || !strings.Contains(err.Error(), "-bogus") {
		t.Errorf("unknown flag: %v", err)
	}
	if _, err := s.ParseArgs([]string{"0:1", "-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}
