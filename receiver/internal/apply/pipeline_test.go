package apply_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

const partitions = 3

// The whole receiving path against the SCRAM broker and PostgreSQL: events
// are applied once each in per-aggregate order, stale and redelivered ones
// change nothing, a failing batch is retried until it applies, and a
// restarted consumer resumes after the committed events only.
func TestConsumerAppliesEventsEndToEnd(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "histories", partitions)
	group := testsupport.Name("g")
	s := store.New(testsupport.MigratedDatabase(t, migrations.Receiver).Pool)
	rec := &outcomes{store: s}

	sent2v1 := event(t, payload(2, contract.StatusSent, "1"), 1)
	dup4 := event(t, payload(4, contract.StatusSent, "4"), 1)
	flaky := event(t, payload(1, contract.StatusDelivered, "0.1", "0.2"), 2)
	produce(t, k, topic,
		event(t, payload(1, contract.StatusSent, "5"), 1), flaky,
		sent2v1, event(t, payload(2, contract.StatusError, "1"), 2), again(sent2v1), // redelivery after ERROR
		event(t, payload(3, contract.StatusSent, "3"), 1), event(t, payload(3, contract.StatusError, "3"), 2),
		event(t, payload(3, contract.StatusSent, "3.5"), 3), // re-send after ERROR
		dup4, again(dup4))

	var failures atomic.Int32
	_, stop := start(t, k, consumerConfig(topic, group), failFirst(newHandler(t, rec), string(flaky.Headers[0].Value), 2, &failures))
	waitFor(t, "the group to catch up", func() bool { return caughtUp(t, k, group, topic, partitions) })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}

	ctx := context.Background()
	want := map[string][]string{
		"1": {"v1:applied", "v2:applied"},
		"2": {"v1:applied", "v2:deleted", "v1:duplicate"},
		"3": {"v1:applied", "v2:deleted", "v3:applied"},
		"4": {"v1:applied", "v1:duplicate"},
	}
	for id, w := range want {
		if got := rec.of(id); !slices.Equal(got, w) {
			t.Errorf("history %s: outcomes %v, want %v", id, got, w)
		}
	}
	if n := failures.Load(); n != 2 {
		t.Errorf("flaky event failed %d times, want 2", n)
	}
	if h, err := s.Get(ctx, 1); err != nil || h.TotalAmount != "0.3000" || h.EmailStatus != contract.StatusDelivered {
		t.Errorf("history 1 = %+v, %v; want v2 DELIVERED totalling 0.3000", h, err)
	}
	if _, err := s.Get(ctx, 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("history 2 (ERROR, then v1 redelivered): Get = %v, want not found", err)
	}
	if h, err := s.Get(ctx, 3); err != nil || h.SourceVersion != 3 || h.TotalAmount != "3.5000" {
		t.Errorf("history 3 (re-sent after ERROR) = %+v, %v; want v3", h, err)
	}

	// A restarted member handles only what was produced after the commits.
	produce(t, k, topic, event(t, payload(6, contract.StatusSent, "6"), 1))
	_, stop = start(t, k, consumerConfig(topic, group), newHandler(t, rec))
	waitFor(t, "the group to catch up", func() bool { return caughtUp(t, k, group, topic, partitions) })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n, got := rec.count(), rec.of("6"); n != 11 || !slices.Equal(got, []string{"v1:applied"}) {
		t.Errorf("after restart: %d outcomes in all (want 11), history 6: %v", n, got)
	}
}

// again is a copy of r to produce once more: a record is produced once.
func again(r *kgo.Record) *kgo.Record {
	c := *r
	return &c
}

// failFirst fails, n times, any batch holding the event with id eventID,
// with a transient error, before handing batches to h.
func failFirst(h consume.BatchHandler, eventID string, n int32, failures *atomic.Int32) consume.BatchHandler {
	return consume.BatchHandlerFunc(func(ctx context.Context, msgs []*kgo.Record) error {
		for _, m := range msgs {
			if string(m.Headers[0].Value) == eventID && failures.Load() < n {
				failures.Add(1)
				return errors.New("injected failure")
			}
		}
		return h.HandleBatch(ctx, msgs)
	})
}

// Each kind of permanent failure is dead-lettered with its class and reason
// and the original message, its offset is committed, and the good events
// around it on the same partition (the same batch, even) are applied.
func TestEveryPermanentFailureIsDeadLetteredAndTheRestApplied(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "poison", 1)
	group := testsupport.Name("g")
	s := store.New(testsupport.MigratedDatabase(t, migrations.Receiver).Pool)

	unsupported := event(t, payload(12, contract.StatusSent, "1"), 1)
	unsupported.Value = []byte(strings.Replace(string(unsupported.Value), `"schemaVersion":"1.0"`, `"schemaVersion":"2.0"`, 1))
	mismatch := event(t, payload(13, contract.StatusSent, "1"), 1)
	mismatch.Value = []byte(strings.Replace(string(mismatch.Value), `"aggregateId":"13"`, `"aggregateId":"99"`, 1))
	nul := payload(14, contract.StatusSent, "1")
	nul.SenderOfficeName = "Office\x00"
	poisons := []struct {
		m             *kgo.Record
		class, reason string
	}{
		{&kgo.Record{Key: []byte("10"), Value: []byte("\x00\x01 not json"), Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t-1")}}},
			dlq.ClassDecode, "envelope is not valid JSON"},
		{event(t, payload(11, contract.StatusSent, "1", "0.00001"), 1), dlq.ClassSchema, "forms[1].totalAmount"},
		{unsupported, dlq.ClassUnsupported, `unsupported schema version: "2.0"`},
		{mismatch, dlq.ClassTransform, "aggregateId"},
		{event(t, nul, 1), dlq.ClassSchema, "senderOfficeName: must not contain NUL"}, // the contract refuses it before the database
	}
	msgs := []*kgo.Record{event(t, payload(1, contract.StatusSent, "1"), 1)}
	for _, p := range poisons {
		msgs = append(msgs, p.m)
	}
	msgs = append(msgs, event(t, payload(2, contract.StatusSent, "2"), 1))
	produce(t, k, topic, msgs...)

	cfg := consumerConfig(topic, group)
	cfg.BatchLinger = 500 * time.Millisecond // the seven messages arrive as one batch
	h := newHandler(t, s)
	c, stop := start(t, k, cfg, h)
	waitFor(t, "the group to catch up", func() bool { return caughtUp(t, k, group, topic, 1) })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}

	for _, id := range []int64{1, 2} {
		if _, err := s.Get(context.Background(), id); err != nil {
			t.Errorf("good history %d: %v", id, err)
		}
	}
	if st, cs := h.Stats(), c.Stats(); st.Applied != 2 || cs.DeadLettered != int64(len(poisons)) {
		t.Errorf("handler stats %+v, consumer stats %+v: want 2 applied, %d dead-lettered", st, cs, len(poisons))
	}
	dead := k.ReadAll(t, dlq.Topic(topic), len(poisons), 30*time.Second)
	if len(dead) != len(poisons) {
		t.Fatalf("dead-letter topic holds %d messages, want %d", len(dead), len(poisons))
	}
	for i, p := range poisons {
		assertDeadLetter(t, dead[i], p.m, topic, int64(i+1), p.class, p.reason, group)
	}
}

// assertDeadLetter checks that dead is orig, from partition 0 of topic at
// offset, with the dlq-* headers of a first failure of class naming reason.
func assertDeadLetter(t *testing.T, dead, orig *kgo.Record, topic string, offset int64, class, reason, group string) {
	t.Helper()
	e, err := dlq.Parse(dead)
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b kgo.RecordHeader) bool { return a.Key == b.Key && string(a.Value) == string(b.Value) }
	if string(e.Key) != string(orig.Key) || string(e.Value) != string(orig.Value) || !slices.EqualFunc(e.Headers, orig.Headers, same) {
		t.Errorf("dead letter %s carries key %q value %q headers %v, want the original %q %q %v",
			e.ID, e.Key, e.Value, e.Headers, orig.Key, orig.Value, orig.Headers)
	}
	if e.Class != class || !strings.Contains(e.Reason, reason) || e.OriginalTopic != topic || e.OriginalPartition != 0 ||
		e.OriginalOffset != offset || e.Attempt != 1 || e.Group != group || e.FailedAt.IsZero() ||
		time.Since(e.FailedAt) > time.Hour {
		t.Errorf("dead letter %+v:\nwant class %s, reason naming %q, from %s/0@%d, attempt 1, group %s, failed just now",
			e, class, reason, topic, offset, group)
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
