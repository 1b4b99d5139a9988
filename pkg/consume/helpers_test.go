package consume_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// topics creates a topic with partitions and its dead-letter topic.
func topics(t *testing.T, k *testsupport.Kafka, prefix string, partitions int) string {
	t.Helper()
	topic := k.Topic(t, prefix, partitions)
	k.CreateTopic(t, dlq.Topic(topic), 1)
	return topic
}

// testConfig is a consumer configuration with short timings for tests.
func testConfig(topic, group string) consume.Config {
	return consume.Config{Topic: topic, GroupID: group, SessionTimeout: 3 * time.Second,
		RebalanceTimeout: 10 * time.Second, DrainTimeout: 3 * time.Second, MaxWait: 100 * time.Millisecond,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
}

func newConsumer(t *testing.T, k *testsupport.Kafka, cfg consume.Config, h consume.BatchHandler, log zerolog.Logger) *consume.Consumer {
	t.Helper()
	c, err := consume.New(cfg, k.Conn, h, log)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// message is message number i, with the event headers the consumer logs.
func message(i int) *kgo.Record {
	id := strconv.Itoa(i)
	return &kgo.Record{Key: []byte(id), Value: []byte("m" + id), Headers: []kgo.RecordHeader{
		{Key: contract.HeaderEventID, Value: []byte("event-" + id)},
		{Key: contract.HeaderAggregateID, Value: []byte("agg-" + id)},
	}}
}

// produce writes messages first..first+n-1 to the given partition of topic.
func produce(t *testing.T, k *testsupport.Kafka, topic string, partition, first, n int) {
	t.Helper()
	recs := make([]*kgo.Record, 0, n)
	for i := first; i < first+n; i++ {
		r := message(i)
		r.Partition = int32(partition) //nolint:gosec // test sizes
		recs = append(recs, r)
	}
	k.ProduceToPartitions(t, topic, recs...)
}

// committed is the group's committed offset of a partition (-1: none).
func committed(t *testing.T, k *testsupport.Kafka, group, topic string, partition int) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm, err := k.Conn.Admin()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return -1 // the group has not been created yet
	}
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	o, ok := resp.Lookup(topic, int32(partition)) //nolint:gosec // test sizes
	if !ok {
		return -1
	}
	if o.Err != nil {
		t.Fatalf("offset fetch: %v", o.Err)
	}
	return o.At
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

// waitUntil polls cond until it holds or timeout passes, and reports
// whether it held: for a window in which something must not happen.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// recorder remembers the batches handed to a handler, in order, as offsets.
type recorder struct {
	mu      sync.Mutex
	batches [][]int64
}

func (r *recorder) add(recs []*kgo.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	offs := make([]int64, len(recs))
	for i, m := range recs {
		offs[i] = m.Offset
	}
	r.batches = append(r.batches, offs)
}

func (r *recorder) all() [][]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]int64(nil), r.batches...)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = testsupport.SyncBuffer

// run starts c.Run and returns a stop function that cancels it and returns
// its result.
func run(t *testing.T, c interface{ Run(context.Context) error }) func() error {
	t.Helper()
	return testsupport.Start(t, c).Stop
}
