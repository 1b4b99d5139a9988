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
	// SessionTimeout is how long the group coordinator waits for a
	// heartbeat of a receiver before it hands the receiver's partitions to
	// another: with the defaults a crashed receiver's partitions move
	// within 10s. It must lie within the broker's
	// group.min.session.timeout.ms (Kafka's default 6s) and
	// group.max.session.timeout.ms. RECEIVER_SESSION_TIMEOUT, default 6s.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the receiver tells the coordinator it
	// is alive, and so how soon it learns of a rebalance; at most a third of
	// SessionTimeout. RECEIVER_HEARTBEAT_INTERVAL, default 1s (a third of
	// the session timeout when that is shorter).
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long the coordinator waits for every member
	// to rejoin during a rebalance; it must exceed the 10s a revoked
	// partition has to finish its batch. RECEIVER_REBALANCE_TIMEOUT, default 30s.
	RebalanceTimeout time.Duration
	// GroupInstanceID, when set, makes this receiver a static member of the
	// group (group.instance.id, e.g. the pod name; unique per receiver): a
	// restart within SessionTimeout gets its partitions back without a
	// rebalance, and a stop does not leave the group, so its partitions
	// move only after SessionTimeout. RECEIVER_GROUP_INSTANCE_ID, default
	// empty: a dynamic member.
	GroupInstanceID string
	// GroupProtocol is the consumer group protocol: cooperative-sticky
	// (incremental rebalances: only the partitions that change owner
	// pause) or consumer (KIP-848, Kafka 4.0+: the broker assigns, and the
	// session timeout and heartbeat interval are the broker's
	// group.consumer.* settings, default 45s and 5s, instead of
	// RECEIVER_SESSION_TIMEOUT and RECEIVER_HEARTBEAT_INTERVAL).
	// RECEIVER_GROUP_PROTOCOL, default cooperative-sticky.
	GroupProtocol string
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
	set.Duration(&c.SessionTimeout, "session-timeout", "RECEIVER_SESSION_TIMEOUT", consume.DefaultSessionTimeout,
		"how long without a heartbeat before a receiver's partitions go to another (within the broker's group.min/max.session.timeout.ms)")
	set.Duration(&c.HeartbeatInterval, "heartbeat-interval", "RECEIVER_HEARTBEAT_INTERVAL", consume.DefaultHeartbeatInterval,
		"how often the receiver heartbeats to the group coordinator (at most a third of the session timeout)")
	set.Duration(&c.RebalanceTimeout, "rebalance-timeout", "RECEIVER_REBALANCE_TIMEOUT", consume.DefaultRebalanceTimeout,
		"how long the coordinator waits for members to rejoin in a rebalance (above the 10s drain of a revoked partition)")
	set.String(&c.GroupInstanceID, "group-instance-id", "RECEIVER_GROUP_INSTANCE_ID", "",
		"static group membership id, e.g. the pod name (default empty: dynamic member)")
	set.String(&c.GroupProtocol, "group-protocol", "RECEIVER_GROUP_PROTOCOL", consume.ProtocolCooperativeSticky,
		"consumer group protocol: cooperative-sticky, or consumer (KIP-848, Kafka 4.0+)")
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
	case c.SessionTimeout < time.Second:
		return fmt.Errorf("RECEIVER_SESSION_TIMEOUT (--session-timeout): must be at least 1s, got %v", c.SessionTimeout)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval > c.SessionTimeout/3:
		return fmt.Errorf("RECEIVER_HEARTBEAT_INTERVAL (--heartbeat-interval): must be positive and at most a third of "+
			"RECEIVER_SESSION_TIMEOUT (%v), got %v", c.SessionTimeout, c.HeartbeatInterval)
	case c.RebalanceTimeout <= consume.DefaultDrainTimeout:
		return fmt.Errorf("RECEIVER_REBALANCE_TIMEOUT (--rebalance-timeout): must exceed the %v a revoked partition has "+
			"to finish its batch, got %v", consume.DefaultDrainTimeout, c.RebalanceTimeout)
	case !consume.ValidInstanceID(c.GroupInstanceID):
		return fmt.Errorf("RECEIVER_GROUP_INSTANCE_ID (--group-instance-id): %q must be at most 249 of the characters "+
			"a-z, A-Z, 0-9, '.', '_' and '-'", c.GroupInstanceID)
	case c.GroupProtocol != consume.ProtocolCooperativeSticky && c.GroupProtocol != consume.ProtocolConsumer:
		return fmt.Errorf("RECEIVER_GROUP_PROTOCOL (--group-protocol): %q is neither %s nor %s",
			c.GroupProtocol, consume.ProtocolCooperativeSticky, consume.ProtocolConsumer)
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
		Int("batch_size", c.BatchSize).Dur("batch_linger", c.BatchLinger).Bool("merge_partitions", c.MergePartitions).
		Dur("session_timeout", c.SessionTimeout).Dur("heartbeat_interval", c.HeartbeatInterval).
		Dur("rebalance_timeout", c.RebalanceTimeout).Str("group_instance_id", c.GroupInstanceID).
		Str("group_protocol", c.GroupProtocol).Dur("ledger_retention", c.LedgerRetention).
		Dur("ledger_cleanup_interval", c.LedgerCleanupInterval)
}
