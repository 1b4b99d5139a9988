// Package backfill publishes SCI's pre-existing send-invoice histories: it
// scans send_invoice_history in id order and, batch by batch, creates the
// aggregate row of every history that has none, so the aggregate trigger
// enqueues its event through the same outbox, relay and receiver as a live
// change.
//
// Why it is safe to run next to live traffic, to interrupt and to re-run:
//   - A batch and its checkpoint commit in one transaction: after a crash
//     or Ctrl-C the next run resumes after the last committed batch, with
//     no gap and no batch done twice.
//   - Rows are created with ON CONFLICT DO NOTHING: a history the live path
//     already wrote keeps its (newer) state and version, and a second run
//     finds nothing to create, so it enqueues nothing.
//   - Events go to the outbox's bulk lane (SET LOCAL
//     invoicesync.outbox_lane = 'bulk'); the relay drains the live lane
//     first, so live changes are not stuck behind the backlog.
//   - A history whose rows cannot form a valid event (edited outside the
//     API: a 300-character file name, no forms, a date before 1990) is not
//     published, since the receiver would dead-letter it for good: it is
//     skipped, logged with its id and the field at fault, and counted in
//     Result.Rejected. The rules are the contract's (history_event_problem
//     in SQL, the twin of pkg/contract); an ERROR history is a deletion,
//     which needs only its id, and is always published.
package backfill

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/db"
)

// Defaults of Config.
const (
	DefaultName      = "send_invoice_history"
	DefaultBatchSize = 1000
)

// Config tells a Backfill what to do.
type Config struct {
	// Name is the checkpoint's name. Default "send_invoice_history".
	Name string
	// BatchSize is how many histories one transaction handles. Default 1000.
	// With a Rate below it, batches are Rate histories, so the pace stays
	// even.
	BatchSize int
	// Rate caps the histories handled per second; 0 means no cap. Default 0.
	Rate int
	// DryRun counts what a run would enqueue and writes nothing.
	DryRun bool
	// Restart scans from the first history again with the counts reset.
	// Histories that already have an aggregate row are still left alone.
	Restart bool
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
}

// Validate reports the first setting that is wrong, by name.
func (c *Config) Validate() error {
	switch {
	case c.BatchSize <= 0:
		return fmt.Errorf("batch size: must be positive, got %d", c.BatchSize)
	case c.Rate < 0:
		return fmt.Errorf("rate: must be 0 (no cap) or positive, got %d", c.Rate)
	}
	return nil
}

// batchSize is the size of one batch, given the rate cap.
func (c *Config) batchSize() int {
	if c.Rate > 0 && c.Rate < c.BatchSize {
		return c.Rate
	}
	return c.BatchSize
}

// Progress is told the estimated total, then each batch's histories.
type Progress interface {
	Start(total int64)
	Add(n int64)
	Finish()
}

// Result is what a run did (or, for a dry run, would do).
type Result struct {
	// Start says how the run began; FromID is the id it scanned after.
	Start  Start
	FromID int64
	// LastID is the checkpoint's last id when the run ended.
	LastID int64
	// Scanned and Enqueued count this run's histories looked at and given
	// an aggregate row (an event). For a dry run, what it would do.
	Scanned, Enqueued int64
	// Rejected counts this run's histories that cannot form a valid event:
	// skipped, not published (for a dry run, those it would skip).
	Rejected int64
	// Rejections lists the first MaxRejectionsListed of them, in id order
	// (empty for a dry run); each is also logged.
	Rejections []Rejection
	// Batches counts the committed batches.
	Batches int
	// Finished says nothing is left; Interrupted that ctx ended first.
	Finished, Interrupted bool
	// Checkpoint is the stored state at the end (nil for a dry run).
	Checkpoint *Checkpoint
}

// MaxRejectionsListed caps Result.Rejections; Result.Rejected counts all.
const MaxRejectionsListed = 1000

// Rejection is a history the backfill did not publish because its rows
// cannot form a valid event.
type Rejection struct {
	// HistoryID is the history's id.
	HistoryID int64
	// Field is the first field at fault, e.g. "forms[0].fileName", and
	// Problem what is wrong with it, as the contract words it.
	Field, Problem string
}

// Backfill runs backfills against the sender database.
type Backfill struct {
	cfg      Config
	pool     *pgxpool.Pool
	log      zerolog.Logger
	progress Progress
	now      func() time.Time
}

// New validates cfg (after filling its defaults) and returns a Backfill.
func New(cfg Config, pool *pgxpool.Pool, p Progress, log zerolog.Logger) (*Backfill, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	return &Backfill{cfg: cfg, pool: pool, log: log, progress: p, now: time.Now}, nil
}

// Run backfills until nothing is left or ctx ends; on cancellation the
// batch in flight is committed first and Result.Interrupted is set.
func (b *Backfill) Run(ctx context.Context) (Result, error) {
	cp, err := loadCheckpoint(ctx, b.pool, b.cfg.Name, false)
	if err != nil {
		return Result{}, fmt.Errorf("backfill: %w", err)
	}
	start, from := decide(cp, b.cfg.Restart)
	if b.cfg.DryRun {
		return b.dryRun(ctx, start, from)
	}
	if cp, err = openCheckpoint(ctx, b.pool, b.cfg.Name, start); err != nil {
		return Result{}, fmt.Errorf("backfill: %w", err)
	}
	res := Result{Start: start, FromID: from, LastID: cp.LastID}
	total, err := b.remaining(ctx, b.pool, from)
	if err != nil {
		return res, fmt.Errorf("backfill: %w", err)
	}
	b.log.Info().Str("start", start.String()).Int64("after_id", from).Int64("histories_left", total).
		Int("batch_size", b.cfg.batchSize()).Int("rate", b.cfg.Rate).Msg("backfill starting")
	err = b.loop(ctx, total, &res)
	if res.Rejected > 0 {
		b.log.Warn().Int64("rejected", res.Rejected).
			Msg("backfill: histories skipped because their rows cannot form a valid event; each is logged above")
	}
	if cp, cerr := loadCheckpoint(context.WithoutCancel(ctx), b.pool, b.cfg.Name, false); cerr == nil {
		res.Checkpoint = cp
	}
	return res, err
}

// loop runs batches, paced, until nothing is left or ctx ends.
func (b *Backfill) loop(ctx context.Context, total int64, res *Result) error {
	b.progress.Start(total)
	defer b.progress.Finish()
	began := b.now()
	for {
		if ctx.Err() != nil {
			res.Interrupted = true
			return nil
		}
		br, err := b.batch(context.WithoutCancel(ctx))
		if err != nil {
			return fmt.Errorf("backfill batch after id %d: %w", res.LastID, err)
		}
		if br.done {
			res.Finished = true
			return nil
		}
		res.LastID = br.lastID
		res.Scanned += br.scanned
		res.Enqueued += br.enqueued
		b.reject(res, br.rejected)
		res.Batches++
		b.progress.Add(br.scanned)
		if d := pace(b.cfg.Rate, began, res.Scanned, b.now()); d > 0 {
			sleep(ctx, d)
		}
	}
}

// batchResult is what one batch did.
type batchResult struct {
	lastID, scanned, enqueued int64
	rejected                  []Rejection
	done                      bool
}

// reject logs and counts the histories a batch skipped.
func (b *Backfill) reject(res *Result, rejected []Rejection) {
	for _, r := range rejected {
		b.log.Warn().Int64("history_id", r.HistoryID).Str("field", r.Field).Str("problem", r.Problem).
			Msg("backfill: history skipped, its rows cannot form a valid event (correct them, or set ERROR)")
		if len(res.Rejections) < MaxRejectionsListed {
			res.Rejections = append(res.Rejections, r)
		}
	}
	res.Rejected += int64(len(rejected))
}

// batch handles the next histories after the checkpoint in one
// transaction, checkpoint included. The checkpoint row lock makes a
// concurrent run of the same backfill wait instead of doing the batch too.
func (b *Backfill) batch(ctx context.Context) (batchResult, error) {
	var r batchResult
	err := db.InTx(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL invoicesync.outbox_lane = 'bulk'"); err != nil {
			return fmt.Errorf("select the bulk lane: %w", err)
		}
		cp, err := loadCheckpoint(ctx, tx, b.cfg.Name, true)
		if err != nil {
			return err
		}
		if cp == nil {
			return fmt.Errorf("checkpoint %q is gone (deleted by hand?)", b.cfg.Name)
		}
		err = tx.QueryRow(ctx, `SELECT count(*), coalesce(max(id), 0)
		        FROM (SELECT id FROM send_invoice_history WHERE id > $1 ORDER BY id LIMIT $2) s`,
			cp.LastID, b.cfg.batchSize()).Scan(&r.scanned, &r.lastID)
		if err != nil {
			return fmt.Errorf("scan histories after id %d: %w", cp.LastID, err)
		}
		if r.scanned == 0 {
			r.done = true
			return finish(ctx, tx, b.cfg.Name)
		}
		var ids []int64
		var problems []string
		err = tx.QueryRow(ctx, "SELECT * FROM backfill_history_aggregates_checked($1, $2)", cp.LastID+1, r.lastID).
			Scan(&r.enqueued, &ids, &problems)
		if err != nil {
			return fmt.Errorf("create aggregates of ids %d..%d: %w", cp.LastID+1, r.lastID, err)
		}
		r.rejected = rejections(ids, problems)
		return advance(ctx, tx, b.cfg.Name, r.lastID, r.scanned, r.enqueued)
	})
	return r, err
}

// dryRun counts, in a read-only transaction, the histories a run would
// scan and those it would enqueue.
func (b *Backfill) dryRun(ctx context.Context, start Start, from int64) (Result, error) {
	res := Result{Start: start, FromID: from, LastID: from, Finished: true}
	err := db.InTx(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET TRANSACTION READ ONLY"); err != nil {
			return fmt.Errorf("read-only transaction: %w", err)
		}
		err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT EXISTS
		            (SELECT 1 FROM aggregate_history_form a WHERE a.history_id = h.id)), coalesce(max(h.id), $1)
		       FROM send_invoice_history h WHERE h.id > $1`, from).Scan(&res.Scanned, &res.Enqueued, &res.LastID)
		if err != nil {
			return fmt.Errorf("count histories after id %d: %w", from, err)
		}
		err = tx.QueryRow(ctx, `SELECT count(*) FROM history_problems($1 + 1, $2) p
		        WHERE NOT EXISTS (SELECT 1 FROM aggregate_history_form a WHERE a.history_id = p.history_id)`,
			from, res.LastID).Scan(&res.Rejected)
		if err != nil {
			return fmt.Errorf("check histories after id %d: %w", from, err)
		}
		res.Enqueued -= res.Rejected
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("backfill dry run: %w", err)
	}
	return res, nil
}

// rejections pairs the ids and '<field>: <problem>' messages the database
// returned for the histories it skipped.
func rejections(ids []int64, problems []string) []Rejection {
	out := make([]Rejection, len(ids))
	for i, id := range ids {
		field, problem, _ := strings.Cut(problems[i], ": ")
		out[i] = Rejection{HistoryID: id, Field: field, Problem: problem}
	}
	return out
}

// remaining counts the histories after id from: the progress total.
func (b *Backfill) remaining(ctx context.Context, q db.Querier, from int64) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, "SELECT count(*) FROM send_invoice_history WHERE id > $1", from).Scan(&n); err != nil {
		return 0, fmt.Errorf("count histories after id %d: %w", from, err)
	}
	return n, nil
}

// pace returns how long to wait so that done histories since began stay
// within rate per second; 0 without a rate or when behind.
func pace(rate int, began time.Time, done int64, now time.Time) time.Duration {
	if rate <= 0 {
		return 0
	}
	due := began.Add(time.Duration(float64(done) / float64(rate) * float64(time.Second)))
	return max(due.Sub(now), 0)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
