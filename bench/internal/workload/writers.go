package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/sender/history"
)

// GoWriter records through the Go package, history.Record, each history in
// its own transaction: the path an app embedding the package takes. The
// history is the transaction's only write, so Record runs on the pool as a
// single atomic statement (one round trip), as the package recommends.
type GoWriter struct {
	Pool *pgxpool.Pool
}

// Write implements Writer.
func (w GoWriter) Write(ctx context.Context, h contract.History) (int64, error) {
	rec, err := history.Record(ctx, w.Pool, h)
	return rec.HistoryID, err
}

// HTTPWriter records through the sender's HTTP API (POST /v1/histories).
type HTTPWriter struct {
	// BaseURL is the API's address, e.g. http://127.0.0.1:8080.
	BaseURL string
	Client  *http.Client
}

// NewHTTPWriter returns a writer keeping up to conns connections open.
func NewHTTPWriter(baseURL string, conns int) HTTPWriter {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost, t.MaxConnsPerHost = conns, conns, conns
	return HTTPWriter{BaseURL: baseURL, Client: &http.Client{Transport: t, Timeout: 30 * time.Second}}
}

// apiHistory is the POST body: the event shape without the ids the database assigns.
type apiHistory struct {
	SentAt           int64     `json:"sentAt"`
	SenderOfficeName string    `json:"senderOfficeName"`
	DestinationCode  string    `json:"destinationCode"`
	SenderCustomerID string    `json:"senderCustomerId"`
	SenderOfficeID   string    `json:"senderOfficeId"`
	Forms            []apiForm `json:"forms"`
}

type apiForm struct {
	FileName      string      `json:"fileName"`
	FilePath      string      `json:"filePath"`
	Size          int64       `json:"size"`
	InvoiceNumber string      `json:"invoiceNumber"`
	IssueDate     int64       `json:"issueDate"`
	TotalAmount   json.Number `json:"totalAmount"`
}

// Write implements Writer.
func (w HTTPWriter) Write(ctx context.Context, h contract.History) (int64, error) {
	body := apiHistory{SentAt: h.SentAt, SenderOfficeName: h.SenderOfficeName, DestinationCode: h.DestinationCode,
		SenderCustomerID: h.SenderCustomerID, SenderOfficeID: h.SenderOfficeID, Forms: make([]apiForm, len(h.Forms))}
	for i, f := range h.Forms {
		body.Forms[i] = apiForm{FileName: f.FileName, FilePath: f.FilePath, Size: f.Size,
			InvoiceNumber: f.InvoiceNumber, IssueDate: f.IssueDate, TotalAmount: f.TotalAmount}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("post history: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.BaseURL+"/v1/histories", bytes.NewReader(b))
	if err != nil {
		return 0, fmt.Errorf("post history: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post history: %w", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("post history: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(out))
	}
	var rec history.Recorded
	if err := json.Unmarshal(out, &rec); err != nil || rec.HistoryID <= 0 {
		return 0, fmt.Errorf("post history: unexpected answer %q", out)
	}
	return rec.HistoryID, nil
}
