package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	return store.New(testsupport.MigratedDatabase(t, migrations.Receiver).Pool)
}

// eventID is the id of the k-th event carrying version v of history id
// (k > 0: a re-publication of the same version under a new id).
func eventID(id, v int64, k int) string {
	return fmt.Sprintf("%08d-%04d-4000-8000-%012d", k, id, v)
}

// withEvent returns h as carried by its k-th event.
func withEvent(h store.History, k int) store.History {
	h.SourceEventID = eventID(h.HistoryID, h.SourceVersion, k)
	return h
}

var base = time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC)

// history is version v of history id with one form per formID; amounts and
// names vary with the version so replacements are visible.
func history(id, v int64, formIDs ...int64) store.History {
	h := store.History{
		HistoryID: id, DestinationCode: "DEST-1", SenderCustomerID: "C-1", SenderOfficeID: "O-1",
		SenderOfficeName: fmt.Sprintf("Office v%d", v), EmailStatus: contract.StatusSent,
		SentAt: base, FormCount: len(formIDs), TotalAmount: fmt.Sprintf("%d.1000", v*int64(len(formIDs))),
		SourceVersion: v, SourceEventID: eventID(id, v, 0),
		SourceOccurredAt: base.Add(time.Duration(v) * time.Second),
	}
	for _, f := range formIDs {
		h.Forms = append(h.Forms, store.Form{
			SenderFormID: f, FileName: fmt.Sprintf("f%d-v%d.pdf", f, v), FilePath: "/docs/f.pdf",
			SizeBytes: 1000 + f, InvoiceNumber: fmt.Sprintf("INV-%d", f),
			IssuedAt: base.Add(-time.Hour), IssueDate: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
			TotalAmount: fmt.Sprintf("%d.%04d", v, 1000/max(len(formIDs), 1)),
		})
	}
	return h
}

func deleted(id, v int64) store.History {
	h := history(id, v, 1)
	h.EmailStatus, h.Deleted = contract.StatusError, true
	return h
}

func apply(t *testing.T, s *store.Store, h store.History, want store.Outcome) {
	t.Helper()
	got, err := s.Apply(context.Background(), h)
	if err != nil {
		t.Fatalf("Apply(id %d v%d): %v", h.HistoryID, h.SourceVersion, err)
	}
	if got != want {
		t.Fatalf("Apply(id %d v%d) = %v, want %v", h.HistoryID, h.SourceVersion, got, want)
	}
}

// assertStored checks that Get returns exactly want (SyncedAt aside).
func assertStored(t *testing.T, s *store.Store, want store.History) {
	t.Helper()
	got, err := s.Get(context.Background(), want.HistoryID)
	if err != nil {
		t.Fatalf("Get(%d): %v", want.HistoryID, err)
	}
	if got.SyncedAt.IsZero() {
		t.Errorf("SyncedAt not set")
	}
	got.SyncedAt = time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Get(%d) =\n%+v\nwant\n%+v", want.HistoryID, got, want)
	}
}

func assertGone(t *testing.T, s *store.Store, id int64) {
	t.Helper()
	if _, err := s.Get(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%d) = %v, want ErrNotFound", id, err)
	}
}

func TestApplyStoresTheHistoryAndItsForms(t *testing.T) {
	s := newStore(t)
	h := history(1, 1, 10, 11)
	// Exact at the limits of NUMERIC(20,4) per form, with a credit note.
	h.TotalAmount, h.Forms[0].TotalAmount, h.Forms[1].TotalAmount = "9999999999999999.9998", "9999999999999999.9999", "-0.0001"
	apply(t, s, h, store.Applied)
	assertStored(t, s, h)
}

func TestNewerVersionReplacesOlderOrEqualIsStale(t *testing.T) {
	s := newStore(t)
	apply(t, s, history(1, 1, 10, 11), store.Applied)
	v3 := history(1, 3, 11, 12)
	apply(t, s, v3, store.Applied)
	assertStored(t, s, v3) // form 10 gone, 11 replaced, 12 added

	apply(t, s, history(1, 2, 10), store.Stale)
	apply(t, s, withEvent(history(1, 3, 99), 1), store.Stale) // same version, other event: never overwrites
	apply(t, s, history(1, 3, 99), store.Duplicate)           // the same event again
	assertStored(t, s, v3)
}

func TestErrorDeletesAndOnlyANewerVersionRecreates(t *testing.T) {
	s := newStore(t)
	apply(t, s, history(1, 1, 10), store.Applied)
	apply(t, s, deleted(1, 2), store.Deleted)
	assertGone(t, s, 1)

	apply(t, s, history(1, 1, 10), store.Duplicate)           // redelivery of the older SENT event
	apply(t, s, withEvent(history(1, 1, 10), 1), store.Stale) // its re-publication under a new id
	apply(t, s, withEvent(history(1, 2, 10), 1), store.Stale)
	assertGone(t, s, 1)

	resend := history(1, 3, 10)
	apply(t, s, resend, store.Applied)
	assertStored(t, s, resend)
}

func TestErrorSeenFirstIsRemembered(t *testing.T) {
	s := newStore(t)
	apply(t, s, deleted(7, 5), store.Deleted)
	apply(t, s, history(7, 4, 1), store.Stale)
	assertGone(t, s, 7)
}

// Concurrent appliers of shuffled versions of the same aggregates end at the
// state of the highest version, whatever the interleaving.
func TestConcurrentApplyEndsAtTheHighestVersion(t *testing.T) {
	s := newStore(t)
	const versions, workers = 24, 6
	type job struct{ h store.History }
	var jobs []job
	for v := int64(1); v <= versions; v++ {
		jobs = append(jobs, job{history(1, v, v, v+1)}) // id 1: highest version is SENT
		if v == versions {
			jobs = append(jobs, job{deleted(2, v)}) // id 2: highest version is ERROR
		} else {
			jobs = append(jobs, job{history(2, v, 1)})
		}
	}
	rand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	ch := make(chan job)
	var wg sync.WaitGroup
	errs := make(chan error, len(jobs))
	for range workers {
		wg.Go(func() {
			for j := range ch {
				if _, err := s.Apply(context.Background(), j.h); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	assertStored(t, s, history(1, versions, versions, versions+1))
	assertGone(t, s, 2)
}
