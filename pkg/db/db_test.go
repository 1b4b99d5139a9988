package db

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:hunter2@h:5432/d":         "postgres://u:redacted@h:5432/d",
		"postgres://u@h/d?password=hunter2&x=1": "postgres://u@h/d?password=redacted&x=1",
		"postgres://h/d":                        "postgres://h/d",
		"host=h password=hunter2":               "(unparseable database url)",
	} {
		got := Redact(in)
		if got != want || strings.Contains(got, "hunter2") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsTransient(t *testing.T) {
	for code, want := range map[string]bool{
		"40001": true, "40P01": true, "08006": true, "57P01": true, "53300": true,
		"23505": false, "22023": false, "42P01": false,
	} {
		if got := IsTransient(&pgconn.PgError{Code: code}); got != want {
			t.Errorf("IsTransient(%s) = %v, want %v", code, got, want)
		}
	}
	if !IsTransient(context.DeadlineExceeded) {
		t.Error("deadline exceeded should be transient")
	}
	if IsTransient(errors.New("boom")) || IsTransient(nil) {
		t.Error("plain errors and nil are not transient")
	}
}

func TestOpenNamesTheDatabaseWithoutPassword(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:hunter2@127.0.0.1:1/nodb", Options{})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Open = %v; want an error naming the address, never the password", err)
	}
}
