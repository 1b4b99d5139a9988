package main

import (
	"context"
	"database/sql"
	"net/http"
	_ "net/http/pprof" // served on BENCH_PPROF_ADDR when profiling
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/invoicesync/invoicesync/bench/internal/peer"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/settings"
)

// forwarder runs the peer's watermill forwarder until ctx ends. The
// benchmark starts it with the same environment as the relay.
func forwarder(ctx context.Context, args []string) error {
	var (
		dbURL string
		k     kafkasec.Config
		poll  time.Duration
		batch int
	)
	s := settings.New("bench forwarder", "Forward the peer's watermill-sql messages to Kafka (watermill's forwarder).")
	s.String(&dbURL, "database-url", "SENDER_DATABASE_URL", "", "the peer's sender database")
	s.Kafka(&k)
	s.Duration(&poll, "poll-interval", "BENCH_FORWARDER_POLL_INTERVAL", 10*time.Millisecond, "subscriber poll interval")
	s.Int(&batch, "batch", "BENCH_FORWARDER_BATCH", 100, "rows read per query")
	if err := s.Parse(args); err != nil {
		return err
	}
	k.ClientID = "invoicesync-bench-forwarder"
	k.SetDefaults()
	if err := k.Validate(); err != nil {
		return err
	}
	if addr := os.Getenv("BENCH_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }() //nolint:gosec // loopback, bench only
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	return peer.RunForwarder(ctx, peer.ForwarderConfig{DB: db, Kafka: k, PollInterval: poll, BatchSize: batch},
		watermill.NewStdLogger(false, false))
}
