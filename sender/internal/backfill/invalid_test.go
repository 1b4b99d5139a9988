package backfill_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/sender/internal/backfill"
)

// Legacy rows that cannot form a valid event (edited outside the API) are
// not published: the receiver would dead-letter them for good. The
// backfill skips them and reports each with its id and the field at
// fault, and counts them; an ERROR history is a deletion, which needs only
// its id, so it is published whatever its other fields hold.
func TestBackfillReportsLegacyRowsThatCannotFormAValidEvent(t *testing.T) {
	const n = 40
	d := seeded(t, n)
	ctx := context.Background()
	var ids []int64
	rows, _ := d.Pool.Query(ctx, "SELECT id FROM send_invoice_history ORDER BY id LIMIT 5")
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE send_invoice_history_form SET file_name = repeat('f', 300)
		  WHERE id = (SELECT min(id) FROM send_invoice_history_form WHERE history_id = $1)`,
		`DELETE FROM send_invoice_history_form WHERE history_id = $1`,
		`UPDATE send_invoice_history SET sent_at = '1985-06-01' WHERE id = $1`,
		`UPDATE send_invoice_history SET email_status = 'ERROR', sent_at = '1985-06-01' WHERE id = $1`,
	} {
		id := ids[0]
		ids = ids[1:]
		if _, err := d.Pool.Exec(ctx, q, id); err != nil {
			t.Fatal(err)
		}
	}
	dry := run(t, d, backfill.Config{DryRun: true}, 0)
	if dry.Enqueued != n-3 || dry.Rejected != 3 {
		t.Fatalf("dry run %+v, want %d to enqueue and 3 rejected", dry, n-3)
	}
	res := run(t, d, backfill.Config{BatchSize: 3}, 0)
	if !res.Finished || res.Scanned != n || res.Enqueued != n-3 || res.Rejected != 3 {
		t.Fatalf("result %+v, want %d scanned, %d enqueued, 3 rejected", res, n, n-3)
	}
	var got []string
	for _, r := range res.Rejections {
		got = append(got, r.Field)
	}
	if want := []string{"forms[0].fileName", "forms", "sentAt"}; !slices.Equal(got, want) || res.Rejections[0].Problem == "" {
		t.Fatalf("rejections %+v, want the fields %v with their problems, in id order", res.Rejections, want)
	}
	rows, _ = d.Pool.Query(ctx, "SELECT payload FROM transaction_outbox")
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	if len(payloads) != n-3 {
		t.Fatalf("%d events enqueued, want %d", len(payloads), n-3)
	}
	for _, p := range payloads {
		if _, err := contract.DecodeForApply(p); err != nil {
			t.Errorf("the backfill published an event the receiver refuses: %v", err)
		}
	}
	for _, r := range res.Rejections {
		var events int
		if err := d.Pool.QueryRow(ctx, "SELECT count(*) FROM transaction_outbox WHERE aggregate_id = $1",
			contract.AggregateID(r.HistoryID)).Scan(&events); err != nil || events != 0 {
			t.Errorf("rejected history %d has %d events (%v)", r.HistoryID, events, err)
		}
	}
}
