package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

// Pages walk a destination newest first, ties on sent_at broken by id,
// without repeats or gaps, and only that destination's histories.
func TestListByDestinationPagesByKey(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	sentAt := map[int64]time.Time{ // 3 and 4 share a second
		1: base, 2: base.Add(time.Minute), 3: base.Add(2 * time.Minute), 4: base.Add(2 * time.Minute), 5: base.Add(time.Hour),
	}
	for id, at := range sentAt {
		h := history(id, 1, 1)
		h.SentAt = at
		apply(t, s, h, store.Applied)
	}
	other := history(99, 1, 1)
	other.DestinationCode = "DEST-2"
	apply(t, s, other, store.Applied)

	var got []int64
	cursor, pages := "", 0
	for {
		p, err := s.ListByDestination(ctx, "DEST-1", 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, h := range p.Items {
			if len(h.Forms) != 0 || h.FormCount != 1 {
				t.Fatalf("list item %d: forms %d, form count %d; want summary only", h.HistoryID, len(h.Forms), h.FormCount)
			}
			got = append(got, h.HistoryID)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if want := []int64{5, 4, 3, 2, 1}; !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("paged ids %v in %d pages, want %v in 3", got, pages, want)
	}

	p, err := s.ListByDestination(ctx, "DEST-1", 5, "")
	if err != nil || len(p.Items) != 5 || p.NextCursor != "" {
		t.Fatalf("exact-size page: %d items, cursor %q, err %v; want 5 items and no cursor", len(p.Items), p.NextCursor, err)
	}
	p, err = s.ListByDestination(ctx, "NOBODY", 5, "")
	if err != nil || len(p.Items) != 0 || p.NextCursor != "" {
		t.Fatalf("unknown destination: %+v, %v", p, err)
	}
}

func TestListByDestinationRejectsForeignCursors(t *testing.T) {
	s := newStore(t)
	for _, c := range []string{"not base64!", "djI6MToy" /* v2:1:2 */, "djE6eDox" /* v1:x:1 */} {
		if _, err := s.ListByDestination(context.Background(), "DEST-1", 10, c); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: err = %v, want ErrBadCursor", c, err)
		}
	}
}
