package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/db"
)

// Apply applies one change in its own transaction; see ApplyBatch.
func (s *Store) Apply(ctx context.Context, h History) (Outcome, error) {
	outs, err := s.ApplyBatch(ctx, []History{h})
	if err != nil {
		return 0, err
	}
	return outs[0], nil
}

// ApplyBatch applies changes in order, all in one transaction, and says
// what it did with each, as if they were applied one after the other:
//
//   - the change's event id (SourceEventID) is recorded in the ledger; an id
//     recorded before, or earlier in changes, makes it a Duplicate;
//   - otherwise the version guard compares SourceVersion with the newest
//     version applied to the history: not newer makes it Stale;
//   - otherwise it deletes the history (Deleted, the version is kept so
//     older events cannot bring it back) or upserts it and replaces its
//     forms (Applied).
//
// Duplicate and Stale changes write nothing but their ledger row. Only the
// newest change of each history is written, since it would overwrite the
// others within the transaction anyway. The transaction takes three round
// trips however many changes: BEGIN with the ledger and the guard's read;
// the guard's claim of the new versions; the effects with COMMIT.
//
// Errors wrapping ErrRejected are refusals no retry fixes; others (a lost
// connection, a deadlock) are worth retrying, and nothing was written.
func (s *Store) ApplyBatch(ctx context.Context, changes []History) ([]Outcome, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	outs, err := s.applyBatch(ctx, changes)
	switch {
	case err == nil:
		return outs, nil
	case isRejection(err):
		return nil, fmt.Errorf("apply %s: %w: %w", describe(changes), ErrRejected, err)
	default:
		return nil, fmt.Errorf("apply %s: %w", describe(changes), err)
	}
}

func describe(changes []History) string {
	if len(changes) == 1 {
		return fmt.Sprintf("history %d version %d", changes[0].HistoryID, changes[0].SourceVersion)
	}
	return fmt.Sprintf("%d changes", len(changes))
}

// isRejection reports whether err is PostgreSQL refusing the data itself:
// SQLSTATE class 21 (cardinality violation), 22 (data exception) or 23
// (integrity constraint violation).
func isRejection(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || db.IsTransient(err) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "21") || strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")
}

// rollbackTimeout bounds the ROLLBACK after a failed batch.
const rollbackTimeout = 5 * time.Second

// applyBatch runs the batch's transaction on a connection of its own. On
// failure it rolls back; a connection it could not roll back is closed by
// the pool on release, never reused inside a transaction.
func (s *Store) applyBatch(ctx context.Context, changes []History) (outs []Outcome, err error) {
	conn, err := s.db.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire a connection: %w", err)
	}
	defer conn.Release()
	defer func() {
		if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
			// Bounded: on a connection that stopped answering, the pool
			// closes it on release instead.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			defer cancel()
			_, _ = conn.Exec(rctx, "ROLLBACK")
		}
	}()
	fresh, current, err := recordEvents(ctx, conn, changes)
	if err != nil {
		return nil, err
	}
	p := planBatch(changes, fresh, current)
	won, err := claimVersions(ctx, conn, changes, p.winners)
	if err != nil {
		return nil, err
	}
	p.settle(changes, won)
	if err := writeAndCommit(ctx, conn, changes, p.winners); err != nil {
		return nil, err
	}
	return p.outcomes, nil
}

// recordEvents begins the transaction, inserts every event id into the
// ledger and returns the ids that were new, with the stored version of
// every history in changes: one round trip. The version rows are locked
// until commit (in aggregate id order, so batches overlapping after a
// rebalance do not deadlock), so the guard's verdicts hold for the whole
// transaction.
func recordEvents(ctx context.Context, conn *pgxpool.Conn, changes []History) (map[string]bool, map[string]int64, error) {
	ids, aggs, versions := make([]string, len(changes)), make([]string, len(changes)), make([]int64, len(changes))
	for i, h := range changes {
		ids[i], aggs[i], versions[i] = h.SourceEventID, contract.AggregateID(h.HistoryID), h.SourceVersion
	}
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`
		INSERT INTO processed_event (event_id, aggregate_type, aggregate_id, version)
		SELECT e.event_id::uuid, $1, e.aggregate_id, e.version
		  FROM unnest($2::text[], $3::text[], $4::bigint[]) WITH ORDINALITY AS e(event_id, aggregate_id, version, n)
		 ORDER BY e.n
		ON CONFLICT (event_id) DO NOTHING
		RETURNING event_id::text`, contract.AggregateTypeHistory, ids, aggs, versions)
	b.Queue(`
		SELECT aggregate_id, version FROM aggregate_version
		 WHERE aggregate_type = $1 AND aggregate_id = ANY($2::text[])
		 ORDER BY aggregate_id
		   FOR UPDATE`, contract.AggregateTypeHistory, aggs)
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, nil, fmt.Errorf("begin: %w", err)
	}
	fresh, current := map[string]bool{}, map[string]int64{}
	var id string
	var v int64
	if err := eachRow(br, []any{&id}, func() { fresh[id] = true }); err != nil {
		return nil, nil, fmt.Errorf("ledger: %w", err)
	}
	if err := eachRow(br, []any{&id, &v}, func() { current[id] = v }); err != nil {
		return nil, nil, fmt.Errorf("version guard: %w", err)
	}
	return fresh, current, br.Close()
}

// eachRow scans every row of the batch's next result into dest and calls fn.
func eachRow(br pgx.BatchResults, dest []any, fn func()) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	_, err = pgx.ForEachRow(rows, dest, func() error { fn(); return nil })
	return err
}

// plan is what a batch does: the outcome of every change, and which change
// of each history is written.
type plan struct {
	outcomes []Outcome
	// winners maps an aggregate id to the index of its newest change that is
	// newer than the stored version: the one whose state is written.
	winners map[string]int
}

func planBatch(changes []History, fresh map[string]bool, newest map[string]int64) plan {
	p := plan{outcomes: make([]Outcome, len(changes)), winners: map[string]int{}}
	for i, h := range changes {
		id := strings.ToLower(h.SourceEventID)
		if !fresh[id] {
			p.outcomes[i] = Duplicate
			continue
		}
		delete(fresh, id) // a second copy later in the batch is a duplicate
		agg := contract.AggregateID(h.HistoryID)
		if v, ok := newest[agg]; ok && h.SourceVersion <= v {
			p.outcomes[i] = Stale
			continue
		}
		newest[agg] = h.SourceVersion
		p.winners[agg] = i
		p.outcomes[i] = Applied
		if h.Deleted {
			p.outcomes[i] = Deleted
		}
	}
	return p
}

// settle makes Stale every change of a history whose newest version the
// guard refused (a history another transaction created meanwhile with a
// version at least as new), and drops it from the winners.
func (p *plan) settle(changes []History, won map[string]bool) {
	for agg := range p.winners {
		if won[agg] {
			continue
		}
		delete(p.winners, agg)
		for i, h := range changes {
			if contract.AggregateID(h.HistoryID) == agg && (p.outcomes[i] == Applied || p.outcomes[i] == Deleted) {
				p.outcomes[i] = Stale
			}
		}
	}
}
