package apply_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/apply"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

const partitions = 3

// outcomes records what the real store did with each change, in order.
type outcomes struct {
	store *store.Store
	mu    sync.Mutex
	log   []string // "<history id>/v<version>:<outcome>"
}

func (o *outcomes) Apply(ctx context.Context, h store.History) (store.Outcome, error) {
	out, err := o.store.Apply(ctx, h)
	if err == nil {
		o.mu.Lock()
		o.log = append(o.log, contract.AggregateID(h.HistoryID)+"/v"+strconv.FormatInt(h.SourceVersion, 10)+":"+out.String())
		o.mu.Unlock()
	}
	return out, err
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

// The whole receiving path against the SCRAM broker and PostgreSQL: events
// are applied once each in per-aggregate order, stale and duplicate ones
// change nothing, a failing event is retried until it applies, and a
// restarted consumer resumes after the committed events only.
func TestConsumerAppliesEventsEndToEnd(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := k.Topic(t, "histories", partitions)
	group := testsupport.Name("g")
	s := store.New(testsupport.MigratedDatabase(t, migrations.Receiver).Pool)
	rec := &outcomes{store: s}

	sent2v1 := event(t, payload(2, contract.StatusSent, "1"), 1)
	dup4 := event(t, payload(4, contract.StatusSent, "4"), 1)
	flaky := event(t, payload(1, contract.StatusDelivered, "0.1", "0.2"), 2)
	produce(t, k, topic,
		event(t, payload(1, contract.StatusSent, "5"), 1), flaky,
		sent2v1, event(t, payload(2, contract.StatusError, "1"), 2), sent2v1, // replay after ERROR
		event(t, payload(3, contract.StatusSent, "3"), 1), event(t, payload(3, contract.StatusError, "3"), 2),
		event(t, payload(3, contract.StatusSent, "3.5"), 3), // re-send after ERROR
		dup4, dup4)

	failures := 0
	stop := start(t, k, topic, group, failFirst(apply.New(rec, nil), string(flaky.Headers[0].Value), 2, &failures))
	waitCaughtUp(t, k, group, topic)
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}

	ctx := context.Background()
	want := map[string][]string{
		"1": {"v1:applied", "v2:applied"},
		"2": {"v1:applied", "v2:deleted", "v1:stale"},
		"3": {"v1:applied", "v2:deleted", "v3:applied"},
		"4": {"v1:applied", "v1:stale"},
	}
	for id, w := range want {
		if got := rec.of(id); !slices.Equal(got, w) {
			t.Errorf("history %s: outcomes %v, want %v", id, got, w)
		}
	}
	if failures != 2 {
		t.Errorf("flaky event failed %d times, want 2", failures)
	}
	if h, err := s.Get(ctx, 1); err != nil || h.TotalAmount != "0.3000" || h.EmailStatus != contract.StatusDelivered {
		t.Errorf("history 1 = %+v, %v; want v2 DELIVERED totalling 0.3000", h, err)
	}
	if _, err := s.Get(ctx, 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("history 2 (ERROR, then replayed v1): Get = %v, want not found", err)
	}
	if h, err := s.Get(ctx, 3); err != nil || h.SourceVersion != 3 || h.TotalAmount != "3.5000" {
		t.Errorf("history 3 (re-sent after ERROR) = %+v, %v; want v3", h, err)
	}

	// A restarted member handles only what was produced after the commits.
	produce(t, k, topic, event(t, payload(6, contract.StatusSent, "6"), 1))
	stop = start(t, k, topic, group, apply.New(rec, nil))
	waitCaughtUp(t, k, group, topic)
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n, got := len(rec.log), rec.of("6"); n != 11 || !slices.Equal(got, []string{"v1:applied"}) {
		t.Errorf("after restart: %d outcomes in all (want 11), history 6: %v", n, got)
	}
}

// failFirst fails the event with id eventID n times before handing it to h.
func failFirst(h consume.Handler, eventID string, n int, failures *int) consume.Handler {
	return consume.HandlerFunc(func(ctx context.Context, m kafka.Message) error {
		if string(m.Headers[0].Value) == eventID && *failures < n {
			*failures++
			return errors.New("injected failure")
		}
		return h.Handle(ctx, m)
	})
}

func start(t *testing.T, k *testsupport.Kafka, topic, group string, h consume.Handler) func() error {
	t.Helper()
	c, err := consume.New(consume.Config{Topic: topic, GroupID: group, SessionTimeout: 6 * time.Second,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}, k.Conn, h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

func produce(t *testing.T, k *testsupport.Kafka, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(k.Config.Brokers...), Topic: topic, Transport: k.Conn.Transport(),
		RequiredAcks: kafka.RequireAll, Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// waitCaughtUp waits until the group has committed every partition's end.
func waitCaughtUp(t *testing.T, k *testsupport.Kafka, group, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	parts := []int{0, 1, 2}
	reqs := make([]kafka.OffsetRequest, 0, partitions)
	for _, p := range parts {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	for {
		ends, err := k.Conn.Client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		if err != nil {
			t.Fatalf("list offsets: %v", err)
		}
		got, err := k.Conn.Client().OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
		if err != nil {
			t.Fatalf("offset fetch: %v", err)
		}
		committed := map[int]int64{}
		for _, p := range got.Topics[topic] {
			committed[p.Partition] = p.CommittedOffset
		}
		done := len(ends.Topics[topic]) == partitions
		for _, p := range ends.Topics[topic] {
			if c, ok := committed[p.Partition]; p.LastOffset > 0 && (!ok || c != p.LastOffset) {
				done = false
			}
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s did not commit to the end of %s", group, topic)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
