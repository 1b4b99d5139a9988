package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// post sends POST /v1/histories with an Idempotency-Key (none when key is nil).
func post(h http.Handler, body string, key *string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/v1/histories", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key != nil {
		r.Header.Set("Idempotency-Key", *key)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// written counts the histories and the outbox events stored.
func written(t *testing.T, pool *pgxpool.Pool) (histories, events int) {
	t.Helper()
	if err := pool.QueryRow(context.Background(),
		`SELECT (SELECT count(*) FROM send_invoice_history), (SELECT count(*) FROM transaction_outbox)`).Scan(&histories, &events); err != nil {
		t.Fatal(err)
	}
	return histories, events
}

func historyIDOf(t *testing.T, w *httptest.ResponseRecorder) int64 {
	t.Helper()
	var got struct {
		HistoryID int64 `json:"historyId"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.HistoryID <= 0 {
		t.Fatalf("answer %d %q: no historyId (%v)", w.Code, w.Body, err)
	}
	return got.HistoryID
}

// A retried request with the same Idempotency-Key gets the first answer and
// records nothing more; without a key each request records a history.
func TestIdempotencyKeyMakesARetryAnswerTheSame(t *testing.T) {
	h, pool := newTestHandler(t)
	key := "3f1c2a9e-retry"
	first := post(h, seedBody, &key)
	if first.Code != http.StatusCreated || first.Header().Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %q, replayed %q", first.Code, first.Body, first.Header().Get("Idempotent-Replayed"))
	}
	// The same request, reformatted: the fingerprint is of what it means.
	var v any
	_ = json.Unmarshal([]byte(seedBody), &v)
	indented, _ := json.MarshalIndent(v, "", "  ")
	retry := post(h, string(indented), &key)
	if retry.Code != http.StatusCreated || retry.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %q, replayed %q", retry.Code, retry.Body, retry.Header().Get("Idempotent-Replayed"))
	}
	if a, b := historyIDOf(t, first), historyIDOf(t, retry); a != b || first.Header().Get("Location") != retry.Header().Get("Location") {
		t.Fatalf("retry answered history %d (%s), the first %d (%s)", b, retry.Header().Get("Location"), a, first.Header().Get("Location"))
	}
	if hs, es := written(t, pool); hs != 1 || es != 1 {
		t.Fatalf("%d histories and %d events after a retry, want 1 and 1", hs, es)
	}
	if w := post(h, seedBody, nil); w.Code != http.StatusCreated {
		t.Fatalf("without a key: %d %q", w.Code, w.Body)
	}
	if hs, _ := written(t, pool); hs != 2 {
		t.Fatalf("%d histories after a request without a key, want 2", hs)
	}
}

// A key reused for a different request is refused with 422 naming the
// header, and nothing is written.
func TestIdempotencyKeyReusedForAnotherRequestIsRefused(t *testing.T) {
	h, pool := newTestHandler(t)
	key := "reused"
	if w := post(h, seedBody, &key); w.Code != http.StatusCreated {
		t.Fatalf("first: %d %q", w.Code, w.Body)
	}
	w := post(h, seedWith(t, "destinationCode", "CUST-002"), &key)
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), `"field":"Idempotency-Key"`) ||
		!strings.Contains(w.Body.String(), "different request") {
		t.Fatalf("reused key: %d %q, want 422 naming Idempotency-Key", w.Code, w.Body)
	}
	if hs, es := written(t, pool); hs != 1 || es != 1 {
		t.Fatalf("%d histories and %d events, want 1 and 1", hs, es)
	}
}

// Requests with the same key at the same time record one history; every
// one of them answers it.
func TestConcurrentRequestsWithOneKeyRecordOnce(t *testing.T) {
	h, pool := newTestHandler(t)
	key := "concurrent"
	const n = 8
	answers := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i] = post(h, seedBody, &key) })
	}
	wg.Wait()
	want := historyIDOf(t, answers[0])
	replayed := 0
	for i, w := range answers {
		if w.Code != http.StatusCreated || historyIDOf(t, w) != want {
			t.Fatalf("answer %d: %d %q, want 201 for history %d", i, w.Code, w.Body, want)
		}
		if w.Header().Get("Idempotent-Replayed") == "true" {
			replayed++
		}
	}
	if replayed != n-1 {
		t.Fatalf("%d answers replayed, want %d", replayed, n-1)
	}
	if hs, es := written(t, pool); hs != 1 || es != 1 {
		t.Fatalf("%d histories and %d events from %d requests with one key, want 1 and 1", hs, es, n)
	}
}

func TestMalformedIdempotencyKeyIsRefusedBeforeAnythingIsWritten(t *testing.T) {
	h, pool := newTestHandler(t)
	for _, key := range []string{"", strings.Repeat("x", 256), "new\x01line"} {
		w := post(h, seedBody, &key)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "Idempotency-Key") {
			t.Fatalf("key %q: %d %q, want 400 naming Idempotency-Key", key, w.Code, w.Body)
		}
	}
	if hs, es := written(t, pool); hs != 0 || es != 0 {
		t.Fatalf("%d histories and %d events written, want none", hs, es)
	}
}
