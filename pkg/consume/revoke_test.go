package consume_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// A member shutting down still owns the partitions whose batches it is
// finishing: a member that joins meanwhile gets them only once they are
// committed (or abandoned), so it never handles those records at the same
// time, and the shutting-down member's late commit never moves an offset
// back behind the new owner's.
func TestShutdownKeepsPartitionsUntilTheirBatchesFinish(t *testing.T) {
	const partitions, first = 2, 5
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "handover", partitions)
	group := testsupport.Name("g")
	cfg := testConfig(topic, group)
	cfg.DrainTimeout, cfg.RebalanceTimeout = 30*time.Second, 60*time.Second // a's batches stay in flight
	for p := range partitions {
		produce(t, k, topic, p, 0, first)
	}

	// Member a blocks in its first batch of each partition until released.
	entered, release := make(chan int32, 16), make(chan struct{})
	var released atomic.Bool
	a := newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(_ context.Context, recs []*kgo.Record) error {
		entered <- recs[0].Partition
		<-release
		return nil
	}), zerolog.Nop())
	stopA := run(t, a)
	for range partitions {
		<-entered
	}
	aStopped := make(chan error, 1)
	go func() { aStopped <- stopA() }()
	time.Sleep(100 * time.Millisecond) // let the shutdown begin before b joins

	// Member b remembers the records it handled while a still held them.
	var mu sync.Mutex
	var overlap []string
	b := newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(_ context.Context, recs []*kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			if r.Offset < first && !released.Load() {
				overlap = append(overlap, fmt.Sprintf("%d@%d", r.Partition, r.Offset))
			}
		}
		return nil
	}), zerolog.Nop())
	stopB := run(t, b)
	overlapping := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return overlap
	}
	// Enough time for b to join and for a rebalance to hand it a partition.
	if waitUntil(10*time.Second, func() bool { return len(overlapping()) > 0 }) {
		t.Errorf("member b handled records (partition@offset) %v while member a, shutting down, still handled them", overlapping())
	}
	for p := range partitions {
		produce(t, k, topic, p, first, first)
	}
	if len(overlapping()) > 0 {
		// The defect's second half: b commits the new records before a
		// finishes.
		waitUntil(10*time.Second, func() bool {
			for p := range partitions {
				if committed(t, k, group, topic, p) == 2*first {
					return true
				}
			}
			return false
		})
	}
	released.Store(true)
	close(release)
	if err := <-aStopped; err != nil {
		t.Fatalf("Run (a) = %v", err)
	}
	allCommitted := func() bool {
		for p := range partitions {
			if committed(t, k, group, topic, p) != 2*first {
				return false
			}
		}
		return true
	}
	if !waitUntil(20*time.Second, allCommitted) {
		var offs []int64
		for p := range partitions {
			offs = append(offs, committed(t, k, group, topic, p))
		}
		t.Errorf("committed offsets %v, want %d each: a late commit of the member that shut down moved an offset back", offs, 2*first)
	}
	if err := stopB(); err != nil {
		t.Fatalf("Run (b) = %v", err)
	}
}

// A handler that ignores its context cannot hold a shutdown up beyond
// DrainTimeout and a short grace, however many partitions it blocks, with
// or without merging partitions: Run abandons it, says so at error level,
// and commits nothing for it.
func TestShutdownAbandonsHandlersThatIgnoreTheirContext(t *testing.T) {
	const partitions = 6
	const drain = time.Second
	for _, merge := range []bool{false, true} {
		t.Run(fmt.Sprintf("merge=%v", merge), func(t *testing.T) {
			k := testsupport.NewKafka(t)
			topic := topics(t, k, "stuck", partitions)
			group := testsupport.Name("g")
			cfg := testConfig(topic, group)
			cfg.DrainTimeout, cfg.MergePartitions = drain, merge
			for p := range partitions {
				produce(t, k, topic, p, 0, 1)
			}

			var mu sync.Mutex
			inside := map[int32]bool{}
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			var logs syncBuffer
			c := newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(_ context.Context, recs []*kgo.Record) error {
				mu.Lock()
				for _, r := range recs {
					inside[r.Partition] = true
				}
				mu.Unlock()
				<-release // the context's end is ignored
				return nil
			}), zerolog.New(&logs))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()

			want := partitions // every partition's goroutine is stuck in the handler
			if merge {
				want = 1 // the merger is stuck in the handler, the partitions wait for it
			}
			waitFor(t, "the handler blocking", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(inside) >= want
			})
			cancel()
			start := time.Now()
			bound := 5 * drain
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run = %v", err)
				}
			case <-time.After(4 * bound):
				t.Fatalf("Run did not return within %v of its cancellation with handlers stuck, drain timeout %v", 4*bound, drain)
			}
			took := time.Since(start)
			t.Logf("Run returned %v after its cancellation, drain timeout %v", took.Round(time.Millisecond), drain)
			if took > bound {
				t.Errorf("Run returned %v after its cancellation, want within about the drain timeout %v (bound %v)", took, drain, bound)
			}
			if !strings.Contains(logs.String(), `"level":"error"`) {
				t.Errorf("no error logged for the abandoned handler:\n%s", logs.String())
			}
			for p := range partitions {
				if off := committed(t, k, group, topic, p); off >= 0 {
					t.Errorf("partition %d: committed offset %d for an abandoned batch", p, off)
				}
			}
		})
	}
}
