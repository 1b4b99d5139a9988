package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/logging"
	"github.com/invoicesync/invoicesync/pkg/settings"
)

// validator is a subcommand's configuration.
type validator interface {
	Validate() error
	zerolog.LogObjectMarshaler
}

// configure parses args and the environment into cfg (bound to s),
// validates it, builds the logger of command name and logs the
// configuration with its secrets masked.
func (c *cli) configure(s *settings.Set, args []string, name string, logCfg *settings.Log, cfg validator) (zerolog.Logger, error) {
	s.SetOutput(c.stderr)
	s.SetLookup(c.lookup)
	if err := s.Parse(args); err != nil {
		return zerolog.Nop(), asUsage(err)
	}
	if err := cfg.Validate(); err != nil {
		return zerolog.Nop(), fmt.Errorf("configuration: %w", err)
	}
	log, err := logging.New(c.stderr, logCfg.Format, logCfg.Level, "sender")
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("configuration: %w", err)
	}
	c.log = log.With().Str("command", name).Logger()
	c.log.Info().Object("config", cfg).Msg("starting")
	return c.log, nil
}

// openDB opens the sender database as application name.
func openDB(ctx context.Context, url, name string) (*pgxpool.Pool, error) {
	return db.Open(ctx, url, db.Options{AppName: "invoicesync-sender-" + name})
}

// requireMigrated refuses to run on a schema older than this build's.
func requireMigrated(ctx context.Context, pool *pgxpool.Pool) error {
	n, err := migrations.Pending(ctx, pool, migrations.Sender)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("the sender database has %d pending migration(s): run \"sender migrate\" first", n)
	}
	return nil
}

// asUsage marks a settings parse error as a usage error; help passes through.
func asUsage(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &usageError{err}
}
