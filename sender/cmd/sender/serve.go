package main

import (
	"context"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/invoicesync/invoicesync/pkg/health"
	"github.com/invoicesync/invoicesync/pkg/metrics"
	"github.com/invoicesync/invoicesync/pkg/settings"
	"github.com/invoicesync/invoicesync/sender/internal/api"
	"github.com/invoicesync/invoicesync/sender/internal/idempotency"
)

// serve runs the HTTP API, and the deletion of expired idempotency keys,
// until ctx ends, then drains the requests in flight.
func serve(ctx context.Context, c *cli, args []string) error {
	var cfg serveConfig
	s := settings.New("sender serve", "Serve the HTTP API that records send-invoice histories and their e-mail status.")
	cfg.bind(s)
	log, err := c.configure(s, args, "serve", &cfg.Log, &cfg)
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, cfg.DatabaseURL, "serve")
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := requireMigrated(ctx, pool); err != nil {
		return err
	}
	reg := metrics.NewRegistry()
	h, err := api.NewHandler(api.Config{
		MaxBodyBytes: int64(cfg.MaxBodyBytes),
		Routes:       opsRoutes(reg, pool),
		Wrap:         func(next http.Handler) http.Handler { return metrics.InstrumentHTTP(reg, next) },
	}, pool, log)
	if err != nil {
		return err
	}
	srv, err := api.NewServer(api.ServerConfig{Addr: cfg.HTTPAddr}, h, log)
	if err != nil {
		return err
	}
	janitor := &idempotency.Janitor{DB: pool, TTL: cfg.IdempotencyKeyTTL,
		Interval: min(cfg.IdempotencyKeyTTL/4, 10*time.Minute), Log: log}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error { return janitor.Run(gctx) })
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info().Msg("stopped")
	return nil
}

// opsRoutes adds the operational endpoints to the API: GET /metrics
// (Prometheus: per-route request counts and latencies, Go runtime) and
// GET /readyz (the database answers); the API has GET /healthz itself.
func opsRoutes(reg *prometheus.Registry, pool *pgxpool.Pool) func(*http.ServeMux) {
	return func(mux *http.ServeMux) {
		ready := health.New(health.Config{}, map[string]health.Check{"database": pool.Ping})
		mux.HandleFunc("GET /readyz", ready.Readyz)
		mux.Handle("GET /metrics", metrics.Handler(reg))
	}
}
