package outbox_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/outbox"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// deadline bounds every wait for a condition; never a timing assertion.
const deadline = 30 * time.Second

// partitions of every test topic.
const partitions = 3

// env is one test's database, broker, topic and reader of that topic.
type env struct {
	db    *testsupport.Database
	kafka *testsupport.Kafka
	topic string
	got   *collector
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{db: testsupport.MigratedDatabase(t, migrations.Sender), kafka: testsupport.NewKafka(t)}
	e.topic = e.kafka.Topic(t, "relay", partitions)
	e.got = collect(t, e.kafka, e.topic)
	return e
}

// relay builds a relay on e with cfg (Topic filled in).
func (e *env) relay(t testing.TB, cfg outbox.Config) *outbox.Relay {
	t.Helper()
	cfg.Topic = e.topic
	r, err := outbox.New(cfg, e.db.Pool, e.kafka.Conn, zeroLog(t))
	if err != nil {
		t.Fatalf("outbox.New: %v", err)
	}
	return r
}

// zeroLog writes the relay's log lines to the test log.
func zeroLog(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

// start runs r until Stop or the end of the test.
func start(t testing.TB, r *outbox.Relay) *testsupport.Running {
	t.Helper()
	return testsupport.Start(t, r)
}

// insert enqueues one event in q (a pool or an open transaction) and
// returns its outbox id and event id.
func insert(t testing.TB, q db.Querier, aggregateID string, version int64) (int64, string) {
	t.Helper()
	var id int64
	var eventID string
	err := q.QueryRow(context.Background(), `INSERT INTO transaction_outbox
	        (aggregate_type, aggregate_id, event_type, version, payload)
	        VALUES ('test', $1, 'test.changed', $2, '{"n": 1}')
	        RETURNING id, event_id::text`, aggregateID, version).Scan(&id, &eventID)
	if err != nil {
		t.Fatalf("insert outbox row: %v", err)
	}
	return id, eventID
}

// pending counts the rows left in the outbox.
func (e *env) pending(t testing.TB) int {
	t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM transaction_outbox").Scan(&n); err != nil {
		t.Fatalf("count outbox: %v", err)
	}
	return n
}

// rowsOf counts the rows of one aggregate left in the outbox.
func (e *env) rowsOf(t testing.TB, aggregateID string) int {
	t.Helper()
	var n int
	err := e.db.Pool.QueryRow(context.Background(),
		"SELECT count(*) FROM transaction_outbox WHERE aggregate_id = $1", aggregateID).Scan(&n)
	if err != nil {
		t.Fatalf("count outbox: %v", err)
	}
	return n
}

// waitFor polls cond until it holds, failing the test after the deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", deadline, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// collector reads every partition of a topic from the start, in the
// background and with read_committed isolation (what consumers see),
// keeping each partition's order.
type collector struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func collect(t testing.TB, k *testsupport.Kafka, topic string) *collector {
	c := &collector{}
	cl := k.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(50*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			c.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { c.recs = append(c.recs, r) })
			c.mu.Unlock()
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return c
}

func (c *collector) all() []*kgo.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

// count is how many times eventID was published.
func (c *collector) count(eventID string) int {
	n := 0
	for _, m := range c.all() {
		if header(m, contract.HeaderEventID) == eventID {
			n++
		}
	}
	return n
}

func (c *collector) has(eventID string) bool { return c.count(eventID) > 0 }

func header(m *kgo.Record, key string) string { return testsupport.Header(m, key) }
