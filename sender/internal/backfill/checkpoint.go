package backfill

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/invoicesync/invoicesync/pkg/db"
)

// Checkpoint is a backfill's stored progress (table backfill_checkpoint):
// every history with id <= LastID has been handled. It is written in the
// transaction of each batch, so it never claims a batch that rolled back
// and never misses one that committed.
type Checkpoint struct {
	// Name identifies the backfill.
	Name string
	// LastID is the highest history id handled; 0 before the first batch.
	LastID int64
	// Scanned counts the histories looked at, Enqueued those that got an
	// aggregate row (and so an event), since the checkpoint was (re)started.
	Scanned, Enqueued int64
	// StartedAt is when the checkpoint was created or restarted, UpdatedAt
	// when a batch last committed.
	StartedAt, UpdatedAt time.Time
	// FinishedAt is when a run last found nothing left; nil while unfinished.
	FinishedAt *time.Time
}

// Start is how a run begins, decided from the stored checkpoint.
type Start int

// How a run begins.
const (
	// Fresh: no checkpoint yet; from the first history.
	Fresh Start = iota + 1
	// Resume: an interrupted run; after the checkpoint's last id.
	Resume
	// Recheck: a finished run; only histories after its last id, which
	// are normally none, so nothing changes.
	Recheck
	// Restart: asked for; from the first history with the counts reset.
	// Histories that have an aggregate row are still left alone.
	Restart
)

// String names the start for logs.
func (s Start) String() string {
	switch s {
	case Fresh:
		return "fresh"
	case Resume:
		return "resume"
	case Recheck:
		return "recheck"
	case Restart:
		return "restart"
	default:
		return fmt.Sprintf("start(%d)", int(s))
	}
}

// decide tells how a run begins given the stored checkpoint (nil if none)
// and whether a restart was asked for, and from which id it scans.
func decide(cp *Checkpoint, restart bool) (Start, int64) {
	switch {
	case cp == nil:
		return Fresh, 0
	case restart:
		return Restart, 0
	case cp.FinishedAt != nil:
		return Recheck, cp.LastID
	default:
		return Resume, cp.LastID
	}
}

// loadCheckpoint reads the checkpoint name; nil when there is none.
func loadCheckpoint(ctx context.Context, q db.Querier, name string, forUpdate bool) (*Checkpoint, error) {
	sql := `SELECT name, last_id, scanned_count, enqueued_count, started_at, updated_at, finished_at
	          FROM backfill_checkpoint WHERE name = $1`
	if forUpdate {
		sql += " FOR UPDATE"
	}
	var cp Checkpoint
	err := q.QueryRow(ctx, sql, name).Scan(&cp.Name, &cp.LastID, &cp.Scanned, &cp.Enqueued,
		&cp.StartedAt, &cp.UpdatedAt, &cp.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %q: %w", name, err)
	}
	return &cp, nil
}

// openCheckpoint creates the checkpoint if missing, or resets it when s is
// Restart, and returns it.
func openCheckpoint(ctx context.Context, q db.Querier, name string, s Start) (*Checkpoint, error) {
	sql := `INSERT INTO backfill_checkpoint (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`
	if s == Restart {
		sql = `INSERT INTO backfill_checkpoint (name) VALUES ($1) ON CONFLICT (name) DO UPDATE
		          SET last_id = 0, scanned_count = 0, enqueued_count = 0, started_at = now(),
		              updated_at = now(), finished_at = NULL`
	}
	if _, err := q.Exec(ctx, sql, name); err != nil {
		return nil, fmt.Errorf("open checkpoint %q: %w", name, err)
	}
	cp, err := loadCheckpoint(ctx, q, name, false)
	if err == nil && cp == nil {
		err = fmt.Errorf("open checkpoint %q: it vanished", name)
	}
	return cp, err
}

// advance moves the checkpoint past a committed batch; call it in the
// batch's transaction.
func advance(ctx context.Context, tx pgx.Tx, name string, lastID, scanned, enqueued int64) error {
	_, err := tx.Exec(ctx, `UPDATE backfill_checkpoint
	        SET last_id = $2, scanned_count = scanned_count + $3, enqueued_count = enqueued_count + $4,
	            updated_at = now(), finished_at = NULL
	      WHERE name = $1`, name, lastID, scanned, enqueued)
	if err != nil {
		return fmt.Errorf("advance checkpoint %q to id %d: %w", name, lastID, err)
	}
	return nil
}

// finish marks the checkpoint finished, keeping the first finish time of
// a run that found nothing new.
func finish(ctx context.Context, tx pgx.Tx, name string) error {
	_, err := tx.Exec(ctx, `UPDATE backfill_checkpoint
	        SET finished_at = coalesce(finished_at, now()) WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("finish checkpoint %q: %w", name, err)
	}
	return nil
}
