package outbox

import (
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Defaults of Config.
const (
	DefaultTable              = "transaction_outbox"
	DefaultChannel            = "transaction_outbox"
	DefaultBatchSize          = 500
	DefaultPollInterval       = time.Second
	DefaultWriteTimeout       = 10 * time.Second
	DefaultTransactionTimeout = 30 * time.Second
	DefaultMinBackoff         = 100 * time.Millisecond
	DefaultMaxBackoff         = 10 * time.Second
	DefaultStepDownAfter      = 30 * time.Second
	DefaultBusyPollInterval   = 2 * time.Millisecond
	DefaultIdleAfter          = 100 * time.Millisecond
	// DefaultMaxMessageBytes stays under Kafka's default limit on a record
	// batch (message.max.bytes, max.message.bytes: 1,048,588 bytes).
	DefaultMaxMessageBytes = 1_000_000
	// MaxMaxMessageBytes keeps a batch within what one produce request
	// may carry (franz-go's BrokerMaxWriteBytes, 100 MiB).
	MaxMaxMessageBytes = 64 << 20
	// TransactionalIDPrefix starts every default transactional id.
	TransactionalIDPrefix = "invoicesync-relay-"
)

// Config tells a Relay which outbox to drain and where to publish it.
type Config struct {
	// Table is the outbox table, optionally schema-qualified
	// ("public.transaction_outbox"). Default "transaction_outbox".
	Table string
	// Channel is the NOTIFY channel the table's insert trigger signals.
	// Default "transaction_outbox".
	Channel string
	// Topic is the Kafka topic every event of the table goes to. Required.
	Topic string
	// BatchSize caps the rows read, published and deleted at once. Default 500.
	BatchSize int
	// PollInterval is how long an idle leader waits for a NOTIFY before it
	// looks at the table anyway, and how often a standby retries the lock.
	// Default 1s.
	PollInterval time.Duration
	// WriteTimeout bounds each step of a publish (initialising the
	// producer, producing the batch until acknowledged, committing or
	// aborting its transaction) and each statement on the database; on
	// shutdown the in-flight batch gets this long per step to finish.
	// At least 1s. Default 10s.
	WriteTimeout time.Duration
	// TransactionalID is the Kafka transactional id of the relay's
	// producer. Every replica of one outbox must use the same id: a new
	// leader initialising it fences the producer of any old leader at the
	// broker, so a batch the old leader has not committed yet never
	// becomes visible. Default (empty): "invoicesync-relay-" + Topic + "-"
	// + a hash of the database's system identifier, its name and Table,
	// the same for every replica of one outbox and different for another
	// outbox publishing to the same topic. Set it when the broker's ACLs
	// need a name known in advance. Letters, digits, . _ -; at most 249.
	TransactionalID string
	// TransactionTimeout is how long the broker lets a transaction stay
	// open before it aborts it: how long read_committed consumers of a
	// partition may wait behind a batch of a relay that died between
	// produce and commit, when no other relay takes over (a new leader
	// aborts it at once). At least twice WriteTimeout (produce, then
	// commit), at most the broker's transaction.max.timeout.ms (15m by
	// default). Default 30s.
	TransactionTimeout time.Duration
	// MaxMessageBytes is the largest event (key, value and headers) the
	// relay publishes. A larger one is held back with its aggregate, like
	// an event that cannot be encoded, instead of failing every publish.
	// Keep it below the topic's max.message.bytes. Default 1,000,000, at
	// most 64 MiB.
	MaxMessageBytes int
	// MinBackoff and MaxBackoff bound the exponential, jittered wait after a
	// failure. MaxBackoff is also how long the events of an aggregate stay
	// held back after one of them could not be published (not encodable,
	// too large), before the relay looks again. Defaults 100ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// StepDownAfter is how long a leader may fail to publish (Kafka
	// unreachable from it, or refusing every batch) before it ends its term:
	// it releases the lock and waits its turn, so a standby that reaches
	// Kafka takes over. Default 30s.
	StepDownAfter time.Duration
	// BusyPollInterval is how often a busy leader reads the table again when
	// a read found nothing. While busy, writers do not NOTIFY (a NOTIFY per
	// commit serializes the sender's commits), so this bounds the added
	// latency under load. Default 2ms.
	BusyPollInterval time.Duration
	// IdleAfter is how long a leader must find nothing before it declares
	// itself idle (outbox_relay_state.listening) and waits for NOTIFYs
	// instead of polling. Default 100ms.
	IdleAfter time.Duration
	// LockKey is the PostgreSQL advisory lock that elects the one publishing
	// relay among replicas. Default (0): derived from Table, so relays of
	// different outboxes in one database do not exclude each other.
	LockKey int64
}

// SetDefaults fills the zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = DefaultTransactionTimeout
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.StepDownAfter == 0 {
		c.StepDownAfter = DefaultStepDownAfter
	}
	if c.BusyPollInterval == 0 {
		c.BusyPollInterval = DefaultBusyPollInterval
	}
	if c.IdleAfter == 0 {
		c.IdleAfter = DefaultIdleAfter
	}
	if c.LockKey == 0 {
		c.LockKey = lockKey(c.Table)
	}
}

// Validate reports the first setting that is missing or wrong, by name.
func (c *Config) Validate() error {
	if _, err := tableIdent(c.Table); err != nil {
		return fmt.Errorf("outbox table: %w", err)
	}
	if !identRE.MatchString(c.Channel) {
		return fmt.Errorf("outbox channel: %q is not a plain identifier (letters, digits, _; at most 63)", c.Channel)
	}
	if c.Topic == "" {
		return errors.New("outbox topic: required")
	}
	if !topicRE.MatchString(c.Topic) || c.Topic == "." || c.Topic == ".." {
		return fmt.Errorf("outbox topic: %q is not a legal Kafka topic name (letters, digits, . _ -; at most 249)", c.Topic)
	}
	if c.BatchSize <= 0 {
		return fmt.Errorf("outbox batch size: must be positive, got %d", c.BatchSize)
	}
	if c.MaxMessageBytes < 1024 || c.MaxMessageBytes > MaxMaxMessageBytes {
		return fmt.Errorf("outbox max message bytes: must be from 1024 to %d, got %d", MaxMaxMessageBytes, c.MaxMessageBytes)
	}
	if c.TransactionalID != "" && (!topicRE.MatchString(c.TransactionalID) || strings.Trim(c.TransactionalID, ".") == "") {
		return fmt.Errorf("outbox transactional id: %q is not letters, digits, . _ - (at most 249)", c.TransactionalID)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"outbox poll interval", c.PollInterval},
		{"outbox write timeout", c.WriteTimeout},
		{"outbox transaction timeout", c.TransactionTimeout},
		{"outbox min backoff", c.MinBackoff},
		{"outbox max backoff", c.MaxBackoff},
		{"outbox step down after", c.StepDownAfter},
		{"outbox busy poll interval", c.BusyPollInterval},
		{"outbox idle after", c.IdleAfter},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s: must be positive, got %s", d.name, d.v)
		}
	}
	if c.WriteTimeout < time.Second {
		return fmt.Errorf("outbox write timeout: must be at least 1s (the Kafka client's least record timeout), got %s", c.WriteTimeout)
	}
	if c.TransactionTimeout < 2*c.WriteTimeout {
		return fmt.Errorf("outbox transaction timeout: %s is below twice the write timeout %s (a batch's produce, then its commit)",
			c.TransactionTimeout, c.WriteTimeout)
	}
	if c.MaxBackoff < c.MinBackoff {
		return fmt.Errorf("outbox max backoff: %s is below min backoff %s", c.MaxBackoff, c.MinBackoff)
	}
	return nil
}

var (
	// identRE is an unquoted PostgreSQL identifier; anything else is refused
	// rather than escaped, so a table name never carries surprises.
	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
	topicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
)

// tableIdent validates a [schema.]table name and returns it quoted for SQL.
func tableIdent(name string) (string, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return "", fmt.Errorf("%q has more than schema.table", name)
	}
	for _, p := range parts {
		if !identRE.MatchString(p) {
			return "", fmt.Errorf("%q is not a plain identifier (letters, digits, _; at most 63 per part)", name)
		}
	}
	return pgx.Identifier(parts).Sanitize(), nil
}

// defaultTransactionalID is the transactional id of topic's producer for
// the outbox table of the database identified by system (its system
// identifier; empty when the role may not read it) and database.
func defaultTransactionalID(topic, system, database, table string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(system + "/" + database + "/" + table))
	return fmt.Sprintf("%s%s-%016x", TransactionalIDPrefix, topic, h.Sum64())
}

// lockKey derives the default advisory lock key from the table name.
func lockKey(table string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("invoicesync/outbox/" + table))
	return int64(h.Sum64()) //nolint:gosec // any 64-bit value is a valid key
}
