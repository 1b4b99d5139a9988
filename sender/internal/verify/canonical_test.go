package verify

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/invoicesync/invoicesync/pkg/db"
)

// tricky has the values where a transform goes wrong: an issue instant
// whose calendar date differs between UTC and the receiver's zone, a
// millisecond fraction, amounts with one, four and no decimals, an empty
// file path, quotes and non-ASCII text.
const tricky = `{"sentAt": 1686111418, "senderOfficeName": "Văn phòng \"HN\" O'Hara", "destinationCode": "CUST-001",
  "senderCustomerId": "001", "senderOfficeId": "MFV-HN-01", "emailStatus": "DELIVERED",
  "forms": [
    {"fileName": "a.pdf", "filePath": "file://sci/", "size": 1, "invoiceNumber": "INVC-001",
     "issueDate": 1686083400250, "totalAmount": 1500.5},
    {"fileName": "b.pdf", "size": 2048, "invoiceNumber": "INVC-002",
     "issueDate": 1685610000999, "totalAmount": 0.0001}]}`

// canonicalIn returns the canonical text of the one row sql returns on q.
func canonicalIn(t *testing.T, q db.Querier, sql string, args ...any) string {
	t.Helper()
	var id int64
	var got string
	if err := q.QueryRow(context.Background(), sql, args...).Scan(&id, &got); err != nil {
		t.Fatalf("canonical form: %v", err)
	}
	return got
}

// canonicalOf returns the canonical text of history id on each side; the
// sender's in a session whose time zone is neither UTC nor tz.
func canonicalOf(t *testing.T, p *pair, tz string, id int64) (sender, receiver string) {
	t.Helper()
	ctx := context.Background()
	err := db.InTx(ctx, p.sender.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL TIME ZONE 'America/Los_Angeles'"); err != nil {
			return err
		}
		sender = canonicalIn(t, tx, senderRangeRows, id, id, tz)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sender, canonicalIn(t, p.receiver.Pool, receiverRangeRows, id, id)
}

// The sender's canonical text, computed from SCI's tables, equals the
// receiver's, computed from rows written as the transform writes them, and
// is exactly the documented form. Any changed receiver value changes it.
func TestCanonicalFormMatchesTheTransform(t *testing.T) {
	const tz = "Asia/Ho_Chi_Minh"
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	p := newPair(t)
	id := record(t, p.sender, tricky)
	mirror(t, p, loc, id)
	s, r := canonicalOf(t, p, tz, id)
	var formIDs []int64
	err = p.sender.Pool.QueryRow(context.Background(),
		"SELECT array_agg(id ORDER BY id) FROM send_invoice_history_form WHERE history_id = $1", id).Scan(&formIDs)
	if err != nil || len(formIDs) != 2 {
		t.Fatalf("form ids %v, %v", formIDs, err)
	}
	form1, form2 := formIDs[0], formIDs[1]
	want := `["1", "CUST-001", "001", "MFV-HN-01", "Văn phòng \"HN\" O'Hara", "DELIVERED", ` +
		`"2023-06-07T04:16:58.000000Z", "2", "1500.5001", ` +
		`[["` + itoa(form1) + `", "a.pdf", "file://sci/", "1", "INVC-001", "2023-06-06T20:30:00.250000Z", "2023-06-07", "1500.5000"], ` +
		`["` + itoa(form2) + `", "b.pdf", "", "2048", "INVC-002", "2023-06-01T09:00:00.999000Z", "2023-06-01", "0.0001"]]]`
	if s != want {
		t.Fatalf("sender canonical form\n got %s\nwant %s", s, want)
	}
	if r != s {
		t.Fatalf("receiver canonical form differs from the sender's\nreceiver %s\n  sender %s", r, s)
	}
	if s2, _ := canonicalOf(t, p, "UTC", id); s2 == s {
		t.Fatal("the issue date did not follow the receiver's time zone")
	}

	for _, change := range receiverChanges {
		t.Run(change, func(t *testing.T) {
			ctx := context.Background()
			tx, err := p.receiver.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			if _, err := tx.Exec(ctx, change); err != nil {
				t.Fatal(err)
			}
			if changed := canonicalIn(t, tx, receiverRangeRows, id, id); changed == s {
				t.Fatalf("the canonical form did not change")
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// receiverChanges each change one value of the receiver's copy.
var receiverChanges = []string{
	"UPDATE received_invoice_history SET destination_code = 'CUST-002'",
	"UPDATE received_invoice_history SET sender_customer_id = '002'",
	"UPDATE received_invoice_history SET sender_office_id = 'MFV-HN-02'",
	"UPDATE received_invoice_history SET sender_office_name = 'MFV-HN'",
	"UPDATE received_invoice_history SET email_status = 'SENT'",
	"UPDATE received_invoice_history SET sent_at = sent_at + interval '1 microsecond'",
	"UPDATE received_invoice_history SET form_count = 3",
	"UPDATE received_invoice_history SET total_amount = total_amount + 0.0001",
	"UPDATE received_invoice_form SET sender_form_id = sender_form_id + 100",
	"UPDATE received_invoice_form SET file_name = 'c.pdf' WHERE file_name = 'a.pdf'",
	"UPDATE received_invoice_form SET file_path = 'x' WHERE file_path = ''",
	"UPDATE received_invoice_form SET size_bytes = size_bytes + 1 WHERE size_bytes = 1",
	"UPDATE received_invoice_form SET invoice_number = 'INVC-009' WHERE invoice_number = 'INVC-001'",
	"UPDATE received_invoice_form SET issued_at = issued_at + interval '1 millisecond' WHERE file_name = 'b.pdf'",
	"UPDATE received_invoice_form SET issue_date = issue_date - 1 WHERE file_name = 'a.pdf'",
	"UPDATE received_invoice_form SET total_amount = 1500.5001 WHERE file_name = 'a.pdf'",
	"DELETE FROM received_invoice_form WHERE file_name = 'b.pdf'",
}
