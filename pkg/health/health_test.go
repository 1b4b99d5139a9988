package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadyzNamesFailingChecks(t *testing.T) {
	var dbDown atomic.Bool
	var calls atomic.Int32
	c := New(Config{CacheFor: time.Nanosecond}, map[string]Check{
		"database": func(context.Context) error {
			calls.Add(1)
			if dbDown.Load() {
				return errors.New("database sender unreachable")
			}
			return nil
		},
		"kafka": func(context.Context) error { return nil },
	})
	mux := http.NewServeMux()
	c.Register(mux)
	get := func(path string) (int, map[string]any) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		return w.Code, body
	}
	if code, body := get("/readyz"); code != 200 || body["ready"] != true {
		t.Fatalf("ready = %d %v", code, body)
	}
	dbDown.Store(true)
	time.Sleep(time.Millisecond)
	code, body := get("/readyz")
	if code != 503 || body["checks"].(map[string]any)["database"] != "database sender unreachable" {
		t.Fatalf("not ready = %d %v", code, body)
	}
	if f := body["failing"].([]any); len(f) != 1 || f[0] != "database" {
		t.Fatalf("failing = %v", f)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz = %d while a dependency is down; liveness must not depend on it", code)
	}
	if calls.Load() < 2 {
		t.Fatalf("checks ran %d times", calls.Load())
	}
}

func TestResultsAreCached(t *testing.T) {
	var calls atomic.Int32
	c := New(Config{CacheFor: time.Hour}, map[string]Check{"x": func(context.Context) error { calls.Add(1); return nil }})
	for range 5 {
		c.Run(context.Background())
	}
	if calls.Load() != 1 {
		t.Fatalf("check ran %d times within the cache period, want 1", calls.Load())
	}
}
