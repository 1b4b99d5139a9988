package main

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/logging"
	"github.com/invoicesync/invoicesync/pkg/outbox"
	"github.com/invoicesync/invoicesync/pkg/settings"
)

// Defaults of the settings.
const (
	defaultDatabaseURL       = "postgres://invoicesync:invoicesync@127.0.0.1:5432/invoicesync_sender"
	defaultHTTPAddr          = "127.0.0.1:8080"
	defaultMaxBodyBytes      = 512 << 10
	defaultIdempotencyKeyTTL = 24 * time.Hour
	maxMaxBodyBytes          = 64 << 20
	defaultTopic             = "sci.invoice-history.v1"
	defaultRelayHTTPAddr     = "127.0.0.1:8082"
)

// commonConfig is what every subcommand reads.
type commonConfig struct {
	// DatabaseURL reaches the sender's PostgreSQL database, SCI's own.
	// SENDER_DATABASE_URL, default postgres://invoicesync:invoicesync@127.0.0.1:5432/invoicesync_sender.
	DatabaseURL string
	// Log is the log format (LOG_FORMAT, default auto) and level (LOG_LEVEL, default info).
	Log settings.Log
}

func (c *commonConfig) bind(s *settings.Set) {
	s.String(&c.DatabaseURL, "database-url", "SENDER_DATABASE_URL", defaultDatabaseURL,
		"PostgreSQL URL of the sender database")
	s.Log(&c.Log)
}

func (c *commonConfig) validate() error {
	if c.DatabaseURL == "" {
		return errors.New("SENDER_DATABASE_URL (--database-url): required")
	}
	// pgx's parse error may quote the URL; name the setting, show it redacted.
	if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		return fmt.Errorf("SENDER_DATABASE_URL (--database-url): %s is not a PostgreSQL URL "+
			"(postgres://user:password@host:port/database)", db.Redact(c.DatabaseURL))
	}
	if _, err := logging.New(nil, c.Log.Format, c.Log.Level, "sender"); err != nil {
		return fmt.Errorf("LOG_FORMAT/LOG_LEVEL (--log-format/--log-level): %w", err)
	}
	return nil
}

func (c *commonConfig) MarshalZerologObject(e *zerolog.Event) {
	e.Str("database_url", db.Redact(c.DatabaseURL)).Str("log_format", c.Log.Format).Str("log_level", c.Log.Level)
}

// serveConfig is the configuration of "sender serve".
type serveConfig struct {
	commonConfig
	// HTTPAddr is the host:port the API listens on. SENDER_HTTP_ADDR, default 127.0.0.1:8080.
	HTTPAddr string
	// MaxBodyBytes caps a request body (413 above). SENDER_MAX_BODY_BYTES,
	// default 524288 (512 KiB), at most 64 MiB. The event carries the whole
	// history, so keep it well under the relay's RELAY_MAX_MESSAGE_BYTES.
	MaxBodyBytes int
	// IdempotencyKeyTTL is how long an Idempotency-Key answers retries of
	// its request; older keys are deleted. SENDER_IDEMPOTENCY_KEY_TTL,
	// default 24h.
	IdempotencyKeyTTL time.Duration
}

func (c *serveConfig) bind(s *settings.Set) {
	c.commonConfig.bind(s)
	s.String(&c.HTTPAddr, "http-addr", "SENDER_HTTP_ADDR", defaultHTTPAddr, "host:port the HTTP API listens on")
	s.Int(&c.MaxBodyBytes, "max-body-bytes", "SENDER_MAX_BODY_BYTES", defaultMaxBodyBytes,
		"largest accepted request body in bytes (larger ones get 413)")
	s.Duration(&c.IdempotencyKeyTTL, "idempotency-key-ttl", "SENDER_IDEMPOTENCY_KEY_TTL", defaultIdempotencyKeyTTL,
		"how long an Idempotency-Key answers retries of its request (older keys are deleted)")
}

// Validate reports the first setting that is wrong, by name.
func (c *serveConfig) Validate() error {
	if err := c.validate(); err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(c.HTTPAddr) // an empty host means every interface
	if err != nil {
		return fmt.Errorf("SENDER_HTTP_ADDR (--http-addr): %q is not host:port", c.HTTPAddr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("SENDER_HTTP_ADDR (--http-addr): port %q of %q is not a number from 0 to 65535", port, c.HTTPAddr)
	}
	if c.MaxBodyBytes <= 0 || c.MaxBodyBytes > maxMaxBodyBytes {
		return fmt.Errorf("SENDER_MAX_BODY_BYTES (--max-body-bytes): must be from 1 to %d, got %d", maxMaxBodyBytes, c.MaxBodyBytes)
	}
	if c.IdempotencyKeyTTL < time.Minute {
		return fmt.Errorf("SENDER_IDEMPOTENCY_KEY_TTL (--idempotency-key-ttl): must be at least 1m, got %v", c.IdempotencyKeyTTL)
	}
	return nil
}

func (c *serveConfig) MarshalZerologObject(e *zerolog.Event) {
	c.commonConfig.MarshalZerologObject(e)
	e.Str("http_addr", c.HTTPAddr).Int("max_body_bytes", c.MaxBodyBytes).Dur("idempotency_key_ttl", c.IdempotencyKeyTTL)
}

// relayConfig is the configuration of "sender relay".
type relayConfig struct {
	commonConfig
	// Kafka is the cluster and its credentials: KAFKA_BROKERS (default
	// localhost:9092), KAFKA_SASL_MECHANISM (default SCRAM-SHA-512),
	// KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_TLS, KAFKA_TLS_CA_FILE,
	// KAFKA_DIAL_TIMEOUT (default 10s).
	Kafka kafkasec.Config
	// Topic receives every event. KAFKA_TOPIC, default sci.invoice-history.v1.
	Topic string
	// BatchSize caps the events published at once. RELAY_BATCH_SIZE, default 500.
	BatchSize int
	// PollInterval is how often an idle relay looks at the outbox without a
	// notification. RELAY_POLL_INTERVAL, default 1s.
	PollInterval time.Duration
	// BusyPollInterval is how long a busy relay waits before reading again
	// after a read that did not fill a batch: a linger that trades that much
	// latency for fewer, larger batches (less CPU per event in the relay,
	// the broker and the receiver). RELAY_BUSY_POLL_INTERVAL, default 2ms.
	BusyPollInterval time.Duration
	// TransactionalID is the Kafka transactional id every replica of this
	// relay shares; a new leader's producer fences the old one's with it.
	// RELAY_TRANSACTIONAL_ID, default empty: "invoicesync-relay-<topic>-"
	// and a hash of the database's system identifier, name and outbox table.
	// Set it when the broker's ACLs need a name known in advance.
	TransactionalID string
	// TransactionTimeout is how long the broker keeps a batch's transaction
	// open before aborting it, bounding how long consumers wait behind a
	// relay that died between produce and commit with no other relay to take
	// over. At least twice the relay's 10s write timeout, at most the broker's
	// transaction.max.timeout.ms. RELAY_TRANSACTION_TIMEOUT, default 30s.
	TransactionTimeout time.Duration
	// StepDownAfter is how long a leader may fail to publish before it
	// releases the lock and waits its turn, so a standby that reaches Kafka
	// takes over. RELAY_STEP_DOWN_AFTER, default 30s.
	StepDownAfter time.Duration
	// MaxMessageBytes is the largest event published; a larger one holds
	// back its aggregate with an error instead of failing every publish.
	// Keep it below the topic's max.message.bytes. RELAY_MAX_MESSAGE_BYTES,
	// default 1000000.
	MaxMessageBytes int
	// HTTPAddr serves /metrics, /healthz and /readyz. RELAY_HTTP_ADDR,
	// default 127.0.0.1:8082; empty turns the listener off.
	HTTPAddr string
}

func (c *relayConfig) bind(s *settings.Set) {
	c.commonConfig.bind(s)
	s.Kafka(&c.Kafka)
	s.String(&c.Topic, "kafka-topic", "KAFKA_TOPIC", defaultTopic, "Kafka topic the events are published to")
	s.Int(&c.BatchSize, "relay-batch-size", "RELAY_BATCH_SIZE", outbox.DefaultBatchSize, "most events published at once")
	s.Duration(&c.PollInterval, "relay-poll-interval", "RELAY_POLL_INTERVAL", outbox.DefaultPollInterval,
		"how often an idle relay looks at the outbox without a notification")
	s.Duration(&c.BusyPollInterval, "relay-busy-poll-interval", "RELAY_BUSY_POLL_INTERVAL", outbox.DefaultBusyPollInterval,
		"how long a busy relay waits to read again after a read that did not fill a batch (a linger)")
	s.String(&c.TransactionalID, "relay-transactional-id", "RELAY_TRANSACTIONAL_ID", "",
		"Kafka transactional id shared by the relay's replicas (empty: derived from the topic, database and outbox table)")
	s.Duration(&c.TransactionTimeout, "relay-transaction-timeout", "RELAY_TRANSACTION_TIMEOUT", outbox.DefaultTransactionTimeout,
		"how long the broker keeps a batch's transaction open before aborting it (at least 20s)")
	s.Duration(&c.StepDownAfter, "relay-step-down-after", "RELAY_STEP_DOWN_AFTER", outbox.DefaultStepDownAfter,
		"how long a leader may fail to publish before it releases the lock to a standby")
	s.Int(&c.MaxMessageBytes, "relay-max-message-bytes", "RELAY_MAX_MESSAGE_BYTES", outbox.DefaultMaxMessageBytes,
		"largest event published (keep it below the topic's max.message.bytes); a larger one is held back with an error")
	s.String(&c.HTTPAddr, "http-addr", "RELAY_HTTP_ADDR", defaultRelayHTTPAddr,
		"host:port serving /metrics, /healthz and /readyz (empty: none)")
}

var topicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// Validate reports the first setting that is wrong, by name.
func (c *relayConfig) Validate() error {
	if err := c.validate(); err != nil {
		return err
	}
	k := c.Kafka
	k.SetDefaults()
	if err := k.Validate(); err != nil {
		return fmt.Errorf("KAFKA_* settings: %w", err)
	}
	switch {
	case c.Topic == "":
		return errors.New("KAFKA_TOPIC (--kafka-topic): required")
	case !topicRE.MatchString(c.Topic) || strings.Trim(c.Topic, ".") == "":
		return fmt.Errorf("KAFKA_TOPIC (--kafka-topic): %q is not a Kafka topic name (letters, digits, . _ -; at most 249)", c.Topic)
	case c.BatchSize <= 0:
		return fmt.Errorf("RELAY_BATCH_SIZE (--relay-batch-size): must be positive, got %d", c.BatchSize)
	case c.PollInterval <= 0:
		return fmt.Errorf("RELAY_POLL_INTERVAL (--relay-poll-interval): must be positive, got %s", c.PollInterval)
	case c.BusyPollInterval <= 0 || c.BusyPollInterval > time.Second:
		return fmt.Errorf("RELAY_BUSY_POLL_INTERVAL (--relay-busy-poll-interval): must be above 0 and at most 1s, got %s", c.BusyPollInterval)
	case c.MaxMessageBytes < 1024 || c.MaxMessageBytes > outbox.MaxMaxMessageBytes:
		return fmt.Errorf("RELAY_MAX_MESSAGE_BYTES (--relay-max-message-bytes): must be from 1024 to %d, got %d",
			outbox.MaxMaxMessageBytes, c.MaxMessageBytes)
	case c.TransactionalID != "" && (!topicRE.MatchString(c.TransactionalID) || strings.Trim(c.TransactionalID, ".") == ""):
		return fmt.Errorf("RELAY_TRANSACTIONAL_ID (--relay-transactional-id): %q is not letters, digits, . _ - (at most 249)", c.TransactionalID)
	case c.StepDownAfter <= 0:
		return fmt.Errorf("RELAY_STEP_DOWN_AFTER (--relay-step-down-after): must be positive, got %s", c.StepDownAfter)
	case c.TransactionTimeout < 2*outbox.DefaultWriteTimeout:
		return fmt.Errorf("RELAY_TRANSACTION_TIMEOUT (--relay-transaction-timeout): must be at least %s (twice the write timeout), got %s",
			2*outbox.DefaultWriteTimeout, c.TransactionTimeout)
	}
	o := c.outbox()
	o.SetDefaults()
	if err := o.Validate(); err != nil {
		return fmt.Errorf("relay settings: %w", err)
	}
	return nil
}

// outbox is the relay's configuration; the outbox package's defaults fill
// what the settings leave out.
func (c *relayConfig) outbox() outbox.Config {
	return outbox.Config{
		Topic: c.Topic, BatchSize: c.BatchSize,
		PollInterval: c.PollInterval, BusyPollInterval: c.BusyPollInterval,
		MaxMessageBytes: c.MaxMessageBytes, TransactionalID: c.TransactionalID, TransactionTimeout: c.TransactionTimeout,
		StepDownAfter: c.StepDownAfter,
	}
}

func (c *relayConfig) MarshalZerologObject(e *zerolog.Event) {
	c.commonConfig.MarshalZerologObject(e)
	e.Str("kafka", c.Kafka.String()).Str("topic", c.Topic).Int("batch_size", c.BatchSize).
		Str("poll_interval", c.PollInterval.String()).Str("busy_poll_interval", c.BusyPollInterval.String()).
		Int("max_message_bytes", c.MaxMessageBytes).Str("transactional_id", c.TransactionalID).
		Str("transaction_timeout", c.TransactionTimeout.String()).Str("step_down_after", c.StepDownAfter.String())
}
