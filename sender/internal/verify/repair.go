package verify

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/invoicesync/invoicesync/pkg/db"
)

// repairBatch is how many histories one repair transaction re-enqueues.
const repairBatch = 500

// repair re-enqueues the current state of every history the report found
// different and the sender knows: sync_history_aggregate(id, min_version)
// rebuilds its aggregate row from SCI's tables with a version above the one
// the receiver last applied (or deleted at), so the trigger publishes an
// event the receiver's version guard accepts, even when the receiver is
// ahead of the sender (a sender database restored from a backup). A sender ERROR
// history found extra at the receiver is so re-published as ERROR, which
// deletes it there. Ids are handled in ascending order, so repairs never
// deadlock with each other.
func (v *Verifier) repair(ctx context.Context, rep *Report) error {
	unrepairable := make(map[int64]bool, len(rep.Unrepairable)+len(rep.Invalid))
	for _, id := range rep.Unrepairable {
		unrepairable[id] = true
	}
	for _, h := range rep.Invalid {
		unrepairable[h.HistoryID] = true // would publish poison
	}
	ids := slices.DeleteFunc(slices.Concat(rep.Missing, rep.Differing, rep.Extra),
		func(id int64) bool { return unrepairable[id] })
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for part := range slices.Chunk(ids, repairBatch) {
		applied, err := v.receiverVersions(ctx, part)
		if err != nil {
			return fmt.Errorf("verify: repair: %w", err)
		}
		minVersions := make([]int64, len(part))
		for i, id := range part {
			minVersions[i] = applied[id] + 1
		}
		var n int64
		err = db.InTx(ctx, v.sender, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(sync_history_aggregate(i, m))
				FROM unnest($1::bigint[], $2::bigint[]) AS t(i, m)`, part, minVersions).Scan(&n)
		})
		if err != nil {
			return fmt.Errorf("verify: repair: sender database: re-enqueue histories %d..%d: %w",
				part[0], part[len(part)-1], err)
		}
		rep.Repaired += n
	}
	v.log.Info().Int64("repaired", rep.Repaired).Int("unrepairable", len(rep.Unrepairable)).Int("invalid", len(rep.Invalid)).
		Msg("repair: histories re-enqueued through the outbox")
	return nil
}

// receiverVersions returns the newest version the receiver applied, or
// deleted at, of each of ids that it has seen.
func (v *Verifier) receiverVersions(ctx context.Context, ids []int64) (map[int64]int64, error) {
	out := make(map[int64]int64, len(ids))
	err := v.readReceiver(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT aggregate_id::bigint, version FROM aggregate_version
			WHERE aggregate_type = 'invoice_history' AND aggregate_id = ANY($1::bigint[]::text[])`, ids)
		if err != nil {
			return err
		}
		var id, version int64
		_, err = pgx.ForEachRow(rows, []any{&id, &version}, func() error {
			out[id] = version
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the receiver's versions: %w", err)
	}
	return out, nil
}

// CheckReceiver returns an error wrapping ErrNotMigrated, naming the
// command to run, when the receiver database lacks the tables verify reads.
func CheckReceiver(ctx context.Context, q db.Querier) error {
	var missing []string
	err := q.QueryRow(ctx, `SELECT array_remove(ARRAY[
	          CASE WHEN to_regclass('received_invoice_history') IS NULL THEN 'received_invoice_history' END,
	          CASE WHEN to_regclass('received_invoice_form') IS NULL THEN 'received_invoice_form' END], NULL)`).Scan(&missing)
	if err != nil {
		return fmt.Errorf("receiver database: look up its tables: %w", err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("receiver database: %w (table %s missing): run \"receiver migrate\" against it first",
			ErrNotMigrated, missing[0])
	}
	return nil
}
