package outbox_test

import (
	"errors"
	"testing"
	"time"

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
	if standby.Stats().Published == 0 {
		t.Fatal("the new leader did not publish the event after the failover")
	}
}
