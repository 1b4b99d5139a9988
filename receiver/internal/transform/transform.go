// Package transform maps SCI's history event onto SCI-Receiver's rows: Unix
// seconds and milliseconds become instants and calendar dates (in the
// receiver's time zone), JSON decimal amounts become exact decimal strings
// for NUMERIC columns (never float64) and the history total is their exact
// sum. It is pure: no I/O, no clock.
package transform

import (
	"fmt"
	"math/big"
	"time"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

// amountScale is the number of decimals of the receiver's NUMERIC columns.
const amountScale = 4

// maxHistoryTotal bounds |total|: received_invoice_history.total_amount is
// NUMERIC(24,4).
var maxHistoryTotal = new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(20), nil))

// History maps a history event onto the receiver's row. loc is the time
// zone of the issue dates (nil means UTC). An ERROR status yields a row with
// Deleted set and only the id and the event's coordinates. Errors wrap contract.ErrInvalid and name the field at fault.
func History(env contract.Envelope, h contract.History, loc *time.Location) (store.History, error) {
	if loc == nil {
		loc = time.UTC
	}
	if want := contract.AggregateID(h.HistoryID); env.AggregateID != want {
		return store.History{}, invalid("aggregateId", "%q does not match payload historyId %d", env.AggregateID, h.HistoryID)
	}
	if h.EmailStatus == contract.StatusError {
		// A deletion needs only the id and the version: the rest of an
		// ERROR payload may no longer be valid (contract.DecodeForApply).
		return store.History{HistoryID: h.HistoryID, EmailStatus: h.EmailStatus, SourceVersion: env.Version,
			SourceEventID: env.EventID, SourceOccurredAt: env.OccurredAt.UTC(), Deleted: true}, nil
	}
	if h.SentAt == 0 {
		return store.History{}, invalid("sentAt", "is required (Unix seconds)")
	}
	out := store.History{
		HistoryID:        h.HistoryID,
		DestinationCode:  h.DestinationCode,
		SenderCustomerID: h.SenderCustomerID,
		SenderOfficeID:   h.SenderOfficeID,
		SenderOfficeName: h.SenderOfficeName,
		EmailStatus:      h.EmailStatus,
		SentAt:           time.Unix(h.SentAt, 0).UTC(),
		FormCount:        len(h.Forms),
		SourceVersion:    env.Version,
		SourceEventID:    env.EventID,
		SourceOccurredAt: env.OccurredAt.UTC(),
		Deleted:          h.EmailStatus == contract.StatusError,
		Forms:            make([]store.Form, 0, len(h.Forms)),
	}
	total := new(big.Rat)
	for i, f := range h.Forms {
		row, amount, err := form(i, f, loc)
		if err != nil {
			return store.History{}, err
		}
		total.Add(total, amount)
		out.Forms = append(out.Forms, row)
	}
	if new(big.Rat).Abs(total).Cmp(maxHistoryTotal) >= 0 {
		return store.History{}, invalid("forms[].totalAmount", "sum %s does not fit NUMERIC(24,4)", total.FloatString(amountScale))
	}
	out.TotalAmount = total.FloatString(amountScale)
	return out, nil
}

// form maps forms[i] and returns its amount for the history total.
func form(i int, f contract.Form, loc *time.Location) (store.Form, *big.Rat, error) {
	at := func(field string) string { return fmt.Sprintf("forms[%d].%s", i, field) }
	amount, err := contract.ParseAmount(f.TotalAmount)
	if err != nil {
		return store.Form{}, nil, invalid(at("totalAmount"), "%v", err)
	}
	if f.IssueDate == 0 {
		return store.Form{}, nil, invalid(at("issueDate"), "is required (Unix milliseconds)")
	}
	if f.Size < 0 {
		return store.Form{}, nil, invalid(at("size"), "must not be negative, got %d", f.Size)
	}
	issued := time.UnixMilli(f.IssueDate)
	y, m, d := issued.In(loc).Date()
	return store.Form{
		SenderFormID:  f.SenderFormID,
		FileName:      f.FileName,
		FilePath:      f.FilePath,
		SizeBytes:     f.Size,
		InvoiceNumber: f.InvoiceNumber,
		IssuedAt:      issued.UTC(),
		IssueDate:     time.Date(y, m, d, 0, 0, 0, 0, time.UTC),
		TotalAmount:   amount.FloatString(amountScale),
	}, amount, nil
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", contract.ErrInvalid, field, fmt.Sprintf(format, args...))
}
