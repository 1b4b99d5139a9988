package main

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/receiver/internal/api"
	"github.com/invoicesync/invoicesync/receiver/internal/apply"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

const serveSummary = `Consumes SCI's invoice history events and applies them to the receiver
database exactly once (each event id is recorded with its effect), publishes
the events that can never be applied to the dead-letter topic with the
reason, prunes old event ids, and serves the read API. Stops on
SIGINT/SIGTERM after finishing the batches and the requests in flight.`

// serve runs the consumer and the read API until ctx is cancelled or one of
// them fails (then the other is stopped too).
func (a *app) serve(ctx context.Context, args []string) error {
	cfg, err := a.config("serve", serveSummary, scopeServe, args)
	if err != nil {
		return err
	}
	pool, err := db.Open(ctx, cfg.DatabaseURL, db.Options{AppName: "invoicesync-receiver"})
	if err != nil {
		return err
	}
	defer pool.Close()
	pending, err := migrations.Pending(ctx, pool, migrations.Receiver)
	if err != nil {
		return err
	}
	if pending > 0 {
		return fmt.Errorf("receiver database %s has %d pending migration(s): run `receiver migrate` first",
			db.Redact(cfg.DatabaseURL), pending)
	}
	conn, err := kafkasec.New(cfg.Kafka)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	st := store.New(pool)
	consumer, err := consume.New(consume.Config{Topic: cfg.Topic, GroupID: cfg.GroupID,
		DLQTopic: cfg.DLQTopic, BatchSize: cfg.BatchSize}, conn, apply.New(st, cfg.location), a.log)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	janitor, err := store.NewJanitor(store.JanitorConfig{Retention: cfg.LedgerRetention,
		Interval: cfg.LedgerCleanupInterval}, st, a.log)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	srv, err := api.Listen(cfg.HTTPAddr, api.New(st, a.log), a.log)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return consumer.Run(gctx) })
	g.Go(func() error { return janitor.Run(gctx) })
	g.Go(func() error { return srv.Run(gctx) })
	if err := g.Wait(); err != nil {
		return err
	}
	a.log.Info().Msg("stopped")
	return nil
}
