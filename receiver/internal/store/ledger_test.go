package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

// The janitor deletes the ledger rows older than the retention, in batches,
// and keeps the others; an event redelivered after its row is gone is still
// refused, by the version guard.
func TestJanitorPrunesOldLedgerRowsAndTheGuardStillHolds(t *testing.T) {
	d := testsupport.MigratedDatabase(t, migrations.Receiver)
	s := store.New(d.Pool)
	ctx := context.Background()
	for id := int64(1); id <= 5; id++ {
		apply(t, s, history(id, 1, 1), store.Applied)
	}
	if _, err := d.Pool.Exec(ctx, `UPDATE processed_event SET processed_at = now() - interval '8 days'
	                                WHERE aggregate_id IN ('1', '2', '3')`); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	j, err := store.NewJanitor(store.JanitorConfig{Retention: 7 * 24 * time.Hour, BatchRows: 2, Metrics: reg}, s, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := j.Prune(ctx); err != nil || n != 3 {
		t.Fatalf("Prune = %d, %v; want the 3 rows older than 7 days", n, err)
	}
	if n := ledgerRows(t, d); n != 2 {
		t.Fatalf("ledger holds %d rows after pruning, want 2", n)
	}
	want := `
# HELP invoicesync_receiver_ledger_pruned_total Processed-event ledger rows deleted for being older than the retention.
# TYPE invoicesync_receiver_ledger_pruned_total counter
invoicesync_receiver_ledger_pruned_total 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	before, _ := s.Get(ctx, 1)
	apply(t, s, history(1, 1, 1), store.Stale)     // pruned: the guard refuses it
	apply(t, s, history(4, 1, 1), store.Duplicate) // kept: the ledger refuses it
	if after, _ := s.Get(ctx, 1); !after.SyncedAt.Equal(before.SyncedAt) {
		t.Fatal("a redelivered event rewrote history 1 after its ledger row was pruned")
	}
}

func TestJanitorConfigValidateNamesTheSetting(t *testing.T) {
	for want, cfg := range map[string]store.JanitorConfig{
		"ledger retention":        {Retention: -time.Hour},
		"ledger cleanup interval": {Interval: -time.Minute},
		"batch rows":              {BatchRows: -1},
	} {
		if _, err := store.NewJanitor(cfg, nil, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewJanitor(%+v) = %v, want an error naming %q", cfg, err, want)
		}
	}
}
