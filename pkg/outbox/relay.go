// Package outbox is the transactional-outbox relay: it publishes the rows of
// an outbox table to a Kafka topic, one Kafka transaction per batch, and
// deletes them once that transaction committed.
//
// Guarantees, and why they hold:
//   - Nothing is lost: each batch is one Kafka transaction, and its rows are
//     deleted only after the transaction committed (every record written to
//     every in-sync replica, acks=all). A crash in between publishes the rows
//     again: delivery is at least once, and consumers deduplicate on event
//     id and version.
//   - Nothing half-done is visible: a batch whose produce failed is aborted
//     and retried; read_committed consumers never see an aborted record.
//   - No late commit is skipped: the relay keeps no id cursor. It always
//     reads the oldest rows still present, so a transaction that took its id
//     early and committed late is published when it commits, and a rolled
//     back one never existed.
//   - Per-aggregate order: the rows of one aggregate commit in version order
//     (the writer holds the aggregate's row lock) and so get increasing ids;
//     the relay publishes in id order, keyed by aggregate id (one partition,
//     murmur2 like the Java client), and finishes a batch before it reads the
//     next. Across leaders it holds on the topic itself (see the next point):
//     all that an old leader committed precedes all that the next one
//     publishes, so no version first appears after a newer one; the only
//     repeats are exact redeliveries (same event id) of a batch committed
//     but not yet deleted when its leader died.
//   - Live before bulk: when the table has a lane column (0 live, 1 bulk,
//     as a backfill writes), each round reads the oldest live rows and fills
//     only the rest of the batch with the oldest bulk rows, so a live event
//     is never stuck behind a bulk backlog. Order holds within each lane; a
//     live event may overtake an older bulk event of the same aggregate,
//     which the consumer's version guard then skips as stale.
//   - One publisher, fenced at the broker: replicas elect a leader with a
//     session-level advisory lock on a dedicated connection; losing that
//     connection is losing the leadership. A leadership term starts with a
//     new transactional producer whose id is fixed per outbox
//     (Config.TransactionalID), initialised before the term reads a row: the
//     broker then aborts an old leader's open transaction and refuses its
//     commit, so a relay that lost the lock without knowing it yet (a pause,
//     a cut connection) cannot commit a batch after the new leader started.
//     A fenced producer, or a commit or abort that failed, ends the term:
//     the producer is closed, the session dropped (the lock with it), and
//     the relay stands for the lead again. The transaction costs each batch
//     its EndTxn round trip and the broker its markers: little against a
//     full batch, about a millisecond and a few of broker CPU for a batch
//     of one (BenchmarkRelayPublish, BenchmarkRelayLatency compare it with
//     an idempotent producer).
//   - Low latency: the leader LISTENs on the table's NOTIFY channel and polls
//     only as a fallback.
//
// An event that cannot be encoded (it breaks the envelope contract), or is
// larger than Config.MaxMessageBytes (the broker would refuse it on every
// attempt), is not deleted and does not stop the relay: it and every later event of its
// aggregate are held back in the table, logged at error level and looked at
// again after MaxBackoff, while other aggregates flow. Fix or delete the row
// by hand to release the aggregate.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
)

// Relay publishes one outbox table to one topic. Build it with New and call
// Run once; run one per replica, and the replicas elect one leader.
type Relay struct {
	cfg   Config
	table string // quoted for SQL
	pool  *pgxpool.Pool
	kafka *kafkasec.Conn
	log   zerolog.Logger
	stats counters
	held  held

	batchSize, publishTime prometheus.Histogram
	scrapeErrors           atomic.Uint64

	// afterPublish, when set (tests only), runs after a batch was published
	// and before it is deleted; an error from it ends Run with that error,
	// as a crash at that point would.
	afterPublish func() error
	// beforeCommit, when set (tests only), runs after a batch was produced
	// and before its transaction is committed; an error from it fails the
	// produce (the transaction is aborted).
	beforeCommit func() error
	// idempotentOnly (benchmarks only) publishes without transactions, to
	// measure what they cost.
	idempotentOnly bool
	// extraOpts (tests only) are added to the producers' options.
	extraOpts []kgo.Opt

	// failing is the current streak of failed publishes of this leader (nil
	// when the last publish succeeded): Ready reports it, and drain ends
	// the term once it is StepDownAfter old.
	failing atomic.Pointer[failStreak]
}

// failStreak is a run of failed publishes.
type failStreak struct {
	since time.Time
	err   error
}

// Stats is a snapshot of a relay's counters since it was built.
type Stats struct {
	// Leader says whether this relay holds the lock and publishes.
	Leader bool
	// Published counts events acknowledged by the broker (with duplicates
	// after a retry or a failover).
	Published uint64
	// Batches counts batches published and deleted.
	Batches uint64
	// Errors counts failures: database, Kafka and undecodable events.
	Errors uint64
	// Held counts the times an event could not be published (not encodable,
	// too large) and its aggregate was held back.
	Held uint64
	// TermsEnded counts leadership terms this relay gave up because its
	// producer was fenced (a newer leader exists) or a transaction could
	// not be committed or aborted.
	TermsEnded uint64
}

type counters struct {
	leader                                       atomic.Bool
	published, batches, errors, poison, termEnds atomic.Uint64
}

// New validates cfg (after filling its defaults) and builds a relay that
// reads through pool's configuration and publishes through conn.
func New(cfg Config, pool *pgxpool.Pool, conn *kafkasec.Conn, log zerolog.Logger) (*Relay, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, errors.New("outbox relay: database pool is required")
	}
	if conn == nil {
		return nil, errors.New("outbox relay: kafka connection is required")
	}
	table, _ := tableIdent(cfg.Table) // validated above
	batchSize, publishTime := newHistograms()
	return &Relay{
		batchSize:   batchSize,
		publishTime: publishTime,
		cfg:         cfg,
		table:       table,
		pool:        pool,
		kafka:       conn,
		log: log.With().Str("component", "outbox-relay").Str("table", cfg.Table).
			Str("topic", cfg.Topic).Logger(),
		held: held{retry: cfg.MaxBackoff},
	}, nil
}

// Stats returns the current counters. Safe to call while Run runs.
func (r *Relay) Stats() Stats {
	return Stats{
		Leader:     r.stats.leader.Load(),
		Published:  r.stats.published.Load(),
		Batches:    r.stats.batches.Load(),
		Errors:     r.stats.errors.Load(),
		Held:       r.stats.poison.Load(),
		TermsEnded: r.stats.termEnds.Load(),
	}
}

// Run waits for Kafka (an unreachable broker is retried for the
// connection's StartupTimeout; wrong credentials, a refused authorization
// or a missing topic end Run at once), then publishes for as long as ctx
// lives: as the leader, or as a standby waiting for the lock. Database and
// Kafka failures are logged and retried with backoff; a refused
// authentication or authorization ends Run with that error. When ctx is
// cancelled the batch in flight is published and deleted (each step
// bounded by WriteTimeout), everything is closed and Run returns nil.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.kafka.WaitReady(ctx, r.log, r.cfg.Topic); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("outbox relay: %w", err)
	}
	if err := r.checkTopicLimit(ctx); err != nil {
		return fmt.Errorf("outbox relay: %w", err)
	}
	l := &loop{r: r, bo: backoff{min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff}}
	defer l.close()
	r.log.Info().Int("batch_size", r.cfg.BatchSize).Dur("poll_interval", r.cfg.PollInterval).
		Msg("outbox relay starting")
	for ctx.Err() == nil {
		if err := l.step(ctx); err != nil {
			return err
		}
	}
	r.log.Info().Msg("outbox relay stopped")
	return nil
}

// loop is the state of one Run: the dedicated session (nil when
// disconnected), the producer of the current term (nil unless leading) and
// the backoff of the current failure streak.
type loop struct {
	r       *Relay
	s       *session
	p       *producer
	bo      backoff
	standby bool
}

// step connects, takes the lock, or drains while leader; it returns an error
// only when Run must end with it.
func (l *loop) step(ctx context.Context) error {
	r := l.r
	if l.s == nil {
		s, err := r.connect(ctx)
		if err != nil {
			l.fail(ctx, "connect to the database", err)
			return nil
		}
		l.s = s
	}
	if !l.s.leader {
		ok, err := l.s.lead(ctx, r.cfg.LockKey, r.cfg.Channel)
		if err != nil {
			l.drop(ctx, "take the outbox lock", err)
			return nil
		}
		if !ok {
			r.failing.Store(nil) // another relay leads: nothing is expected of this one
			if !l.standby {
				r.log.Info().Int64("lock_key", r.cfg.LockKey).Msg("standby: another relay holds the lock")
				l.standby = true
			}
			sleep(ctx, r.cfg.PollInterval)
			return nil
		}
		l.standby = false
		// Start busy (writers do not notify); idle detection turns it on.
		if err := l.s.setListening(ctx, r.cfg.Channel, false); err != nil {
			l.drop(ctx, "take the outbox lock", err)
			return nil
		}
		// The term's producer, before anything is read (see round).
		txnID := l.s.txnID
		if r.idempotentOnly {
			txnID = ""
		}
		p, err := r.startProducer(ctx, txnID)
		if err != nil {
			if c := r.classify(err); isFatal(c) {
				return fmt.Errorf("outbox relay: %w", c)
			}
			l.closeSession()
			if failed, stepDown := r.noteFailure(err); stepDown {
				r.log.Error().Err(err).Dur("failing_for", failed).Dur("stands_again_in", r.yieldTime()).
					Msg("cannot start a leadership term (lock released): waiting for a standby that reaches Kafka to take over")
				sleep(ctx, r.yieldTime())
			}
			l.fail(ctx, "start the leadership term (lock released)", err)
			return nil
		}
		l.p = p
		r.stats.leader.Store(true)
		r.log.Info().Int64("lock_key", r.cfg.LockKey).Str("transactional_id", txnID).Msg("leader: publishing the outbox")
	}
	err := r.drain(ctx, l.s, l.p, &l.bo)
	var fatal *fatalError
	var term *termError
	switch {
	case errors.As(err, &fatal):
		return fmt.Errorf("outbox relay: %w", fatal.err)
	case errors.As(err, &term) && term.stepDown:
		r.stats.termEnds.Add(1)
		wait := r.yieldTime()
		r.log.Error().Err(err).Dur("stands_again_in", wait).
			Msg("stepping down: producer closed, lock released, so a standby that reaches Kafka can take over")
		l.closeSession()
		sleep(ctx, wait)
	case errors.As(err, &term):
		r.stats.termEnds.Add(1)
		r.log.Error().Err(err).Msg("leadership term ended: producer closed, lock released; standing for the lead again")
		l.closeSession()
		r.noteFailure(err)
		l.fail(ctx, "", nil)
	case err != nil && ctx.Err() == nil:
		l.drop(ctx, "outbox database work", err)
	}
	return nil
}

// isFatal reports whether err ends Run.
func isFatal(err error) bool {
	var fatal *fatalError
	return errors.As(err, &fatal)
}

// fail counts a failure, logs it once (unless err is nil: logged by the
// caller) and waits out the backoff. A failure caused by the shutdown is
// not one.
func (l *loop) fail(ctx context.Context, op string, err error) {
	if ctx.Err() != nil {
		return
	}
	l.r.stats.errors.Add(1)
	d := l.bo.next()
	if err != nil {
		l.r.log.Error().Err(err).Dur("retry_in", d).Msg(op + " failed")
	}
	sleep(ctx, d)
}

// drop ends the term after a database failure: the lock goes with the
// session.
func (l *loop) drop(ctx context.Context, op string, err error) {
	if l.s.leader {
		l.r.log.Warn().Msg("leadership lost with the database connection: publishing stops until it is taken again")
	}
	l.closeSession()
	l.fail(ctx, op, err)
}

// closeSession ends the term, if any, and the session: the producer is
// closed first, so nothing is produced without the lock.
func (l *loop) closeSession() {
	if l.p != nil {
		l.p.close()
		l.p = nil
	}
	if l.s != nil {
		l.s.close(l.r.cfg.WriteTimeout)
		l.s = nil
	}
	l.r.stats.leader.Store(false)
}

// yieldTime is how long a relay that stepped down waits before it stands
// for the lead again: three of the standbys' lock polls, so one of them
// takes the lock first if there is one.
func (r *Relay) yieldTime() time.Duration { return 3 * r.cfg.PollInterval }

func (l *loop) close() { l.closeSession() }

// fatalError ends Run.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// backoff is exponential with jitter: each wait lies in [d/2, d] where d
// doubles from min up to max.
type backoff struct{ min, max, cur time.Duration }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur/2 + rand.N(b.cur/2+1) //nolint:gosec // jitter needs no crypto
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Ready reports whether the relay does its job, for /readyz: nil for a
// standby and for a leader whose last publish succeeded, an error naming
// how long and why for a leader that cannot publish (it steps down after
// StepDownAfter).
func (r *Relay) Ready(context.Context) error {
	f := r.failing.Load()
	if f == nil {
		return nil
	}
	return fmt.Errorf("leading but cannot publish for %s (steps down after %s): %w",
		time.Since(f.since).Round(time.Millisecond), r.cfg.StepDownAfter, f.err)
}

// noteFailure records a failure to publish (or to start a term) in the
// current streak and returns how long the streak has lasted, and whether
// the leader must now step down (StepDownAfter).
func (r *Relay) noteFailure(err error) (time.Duration, bool) {
	since := time.Now()
	if f := r.failing.Load(); f != nil {
		since = f.since
	}
	r.failing.Store(&failStreak{since: since, err: err})
	failed := time.Since(since)
	return failed, failed >= r.cfg.StepDownAfter
}

// checkTopicLimit refuses a MaxMessageBytes whose largest record batch
// (one event of that size plus the batch's framing) the topic would refuse:
// such an event would be retried forever instead of held back. The
// producer's batches are capped at the same size, so no batch of several
// events exceeds the topic's limit either. A principal that may not read
// the topic's configuration only gets a warning.
func (r *Relay) checkTopicLimit(ctx context.Context) error {
	adm, err := r.kafka.Admin()
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	defer cancel()
	rcs, err := adm.DescribeTopicConfigs(dctx, r.cfg.Topic)
	var value string
	if err == nil {
		var rc kadm.ResourceConfig
		if rc, err = rcs.On(r.cfg.Topic, nil); err == nil {
			err = rc.Err
			for _, c := range rc.Configs {
				if c.Key == "max.message.bytes" {
					value = c.MaybeValue()
				}
			}
		}
	}
	limit, perr := strconv.Atoi(value)
	switch {
	case ctx.Err() != nil:
		return nil
	case err != nil || perr != nil:
		r.log.Warn().Err(err).Str("max_message_bytes", value).
			Msg("cannot read the topic's max.message.bytes: RELAY_MAX_MESSAGE_BYTES is not checked against it")
		return nil
	case r.cfg.MaxMessageBytes+batchOverhead > limit:
		return fmt.Errorf("RELAY_MAX_MESSAGE_BYTES is %d, but topic %s takes record batches of at most %d bytes "+
			"(max.message.bytes) and an event needs up to %d bytes more of framing: lower RELAY_MAX_MESSAGE_BYTES to %d "+
			"or raise the topic's max.message.bytes", r.cfg.MaxMessageBytes, r.cfg.Topic, limit, batchOverhead, limit-batchOverhead)
	}
	return nil
}
