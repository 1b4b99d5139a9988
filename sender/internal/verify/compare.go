package verify

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/invoicesync/invoicesync/pkg/db"
)

// rowHash is one history's id and the md5 of its canonical text.
type rowHash struct {
	id   int64
	hash string
}

// diff is what differs between the two sides.
type diff struct {
	// missing should be at the receiver and is not; extra is at the
	// receiver and should not be; differing is at both, with other values.
	missing, extra, differing []int64
}

func (d *diff) empty() bool { return len(d.missing)+len(d.extra)+len(d.differing) == 0 }

func (d *diff) add(o diff) {
	d.missing = append(d.missing, o.missing...)
	d.extra = append(d.extra, o.extra...)
	d.differing = append(d.differing, o.differing...)
}

// ids lists every id of d, sorted.
func (d *diff) ids() []int64 {
	out := slices.Concat(d.missing, d.extra, d.differing)
	slices.Sort(out)
	return slices.Compact(out)
}

// compare merges the two sides' rows, each sorted by id.
func compare(sender, receiver []rowHash) diff {
	var d diff
	i, j := 0, 0
	for i < len(sender) || j < len(receiver) {
		switch {
		case j == len(receiver) || (i < len(sender) && sender[i].id < receiver[j].id):
			d.missing = append(d.missing, sender[i].id)
			i++
		case i == len(sender) || receiver[j].id < sender[i].id:
			d.extra = append(d.extra, receiver[j].id)
			j++
		default:
			if sender[i].hash != receiver[j].hash {
				d.differing = append(d.differing, sender[i].id)
			}
			i++
			j++
		}
	}
	return d
}

// chunk is a range of history ids, first..last inclusive.
type chunk struct{ first, last int64 }

// nextChunk returns the chunk after id, and how many sender histories it
// holds: up to the size-th sender history after id, or to the end of the
// id space when none is left (so receiver rows beyond the sender's last id
// are looked at too).
func (v *Verifier) nextChunk(ctx context.Context, after int64) (c chunk, n int64, final bool, err error) {
	var last *int64
	err = v.sender.QueryRow(ctx, `SELECT count(*), max(id) FROM (SELECT id FROM send_invoice_history
	        WHERE id > $1 ORDER BY id LIMIT $2) s`, after, v.cfg.ChunkSize).Scan(&n, &last)
	if err != nil {
		return chunk{}, 0, false, fmt.Errorf("sender database: next chunk after id %d: %w", after, err)
	}
	if last == nil {
		return chunk{after + 1, math.MaxInt64}, 0, true, nil
	}
	return chunk{after + 1, *last}, n, false, nil
}

// summary is one side's row count and checksum of a chunk.
type summary struct {
	count int64
	sum   string
}

// compareChunk compares a chunk by checksum on both sides at once, and
// drills into it row by row only when the checksums differ.
func (v *Verifier) compareChunk(ctx context.Context, c chunk) (diff, summary, summary, error) {
	var s, r summary
	err := both(
		func() error {
			return v.sender.QueryRow(ctx, summed(senderRangeRows), c.first, c.last, v.cfg.Timezone).Scan(&s.count, &s.sum)
		},
		func() error {
			return v.readReceiver(ctx, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, summed(receiverRangeRows), c.first, c.last).Scan(&r.count, &r.sum)
			})
		})
	if err != nil {
		return diff{}, s, r, fmt.Errorf("checksum ids %d..%d: %w", c.first, c.last, err)
	}
	if s == r {
		return diff{}, s, r, nil
	}
	d, err := v.rows(ctx, hashed(senderRangeRows), []any{c.first, c.last, v.cfg.Timezone},
		hashed(receiverRangeRows), []any{c.first, c.last})
	if err != nil {
		return diff{}, s, r, fmt.Errorf("compare ids %d..%d: %w", c.first, c.last, err)
	}
	return d, s, r, nil
}

// recheck compares the given histories row by row again.
func (v *Verifier) recheck(ctx context.Context, ids []int64) (diff, error) {
	if len(ids) == 0 {
		return diff{}, nil
	}
	first, last := slices.Min(ids), slices.Max(ids)
	d, err := v.rows(ctx, hashed(senderIDRows), []any{first, last, ids, v.cfg.Timezone},
		hashed(receiverIDRows), []any{first, last, ids})
	if err != nil {
		return diff{}, fmt.Errorf("recheck %d histories: %w", len(ids), err)
	}
	return d, nil
}

// rows runs a per-row hash query on each side and compares the results.
func (v *Verifier) rows(ctx context.Context, senderSQL string, senderArgs []any, receiverSQL string, receiverArgs []any) (diff, error) {
	var s, r []rowHash
	err := both(
		func() (err error) {
			s, err = collect(ctx, v.sender, senderSQL+" ORDER BY 1", senderArgs)
			return err
		},
		func() error {
			return v.readReceiver(ctx, func(tx pgx.Tx) (err error) {
				r, err = collect(ctx, tx, receiverSQL+" ORDER BY 1", receiverArgs)
				return err
			})
		})
	if err != nil {
		return diff{}, err
	}
	return compare(s, r), nil
}

func collect(ctx context.Context, q db.Querier, sql string, args []any) ([]rowHash, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (rowHash, error) {
		var x rowHash
		err := r.Scan(&x.id, &x.hash)
		return x, err
	})
}

// readReceiver runs fn in a read-only transaction on the receiver: verify
// never writes there, even if its pool lacks the read-only default.
func (v *Verifier) readReceiver(ctx context.Context, fn func(pgx.Tx) error) error {
	err := db.InTx(ctx, v.receiver, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET TRANSACTION READ ONLY"); err != nil {
			return err
		}
		return fn(tx)
	})
	if err != nil {
		return fmt.Errorf("receiver database: %w", err)
	}
	return nil
}

// both runs the sender and the receiver query at once and returns the
// first error (sender errors named as such).
func both(sender, receiver func() error) error {
	var wg sync.WaitGroup
	var serr, rerr error
	wg.Go(func() { serr = sender() })
	wg.Go(func() { rerr = receiver() })
	wg.Wait()
	if serr != nil {
		return fmt.Errorf("sender database: %w", serr)
	}
	return rerr
}
