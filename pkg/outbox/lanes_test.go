package outbox_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/outbox"
)

// insertBulk enqueues n bulk-lane events spread over aggregates
// "bulk-0".."bulk-<aggregates-1>", each aggregate's versions increasing with
// the outbox id.
func insertBulk(t *testing.T, e *env, n, aggregates int) {
	t.Helper()
	_, err := e.db.Pool.Exec(context.Background(), `INSERT INTO transaction_outbox
	        (aggregate_type, aggregate_id, event_type, version, payload, lane)
	        SELECT 'test', 'bulk-' || (g % $2), 'test.changed', g / $2 + 1, '{"n": 1}', 1
	          FROM generate_series(0, $1 - 1) AS g ORDER BY g`, n, aggregates)
	if err != nil {
		t.Fatalf("insert bulk backlog: %v", err)
	}
}

// With a large bulk backlog being drained, a live event committed meanwhile
// is published in the next round, not after the backlog. The relay is
// paused after its first batch until the live event has committed, and a
// one-partition topic shows the publish order.
func TestLiveEventOvertakesBulkBacklog(t *testing.T) {
	const backlog, batch = 3000, 50
	e := newEnv(t)
	topic := e.kafka.Topic(t, "lanes", 1)
	insertBulk(t, e, backlog, 100)

	r, err := outbox.New(outbox.Config{Topic: topic, BatchSize: batch}, e.db.Pool, e.kafka.Conn, zeroLog(t))
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	outbox.SetAfterPublish(r, func() error {
		once.Do(func() { close(entered); <-release })
		return nil
	})
	start(t, r)
	<-entered
	_, live := insert(t, e.db.Pool, "live-1", 1)
	close(release)
	waitFor(t, "an empty outbox", func() bool { return e.pending(t) == 0 })

	msgs := e.kafka.ReadAll(t, topic, backlog+1, deadline)
	bulkBefore := -1
	for i, m := range msgs {
		if header(m, contract.HeaderEventID) == live {
			bulkBefore = i
			break
		}
	}
	switch {
	case bulkBefore < 0:
		t.Fatal("the live event was not published")
	case bulkBefore > batch:
		t.Fatalf("%d bulk events were published before the live one, want at most the first batch (%d): "+
			"the live lane waited behind the backlog", bulkBefore, batch)
	}
	if got := len(msgs); got != backlog+1 {
		t.Fatalf("topic holds %d events, want %d (the backlog and the live event)", got, backlog+1)
	}
}

// Both lanes are published, and within each lane every aggregate's versions
// come in increasing order, even when a live version overtakes bulk ones.
func TestLanesKeepPerLaneOrder(t *testing.T) {
	const aggregates = 10
	e := newEnv(t)
	insertBulk(t, e, 20*aggregates, aggregates) // versions 1..20 of each, bulk
	ctx := context.Background()
	// Newer versions of the same aggregates, live.
	_, err := e.db.Pool.Exec(ctx, `INSERT INTO transaction_outbox
	        (aggregate_type, aggregate_id, event_type, version, payload)
	        SELECT 'test', 'bulk-' || (g % $1), 'test.changed', 21 + g / $1, '{"n": 2}'
	          FROM generate_series(0, 3 * $1 - 1) AS g ORDER BY g`, aggregates)
	if err != nil {
		t.Fatal(err)
	}
	start(t, e.relay(t, outbox.Config{BatchSize: 7}))
	waitFor(t, "an empty outbox", func() bool { return e.pending(t) == 0 })
	waitFor(t, "every event on the topic", func() bool { return distinct(e.got.all()) == 23*aggregates })

	last := map[string]int64{} // aggregate + lane -> last version seen
	for _, m := range e.got.all() {
		v, err := strconv.ParseInt(header(m, contract.HeaderVersion), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		lane := "bulk"
		if v > 20 {
			lane = "live"
		}
		key := string(m.Key) + "/" + lane
		if v < last[key] {
			t.Fatalf("%s lane of %s: version %d published after %d", lane, m.Key, v, last[key])
		}
		last[key] = v
	}
}

// distinct counts the distinct event ids among msgs.
func distinct(msgs []*kgo.Record) int {
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[header(m, contract.HeaderEventID)] = true
	}
	return len(seen)
}
