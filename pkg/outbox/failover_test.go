package outbox_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/outbox"
)

// A crash after the broker acknowledged a batch and before it was deleted
// loses nothing: the rows stay, and the next relay publishes them again.
func TestCrashBetweenPublishAndDeleteRepublishes(t *testing.T) {
	e := newEnv(t)
	crash := errors.New("simulated crash")
	first := e.relay(t, outbox.Config{})
	outbox.SetAfterPublish(first, func() error { return crash })
	_, event := insert(t, e.db.Pool, "agg-1", 1)

	if err := start(t, first).Wait(); !errors.Is(err, crash) {
		t.Fatalf("Run = %v, want the simulated crash", err)
	}
	waitFor(t, "the event on the topic", func() bool { return e.got.has(event) })
	if n := e.pending(t); n != 1 {
		t.Fatalf("outbox holds %d rows after the crash, want the published but undeleted one", n)
	}

	start(t, e.relay(t, outbox.Config{}))
	waitFor(t, "the event published again", func() bool { return e.got.count(event) >= 2 })
	waitFor(t, "an empty outbox", func() bool { return e.pending(t) == 0 })
}

// Two relays on one database: one leads, the other waits; when the leader
// stops, the standby takes over and publishes.
func TestStandbyTakesOverWhenLeaderStops(t *testing.T) {
	e := newEnv(t)
	cfg := outbox.Config{PollInterval: 100 * time.Millisecond}
	a, b := e.relay(t, cfg), e.relay(t, cfg)
	runA, runB := start(t, a), start(t, b)
	waitFor(t, "a leader", func() bool { return a.Stats().Leader || b.Stats().Leader })
	leader, standby, runLeader := a, b, runA
	if b.Stats().Leader {
		leader, standby, runLeader = b, a, runB
	}

	_, before := insert(t, e.db.Pool, "agg-1", 1)
	waitFor(t, "the first event", func() bool { return e.got.has(before) })
	waitFor(t, "the leader to count it", func() bool { return leader.Stats().Published >= 1 })
	if s := standby.Stats(); s.Leader || s.Published != 0 {
		t.Fatalf("standby stats %+v while the other relay leads: two publishers", s)
	}

	if err := runLeader.Stop(); err != nil {
		t.Fatalf("leader Run = %v, want nil after cancel", err)
	}
	if leader.Stats().Leader {
		t.Fatal("a stopped relay still reports leadership")
	}
	waitFor(t, "the standby to take over", func() bool { return standby.Stats().Leader })
	_, after := insert(t, e.db.Pool, "agg-1", 2)
	waitFor(t, "the event after the failover", func() bool { return e.got.has(after) })
	// Counted once the commit returned, which readers may see first.
	waitFor(t, "the new leader to count the event after the failover", func() bool { return standby.Stats().Published > 0 })
}

// Per-aggregate order holds on the topic itself across forced failovers:
// three relays, writers changing a few histories, and two kinds of forced
// failover: a leader's connection killed between produce and commit, its
// commit delayed until another relay leads (it must be fenced), and the
// lock holder's connection killed at random moments (mostly while it reads
// or deletes). Commits are also randomly delayed. Read back raw with
// read_committed, each history's versions never go back, except exact
// redeliveries of an event already seen (a batch committed whose delete
// died with its leader), and every version arrived.
func TestOrderHoldsOnTheTopicAcrossForcedFailovers(t *testing.T) {
	const histories, writers, updates, failovers = 4, 3, 30, 6
	e := newEnv(t)
	ctx := context.Background()
	cfg := fastRetry
	cfg.BatchSize = 5
	relays := make([]*outbox.Relay, 3)
	var takeovers atomic.Int32 // killings between produce and commit still to do
	takeovers.Store(failovers / 2)
	for i := range relays {
		relays[i] = e.relay(t, cfg)
		delay := rand.New(rand.NewPCG(uint64(i), 1)) //nolint:gosec // test jitter
		outbox.SetBeforeCommit(relays[i], func() error {
			switch n := delay.IntN(4); {
			case n == 0 && takeovers.Add(-1) >= 0:
				if pid := lockHolderOrZero(e); pid != 0 {
					_, _ = e.db.Pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
				}
				// Until another relay leads, its producer initialised.
				for end := time.Now().Add(deadline); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
					if relays[(i+1)%3].Stats().Leader || relays[(i+2)%3].Stats().Leader {
						break
					}
				}
			case n == 1:
				time.Sleep(time.Duration(delay.IntN(80)) * time.Millisecond)
			}
			return nil
		})
	}
	for _, r := range relays {
		start(t, r)
	}
	ids := make([]int64, histories)
	for i := range ids {
		ids[i] = recordHistory(t, e, i)
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for u := range updates {
				status := contract.StatusSent
				if u%2 == 0 {
					status = contract.StatusDelivered
				}
				if _, err := e.db.Pool.Exec(ctx, "SELECT set_send_invoice_history_status($1, $2)", ids[(w+u)%histories], status); err != nil {
					errs <- err
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	killed := 0
	go func() {
		defer close(done)
		for range failovers / 2 {
			time.Sleep(150 * time.Millisecond)
			if pid := lockHolderOrZero(e); pid != 0 {
				if _, err := e.db.Pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err == nil {
					killed++
				}
			}
		}
	}()
	wg.Wait()
	<-done
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for takeovers.Load() > 0 { // the writers were quicker than the relays' dice
		_, ev := insert(t, e.db.Pool, "extra", int64(100+takeovers.Load()))
		waitFor(t, "an extra event", func() bool { return e.got.has(ev) })
	}
	final := finalVersions(t, e)
	waitFor(t, "an empty outbox", func() bool { return e.pending(t) == 0 })
	total := 0
	for _, v := range final {
		total += int(v)
	}
	recs := e.kafka.ReadAll(t, e.topic, total, deadline)

	seen := map[string]bool{}
	last := map[string]int64{}
	got := map[string]map[int64]bool{}
	for _, m := range recs {
		key, event := string(m.Key), header(m, contract.HeaderEventID)
		v, err := strconv.ParseInt(header(m, contract.HeaderVersion), 10, 64)
		if err != nil {
			t.Fatalf("version header: %v", err)
		}
		if got[key] == nil {
			got[key] = map[int64]bool{}
		}
		got[key][v] = true
		if seen[event] {
			continue // an exact redelivery, allowed
		}
		seen[event] = true
		if v <= last[key] {
			t.Fatalf("history %s: version %d (event %s) first published after version %d", key, v, event, last[key])
		}
		last[key] = v
	}
	for id, n := range final {
		for v := int64(1); v <= n; v++ {
			if !got[id][v] {
				t.Fatalf("history %s: version %d never reached the topic", id, v)
			}
		}
	}
	var ended uint64
	for _, r := range relays {
		ended += r.Stats().TermsEnded
	}
	if ended == 0 {
		t.Fatal("no relay was fenced: the test did not force a takeover between produce and commit")
	}
	t.Logf("%d connections killed at random, %d terms ended by fencing, %d records for %d versions", killed, ended, len(recs), total)
}

// lockHolderOrZero is lockHolder for a background goroutine: 0 on error.
func lockHolderOrZero(e *env) int {
	var pid int
	_ = e.db.Pool.QueryRow(context.Background(), `SELECT coalesce(max(pid), 0) FROM pg_locks
	      WHERE locktype = 'advisory' AND granted
	        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&pid)
	return pid
}

// finalVersions maps each history id to its current version.
func finalVersions(t *testing.T, e *env) map[string]int64 {
	t.Helper()
	rows, err := e.db.Pool.Query(context.Background(), "SELECT history_id::text, version FROM aggregate_history_form")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct {
		id string
		v  int64
	}, error) {
		var x struct {
			id string
			v  int64
		}
		return x, r.Scan(&x.id, &x.v)
	})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, x := range out {
		m[x.id] = x.v
	}
	return m
}
