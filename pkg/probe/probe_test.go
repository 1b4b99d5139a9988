package probe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			return
		}
		http.Error(w, "database unreachable", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	if err := HTTP(context.Background(), srv.URL+"/ok", time.Second); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	err := HTTP(context.Background(), srv.URL+"/bad", time.Second)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "database unreachable") {
		t.Fatalf("unhealthy = %v, want the status and body named", err)
	}
	if err := HTTP(context.Background(), "http://127.0.0.1:1/", time.Second); err == nil {
		t.Fatal("unreachable service reported healthy")
	}
}
