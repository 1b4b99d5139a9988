// Package consume runs a Kafka consumer-group member that hands batches of
// messages to a BatchHandler and commits their offsets only once the
// handler succeeded or the message at fault was dead-lettered, so no message
// is ever skipped:
//
//   - Every partition assigned to the member has its own goroutines and
//     fetch connection and progresses on its own: a partition waiting for
//     a failing dependency holds back only itself. A fetch gives the
//     broker MaxWait to wait for data and the response FetchTimeout more.
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
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/logging"
)

// BatchHandler processes consecutive messages of one partition, in offset
// order (of several partitions, each in offset order, with
// Config.MergePartitions). It returns nil only once every message's effects are durable (its
// database transaction committed), and applies all of them or none: on an
// error the consumer hands the same messages over again (transient) or one
// at a time (permanent, see Permanent). The context carries a logger
// (logging.Ctx) with the topic, partition and offsets; it outlives a
// shutdown request by Config.DrainTimeout.
type BatchHandler interface {
	HandleBatch(ctx context.Context, msgs []kafka.Message) error
}

// BatchHandlerFunc adapts a function to BatchHandler.
type BatchHandlerFunc func(ctx context.Context, msgs []kafka.Message) error

// HandleBatch calls f.
func (f BatchHandlerFunc) HandleBatch(ctx context.Context, msgs []kafka.Message) error {
	return f(ctx, msgs)
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
	dlq     *kafka.Writer
	stats   counters
	metrics *consumerMetrics // nil: no metrics
}

// New validates cfg (after filling its defaults) and returns a consumer that
// reads cfg.Topic through conn, hands the messages to h and dead-letters
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
	return &Consumer{cfg: cfg, conn: conn, h: h, metrics: m,
		log: log.With().Str(logging.FieldTopic, cfg.Topic).Str("group_id", cfg.GroupID).Logger(),
		dlq: &kafka.Writer{
			Addr:         kafka.TCP(conn.Brokers()...),
			Topic:        cfg.DLQTopic,
			Balancer:     &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: time.Millisecond,
			MaxAttempts:  1, // the consumer retries, with its own backoff and logs
			Transport:    conn.Transport(),
		}}, nil
}

// Stats returns the counters so far; safe while Run runs.
func (c *Consumer) Stats() Stats {
	s := &c.stats
	return Stats{Batches: s.batches.Load(), Messages: s.messages.Load(), DeadLettered: s.deadLettered.Load(),
		Retries: s.retries.Load(), DeadLetterRetries: s.dlqRetries.Load(), CommitFailures: s.commitFailures.Load()}
}

// Run checks the connection and both topics (failing fast on wrong
// credentials or a missing topic), joins the group and consumes until ctx
// is cancelled. On cancellation every partition finishes its batch in
// flight within Config.DrainTimeout and commits it, the member leaves the
// group, and Run returns nil. It returns an error when the brokers cannot
// be reached, reject the credentials or lack a topic. Call it once.
func (c *Consumer) Run(ctx context.Context) error {
	defer func() {
		if err := c.dlq.Close(); err != nil {
			c.log.Warn().Err(err).Msg("close dead-letter writer")
		}
	}()
	if err := c.preflight(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consume %s: %w", c.cfg.Topic, err)
	}
	cg, err := kafka.NewConsumerGroup(c.groupConfig())
	if err != nil {
		return fmt.Errorf("consume %s: %w", c.cfg.Topic, err)
	}
	runCtx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	c.log.Info().Str("dlq_topic", c.cfg.DLQTopic).Int("batch_size", c.cfg.BatchSize).Msg("consuming")
	c.followGenerations(runCtx, cg, fail)
	// Closing the group ends the current generation: every partition
	// finishes its batch (within DrainTimeout), commits it and stops; only
	// then does the member leave the group.
	_ = cg.Close()
	if ctx.Err() == nil {
		if cause := context.Cause(runCtx); cause != nil {
			return fmt.Errorf("consume %s: %w", c.cfg.Topic, cause)
		}
	}
	c.log.Info().Msg("stopped consuming")
	return nil
}

func (c *Consumer) preflight(ctx context.Context) error {
	if err := c.conn.Check(ctx); err != nil {
		return err
	}
	return c.conn.CheckTopics(ctx, c.cfg.Topic, c.cfg.DLQTopic)
}

// followGenerations runs each generation of the group in turn until ctx
// ends or a partition reports a fatal error through fail.
func (c *Consumer) followGenerations(ctx context.Context, cg *kafka.ConsumerGroup, fail context.CancelCauseFunc) {
	for {
		gen, err := cg.Next(ctx)
		switch {
		case err == nil:
			c.startGeneration(ctx, gen, fail)
		case ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed):
			return
		default:
			err = c.conn.Explain("", err)
			if errors.Is(err, kafkasec.ErrAuthentication) {
				fail(err)
				return
			}
			if errors.Is(err, kafka.InvalidSessionTimeout) {
				// Retrying cannot help: it is this process's configuration.
				fail(fmt.Errorf("the broker refuses session timeout %s: it must lie within the broker's "+
					"group.min.session.timeout.ms and group.max.session.timeout.ms: %w", c.cfg.SessionTimeout, err))
				return
			}
			// kafka-go backs off before its next attempt to join.
			c.log.Warn().Err(err).Msg("joining the consumer group failed; trying again")
		}
	}
}

// startGeneration starts one goroutine per partition assigned in gen. They
// stop when the generation ends (a rebalance, or Run closing the group).
func (c *Consumer) startGeneration(ctx context.Context, gen *kafka.Generation, fail context.CancelCauseFunc) {
	assigned := gen.Assignments[c.cfg.Topic]
	ids := make([]int, 0, len(assigned))
	for _, pa := range assigned {
		ids = append(ids, pa.ID)
	}
	c.log.Info().Int32("generation", gen.ID).Ints("partitions", ids).Msg("partitions assigned")
	com := &committer{gen: gen, topic: c.cfg.Topic}
	var m *merger
	if c.cfg.MergePartitions && len(assigned) > 1 {
		m = newMerger(c, com)
		gen.Start(func(genCtx context.Context) { m.run(ctx, genCtx) })
	}
	for _, pa := range assigned {
		gen.Start(func(genCtx context.Context) {
			c.runPartition(ctx, genCtx, com, m, pa, fail)
		})
	}
}

func (c *Consumer) groupConfig() kafka.ConsumerGroupConfig {
	return kafka.ConsumerGroupConfig{
		ID:                    c.cfg.GroupID,
		Brokers:               c.conn.Brokers(),
		Dialer:                c.conn.Dialer(),
		Topics:                []string{c.cfg.Topic},
		HeartbeatInterval:     min(3*time.Second, c.cfg.SessionTimeout/3),
		SessionTimeout:        c.cfg.SessionTimeout,
		RebalanceTimeout:      c.cfg.RebalanceTimeout,
		JoinGroupBackoff:      min(c.cfg.MaxBackoff, 5*time.Second),
		WatchPartitionChanges: true, // added partitions trigger a rebalance
		StartOffset:           kafka.FirstOffset,
		ErrorLogger:           c.kafkaLogger(),
	}
}

func (c *Consumer) kafkaLogger() kafka.Logger {
	return kafka.LoggerFunc(func(msg string, args ...any) {
		c.log.Warn().Str("component", "kafka-go").Msgf(msg, args...)
	})
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
