package backfill_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/sender/internal/backfill"
	"github.com/invoicesync/invoicesync/sender/internal/seed"
)

// progress counts batches and can cancel the run after a number of them,
// as a Ctrl-C between batches would.
type progress struct {
	batches, stopAfter int
	cancel             context.CancelFunc
}

func (p *progress) Start(int64) {}
func (p *progress) Finish()     {}
func (p *progress) Add(int64) {
	p.batches++
	if p.stopAfter > 0 && p.batches == p.stopAfter {
		p.cancel()
	}
}

// seeded is a migrated sender database holding n seeded histories.
func seeded(t *testing.T, n int) *testsupport.Database {
	t.Helper()
	d := testsupport.MigratedDatabase(t, migrations.Sender)
	if _, err := seed.Run(context.Background(), d.Pool, seed.Config{Count: n}, &progress{}); err != nil {
		t.Fatal(err)
	}
	return d
}

// run runs one backfill with cfg; stopAfter > 0 cancels it after that
// many batches.
func run(t *testing.T, d *testsupport.Database, cfg backfill.Config, stopAfter int) backfill.Result {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := backfill.New(cfg, d.Pool, &progress{stopAfter: stopAfter, cancel: cancel}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Run(ctx)
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	return res
}

// state is what the sender database holds.
type state struct {
	histories, aggregates, events, bulk, maxEventsPerHistory, maxVersion int64
	checkpoint, handled                                                  int64
}

func stateOf(t *testing.T, d *testsupport.Database) state {
	t.Helper()
	var s state
	err := d.Pool.QueryRow(context.Background(), `SELECT
	        (SELECT count(*) FROM send_invoice_history),
	        (SELECT count(*) FROM aggregate_history_form),
	        (SELECT count(*) FROM transaction_outbox),
	        (SELECT count(*) FROM transaction_outbox WHERE lane = 1),
	        (SELECT coalesce(max(c), 0) FROM (SELECT count(*) c FROM transaction_outbox GROUP BY aggregate_id) x),
	        (SELECT coalesce(max(version), 0) FROM aggregate_history_form),
	        (SELECT coalesce(max(last_id), 0) FROM backfill_checkpoint),
	        (SELECT count(*) FROM send_invoice_history
	          WHERE id <= (SELECT coalesce(max(last_id), 0) FROM backfill_checkpoint))`).Scan(
		&s.histories, &s.aggregates, &s.events, &s.bulk, &s.maxEventsPerHistory, &s.maxVersion, &s.checkpoint, &s.handled)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A backfill creates one aggregate row, so one bulk-lane event, per
// history, and records that it finished.
func TestBackfillEnqueuesEveryHistoryOnceInTheBulkLane(t *testing.T) {
	const n = 3000
	d := seeded(t, n)
	res := run(t, d, backfill.Config{BatchSize: 700}, 0)
	if res.Start != backfill.Fresh || !res.Finished || res.Scanned != n || res.Enqueued != n || res.Batches != 5 {
		t.Fatalf("result %+v, want a fresh finished run of %d histories in 5 batches", res, n)
	}
	s := stateOf(t, d)
	if s.aggregates != n || s.events != n || s.bulk != n || s.maxEventsPerHistory != 1 || s.maxVersion != 1 {
		t.Fatalf("state %+v, want %d aggregate rows at version 1 and one bulk event each", s, n)
	}
	if cp := res.Checkpoint; cp == nil || cp.FinishedAt == nil || cp.Scanned != n || cp.Enqueued != n || cp.LastID != res.LastID {
		t.Fatalf("checkpoint %+v, want finished with %d scanned and enqueued", cp, n)
	}
}

// An interrupted backfill leaves a checkpoint that covers exactly the
// committed batches; the next run resumes after it and ends with one
// event per history: no gap, nothing twice.
func TestInterruptedBackfillResumesWithoutGapOrDuplicate(t *testing.T) {
	const n, batch = 3000, 400
	d := seeded(t, n)
	first := run(t, d, backfill.Config{BatchSize: batch}, 3)
	if !first.Interrupted || first.Finished || first.Batches != 3 || first.Enqueued != 3*batch {
		t.Fatalf("first run %+v, want interrupted after 3 batches", first)
	}
	s := stateOf(t, d)
	if s.aggregates != 3*batch || s.handled != 3*batch || s.checkpoint != first.LastID {
		t.Fatalf("after the interrupt: %+v; want the checkpoint to cover exactly the %d histories enqueued", s, 3*batch)
	}
	second := run(t, d, backfill.Config{BatchSize: batch}, 0)
	if second.Start != backfill.Resume || second.FromID != first.LastID || !second.Finished || second.Enqueued != n-3*batch {
		t.Fatalf("second run %+v, want it to resume after id %d and enqueue the other %d", second, first.LastID, n-3*batch)
	}
	s = stateOf(t, d)
	if s.aggregates != n || s.events != n || s.maxEventsPerHistory != 1 || s.maxVersion != 1 {
		t.Fatalf("after resuming: %+v; want one event per history, %d in all", s, n)
	}
}

// Running a finished backfill again, or restarting it, enqueues nothing.
func TestBackfillAgainEnqueuesNothing(t *testing.T) {
	const n = 1500
	d := seeded(t, n)
	run(t, d, backfill.Config{}, 0)
	before := stateOf(t, d)
	again := run(t, d, backfill.Config{}, 0)
	if again.Start != backfill.Recheck || again.Enqueued != 0 || !again.Finished {
		t.Fatalf("second run %+v, want a recheck that enqueues nothing", again)
	}
	restarted := run(t, d, backfill.Config{Restart: true}, 0)
	if restarted.Start != backfill.Restart || restarted.Scanned != n || restarted.Enqueued != 0 {
		t.Fatalf("restarted run %+v, want all %d scanned and none enqueued", restarted, n)
	}
	if cp := restarted.Checkpoint; cp.Scanned != n || cp.Enqueued != 0 {
		t.Fatalf("restarted checkpoint %+v, want its counts reset", cp)
	}
	if after := stateOf(t, d); after.events != before.events || after.maxVersion != 1 {
		t.Fatalf("state went from %+v to %+v: a re-run changed something", before, after)
	}
}

// A live change made before the backfill reached a history keeps its state
// and version (the backfill skips it); one made after gets a newer version
// in the live lane. Neither is overwritten.
func TestBackfillNeverOverwritesLiveChanges(t *testing.T) {
	const n, batch = 2000, 500
	d := seeded(t, n)
	ctx := context.Background()
	var firstID int64
	if err := d.Pool.QueryRow(ctx, "SELECT min(id) FROM send_invoice_history").Scan(&firstID); err != nil {
		t.Fatal(err)
	}
	ahead, behind := firstID+n-1, firstID+10 // beyond and within the first batch
	run(t, d, backfill.Config{BatchSize: batch}, 1)
	setStatus(t, d, ahead, "ERROR")
	setStatus(t, d, behind, "DELIVERED")
	res := run(t, d, backfill.Config{BatchSize: batch}, 0)
	if res.Enqueued != n-batch-1 {
		t.Fatalf("resumed run enqueued %d, want %d: every history but the one written live", res.Enqueued, n-batch-1)
	}
	for _, c := range []struct {
		id         int64
		status     string
		version    int64
		live, bulk int
	}{{ahead, "ERROR", 1, 1, 0}, {behind, "DELIVERED", 2, 1, 1}} {
		var status string
		var version int64
		var live, bulk int
		err := d.Pool.QueryRow(ctx, `SELECT a.email_status, a.version,
		        (SELECT count(*) FROM transaction_outbox o WHERE o.aggregate_id = a.history_id::text AND lane = 0),
		        (SELECT count(*) FROM transaction_outbox o WHERE o.aggregate_id = a.history_id::text AND lane = 1)
		   FROM aggregate_history_form a WHERE a.history_id = $1`, c.id).Scan(&status, &version, &live, &bulk)
		if err != nil {
			t.Fatal(err)
		}
		if status != c.status || version != c.version || live != c.live || bulk != c.bulk {
			t.Errorf("history %d: %s v%d with %d live and %d bulk events; want %s v%d with %d live and %d bulk",
				c.id, status, version, live, bulk, c.status, c.version, c.live, c.bulk)
		}
	}
}

func setStatus(t *testing.T, d *testsupport.Database, id int64, status string) {
	t.Helper()
	if _, err := d.Pool.Exec(context.Background(), "SELECT set_send_invoice_history_status($1, $2)", id, status); err != nil {
		t.Fatal(err)
	}
}

// A dry run counts what a run would enqueue and writes nothing, not even
// a checkpoint.
func TestDryRunWritesNothing(t *testing.T) {
	const n = 1200
	d := seeded(t, n)
	var someID int64
	if err := d.Pool.QueryRow(context.Background(), "SELECT min(id) + 5 FROM send_invoice_history").Scan(&someID); err != nil {
		t.Fatal(err)
	}
	setStatus(t, d, someID, "DELIVERED") // written live: not to be enqueued again
	res := run(t, d, backfill.Config{DryRun: true}, 0)
	if res.Scanned != n || res.Enqueued != n-1 {
		t.Fatalf("dry run %+v, want %d to scan and %d to enqueue", res, n, n-1)
	}
	var checkpoints int
	if err := d.Pool.QueryRow(context.Background(), "SELECT count(*) FROM backfill_checkpoint").Scan(&checkpoints); err != nil {
		t.Fatal(err)
	}
	if s := stateOf(t, d); s.aggregates != 1 || s.events != 1 || checkpoints != 0 {
		t.Fatalf("dry run wrote: %+v, %d checkpoints", s, checkpoints)
	}
}

// The lane comes from the transaction-local setting; live is the default
// and an unknown lane is refused rather than published live.
func TestLaneSetting(t *testing.T) {
	d := seeded(t, 3)
	ctx := context.Background()
	tx, err := d.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SET LOCAL invoicesync.outbox_lane = 'sideways'"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "SELECT sync_history_aggregate(min(id)) FROM send_invoice_history")
	if err == nil || !strings.Contains(err.Error(), "invoicesync.outbox_lane") {
		t.Fatalf("unknown lane: %v, want it refused", err)
	}
	_ = tx.Rollback(ctx)
	setStatus(t, d, firstID(t, d), "SENT")
	if s := stateOf(t, d); s.events != 1 || s.bulk != 0 {
		t.Fatalf("a write without the setting: %+v, want one live event", s)
	}
}

func firstID(t *testing.T, d *testsupport.Database) int64 {
	t.Helper()
	var id int64
	if err := d.Pool.QueryRow(context.Background(), "SELECT min(id) FROM send_invoice_history").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}
