package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = testsupport.SyncBuffer

func testCLI(env map[string]string) (*cli, *syncBuffer) {
	out := &syncBuffer{}
	env["LOG_FORMAT"] = "json"
	return newCLI(out, out, lookup(env)), out
}

func TestCommandLineErrors(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{nil, {"bogus"}, {"serve", "--nope"}, {"migrate", "stray"}} {
		c, _ := testCLI(map[string]string{})
		var uerr *usageError
		if err := c.run(ctx, args); !errors.As(err, &uerr) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
	for _, args := range [][]string{{"help"}, {"help", "relay"}, {"serve", "--help"}} {
		c, out := testCLI(map[string]string{})
		if err := c.run(ctx, args); err != nil || !strings.Contains(out.String(), "Usage: sender") {
			t.Errorf("run(%q) = %v, output %q; want usage and nil", args, err, out)
		}
	}
	c, _ := testCLI(map[string]string{"SENDER_MAX_BODY_BYTES": "lots"})
	if err := c.run(ctx, []string{"serve"}); err == nil || !strings.Contains(err.Error(), "SENDER_MAX_BODY_BYTES") {
		t.Errorf("run(serve) with a bad env value = %v, want it named", err)
	}
}

// TestRefuseToStartUntilMigratedThenServe walks the deployment: serve and
// relay refuse an unmigrated database, migrate applies the schema (once),
// then serve answers until cancelled and returns nil.
func TestRefuseToStartUntilMigratedThenServe(t *testing.T) {
	d := testsupport.NewDatabase(t)
	env := func() map[string]string {
		return map[string]string{"SENDER_DATABASE_URL": d.URL, "SENDER_HTTP_ADDR": "127.0.0.1:0",
			"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "kafkasecret"}
	}
	ctx := context.Background()
	for _, cmd := range []string{"serve", "relay"} {
		c, out := testCLI(env())
		err := c.run(ctx, []string{cmd})
		if err == nil || !strings.Contains(err.Error(), "sender migrate") {
			t.Fatalf("%s on an unmigrated database = %v, want a refusal telling to run sender migrate", cmd, err)
		}
		if strings.Contains(out.String(), "kafkasecret") || strings.Contains(out.String(), ":invoicesync@") {
			t.Fatalf("%s logged a secret: %s", cmd, out)
		}
	}
	for i, want := range []string{"migration applied", "nothing to apply"} {
		c, out := testCLI(env())
		if err := c.run(ctx, []string{"migrate"}); err != nil || !strings.Contains(out.String(), want) {
			t.Fatalf("migrate #%d = %v, log %s; want %q", i+1, err, out, want)
		}
	}
	if n, err := migrations.Pending(ctx, d.Pool, migrations.Sender); err != nil || n != 0 {
		t.Fatalf("pending after migrate = %d, %v", n, err)
	}

	c, out := testCLI(env())
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.run(sctx, []string{"serve"}) }()
	addr := waitForListening(t, out, done)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz = %v, %v", resp, err)
	}
	_ = resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve after cancel = %v, want nil", err)
	}
}

// waitForListening returns the address in serve's "http server listening"
// log line.
func waitForListening(t *testing.T, out *syncBuffer, done <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			var line struct{ Message, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "http server listening" {
				return line.Addr
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned %v before listening; log %s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not log that it listens; log %s", out)
	return ""
}

// A stop signal that comes while a service is still starting (here: before
// it even reached its database) ends it cleanly; a one-shot job cut short
// the same way fails, so a script never takes it for finished.
func TestStopSignalWhileStarting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := func() map[string]string {
		return map[string]string{"SENDER_DATABASE_URL": "postgres://u:p@127.0.0.1:1/db", "SENDER_HTTP_ADDR": "127.0.0.1:0",
			"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
	}
	for _, cmd := range []string{"serve", "relay"} {
		c, _ := testCLI(env())
		var stopped *stoppedWhileStarting
		if err := c.run(ctx, []string{cmd}); !errors.As(err, &stopped) {
			t.Errorf("%s stopped while starting = %v, want a clean stop", cmd, err)
		}
	}
	for _, cmd := range []string{"backfill", "migrate"} {
		c, _ := testCLI(env())
		var stopped *stoppedWhileStarting
		if err := c.run(ctx, []string{cmd}); err == nil || errors.As(err, &stopped) {
			t.Errorf("%s stopped while starting = %v, want a failure", cmd, err)
		}
	}
}
