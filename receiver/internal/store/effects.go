package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/invoicesync/invoicesync/pkg/contract"
)

// writeAndCommit writes the state of every winner and commits, in one
// round trip: deleted histories are removed (their forms with them), the
// others upserted with their forms replaced.
func writeAndCommit(ctx context.Context, conn *pgxpool.Conn, changes []History, winners map[string]int) error {
	var gone []int64
	var live []History
	for _, i := range slices.Sorted(maps.Values(winners)) {
		if h := changes[i]; h.Deleted {
			gone = append(gone, h.HistoryID)
		} else {
			live = append(live, h)
		}
	}
	b := &pgx.Batch{}
	if len(gone) > 0 {
		b.Queue(`DELETE FROM received_invoice_history WHERE history_id = ANY($1::bigint[])`, gone)
	}
	if len(live) > 0 {
		queueUpserts(b, live)
	}
	b.Queue(`COMMIT`)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write and commit: %w", err)
	}
	return nil
}

const upsertHistories = `
INSERT INTO received_invoice_history (history_id, destination_code, sender_customer_id,
       sender_office_id, sender_office_name, email_status, sent_at, form_count, total_amount,
       source_version, source_event_id, source_occurred_at)
SELECT h.history_id, h.destination_code, h.sender_customer_id, h.sender_office_id,
       h.sender_office_name, h.email_status, h.sent_at, h.form_count, h.total_amount::numeric,
       h.source_version, h.source_event_id::uuid, h.source_occurred_at
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
              $7::timestamptz[], $8::int[], $9::text[], $10::bigint[], $11::text[], $12::timestamptz[])
       AS h(history_id, destination_code, sender_customer_id, sender_office_id, sender_office_name,
            email_status, sent_at, form_count, total_amount, source_version, source_event_id,
            source_occurred_at)
 ORDER BY h.history_id
ON CONFLICT (history_id) DO UPDATE SET
       destination_code = EXCLUDED.destination_code, sender_customer_id = EXCLUDED.sender_customer_id,
       sender_office_id = EXCLUDED.sender_office_id, sender_office_name = EXCLUDED.sender_office_name,
       email_status = EXCLUDED.email_status, sent_at = EXCLUDED.sent_at,
       form_count = EXCLUDED.form_count, total_amount = EXCLUDED.total_amount,
       source_version = EXCLUDED.source_version, source_event_id = EXCLUDED.source_event_id,
       source_occurred_at = EXCLUDED.source_occurred_at, synced_at = clock_timestamp()`

// insertForms inserts the forms of many histories from parallel arrays.
const insertForms = `
INSERT INTO received_invoice_form (history_id, sender_form_id, file_name, file_path, size_bytes,
       invoice_number, issued_at, issue_date, total_amount)
SELECT f.history_id, f.sender_form_id, f.file_name, f.file_path, f.size_bytes,
       f.invoice_number, f.issued_at, f.issue_date, f.total_amount::numeric
  FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[],
              $7::timestamptz[], $8::date[], $9::text[])
       AS f(history_id, sender_form_id, file_name, file_path, size_bytes, invoice_number,
            issued_at, issue_date, total_amount)`

// queueUpserts queues the upsert of hs and the replacement of their forms:
// three statements whatever the number of histories.
func queueUpserts(b *pgx.Batch, hs []History) {
	n := len(hs)
	ids, versions := make([]int64, n), make([]int64, n)
	dests, customers, offices, names, statuses := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	totals, events := make([]string, n), make([]string, n)
	sent, occurred := make([]time.Time, n), make([]time.Time, n)
	counts := make([]int32, n)
	for i, h := range hs {
		ids[i], dests[i], customers[i], offices[i], names[i] = h.HistoryID, h.DestinationCode, h.SenderCustomerID, h.SenderOfficeID, h.SenderOfficeName
		statuses[i], sent[i], counts[i], totals[i] = h.EmailStatus, h.SentAt, int32(h.FormCount), h.TotalAmount
		versions[i], events[i], occurred[i] = h.SourceVersion, h.SourceEventID, h.SourceOccurredAt
	}
	b.Queue(upsertHistories, ids, dests, customers, offices, names, statuses, sent, counts, totals, versions, events, occurred)
	b.Queue(`DELETE FROM received_invoice_form WHERE history_id = ANY($1::bigint[])`, ids)
	var f formColumns
	for _, h := range hs {
		for _, form := range h.Forms {
			f.add(h.HistoryID, form)
		}
	}
	if len(f.historyIDs) > 0 {
		b.Queue(insertForms, f.historyIDs, f.ids, f.names, f.paths, f.sizes, f.numbers, f.issued, f.dates, f.amounts)
	}
}

// formColumns are forms as parallel arrays, one per column.
type formColumns struct {
	historyIDs, ids, sizes         []int64
	names, paths, numbers, amounts []string
	issued, dates                  []time.Time
}

func (c *formColumns) add(historyID int64, f Form) {
	c.historyIDs, c.ids, c.sizes = append(c.historyIDs, historyID), append(c.ids, f.SenderFormID), append(c.sizes, f.SizeBytes)
	c.names, c.paths = append(c.names, f.FileName), append(c.paths, f.FilePath)
	c.numbers, c.amounts = append(c.numbers, f.InvoiceNumber), append(c.amounts, f.TotalAmount)
	c.issued, c.dates = append(c.issued, f.IssuedAt), append(c.dates, f.IssueDate)
}

// claimVersions records each winner's version as the newest of its history
// and returns the aggregate ids for which it was indeed newer.
func claimVersions(ctx context.Context, conn *pgxpool.Conn, changes []History, winners map[string]int) (map[string]bool, error) {
	won := map[string]bool{}
	if len(winners) == 0 {
		return won, nil
	}
	aggs, versions, deleted := make([]string, 0, len(winners)), make([]int64, 0, len(winners)), make([]bool, 0, len(winners))
	for _, agg := range slices.Sorted(maps.Keys(winners)) {
		h := changes[winners[agg]]
		aggs, versions, deleted = append(aggs, agg), append(versions, h.SourceVersion), append(deleted, h.Deleted)
	}
	rows, err := conn.Query(ctx, `
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
