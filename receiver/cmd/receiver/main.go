// Command receiver is SCI-Receiver's synchronisation service: it applies
// the invoice history events SCI publishes to Kafka to its own PostgreSQL
// database and serves them over a read-only HTTP API.
//
//	receiver serve     apply the events exactly once and serve the read API
//	receiver migrate   apply the database migrations
//	receiver healthcheck  exit 0 when a running receiver is healthy
//	receiver dlq       inspect and replay the dead-letter topic
//	receiver help      show this help
//
// Every subcommand takes --help for its settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // RECEIVER_TIMEZONE works without a system time zone database

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/logging"
	"github.com/invoicesync/invoicesync/pkg/settings"
)

const usage = `Usage: receiver <subcommand> [flags]

SCI-Receiver's synchronisation service: applies SCI's invoice history events
from Kafka to the receiver database and serves them over HTTP.

Subcommands:
  serve     apply the events exactly once, dead-letter the ones that cannot be
            applied, and serve the read API (needs a migrated database)
  migrate   apply the pending migrations of the receiver database
  healthcheck  exit 0 when a running receiver answers /healthz (container health checks)
  dlq       list, show, replay and mark the dead-letter topic's entries
  help      show this help

Run "receiver <subcommand> --help" for its settings and environment variables.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	a := newApp(os.Stdout, os.Stderr, os.LookupEnv)
	err := a.run(ctx, os.Args[1:])
	stop()
	var serr *stoppedWhileStarting
	var uerr *usageError
	switch {
	case err == nil:
	case errors.As(err, &serr):
		a.log.Info().Err(serr.err).Msg("stopped by a signal while starting")
	case errors.As(err, &uerr):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	default:
		a.log.Error().Err(err).Msg("receiver failed")
		os.Exit(1)
	}
}

// app is one invocation: where it writes, where it reads the environment,
// and its logger (the configured one once a subcommand parsed its settings).
// stoppedWhileStarting is the service's start-up cut short by a stop
// signal: a clean stop, not a failure.
type stoppedWhileStarting struct{ err error }

func (e *stoppedWhileStarting) Error() string { return "stopped while starting: " + e.err.Error() }
func (e *stoppedWhileStarting) Unwrap() error { return e.err }

// usageError is a command line that cannot run (an unknown subcommand or
// flag): main prints it plainly and exits 2, as the sender does.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// asUsage marks a settings parse error as a usage error; help passes through.
func asUsage(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &usageError{err}
}

type app struct {
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
	log            zerolog.Logger
}

func newApp(stdout, stderr io.Writer, lookup func(string) (string, bool)) *app {
	log, _ := logging.New(stderr, logging.FormatAuto, "info", "receiver")
	return &app{stdout: stdout, stderr: stderr, lookup: lookup, log: log}
}

// run dispatches to the subcommand named by args[0].
func (a *app) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(a.stderr, usage)
		return &usageError{errors.New("no subcommand given (want serve, migrate, healthcheck, dlq or help)")}
	}
	var err error
	switch args[0] {
	case "serve":
		// A stop signal ends the service cleanly (exit 0), even one that
		// comes while it is still starting.
		if err = a.serve(ctx, args[1:]); err != nil && ctx.Err() != nil {
			err = &stoppedWhileStarting{err}
		}
	case "migrate":
		err = a.migrate(ctx, args[1:])
	case "healthcheck":
		err = a.healthcheck(ctx, args[1:])
	case "dlq":
		err = a.dlq(ctx, args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(a.stdout, usage)
		return nil
	default:
		return &usageError{fmt.Errorf("unknown subcommand %q (want serve, migrate, healthcheck, dlq or help; see receiver help)", args[0])}
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// config parses and validates the settings of subcommand name, switches to
// the configured logger and logs the configuration with secrets masked.
func (a *app) config(name, summary string, s scope, args []string) (*Config, error) {
	cfg := &Config{}
	set := settings.New("receiver "+name, summary)
	set.SetLookup(a.lookup)
	set.SetOutput(a.stdout)
	cfg.register(set, s)
	if err := set.Parse(args); err != nil {
		return nil, asUsage(err)
	}
	if err := cfg.Validate(s); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	log, err := logging.New(a.stderr, cfg.Log.Format, cfg.Log.Level, "receiver")
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	a.log = log
	a.log.Info().Str("subcommand", name).Object("config", cfg).Msg("starting")
	return cfg, nil
}
