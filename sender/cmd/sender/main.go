// Command sender runs the sending side of invoicesync next to SCI's
// database: the HTTP API that records send-invoice histories (serve), the
// relay that publishes the transactional outbox to Kafka (relay), and the
// schema migrations (migrate). Run "sender help" for the commands and
// "sender <command> --help" for their settings.
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

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	c := newCLI(os.Stdout, os.Stderr, os.LookupEnv)
	err := c.run(ctx, os.Args[1:])
	stop()
	var uerr *usageError
	var serr *stoppedWhileStarting
	switch {
	case err == nil:
	case errors.As(err, &serr):
		c.log.Info().Err(serr.err).Msg("stopped by a signal while starting")
	case errors.As(err, &uerr):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	default:
		c.log.Error().Err(err).Msg("sender failed")
		os.Exit(1)
	}
}

// cli is what every subcommand gets: where to write, where settings come
// from, and the logger, replaced by the subcommand's own once its settings
// are parsed so main logs the final error in the configured format.
type cli struct {
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
	log            zerolog.Logger
}

func newCLI(stdout, stderr io.Writer, lookup func(string) (string, bool)) *cli {
	log, _ := logging.New(stderr, logging.FormatAuto, "info", "sender") // valid constants: cannot fail
	return &cli{stdout: stdout, stderr: stderr, lookup: lookup, log: log}
}

// usageError is a command line that cannot run: main prints it plainly and
// exits 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

type command struct {
	name, summary string
	run           func(ctx context.Context, c *cli, args []string) error
	// service marks the long-running commands: a stop signal ends them
	// cleanly (exit 0), even one that comes while they are still starting.
	// One-shot jobs (backfill, seed, ...) interrupted by a signal fail, so a
	// script never takes a partial run for a finished one.
	service bool
}

// stoppedWhileStarting is a service's start-up cut short by a stop signal:
// a clean stop, not a failure.
type stoppedWhileStarting struct{ err error }

func (e *stoppedWhileStarting) Error() string { return "stopped while starting: " + e.err.Error() }
func (e *stoppedWhileStarting) Unwrap() error { return e.err }

func commands() []command {
	return []command{
		{"serve", "serve the HTTP API that records send-invoice histories", serve, true},
		{"relay", "publish the transactional outbox to Kafka", relay, true},
		{"migrate", "apply the pending migrations of the sender database", migrate, false},
		{"healthcheck", "exit 0 when a running sender API is healthy (container health checks)", healthcheck, false},
		{"seed", "fill SCI's legacy history tables with N realistic histories (no events)", seedHistories, false},
		{"backfill", "publish SCI's pre-existing histories through the outbox's bulk lane, resumably", backfillHistories, false},
		{"verify", "compare the receiver's copy with the sender's state; exit 1 when they differ", verifyReceiver, false},
	}
}

// run dispatches to the subcommand named by args[0]. Asking for help
// returns nil.
func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		c.usage(c.stderr)
		return &usageError{errors.New("sender: a command is required")}
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			c.usage(c.stdout)
			return nil
		}
		name, rest = rest[0], []string{"--help"}
	}
	for _, cmd := range commands() {
		if cmd.name == name {
			err := cmd.run(ctx, c, rest)
			switch {
			case errors.Is(err, flag.ErrHelp):
				return nil
			case err != nil && cmd.service && ctx.Err() != nil:
				return &stoppedWhileStarting{err}
			}
			return err
		}
	}
	return &usageError{fmt.Errorf("sender: unknown command %q (run \"sender help\")", name)}
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, "Usage: sender <command> [flags]\n\nCommands:\n")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprint(w, "  help         show this, or \"help <command>\" for a command's settings\n")
}
