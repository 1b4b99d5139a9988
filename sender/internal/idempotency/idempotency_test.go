package idempotency_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/sender/internal/idempotency"
)

func TestCheckKeyNamesTheProblem(t *testing.T) {
	for key, want := range map[string]string{
		"":                        "1 to 255",
		strings.Repeat("k", 256):  "1 to 255",
		"tab\tinside":             "printable ASCII",
		"caf\u00e9":               "printable ASCII",
		"8e0f6c1e-0b7a-4d7e-9d2c": "",
		strings.Repeat("k", 255):  "",
	} {
		err := idempotency.CheckKey(key)
		switch {
		case want == "" && err != nil:
			t.Errorf("CheckKey(%q) = %v, want nil", key, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("CheckKey(%q) = %v, want an error saying %q", key, err, want)
		}
	}
}

func TestRememberRefusesATakenKeyAndLookupReturnsTheFirstAnswer(t *testing.T) {
	pool := testsupport.MigratedDatabase(t, migrations.Sender).Pool
	ctx := context.Background()
	first := idempotency.Answer{RequestSHA256: idempotency.Hash([]byte("a")), HistoryID: 7, Version: 1}
	if err := idempotency.Remember(ctx, pool, "k1", first); err != nil {
		t.Fatal(err)
	}
	if err := idempotency.Remember(ctx, pool, "k1", idempotency.Answer{RequestSHA256: idempotency.Hash([]byte("b")), HistoryID: 8, Version: 1}); err != idempotency.ErrKeyTaken {
		t.Fatalf("second Remember = %v, want ErrKeyTaken", err)
	}
	got, err := idempotency.Lookup(ctx, pool, "k1")
	if err != nil || got.HistoryID != 7 || string(got.RequestSHA256) != string(first.RequestSHA256) {
		t.Fatalf("Lookup = %+v, %v; want the first answer", got, err)
	}
	if _, err := idempotency.Lookup(ctx, pool, "nope"); !idempotency.IsNotFound(err) {
		t.Fatalf("Lookup of an unknown key = %v, want not found", err)
	}
}

// The janitor deletes the keys older than the TTL and keeps the others.
func TestJanitorDeletesOnlyExpiredKeys(t *testing.T) {
	pool := testsupport.MigratedDatabase(t, migrations.Sender).Pool
	ctx := context.Background()
	for _, k := range []string{"old", "young"} {
		if err := idempotency.Remember(ctx, pool, k, idempotency.Answer{RequestSHA256: idempotency.Hash([]byte(k)), HistoryID: 1, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE api_idempotency_key SET created_at = now() - interval '25 hours' WHERE idempotency_key = 'old'`); err != nil {
		t.Fatal(err)
	}
	j := &idempotency.Janitor{DB: pool, TTL: 24 * time.Hour, Interval: 10 * time.Millisecond, Log: zerolog.Nop()}
	stop := testsupport.Start(t, j).Stop
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := idempotency.Lookup(ctx, pool, "old"); idempotency.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired key was not deleted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if _, err := idempotency.Lookup(ctx, pool, "young"); err != nil {
		t.Fatalf("the young key: %v, want it kept", err)
	}
}
