// Package settings binds a process's configuration to command-line flags and
// environment variables in one way for every command: each setting has a
// flag, an environment variable and a documented default; the environment
// overrides the default, a flag overrides the environment, and a value that
// does not parse is reported with the variable or flag named. --help lists
// them all.
package settings

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
)

// Set is the settings of one command.
type Set struct {
	fs      *flag.FlagSet
	envs    []binding
	lookup  func(string) (string, bool)
	summary string
}

type binding struct {
	env  string
	flag string
}

// New returns an empty set for command name; summary is printed atop --help.
func New(name, summary string) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	s := &Set{fs: fs, lookup: os.LookupEnv, summary: summary}
	fs.Usage = func() { s.PrintUsage(fs.Output()) }
	return s
}

// SetLookup replaces os.LookupEnv (tests).
func (s *Set) SetLookup(f func(string) (string, bool)) { s.lookup = f }

// SetOutput sets where usage and parse errors are written.
func (s *Set) SetOutput(w io.Writer) { s.fs.SetOutput(w) }

func (s *Set) bind(name, env, usage string) string {
	s.envs = append(s.envs, binding{env: env, flag: name})
	if env == "" {
		return usage
	}
	return usage + " [$" + env + "]"
}

// String registers a string setting.
func (s *Set) String(p *string, name, env, def, usage string) {
	s.fs.StringVar(p, name, def, s.bind(name, env, usage))
}

// Secret registers a string setting whose value is never printed.
func (s *Set) Secret(p *string, name, env, usage string) {
	s.fs.Var((*secretValue)(p), name, s.bind(name, env, usage+" (secret)"))
}

// Int registers an integer setting.
func (s *Set) Int(p *int, name, env string, def int, usage string) {
	s.fs.IntVar(p, name, def, s.bind(name, env, usage))
}

// Duration registers a duration setting ("250ms", "5s").
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	s.fs.DurationVar(p, name, def, s.bind(name, env, usage))
}

// Bool registers a boolean setting.
func (s *Set) Bool(p *bool, name, env string, def bool, usage string) {
	s.fs.BoolVar(p, name, def, s.bind(name, env, usage))
}

// Parse applies the environment, then args. It returns flag.ErrHelp after
// printing usage when asked for help.
func (s *Set) Parse(args []string) error {
	for _, b := range s.envs {
		if b.env == "" {
			continue
		}
		v, ok := s.lookup(b.env)
		if !ok {
			continue
		}
		if err := s.fs.Set(b.flag, v); err != nil {
			return fmt.Errorf("environment variable %s=%q: %v", b.env, v, unwrapFlagErr(err))
		}
	}
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%s: %w (see --help)", s.fs.Name(), err)
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (see --help)", s.fs.Name(), s.fs.Arg(0))
	}
	return nil
}

// Args are the arguments left after the flags.
func (s *Set) Args() []string { return s.fs.Args() }

// PrintUsage writes the summary and every setting with its env var and default.
func (s *Set) PrintUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\n%s\n\nFlags (each also read from the environment variable in brackets):\n", s.fs.Name(), s.summary)
	s.fs.PrintDefaults()
}

// Describe lists "flag=value" for every setting with secrets masked, for
// the startup log line.
func (s *Set) Describe() map[string]string {
	out := map[string]string{}
	s.fs.VisitAll(func(f *flag.Flag) { out[f.Name] = f.Value.String() })
	return out
}

// Names lists the environment variables this set reads, sorted.
func (s *Set) Names() []string {
	var out []string
	for _, b := range s.envs {
		if b.env != "" {
			out = append(out, b.env)
		}
	}
	sort.Strings(out)
	return out
}

func unwrapFlagErr(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

type secretValue string

func (v *secretValue) String() string {
	if v == nil || *v == "" {
		return ""
	}
	return "****"
}

func (v *secretValue) Set(s string) error { *v = secretValue(s); return nil }

// Kafka registers the shared Kafka connection settings into c.
func (s *Set) Kafka(c *kafkasec.Config) {
	s.fs.Func("kafka-brokers", s.bind("kafka-brokers", "KAFKA_BROKERS",
		`comma-separated bootstrap brokers host:port (default "localhost:9092")`), func(v string) error {
		c.Brokers = kafkasec.ParseBrokers(v)
		return nil
	})
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"localhost:9092"}
	}
	s.String(&c.Mechanism, "kafka-sasl-mechanism", "KAFKA_SASL_MECHANISM", kafkasec.MechanismSCRAMSHA512,
		"SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256, or empty for none")
	s.String(&c.Username, "kafka-sasl-username", "KAFKA_SASL_USERNAME", "", "SASL username")
	s.Secret(&c.Password, "kafka-sasl-password", "KAFKA_SASL_PASSWORD", "SASL password")
	s.Bool(&c.TLS, "kafka-tls", "KAFKA_TLS", false, "connect to the brokers with TLS")
	s.String(&c.CAFile, "kafka-tls-ca-file", "KAFKA_TLS_CA_FILE", "", "PEM CA file for the brokers' certificates (default: system roots)")
	s.Duration(&c.DialTimeout, "kafka-dial-timeout", "KAFKA_DIAL_TIMEOUT", 10*time.Second, "timeout to connect and authenticate to a broker, and of each start-up check")
	s.Duration(&c.StartupTimeout, "kafka-startup-timeout", "KAFKA_STARTUP_TIMEOUT", kafkasec.DefaultStartupTimeout,
		"how long start-up retries a broker that cannot be reached before giving up (wrong credentials fail at once)")
}

// Log are the logging settings every command has.
type Log struct {
	// Format is auto, json or console.
	Format string
	// Level is debug, info, warn or error.
	Level string
}

// Log registers the logging settings into l.
func (s *Set) Log(l *Log) {
	s.String(&l.Format, "log-format", "LOG_FORMAT", "auto", "log format: auto (console on a terminal, JSON otherwise), json, console")
	s.String(&l.Level, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
}

// ParseBool is strconv.ParseBool with a message naming the value.
func ParseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%q is not true or false", v)
	}
	return b, nil
}
