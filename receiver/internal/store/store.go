// Package store is SCI-Receiver's copy of the send-invoice histories in
// PostgreSQL. It applies changes exactly once and in version order: every
// event id is recorded in a ledger (processed_event) in the transaction of
// its effect, so a redelivered event changes nothing, and a per-aggregate
// version guard (aggregate_version) lets events arrive late or out of order
// without an older state ever replacing a newer one or bringing a deleted
// history back, even after the ledger row of the event has been pruned. It
// also serves the reads of the HTTP API.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

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
	// Duplicate: this very event (by id) was applied before; nothing changed.
	Duplicate
)

// String names the outcome for logs: applied, deleted, stale or duplicate.
func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Deleted:
		return "deleted"
	case Stale:
		return "stale"
	case Duplicate:
		return "duplicate"
	default:
		return fmt.Sprintf("outcome(%d)", int(o))
	}
}

// ErrNotFound is returned by Get when no history has the id.
var ErrNotFound = errors.New("history not found")

// ErrRejected marks changes the database refuses for good: a cardinality
// violation (SQLSTATE class 21, e.g. an upsert meeting one row twice), a data
// exception (class 22, e.g. a NUL character in a text) or an integrity
// constraint violation (class 23). Retrying the same changes cannot help.
var ErrRejected = errors.New("rejected by the database")

// DB is what the store needs: a *pgxpool.Pool. ApplyBatch takes a
// connection of its own to run its transaction in two round trips.
type DB interface {
	db.Querier
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}

// Store reads and writes the receiver's histories.
type Store struct {
	db DB
}

// New returns a store on d.
func New(d DB) *Store { return &Store{db: d} }
