package main

import (
	"context"
	"fmt"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/db"
)

// migrate applies the receiver database's pending migrations. Replicas may
// run it at once: the migrations package serialises them with a lock.
func (a *app) migrate(ctx context.Context, args []string) error {
	cfg, err := a.config("migrate", "Applies the pending migrations of the receiver database.", scopeDatabase, args)
	if err != nil {
		return err
	}
	pool, err := db.Open(ctx, cfg.DatabaseURL, db.Options{AppName: "invoicesync-receiver-migrate", MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := migrations.Up(ctx, pool, migrations.Receiver)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", db.Redact(cfg.DatabaseURL), err)
	}
	for _, r := range applied {
		a.log.Info().Int64("version", r.Version).Str("source", r.Source).Msg("applied migration")
	}
	a.log.Info().Int("applied", len(applied)).Msg("receiver database schema is current")
	return nil
}
