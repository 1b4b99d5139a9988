package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/health"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/metrics"
	"github.com/invoicesync/invoicesync/receiver/internal/api"
	"github.com/invoicesync/invoicesync/receiver/internal/apply"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

const serveSummary = `Consumes SCI's invoice history events and applies them to the receiver
database exactly once (each event id is recorded with its effect), publishes
the events that can never be applied to the dead-letter topic with the
reason, prunes old event ids, and serves the read API. The API's listener
also serves GET /healthz (liveness), GET /readyz (503 naming the database or
Kafka when one cannot be reached) and GET /metrics (Prometheus). Stops on
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
	reg := metrics.NewRegistry()
	st := store.New(pool)
	consumer, err := a.newConsumer(cfg, st, conn, reg)
	if err != nil {
		return err
	}
	janitor, err := store.NewJanitor(store.JanitorConfig{Retention: cfg.LedgerRetention,
		Interval: cfg.LedgerCleanupInterval, Metrics: reg}, st, a.log)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	srv, err := api.Listen(cfg.HTTPAddr, api.New(api.Config{
		Routes: opsRoutes(reg, pool, conn),
		Wrap:   func(next http.Handler) http.Handler { return metrics.InstrumentHTTP(reg, next) },
	}, st, a.log), a.log)
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

// newConsumer returns the consumer that applies the events to st, with its
// series and the handler's on reg.
func (a *app) newConsumer(cfg *Config, st *store.Store, conn *kafkasec.Conn, reg prometheus.Registerer) (*consume.Consumer, error) {
	handler, err := apply.New(st, apply.Config{Location: cfg.location, Metrics: reg})
	if err != nil {
		return nil, err
	}
	consumer, err := consume.New(consume.Config{Topic: cfg.Topic, GroupID: cfg.GroupID,
		DLQTopic: cfg.DLQTopic, BatchSize: cfg.BatchSize, BatchLinger: cfg.BatchLinger,
		MergePartitions: cfg.MergePartitions, SessionTimeout: cfg.SessionTimeout,
		HeartbeatInterval: cfg.HeartbeatInterval, RebalanceTimeout: cfg.RebalanceTimeout,
		InstanceID: cfg.GroupInstanceID, Protocol: cfg.GroupProtocol, Metrics: reg}, conn, handler, a.log)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return consumer, nil
}

// opsRoutes adds the operational endpoints to the read API: GET /metrics
// (Prometheus: the consumer's, the handler's and the janitor's series,
// per-route request counts and latencies, Go runtime) and GET /readyz (the
// database answers a ping and a Kafka broker accepts the credentials, each
// within the checker's 3s timeout; results are cached for 2s). GET /healthz
// stays a liveness check that touches no dependency.
func opsRoutes(reg *prometheus.Registry, pool *pgxpool.Pool, conn *kafkasec.Conn) func(*http.ServeMux) {
	return func(mux *http.ServeMux) {
		ready := health.New(health.Config{}, map[string]health.Check{"database": pool.Ping, "kafka": conn.Check})
		mux.HandleFunc("GET /readyz", ready.Readyz)
		mux.Handle("GET /metrics", metrics.Handler(reg))
	}
}
