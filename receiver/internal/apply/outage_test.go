package apply_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

// histories returns n version-1 events of histories first..first+n-1.
func histories(t *testing.T, first, n int64) []*kgo.Record {
	t.Helper()
	var msgs []*kgo.Record
	for id := first; id < first+n; id++ {
		msgs = append(msgs, event(t, payload(id, contract.StatusSent, itoa(id)), 1))
	}
	return msgs
}

// PostgreSQL going away mid-stream holds the consumer back, retrying; once
// it is back every event is applied exactly once and nothing is
// dead-lettered or lost.
func TestDatabaseOutageRetriesAndLosesNothing(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "outage", 2)
	group := testsupport.Name("g")
	d := testsupport.MigratedDatabase(t, migrations.Receiver)
	proxy, url := testsupport.ProxyURL(t, d.URL)
	ctx := context.Background()
	pool, err := db.Open(ctx, url, db.Options{ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	h := newHandler(t, store.New(pool))
	c, stop := start(t, k, consumerConfig(topic, group), h)

	produce(t, k, topic, histories(t, 1, 10)...)
	waitFor(t, "the first events applied", func() bool { return caughtUp(t, k, group, topic, 2) })
	proxy.Cut()
	produce(t, k, topic, histories(t, 11, 10)...)
	waitFor(t, "the consumer retrying", func() bool { return c.Stats().Retries >= 3 })
	proxy.Restore()
	waitFor(t, "the group to catch up", func() bool { return caughtUp(t, k, group, topic, 2) })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}

	if n := ledger(t, d); n != 20 {
		t.Errorf("ledger holds %d events, want 20 (each once)", n)
	}
	var stored int
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM received_invoice_history WHERE source_version = 1`).Scan(&stored); err != nil || stored != 20 {
		t.Errorf("%d histories stored (%v), want 20", stored, err)
	}
	if st := h.Stats(); st.Applied+st.Duplicate < 20 || st.Applied > 20 || st.Stale != 0 {
		t.Errorf("handler stats %+v: want every event applied once (a duplicate only after a lost commit reply)", st)
	}
	if dead := k.ReadAll(t, dlq.Topic(topic), 0, 10*time.Second); len(dead) != 0 || c.Stats().DeadLettered != 0 {
		t.Errorf("%d messages dead-lettered during a database outage, want none", len(dead))
	}
}
