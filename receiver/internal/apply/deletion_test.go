package apply_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

// A deletion needs only the history id and its version: an ERROR event
// whose other fields no longer pass validation (SCI's rows edited outside
// the API) still deletes the history, instead of being dead-lettered and
// leaving it visible. The same payload with another status still breaks
// the contract and is dead-lettered.
func TestInvalidErrorEventStillDeletes(t *testing.T) {
	s := store.New(testsupport.MigratedDatabase(t, migrations.Receiver).Pool)
	h := newHandler(t, s)
	ctx := context.Background()
	broken := map[string]func(*contract.History){
		"300-character file name": func(p *contract.History) { p.Forms[0].FileName = strings.Repeat("f", 300) },
		"zero forms":              func(p *contract.History) { p.Forms = nil },
		"date before 1990":        func(p *contract.History) { p.SentAt = 500000000 },
		"no sentAt":               func(p *contract.History) { p.SentAt = 0 },
	}
	id := int64(10)
	for name, breakIt := range broken {
		id++
		t.Run(name, func(t *testing.T) {
			if err := h.HandleBatch(ctx, []*kgo.Record{event(t, payload(id, contract.StatusSent, "1"), 1)}); err != nil {
				t.Fatal(err)
			}
			sent := payload(id, contract.StatusDelivered, "1")
			breakIt(&sent)
			err := h.HandleBatch(ctx, []*kgo.Record{event(t, sent, 2)})
			if !errors.Is(err, consume.ErrPermanent) || consume.ClassOf(err) != dlq.ClassSchema {
				t.Fatalf("invalid DELIVERED event: HandleBatch = %v, want a permanent schema failure (dead-lettered)", err)
			}
			deletion := payload(id, contract.StatusError, "1")
			breakIt(&deletion)
			if err := h.HandleBatch(ctx, []*kgo.Record{event(t, deletion, 3)}); err != nil {
				t.Fatalf("invalid ERROR event: HandleBatch = %v, want the history deleted", err)
			}
			if _, err := s.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("after the ERROR event: Get = %v, want ErrNotFound", err)
			}
		})
	}
	if st := h.Stats(); st.Deleted != int64(len(broken)) {
		t.Fatalf("stats %+v, want %d deleted", st, len(broken))
	}
}
