package api

import (
	"context"
	"net/http"
	"testing"

	"github.com/rs/zerolog"
)

func TestServerServesUntilCancelledThenDrains(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	s, err := NewServer(ServerConfig{Addr: "127.0.0.1:0"}, mux, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	resp, err := http.Get("http://" + s.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz = %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
}

func TestServerConfigValidate(t *testing.T) {
	for _, addr := range []string{"", "8080", "localhost"} {
		c := ServerConfig{Addr: addr}
		c.SetDefaults()
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(addr %q) = nil, want an error", addr)
		}
	}
	c := ServerConfig{Addr: ":8080", ShutdownTimeout: -1}
	if err := c.Validate(); err == nil {
		t.Error("Validate(negative shutdown timeout) = nil, want an error")
	}
}
