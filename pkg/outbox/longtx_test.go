package outbox_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/outbox"
)

// A long open transaction elsewhere on the sender database — one holding an
// old snapshot (xmin) after reading the outbox, one holding an xid after an
// unrelated write — makes the relay neither skip nor duplicate: every event
// committed meanwhile arrives exactly once and the outbox drains while both
// are still open; an event written inside the long write transaction arrives
// once it commits, last.
func TestLongOpenTransactionsNeitherSkipNorDuplicate(t *testing.T) {
	const writers, perWriter = 4, 50
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.db.Pool.Exec(ctx, "CREATE TABLE scratch (n int)"); err != nil {
		t.Fatal(err)
	}
	_, before := insert(t, e.db.Pool, "before", 1)

	// (1) An old snapshot that has read the outbox.
	snap := openTx(t, e.db.URL, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	seen := outboxCount(t, snap)
	if seen != 1 {
		t.Fatalf("setup: snapshot sees %d outbox rows, want 1", seen)
	}
	// (2) An unrelated write holding an xid, with an outbox event of its own.
	long := openTx(t, e.db.URL, pgx.TxOptions{})
	if _, err := long.Exec(ctx, "INSERT INTO scratch VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var xid *string
	if err := long.QueryRow(ctx, "SELECT pg_current_xact_id_if_assigned()::text").Scan(&xid); err != nil || xid == nil {
		t.Fatalf("setup: long write transaction holds no xid (%v)", err)
	}
	_, inLong := insert(t, long, "long", 1)
	// (3) An early outbox insert that commits late.
	late, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = late.Rollback(ctx) }()
	_, inLate := insert(t, late, "late", 1)

	start(t, e.relay(t, outbox.Config{}))
	concurrent := insertConcurrently(t, e, writers, perWriter)

	waitFor(t, "every concurrently inserted event", func() bool { return allArrived(e, concurrent) })
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event committed late", func() bool { return e.got.has(inLate) })
	// Only the long transaction's own row may be left, and it is invisible.
	waitFor(t, "an empty outbox with the long transactions open", func() bool { return e.pending(t) == 0 })
	if n := outboxCount(t, snap); n != seen {
		t.Fatalf("the old snapshot now sees %d outbox rows, want %d: it was not held", n, seen)
	}
	if e.got.has(inLong) {
		t.Fatalf("event %s of the uncommitted long transaction was published", inLong)
	}

	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event of the long write transaction", func() bool { return e.got.has(inLong) })
	waitFor(t, "an empty outbox", func() bool { return e.pending(t) == 0 })
	if err := snap.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	all := append(concurrent, before, inLate, inLong)
	for _, id := range all {
		if n := e.got.count(id); n != 1 {
			t.Errorf("event %s published %d times, want exactly once", id, n)
		}
	}
	if got := len(e.got.all()); got != len(all) {
		t.Errorf("topic holds %d messages, want %d", got, len(all))
	}
}

// openTx begins a transaction on a connection of its own, outside the pool
// the relay uses; it is rolled back (if still open) and closed at cleanup.
func openTx(t *testing.T, url string, opts pgx.TxOptions) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		_ = conn.Close(ctx)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tx.Rollback(ctx)
		_ = conn.Close(ctx)
	})
	return tx
}

func outboxCount(t *testing.T, tx pgx.Tx) int {
	t.Helper()
	var n int
	if err := tx.QueryRow(context.Background(), "SELECT count(*) FROM transaction_outbox").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// insertConcurrently commits writers*perWriter events, one aggregate per
// writer with versions in order, and returns their event ids.
func insertConcurrently(t *testing.T, e *env, writers, perWriter int) []string {
	t.Helper()
	var (
		mu   sync.Mutex
		ids  []string
		errs = make(chan error, writers)
		wg   sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			agg := fmt.Sprintf("agg-%d", w)
			for v := 1; v <= perWriter; v++ {
				var id string
				err := e.db.Pool.QueryRow(context.Background(), `INSERT INTO transaction_outbox
				        (aggregate_type, aggregate_id, event_type, version, payload)
				        VALUES ('test', $1, 'test.changed', $2, '{"n": 1}')
				        RETURNING event_id::text`, agg, v).Scan(&id)
				if err != nil {
					errs <- fmt.Errorf("insert %s v%d: %w", agg, v, err)
					return
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

func allArrived(e *env, ids []string) bool {
	seen := map[string]bool{}
	for _, m := range e.got.all() {
		seen[header(m, contract.HeaderEventID)] = true
	}
	for _, id := range ids {
		if !seen[id] {
			return false
		}
	}
	return true
}
