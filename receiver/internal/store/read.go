package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrBadCursor is returned by ListByDestination for a cursor it did not issue.
var ErrBadCursor = errors.New("malformed cursor")

// Page is one page of a destination's histories, newest first.
type Page struct {
	// Items are the histories, without their forms.
	Items []History
	// NextCursor fetches the next page; empty on the last page.
	NextCursor string
}

const historyColumns = `h.history_id, h.destination_code, h.sender_customer_id, h.sender_office_id,
       h.sender_office_name, h.email_status, h.sent_at, h.form_count, h.total_amount::text,
       h.source_version, h.source_event_id::text, h.source_occurred_at, h.synced_at`

func historyFields(h *History) []any {
	return []any{&h.HistoryID, &h.DestinationCode, &h.SenderCustomerID, &h.SenderOfficeID,
		&h.SenderOfficeName, &h.EmailStatus, &h.SentAt, &h.FormCount, &h.TotalAmount,
		&h.SourceVersion, &h.SourceEventID, &h.SourceOccurredAt, &h.SyncedAt}
}

// utc puts the instants pgx read in the local zone into UTC.
func (h *History) utc() {
	h.SentAt, h.SourceOccurredAt, h.SyncedAt = h.SentAt.UTC(), h.SourceOccurredAt.UTC(), h.SyncedAt.UTC()
}

// Get returns the history with its forms, or ErrNotFound. One statement
// reads both, so they come from the same snapshot even while Apply runs.
func (s *Store) Get(ctx context.Context, historyID int64) (History, error) {
	rows, err := s.db.Query(ctx, `
		SELECT `+historyColumns+`,
		       f.sender_form_id, f.file_name, f.file_path, f.size_bytes, f.invoice_number,
		       f.issued_at, f.issue_date, f.total_amount::text
		  FROM received_invoice_history h
		  LEFT JOIN received_invoice_form f ON f.history_id = h.history_id
		 WHERE h.history_id = $1
		 ORDER BY f.sender_form_id`, historyID)
	if err != nil {
		return History{}, fmt.Errorf("get history %d: %w", historyID, err)
	}
	defer rows.Close()
	var h History
	found := false
	for rows.Next() {
		var f struct {
			id, size                   *int64
			name, path, number, amount *string
			issuedAt, issueDate        *time.Time
		}
		dest := append(historyFields(&h), &f.id, &f.name, &f.path, &f.size, &f.number,
			&f.issuedAt, &f.issueDate, &f.amount)
		if err := rows.Scan(dest...); err != nil {
			return History{}, fmt.Errorf("get history %d: %w", historyID, err)
		}
		found = true
		if f.id != nil {
			h.Forms = append(h.Forms, Form{SenderFormID: *f.id, FileName: *f.name, FilePath: *f.path,
				SizeBytes: *f.size, InvoiceNumber: *f.number, IssuedAt: f.issuedAt.UTC(),
				IssueDate: *f.issueDate, TotalAmount: *f.amount})
		}
	}
	if err := rows.Err(); err != nil {
		return History{}, fmt.Errorf("get history %d: %w", historyID, err)
	}
	if !found {
		return History{}, fmt.Errorf("get history %d: %w", historyID, ErrNotFound)
	}
	h.utc()
	return h, nil
}

// ListByDestination returns up to limit histories of a destination, newest
// sent first (ties by history id, descending), starting after cursor (empty:
// from the newest). Paging is by key, so rows written meanwhile neither
// repeat nor shift later pages.
func (s *Store) ListByDestination(ctx context.Context, destinationCode string, limit int, cursor string) (Page, error) {
	if limit < 1 {
		return Page{}, fmt.Errorf("list histories: limit %d: must be positive", limit)
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return Page{}, err
	}
	q := `SELECT ` + historyColumns + ` FROM received_invoice_history h WHERE h.destination_code = $1`
	args := []any{destinationCode, limit + 1}
	if after != nil {
		q += ` AND (h.sent_at, h.history_id) < ($3, $4)`
		args = append(args, after.sentAt, after.historyID)
	}
	q += ` ORDER BY h.sent_at DESC, h.history_id DESC LIMIT $2`
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return Page{}, fmt.Errorf("list histories of %q: %w", destinationCode, err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (History, error) {
		var h History
		err := r.Scan(historyFields(&h)...)
		h.utc()
		return h, err
	})
	if err != nil {
		return Page{}, fmt.Errorf("list histories of %q: %w", destinationCode, err)
	}
	p := Page{Items: items}
	if len(items) > limit {
		p.Items = items[:limit]
		last := p.Items[limit-1]
		p.NextCursor = encodeCursor(key{sentAt: last.SentAt, historyID: last.HistoryID})
	}
	return p, nil
}

// key is the position of a row in the (sent_at DESC, history_id DESC) order.
type key struct {
	sentAt    time.Time
	historyID int64
}

// Cursors are opaque to clients: "v1:<sent_at unix microseconds>:<history id>"
// in unpadded base64url. Microseconds are PostgreSQL's timestamp precision.
func encodeCursor(k key) string {
	raw := "v1:" + strconv.FormatInt(k.sentAt.UnixMicro(), 10) + ":" + strconv.FormatInt(k.historyID, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(c string) (*key, error) {
	if c == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, ErrBadCursor
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 3 || parts[0] != "v1" {
		return nil, ErrBadCursor
	}
	micros, err1 := strconv.ParseInt(parts[1], 10, 64)
	id, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return nil, ErrBadCursor
	}
	return &key{sentAt: time.UnixMicro(micros).UTC(), historyID: id}, nil
}
