// Package consume runs a Kafka consumer-group member that hands batches of
// messages to a BatchHandler and commits their offsets only once the
// handler succeeded or the message at fault was dead-lettered, so no message
// is ever skipped:
//
//   - The member is one franz-go client (kgo) in a cooperative-sticky group
//     (or KIP-848's, Config.Protocol), reading with read_committed
//     isolation: records of aborted transactions and transaction markers
//     never reach the handler. A crashed member's partitions move to
//     another within SessionTimeout plus a heartbeat.
//   - Every partition assigned to the member has its own goroutine and
//     progresses on its own: one poll loop hands each partition the records
//     fetched for it, and pauses fetching a partition whose handler is
//     busy or retrying once a full batch waits for it, so a partition
//     waiting for a failing dependency holds back only itself and memory
//     stays bounded.
//   - A batch is the messages of one partition that are already there when
//     the first arrives (up to Config.BatchSize); the handler applies it
//     atomically or fails it as a whole. With Config.MergePartitions the
//     batches several partitions have ready at the same moment go to the
//     handler in one call, and back to their partitions if it fails.
//   - A transient failure is retried in place with exponential backoff and
//     jitter until it succeeds: nothing is skipped and nothing is
//     dead-lettered because a database is down.
//   - A permanent failure (Permanent) splits the batch: its messages are
//     handled one by one, and the one that fails permanently is published
//     to the dead-letter topic with the reason (pkg/dlq) before its offset
//     is committed. A failed publish is retried; the offset never moves
//     past a message that is neither handled nor dead-lettered.
//   - A revoked partition finishes its batch in flight within
//     DrainTimeout and commits it before the revocation completes; a lost
//     one (the session expired) stops without committing. A handler that
//     ignores its context and overruns DrainTimeout is abandoned (logged at
//     error level, nothing committed for it), so neither a revocation nor
//     Run's shutdown waits for it.
//
// Delivery is at least once: a batch whose commit did not happen (a crash, a
// rebalance, a failed commit) is delivered again, so handlers must be
// idempotent (the receiver records every event id with its effect).
package consume

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/logging"
)

// BatchHandler processes consecutive records of one partition, in offset
// order (of several partitions, each in offset order, with
// Config.MergePartitions). It returns nil only once every record's effects
// are durable (its database transaction committed), and applies all of them
// or none: on an error the consumer hands the same records over again
// (transient) or one at a time (permanent, see Permanent). The context
// carries a logger (logging.Ctx) with the topic, partition and offsets; it
// outlives a shutdown request or a revocation by Config.DrainTimeout. The
// records must not be modified.
type BatchHandler interface {
	HandleBatch(ctx context.Context, recs []*kgo.Record) error
}

// BatchHandlerFunc adapts a function to BatchHandler.
type BatchHandlerFunc func(ctx context.Context, recs []*kgo.Record) error

// HandleBatch calls f.
func (f BatchHandlerFunc) HandleBatch(ctx context.Context, recs []*kgo.Record) error {
	return f(ctx, recs)
}

// Stats are counters since the consumer was made.
type Stats struct {
	// Batches and Messages count what the handler applied (returned nil for).
	Batches, Messages int64
	// DeadLettered counts messages published to the dead-letter topic.
	DeadLettered int64
	// Retries counts transient handler failures; each is retried in place.
	Retries int64
	// DeadLetterRetries counts failed dead-letter publishes; each is retried.
	DeadLetterRetries int64
	// CommitFailures counts offset commits that failed; their messages will
	// be delivered again.
	CommitFailures int64
}

type counters struct {
	batches, messages, deadLettered, retries, dlqRetries, commitFailures atomic.Int64
}

// Consumer is one member of a consumer group reading one topic.
type Consumer struct {
	cfg     Config
	conn    *kafkasec.Conn
	h       BatchHandler
	log     zerolog.Logger
	stats   counters
	metrics *consumerMetrics // nil: no metrics

	// Set by Run before the group is joined.
	cl     *kgo.Client // the group member
	dlq    *kgo.Client // the dead-letter producer
	runCtx context.Context
	fail   context.CancelCauseFunc
	merger *merger // nil without MergePartitions

	extraOpts []kgo.Opt // tests: appended to the group member's options

	mu      sync.Mutex
	parts   map[int32]*partition // the partitions assigned now, and those stopping
	closing bool                 // Run is stopping: assign nothing more
}

// New validates cfg (after filling its defaults) and returns a consumer that
// reads cfg.Topic through conn, hands the records to h and dead-letters
// to cfg.DLQTopic, and registers its series on cfg.Metrics when set. It
// does no I/O.
func New(cfg Config, conn *kafkasec.Conn, h BatchHandler, log zerolog.Logger) (*Consumer, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if conn == nil || h == nil {
		return nil, errors.New("consumer: a kafka connection and a handler are required")
	}
	m, err := newConsumerMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Consumer{cfg: cfg, conn: conn, h: h, metrics: m, parts: map[int32]*partition{},
		log: log.With().Str(logging.FieldTopic, cfg.Topic).Str("group_id", cfg.GroupID).Logger()}, nil
}

// Stats returns the counters so far; safe while Run runs.
func (c *Consumer) Stats() Stats {
	s := &c.stats
	return Stats{Batches: s.batches.Load(), Messages: s.messages.Load(), DeadLettered: s.deadLettered.Load(),
		Retries: s.retries.Load(), DeadLetterRetries: s.dlqRetries.Load(), CommitFailures: s.commitFailures.Load()}
}

// Run waits for the brokers (retrying an unreachable one for the
// connection's StartupTimeout, failing at once on wrong credentials, a
// refused authorization or a missing topic), joins the group and consumes
// until ctx is cancelled. On cancellation every partition finishes its
// batch in flight within Config.DrainTimeout and commits it (a handler
// still running a second later is abandoned, uncommitted), the member
// leaves the group (a static member stays in it until its session times
// out), and Run returns nil. It returns an error when the brokers cannot
// be reached, reject the credentials or an authorization, lack a topic, or
// refuse the group settings. Call it once.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.conn.WaitReady(ctx, c.log, c.cfg.Topic, c.cfg.DLQTopic); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consume %s: %w", c.cfg.Topic, err)
	}
	runCtx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	c.runCtx, c.fail = runCtx, fail
	var err error
	if c.dlq, err = c.conn.NewClient(c.deadLetterOpts()...); err != nil {
		return fmt.Errorf("consume %s: %w", c.cfg.Topic, err)
	}
	defer c.dlq.Close()
	if c.cl, err = c.conn.NewClient(c.groupOpts()...); err != nil {
		return fmt.Errorf("consume %s: %w", c.cfg.Topic, err)
	}
	if c.cfg.MergePartitions {
		c.merger = newMerger(c)
		go c.merger.run()
	}
	c.log.Info().Str("dlq_topic", c.cfg.DLQTopic).Int("batch_size", c.cfg.BatchSize).
		Str("protocol", c.cfg.Protocol).Str("instance_id", c.cfg.InstanceID).Msg("consuming")
	c.poll(runCtx)
	c.shutdown()
	c.cl.Close()
	if ctx.Err() == nil {
		if cause := context.Cause(runCtx); cause != nil {
			return fmt.Errorf("consume %s: %w", c.cfg.Topic, cause)
		}
	}
	c.log.Info().Msg("stopped consuming")
	return nil
}

// shutdown lets every partition finish its batch in flight and commit it
// within DrainTimeout, and stops them and the merger; only then may the
// member leave the group. One deadline bounds it all: a handler still
// running drainGrace after it is abandoned (logged; nothing is committed
// for it), so Run returns even when a handler never does.
func (c *Consumer) shutdown() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	deadline := time.Now().Add(c.cfg.DrainTimeout)
	c.revoke(c.assigned(), true, deadline)
	if c.merger == nil {
		return
	}
	c.merger.stop()
	t := time.NewTimer(max(time.Until(deadline.Add(drainGrace)), 0))
	defer t.Stop()
	select {
	case <-c.merger.done:
	case <-t.C:
		c.log.Error().Dur("drain_timeout", c.cfg.DrainTimeout).
			Msg("the handler called with merged batches overran the drain timeout and was abandoned: " +
				"it ignores its context; whatever it still does is not committed")
	}
}

// groupOpts are the options of the group member's client.
func (c *Consumer) groupOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ConsumerGroup(c.cfg.GroupID),
		kgo.ConsumeTopics(c.cfg.Topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		// A group without a committed offset starts at the partition's
		// first message, and so does a committed offset that retention
		// deleted (OFFSET_OUT_OF_RANGE; logged by deliver).
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(c.cfg.SessionTimeout),
		kgo.HeartbeatInterval(c.cfg.HeartbeatInterval),
		kgo.RebalanceTimeout(c.cfg.RebalanceTimeout),
		kgo.FetchMinBytes(int32(c.cfg.MinBytes)),          //nolint:gosec // validated
		kgo.FetchMaxPartitionBytes(int32(c.cfg.MaxBytes)), //nolint:gosec // validated
		kgo.FetchMaxBytes(int32(32 * c.cfg.MaxBytes)),     //nolint:gosec // validated
		kgo.FetchMaxWait(c.cfg.MaxWait),
		// The poll loop hands records over and allows the rebalance at
		// once; blocking it meanwhile means a revocation never races
		// records of the revoked partition on their way to its goroutine.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.WithLogger(kgoLogger{log: c.log.With().Str("component", "kgo").Logger()}),
		kgo.WithHooks(requestFailureLog{ctx: c.runCtx, log: c.log}),
	}
	if c.cfg.Protocol == ProtocolConsumer {
		opts = append(opts, kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer())
	} else {
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	}
	if c.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(c.cfg.InstanceID))
	}
	return append(opts, c.extraOpts...)
}

// deadLetterTimeout bounds one dead-letter publish attempt; a failed one is
// retried with the consumer's backoff.
const deadLetterTimeout = 30 * time.Second

// deadLetterOpts are the options of the dead-letter producer: kgo's
// defaults (acks=all, idempotent), keyed like the Java client, without
// lingering.
func (c *Consumer) deadLetterOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.DefaultProduceTopic(c.cfg.DLQTopic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(deadLetterTimeout),
		kgo.WithLogger(kgoLogger{log: c.log.With().Str("component", "kgo-dlq").Logger()}),
	}
}

// poll hands what the client fetches to the partitions until ctx ends or
// the group fails for good.
func (c *Consumer) poll(ctx context.Context) {
	for {
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			c.cl.AllowRebalance()
			return
		}
		fs.EachError(func(topic string, partition int32, err error) { c.pollError(topic, partition, err) })
		fs.EachPartition(c.deliver)
		c.cl.AllowRebalance()
	}
}

// pollError ends Run on an error that retrying cannot fix and logs the
// others, which the client retries.
func (c *Consumer) pollError(topic string, partition int32, err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return
	}
	err = c.conn.Explain("", err)
	switch {
	case kafkasec.Fatal(err):
		c.fail(err)
	case errors.Is(err, kerr.InvalidSessionTimeout):
		// Retrying cannot help: it is this process's configuration.
		c.fail(fmt.Errorf("the broker refuses the consumer session timeout %s (heartbeat interval %s): it must lie "+
			"within the broker's group.min.session.timeout.ms and group.max.session.timeout.ms: %w",
			c.cfg.SessionTimeout, c.cfg.HeartbeatInterval, err))
	case topic == "":
		c.log.Warn().Err(err).Msg("consumer group error; the client retries")
	default:
		c.log.Warn().Err(err).Str("fetch_topic", topic).Int32(logging.FieldPartition, partition).
			Msg("fetch failed; the client retries")
	}
}

// deliver hands the records fetched for one partition to its goroutine,
// and pauses fetching it when a full batch is already waiting there.
func (c *Consumer) deliver(fp kgo.FetchTopicPartition) {
	if fp.Topic != c.cfg.Topic || len(fp.Records) == 0 {
		return
	}
	c.mu.Lock()
	p := c.parts[fp.Partition]
	c.mu.Unlock()
	if p == nil {
		// Cannot happen: rebalances are blocked between a poll and its
		// hand-over. The records are fetched again by the next owner.
		c.log.Warn().Int32(logging.FieldPartition, fp.Partition).Msg("records of a partition not assigned; dropped")
		return
	}
	p.deliver(fp.FetchPartition)
}

// onAssigned starts a goroutine for each partition newly assigned.
func (c *Consumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	ids := assigned[c.cfg.Topic]
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	for _, id := range ids {
		if c.parts[id] != nil {
			continue
		}
		// A partition paused by a former assignment must fetch again.
		c.cl.ResumeFetchPartitions(map[string][]int32{c.cfg.Topic: {id}})
		p := c.newPartition(id)
		c.parts[id] = p
		go p.run()
	}
	c.log.Info().Ints32("partitions", sorted(ids)).Ints32("now_assigned", sorted(c.assignedLocked())).Msg("partitions assigned")
}

// onRevoked lets each revoked partition finish and commit its batch in
// flight (within DrainTimeout) and stop, before the partition moves on.
func (c *Consumer) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if ids := revoked[c.cfg.Topic]; len(ids) > 0 {
		c.revoke(ids, true, time.Now().Add(c.cfg.DrainTimeout))
	}
}

// onLost stops each lost partition at once, without committing: another
// member may own it already.
func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if ids := lost[c.cfg.Topic]; len(ids) > 0 {
		c.revoke(ids, false, time.Now())
	}
}

// revoke stops the partitions ids and waits for them. drain lets each finish
// and commit its batch in flight until deadline, one for them all, and
// waits at most drainGrace beyond it; otherwise they stop at once,
// uncommitted.
//
// A partition stays in c.parts until it finished: while Run shuts down the
// client is still a group member, and a rebalance that revokes or loses the
// partition meanwhile must find it, wait for it and end its ownership
// before the partition moves to another member, whose progress a late
// commit of this one would overwrite.
func (c *Consumer) revoke(ids []int32, drain bool, deadline time.Time) {
	c.mu.Lock()
	var stopping []*partition
	for _, id := range ids {
		if p := c.parts[id]; p != nil {
			stopping = append(stopping, p)
		}
	}
	c.mu.Unlock()
	if len(stopping) == 0 {
		return
	}
	for _, p := range stopping {
		p.stopTaking(drain, deadline)
	}
	for _, p := range stopping {
		p.wait()
	}
	c.mu.Lock()
	for _, p := range stopping {
		if c.parts[p.id] == p {
			delete(c.parts, p.id)
		}
	}
	c.mu.Unlock()
	how := "partitions revoked"
	if !drain {
		how = "partitions lost; stopped without committing"
	}
	c.log.Info().Ints32("partitions", sorted(ids)).Msg(how)
}

// assigned returns the partitions assigned now, and those still stopping.
func (c *Consumer) assigned() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.assignedLocked()
}

func (c *Consumer) assignedLocked() []int32 {
	ids := make([]int32, 0, len(c.parts))
	for id := range c.parts {
		ids = append(ids, id)
	}
	return ids
}

func sorted(ids []int32) []int32 {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// backoff is the pause after the n-th consecutive failure: MinBackoff
// doubled n-1 times, capped at MaxBackoff, with the upper half jittered so
// that members retrying together spread out.
func (c *Consumer) backoff(n int) time.Duration {
	d := c.cfg.MaxBackoff
	if n < 32 {
		if x := c.cfg.MinBackoff << (n - 1); x > 0 && x < d {
			d = x
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
