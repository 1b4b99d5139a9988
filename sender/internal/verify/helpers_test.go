package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// pair is a migrated sender and receiver database.
type pair struct {
	sender, receiver *testsupport.Database
}

func newPair(t *testing.T) *pair {
	t.Helper()
	return &pair{
		sender:   testsupport.MigratedDatabase(t, migrations.Sender),
		receiver: testsupport.MigratedDatabase(t, migrations.Receiver),
	}
}

// exec runs statements on one database, failing the test on an error.
func exec(t *testing.T, d *testsupport.Database, sql string, args ...any) {
	t.Helper()
	if _, err := d.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// record writes one history through the SQL write path and returns its id.
func record(t *testing.T, d *testsupport.Database, doc string) int64 {
	t.Helper()
	var id int64
	if err := d.Pool.QueryRow(context.Background(), "SELECT record_send_invoice_history($1::jsonb)", doc).Scan(&id); err != nil {
		t.Fatalf("record history: %v", err)
	}
	return id
}

// aggregate is one aggregate_history_form row as the event carries it.
type aggregate struct {
	HistoryID        int64
	SentAt           int64
	SenderOfficeName string
	DestinationCode  string
	SenderCustomerID string
	SenderOfficeID   string
	EmailStatus      string
	Version          int64
	Forms            []struct {
		SenderFormID  int64       `json:"senderFormId"`
		FileName      string      `json:"fileName"`
		FilePath      string      `json:"filePath"`
		Size          int64       `json:"size"`
		InvoiceNumber string      `json:"invoiceNumber"`
		IssueDate     int64       `json:"issueDate"`
		TotalAmount   json.Number `json:"totalAmount"`
	}
}

// mirror writes into the receiver what the receiver's transform makes of
// the sender's aggregate rows with the given ids (all when none), written
// here in Go independently of the SQL canonical form: non-ERROR histories
// only, instants from Unix seconds and milliseconds, the issue date in loc,
// exact amounts and their sum.
func mirror(t *testing.T, p *pair, loc *time.Location, ids ...int64) {
	t.Helper()
	ctx := context.Background()
	if ids == nil {
		ids = []int64{}
	}
	rows, err := p.sender.Pool.Query(ctx, `SELECT history_id, sent_at, sender_office_name, destination_code,
	        sender_customer_id, sender_office_id, email_status, version, forms
	   FROM aggregate_history_form
	  WHERE email_status <> 'ERROR' AND (cardinality($1::bigint[]) = 0 OR history_id = ANY($1))`, ids)
	if err != nil {
		t.Fatal(err)
	}
	var aggs []aggregate
	for rows.Next() {
		var a aggregate
		var forms []byte
		if err := rows.Scan(&a.HistoryID, &a.SentAt, &a.SenderOfficeName, &a.DestinationCode, &a.SenderCustomerID,
			&a.SenderOfficeID, &a.EmailStatus, &a.Version, &forms); err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(forms))
		dec.UseNumber()
		if err := dec.Decode(&a.Forms); err != nil {
			t.Fatal(err)
		}
		aggs = append(aggs, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, a := range aggs {
		writeReceiver(t, p.receiver, a, loc)
	}
}

func writeReceiver(t *testing.T, d *testsupport.Database, a aggregate, loc *time.Location) {
	t.Helper()
	total := new(big.Rat)
	for _, f := range a.Forms {
		r, ok := new(big.Rat).SetString(string(f.TotalAmount))
		if !ok {
			t.Fatalf("amount %q", f.TotalAmount)
		}
		total.Add(total, r)
	}
	exec(t, d, `INSERT INTO received_invoice_history (history_id, destination_code, sender_customer_id,
	        sender_office_id, sender_office_name, email_status, sent_at, form_count, total_amount,
	        source_version, source_event_id, source_occurred_at)
	        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::numeric, $10, gen_random_uuid(), now())`,
		a.HistoryID, a.DestinationCode, a.SenderCustomerID, a.SenderOfficeID, a.SenderOfficeName, a.EmailStatus,
		time.Unix(a.SentAt, 0).UTC(), len(a.Forms), total.FloatString(4), a.Version)
	for _, f := range a.Forms {
		issued := time.UnixMilli(f.IssueDate)
		y, m, day := issued.In(loc).Date()
		exec(t, d, `INSERT INTO received_invoice_form (history_id, sender_form_id, file_name, file_path,
		        size_bytes, invoice_number, issued_at, issue_date, total_amount)
		        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::numeric)`,
			a.HistoryID, f.SenderFormID, f.FileName, f.FilePath, f.Size, f.InvoiceNumber, issued.UTC(),
			time.Date(y, m, day, 0, 0, 0, 0, time.UTC), string(f.TotalAmount))
	}
}

// nopProgress ignores progress; onFinish, when set, runs at the end of
// the first pass (before the grace period).
type nopProgress struct{ onFinish func() }

func (nopProgress) Start(int64) {}
func (nopProgress) Add(int64)   {}
func (p nopProgress) Finish() {
	if p.onFinish != nil {
		p.onFinish()
	}
}

// verifier builds a Verifier on p.
func (p *pair) verifier(t *testing.T, cfg Config, prog Progress) *Verifier {
	t.Helper()
	if prog == nil {
		prog = nopProgress{}
	}
	v, err := New(cfg, p.sender.Pool, p.receiver.Pool, prog, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}
