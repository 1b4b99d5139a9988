package contract

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Invoice history aggregate and event names.
const (
	AggregateTypeHistory    = "invoice_history"
	EventTypeHistoryChanged = "invoice_history.changed"
)

// E-mail statuses of a history. A history is recorded as SENT; a later job
// sets its final status. ERROR means the mail never reached the customer and
// the history must disappear downstream.
const (
	StatusSent      = "SENT"
	StatusDelivered = "DELIVERED"
	StatusError     = "ERROR"
)

// Statuses lists every valid e-mail status.
var Statuses = []string{StatusSent, StatusDelivered, StatusError}

// Field limits enforced by Validate. Text limits count characters (Unicode
// code points), as PostgreSQL's char_length does, so a name in any script
// gets the same limit on every path.
const (
	MaxTextLen = 255
	MaxPathLen = 1024
	MaxForms   = 500
)

// History is the payload of invoice_history.changed: the whole current state
// of one send-invoice history (the aggregated shape of SCI's history and its
// forms), so a consumer can apply any newer version without the ones before.
type History struct {
	// HistoryID is SCI's id of the history; the aggregate id is its decimal form.
	HistoryID int64 `json:"historyId"`
	// EmailStatus is one of Statuses.
	EmailStatus string `json:"emailStatus"`
	// SentAt is when the mail was sent, in Unix seconds.
	SentAt int64 `json:"sentAt"`
	// SenderOfficeName is the sending office's display name.
	SenderOfficeName string `json:"senderOfficeName"`
	// DestinationCode identifies the receiving customer.
	DestinationCode string `json:"destinationCode"`
	// SenderCustomerID is the sender's customer id.
	SenderCustomerID string `json:"senderCustomerId"`
	// SenderOfficeID is the sending office's id.
	SenderOfficeID string `json:"senderOfficeId"`
	// Forms are the invoices sent with this mail, at least one.
	Forms []Form `json:"forms"`
}

// Form is one invoice document sent with a history.
type Form struct {
	// FileName is the document's file name.
	FileName string `json:"fileName"`
	// FilePath is where the document is stored.
	FilePath string `json:"filePath"`
	// Size is the document size in bytes.
	Size int64 `json:"size"`
	// InvoiceNumber is the invoice's number.
	InvoiceNumber string `json:"invoiceNumber"`
	// IssueDate is the invoice's issue date, in Unix milliseconds.
	IssueDate int64 `json:"issueDate"`
	// TotalAmount is the invoice total, an exact decimal number.
	TotalAmount json.Number `json:"totalAmount"`
	// SenderFormID is SCI's id of the form.
	SenderFormID int64 `json:"senderFormId"`
}

// AggregateID is the aggregate id (and Kafka key) of a history.
func AggregateID(historyID int64) string { return strconv.FormatInt(historyID, 10) }

// IsKnownStatus reports whether s is one of Statuses.
func IsKnownStatus(s string) bool {
	for _, st := range Statuses {
		if s == st {
			return true
		}
	}
	return false
}

// The plausible range of sentAt and issueDate, 1990-01-01 to 2200-01-01 UTC
// inclusive, in Unix seconds: anything outside is a unit mistake
// (milliseconds in a seconds field or the reverse) or garbage. They are
// compared as integers, so no value can overflow into the range.
var (
	minUnix = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxUnix = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
)

// Validate checks every field and names all that are wrong.
func (h *History) Validate() error {
	var p problems
	if h.HistoryID <= 0 {
		p.add("historyId", "must be a positive integer")
	}
	if !IsKnownStatus(h.EmailStatus) {
		p.add("emailStatus", fmt.Sprintf("must be one of %v, got %q", Statuses, h.EmailStatus))
	}
	if h.SentAt == 0 {
		p.add("sentAt", "is required (Unix seconds)")
	} else if h.SentAt < minUnix || h.SentAt > maxUnix {
		p.add("sentAt", fmt.Sprintf("%d is not a plausible time in Unix seconds", h.SentAt))
	}
	text(&p, "senderOfficeName", h.SenderOfficeName, MaxTextLen)
	text(&p, "destinationCode", h.DestinationCode, MaxTextLen)
	text(&p, "senderCustomerId", h.SenderCustomerID, MaxTextLen)
	text(&p, "senderOfficeId", h.SenderOfficeID, MaxTextLen)
	switch {
	case len(h.Forms) == 0:
		p.add("forms", "at least one form is required")
	case len(h.Forms) > MaxForms:
		p.add("forms", fmt.Sprintf("at most %d forms, got %d", MaxForms, len(h.Forms)))
	}
	seen := make(map[int64]int, len(h.Forms))
	for i := range h.Forms {
		f := &h.Forms[i]
		at := fmt.Sprintf("forms[%d].", i)
		text(&p, at+"fileName", f.FileName, MaxTextLen)
		if problem := TextProblem(f.FilePath, MaxPathLen); problem != "" {
			p.add(at+"filePath", problem)
		}
		if f.Size < 0 {
			p.add(at+"size", "must not be negative")
		}
		text(&p, at+"invoiceNumber", f.InvoiceNumber, MaxTextLen)
		if f.IssueDate == 0 {
			p.add(at+"issueDate", "is required (Unix milliseconds)")
		} else if f.IssueDate < minUnix*1000 || f.IssueDate > maxUnix*1000 {
			p.add(at+"issueDate", fmt.Sprintf("%d is not a plausible time in Unix milliseconds", f.IssueDate))
		}
		if _, err := ParseAmount(f.TotalAmount); err != nil {
			p.add(at+"totalAmount", err.Error())
		}
		if f.SenderFormID <= 0 {
			p.add(at+"senderFormId", "must be a positive integer")
		} else if j, dup := seen[f.SenderFormID]; dup {
			p.add(at+"senderFormId", fmt.Sprintf("%d repeats forms[%d]", f.SenderFormID, j))
		} else {
			seen[f.SenderFormID] = i
		}
	}
	return p.err()
}

// text checks a required text field.
func text(p *problems, field, v string, limit int) {
	if v == "" {
		p.add(field, "is required")
	} else if problem := TextProblem(v, limit); problem != "" {
		p.add(field, problem)
	}
}

// TextProblem says what is wrong with a text value under limit characters,
// or "" (an empty value included: whether it is required is the caller's
// rule). Every text field of the contract follows it. PostgreSQL text
// holds neither invalid UTF-8 nor NUL, so both are refused here, naming the
// field, rather than failing in the database; the limit counts characters.
func TextProblem(v string, limit int) string {
	switch {
	case !utf8.ValidString(v):
		return "is not valid UTF-8"
	case strings.IndexByte(v, 0) >= 0:
		return `must not contain NUL (\u0000)`
	case utf8.RuneCountInString(v) > limit:
		return fmt.Sprintf("longer than %d characters", limit)
	}
	return ""
}

// jsonNumber is the JSON number grammar; big.Rat alone would also take
// fractions ("1/2") and hexadecimal.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// amountLimit bounds totals to what NUMERIC(20,4) holds downstream.
var amountLimit = new(big.Rat).SetInt64(1e16)

// ParseAmount parses an exact decimal amount (JSON number syntax) and checks
// it fits the receiver's column: |amount| < 10^16 with at most 4 decimals.
func ParseAmount(n json.Number) (*big.Rat, error) {
	if n == "" {
		return nil, fmt.Errorf("is required")
	}
	if !jsonNumber.MatchString(string(n)) {
		return nil, fmt.Errorf("%q is not a decimal number", string(n))
	}
	r, ok := new(big.Rat).SetString(string(n))
	if !ok {
		return nil, fmt.Errorf("%q is not a decimal number", string(n))
	}
	if new(big.Rat).Abs(r).Cmp(amountLimit) >= 0 {
		return nil, fmt.Errorf("%s is too large", string(n))
	}
	scaled := new(big.Rat).Mul(r, big.NewRat(10000, 1))
	if !scaled.IsInt() {
		return nil, fmt.Errorf("%s has more than 4 decimal places", string(n))
	}
	return r, nil
}

// DecodeHistory parses and validates a history payload. Unknown fields are
// accepted (a newer minor schema version may add optional ones). Invalid
// UTF-8 is refused, naming the field, instead of becoming U+FFFD.
func DecodeHistory(b []byte) (History, error) {
	if path, bad := InvalidUTF8Path(b); bad {
		return History{}, fmt.Errorf("%w: %s: is not valid UTF-8", ErrInvalid, path)
	}
	var h History
	// Unmarshal, not a Decoder: one pass with no decoder to allocate per
	// event, and trailing data after the object is refused. TotalAmount is a
	// json.Number field, so amounts stay exact without UseNumber.
	if err := json.Unmarshal(b, &h); err != nil {
		return History{}, fmt.Errorf("%w: history payload: %v", ErrInvalid, err)
	}
	if err := h.Validate(); err != nil {
		return History{}, err
	}
	return h, nil
}

// DecodeForApply decodes a history payload as a consumer applies it. An
// ERROR (a deletion) needs only a positive historyId: it is returned with
// only HistoryID and EmailStatus set, whatever the rest of the payload
// holds, because a deletion must always apply, also for a history whose
// stored fields no longer pass validation (rows edited at the source).
// Any other status must pass DecodeHistory.
func DecodeForApply(b []byte) (History, error) {
	var key struct {
		HistoryID   int64  `json:"historyId"`
		EmailStatus string `json:"emailStatus"`
	}
	if err := json.Unmarshal(b, &key); err == nil && key.EmailStatus == StatusError {
		if key.HistoryID <= 0 {
			return History{}, fmt.Errorf("%w: historyId: must be a positive integer", ErrInvalid)
		}
		return History{HistoryID: key.HistoryID, EmailStatus: StatusError}, nil
	}
	return DecodeHistory(b)
}
