package main

import (
	"context"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/invoicesync/invoicesync/pkg/health"
	"github.com/invoicesync/invoicesync/pkg/metrics"
	"github.com/invoicesync/invoicesync/pkg/settings"
	"github.com/invoicesync/invoicesync/sender/internal/api"
)

// serve runs the HTTP API until ctx ends, then drains the requests in flight.
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
	if err := srv.Run(ctx); err != nil {
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
