package main

import (
	"context"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/outbox"
	"github.com/invoicesync/invoicesync/pkg/settings"
)

// relay publishes the outbox until ctx ends. The relay checks the Kafka
// credentials itself when it starts.
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
	return r.Run(ctx)
}
