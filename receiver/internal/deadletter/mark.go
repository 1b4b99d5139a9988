package deadletter

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/invoicesync/invoicesync/pkg/db"
)

// MarkHandled marks the entries ids as handled with note, after checking
// that every one of them exists: list hides them and replay skips them.
func (q *Queue) MarkHandled(ctx context.Context, ids []string, note string) ([]Item, error) {
	items, err := q.getAll(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		m := Mark{Partition: it.Partition, Offset: it.Offset, State: StateHandled, Note: note}
		if err := q.marks.Set(ctx, q.topic, m); err != nil {
			return nil, fmt.Errorf("mark %s handled: %w", it.ID, err)
		}
	}
	return items, nil
}

// Unmark forgets what was recorded about the entries ids, which must exist:
// they are new again (listed, and replayed without --again). It returns the
// ids that had a mark.
func (q *Queue) Unmark(ctx context.Context, ids []string) ([]string, error) {
	items, err := q.getAll(ctx, ids)
	if err != nil {
		return nil, err
	}
	var cleared []string
	for _, it := range items {
		had, err := q.marks.Clear(ctx, q.topic, it.Partition, it.Offset)
		if err != nil {
			return nil, fmt.Errorf("unmark %s: %w", it.ID, err)
		}
		if had {
			cleared = append(cleared, it.ID)
		}
	}
	return cleared, nil
}

// PostgresMarks keeps marks in the receiver database's dead_letter_mark
// table (migration 00003).
type PostgresMarks struct {
	q db.Querier
}

// NewPostgresMarks returns the marks store on q (a pool or a transaction).
func NewPostgresMarks(q db.Querier) *PostgresMarks { return &PostgresMarks{q: q} }

// Load implements Marks.
func (s *PostgresMarks) Load(ctx context.Context, topic string) (map[string]Mark, error) {
	rows, err := s.q.Query(ctx, `
		SELECT dlq_partition, dlq_offset, state, replayed_at, handled_at, note
		FROM dead_letter_mark WHERE dlq_topic = $1`, topic)
	if err != nil {
		return nil, fmt.Errorf("query dead_letter_mark: %w", err)
	}
	out := map[string]Mark{}
	var m Mark
	var replayed, handled *time.Time
	_, err = pgx.ForEachRow(rows, []any{&m.Partition, &m.Offset, &m.State, &replayed, &handled, &m.Note}, func() error {
		m.ReplayedAt, m.HandledAt = deref(replayed), deref(handled)
		out[idOf(m.Partition, m.Offset)] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read dead_letter_mark: %w", err)
	}
	return out, nil
}

// Set implements Marks. Replaying a handled entry keeps it handled.
func (s *PostgresMarks) Set(ctx context.Context, topic string, m Mark) error {
	var sql string
	switch m.State {
	case StateReplayed:
		sql = `INSERT INTO dead_letter_mark AS d (dlq_topic, dlq_partition, dlq_offset, state, replayed_at)
			VALUES ($1, $2, $3, 'replayed', now())
			ON CONFLICT (dlq_topic, dlq_partition, dlq_offset) DO UPDATE SET replayed_at = now()`
	case StateHandled:
		sql = `INSERT INTO dead_letter_mark AS d (dlq_topic, dlq_partition, dlq_offset, state, handled_at, note)
			VALUES ($1, $2, $3, 'handled', now(), $4)
			ON CONFLICT (dlq_topic, dlq_partition, dlq_offset)
			DO UPDATE SET state = 'handled', handled_at = now(), note = EXCLUDED.note`
	default:
		return fmt.Errorf("mark state %q: want %s or %s", m.State, StateReplayed, StateHandled)
	}
	args := []any{topic, m.Partition, m.Offset}
	if m.State == StateHandled {
		args = append(args, m.Note)
	}
	if _, err := s.q.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("write dead_letter_mark: %w", err)
	}
	return nil
}

// Clear implements Marks.
func (s *PostgresMarks) Clear(ctx context.Context, topic string, partition int, offset int64) (bool, error) {
	tag, err := s.q.Exec(ctx, `DELETE FROM dead_letter_mark
		WHERE dlq_topic = $1 AND dlq_partition = $2 AND dlq_offset = $3`, topic, partition, offset)
	if err != nil {
		return false, fmt.Errorf("delete dead_letter_mark: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
