package apply_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/apply"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

// Two members share a 6-partition topic while events flow; one stops
// mid-stream and the other takes its partitions over. Every event is
// applied exactly once and every history ends at its last version.
func TestRebalanceAppliesEveryEventExactlyOnce(t *testing.T) {
	const parts, ids = 6, 20
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "rebalance", parts)
	group := testsupport.Name("g")
	d := testsupport.MigratedDatabase(t, migrations.Receiver)
	s := store.New(d.Pool)

	a, b := newHandler(t, s), newHandler(t, s)
	ca, stopA := start(t, k, consumerConfig(topic, group), a)
	_, stopB := start(t, k, consumerConfig(topic, group), b)
	rounds, stopProducing := produceRounds(t, k, topic, ids)

	waitFor(t, "both members applying", func() bool { return ca.Stats().Messages > 0 && total(b) > 0 })
	if err := stopA(); err != nil {
		t.Fatalf("Run (stopped member) = %v", err)
	}
	after := rounds.Load()
	waitFor(t, "more events after the stop", func() bool { return rounds.Load() >= after+3 })
	versions := stopProducing()
	waitFor(t, "the group to catch up", func() bool { return caughtUp(t, k, group, topic, parts) })
	if err := stopB(); err != nil {
		t.Fatalf("Run (remaining member) = %v", err)
	}

	want := int(versions) * ids
	if n := ledger(t, d); n != want {
		t.Errorf("ledger holds %d events, want %d", n, want)
	}
	if n := total(a) + total(b); n != want {
		t.Errorf("members took in %d events in all (a %+v, b %+v), want %d: each exactly once", n, a.Stats(), b.Stats(), want)
	}
	for id := int64(1); id <= ids; id++ {
		h, err := s.Get(context.Background(), id)
		if err != nil || h.SourceVersion != versions || h.TotalAmount != itoa(versions)+".0000" {
			t.Errorf("history %d = v%d total %s (%v), want v%d", id, h.SourceVersion, h.TotalAmount, err, versions)
		}
	}
}

// produceRounds produces, round after round until stopped, version v of
// histories 1..ids in round v. rounds is the last round fully produced;
// stop ends the production and returns it.
func produceRounds(t *testing.T, k *testsupport.Kafka, topic string, ids int64) (rounds *atomic.Int64, stop func() int64) {
	t.Helper()
	rounds = &atomic.Int64{}
	quit, done := make(chan struct{}), make(chan struct{})
	w := k.Client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0)) // keys hashed as Java does
	go func() {
		defer close(done)
		for v := int64(1); v <= 1000; v++ {
			msgs := make([]*kgo.Record, 0, ids)
			for id := int64(1); id <= ids; id++ {
				msgs = append(msgs, event(t, payload(id, contract.StatusSent, itoa(v)), v))
			}
			if err := w.ProduceSync(context.Background(), msgs...).FirstErr(); err != nil {
				t.Errorf("produce round %d: %v", v, err)
				return
			}
			rounds.Store(v)
			select {
			case <-quit:
				return
			case <-time.After(20 * time.Millisecond): // let events flow while the group changes
			}
		}
	}()
	var once atomic.Bool
	stop = func() int64 {
		if once.CompareAndSwap(false, true) {
			close(quit)
			<-done
		}
		return rounds.Load()
	}
	t.Cleanup(func() { stop() })
	return rounds, stop
}

// total is the number of events h took in for the first time (not
// duplicates): exactly-once means these add up to the events produced.
func total(h *apply.Handler) int {
	st := h.Stats()
	return int(st.Applied + st.Deleted + st.Stale)
}
