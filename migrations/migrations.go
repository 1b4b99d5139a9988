// Package migrations carries the goose SQL migrations of both databases,
// embedded so the binaries apply them without files on disk, and runs them
// under a PostgreSQL advisory lock so replicas starting at once do not race.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed sender/*.sql receiver/*.sql
var files embed.FS

// Database names a set of migrations.
type Database string

// The two databases.
const (
	Sender   Database = "sender"
	Receiver Database = "receiver"
)

// Result is one applied migration.
type Result struct {
	Version int64
	Source  string
}

// FS returns the migration files of one database.
func FS(d Database) (fs.FS, error) {
	switch d {
	case Sender, Receiver:
		return fs.Sub(files, string(d))
	default:
		return nil, fmt.Errorf("migrations: unknown database %q", d)
	}
}

// Up applies every pending migration of d, holding a session-level advisory
// lock so concurrent callers apply each migration once. It returns what it
// applied (nothing when the schema is current).
func Up(ctx context.Context, pool *pgxpool.Pool, d Database) ([]Result, error) {
	p, closeDB, err := provider(pool, d, true)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", d, err)
	}
	out := make([]Result, 0, len(res))
	for _, r := range res {
		out = append(out, Result{Version: r.Source.Version, Source: r.Source.Path})
	}
	return out, nil
}

// Pending reports how many migrations of d are not applied yet; services
// use it to refuse to start on an old schema. It only reads the version
// table and takes no lock, so services starting together do not queue
// behind each other (the lock is polled once a second).
func Pending(ctx context.Context, pool *pgxpool.Pool, d Database) (int, error) {
	p, closeDB, err := provider(pool, d, false)
	if err != nil {
		return 0, err
	}
	defer closeDB()
	st, err := p.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("migration status %s: %w", d, err)
	}
	n := 0
	for _, s := range st {
		if s.State == goose.StatePending {
			n++
		}
	}
	return n, nil
}

// provider returns a goose provider of d's migrations; locked ones hold
// the session-level advisory lock while they work.
func provider(pool *pgxpool.Pool, d Database, locked bool) (*goose.Provider, func(), error) {
	fsys, err := FS(d)
	if err != nil {
		return nil, nil, err
	}
	opts := []goose.ProviderOption{goose.WithTableName("goose_db_version_" + string(d))}
	if locked {
		// Poll the lock every second for up to five minutes: a replica waits
		// for another one's migration instead of failing.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, nil, fmt.Errorf("migrations: session locker: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	var sqlDB *sql.DB = stdlib.OpenDBFromPool(pool)
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, fsys, opts...)
	if err != nil {
		_ = sqlDB.Close()
		return nil, nil, fmt.Errorf("migrations: %w", err)
	}
	return p, func() { _ = sqlDB.Close() }, nil
}
