package apply_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/apply"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

// outcomes records what the real store did with each change, in order.
type outcomes struct {
	store *store.Store
	mu    sync.Mutex
	log   []string // "<history id>/v<version>:<outcome>"
}

func (o *outcomes) ApplyBatch(ctx context.Context, hs []store.History) ([]store.Outcome, error) {
	outs, err := o.store.ApplyBatch(ctx, hs)
	if err == nil {
		o.mu.Lock()
		for i, h := range hs {
			o.log = append(o.log, contract.AggregateID(h.HistoryID)+"/v"+strconv.FormatInt(h.SourceVersion, 10)+":"+outs[i].String())
		}
		o.mu.Unlock()
	}
	return outs, err
}

func (o *outcomes) of(id string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, l := range o.log {
		if v, ok := strings.CutPrefix(l, id+"/"); ok {
			out = append(out, v)
		}
	}
	return out
}

func (o *outcomes) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.log)
}

// newHandler is a handler applying to s, in UTC, without metrics.
func newHandler(t *testing.T, s apply.Applier) *apply.Handler {
	t.Helper()
	h, err := apply.New(s, apply.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// topics creates a topic with partitions and its dead-letter topic.
func topics(t *testing.T, k *testsupport.Kafka, prefix string, partitions int) string {
	t.Helper()
	topic := k.Topic(t, prefix, partitions)
	k.CreateTopic(t, dlq.Topic(topic), 1)
	return topic
}

// consumerConfig is a consumer configuration with short timings for tests,
// merging partitions as the receiver does.
func consumerConfig(topic, group string) consume.Config {
	return consume.Config{Topic: topic, GroupID: group, MergePartitions: true, SessionTimeout: 3 * time.Second,
		RebalanceTimeout: 10 * time.Second, DrainTimeout: 3 * time.Second,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
}

// start runs a consumer with cfg and h; the returned function stops it and
// returns Run's result.
func start(t *testing.T, k *testsupport.Kafka, cfg consume.Config, h consume.BatchHandler) (*consume.Consumer, func() error) {
	t.Helper()
	c, err := consume.New(cfg, k.Conn, h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return c, testsupport.Start(t, c).Stop
}

func produce(t *testing.T, k *testsupport.Kafka, topic string, recs ...*kgo.Record) {
	t.Helper()
	k.Produce(t, topic, recs...)
}

// caughtUp reports whether the group has committed every partition's end.
func caughtUp(t *testing.T, k *testsupport.Kafka, group, topic string, partitions int) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm, err := k.Conn.Admin()
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	got, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return false
	}
	if err == nil {
		err = got.Error()
	}
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	n, done := 0, true
	ends.Each(func(o kadm.ListedOffset) {
		n++
		if c, ok := got.Lookup(topic, o.Partition); o.Offset > 0 && (!ok || c.At != o.Offset) {
			done = false
		}
	})
	return done && n == partitions
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ledger counts the rows of the processed-event ledger.
func ledger(t *testing.T, d *testsupport.Database) int {
	t.Helper()
	var n int
	if err := d.Pool.QueryRow(context.Background(), `SELECT count(*) FROM processed_event`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
