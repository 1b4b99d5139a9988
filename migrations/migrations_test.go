package migrations_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3/lock"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// Two replicas starting at once must both succeed and apply each migration once.
func TestConcurrentUpAppliesOnce(t *testing.T) {
	for _, which := range []migrations.Database{migrations.Sender, migrations.Receiver} {
		t.Run(string(which), func(t *testing.T) {
			d := testsupport.NewDatabase(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			const replicas = 4
			var wg sync.WaitGroup
			applied := make([]int, replicas)
			errs := make([]error, replicas)
			for i := range replicas {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := migrations.Up(ctx, d.Pool, which)
					applied[i], errs[i] = len(res), err
				}()
			}
			wg.Wait()
			total := 0
			for i := range replicas {
				if errs[i] != nil {
					t.Fatalf("replica %d: %v", i, errs[i])
				}
				total += applied[i]
			}
			fsys, _ := migrations.FS(which)
			files, _ := fsGlob(fsys)
			if total != files {
				t.Fatalf("replicas applied %d migrations in all, want each of the %d once", total, files)
			}
			pending, err := migrations.Pending(ctx, d.Pool, which)
			if err != nil || pending != 0 {
				t.Fatalf("Pending = %d, %v; want 0", pending, err)
			}
		})
	}
}

func TestPendingOnEmptyDatabase(t *testing.T) {
	d := testsupport.NewDatabase(t)
	n, err := migrations.Pending(context.Background(), d.Pool, migrations.Receiver)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("Pending = 0 on an empty database")
	}
}

// Pending only reads: it must answer while another process holds the
// migration lock (a replica migrating, or one starting at the same time),
// instead of queueing behind it.
func TestPendingDoesNotWaitForTheMigrationLock(t *testing.T) {
	d := testsupport.NewDatabase(t)
	ctx := context.Background()
	if _, err := migrations.Up(ctx, d.Pool, migrations.Receiver); err != nil {
		t.Fatal(err)
	}
	holder, err := d.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", lock.DefaultLockID) }()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second) // the lock would hold it for up to 5 minutes
	defer cancel()
	if n, err := migrations.Pending(tctx, d.Pool, migrations.Receiver); err != nil || n != 0 {
		t.Fatalf("Pending while the migration lock is held = %d, %v; want 0 at once", n, err)
	}
}
