package main

import (
	"context"

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
	h, err := api.NewHandler(api.Config{MaxBodyBytes: int64(cfg.MaxBodyBytes)}, pool, log)
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
