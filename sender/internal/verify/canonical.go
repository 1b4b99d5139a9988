package verify

import (
	"fmt"
	"strings"
)

// The canonical form of a history is one text, built in SQL on either side
// from that side's own rows, equal on both sides exactly when the receiver
// holds what the transform makes of the sender's state:
//
//	["<historyId>", "<destinationCode>", "<senderCustomerId>", "<senderOfficeId>",
//	 "<senderOfficeName>", "<emailStatus>", "<sentAt>", "<formCount>", "<totalAmount>",
//	 [["<senderFormId>", "<fileName>", "<filePath>", "<size>", "<invoiceNumber>",
//	   "<issuedAt>", "<issueDate>", "<totalAmount>"], ...]]
//
// the text of a jsonb array of strings (jsonb's output is normalized, so
// every value is quoted, escaped and spaced the same way on both sides, even
// on different PostgreSQL versions), forms ordered by sender form id; instants as UTC
// "YYYY-MM-DDTHH:MM:SS.ffffffZ" whatever the session time zone; the issue
// date as "YYYY-MM-DD" in the receiver's time zone; amounts rounded to the
// four decimals of the receiver's NUMERIC columns. Only the values are
// compared: versions, event ids and sync times are not state.
//
// Each side supplies typed SQL expressions for the fields; the formatting
// below is shared, so the two sides cannot format a field differently.

// formExprs are SQL expressions of one form's fields (f is the form row).
type formExprs struct {
	ID, FileName, FilePath, Size, InvoiceNumber string
	IssuedAt                                    string // timestamptz
	IssueDate                                   string // date
	Total                                       string // numeric
}

// historyExprs are SQL expressions of one history's fields. The forms are
// aggregated once per history in a lateral subquery aliased fa, whose
// column fa.list is the forms' canonical JSON array.
type historyExprs struct {
	ID, DestinationCode, SenderCustomerID, SenderOfficeID, SenderOfficeName, EmailStatus string
	SentAt                                                                               string // timestamptz
	FormCount                                                                            string // integer
	Total                                                                                string // numeric
	// FormsFrom is the FROM clause of the history's forms, aliased f;
	// FormsOrder orders them by sender form id; FormsExtra are more output
	// columns of fa (for fields computed from the forms).
	FormsFrom, FormsOrder, FormsExtra string
	Form                              formExprs
}

func textOf(x string) string { return "(" + x + ")::text" }

func instantOf(x string) string {
	return `to_char((` + x + `) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
}

func dateOf(x string) string { return "to_char(" + x + ", 'YYYY-MM-DD')" }

func amountOf(x string) string { return "round(" + x + ", 4)::text" }

func array(items ...string) string { return "jsonb_build_array(" + strings.Join(items, ", ") + ")" }

// canonical is the SQL expression of a history's canonical text.
func (h historyExprs) canonical() string {
	return array(textOf(h.ID), h.DestinationCode, h.SenderCustomerID, h.SenderOfficeID, h.SenderOfficeName,
		h.EmailStatus, instantOf(h.SentAt), textOf(h.FormCount), amountOf(h.Total), "fa.list") + "::text"
}

// formsLateral is the lateral subquery fa that aggregates the forms.
func (h historyExprs) formsLateral() string {
	f := h.Form
	form := array(textOf(f.ID), f.FileName, f.FilePath, textOf(f.Size), f.InvoiceNumber,
		instantOf(f.IssuedAt), dateOf(f.IssueDate), amountOf(f.Total))
	return fmt.Sprintf("CROSS JOIN LATERAL (SELECT coalesce(jsonb_agg(%s ORDER BY %s), '[]'::jsonb) AS list%s FROM %s) fa",
		form, h.FormsOrder, h.FormsExtra, h.FormsFrom)
}

// senderExprs read a row s of history_aggregate_shape (the event shape,
// computed in one place from SCI's tables) as the receiver's transform
// would: sentAt seconds and issueDate milliseconds become instants, the
// issue date is taken in time zone tz (a SQL parameter), the total is the
// exact sum of the forms.
func senderExprs(tz string) historyExprs {
	issued := "(timestamptz 'epoch' + (f->>'issueDate')::bigint * interval '1 millisecond')"
	return historyExprs{
		ID: "s.history_id", DestinationCode: "s.destination_code", SenderCustomerID: "s.sender_customer_id",
		SenderOfficeID: "s.sender_office_id", SenderOfficeName: "s.sender_office_name", EmailStatus: "s.email_status",
		SentAt:     "to_timestamp(s.sent_at)",
		FormCount:  "fa.n",
		Total:      "fa.total",
		FormsFrom:  "jsonb_array_elements(s.forms) f",
		FormsOrder: "(f->>'senderFormId')::bigint",
		FormsExtra: ", count(*) AS n, coalesce(sum((f->>'totalAmount')::numeric), 0) AS total",
		Form: formExprs{
			ID: "(f->>'senderFormId')::bigint", FileName: "f->>'fileName'", FilePath: "f->>'filePath'",
			Size: "(f->>'size')::bigint", InvoiceNumber: "f->>'invoiceNumber'",
			IssuedAt:  issued,
			IssueDate: "(" + issued + " AT TIME ZONE " + tz + ")::date",
			Total:     "(f->>'totalAmount')::numeric",
		},
	}
}

// receiverExprs read a row h of received_invoice_history and its forms.
var receiverExprs = historyExprs{
	ID: "h.history_id", DestinationCode: "h.destination_code", SenderCustomerID: "h.sender_customer_id",
	SenderOfficeID: "h.sender_office_id", SenderOfficeName: "h.sender_office_name", EmailStatus: "h.email_status",
	SentAt: "h.sent_at", FormCount: "h.form_count", Total: "h.total_amount",
	FormsFrom:  "received_invoice_form f WHERE f.history_id = h.history_id",
	FormsOrder: "f.sender_form_id",
	Form: formExprs{
		ID: "f.sender_form_id", FileName: "f.file_name", FilePath: "f.file_path", Size: "f.size_bytes",
		InvoiceNumber: "f.invoice_number", IssuedAt: "f.issued_at", IssueDate: "f.issue_date", Total: "f.total_amount",
	},
}

// The per-row queries return (history id, canonical text) of the histories
// that should be (sender) or are (receiver) at the receiver, for ids from
// $1 to $2 (inclusive). The id queries look only at the ids in the array
// $3 (between $1 and $2, their least and greatest). Sender queries take the
// receiver's time zone as their last parameter.
var (
	senderRangeRows = `SELECT s.history_id, ` + senderExprs("$3").canonical() + `
	  FROM history_aggregate_shape($1, $2) s ` + senderExprs("$3").formsLateral() + `
	 WHERE s.email_status <> 'ERROR'`
	senderIDRows = `SELECT s.history_id, ` + senderExprs("$4").canonical() + `
	  FROM history_aggregate_shape($1, $2) s ` + senderExprs("$4").formsLateral() + `
	 WHERE s.email_status <> 'ERROR' AND s.history_id = ANY($3::bigint[])`
	receiverRangeRows = `SELECT h.history_id, ` + receiverExprs.canonical() + `
	  FROM received_invoice_history h ` + receiverExprs.formsLateral() + `
	 WHERE h.history_id BETWEEN $1 AND $2`
	receiverIDRows = `SELECT h.history_id, ` + receiverExprs.canonical() + `
	  FROM received_invoice_history h ` + receiverExprs.formsLateral() + `
	 WHERE h.history_id BETWEEN $1 AND $2 AND h.history_id = ANY($3::bigint[])`
)

// hashed turns a per-row query into (id, md5 of the canonical text).
func hashed(rows string) string {
	return "SELECT c.id, md5(c.canon) FROM (" + rows + ") c(id, canon)"
}

// summed turns a per-row query into the chunk's (row count, checksum): the
// md5 of every "id:md5(canonical)" in id order.
func summed(rows string) string {
	return `SELECT count(*), coalesce(md5(string_agg(c.id::text || ':' || md5(c.canon), ',' ORDER BY c.id)), '')
	  FROM (` + rows + `) c(id, canon)`
}
