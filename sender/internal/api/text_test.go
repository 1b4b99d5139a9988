package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Text PostgreSQL cannot hold, and text that is not UTF-8, is refused with
// a 422 naming the field, and nothing is written; names in any script are
// accepted up to the limit in characters; a large size is a size.
func TestTextAndNumbersAtTheEdges(t *testing.T) {
	h, pool := newTestHandler(t)
	const js = "application/json"
	for _, tc := range []struct {
		name, path, body string
		status           int
		field            string
	}{
		{"NUL in senderOfficeName", "/v1/histories", seedWith(t, "senderOfficeName", "MFV\x00HN"), 422, "senderOfficeName"},
		{"NUL in destinationCode", "/v1/histories", seedWith(t, "destinationCode", "\x00"), 422, "destinationCode"},
		{"NUL in senderCustomerId", "/v1/histories", seedWith(t, "senderCustomerId", "0\x001"), 422, "senderCustomerId"},
		{"NUL in senderOfficeId", "/v1/histories", seedWith(t, "senderOfficeId", "\x00"), 422, "senderOfficeId"},
		{"NUL in emailStatus", "/v1/histories", seedWith(t, "emailStatus", "SENT\x00"), 422, "emailStatus"},
		{"NUL in fileName", "/v1/histories", seedWith(t, "forms.0.fileName", "a\x00.pdf"), 422, "forms[0].fileName"},
		{"NUL in filePath", "/v1/histories", seedWith(t, "forms.0.filePath", "\x00"), 422, "forms[0].filePath"},
		{"NUL in invoiceNumber", "/v1/histories", seedWith(t, "forms.0.invoiceNumber", "\x00"), 422, "forms[0].invoiceNumber"},
		{"invalid UTF-8 in senderOfficeName", "/v1/histories",
			strings.Replace(seedBody, `"MFV-HN"`, "\"MFV-\xff\"", 1), 422, "senderOfficeName"},
		{"invalid UTF-8 in fileName", "/v1/histories",
			strings.Replace(seedBody, `"abcd.pdf"`, "\"ab\xc3.pdf\"", 1), 422, "forms[0].fileName"},
		{"invalid UTF-8 in an unknown field's name", "/v1/histories",
			strings.Replace(seedBody, `{"sentAt"`, "{\"n\xffte\":1,\"sentAt\"", 1), 422, "n\ufffdte"},
		{"invalid UTF-8 in the status", "/v1/histories/1/status", "{\"emailStatus\":\"ERR\xffOR\"}", 422, "emailStatus"},
		{"NUL in the status", "/v1/histories/1/status", `{"emailStatus":"ERROR\u0000"}`, 422, "emailStatus"},
		{"256 Japanese characters", "/v1/histories", seedWith(t, "senderOfficeName", strings.Repeat("日", 256)), 422, "senderOfficeName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if strings.HasSuffix(tc.path, "/status") {
				method = "PUT"
			}
			w := do(h, method, tc.path, js, strings.NewReader(tc.body))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			checkErrorBody(t, w.Body.Bytes(), tc.field, "")
		})
	}
	if n := countRows(t, pool, "send_invoice_history"); n != 0 {
		t.Fatalf("%d histories written by refused requests", n)
	}
	for name, body := range map[string]string{
		"255 Vietnamese characters": seedWith(t, "senderOfficeName", strings.Repeat("ệ", 255)),
		"100 Japanese characters":   seedWith(t, "destinationCode", strings.Repeat("日", 100)),
		"size 10^18":                seedWith(t, "forms.0.size", 1_000_000_000_000_000_000),
	} {
		t.Run(name, func(t *testing.T) {
			if w := do(h, "POST", "/v1/histories", js, strings.NewReader(body)); w.Code != http.StatusCreated {
				t.Fatalf("status %d, want 201; body %s", w.Code, w.Body)
			}
		})
	}
}

func countRows(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
