// Package consume runs a Kafka consumer-group member that hands each message
// to a Handler and commits its offset only after the handler succeeded, so a
// message is never lost: a failure is retried in place (with exponential
// backoff and jitter) until it succeeds or the consumer is stopped, and a
// message that was not committed is delivered again after a restart or a
// rebalance. Delivery is therefore at least once; handlers must be
// idempotent (the receiver's version guard makes applying an event twice a
// no-op).
package consume

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/logging"
)

// Handler processes one message. It returns nil only once the message's
// effects are durable (its database transaction committed): the offset is
// committed right after. The context carries a logger (logging.Ctx) with the
// message's topic, partition, offset, event id and aggregate id.
type Handler interface {
	Handle(ctx context.Context, m kafka.Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m kafka.Message) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m kafka.Message) error { return f(ctx, m) }

// ErrPermanent marks a handler error that retrying cannot fix: the message
// cannot be decoded or breaks the contract. Handlers mark errors with
// Permanent (or wrap ErrPermanent); the consumer tests errors.Is. Such a
// failure is logged at error level with permanent=true; until a dead-letter
// topic exists it is retried like any other, so the partition waits for a
// fix instead of skipping the message.
var ErrPermanent = errors.New("permanent failure")

// Permanent marks err as permanent (errors.Is(err, ErrPermanent) holds)
// without changing its text. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// Consumer is one member of a consumer group reading one topic.
type Consumer struct {
	cfg  Config
	conn *kafkasec.Conn
	h    Handler
	log  zerolog.Logger
}

// New validates cfg (after filling its defaults) and returns a consumer that
// reads cfg.Topic through conn and hands every message to h.
func New(cfg Config, conn *kafkasec.Conn, h Handler, log zerolog.Logger) (*Consumer, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if conn == nil || h == nil {
		return nil, errors.New("consumer: a kafka connection and a handler are required")
	}
	return &Consumer{cfg: cfg, conn: conn, h: h,
		log: log.With().Str(logging.FieldTopic, cfg.Topic).Str("group_id", cfg.GroupID).Logger()}, nil
}

// Run checks the connection (failing fast on wrong credentials), then
// fetches, handles and commits messages until ctx is cancelled. On
// cancellation it lets the message in flight finish within
// Config.DrainTimeout, closes the reader and returns nil. It returns an
// error when the brokers cannot be reached or reject the credentials.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.conn.Check(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consume %s: %w", c.cfg.Topic, err)
	}
	r := kafka.NewReader(c.readerConfig())
	defer func() {
		if err := r.Close(); err != nil {
			c.log.Warn().Err(err).Msg("close kafka reader")
		}
	}()
	// work outlives ctx by at most DrainTimeout, so the message in flight
	// can finish (and be committed) after a shutdown request.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.DrainTimeout, cancelWork) })
	defer stop()

	c.log.Info().Msg("consuming")
	fetchFailures := 0
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			err = c.conn.Explain("", err)
			if errors.Is(err, kafkasec.ErrAuthentication) {
				return fmt.Errorf("consume %s: %w", c.cfg.Topic, err)
			}
			fetchFailures++
			delay := c.backoff(fetchFailures)
			c.log.Warn().Err(err).Dur("retry_in", delay).Msg("fetch failed")
			if !sleep(ctx, delay) {
				return nil
			}
			continue
		}
		fetchFailures = 0
		if !c.process(ctx, work, r, m) {
			return nil
		}
	}
}

// process handles m until it succeeds, then commits it. It returns false
// when the consumer must stop (ctx cancelled); m is then left uncommitted
// unless its handling had already succeeded.
func (c *Consumer) process(ctx, work context.Context, r *kafka.Reader, m kafka.Message) bool {
	log := c.messageLogger(m)
	hctx := logging.WithContext(work, log)
	for attempt := 1; ; attempt++ {
		err := c.h.Handle(hctx, m)
		if err == nil {
			break
		}
		if work.Err() != nil {
			log.Warn().Err(err).Msg("stopped before the message was handled; it will be delivered again")
			return false
		}
		delay := c.backoff(attempt)
		c.logFailure(log, err, attempt, delay)
		if !sleep(ctx, delay) {
			log.Info().Msg("stopped before the message was handled; it will be delivered again")
			return false
		}
	}
	if err := r.CommitMessages(work, m); err != nil {
		// The handler's effects are durable; a missed commit only means the
		// message is delivered again, which handlers tolerate.
		log.Warn().Err(c.conn.Explain("", err)).Msg("commit failed; the message will be delivered again")
	}
	return ctx.Err() == nil
}

// logFailure logs one failed attempt. Permanent failures are where a
// dead-letter topic will take over; for now they are retried too.
func (c *Consumer) logFailure(log zerolog.Logger, err error, attempt int, delay time.Duration) {
	ev := log.Warn()
	if errors.Is(err, ErrPermanent) {
		ev = log.Error().Bool("permanent", true)
	}
	ev.Err(err).Int("attempt", attempt).Dur("retry_in", delay).Msg("handling failed; retrying the same message")
}

func (c *Consumer) messageLogger(m kafka.Message) zerolog.Logger {
	return c.log.With().
		Int(logging.FieldPartition, m.Partition).
		Int64(logging.FieldOffset, m.Offset).
		Str(logging.FieldEventID, header(m, contract.HeaderEventID)).
		Str(logging.FieldAggregateID, header(m, contract.HeaderAggregateID)).
		Logger()
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

func (c *Consumer) readerConfig() kafka.ReaderConfig {
	heartbeat := min(3*time.Second, c.cfg.SessionTimeout/3)
	return kafka.ReaderConfig{
		Brokers:           c.conn.Brokers(),
		GroupID:           c.cfg.GroupID,
		Topic:             c.cfg.Topic,
		Dialer:            c.conn.Dialer(),
		StartOffset:       kafka.FirstOffset,
		CommitInterval:    0, // synchronous commit in CommitMessages
		MinBytes:          c.cfg.MinBytes,
		MaxBytes:          c.cfg.MaxBytes,
		MaxWait:           c.cfg.MaxWait,
		SessionTimeout:    c.cfg.SessionTimeout,
		HeartbeatInterval: heartbeat,
		IsolationLevel:    kafka.ReadCommitted,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.Warn().Str("component", "kafka-go").Msgf(msg, args...)
		}),
	}
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
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
