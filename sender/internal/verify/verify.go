// Package verify checks that SCI-Receiver holds what it should: every
// non-ERROR history of the sender, with the values the receiver's transform
// makes of it, and nothing else. It compares the two databases in chunks of
// history ids by checksums computed in SQL on each side over a canonical
// text form (see canonical.go), and reads rows one by one only in a chunk
// whose checksums differ, so a clean run moves little more than one hash
// per chunk.
//
// A difference may be an event still on its way. So differences are checked
// again after a grace period, and one whose history still has a row in the
// sender's outbox is reported as in flight, not as a difference.
//
// Repair re-enqueues the current state of the histories that differ
// through sync_history_aggregate(id, min_version), with a version above the
// receiver's, so the trigger publishes it and the receiver's version guard
// accepts it, also when the receiver is ahead of a sender restored from a
// backup. A history whose rows cannot form a valid event is reported as
// invalid, with the field at fault, and never re-published: the receiver
// would dead-letter it on every run.
// The receiver is only ever read, in read-only transactions.
package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
)

// Defaults of Config.
const (
	DefaultChunkSize = 10000
	DefaultGrace     = 5 * time.Second
	DefaultTimezone  = "UTC"
)

// ErrNotMigrated says a database lacks the tables verify reads.
var ErrNotMigrated = errors.New("database not migrated")

// Config tells a Verifier how to compare.
type Config struct {
	// ChunkSize is how many sender histories one checksum covers. Default 10000.
	ChunkSize int
	// Grace is how long to wait before checking differences again, so
	// events in flight can land. 0 checks again at once. Default 5s.
	Grace time.Duration
	// Timezone is the receiver's RECEIVER_TIMEZONE, in which issue dates
	// become calendar dates. Default UTC.
	Timezone string
	// Repair re-enqueues the histories found different (missing, differing,
	// or extra while known to the sender).
	Repair bool
}

func (c *Config) setDefaults() {
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.Timezone == "" {
		c.Timezone = DefaultTimezone
	}
}

// Validate reports the first setting that is wrong, by name.
func (c *Config) Validate() error {
	switch {
	case c.ChunkSize <= 0:
		return fmt.Errorf("chunk size: must be positive, got %d", c.ChunkSize)
	case c.Grace < 0:
		return fmt.Errorf("grace: must not be negative, got %s", c.Grace)
	}
	return nil
}

// Progress is told the number of sender histories, then each chunk's.
type Progress interface {
	Start(total int64)
	Add(n int64)
	Finish()
}

// Verifier compares one sender database with one receiver database.
type Verifier struct {
	cfg      Config
	sender   *pgxpool.Pool
	receiver *pgxpool.Pool
	progress Progress
	log      zerolog.Logger
}

// New validates cfg (after filling its defaults) and returns a Verifier.
// receiver should be opened read-only; verify reads it in read-only
// transactions anyway.
func New(cfg Config, sender, receiver *pgxpool.Pool, p Progress, log zerolog.Logger) (*Verifier, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return &Verifier{cfg: cfg, sender: sender, receiver: receiver, progress: p, log: log}, nil
}

// Run compares everything and returns the report; with Repair it also
// re-enqueues what can be repaired. Differences are not an error.
func (v *Verifier) Run(ctx context.Context) (*Report, error) {
	began := time.Now()
	if err := v.checkTimezone(ctx); err != nil {
		return nil, err
	}
	rep := &Report{Timezone: v.cfg.Timezone, Grace: v.cfg.Grace.String()}
	found, err := v.scan(ctx, rep)
	if err != nil {
		return nil, err
	}
	if !found.empty() {
		rep.FirstPass = len(found.ids())
		v.log.Info().Int("histories", rep.FirstPass).Dur("grace", v.cfg.Grace).
			Msg("differences found: checking them again after the grace period")
		sleep(ctx, v.cfg.Grace)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("verify: %w", ctx.Err())
		}
		if found, err = v.recheck(ctx, found.ids()); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	if err := v.classify(ctx, rep, found); err != nil {
		return nil, err
	}
	if v.cfg.Repair && rep.Differences() > 0 {
		if err := v.repair(ctx, rep); err != nil {
			return rep, err
		}
	}
	rep.Elapsed = time.Since(began).Round(time.Millisecond).String()
	return rep, nil
}

// scan compares every chunk, from the first id to past the last.
func (v *Verifier) scan(ctx context.Context, rep *Report) (diff, error) {
	var total int64
	if err := v.sender.QueryRow(ctx, "SELECT count(*) FROM send_invoice_history").Scan(&total); err != nil {
		return diff{}, fmt.Errorf("verify: sender database: count histories: %w", err)
	}
	v.progress.Start(total)
	defer v.progress.Finish()
	var all diff
	for after := int64(0); ; {
		if ctx.Err() != nil {
			return diff{}, fmt.Errorf("verify: %w", ctx.Err())
		}
		c, n, final, err := v.nextChunk(ctx, after)
		if err != nil {
			return diff{}, fmt.Errorf("verify: %w", err)
		}
		d, s, r, err := v.compareChunk(ctx, c)
		if err != nil {
			return diff{}, fmt.Errorf("verify: %w", err)
		}
		rep.Chunks++
		rep.ShouldBeAtReceiver += s.count
		rep.AtReceiver += r.count
		if s != r {
			rep.ChunksDiffering++
		}
		all.add(d)
		v.progress.Add(n)
		if final {
			return all, nil
		}
		after = c.last
	}
}

// classify files what still differs into the report: histories with
// events in the sender's outbox are in flight, extras unknown to the
// sender cannot be repaired.
func (v *Verifier) classify(ctx context.Context, rep *Report, d diff) error {
	inFlight, err := v.inFlight(ctx, d.ids())
	if err != nil {
		return err
	}
	flying := make(map[int64]bool, len(inFlight))
	for _, id := range inFlight {
		flying[id] = true
	}
	keep := func(ids []int64) []int64 {
		return slices.DeleteFunc(ids, func(id int64) bool { return flying[id] })
	}
	rep.InFlight = inFlight
	rep.Missing, rep.Extra, rep.Differing = keep(d.missing), keep(d.extra), keep(d.differing)
	if rep.Unrepairable, err = v.unknown(ctx, rep.Extra); err != nil {
		return err
	}
	if rep.Invalid, err = v.invalid(ctx, slices.Concat(rep.Missing, rep.Differing, rep.Extra)); err != nil {
		return err
	}
	return nil
}

// invalid returns those of ids whose rows at the sender cannot form a
// valid event (history_problems, the SQL twin of the contract's rules),
// sorted by id.
func (v *Verifier) invalid(ctx context.Context, ids []int64) ([]InvalidHistory, error) {
	out := []InvalidHistory{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := v.sender.Query(ctx, `SELECT p.history_id, p.problem
	        FROM unnest($1::bigint[]) AS i, LATERAL history_problems(i, i) AS p ORDER BY 1`, ids)
	if err == nil {
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (InvalidHistory, error) {
			var h InvalidHistory
			var problem string
			err := r.Scan(&h.HistoryID, &problem)
			h.Field, h.Problem, _ = strings.Cut(problem, ": ")
			return h, err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("verify: sender database: check histories that cannot form a valid event: %w", err)
	}
	return out, nil
}

// inFlight returns those of ids whose history still has an event in the
// sender's outbox (sorted, never nil).
func (v *Verifier) inFlight(ctx context.Context, ids []int64) ([]int64, error) {
	return v.idQuery(ctx, `SELECT DISTINCT aggregate_id::bigint FROM transaction_outbox
	        WHERE aggregate_type = 'invoice_history' AND aggregate_id = ANY(SELECT unnest($1::bigint[])::text)
	        ORDER BY 1`, ids, "look up events in flight")
}

// unknown returns those of ids that are not histories of the sender.
func (v *Verifier) unknown(ctx context.Context, ids []int64) ([]int64, error) {
	return v.idQuery(ctx, `SELECT i FROM unnest($1::bigint[]) AS i
	        WHERE NOT EXISTS (SELECT 1 FROM send_invoice_history h WHERE h.id = i) ORDER BY 1`,
		ids, "look up unknown histories")
}

func (v *Verifier) idQuery(ctx context.Context, sql string, ids []int64, op string) ([]int64, error) {
	out := []int64{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := v.sender.Query(ctx, sql, ids)
	if err == nil {
		out, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		return nil, fmt.Errorf("verify: sender database: %s: %w", op, err)
	}
	return out, nil
}

// checkTimezone makes sure PostgreSQL knows the receiver's time zone.
func (v *Verifier) checkTimezone(ctx context.Context) error {
	if _, err := v.sender.Exec(ctx, "SELECT now() AT TIME ZONE $1", v.cfg.Timezone); err != nil {
		return fmt.Errorf("verify: receiver time zone %q: the sender's PostgreSQL does not know it: %w", v.cfg.Timezone, err)
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
