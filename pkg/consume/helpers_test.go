package consume_test

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// produce writes n messages to partition 0 of topic (one partition topics),
// numbered from first, with the event headers the consumer logs.
func produce(t *testing.T, k *testsupport.Kafka, topic string, first, n int) {
	t.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(k.Config.Brokers...), Topic: topic, Transport: k.Conn.Transport(),
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	msgs := make([]kafka.Message, 0, n)
	for i := first; i < first+n; i++ {
		id := strconv.Itoa(i)
		msgs = append(msgs, kafka.Message{Key: []byte(id), Value: []byte("m" + id), Headers: []kafka.Header{
			{Key: contract.HeaderEventID, Value: []byte("event-" + id)},
			{Key: contract.HeaderAggregateID, Value: []byte("agg-" + id)},
		}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// committed is the group's committed offset of partition 0 (-1: none).
func committed(t *testing.T, k *testsupport.Kafka, group, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := k.Conn.Client().OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		GroupID: group, Topics: map[string][]int{topic: {0}},
	})
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("offset fetch: %v", p.Error)
		}
		return p.CommittedOffset
	}
	return -1
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder remembers the offsets handed to a handler, in order.
type recorder struct {
	mu   sync.Mutex
	seen []int64
}

func (r *recorder) add(off int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, off)
}

func (r *recorder) offsets() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.seen...)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// run starts c.Run and returns a stop function that cancels it and returns
// its result.
func run(t *testing.T, c interface{ Run(context.Context) error }) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var result error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
		})
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}
