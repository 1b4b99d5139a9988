package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

func ledgerRows(t *testing.T, d *testsupport.Database) int {
	t.Helper()
	var n int
	if err := d.Pool.QueryRow(context.Background(), `SELECT count(*) FROM processed_event`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// One batch gives every change the outcome it would have had alone, in
// order: duplicates (even within the batch) and stale versions change
// nothing, a later version in the batch wins, a deletion is remembered.
// Applying the same batch again changes nothing at all.
func TestApplyBatchAppliesEachEventOnceInOrder(t *testing.T) {
	d := testsupport.MigratedDatabase(t, migrations.Receiver)
	s := store.New(d.Pool)
	ctx := context.Background()
	apply(t, s, history(3, 5, 1), store.Applied) // stored before the batch

	changes := []store.History{
		history(1, 1, 10), history(1, 2, 10, 11), // 1: v2 replaces v1 within the batch
		deleted(2, 1),                                                      // 2: deleted first seen…
		history(1, 1, 10),                                                  // …a redelivery inside the batch
		history(3, 4, 1), withEvent(history(3, 5, 2), 1), history(3, 6, 3), // 3: stale, stale, newer
		history(2, 2, 1), // 2: re-sent after the deletion
	}
	want := []store.Outcome{store.Applied, store.Applied, store.Deleted, store.Duplicate,
		store.Stale, store.Stale, store.Applied, store.Applied}
	got, err := s.ApplyBatch(ctx, changes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	assertStored(t, s, history(1, 2, 10, 11))
	assertStored(t, s, history(2, 2, 1))
	assertStored(t, s, history(3, 6, 3))
	if n := ledgerRows(t, d); n != 8 { // 7 distinct events in the batch + the one before
		t.Fatalf("ledger holds %d events, want 8", n)
	}

	before, _ := s.Get(ctx, 1)
	again, err := s.ApplyBatch(ctx, changes)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range again {
		if o != store.Duplicate {
			t.Fatalf("second delivery: change %d is %v, want duplicate", i, o)
		}
	}
	if after, _ := s.Get(ctx, 1); !after.SyncedAt.Equal(before.SyncedAt) {
		t.Fatalf("a duplicate rewrote history 1 (synced at %v, then %v)", before.SyncedAt, after.SyncedAt)
	}
}

// A value the contract accepts but PostgreSQL cannot store (a NUL character
// in a text) fails the batch with ErrRejected, and nothing of the batch is
// written; a cancelled context is no rejection.
func TestApplyBatchReportsRefusedDataAsRejected(t *testing.T) {
	d := testsupport.MigratedDatabase(t, migrations.Receiver)
	s := store.New(d.Pool)
	bad := history(2, 1, 1)
	bad.SenderOfficeName = "Office\x00"
	_, err := s.ApplyBatch(context.Background(), []store.History{history(1, 1, 1), bad})
	if !errors.Is(err, store.ErrRejected) {
		t.Fatalf("ApplyBatch = %v, want ErrRejected", err)
	}
	assertGone(t, s, 1)
	if n := ledgerRows(t, d); n != 0 {
		t.Fatalf("ledger holds %d events after a rolled-back batch", n)
	}
	// One form id twice in a history can never be written either.
	twice := history(3, 1, 7, 7)
	if _, err := s.ApplyBatch(context.Background(), []store.History{twice}); !errors.Is(err, store.ErrRejected) {
		t.Fatalf("ApplyBatch of a history with form 7 twice = %v, want ErrRejected", err)
	}
	assertGone(t, s, 3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.ApplyBatch(ctx, []store.History{history(1, 1, 1)}); err == nil || errors.Is(err, store.ErrRejected) {
		t.Fatalf("ApplyBatch with a cancelled context = %v, want a retryable error", err)
	}
	// The connections of the failed batches went back to the pool usable:
	// a good batch still applies.
	apply(t, s, history(1, 1, 1), store.Applied)
}
