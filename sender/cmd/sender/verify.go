package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
	_ "time/tzdata" // RECEIVER_TIMEZONE is checked without a system time zone database

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/settings"
	"github.com/invoicesync/invoicesync/sender/internal/progress"
	"github.com/invoicesync/invoicesync/sender/internal/verify"
)

// defaultReceiverDatabaseURL is the receiver service's own default.
const defaultReceiverDatabaseURL = "postgres://invoicesync:invoicesync@127.0.0.1:5432/invoicesync_receiver"

// verifyConfig is the configuration of "sender verify".
type verifyConfig struct {
	commonConfig
	// ReceiverDatabaseURL reaches SCI-Receiver's database, opened read-only.
	// RECEIVER_DATABASE_URL (--receiver-database-url), default
	// postgres://invoicesync:invoicesync@127.0.0.1:5432/invoicesync_receiver.
	ReceiverDatabaseURL string
	// Timezone must be the receiver's RECEIVER_TIMEZONE: issue dates are
	// compared as calendar dates in it. RECEIVER_TIMEZONE (--receiver-timezone), default UTC.
	Timezone string
	// ChunkSize is how many histories one checksum covers. VERIFY_CHUNK_SIZE (--chunk), default 10000.
	ChunkSize int
	// Grace is the wait before differences are checked again, for events
	// in flight. VERIFY_GRACE (--grace), default 5s.
	Grace time.Duration
	// JSON prints the report as JSON on stdout (--json).
	JSON bool
	// Repair re-enqueues the histories found different (--repair).
	Repair bool
	// ListLimit caps the ids printed per category, 0 for all. --list-limit, default 100.
	ListLimit int
}

func (c *verifyConfig) bind(s *settings.Set) {
	c.commonConfig.bind(s)
	s.String(&c.ReceiverDatabaseURL, "receiver-database-url", "RECEIVER_DATABASE_URL", defaultReceiverDatabaseURL,
		"PostgreSQL URL of the receiver database (opened read-only)")
	s.String(&c.Timezone, "receiver-timezone", "RECEIVER_TIMEZONE", verify.DefaultTimezone,
		"the receiver's RECEIVER_TIMEZONE (IANA name): issue dates are compared in it")
	s.Int(&c.ChunkSize, "chunk", "VERIFY_CHUNK_SIZE", verify.DefaultChunkSize, "histories per checksum")
	s.Duration(&c.Grace, "grace", "VERIFY_GRACE", verify.DefaultGrace,
		"wait before checking differences again (events in flight)")
	s.Bool(&c.JSON, "json", "", false, "print the report as JSON on stdout")
	s.Bool(&c.Repair, "repair", "", false, "re-enqueue the histories found different through the outbox")
	s.Int(&c.ListLimit, "list-limit", "", 100, "most ids printed per category (0: all)")
}

// Validate reports the first setting that is wrong, by name.
func (c *verifyConfig) Validate() error {
	if err := c.validate(); err != nil {
		return err
	}
	if _, err := pgxpool.ParseConfig(c.ReceiverDatabaseURL); err != nil || c.ReceiverDatabaseURL == "" {
		return fmt.Errorf("RECEIVER_DATABASE_URL (--receiver-database-url): %s is not a PostgreSQL URL "+
			"(postgres://user:password@host:port/database)", db.Redact(c.ReceiverDatabaseURL))
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil || c.Timezone == "" {
		return fmt.Errorf("RECEIVER_TIMEZONE (--receiver-timezone): %q is not an IANA time zone name", c.Timezone)
	}
	switch {
	case c.ChunkSize <= 0:
		return fmt.Errorf("VERIFY_CHUNK_SIZE (--chunk): must be positive, got %d", c.ChunkSize)
	case c.Grace < 0:
		return fmt.Errorf("VERIFY_GRACE (--grace): must not be negative, got %s", c.Grace)
	case c.ListLimit < 0:
		return fmt.Errorf("--list-limit: must not be negative, got %d", c.ListLimit)
	}
	return nil
}

func (c *verifyConfig) MarshalZerologObject(e *zerolog.Event) {
	c.commonConfig.MarshalZerologObject(e)
	e.Str("receiver_database_url", db.Redact(c.ReceiverDatabaseURL)).Str("receiver_timezone", c.Timezone).
		Int("chunk", c.ChunkSize).Str("grace", c.Grace.String()).Bool("repair", c.Repair)
}

// errDifferent is returned when verify found differences: exit status 1.
var errDifferent = errors.New("the receiver differs from the sender")

// verifyReceiver compares the receiver's copy with the sender's state and
// exits 1 when they differ (2 on a usage error).
func verifyReceiver(ctx context.Context, c *cli, args []string) error {
	var cfg verifyConfig
	s := settings.New("sender verify", "Compare SCI-Receiver's copy with the sender's state of every history "+
		"(checksums per id chunk, in SQL on both sides); report missing, extra and differing histories; "+
		"exit 1 when any differ. Read-only on the receiver; --repair re-enqueues through the sender's outbox.")
	cfg.bind(s)
	log, err := c.configure(s, args, "verify", &cfg.Log, &cfg)
	if err != nil {
		return err
	}
	sender, receiver, err := openVerifyDBs(ctx, &cfg)
	if err != nil {
		return err
	}
	defer sender.Close()
	defer receiver.Close()
	p := progress.New(progress.Options{Out: c.stderr, Log: log, What: "verify", Unit: "histories"})
	v, err := verify.New(verify.Config{ChunkSize: cfg.ChunkSize, Grace: cfg.Grace, Timezone: cfg.Timezone,
		Repair: cfg.Repair}, sender, receiver, p, log)
	if err != nil {
		return err
	}
	rep, err := v.Run(ctx)
	if err != nil {
		return err
	}
	if cfg.JSON {
		err = rep.WriteJSON(c.stdout, cfg.ListLimit)
	} else {
		err = rep.WriteText(c.stdout, cfg.ListLimit)
	}
	if err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	if n := rep.Differences(); n > 0 {
		return fmt.Errorf("verify: %d histories: %w", n, errDifferent)
	}
	return nil
}

// openVerifyDBs opens both databases, the receiver read-only, and checks
// that both are migrated; errors name the database at fault.
func openVerifyDBs(ctx context.Context, cfg *verifyConfig) (sender, receiver *pgxpool.Pool, err error) {
	sender, err = openDB(ctx, cfg.DatabaseURL, "verify")
	if err != nil {
		return nil, nil, fmt.Errorf("sender database (SENDER_DATABASE_URL): %w", err)
	}
	if err := requireMigrated(ctx, sender); err != nil {
		sender.Close()
		return nil, nil, fmt.Errorf("sender database: %w", err)
	}
	receiver, err = db.Open(ctx, readOnlyURL(cfg.ReceiverDatabaseURL), db.Options{AppName: "invoicesync-sender-verify"})
	if err != nil {
		sender.Close()
		return nil, nil, fmt.Errorf("receiver database (RECEIVER_DATABASE_URL): %w", err)
	}
	if err := verify.CheckReceiver(ctx, receiver); err != nil {
		sender.Close()
		receiver.Close()
		return nil, nil, err
	}
	return sender, receiver, nil
}

// readOnlyURL makes every transaction of the connection read-only by
// default (verify also reads in explicit read-only transactions).
func readOnlyURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("default_transaction_read_only", "on")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return raw + " default_transaction_read_only=on"
}
