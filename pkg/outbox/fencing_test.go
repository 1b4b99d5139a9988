package outbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/outbox"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// fastRetry makes failovers and retries quick in tests.
var fastRetry = outbox.Config{PollInterval: 100 * time.Millisecond, MinBackoff: 10 * time.Millisecond,
	MaxBackoff: 50 * time.Millisecond}

// A leader that lost its lock while its batch was produced but not yet
// committed cannot commit it: the new leader's producer fenced it at the
// broker, so read_committed readers see the batch once, from the new
// leader, and the old leader gives up its term.
func TestRelayWhoseLockWasTakenOverCannotCommitABatch(t *testing.T) {
	e := newEnv(t)
	_, ev1 := insert(t, e.db.Pool, "agg-1", 1)
	_, ev2 := insert(t, e.db.Pool, "agg-2", 1)

	old := e.relay(t, fastRetry)
	produced, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	outbox.SetBeforeCommit(old, func() error {
		once.Do(func() { close(produced); <-release })
		return nil
	})
	start(t, old)
	<-produced // both events produced in the old leader's open transaction

	terminate(t, e, lockHolder(t, e)) // the old leader loses its lock, unaware
	next := e.relay(t, fastRetry)
	start(t, next)
	waitFor(t, "the new leader to publish the batch", func() bool { return e.got.has(ev1) && e.got.has(ev2) })
	waitFor(t, "the new leader to delete it", func() bool { return next.Stats().Batches > 0 })

	close(release) // the old leader now tries to commit
	waitFor(t, "the old leader to give up its term", func() bool { return old.Stats().TermsEnded >= 1 })
	if s := old.Stats(); s.Published != 0 || s.Batches != 0 {
		t.Fatalf("old leader stats %+v: it committed a batch after its lock was taken over", s)
	}
	for _, id := range []string{ev1, ev2} {
		if n := countEvent(e.kafka.ReadAll(t, e.topic, 2, deadline), id); n != 1 {
			t.Fatalf("read_committed sees event %s %d times, want once (the new leader's)", id, n)
		}
		// The old leader did write its copy: the broker aborted it.
		if n := countEvent(readUncommitted(t, e.kafka, e.topic, 4), id); n != 2 {
			t.Fatalf("read_uncommitted sees event %s %d times, want 2 (the aborted copy and the committed one)", id, n)
		}
	}
}

// A batch whose produce failed is aborted: read_committed readers never see
// it, only the retry's copy; the relay keeps its term.
func TestAbortedBatchIsInvisibleToReadCommitted(t *testing.T) {
	e := newEnv(t)
	r := e.relay(t, fastRetry)
	var calls int
	outbox.SetBeforeCommit(r, func() error {
		calls++ // only the relay's goroutine calls it
		if calls == 1 {
			return errors.New("injected failure after produce")
		}
		return nil
	})
	_, ev1 := insert(t, e.db.Pool, "agg-1", 1)
	_, ev2 := insert(t, e.db.Pool, "agg-1", 2)
	start(t, r)
	waitFor(t, "the batch published and deleted", func() bool { return r.Stats().Batches > 0 })

	if s := r.Stats(); s.Errors == 0 || s.TermsEnded != 0 || s.Batches != 1 {
		t.Fatalf("stats %+v: want one failed attempt, then one batch in the same term", s)
	}
	committed := e.kafka.ReadAll(t, e.topic, 2, deadline)
	all := readUncommitted(t, e.kafka, e.topic, 4)
	for _, id := range []string{ev1, ev2} {
		if n := countEvent(committed, id); n != 1 {
			t.Fatalf("read_committed sees event %s %d times, want once", id, n)
		}
		if n := countEvent(all, id); n != 2 {
			t.Fatalf("read_uncommitted sees event %s %d times, want 2 (aborted and committed)", id, n)
		}
	}
}

// Keys go to the partition the Java client would choose:
// toPositive(murmur2(key)) % partitions, checked with Kafka's own murmur2
// test vectors.
func TestRecordsLandWhereTheJavaClientPutsThem(t *testing.T) {
	javaMurmur2 := map[string]int32{ // from Kafka's UtilsTest
		"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
		"a-little-bit-longer-string": -1486304829, "abc": 479470107,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
	}
	e := newEnv(t)
	for key := range javaMurmur2 {
		insert(t, e.db.Pool, key, 1)
	}
	start(t, e.relay(t, outbox.Config{}))
	waitFor(t, "an empty outbox", func() bool { return e.pending(t) == 0 })
	for _, rec := range e.kafka.ReadAll(t, e.topic, len(javaMurmur2), deadline) {
		want := (javaMurmur2[string(rec.Key)] & 0x7fffffff) % partitions
		if rec.Partition != want {
			t.Errorf("key %q on partition %d, the Java client would use %d", rec.Key, rec.Partition, want)
		}
	}
}

// The default transactional id is the same for every replica of one outbox
// and differs between outboxes and topics.
func TestDefaultTransactionalID(t *testing.T) {
	id := outbox.DefaultTransactionalID("sci.v1", "7642", "sender", "transaction_outbox")
	if id != outbox.DefaultTransactionalID("sci.v1", "7642", "sender", "transaction_outbox") {
		t.Fatal("the default transactional id is not stable")
	}
	for _, other := range []string{
		outbox.DefaultTransactionalID("sci.v2", "7642", "sender", "transaction_outbox"),
		outbox.DefaultTransactionalID("sci.v1", "9999", "sender", "transaction_outbox"),
		outbox.DefaultTransactionalID("sci.v1", "7642", "other", "transaction_outbox"),
		outbox.DefaultTransactionalID("sci.v1", "7642", "sender", "other_outbox"),
	} {
		if other == id {
			t.Fatalf("two outboxes share the transactional id %s: they would fence each other", id)
		}
	}
	c := outbox.Config{Topic: "sci.v1", TransactionalID: id}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("the default id %s is not a valid RELAY_TRANSACTIONAL_ID: %v", id, err)
	}
}

// terminate ends a backend, as a network cut or an operator would.
func terminate(t *testing.T, e *env, pid int) {
	t.Helper()
	var ok bool
	if err := e.db.Pool.QueryRow(context.Background(), "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate backend %d: %v, %v", pid, ok, err)
	}
}

// readUncommitted reads topic from the start with read_uncommitted
// isolation (aborted records included) until want records arrived.
func readUncommitted(t *testing.T, k *testsupport.Kafka, topic string, want int) []*kgo.Record {
	t.Helper()
	cl := k.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_uncommitted: %d records of %s after %s, want %d", len(out), topic, deadline, want)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func countEvent(recs []*kgo.Record, eventID string) int {
	n := 0
	for _, r := range recs {
		if header(r, contract.HeaderEventID) == eventID {
			n++
		}
	}
	return n
}
