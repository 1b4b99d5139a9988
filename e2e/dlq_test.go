package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// dlqEntry is one line of `receiver dlq list --json`.
type dlqEntry struct {
	ID      string `json:"id"`
	Class   string `json:"class"`
	Attempt int    `json:"attempt"`
	Key     string `json:"key"`
	Status  string `json:"status"`
}

func (s *stack) dlqList(t *testing.T) []dlqEntry {
	t.Helper()
	out := s.runToEnd(bins.receiver, "dlq", "list", "--all", "--json")
	var entries []dlqEntry
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"attempt"`) {
			continue // log lines and hints
		}
		var e dlqEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("dlq list --json line %q: %v", line, err)
		}
		entries = append(entries, e)
	}
	return entries
}

// An event the receiver's database refuses is dead-lettered (class
// constraint) without holding back the next one; once the cause is fixed, a
// replay from the terminal applies it exactly once (a second replay is
// deduplicated); an event replayed while still broken returns with attempt 2.
func TestDeadLetterFixAndReplay(t *testing.T) {
	s := newStack(t)
	s.startAll()
	ctx := context.Background()
	strict := func(on bool) {
		t.Helper()
		sql := "ALTER TABLE received_invoice_history DROP CONSTRAINT IF EXISTS too_strict"
		if on {
			sql = "ALTER TABLE received_invoice_history ADD CONSTRAINT too_strict CHECK (total_amount < 1000) NOT VALID"
		}
		if _, err := s.receiverDB.Pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	history := func(amount string) sentHistory {
		h := randomHistory(newRand(), testsupport.Name("CUST"), 1)
		h.Forms = h.Forms[:1]
		h.Forms[0].TotalAmount = json.Number(amount)
		return h
	}

	strict(true)
	bad, err := s.record(history("5000"))
	if err != nil {
		t.Fatal(err)
	}
	good, err := s.record(history("10"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the next event to be applied past the refused one", func() bool {
		return s.received(t, good) != nil
	})
	var entry dlqEntry
	eventually(t, 30*time.Second, "the refused event in the dead-letter topic", func() bool {
		for _, e := range s.dlqList(t) {
			if e.Key == itoa(bad) {
				entry = e
				return true
			}
		}
		return false
	})
	if entry.Class != "constraint" || entry.Attempt != 1 || s.received(t, bad) != nil {
		t.Fatalf("dead-letter entry = %+v (history applied: %v)", entry, s.received(t, bad) != nil)
	}

	strict(false) // the fix
	s.runToEnd(bins.receiver, "dlq", "replay", entry.ID)
	var got *receivedHistory
	eventually(t, 30*time.Second, "the replayed event to be applied", func() bool {
		got = s.received(t, bad)
		return got != nil
	})
	if got.SourceVersion != 1 || got.TotalAmount != "5000.0000" {
		t.Fatalf("replayed history = version %d total %s", got.SourceVersion, got.TotalAmount)
	}
	s.runToEnd(bins.receiver, "dlq", "replay", entry.ID, "--again")
	s.waitCaughtUp(t)
	var ledger int
	if err := s.receiverDB.Pool.QueryRow(ctx,
		"SELECT count(*) FROM processed_event WHERE aggregate_id = $1", itoa(bad)).Scan(&ledger); err != nil {
		t.Fatal(err)
	}
	if ledger != 1 {
		t.Fatalf("the event of history %d was applied %d times, want once", bad, ledger)
	}

	// Still broken when replayed: back in the dead-letter topic with attempt 2.
	strict(true)
	worse, err := s.record(history("7000"))
	if err != nil {
		t.Fatal(err)
	}
	var first dlqEntry
	eventually(t, 30*time.Second, "the second refused event", func() bool {
		for _, e := range s.dlqList(t) {
			if e.Key == itoa(worse) {
				first = e
				return true
			}
		}
		return false
	})
	s.runToEnd(bins.receiver, "dlq", "replay", first.ID)
	eventually(t, 30*time.Second, "the still-broken replay back with attempt 2", func() bool {
		for _, e := range s.dlqList(t) {
			if e.Key == itoa(worse) && e.Attempt == 2 {
				return true
			}
		}
		return false
	})
}
