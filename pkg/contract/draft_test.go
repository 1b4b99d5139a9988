package contract

import (
	"errors"
	"strings"
	"testing"
)

func draft() History {
	return History{
		SentAt: 1686110218, SenderOfficeName: "MFV-HN", DestinationCode: "CUST-001",
		SenderCustomerID: "001", SenderOfficeID: "MFV-HN-01",
		Forms: []Form{
			{FileName: "a.pdf", FilePath: "file://sci/", Size: 1, InvoiceNumber: "INVC-001", IssueDate: 1686110218222, TotalAmount: "1500"},
			{FileName: "b.pdf", Size: 2, InvoiceNumber: "INVC-002", IssueDate: 1686110218222, TotalAmount: "0.0001"},
		},
	}
}

func TestValidateDraftAcceptsHistoryWithoutIDsAndDefaultsStatus(t *testing.T) {
	h := draft()
	if err := h.ValidateDraft(); err != nil {
		t.Fatalf("ValidateDraft = %v, want nil", err)
	}
	if h.EmailStatus != StatusSent {
		t.Fatalf("EmailStatus = %q, want %q", h.EmailStatus, StatusSent)
	}
	if h.HistoryID != 0 || h.Forms[0].SenderFormID != 0 || h.Forms[1].SenderFormID != 0 {
		t.Fatalf("ValidateDraft changed ids: %+v", h)
	}
	h.EmailStatus = StatusDelivered
	if err := h.ValidateDraft(); err != nil || h.EmailStatus != StatusDelivered {
		t.Fatalf("ValidateDraft(DELIVERED) = %v, status %q", err, h.EmailStatus)
	}
}

func TestValidateDraftNamesEveryFieldAtFault(t *testing.T) {
	tests := []struct {
		name   string
		change func(*History)
		fields []string
	}{
		{"unknown status", func(h *History) { h.EmailStatus = "LOST" }, []string{"emailStatus"}},
		{"sentAt in millis", func(h *History) { h.SentAt = 1686110218222 }, []string{"sentAt"}},
		{"no office name", func(h *History) { h.SenderOfficeName = "" }, []string{"senderOfficeName"}},
		{"no forms", func(h *History) { h.Forms = nil }, []string{"forms"}},
		{"second form bad", func(h *History) {
			h.Forms[1].FileName = ""
			h.Forms[1].TotalAmount = "1.00001"
			h.Forms[1].IssueDate = 1686110218
		}, []string{"forms[1].fileName", "forms[1].totalAmount", "forms[1].issueDate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := draft()
			tt.change(&h)
			err := h.ValidateDraft()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateDraft = %v, want ErrInvalid", err)
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f+": ") {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
			if strings.Contains(err.Error(), "historyId") || strings.Contains(err.Error(), "senderFormId") {
				t.Errorf("error %q blames an id the database assigns", err)
			}
		})
	}
}
