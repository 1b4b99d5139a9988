package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// With the database unreachable a write answers 503 with Retry-After (the
// client may retry) and writes nothing; once it is back the same request
// succeeds.
func TestDatabaseOutageAnswers503AndWritesNothing(t *testing.T) {
	d := testsupport.MigratedDatabase(t, migrations.Sender)
	proxy, url := testsupport.ProxyURL(t, d.URL)
	ctx := context.Background()
	pool, err := db.Open(ctx, url, db.Options{ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	h, err := NewHandler(Config{}, pool, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}

	proxy.Cut()
	w := do(h, http.MethodPost, "/v1/histories", "application/json", strings.NewReader(seedBody))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("POST with the database cut = %d (Retry-After %q) %s, want 503 with Retry-After",
			w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	var n int
	if err := d.Pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM send_invoice_history) + (SELECT count(*) FROM transaction_outbox)").
		Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after the failed write = %d (%v), want 0", n, err)
	}

	proxy.Restore()
	deadline := time.Now().Add(30 * time.Second)
	for {
		w = do(h, http.MethodPost, "/v1/histories", "application/json", strings.NewReader(seedBody))
		if w.Code == http.StatusCreated || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the pool drops its broken connections as it meets them
	}
	if w.Code != http.StatusCreated {
		t.Fatalf("POST after the database came back = %d %s", w.Code, w.Body)
	}
}
