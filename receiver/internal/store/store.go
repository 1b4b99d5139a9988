// Package store is SCI-Receiver's copy of the send-invoice histories in
// PostgreSQL: it applies changes under a per-aggregate version guard, so
// events may arrive twice, late or out of order without an older state ever
// replacing a newer one or bringing a deleted history back, and it serves the
// reads of the HTTP API.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/db"
)

// History is one row of received_invoice_history with its forms: the state
// of a history as of SourceVersion.
type History struct {
	// HistoryID is SCI's id of the history.
	HistoryID int64
	// DestinationCode identifies the receiving customer.
	DestinationCode string
	// SenderCustomerID is the sender's customer id.
	SenderCustomerID string
	// SenderOfficeID is the sending office's id.
	SenderOfficeID string
	// SenderOfficeName is the sending office's display name.
	SenderOfficeName string
	// EmailStatus is the source's e-mail status (contract.Status*).
	EmailStatus string
	// SentAt is when the mail was sent (UTC).
	SentAt time.Time
	// FormCount is the number of forms.
	FormCount int
	// TotalAmount is the exact sum of the forms' totals, a decimal string
	// with four decimals (never a float).
	TotalAmount string
	// SourceVersion is the aggregate version this state comes from.
	SourceVersion int64
	// SourceEventID is the id of the event that carried this state.
	SourceEventID string
	// SourceOccurredAt is when the change was written at the source.
	SourceOccurredAt time.Time
	// SyncedAt is when this row was last written here; set by the database.
	SyncedAt time.Time
	// Deleted asks Apply to remove the history instead of storing it (its
	// final status is ERROR). Never set on what the reads return.
	Deleted bool
	// Forms are the invoices of the history, ordered by SenderFormID on reads.
	// List reads leave it empty.
	Forms []Form
}

// Form is one row of received_invoice_form.
type Form struct {
	// SenderFormID is SCI's id of the form.
	SenderFormID int64
	// FileName is the document's file name.
	FileName string
	// FilePath is where the document is stored.
	FilePath string
	// SizeBytes is the document size.
	SizeBytes int64
	// InvoiceNumber is the invoice's number.
	InvoiceNumber string
	// IssuedAt is the issue instant (UTC).
	IssuedAt time.Time
	// IssueDate is the calendar issue date in the receiver's time zone,
	// as midnight UTC of that date.
	IssueDate time.Time
	// TotalAmount is the invoice total, an exact decimal string.
	TotalAmount string
}

// Outcome says what Apply did with a change.
type Outcome int

// Outcomes of Apply.
const (
	// Applied: the history was created or replaced by a newer version.
	Applied Outcome = iota + 1
	// Deleted: the newer version deletes the history (status ERROR); the
	// deletion is remembered so older versions cannot bring it back.
	Deleted
	// Stale: a version as new or newer was applied before; nothing changed.
	Stale
)

// String names the outcome for logs: applied, deleted or stale.
func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Deleted:
		return "deleted"
	case Stale:
		return "stale"
	default:
		return fmt.Sprintf("outcome(%d)", int(o))
	}
}

// ErrNotFound is returned by Get when no history has the id.
var ErrNotFound = errors.New("history not found")

// DB is what the store needs: a pool, or a caller's transaction (then Apply
// runs in a savepoint).
type DB interface {
	db.Querier
	db.Beginner
}

// Store reads and writes the receiver's histories.
type Store struct {
	db DB
}

// New returns a store on d.
func New(d DB) *Store { return &Store{db: d} }

// Apply stores h in one transaction if h.SourceVersion is newer than every
// version applied before for this history: it deletes the history when
// h.Deleted, and otherwise upserts it and replaces its forms. An older or
// equal version changes nothing and reports Stale.
func (s *Store) Apply(ctx context.Context, h History) (Outcome, error) {
	var out Outcome
	err := db.InTx(ctx, s.db, func(tx pgx.Tx) error {
		newer, err := claimVersion(ctx, tx, h)
		if err != nil {
			return err
		}
		switch {
		case !newer:
			out = Stale
			return nil
		case h.Deleted:
			out = Deleted
			return deleteHistory(ctx, tx, h.HistoryID)
		default:
			out = Applied
			return writeHistory(ctx, tx, h)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("apply history %d version %d: %w", h.HistoryID, h.SourceVersion, err)
	}
	return out, nil
}

// claimVersion records h's version as the newest one of its aggregate and
// reports whether it was newer. The row lock it takes is held until commit,
// so changes of one aggregate are applied one at a time.
func claimVersion(ctx context.Context, tx pgx.Tx, h History) (bool, error) {
	var v int64
	err := tx.QueryRow(ctx, `
		INSERT INTO aggregate_version (aggregate_type, aggregate_id, version, deleted)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
		   SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, updated_at = clock_timestamp()
		 WHERE aggregate_version.version < EXCLUDED.version
		RETURNING version`,
		contract.AggregateTypeHistory, contract.AggregateID(h.HistoryID), h.SourceVersion, h.Deleted,
	).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("version guard: %w", err)
	}
	return true, nil
}

func deleteHistory(ctx context.Context, tx pgx.Tx, id int64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM received_invoice_history WHERE history_id = $1`, id); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

const upsertHistory = `
INSERT INTO received_invoice_history (history_id, destination_code, sender_customer_id,
       sender_office_id, sender_office_name, email_status, sent_at, form_count, total_amount,
       source_version, source_event_id, source_occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::numeric, $10, $11, $12)
ON CONFLICT (history_id) DO UPDATE SET
       destination_code = EXCLUDED.destination_code, sender_customer_id = EXCLUDED.sender_customer_id,
       sender_office_id = EXCLUDED.sender_office_id, sender_office_name = EXCLUDED.sender_office_name,
       email_status = EXCLUDED.email_status, sent_at = EXCLUDED.sent_at,
       form_count = EXCLUDED.form_count, total_amount = EXCLUDED.total_amount,
       source_version = EXCLUDED.source_version, source_event_id = EXCLUDED.source_event_id,
       source_occurred_at = EXCLUDED.source_occurred_at, synced_at = clock_timestamp()`

// insertForms inserts every form in one statement from parallel arrays.
const insertForms = `
INSERT INTO received_invoice_form (history_id, sender_form_id, file_name, file_path, size_bytes,
       invoice_number, issued_at, issue_date, total_amount)
SELECT $1, f.sender_form_id, f.file_name, f.file_path, f.size_bytes,
       f.invoice_number, f.issued_at, f.issue_date, f.total_amount::numeric
  FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[],
              $7::timestamptz[], $8::date[], $9::text[])
       AS f(sender_form_id, file_name, file_path, size_bytes, invoice_number,
            issued_at, issue_date, total_amount)`

// writeHistory upserts the history and replaces its forms, in one round trip.
func writeHistory(ctx context.Context, tx pgx.Tx, h History) error {
	n := len(h.Forms)
	ids, sizes := make([]int64, n), make([]int64, n)
	names, paths, numbers, amounts := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	issued, dates := make([]time.Time, n), make([]time.Time, n)
	for i, f := range h.Forms {
		ids[i], names[i], paths[i], sizes[i] = f.SenderFormID, f.FileName, f.FilePath, f.SizeBytes
		numbers[i], issued[i], dates[i], amounts[i] = f.InvoiceNumber, f.IssuedAt, f.IssueDate, f.TotalAmount
	}
	b := &pgx.Batch{}
	b.Queue(upsertHistory, h.HistoryID, h.DestinationCode, h.SenderCustomerID, h.SenderOfficeID,
		h.SenderOfficeName, h.EmailStatus, h.SentAt, h.FormCount, h.TotalAmount,
		h.SourceVersion, h.SourceEventID, h.SourceOccurredAt)
	b.Queue(`DELETE FROM received_invoice_form WHERE history_id = $1`, h.HistoryID)
	b.Queue(insertForms, h.HistoryID, ids, names, paths, sizes, numbers, issued, dates, amounts)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
