package main

import (
	"context"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/settings"
)

// migrateConfig is the configuration of "sender migrate".
type migrateConfig struct{ commonConfig }

// Validate reports the first setting that is wrong, by name.
func (c *migrateConfig) Validate() error { return c.validate() }

// migrate applies the sender database's pending migrations, under an
// advisory lock so replicas starting together apply each once.
func migrate(ctx context.Context, c *cli, args []string) error {
	var cfg migrateConfig
	s := settings.New("sender migrate", "Apply the pending migrations of the sender database.")
	cfg.bind(s)
	log, err := c.configure(s, args, "migrate", &cfg.Log, &cfg)
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, cfg.DatabaseURL, "migrate")
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := migrations.Up(ctx, pool, migrations.Sender)
	for _, m := range applied {
		log.Info().Int64("version", m.Version).Str("source", m.Source).Msg("migration applied")
	}
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		log.Info().Msg("schema is current: nothing to apply")
	} else {
		log.Info().Int("applied", len(applied)).Msg("migrations applied")
	}
	return nil
}
