package transform_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/receiver/internal/transform"
)

var occurred = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))

func event(h contract.History) contract.Envelope {
	return contract.Envelope{
		EventID: "3f0e4a52-7c1e-4b0a-9d51-2a8f0c1e9b10", EventType: contract.EventTypeHistoryChanged,
		AggregateType: contract.AggregateTypeHistory, AggregateID: contract.AggregateID(h.HistoryID),
		Version: 7, OccurredAt: occurred, SchemaVersion: contract.SchemaVersion,
	}
}

func payload(status string, amounts ...string) contract.History {
	h := contract.History{HistoryID: 42, EmailStatus: status, SentAt: 1714564800, SenderOfficeName: "Office",
		DestinationCode: "D", SenderCustomerID: "C", SenderOfficeID: "O"}
	for i, a := range amounts {
		h.Forms = append(h.Forms, contract.Form{FileName: "f.pdf", FilePath: "/f.pdf", Size: 2048,
			InvoiceNumber: "INV", IssueDate: 1714564800000, TotalAmount: json.Number(a), SenderFormID: int64(i + 1)})
	}
	return h
}

func TestHistoryMapsEveryField(t *testing.T) {
	h := payload(contract.StatusSent, "12.5")
	got, err := transform.History(event(h), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.HistoryID != 42 || got.DestinationCode != "D" || got.SenderCustomerID != "C" || got.SenderOfficeID != "O" ||
		got.SenderOfficeName != "Office" || got.EmailStatus != contract.StatusSent || got.Deleted {
		t.Errorf("identity fields: %+v", got)
	}
	if want := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC); !got.SentAt.Equal(want) || got.SentAt.Location() != time.UTC {
		t.Errorf("SentAt = %v, want %v UTC", got.SentAt, want)
	}
	if got.SourceVersion != 7 || got.SourceEventID != event(h).EventID || !got.SourceOccurredAt.Equal(occurred) ||
		got.SourceOccurredAt.Location() != time.UTC {
		t.Errorf("source fields: v%d %s %v", got.SourceVersion, got.SourceEventID, got.SourceOccurredAt)
	}
	f := got.Forms[0]
	if got.FormCount != 1 || len(got.Forms) != 1 || f.SizeBytes != 2048 || f.SenderFormID != 1 ||
		f.FileName != "f.pdf" || f.FilePath != "/f.pdf" || f.InvoiceNumber != "INV" || f.TotalAmount != "12.5000" ||
		!f.IssuedAt.Equal(time.UnixMilli(1714564800000)) {
		t.Errorf("form: %+v (count %d)", f, got.FormCount)
	}
	if got.TotalAmount != "12.5000" {
		t.Errorf("TotalAmount = %s", got.TotalAmount)
	}
}

func TestHistoryErrorStatusMarksDeleted(t *testing.T) {
	h := payload(contract.StatusError, "1")
	got, err := transform.History(event(h), h, nil)
	if err != nil || !got.Deleted {
		t.Fatalf("Deleted = %v, err %v; want true for ERROR", got.Deleted, err)
	}
	h = payload(contract.StatusDelivered, "1")
	if got, _ := transform.History(event(h), h, nil); got.Deleted {
		t.Fatal("DELIVERED marked deleted")
	}
}

func TestAmountsAreExact(t *testing.T) {
	cases := []struct {
		name    string
		amounts []string
		forms   []string
		total   string
	}{
		{"float trap 0.1+0.2", []string{"0.1", "0.2"}, []string{"0.1000", "0.2000"}, "0.3000"},
		{"large values", []string{"9999999999999999.9999", "9999999999999999.9999"},
			[]string{"9999999999999999.9999", "9999999999999999.9999"}, "19999999999999999.9998"},
		{"credit note", []string{"100.00", "-100.0001"}, []string{"100.0000", "-100.0001"}, "-0.0001"},
		{"exponent syntax", []string{"1.5e3", "25E-4"}, []string{"1500.0000", "0.0025"}, "1500.0025"},
		{"many small", []string{"0.0001", "0.0001", "0.0001"}, []string{"0.0001", "0.0001", "0.0001"}, "0.0003"},
		{"zero", []string{"-0"}, []string{"0.0000"}, "0.0000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := payload(contract.StatusSent, tc.amounts...)
			got, err := transform.History(event(h), h, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, f := range got.Forms {
				if f.TotalAmount != tc.forms[i] {
					t.Errorf("forms[%d] = %s, want %s", i, f.TotalAmount, tc.forms[i])
				}
			}
			if got.TotalAmount != tc.total {
				t.Errorf("total = %s, want %s", got.TotalAmount, tc.total)
			}
		})
	}
}

func TestIssueDateIsTheCalendarDateInTheConfiguredZone(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skipf("no tz database: %v", err)
	}
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no tz database: %v", err)
	}
	instant := time.Date(2024, 1, 31, 20, 30, 0, 0, time.UTC) // Feb 1 in Tokyo
	cases := []struct {
		name string
		loc  *time.Location
		at   time.Time
		want string
	}{
		{"UTC default", nil, instant, "2024-01-31"},
		{"ahead of UTC crosses into the next day", tokyo, instant, "2024-02-01"},
		{"behind UTC stays on the previous day", newYork, time.Date(2024, 3, 1, 3, 0, 0, 0, time.UTC), "2024-02-29"},
		{"exactly midnight UTC", nil, time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC), "2024-02-01"},
		{"one millisecond before midnight", nil, time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC).Add(-time.Millisecond), "2024-01-31"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := payload(contract.StatusSent, "1")
			h.Forms[0].IssueDate = tc.at.UnixMilli()
			got, err := transform.History(event(h), h, tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			f := got.Forms[0]
			if d := f.IssueDate.Format(time.DateOnly); d != tc.want || f.IssueDate.Location() != time.UTC || f.IssueDate.Hour() != 0 {
				t.Errorf("IssueDate = %v, want %s at midnight UTC", f.IssueDate, tc.want)
			}
			if !f.IssuedAt.Equal(tc.at) || f.IssuedAt.Location() != time.UTC {
				t.Errorf("IssuedAt = %v, want %v in UTC", f.IssuedAt, tc.at)
			}
		})
	}
}

func TestInvalidInputNamesTheField(t *testing.T) {
	cases := map[string]struct {
		mutate func(*contract.Envelope, *contract.History)
		field  string
	}{
		"amount not a number": {func(_ *contract.Envelope, h *contract.History) { h.Forms[1].TotalAmount = "12,50" }, "forms[1].totalAmount"},
		"amount 5 decimals":   {func(_ *contract.Envelope, h *contract.History) { h.Forms[0].TotalAmount = "0.00001" }, "forms[0].totalAmount"},
		"amount missing":      {func(_ *contract.Envelope, h *contract.History) { h.Forms[0].TotalAmount = "" }, "forms[0].totalAmount"},
		"issue date missing":  {func(_ *contract.Envelope, h *contract.History) { h.Forms[1].IssueDate = 0 }, "forms[1].issueDate"},
		"negative size":       {func(_ *contract.Envelope, h *contract.History) { h.Forms[0].Size = -1 }, "forms[0].size"},
		"sentAt missing":      {func(_ *contract.Envelope, h *contract.History) { h.SentAt = 0 }, "sentAt"},
		"foreign aggregate":   {func(e *contract.Envelope, _ *contract.History) { e.AggregateID = "43" }, "aggregateId"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := payload(contract.StatusSent, "1", "2")
			e := event(h)
			tc.mutate(&e, &h)
			_, err := transform.History(e, h, nil)
			if !errors.Is(err, contract.ErrInvalid) || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("err = %v, want contract.ErrInvalid naming %s", err, tc.field)
			}
		})
	}
}
