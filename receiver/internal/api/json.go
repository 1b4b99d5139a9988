package api

import (
	"time"

	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

// historyJSON is a history in list pages (without forms).
type historyJSON struct {
	HistoryID        int64     `json:"historyId"`
	DestinationCode  string    `json:"destinationCode"`
	SenderCustomerID string    `json:"senderCustomerId"`
	SenderOfficeID   string    `json:"senderOfficeId"`
	SenderOfficeName string    `json:"senderOfficeName"`
	EmailStatus      string    `json:"emailStatus"`
	SentAt           time.Time `json:"sentAt"`
	FormCount        int       `json:"formCount"`
	TotalAmount      string    `json:"totalAmount"`
	SourceVersion    int64     `json:"sourceVersion"`
	SourceOccurredAt time.Time `json:"sourceOccurredAt"`
	SyncedAt         time.Time `json:"syncedAt"`
}

// detailJSON is one history with its forms.
type detailJSON struct {
	historyJSON
	Forms []formJSON `json:"forms"`
}

type formJSON struct {
	SenderFormID  int64     `json:"senderFormId"`
	FileName      string    `json:"fileName"`
	FilePath      string    `json:"filePath"`
	SizeBytes     int64     `json:"sizeBytes"`
	InvoiceNumber string    `json:"invoiceNumber"`
	IssuedAt      time.Time `json:"issuedAt"`
	IssueDate     string    `json:"issueDate"`
	TotalAmount   string    `json:"totalAmount"`
}

type listJSON struct {
	Items      []historyJSON `json:"items"`
	NextCursor string        `json:"nextCursor"`
}

func summaryOf(h store.History) historyJSON {
	return historyJSON{
		HistoryID: h.HistoryID, DestinationCode: h.DestinationCode, SenderCustomerID: h.SenderCustomerID,
		SenderOfficeID: h.SenderOfficeID, SenderOfficeName: h.SenderOfficeName, EmailStatus: h.EmailStatus,
		SentAt: h.SentAt.UTC(), FormCount: h.FormCount, TotalAmount: h.TotalAmount,
		SourceVersion: h.SourceVersion, SourceOccurredAt: h.SourceOccurredAt.UTC(), SyncedAt: h.SyncedAt.UTC(),
	}
}

func detailOf(h store.History) detailJSON {
	d := detailJSON{historyJSON: summaryOf(h), Forms: make([]formJSON, 0, len(h.Forms))}
	for _, f := range h.Forms {
		d.Forms = append(d.Forms, formJSON{
			SenderFormID: f.SenderFormID, FileName: f.FileName, FilePath: f.FilePath, SizeBytes: f.SizeBytes,
			InvoiceNumber: f.InvoiceNumber, IssuedAt: f.IssuedAt.UTC(), IssueDate: f.IssueDate.Format(time.DateOnly),
			TotalAmount: f.TotalAmount,
		})
	}
	return d
}
