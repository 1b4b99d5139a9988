package main

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/settings"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

// Config is the receiver's whole configuration, read once from flags and
// environment variables (a flag overrides its variable). `receiver migrate`
// reads only DatabaseURL and Log.
type Config struct {
	// DatabaseURL reaches the receiver's PostgreSQL database.
	// RECEIVER_DATABASE_URL, default postgres://invoicesync:invoicesync@127.0.0.1:5432/invoicesync_receiver.
	DatabaseURL string
	// HTTPAddr is where the read API, /healthz, /readyz and /metrics listen.
	// RECEIVER_HTTP_ADDR, default 127.0.0.1:8081.
	HTTPAddr string
	// Kafka reaches the brokers: KAFKA_BROKERS (default localhost:9092),
	// KAFKA_SASL_MECHANISM (default SCRAM-SHA-512), KAFKA_SASL_USERNAME
	// (default empty: required with SASL), KAFKA_SASL_PASSWORD, KAFKA_TLS,
	// KAFKA_TLS_CA_FILE, KAFKA_DIAL_TIMEOUT (default 10s).
	Kafka kafkasec.Config
	// Topic carries the invoice history events. KAFKA_TOPIC, default sci.invoice-history.v1.
	Topic string
	// GroupID is the consumer group; its committed offsets are the
	// receiver's progress. RECEIVER_GROUP_ID, default sci-receiver.
	GroupID string
	// Timezone is the IANA zone in which an invoice's issue instant becomes
	// its issue date. RECEIVER_TIMEZONE, default UTC.
	Timezone string
	// DLQTopic receives the events that can never be applied, with the
	// reason (see `receiver dlq`). It must exist. RECEIVER_DLQ_TOPIC, default
	// KAFKA_TOPIC + ".dlq".
	DLQTopic string
	// BatchSize is the most events of one partition applied in one database
	// transaction. RECEIVER_BATCH_SIZE, default 500.
	BatchSize int
	// BatchLinger is how long, after an event arrived, a partition keeps
	// collecting the events behind it before applying them: the most latency
	// batching adds, traded for fewer, larger transactions (less CPU per
	// event in the receiver and PostgreSQL). RECEIVER_BATCH_LINGER, default 1ms.
	BatchLinger time.Duration
	// MergePartitions applies the batches that several partitions have
	// ready at the same moment in one transaction (pkg/consume). Under load
	// that costs less CPU per event than a transaction per partition; a
	// merged transaction that fails is retried partition by partition.
	// RECEIVER_MERGE_PARTITIONS, default true.
	MergePartitions bool
	// LedgerRetention is how long the ids of processed events are kept to
	// refuse duplicates; an older duplicate is still refused by the version
	// guard. RECEIVER_LEDGER_RETENTION, default 168h.
	LedgerRetention time.Duration
	// LedgerCleanupInterval is how often the ledger rows older than
	// LedgerRetention are deleted. RECEIVER_LEDGER_CLEANUP_INTERVAL, default 10m.
	LedgerCleanupInterval time.Duration
	// Log is LOG_FORMAT (auto, json, console; default auto) and LOG_LEVEL
	// (debug, info, warn, error; default info).
	Log settings.Log

	// location is Timezone, loaded by Validate.
	location *time.Location
}

// Defaults of the settings.
const (
	DefaultDatabaseURL = "postgres://invoicesync:invoicesync@127.0.0.1:5432/invoicesync_receiver"
	DefaultHTTPAddr    = "127.0.0.1:8081"
	DefaultTopic       = "sci.invoice-history.v1"
	DefaultGroupID     = "sci-receiver"
	DefaultTimezone    = "UTC"
)

// scope says which settings a subcommand reads.
type scope int

const (
	scopeDatabase scope = iota // migrate
	scopeServe                 // serve: everything
)

// register binds the settings of scope s to c.
func (c *Config) register(set *settings.Set, s scope) {
	set.String(&c.DatabaseURL, "database-url", "RECEIVER_DATABASE_URL", DefaultDatabaseURL,
		"PostgreSQL URL of the receiver database")
	set.Log(&c.Log)
	if s < scopeServe {
		return
	}
	set.String(&c.HTTPAddr, "http-addr", "RECEIVER_HTTP_ADDR", DefaultHTTPAddr, "host:port of the read API, /healthz, /readyz and /metrics")
	set.Kafka(&c.Kafka)
	c.Kafka.ClientID = "invoicesync-receiver" // names this process in the brokers' logs
	set.String(&c.Topic, "kafka-topic", "KAFKA_TOPIC", DefaultTopic, "topic of the invoice history events")
	set.String(&c.GroupID, "group-id", "RECEIVER_GROUP_ID", DefaultGroupID, "Kafka consumer group of the receiver")
	set.String(&c.Timezone, "timezone", "RECEIVER_TIMEZONE", DefaultTimezone,
		"IANA time zone of invoice issue dates, e.g. Europe/Prague")
	set.String(&c.DLQTopic, "dlq-topic", "RECEIVER_DLQ_TOPIC", "",
		`dead-letter topic of the events that cannot be applied (default: KAFKA_TOPIC + "`+dlq.Suffix+`")`)
	set.Int(&c.BatchSize, "batch-size", "RECEIVER_BATCH_SIZE", consume.DefaultBatchSize,
		"most events of one partition applied in one database transaction")
	set.Duration(&c.BatchLinger, "batch-linger", "RECEIVER_BATCH_LINGER", consume.DefaultBatchLinger,
		"how long a partition keeps collecting events behind the first before applying them (latency traded for larger batches)")
	set.Bool(&c.MergePartitions, "merge-partitions", "RECEIVER_MERGE_PARTITIONS", true,
		"apply the batches several partitions have ready at once in one transaction")
	set.Duration(&c.LedgerRetention, "ledger-retention", "RECEIVER_LEDGER_RETENTION", store.DefaultLedgerRetention,
		"how long processed event ids are kept to refuse duplicates (older ones are still refused by version)")
	set.Duration(&c.LedgerCleanupInterval, "ledger-cleanup-interval", "RECEIVER_LEDGER_CLEANUP_INTERVAL",
		store.DefaultLedgerCleanupInterval, "how often processed event ids older than the retention are deleted")
}

// Validate checks the settings of scope s and names the one at fault.
func (c *Config) Validate(s scope) error {
	if c.DatabaseURL == "" {
		return errors.New("RECEIVER_DATABASE_URL (--database-url): required")
	}
	if s < scopeServe {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("RECEIVER_HTTP_ADDR (--http-addr): %q is not host:port", c.HTTPAddr)
	}
	c.Kafka.SetDefaults()
	if err := c.Kafka.Validate(); err != nil {
		return fmt.Errorf("%w (KAFKA_* settings)", err)
	}
	if c.Topic == "" {
		return errors.New("KAFKA_TOPIC (--kafka-topic): required")
	}
	if c.GroupID == "" {
		return errors.New("RECEIVER_GROUP_ID (--group-id): required")
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil || c.Timezone == "" {
		return fmt.Errorf("RECEIVER_TIMEZONE (--timezone): %q is not an IANA time zone name", c.Timezone)
	}
	if err := c.validateConsumer(); err != nil {
		return err
	}
	c.location = loc
	return nil
}

// validateConsumer checks the consumer and ledger settings and fills DLQTopic.
func (c *Config) validateConsumer() error {
	if c.DLQTopic == "" {
		c.DLQTopic = dlq.Topic(c.Topic)
	}
	switch {
	case c.DLQTopic == c.Topic:
		return fmt.Errorf("RECEIVER_DLQ_TOPIC (--dlq-topic): %q is the events' topic; dead letters need their own", c.DLQTopic)
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("RECEIVER_BATCH_SIZE (--batch-size): %d is not between 1 and 10000", c.BatchSize)
	case c.BatchLinger <= 0 || c.BatchLinger > time.Second:
		return fmt.Errorf("RECEIVER_BATCH_LINGER (--batch-linger): must be above 0 and at most 1s, got %v", c.BatchLinger)
	case c.LedgerRetention <= 0:
		return fmt.Errorf("RECEIVER_LEDGER_RETENTION (--ledger-retention): must be positive, got %v", c.LedgerRetention)
	case c.LedgerCleanupInterval <= 0:
		return fmt.Errorf("RECEIVER_LEDGER_CLEANUP_INTERVAL (--ledger-cleanup-interval): must be positive, got %v",
			c.LedgerCleanupInterval)
	}
	return nil
}

// MarshalZerologObject logs the configuration with secrets masked.
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	e.Str("database_url", db.Redact(c.DatabaseURL)).
		Str("log_format", c.Log.Format).Str("log_level", c.Log.Level)
	if c.location == nil { // migrate
		return
	}
	e.Str("http_addr", c.HTTPAddr).Str("kafka", c.Kafka.String()).Str("topic", c.Topic).
		Str("group_id", c.GroupID).Str("timezone", c.location.String()).Str("dlq_topic", c.DLQTopic).
		Int("batch_size", c.BatchSize).Dur("batch_linger", c.BatchLinger).Bool("merge_partitions", c.MergePartitions).Dur("ledger_retention", c.LedgerRetention).
		Dur("ledger_cleanup_interval", c.LedgerCleanupInterval)
}
