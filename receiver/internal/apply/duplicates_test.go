package apply_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/apply"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

// An event produced twice, and a whole batch delivered again because the
// consumer stopped after the database commit but before the offset commit,
// take effect once: the ledger holds each event once and the redeliveries
// are reported as duplicates without touching the rows.
func TestDuplicateDeliveriesTakeEffectOnce(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "dups", 1)
	group := testsupport.Name("g")
	d := testsupport.MigratedDatabase(t, migrations.Receiver)
	s := store.New(d.Pool)
	e2 := event(t, payload(2, contract.StatusSent, "2"), 1)
	produce(t, k, topic, event(t, payload(1, contract.StatusSent, "1"), 1), e2, e2,
		event(t, payload(1, contract.StatusDelivered, "1"), 2))

	// The first member applies the batch, then "crashes" before committing
	// the offset: its handler holds on until the drain timeout ends it.
	first := newHandler(t, s)
	applied := make(chan struct{})
	cfg := consumerConfig(topic, group)
	cfg.BatchLinger, cfg.DrainTimeout = 500*time.Millisecond, 200*time.Millisecond
	_, stop := start(t, k, cfg, consume.BatchHandlerFunc(func(ctx context.Context, msgs []*kgo.Record) error {
		if err := first.HandleBatch(ctx, msgs); err != nil {
			return err
		}
		close(applied)
		<-ctx.Done()
		return ctx.Err()
	}))
	<-applied
	before, err := s.Get(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if caughtUp(t, k, group, topic, 1) {
		t.Fatal("the offset was committed although the handler did not return success")
	}
	if st := first.Stats(); st != (apply.Stats{Applied: 3, Duplicate: 1}) {
		t.Fatalf("first delivery: %+v, want 3 applied and the second copy of event 2 a duplicate", st)
	}

	second := newHandler(t, s)
	_, stop = start(t, k, consumerConfig(topic, group), second)
	waitFor(t, "the group to catch up", func() bool { return caughtUp(t, k, group, topic, 1) })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if st := second.Stats(); st != (apply.Stats{Duplicate: 4}) {
		t.Fatalf("redelivery after the restart: %+v, want 4 duplicates", st)
	}
	if n := ledger(t, d); n != 3 {
		t.Fatalf("ledger holds %d events, want 3", n)
	}
	after, err := s.Get(context.Background(), 1)
	if err != nil || !after.SyncedAt.Equal(before.SyncedAt) || after.SourceVersion != 2 {
		t.Fatalf("history 1 after the redelivery: %+v, %v; want version 2 untouched since %v", after, err, before.SyncedAt)
	}
}
