package consume_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// calls records each handler call as the partition of each message, and
// what each partition got, in order.
type calls struct {
	mu        sync.Mutex
	parts     [][]int
	offsets   map[int][]int64
	succeeded int
}

func (c *calls) add(msgs []*kgo.Record, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []int
	for _, m := range msgs {
		if !slices.Contains(parts, int(m.Partition)) {
			parts = append(parts, int(m.Partition))
		}
		if ok {
			if c.offsets == nil {
				c.offsets = map[int][]int64{}
			}
			c.offsets[int(m.Partition)] = append(c.offsets[int(m.Partition)], m.Offset)
		}
	}
	c.parts = append(c.parts, parts)
}

// merged reports whether a call held messages of more than one partition.
func (c *calls) merged() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.parts, func(p []int) bool { return len(p) > 1 })
}

func (c *calls) applied(partition int) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.offsets[partition])
}

func upTo(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i)
	}
	return out
}

// With MergePartitions, the batches partitions have waiting while a call
// runs go to the handler together; every message is applied once, each
// partition's in order, and every partition's offset is committed.
func TestMergedPartitionsAreHandledTogetherAndCommitted(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "merge", 3)
	group := testsupport.Name("g")
	for p := range 3 {
		produce(t, k, topic, p, p*100, 30)
	}
	cfg := testConfig(topic, group)
	cfg.MergePartitions = true
	var got calls
	var first atomic.Bool
	c := newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(_ context.Context, msgs []*kgo.Record) error {
		if !first.Swap(true) {
			time.Sleep(time.Second) // the other partitions' batches queue up meanwhile
		}
		got.add(msgs, true)
		return nil
	}), zerolog.Nop())
	stop := run(t, c)
	waitFor(t, "every partition committed to its end", func() bool {
		return committed(t, k, group, topic, 0) == 30 && committed(t, k, group, topic, 1) == 30 && committed(t, k, group, topic, 2) == 30
	})
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if !got.merged() {
		t.Fatalf("no handler call held more than one partition: %v", got.parts)
	}
	for p := range 3 {
		if a := got.applied(p); !slices.Equal(a, upTo(30)) {
			t.Fatalf("partition %d applied %v, want offsets 0..29 once each, in order", p, a)
		}
	}
	if s := c.Stats(); s.Messages != 90 || s.Batches >= 90 {
		t.Fatalf("stats %+v, want 90 messages in fewer batches", s)
	}
}

// A merged call that fails permanently goes back to each partition: the
// poison messages alone are dead-lettered, every other message is applied
// once, and the partitions move on. (Partitions 0 and 1 each hold a poison,
// so whichever partition's call runs first, the next call merges two
// partitions and one poison.)
func TestMergedBatchWithAPoisonFallsBackToEachPartition(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "mergepoison", 3)
	group := testsupport.Name("g")
	for p := range 3 {
		produce(t, k, topic, p, p*100, 10) // messages 3 and 103 are poisons
	}
	cfg := testConfig(topic, group)
	cfg.MergePartitions = true
	var got calls
	var mergedFailures atomic.Int32
	var first atomic.Bool
	c := newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(_ context.Context, msgs []*kgo.Record) error {
		if !first.Swap(true) {
			time.Sleep(time.Second) // the other partitions' batches queue up meanwhile
		}
		for _, m := range msgs {
			if k := string(m.Key); k == "3" || k == "103" {
				got.add(msgs, false)
				if slices.ContainsFunc(msgs, func(o *kgo.Record) bool { return o.Partition != m.Partition }) {
					mergedFailures.Add(1)
				}
				return consume.Permanent(dlq.ClassSchema, fmt.Errorf("message %s: forms[0].fileName: is required", k))
			}
		}
		got.add(msgs, true)
		return nil
	}), zerolog.Nop())
	stop := run(t, c)
	waitFor(t, "every partition committed to its end", func() bool {
		return committed(t, k, group, topic, 0) == 10 && committed(t, k, group, topic, 1) == 10 && committed(t, k, group, topic, 2) == 10
	})
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if mergedFailures.Load() == 0 {
		t.Fatalf("no merged call failed (the test needs one): calls %v", got.parts)
	}
	withoutPoison := slices.Delete(upTo(10), 3, 4)
	for p, want := range [][]int64{withoutPoison, withoutPoison, upTo(10)} {
		if a := got.applied(p); !slices.Equal(a, want) {
			t.Fatalf("partition %d applied %v, want %v, once each, in order", p, a, want)
		}
	}
	dead := k.ReadAll(t, dlq.Topic(topic), 2, 30*time.Second)
	if len(dead) != 2 {
		t.Fatalf("dead-letter topic holds %d messages, want 2", len(dead))
	}
	slices.SortFunc(dead, func(a, b *kgo.Record) int { return len(a.Key) - len(b.Key) }) // "3", then "103"
	assertDeadLetter(t, dead[0], message(3), topic, 3, dlq.ClassSchema, "forms[0].fileName: is required", group)
	if e, err := dlq.Parse(dead[1]); err != nil || string(e.Key) != "103" || e.OriginalPartition != 1 || e.OriginalOffset != 3 {
		t.Fatalf("second dead letter %+v (%v), want message 103 from partition 1 offset 3", e, err)
	}
}

// Batches larger than a quarter of BatchSize (a backfill's backlog) are
// not merged: each partition applies its own, in parallel with the others.
func TestLargeBatchesAreNotMerged(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "mergelarge", 3)
	group := testsupport.Name("g")
	for p := range 3 {
		produce(t, k, topic, p, p*1000, 60)
	}
	cfg := testConfig(topic, group)
	cfg.MergePartitions = true
	cfg.BatchSize = 100 // merged only up to 25
	var got calls
	var first atomic.Bool
	c := newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(_ context.Context, msgs []*kgo.Record) error {
		if !first.Swap(true) {
			time.Sleep(time.Second) // two partitions' batches of 60 would queue up meanwhile
		}
		got.add(msgs, true)
		return nil
	}), zerolog.Nop())
	stop := run(t, c)
	waitFor(t, "every partition committed to its end", func() bool {
		return committed(t, k, group, topic, 0) == 60 && committed(t, k, group, topic, 1) == 60 && committed(t, k, group, topic, 2) == 60
	})
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got.merged() {
		t.Fatalf("a call held several partitions' batches of 60: %v", got.parts)
	}
	for p := range 3 {
		if a := got.applied(p); !slices.Equal(a, upTo(60)) {
			t.Fatalf("partition %d applied %v, want offsets 0..59 once each, in order", p, a)
		}
	}
}

// A batch that fails in the merger on its own is not handed over again at
// once: that failure is its first attempt, and the next waits out the
// backoff like every retry. Each failure counts as one retry.
func TestBatchFailingAloneInTheMergerWaitsOutTheBackoff(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "mergebackoff", 2)
	group := testsupport.Name("g")
	produce(t, k, topic, 0, 0, 3) // partition 1 stays empty: the merger sees this batch alone
	cfg := testConfig(topic, group)
	cfg.MergePartitions = true
	cfg.MinBackoff, cfg.MaxBackoff = 200*time.Millisecond, 200*time.Millisecond
	var mu sync.Mutex
	var calls []time.Time
	c := newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(context.Context, []*kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, time.Now())
		if len(calls) <= 3 {
			return fmt.Errorf("database down (call %d)", len(calls))
		}
		return nil
	}), zerolog.Nop())
	stop := run(t, c)
	waitFor(t, "the batch committed", func() bool { return committed(t, k, group, topic, 0) == 3 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 4 {
		t.Fatalf("handler called %d times, want 4 (three failures, then success)", len(calls))
	}
	for i := 1; i < len(calls); i++ {
		// The backoff is jittered within its upper half: at least 100ms.
		if gap := calls[i].Sub(calls[i-1]); gap < 100*time.Millisecond {
			t.Fatalf("call %d came %v after a failure, want at least the backoff's 100ms: %v", i+1, gap, calls)
		}
	}
	if s := c.Stats(); s.Retries != 3 {
		t.Fatalf("stats %+v, want 3 retries, one per failure", s)
	}
}
