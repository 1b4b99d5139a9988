package consume_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// The records of an aborted transaction never reach the handler, nor do the
// transactions' control markers; the committed transaction after it, and a
// plain record after that, are handled once each, and the offset moves past
// the markers.
func TestAbortedTransactionIsNeverHandled(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "txn", 1)
	group := testsupport.Name("g")

	var mu sync.Mutex
	var handled []*kgo.Record
	c := newConsumer(t, k, testConfig(topic, group), consume.BatchHandlerFunc(func(_ context.Context, recs []*kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, recs...)
		return nil
	}), zerolog.Nop())
	stop := run(t, c) // consuming while the transactions are written

	tx := k.Client(t, kgo.TransactionalID(testsupport.Name("tx")), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	transact := func(commit kgo.TransactionEndTry, values ...string) {
		t.Helper()
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if err := tx.ProduceSync(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce in a transaction: %v", err)
			}
		}
		if err := tx.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("end transaction: %v", err)
		}
	}
	transact(kgo.TryAbort, "aborted-1", "aborted-2") // offsets 0, 1; abort marker at 2
	transact(kgo.TryCommit, "committed")             // offset 3; commit marker at 4
	k.Produce(t, topic, &kgo.Record{Key: []byte("plain"), Value: []byte("plain")})
	waitFor(t, "the plain record committed", func() bool { return committed(t, k, group, topic, 0) == 6 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, r := range handled {
		if r.Attrs.IsControl() {
			t.Errorf("a control record reached the handler at offset %d", r.Offset)
		}
		got = append(got, string(r.Value)+"@"+strconv.FormatInt(r.Offset, 10))
	}
	if want := []string{"committed@3", "plain@5"}; !slices.Equal(got, want) {
		t.Fatalf("handled %v, want %v: nothing of the aborted transaction, no marker", got, want)
	}
}

// member is one consumer of a two-member test group with the records each
// of its calls handled.
type member struct {
	c    *consume.Consumer
	stop func() error

	mu      sync.Mutex
	handled map[int32][]time.Time // partition -> when each record was handled
	last    time.Time             // when the last batch was handled
	gaps    []time.Duration       // pauses between batches, while recording
}

func (m *member) handle(_ context.Context, recs []*kgo.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if m.handled == nil {
		m.handled = map[int32][]time.Time{}
	}
	for _, r := range recs {
		m.handled[r.Partition] = append(m.handled[r.Partition], now)
	}
	if !m.last.IsZero() {
		m.gaps = append(m.gaps, now.Sub(m.last))
	}
	m.last = now
	return nil
}

// since returns the partitions m handled a record of after t.
func (m *member) since(t time.Time) []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ps []int32
	for p, ts := range m.handled {
		if len(ts) > 0 && ts[len(ts)-1].After(t) {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

// produceEvery writes one record to each partition of topic every interval
// until the test ends or the returned function is called.
func produceEvery(t *testing.T, k *testsupport.Kafka, topic string, partitions int, interval time.Duration) (stop func() int) {
	t.Helper()
	cl := k.Client(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	quit, done := make(chan struct{}), make(chan struct{})
	var n atomic.Int64
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			recs := make([]*kgo.Record, partitions)
			for p := range recs {
				recs[p] = &kgo.Record{Partition: int32(p), Value: []byte(strconv.Itoa(i))} //nolint:gosec // test sizes
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := cl.ProduceSync(ctx, recs...).FirstErr()
			cancel()
			if err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			n.Add(int64(partitions))
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	stop = func() int {
		once.Do(func() { close(quit); <-done })
		return int(n.Load())
	}
	t.Cleanup(func() { stop() })
	return stop
}

// A member that stops heartbeating (its process was killed: here its
// connections are cut, so it neither commits nor leaves the group) loses
// its partitions to the other member within 10s with the default session
// timeout and heartbeat interval, and the other member handles their new
// records.
func TestCrashedMembersPartitionsMoveWithin10s(t *testing.T) {
	const partitions = 4
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "crash", partitions)
	group := testsupport.Name("g")
	cfg := testConfig(topic, group)
	cfg.SessionTimeout, cfg.HeartbeatInterval = 0, 0 // the defaults: the requirement is on them

	proxy := testsupport.NewProxy(t, k.Config.Brokers[0])
	viaProxy := kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, proxy.Addr()) // every broker of this one-broker cluster
	})
	var a, b member
	a.c = newConsumer(t, k, cfg, consume.BatchHandlerFunc(a.handle), zerolog.Nop())
	consume.WithClientOpts(a.c, viaProxy)
	b.c = newConsumer(t, k, cfg, consume.BatchHandlerFunc(b.handle), zerolog.Nop())
	a.stop = run(t, a.c)
	b.stop = run(t, b.c)
	stopProducing := produceEvery(t, k, topic, partitions, 100*time.Millisecond)

	// Both members own partitions once each handles some and together all.
	var ofA []int32
	waitFor(t, "both members consuming", func() bool {
		since := time.Now().Add(-500 * time.Millisecond)
		ofA = a.since(since)
		ofB := b.since(since)
		return len(ofA) > 0 && len(ofB) > 0 && len(ofA)+len(ofB) == partitions
	})

	proxy.Cut() // member a is gone without a word
	cut := time.Now()
	var moved time.Duration
	waitFor(t, "member b to handle the partitions of a", func() bool {
		ofB := b.since(cut)
		for _, p := range ofA {
			if !slices.Contains(ofB, p) {
				return false
			}
		}
		moved = time.Since(cut)
		return true
	})
	t.Logf("the partitions %v of the crashed member were handled by the other %v after the crash", ofA, moved.Round(10*time.Millisecond))
	if moved > 10*time.Second {
		t.Errorf("partitions moved %v after the crash, want at most 10s", moved)
	}
	stopProducing()
	if err := b.stop(); err != nil {
		t.Fatalf("Run (b) = %v", err)
	}
	proxy.Restore()
	if err := a.stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run (a) = %v", err)
	}
}

// While one member restarts again and again, the other keeps handling
// records: rebalances are incremental (cooperative-sticky), so only the
// partitions that change owner pause. Every record is handled in the end.
func TestRestartStormKeepsTheOtherMemberFlowing(t *testing.T) {
	const partitions, storm = 6, 20 * time.Second
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "storm", partitions)
	group := testsupport.Name("g")
	cfg := testConfig(topic, group)

	var steady member
	steady.c = newConsumer(t, k, cfg, consume.BatchHandlerFunc(steady.handle), zerolog.Nop())
	steady.stop = run(t, steady.c)
	stopProducing := produceEvery(t, k, topic, partitions, 50*time.Millisecond)
	waitFor(t, "the steady member consuming", func() bool { return len(steady.since(time.Now().Add(-time.Second))) == partitions })

	var restarts int
	var stormy member
	steady.mu.Lock()
	steady.gaps, steady.last = nil, time.Time{}
	steady.mu.Unlock()
	for end := time.Now().Add(storm); time.Now().Before(end); restarts++ {
		stormy.c = newConsumer(t, k, cfg, consume.BatchHandlerFunc(stormy.handle), zerolog.Nop())
		stop := run(t, stormy.c)
		time.Sleep(time.Duration(300+restarts%5*400) * time.Millisecond) // 0.3s to 1.9s
		if err := stop(); err != nil {
			t.Fatalf("Run (restart %d) = %v", restarts, err)
		}
	}
	steady.mu.Lock()
	longest := slices.Max(append(steady.gaps, 0))
	steady.mu.Unlock()
	produced := stopProducing()
	stormy.mu.Lock()
	took := len(stormy.handled)
	stormy.mu.Unlock()
	t.Logf("%d restarts in %v, the restarting member handled records of %d partitions: the longest pause of the steady member was %v",
		restarts, storm, took, longest.Round(time.Millisecond))
	if took == 0 {
		t.Errorf("the restarting member never handled a record: no partition moved, the storm tested nothing")
	}
	if longest > 5*time.Second {
		t.Errorf("the steady member paused %v during the restart storm", longest)
	}
	waitFor(t, "every record committed", func() bool {
		for p := range partitions {
			if committed(t, k, group, topic, p) < int64(produced/partitions) {
				return false
			}
		}
		return true
	})
	if err := steady.stop(); err != nil {
		t.Fatalf("Run (steady) = %v", err)
	}
}
