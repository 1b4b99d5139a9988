package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
// others within the transaction anyway, and each step is one statement for
// the whole batch: a handful of round trips however many changes.
//
// Errors wrapping ErrRejected are refusals no retry fixes; others (a lost
// connection, a deadlock) are worth retrying, and nothing was written.
func (s *Store) ApplyBatch(ctx context.Context, changes []History) ([]Outcome, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	var outs []Outcome
	err := db.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		outs, err = applyBatch(ctx, tx, changes)
		return err
	})
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
// SQLSTATE class 22 (data exception) or 23 (integrity constraint violation).
func isRejection(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || db.IsTransient(err) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")
}

func applyBatch(ctx context.Context, tx pgx.Tx, changes []History) ([]Outcome, error) {
	fresh, current, err := recordEvents(ctx, tx, changes)
	if err != nil {
		return nil, err
	}
	p := planBatch(changes, fresh, current)
	won, err := claimVersions(ctx, tx, changes, p.winners)
	if err != nil {
		return nil, err
	}
	p.settle(changes, won)
	if err := writeEffects(ctx, tx, changes, p.winners); err != nil {
		return nil, err
	}
	return p.outcomes, nil
}

// recordEvents inserts every event id into the ledger and returns the ids
// that were new, with the stored version of every history in changes. The
// version rows are locked until commit (in aggregate id order, so batches
// overlapping after a rebalance do not deadlock), so the guard's verdicts
// hold for the whole transaction.
func recordEvents(ctx context.Context, tx pgx.Tx, changes []History) (map[string]bool, map[string]int64, error) {
	ids, aggs, versions := make([]string, len(changes)), make([]string, len(changes)), make([]int64, len(changes))
	for i, h := range changes {
		ids[i], aggs[i], versions[i] = h.SourceEventID, contract.AggregateID(h.HistoryID), h.SourceVersion
	}
	b := &pgx.Batch{}
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
	br := tx.SendBatch(ctx, b)
	defer br.Close()
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

// claimVersions records each winner's version as the newest of its history
// and returns the aggregate ids for which it was indeed newer.
func claimVersions(ctx context.Context, tx pgx.Tx, changes []History, winners map[string]int) (map[string]bool, error) {
	won := map[string]bool{}
	if len(winners) == 0 {
		return won, nil
	}
	aggs, versions, deleted := make([]string, 0, len(winners)), make([]int64, 0, len(winners)), make([]bool, 0, len(winners))
	for _, agg := range slices.Sorted(maps.Keys(winners)) {
		h := changes[winners[agg]]
		aggs, versions, deleted = append(aggs, agg), append(versions, h.SourceVersion), append(deleted, h.Deleted)
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO aggregate_version (aggregate_type, aggregate_id, version, deleted)
		SELECT $1, c.aggregate_id, c.version, c.deleted
		  FROM unnest($2::text[], $3::bigint[], $4::boolean[]) AS c(aggregate_id, version, deleted)
		 ORDER BY c.aggregate_id
		ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
		   SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, updated_at = clock_timestamp()
		 WHERE aggregate_version.version < EXCLUDED.version
		RETURNING aggregate_id`, contract.AggregateTypeHistory, aggs, versions, deleted)
	var agg string
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&agg}, func() error { won[agg] = true; return nil })
	}
	if err != nil {
		return nil, fmt.Errorf("version guard: %w", err)
	}
	return won, nil
}
