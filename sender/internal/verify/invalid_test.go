package verify

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
)

// A history whose rows at the sender were edited so that they cannot form
// a valid event differs from the receiver, and a repair would publish
// poison the receiver dead-letters, on every run, forever. Verify reports
// it as invalid, with the field at fault, and the repair leaves it alone.
func TestRepairDoesNotRepublishInvalidHistories(t *testing.T) {
	s := newScenario(t)
	ctx := context.Background()
	// Differing: the sender's file name grew past the limit after delivery.
	exec(t, s.p.sender, `UPDATE send_invoice_history_form SET file_name = repeat('日', 256) WHERE history_id = $1`, s.differing)
	// Missing: the receiver lost it, and the sender's forms were deleted.
	exec(t, s.p.receiver, "DELETE FROM received_invoice_history WHERE history_id = $1", s.missing)
	exec(t, s.p.sender, "DELETE FROM send_invoice_history_form WHERE history_id = $1", s.missing)
	for run := 1; run <= 2; run++ {
		rep, err := s.p.verifier(t, Config{Grace: 0, Repair: true}, nil).Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []InvalidHistory{
			{HistoryID: s.missing, Field: "forms", Problem: "at least one form is required"},
			{HistoryID: s.differing, Field: "forms[0].fileName", Problem: "longer than 255 characters"},
		}
		if !slices.Equal(rep.Invalid, want) || rep.Repaired != 0 || rep.Differences() != 2 {
			t.Fatalf("run %d: invalid %+v, repaired %d, differences %d; want %+v, nothing repaired, 2 differences",
				run, rep.Invalid, rep.Repaired, rep.Differences(), want)
		}
		var events int
		if err := s.p.sender.Pool.QueryRow(ctx, "SELECT count(*) FROM transaction_outbox").Scan(&events); err != nil || events != 0 {
			t.Fatalf("run %d: %d events enqueued (%v), want none", run, events, err)
		}
		var text bytes.Buffer
		if err := rep.WriteText(&text, 0); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text.String(), "invalid:") || !strings.Contains(text.String(), "forms[0].fileName: longer than 255 characters") {
			t.Fatalf("run %d: text report does not name the invalid histories and fields:\n%s", run, text.String())
		}
	}
}
