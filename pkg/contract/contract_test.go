package contract

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func validHistory() History {
	return History{
		HistoryID: 7, EmailStatus: StatusSent, SentAt: 1686110218,
		SenderOfficeName: "MFV-HN", DestinationCode: "CUST-001", SenderCustomerID: "001", SenderOfficeID: "MFV-HN-01",
		Forms: []Form{{FileName: "abcd.pdf", FilePath: "file://sci/", Size: 1, InvoiceNumber: "INVC-001",
			IssueDate: 1686110218222, TotalAmount: "1500", SenderFormID: 1}},
	}
}

func TestHistoryValidateNamesEachField(t *testing.T) {
	cases := []struct {
		field  string
		mutate func(*History)
	}{
		{"historyId", func(h *History) { h.HistoryID = 0 }},
		{"emailStatus", func(h *History) { h.EmailStatus = "LOST" }},
		{"sentAt", func(h *History) { h.SentAt = 0 }},
		{"sentAt", func(h *History) { h.SentAt = 1686110218222 }}, // millis in a seconds field
		{"senderOfficeName", func(h *History) { h.SenderOfficeName = "" }},
		{"destinationCode", func(h *History) { h.DestinationCode = strings.Repeat("x", MaxTextLen+1) }},
		{"senderCustomerId", func(h *History) { h.SenderCustomerID = "" }},
		{"senderOfficeId", func(h *History) { h.SenderOfficeID = "" }},
		{"forms", func(h *History) { h.Forms = nil }},
		{"forms[0].fileName", func(h *History) { h.Forms[0].FileName = "" }},
		{"forms[0].size", func(h *History) { h.Forms[0].Size = -1 }},
		{"forms[0].invoiceNumber", func(h *History) { h.Forms[0].InvoiceNumber = "" }},
		{"forms[0].issueDate", func(h *History) { h.Forms[0].IssueDate = 1686110218 }}, // seconds in a millis field
		{"forms[0].totalAmount", func(h *History) { h.Forms[0].TotalAmount = "12abc" }},
		{"forms[0].totalAmount", func(h *History) { h.Forms[0].TotalAmount = "1.00001" }},
		{"forms[0].senderFormId", func(h *History) { h.Forms[0].SenderFormID = 0 }},
		{"forms[1].senderFormId", func(h *History) { h.Forms = append(h.Forms, h.Forms[0]) }},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			h := validHistory()
			tc.mutate(&h)
			err := h.Validate()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("error %q does not name %s", err, tc.field)
			}
		})
	}
	h := validHistory()
	if err := h.Validate(); err != nil {
		t.Fatalf("valid history: %v", err)
	}
}

func TestParseAmountIsExact(t *testing.T) {
	for in, want := range map[string]string{
		"1500": "1500.0000", "0.1": "0.1000", "-12.3456": "-12.3456",
		"9999999999999999.9999": "9999999999999999.9999", "1.5e3": "1500.0000",
	} {
		r, err := ParseAmount(json.Number(in))
		if err != nil || r.FloatString(4) != want {
			t.Errorf("ParseAmount(%s) = %v, %v; want %s", in, r, err, want)
		}
	}
	for _, bad := range []string{"", "abc", "1e400", "10000000000000000", "0.00001", "1/2", "0x10", "+1", "01", ".5", "1."} {
		if _, err := ParseAmount(json.Number(bad)); err == nil {
			t.Errorf("ParseAmount(%q) accepted", bad)
		}
	}
}

func validEnvelope(t testing.TB) Envelope {
	t.Helper()
	h := validHistory()
	p, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return Envelope{EventID: "0b7f3e4e-9f43-4b4e-8a43-2f1d2b0c9a11", EventType: EventTypeHistoryChanged,
		AggregateType: AggregateTypeHistory, AggregateID: "7", Version: 1,
		OccurredAt: time.Date(2023, 6, 7, 3, 56, 58, 0, time.UTC), Payload: p}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	e := validEnvelope(t)
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.EventID != e.EventID || got.Version != 1 || got.SchemaVersion != SchemaVersion || !got.OccurredAt.Equal(e.OccurredAt) {
		t.Fatalf("round trip = %+v", got)
	}
	h, err := DecodeHistory(got.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if h.Forms[0].TotalAmount != "1500" || h.Forms[0].IssueDate != 1686110218222 {
		t.Fatalf("payload round trip = %+v", h)
	}
}

func TestEnvelopeCompatibility(t *testing.T) {
	e := validEnvelope(t)
	b, _ := e.Marshal()
	// A newer minor version with an extra optional field is accepted.
	newer := strings.Replace(string(b), `"schemaVersion":"1.0"`, `"schemaVersion":"1.3","traceId":"abc"`, 1)
	if _, err := DecodeEnvelope([]byte(newer)); err != nil {
		t.Fatalf("newer minor version rejected: %v", err)
	}
	// An unknown major version is reported as such, to be routed deliberately.
	major := strings.Replace(string(b), `"schemaVersion":"1.0"`, `"schemaVersion":"2.0"`, 1)
	if _, err := DecodeEnvelope([]byte(major)); !errors.Is(err, ErrUnsupportedSchema) {
		t.Fatalf("major 2 = %v, want ErrUnsupportedSchema", err)
	}
	// Extra payload fields are accepted.
	h := validHistory()
	p, _ := json.Marshal(h)
	withExtra := strings.Replace(string(p), `"historyId"`, `"channel":"email","historyId"`, 1)
	if _, err := DecodeHistory([]byte(withExtra)); err != nil {
		t.Fatalf("payload with extra field rejected: %v", err)
	}
}

func TestEnvelopeValidateNamesFields(t *testing.T) {
	for field, mutate := range map[string]func(*Envelope){
		"eventId":       func(e *Envelope) { e.EventID = "nope" },
		"eventType":     func(e *Envelope) { e.EventType = "" },
		"aggregateType": func(e *Envelope) { e.AggregateType = "" },
		"aggregateId":   func(e *Envelope) { e.AggregateID = "" },
		"version":       func(e *Envelope) { e.Version = 0 },
		"occurredAt":    func(e *Envelope) { e.OccurredAt = time.Time{} },
		"payload":       func(e *Envelope) { e.Payload = json.RawMessage("null") },
		"schemaVersion": func(e *Envelope) { e.SchemaVersion = "x" },
	} {
		e := validEnvelope(t)
		e.SchemaVersion = SchemaVersion
		mutate(&e)
		if err := e.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), field+":") {
			t.Errorf("%s: Validate = %v", field, err)
		}
	}
	for _, junk := range []string{"", "{", "[]", `{"eventId":1}`} {
		if _, err := DecodeEnvelope([]byte(junk)); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeEnvelope(%q) = %v, want ErrInvalid", junk, err)
		}
	}
}

func TestDecodeHistoryKeepsAmountsExactAndRefusesTrailingData(t *testing.T) {
	h := validHistory()
	h.Forms[0].TotalAmount = "1234567890123.4567" // 17 digits, beyond float64's precision
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeHistory(b)
	if err != nil || got.Forms[0].TotalAmount != h.Forms[0].TotalAmount {
		t.Fatalf("DecodeHistory = %+v, %v; want the amount %s exactly", got.Forms, err, h.Forms[0].TotalAmount)
	}
	if _, err := DecodeHistory(append(b, []byte(` {"historyId":8}`)...)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("DecodeHistory with a second object after the first = %v, want ErrInvalid", err)
	}
}

func BenchmarkDecodeEnvelopeAndHistory(b *testing.B) {
	e := validEnvelope(b)
	msg, err := e.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		env, err := DecodeEnvelope(msg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeHistory(env.Payload); err != nil {
			b.Fatal(err)
		}
	}
}
