package history_test

import (
	"context"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/sender/history"
)

func seed() contract.History {
	return contract.History{
		SentAt: 1686110218, SenderOfficeName: "MFV-HN", DestinationCode: "CUST-001",
		SenderCustomerID: "001", SenderOfficeID: "MFV-HN-01",
		Forms: []contract.Form{
			{FileName: "abcd.pdf", FilePath: "file://sci/", Size: 1, InvoiceNumber: "INVC-001",
				IssueDate: 1686110218222, TotalAmount: "1500"},
			{FileName: "efgh.pdf", Size: 4096, InvoiceNumber: "INVC-002",
				IssueDate: 1686110218999, TotalAmount: "-1234567890123.4567"},
		},
	}
}

type outboxRow struct {
	aggregateType, aggregateID, eventType string
	version                               int64
	payload                               []byte
}

// events returns the outbox rows of one history, oldest first.
func events(t *testing.T, pool *pgxpool.Pool, historyID int64) []outboxRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT aggregate_type, aggregate_id, event_type, version, payload
		FROM transaction_outbox WHERE aggregate_id = $1 ORDER BY id`, contract.AggregateID(historyID))
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (outboxRow, error) {
		var o outboxRow
		return o, r.Scan(&o.aggregateType, &o.aggregateID, &o.eventType, &o.version, &o.payload)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// sameHistory compares a published payload with what was recorded: amounts
// as exact decimals (the database keeps 4 decimal places), ids as assigned.
func sameHistory(t *testing.T, got, want contract.History) {
	t.Helper()
	gotForms, wantForms := got.Forms, want.Forms
	got.Forms, want.Forms = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("payload\n got %+v\nwant %+v", got, want)
	}
	if len(gotForms) != len(wantForms) {
		t.Fatalf("payload has %d forms, want %d", len(gotForms), len(wantForms))
	}
	for i := range wantForms {
		g, w := gotForms[i], wantForms[i]
		ga, _ := new(big.Rat).SetString(string(g.TotalAmount))
		wa, _ := new(big.Rat).SetString(string(w.TotalAmount))
		if ga == nil || wa == nil || ga.Cmp(wa) != 0 {
			t.Errorf("forms[%d].totalAmount = %s, want %s", i, g.TotalAmount, w.TotalAmount)
		}
		g.TotalAmount, w.TotalAmount = "", ""
		if g != w {
			t.Errorf("forms[%d]\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestRecordAndSetStatusPublishOneEventPerWrite(t *testing.T) {
	pool := testsupport.MigratedDatabase(t, migrations.Sender).Pool
	ctx := context.Background()
	in := seed()
	var rec history.Recorded
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
		rec, err = history.Record(ctx, tx, in)
		return err
	})
	if err != nil || rec.HistoryID <= 0 || rec.Version != 1 {
		t.Fatalf("Record = %+v, %v; want a positive id at version 1", rec, err)
	}

	// The live write builds the aggregate row itself; it must be exactly what
	// the one definition of the shape (backfill, verify) computes.
	var same bool
	if err := pool.QueryRow(ctx, `SELECT (a.history_id, a.sent_at, a.sender_office_name, a.destination_code,
		a.sender_customer_id, a.sender_office_id, a.forms, a.email_status) IS NOT DISTINCT FROM
		(s.history_id, s.sent_at, s.sender_office_name, s.destination_code,
		s.sender_customer_id, s.sender_office_id, s.forms, s.email_status)
		FROM aggregate_history_form a, history_aggregate_shape($1, $1) s WHERE a.history_id = $1`,
		rec.HistoryID).Scan(&same); err != nil || !same {
		t.Fatalf("aggregate row differs from history_aggregate_shape (%v)", err)
	}

	var status, office string
	var forms int
	if err := pool.QueryRow(ctx, `SELECT email_status, sender_office_name,
		(SELECT count(*) FROM send_invoice_history_form WHERE history_id = h.id)
		FROM send_invoice_history h WHERE id = $1`, rec.HistoryID).Scan(&status, &office, &forms); err != nil {
		t.Fatal(err)
	}
	if status != contract.StatusSent || office != in.SenderOfficeName || forms != 2 {
		t.Fatalf("legacy rows: status %q office %q forms %d", status, office, forms)
	}
	var formIDs []int64
	rows, _ := pool.Query(ctx, `SELECT id FROM send_invoice_history_form WHERE history_id = $1 ORDER BY id`, rec.HistoryID)
	if formIDs, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		t.Fatal(err)
	}

	want := in
	want.HistoryID, want.EmailStatus = rec.HistoryID, contract.StatusSent
	want.Forms = append([]contract.Form(nil), in.Forms...)
	for i := range want.Forms {
		want.Forms[i].SenderFormID = formIDs[i]
	}
	checkEvents(t, pool, want, 1)

	for i, st := range []string{contract.StatusDelivered, contract.StatusError, contract.StatusError} {
		v, err := history.SetStatus(ctx, pool, rec.HistoryID, st)
		if err != nil || v != int64(i+2) {
			t.Fatalf("SetStatus #%d(%s) = %d, %v; want version %d", i+1, st, v, err, i+2)
		}
		want.EmailStatus = st
		checkEvents(t, pool, want, v)
	}
}

// checkEvents checks the history has one event per version so far and the
// last one is at version and carries want.
func checkEvents(t *testing.T, pool *pgxpool.Pool, want contract.History, version int64) {
	t.Helper()
	evs := events(t, pool, want.HistoryID)
	if int64(len(evs)) != version {
		t.Fatalf("%d outbox rows, want %d (one per write)", len(evs), version)
	}
	var aggVersion int64
	if err := pool.QueryRow(context.Background(), `SELECT version FROM aggregate_history_form WHERE history_id = $1`,
		want.HistoryID).Scan(&aggVersion); err != nil || aggVersion != version {
		t.Fatalf("aggregate version = %d, %v; want %d", aggVersion, err, version)
	}
	last := evs[len(evs)-1]
	if last.aggregateType != contract.AggregateTypeHistory || last.eventType != contract.EventTypeHistoryChanged ||
		last.version != version || last.aggregateID != contract.AggregateID(want.HistoryID) {
		t.Fatalf("outbox row %+v, want %s %s version %d", last, contract.AggregateTypeHistory, contract.EventTypeHistoryChanged, version)
	}
	got, err := contract.DecodeHistory(last.payload)
	if err != nil {
		t.Fatalf("payload %s does not satisfy the contract: %v", last.payload, err)
	}
	sameHistory(t, got, want)
}

func TestRolledBackTransactionRecordsAndPublishesNothing(t *testing.T) {
	pool := testsupport.MigratedDatabase(t, migrations.Sender).Pool
	ctx := context.Background()
	errCallerFailed := errors.New("caller failed after recording")
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := history.Record(ctx, tx, seed()); err != nil {
			return err
		}
		return errCallerFailed
	})
	if !errors.Is(err, errCallerFailed) {
		t.Fatalf("BeginFunc = %v", err)
	}
	for _, table := range []string{"send_invoice_history", "send_invoice_history_form", "aggregate_history_form", "transaction_outbox"} {
		if n := count(t, pool, table); n != 0 {
			t.Errorf("%s holds %d rows after rollback, want 0", table, n)
		}
	}
}

func TestSetStatusOfUnknownHistoryIsNotFound(t *testing.T) {
	pool := testsupport.MigratedDatabase(t, migrations.Sender).Pool
	_, err := history.SetStatus(context.Background(), pool, 424242, contract.StatusError)
	if !errors.Is(err, history.ErrNotFound) || !strings.Contains(err.Error(), "424242") {
		t.Fatalf("SetStatus(unknown) = %v, want ErrNotFound naming 424242", err)
	}
	if n := count(t, pool, "transaction_outbox"); n != 0 {
		t.Fatalf("%d outbox rows, want 0", n)
	}
}

func TestInvalidInputIsRejectedInGoNamingTheField(t *testing.T) {
	pool := testsupport.MigratedDatabase(t, migrations.Sender).Pool
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(*contract.History)
		field  string
	}{
		{"no forms", func(h *contract.History) { h.Forms = nil }, "forms"},
		{"blank office", func(h *contract.History) { h.SenderOfficeName = "" }, "senderOfficeName"},
		{"sentAt in millis", func(h *contract.History) { h.SentAt *= 1000 }, "sentAt"},
		{"unknown status", func(h *contract.History) { h.EmailStatus = "BOUNCED; forms[0].size: x" }, "emailStatus"},
		{"too precise amount", func(h *contract.History) { h.Forms[1].TotalAmount = "1.23456" }, "forms[1].totalAmount"},
		{"fraction amount", func(h *contract.History) { h.Forms[1].TotalAmount = "1/2" }, "forms[1].totalAmount"},
		{"negative size", func(h *contract.History) { h.Forms[0].Size = -1 }, "forms[0].size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := seed()
			tt.change(&h)
			_, err := history.Record(ctx, pool, h)
			var verr *history.ValidationError
			if !errors.As(err, &verr) || !errors.Is(err, contract.ErrInvalid) {
				t.Fatalf("Record = %v, want a *ValidationError", err)
			}
			if len(verr.Fields) != 1 || verr.Fields[0].Field != tt.field {
				t.Fatalf("fields = %+v, want exactly %s", verr.Fields, tt.field)
			}
		})
	}
	if _, err := history.SetStatus(ctx, pool, 0, "LOST"); err == nil ||
		!strings.Contains(err.Error(), "historyId: ") || !strings.Contains(err.Error(), "emailStatus: ") {
		t.Fatalf("SetStatus(0, LOST) = %v, want historyId and emailStatus named", err)
	}
	if n := count(t, pool, "send_invoice_history") + count(t, pool, "transaction_outbox"); n != 0 {
		t.Fatalf("%d rows written by rejected input, want 0", n)
	}
}
