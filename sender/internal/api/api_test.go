package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// seedBody is the seed payload SCI sends.
const seedBody = `{"sentAt":1686110218,"senderOfficeName":"MFV-HN","destinationCode":"CUST-001","senderCustomerId":"001",` +
	`"senderOfficeId":"MFV-HN-01","forms":[{"fileName":"abcd.pdf","filePath":"file://sci/","size":1,"invoiceNumber":"INVC-001",` +
	`"issueDate":1686110218222,"totalAmount":1500,"senderFormId":1}]}`

func newTestHandler(t testing.TB) (http.Handler, *pgxpool.Pool) {
	t.Helper()
	pool := testsupport.MigratedDatabase(t, migrations.Sender).Pool
	h, err := NewHandler(Config{}, pool, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return h, pool
}

func do(h http.Handler, method, path, contentType string, body io.Reader) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, body)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// seedWith returns the seed body with one field replaced (or removed, when
// value is nil) at a dotted path such as "forms.0.size".
func seedWith(t *testing.T, path string, value any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(seedBody), &m); err != nil {
		t.Fatal(err)
	}
	parent, key := m, path
	if rest, ok := strings.CutPrefix(path, "forms.0."); ok {
		parent, key = m["forms"].([]any)[0].(map[string]any), rest
	}
	if value == nil {
		delete(parent, key)
	} else {
		parent[key] = value
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBadRequestsAnswerClearlyAndWriteNothing(t *testing.T) {
	h, pool := newTestHandler(t)
	const js = "application/json"
	huge := `{"senderOfficeName":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`
	tests := []struct {
		name, method, path, contentType string
		body                            string
		unknownLength                   bool
		status                          int
		field, text                     string // field named in fields; text in error
	}{
		{"no content type", "POST", "/v1/histories", "", seedBody, false, 415, "", "application/json"},
		{"text content type", "POST", "/v1/histories", "text/plain", seedBody, false, 415, "", "text/plain"},
		{"empty body", "POST", "/v1/histories", js, "", false, 400, "", "empty"},
		{"malformed JSON", "POST", "/v1/histories", js, "{\n\"sentAt\": 1,}", false, 400, "", "line 2, column 13"},
		{"truncated JSON", "POST", "/v1/histories", js, `{"sentAt": 1`, false, 400, "", "malformed JSON"},
		{"array body", "POST", "/v1/histories", js, `[1]`, false, 400, "", "JSON object"},
		{"trailing data", "POST", "/v1/histories", js, seedBody + `{}`, false, 400, "", "after"},
		{"historyId is not input", "POST", "/v1/histories", js, seedWith(t, "historyId", 7), false, 400, "historyId", "unknown field"},
		{"unknown form field", "POST", "/v1/histories", js, seedWith(t, "forms.0.color", "red"), false, 400, "forms[0].color", "unknown field"},
		{"oversize with length", "POST", "/v1/histories", js, huge, false, 413, "", "524288 bytes"},
		{"oversize streamed", "POST", "/v1/histories", js, huge, true, 413, "", "524288 bytes"},
		{"sentAt a string", "POST", "/v1/histories", js, seedWith(t, "sentAt", "x"), false, 422, "sentAt", "integer"},
		{"size a fraction", "POST", "/v1/histories", js, seedWith(t, "forms.0.size", 1.5), false, 422, "forms[0].size", "integer"},
		{"amount a string", "POST", "/v1/histories", js, seedWith(t, "forms.0.totalAmount", "1500"), false, 422, "forms[0].totalAmount", "JSON number"},
		{"forms an object", "POST", "/v1/histories", js, seedWith(t, "forms", map[string]any{}), false, 422, "forms", "array"},
		{"no sentAt", "POST", "/v1/histories", js, seedWith(t, "sentAt", nil), false, 422, "sentAt", ""},
		{"no senderOfficeName", "POST", "/v1/histories", js, seedWith(t, "senderOfficeName", nil), false, 422, "senderOfficeName", ""},
		{"no destinationCode", "POST", "/v1/histories", js, seedWith(t, "destinationCode", nil), false, 422, "destinationCode", ""},
		{"no senderCustomerId", "POST", "/v1/histories", js, seedWith(t, "senderCustomerId", nil), false, 422, "senderCustomerId", ""},
		{"no senderOfficeId", "POST", "/v1/histories", js, seedWith(t, "senderOfficeId", nil), false, 422, "senderOfficeId", ""},
		{"no forms", "POST", "/v1/histories", js, seedWith(t, "forms", nil), false, 422, "forms", ""},
		{"no fileName", "POST", "/v1/histories", js, seedWith(t, "forms.0.fileName", nil), false, 422, "forms[0].fileName", ""},
		{"no invoiceNumber", "POST", "/v1/histories", js, seedWith(t, "forms.0.invoiceNumber", nil), false, 422, "forms[0].invoiceNumber", ""},
		{"no issueDate", "POST", "/v1/histories", js, seedWith(t, "forms.0.issueDate", nil), false, 422, "forms[0].issueDate", ""},
		{"no totalAmount", "POST", "/v1/histories", js, seedWith(t, "forms.0.totalAmount", nil), false, 422, "forms[0].totalAmount", ""},
		{"sentAt in millis", "POST", "/v1/histories", js, seedWith(t, "sentAt", 1686110218222), false, 422, "sentAt", ""},
		{"too precise amount", "POST", "/v1/histories", js, seedWith(t, "forms.0.totalAmount", 1.23456), false, 422, "forms[0].totalAmount", ""},
		{"negative size", "POST", "/v1/histories", js, seedWith(t, "forms.0.size", -1), false, 422, "forms[0].size", ""},
		{"unknown initial status", "POST", "/v1/histories", js, seedWith(t, "emailStatus", "LOST"), false, 422, "emailStatus", ""},
		{"id not a number", "PUT", "/v1/histories/abc/status", js, `{"emailStatus":"ERROR"}`, false, 400, "historyId", ""},
		{"id zero", "PUT", "/v1/histories/0/status", js, `{"emailStatus":"ERROR"}`, false, 400, "historyId", ""},
		{"unknown status", "PUT", "/v1/histories/1/status", js, `{"emailStatus":"LOST"}`, false, 422, "emailStatus", ""},
		{"no status", "PUT", "/v1/histories/1/status", js, `{}`, false, 422, "emailStatus", ""},
		{"unknown status field", "PUT", "/v1/histories/1/status", js, `{"status":"ERROR"}`, false, 400, "status", ""},
		{"wrong method", "GET", "/v1/histories", "", "", false, 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.unknownLength {
				body = io.MultiReader(body)
			}
			w := do(h, tt.method, tt.path, tt.contentType, body)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			if tt.status != 405 {
				checkErrorBody(t, w.Body.Bytes(), tt.field, tt.text)
			}
			var n int
			if err := pool.QueryRow(context.Background(),
				`SELECT (SELECT count(*) FROM send_invoice_history) + (SELECT count(*) FROM transaction_outbox)`).Scan(&n); err != nil || n != 0 {
				t.Fatalf("%d rows written (%v), want none", n, err)
			}
		})
	}
}

func checkErrorBody(t *testing.T, raw []byte, field, text string) {
	t.Helper()
	var b errorBody
	if err := json.Unmarshal(raw, &b); err != nil || b.Error == "" {
		t.Fatalf("error body %s: %v", raw, err)
	}
	if !strings.Contains(b.Error, text) {
		t.Errorf("error %q does not say %q", b.Error, text)
	}
	if field == "" {
		return
	}
	if len(b.Fields) != 1 || b.Fields[0].Field != field || b.Fields[0].Problem == "" {
		t.Errorf("fields %+v, want exactly %s with a problem", b.Fields, field)
	}
}

func TestRecordThenSetStatus(t *testing.T) {
	h, pool := newTestHandler(t)
	ctx := context.Background()
	w := do(h, "POST", "/v1/histories", "application/json; charset=utf-8", strings.NewReader(seedBody))
	if w.Code != http.StatusCreated {
		t.Fatalf("POST = %d %s", w.Code, w.Body)
	}
	var rec statusResponse
	if err := json.Unmarshal(w.Body.Bytes(), &rec); err != nil || rec.HistoryID <= 0 || rec.Version != 1 {
		t.Fatalf("POST answered %s (%v), want a history id at version 1", w.Body, err)
	}
	if loc := w.Header().Get("Location"); loc != "/v1/histories/"+contract.AggregateID(rec.HistoryID) {
		t.Fatalf("Location %q", loc)
	}
	var payload []byte
	if err := pool.QueryRow(ctx, `SELECT payload FROM transaction_outbox WHERE aggregate_id = $1 AND version = 1`,
		contract.AggregateID(rec.HistoryID)).Scan(&payload); err != nil {
		t.Fatalf("outbox row of version 1: %v", err)
	}
	got, err := contract.DecodeHistory(payload)
	if err != nil || got.SentAt != 1686110218 || got.Forms[0].IssueDate != 1686110218222 || got.EmailStatus != contract.StatusSent {
		t.Fatalf("published %s (%v)", payload, err)
	}

	path := "/v1/histories/" + contract.AggregateID(rec.HistoryID) + "/status"
	w = do(h, "PUT", path, "application/json", strings.NewReader(`{"emailStatus":"ERROR"}`))
	if w.Code != http.StatusOK || w.Body.String() != `{"historyId":`+contract.AggregateID(rec.HistoryID)+`,"version":2}`+"\n" {
		t.Fatalf("PUT = %d %s, want 200 at version 2", w.Code, w.Body)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM transaction_outbox`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d outbox rows (%v), want 2", n, err)
	}

	w = do(h, "PUT", "/v1/histories/987654/status", "application/json", bytes.NewReader([]byte(`{"emailStatus":"DELIVERED"}`)))
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "987654") {
		t.Fatalf("PUT unknown = %d %s, want 404 naming the id", w.Code, w.Body)
	}
	if w = do(h, "GET", "/healthz", "", nil); w.Code != http.StatusOK {
		t.Fatalf("GET /healthz = %d", w.Code)
	}
}

func TestGetReturnsPublishedState(t *testing.T) {
	h, _ := newTestHandler(t)
	w := do(h, http.MethodPost, "/v1/histories", "application/json", strings.NewReader(seedBody))
	if w.Code != http.StatusCreated {
		t.Fatalf("POST = %d %s", w.Code, w.Body)
	}
	loc := w.Header().Get("Location")
	w = do(h, http.MethodGet, loc, "", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", loc, w.Code, w.Body)
	}
	var got struct {
		Version int64            `json:"version"`
		History contract.History `json:"history"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.History.EmailStatus != contract.StatusSent || got.History.DestinationCode != "CUST-001" ||
		len(got.History.Forms) != 1 || got.History.Forms[0].IssueDate != 1686110218222 {
		t.Fatalf("GET %s body = %+v", loc, got)
	}
	if err := got.History.Validate(); err != nil {
		t.Fatalf("published state does not validate: %v", err)
	}
	if w := do(h, http.MethodGet, "/v1/histories/999999", "", nil); w.Code != http.StatusNotFound {
		t.Fatalf("GET unknown = %d", w.Code)
	}
}
