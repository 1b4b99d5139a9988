package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/invoicesync/invoicesync/pkg/db"
)

// Postgres creates scratch databases through an admin URL and drops them
// at the end.
type Postgres struct {
	// AdminURL reaches a database of a role that may create databases.
	AdminURL string
	// RunID prefixes every database name, so parallel runs do not collide.
	RunID   string
	mu      sync.Mutex
	created []string
}

// NewRunID returns a short random run id.
func NewRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Create creates an empty database bench_<run>_<name> and returns its URL.
func (pg *Postgres) Create(ctx context.Context, name string) (string, error) {
	full := "bench_" + pg.RunID + "_" + name
	conn, err := pgx.Connect(ctx, pg.AdminURL)
	if err != nil {
		return "", fmt.Errorf("create database: connect %s: %w", db.Redact(pg.AdminURL), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{full}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", full, err)
	}
	pg.mu.Lock()
	pg.created = append(pg.created, full)
	pg.mu.Unlock()
	u, err := url.Parse(pg.AdminURL)
	if err != nil {
		return "", fmt.Errorf("create database: admin url: %w", err)
	}
	u.Path = "/" + full
	return u.String(), nil
}

// Drop drops the database at dbURL if this Postgres created it.
func (pg *Postgres) Drop(ctx context.Context, dbURL string) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return err
	}
	name := u.Path[1:]
	pg.mu.Lock()
	idx := -1
	for i, n := range pg.created {
		if n == name {
			idx = i
		}
	}
	if idx >= 0 {
		pg.created = append(pg.created[:idx], pg.created[idx+1:]...)
	}
	pg.mu.Unlock()
	if idx < 0 {
		return nil
	}
	return pg.drop(ctx, name)
}

// DropAll drops every database still created; errors are returned joined.
func (pg *Postgres) DropAll() error {
	pg.mu.Lock()
	names := pg.created
	pg.created = nil
	pg.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var first error
	for _, n := range names {
		if err := pg.drop(ctx, n); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (pg *Postgres) drop(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, pg.AdminURL)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// Describe returns the server version and the settings that shape write
// throughput.
func (pg *Postgres) Describe(ctx context.Context) (string, map[string]string, error) {
	conn, err := pgx.Connect(ctx, pg.AdminURL)
	if err != nil {
		return "", nil, fmt.Errorf("describe postgres: %w", err)
	}
	defer conn.Close(ctx)
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		return "", nil, fmt.Errorf("describe postgres: %w", err)
	}
	settings := map[string]string{}
	for _, name := range []string{"shared_buffers", "synchronous_commit", "fsync", "wal_level", "max_connections",
		"max_wal_size", "checkpoint_timeout", "work_mem", "commit_delay"} {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err == nil {
			settings[name] = v
		}
	}
	return version, settings, nil
}
