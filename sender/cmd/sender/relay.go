package main

import (
	"context"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/invoicesync/invoicesync/pkg/health"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/metrics"
	"github.com/invoicesync/invoicesync/pkg/outbox"
	"github.com/invoicesync/invoicesync/pkg/settings"
	"github.com/invoicesync/invoicesync/sender/internal/api"
)

// relay publishes the outbox until ctx ends. The relay waits for Kafka
// itself when it starts (KAFKA_STARTUP_TIMEOUT) and ends with an error on
// refused credentials or authorization, so the process exits non-zero.
func relay(ctx context.Context, c *cli, args []string) error {
	var cfg relayConfig
	s := settings.New("sender relay", "Publish the transactional outbox of the sender database to Kafka.")
	cfg.bind(s)
	log, err := c.configure(s, args, "relay", &cfg.Log, &cfg)
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, cfg.DatabaseURL, "relay")
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := requireMigrated(ctx, pool); err != nil {
		return err
	}
	cfg.Kafka.ClientID = "invoicesync-sender-relay"
	conn, err := kafkasec.New(cfg.Kafka)
	if err != nil {
		return err
	}
	r, err := outbox.New(cfg.outbox(), pool, conn, log)
	if err != nil {
		return err
	}
	if cfg.HTTPAddr == "" {
		return r.Run(ctx)
	}
	srv, err := api.NewServer(api.ServerConfig{Addr: cfg.HTTPAddr}, relayOps(r, pool, conn), log)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Run(gctx) })
	g.Go(func() error { return srv.Run(gctx) })
	return g.Wait()
}

// relayOps serves the relay's operational endpoints: GET /metrics (relay
// counters, batch sizes, publish latency, outbox backlog and the age of its
// oldest event), GET /healthz, and GET /readyz (database and Kafka
// reachable, and the relay, if it leads, publishing).
func relayOps(r *outbox.Relay, pool *pgxpool.Pool, conn *kafkasec.Conn) http.Handler {
	reg := metrics.NewRegistry()
	reg.MustRegister(r.Collector(), r.BacklogCollector())
	mux := http.NewServeMux()
	health.New(health.Config{}, map[string]health.Check{
		"database": pool.Ping, "kafka": conn.Check, "publishing": r.Ready}).Register(mux)
	mux.Handle("GET /metrics", metrics.Handler(reg))
	return mux
}
