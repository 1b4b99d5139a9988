package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// Every migration must be reversible: rolling a database all the way down
// and up again must succeed, so an operator can step back a release.
func TestDownToZeroAndUpAgain(t *testing.T) {
	for _, which := range []migrations.Database{migrations.Sender, migrations.Receiver} {
		t.Run(string(which), func(t *testing.T) {
			d := testsupport.NewDatabase(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			up, err := migrations.Up(ctx, d.Pool, which)
			if err != nil {
				t.Fatal(err)
			}
			fsys, err := migrations.FS(which)
			if err != nil {
				t.Fatal(err)
			}
			sqlDB := stdlib.OpenDBFromPool(d.Pool)
			defer sqlDB.Close()
			p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, fsys,
				goose.WithTableName("goose_db_version_"+string(which)))
			if err != nil {
				t.Fatal(err)
			}
			down, err := p.DownTo(ctx, 0)
			if err != nil {
				t.Fatalf("down to 0: %v", err)
			}
			if len(down) != len(up) {
				t.Fatalf("rolled back %d migrations, want the %d applied", len(down), len(up))
			}
			var tables int
			if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'goose_db_version%'`).Scan(&tables); err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Fatalf("%d tables left after rolling everything back, want 0", tables)
			}
			again, err := migrations.Up(ctx, d.Pool, which)
			if err != nil || len(again) != len(up) {
				t.Fatalf("up again applied %d of %d: %v", len(again), len(up), err)
			}
		})
	}
}
