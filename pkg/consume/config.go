package consume

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/invoicesync/invoicesync/pkg/dlq"
)

// Config tunes a Consumer. Topic and GroupID are required; every other field
// has a default filled in by SetDefaults.
type Config struct {
	// Topic is the topic to consume. Required.
	Topic string
	// GroupID is the consumer group; the group's committed offsets are where
	// a restarted consumer resumes. Required.
	GroupID string
	// DLQTopic receives the messages that fail permanently. It must exist
	// (Run checks at start). Default: Topic + ".dlq" (dlq.Topic).
	DLQTopic string
	// BatchSize is the most messages of one partition handed to the handler
	// at once (one database transaction in the receiver). Default 500.
	BatchSize int
	// MergePartitions hands the small batches (up to a quarter of
	// BatchSize) that several partitions have ready at the same moment to
	// the handler in one call, and commits them in one request: the handler
	// then gets messages of several partitions (each partition's in offset
	// order), up to about BatchSize. Larger batches are still handled per
	// partition, in parallel. A merged call that fails is not retried as
	// such: each partition handles its batch on its own again. Default false.
	MergePartitions bool
	// BatchLinger is how long, after a message arrived, the consumer keeps
	// collecting messages that are already there before handing the batch
	// over: the most latency batching adds. Default 1ms.
	BatchLinger time.Duration
	// MinBytes is the least data a fetch waits for (kgo.FetchMinBytes).
	// Default 1, so a single message is delivered at once.
	MinBytes int
	// MaxBytes caps one partition's share of a fetch response
	// (kgo.FetchMaxPartitionBytes; the broker still sends a record batch
	// larger than that whole); a whole response is capped at 32 times that
	// (kgo.FetchMaxBytes). A partition whose handler is busy or retrying is
	// paused once BatchSize messages wait for it, so what is held in memory
	// ahead of the handler stays bounded. Default 1 MiB.
	MaxBytes int
	// MaxWait is how long the broker holds a fetch while it has less than
	// MinBytes for it (kgo.FetchMaxWait). A message that arrives ends the
	// wait, so it does not add latency; it sets how often an idle member
	// asks. The response itself may take longer: the client gives it its
	// request timeout on top. Default 500ms.
	MaxWait time.Duration
	// Protocol is the group protocol: ProtocolCooperativeSticky (default),
	// the classic protocol with incremental rebalances, where a rebalance
	// moves only the partitions that change owner and the others keep
	// flowing; or ProtocolConsumer, KIP-848's next-generation protocol (Kafka
	// 4.0+), where the broker assigns the partitions and SessionTimeout and
	// HeartbeatInterval are the broker's settings
	// (group.consumer.session.timeout.ms, default 45s, and
	// group.consumer.heartbeat.interval.ms), not these.
	Protocol string
	// InstanceID, when set, makes this member static (KIP-345,
	// group.instance.id; e.g. the pod name): a restart within
	// SessionTimeout gets its partitions back without a rebalance, and
	// stopping does not leave the group, so its partitions move only once
	// the session timed out. Each member needs its own. Default empty: a
	// dynamic member, which leaves the group when it stops.
	InstanceID string
	// SessionTimeout is how long the group coordinator waits for a
	// heartbeat before it hands this member's partitions to another: with
	// the defaults a crashed member's partitions move within about 8s. It
	// must lie within the broker's group.min.session.timeout.ms (Kafka's
	// default 6s) and group.max.session.timeout.ms. Default 6s.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the member tells the coordinator it is
	// alive, and so how soon it learns that a rebalance started. At most a
	// third of SessionTimeout. Default 1s, or a third of SessionTimeout when
	// that is shorter.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long the coordinator waits for every member
	// to rejoin during a rebalance; it must exceed DrainTimeout so a member
	// finishing its batches is not thrown out. Default 30s.
	RebalanceTimeout time.Duration
	// MinBackoff is the first pause before a failed batch (or dead-letter
	// publish) is tried again; it doubles with each failure (with jitter)
	// up to MaxBackoff. Default 100ms.
	MinBackoff time.Duration
	// MaxBackoff caps the pause between attempts. Default 10s.
	MaxBackoff time.Duration
	// DrainTimeout bounds how long a partition, once told to stop (Run's
	// context cancelled or a rebalance), may spend finishing the batch in
	// flight and committing it; the partitions stopped together share one
	// deadline. A handler that has not returned a second after it is
	// abandoned, and nothing is committed for it. Default 10s.
	DrainTimeout time.Duration
	// Metrics, when set, receives the consumer's series:
	// invoicesync_consumer_lag_messages{topic,partition},
	// _dead_lettered_total{class}, _retries_total, _batch_size and
	// _commit_failures_total. Default nil: no metrics.
	Metrics prometheus.Registerer
	// LagInterval is how often each assigned partition asks the broker for
	// its high watermark to update the lag gauge between fetches, so the lag
	// also grows while a partition is stuck on a batch. Only used with
	// Metrics. Default 10s.
	LagInterval time.Duration
}

// Group protocols (Config.Protocol).
const (
	// ProtocolCooperativeSticky is the classic group protocol with the
	// cooperative-sticky balancer: incremental rebalances.
	ProtocolCooperativeSticky = "cooperative-sticky"
	// ProtocolConsumer is KIP-848's next-generation protocol (Kafka 4.0+):
	// the broker assigns the partitions.
	ProtocolConsumer = "consumer"
)

// maxFetchBytes is the largest MaxBytes: 32 times it must fit a fetch
// request's int32.
const maxFetchBytes = 1 << 25

// Defaults of Config.
const (
	DefaultBatchSize         = 500
	DefaultBatchLinger       = time.Millisecond
	DefaultMaxBytes          = 1 << 20
	DefaultMaxWait           = 500 * time.Millisecond
	DefaultSessionTimeout    = 6 * time.Second
	DefaultHeartbeatInterval = time.Second
	DefaultRebalanceTimeout  = 30 * time.Second
	DefaultMinBackoff        = 100 * time.Millisecond
	DefaultMaxBackoff        = 10 * time.Second
	DefaultDrainTimeout      = 10 * time.Second
	DefaultLagInterval       = 10 * time.Second
)

// SetDefaults fills the zero fields with their defaults.
func (c *Config) SetDefaults() {
	setDefault(&c.DLQTopic, dlq.Topic(c.Topic))
	setDefault(&c.BatchSize, DefaultBatchSize)
	setDefault(&c.BatchLinger, DefaultBatchLinger)
	setDefault(&c.MinBytes, 1)
	setDefault(&c.MaxBytes, DefaultMaxBytes)
	setDefault(&c.MaxWait, DefaultMaxWait)
	setDefault(&c.Protocol, ProtocolCooperativeSticky)
	setDefault(&c.SessionTimeout, DefaultSessionTimeout)
	setDefault(&c.HeartbeatInterval, min(DefaultHeartbeatInterval, c.SessionTimeout/3))
	setDefault(&c.RebalanceTimeout, DefaultRebalanceTimeout)
	setDefault(&c.MinBackoff, DefaultMinBackoff)
	setDefault(&c.MaxBackoff, DefaultMaxBackoff)
	setDefault(&c.DrainTimeout, DefaultDrainTimeout)
	setDefault(&c.LagInterval, DefaultLagInterval)
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Validate reports the first setting that is missing or wrong, by name.
func (c *Config) Validate() error {
	switch {
	case c.Topic == "":
		return errors.New("consumer topic: required")
	case c.GroupID == "":
		return errors.New("consumer group id: required")
	case c.DLQTopic == "" || c.DLQTopic == c.Topic:
		return fmt.Errorf("consumer dead-letter topic: must be set and differ from the topic %q", c.Topic)
	case c.BatchSize < 1:
		return fmt.Errorf("consumer batch size: must be at least 1, got %d", c.BatchSize)
	case c.BatchLinger < 0:
		return fmt.Errorf("consumer batch linger: must not be negative, got %v", c.BatchLinger)
	case c.MinBytes < 1:
		return fmt.Errorf("consumer min bytes: must be at least 1, got %d", c.MinBytes)
	case c.MaxBytes < c.MinBytes:
		return fmt.Errorf("consumer max bytes: %d is below min bytes %d", c.MaxBytes, c.MinBytes)
	case c.MaxWait <= 0:
		return fmt.Errorf("consumer max wait: must be positive, got %v", c.MaxWait)
	case c.MaxBytes > maxFetchBytes:
		return fmt.Errorf("consumer max bytes: must be at most %d, got %d", maxFetchBytes, c.MaxBytes)
	case c.Protocol != ProtocolCooperativeSticky && c.Protocol != ProtocolConsumer:
		return fmt.Errorf("consumer group protocol: %q is neither %q nor %q", c.Protocol, ProtocolCooperativeSticky, ProtocolConsumer)
	case !ValidInstanceID(c.InstanceID):
		return fmt.Errorf("consumer group instance id: %q must be at most 249 of the characters a-z, A-Z, 0-9, '.', '_' and '-'", c.InstanceID)
	case c.SessionTimeout < time.Second:
		return fmt.Errorf("consumer session timeout: must be at least 1s, got %v", c.SessionTimeout)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval > c.SessionTimeout/3:
		return fmt.Errorf("consumer heartbeat interval: must be positive and at most a third of the session timeout %v, got %v",
			c.SessionTimeout, c.HeartbeatInterval)
	case c.MinBackoff <= 0:
		return fmt.Errorf("consumer min backoff: must be positive, got %v", c.MinBackoff)
	case c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("consumer max backoff: %v is below min backoff %v", c.MaxBackoff, c.MinBackoff)
	case c.DrainTimeout <= 0:
		return fmt.Errorf("consumer drain timeout: must be positive, got %v", c.DrainTimeout)
	case c.RebalanceTimeout <= c.DrainTimeout:
		return fmt.Errorf("consumer rebalance timeout: %v must exceed the drain timeout %v", c.RebalanceTimeout, c.DrainTimeout)
	case c.LagInterval <= 0:
		return fmt.Errorf("consumer lag interval: must be positive, got %v", c.LagInterval)
	}
	return nil
}

// String describes the configuration for startup logs.
func (c Config) String() string {
	return "topic=" + c.Topic + " group=" + c.GroupID + " dlq_topic=" + c.DLQTopic +
		" batch_size=" + strconv.Itoa(c.BatchSize) + " merge_partitions=" + strconv.FormatBool(c.MergePartitions) + " batch_linger=" + c.BatchLinger.String() +
		" max_wait=" + c.MaxWait.String() + " max_bytes=" + strconv.Itoa(c.MaxBytes) +
		" protocol=" + c.Protocol + " instance_id=" + c.InstanceID +
		" session_timeout=" + c.SessionTimeout.String() + " heartbeat_interval=" + c.HeartbeatInterval.String() +
		" rebalance_timeout=" + c.RebalanceTimeout.String() +
		" backoff=" + c.MinBackoff.String() + ".." + c.MaxBackoff.String() +
		" drain_timeout=" + c.DrainTimeout.String() + " min_bytes=" + strconv.Itoa(c.MinBytes)
}

// ValidInstanceID reports whether id is empty or a legal Kafka
// group.instance.id: at most 249 of the characters a-z, A-Z, 0-9, '.', '_'
// and '-'.
func ValidInstanceID(id string) bool {
	if len(id) > 249 || id == "." || id == ".." {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
