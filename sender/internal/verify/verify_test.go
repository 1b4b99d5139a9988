package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

func TestCompare(t *testing.T) {
	h := func(pairs ...any) []rowHash {
		var out []rowHash
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, rowHash{int64(pairs[i].(int)), pairs[i+1].(string)})
		}
		return out
	}
	tests := []struct {
		name                      string
		sender, receiver          []rowHash
		missing, extra, differing []int64
	}{
		{"both empty", nil, nil, nil, nil, nil},
		{"equal", h(1, "a", 2, "b"), h(1, "a", 2, "b"), nil, nil, nil},
		{"receiver empty", h(1, "a", 2, "b"), nil, []int64{1, 2}, nil, nil},
		{"sender empty", nil, h(3, "c"), nil, []int64{3}, nil},
		{"one of each", h(1, "a", 2, "b", 4, "d"), h(2, "x", 3, "c", 4, "d"), []int64{1}, []int64{3}, []int64{2}},
		{"extras past the end", h(1, "a"), h(1, "a", 7, "g", 9, "i"), nil, []int64{7, 9}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := compare(tt.sender, tt.receiver)
			if !slices.Equal(d.missing, tt.missing) || !slices.Equal(d.extra, tt.extra) || !slices.Equal(d.differing, tt.differing) {
				t.Fatalf("compare = %+v, want missing %v extra %v differing %v", d, tt.missing, tt.extra, tt.differing)
			}
		})
	}
}

func TestReportLimitsListsButNotCounts(t *testing.T) {
	r := &Report{Missing: []int64{1, 2, 3, 4}, Extra: []int64{9}, Differing: []int64{}}
	var js bytes.Buffer
	if err := r.WriteJSON(&js, 2); err != nil {
		t.Fatal(err)
	}
	var got struct {
		OK          bool
		Differences int
		Missing     idList
		Differing   idList
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.OK || got.Differences != 5 || got.Missing.Count != 4 || !got.Missing.Truncated ||
		!slices.Equal(got.Missing.IDs, []int64{1, 2}) || got.Differing.IDs == nil {
		t.Fatalf("JSON report %s", js.String())
	}
	var text bytes.Buffer
	if err := r.WriteText(&text, 2); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"missing:      4  1 2 … (2 more)", "extra:        1  9", "DIFFERENT: 5 histories"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

// scenario is a sender with histories in sync at the receiver, then edited
// by hand at the receiver in every way verify tells apart.
type scenario struct {
	p                                                 *pair
	missing, differing, extraError, unknown, inFlight int64
	fixedDuringGrace                                  int64
}

func newScenario(t *testing.T) *scenario {
	t.Helper()
	p := newPair(t)
	var ids []int64
	for i := range 120 {
		ids = append(ids, record(t, p.sender, fmt.Sprintf(`{"sentAt": %d, "senderOfficeName": "MFV-HN",
		  "destinationCode": "CUST-%d", "senderCustomerId": "001", "senderOfficeId": "MFV-HN-01",
		  "forms": [{"fileName": "a.pdf", "size": 1, "invoiceNumber": "INV-%d", "issueDate": 1686083400250,
		             "totalAmount": %d.25}]}`, 1686111418+i, i, i, i)))
	}
	s := &scenario{p: p, missing: ids[3], differing: ids[50], extraError: ids[77], inFlight: ids[90],
		fixedDuringGrace: ids[100], unknown: ids[len(ids)-1] + 1000}
	exec(t, p.sender, "SELECT set_send_invoice_history_status($1, 'ERROR')", s.extraError)
	mirror(t, p, time.UTC)
	exec(t, p.sender, "DELETE FROM transaction_outbox") // the relay published everything
	return s
}

// edit makes the receiver differ: a row deleted, one altered, one added for
// a history whose status is ERROR, one added that the sender does not
// know, and two changes whose events are still on their way.
func (s *scenario) edit(t *testing.T) {
	t.Helper()
	r := s.p.receiver
	exec(t, r, "DELETE FROM received_invoice_history WHERE history_id = $1", s.missing)
	exec(t, r, "UPDATE received_invoice_history SET destination_code = 'CUST-HACKED' WHERE history_id = $1", s.differing)
	for _, id := range []int64{s.extraError, s.unknown} {
		exec(t, r, `INSERT INTO received_invoice_history (history_id, destination_code, sender_customer_id,
		        sender_office_id, sender_office_name, email_status, sent_at, form_count, total_amount,
		        source_version, source_event_id, source_occurred_at)
		        VALUES ($1, 'CUST-X', '001', 'MFV-HN-01', 'MFV-HN', 'SENT', now(), 0, 0, 1, gen_random_uuid(), now())`, id)
	}
	// A status change the relay has not published yet.
	exec(t, s.p.sender, "SELECT set_send_invoice_history_status($1, 'DELIVERED')", s.inFlight)
	// A change published and applied while verify waits out the grace period.
	exec(t, s.p.sender, "SELECT set_send_invoice_history_status($1, 'DELIVERED')", s.fixedDuringGrace)
	exec(t, s.p.sender, "DELETE FROM transaction_outbox WHERE aggregate_id = ($1::bigint)::text", s.fixedDuringGrace)
}

// deliverDuringGrace applies the fixedDuringGrace change at the receiver
// once the first pass is over, as a consumer catching up would.
func (s *scenario) deliverDuringGrace(t *testing.T) Progress {
	return nopProgress{onFinish: func() {
		exec(t, s.p.receiver, "DELETE FROM received_invoice_history WHERE history_id = $1", s.fixedDuringGrace)
		mirror(t, s.p, time.UTC, s.fixedDuringGrace)
	}}
}

// Verify files each difference under its category with its id, across
// several chunks and past the sender's last id; events still in the outbox
// are in flight, and a difference gone by the recheck is not reported.
func TestVerifyReportsEachDifference(t *testing.T) {
	s := newScenario(t)
	ctx := context.Background()
	clean, err := s.p.verifier(t, Config{ChunkSize: 37, Grace: 0}, nil).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if clean.Differences() != 0 || clean.Chunks != 5 || clean.ShouldBeAtReceiver != 119 || clean.AtReceiver != 119 {
		t.Fatalf("in-sync databases: %+v, want no difference over 5 chunks of 119 histories", clean)
	}

	s.edit(t)
	rep, err := s.p.verifier(t, Config{ChunkSize: 37, Grace: 0}, s.deliverDuringGrace(t)).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want []int64
	}{
		{"missing", rep.Missing, []int64{s.missing}},
		{"extra", rep.Extra, []int64{s.extraError, s.unknown}},
		{"differing", rep.Differing, []int64{s.differing}},
		{"unrepairable", rep.Unrepairable, []int64{s.unknown}},
		{"in flight", rep.InFlight, []int64{s.inFlight}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if rep.FirstPass != 6 || rep.Differences() != 4 {
		t.Errorf("first pass %d, differences %d; want 6 (with the two that resolve) and 4", rep.FirstPass, rep.Differences())
	}
}

// Repair re-enqueues, through the live lane, a newer version of every
// history found different that the sender knows, and leaves the rest alone.
func TestRepairReenqueuesTheDifferences(t *testing.T) {
	s := newScenario(t)
	s.edit(t)
	ctx := context.Background()
	rep, err := s.p.verifier(t, Config{Grace: 0, Repair: true}, s.deliverDuringGrace(t)).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repaired != 3 {
		t.Fatalf("repaired %d, want 3 (missing, differing, extra ERROR): %+v", rep.Repaired, rep)
	}
	rows, err := s.p.sender.Pool.Query(ctx, `SELECT aggregate_id::bigint, version, lane, payload->>'emailStatus'
	        FROM transaction_outbox WHERE aggregate_id <> ($1::bigint)::text ORDER BY 1`, s.inFlight)
	if err != nil {
		t.Fatal(err)
	}
	type event struct {
		id, version int64
		lane        int16
		status      string
	}
	var got []event
	for rows.Next() {
		var e event
		if err := rows.Scan(&e.id, &e.version, &e.lane, &e.status); err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	want := []event{{s.missing, 2, 0, "SENT"}, {s.differing, 2, 0, "SENT"}, {s.extraError, 3, 0, "ERROR"}}
	if !slices.Equal(got, want) {
		t.Fatalf("events enqueued by the repair = %+v, want %+v", got, want)
	}
}

// When the receiver has applied newer versions than the sender's (the
// sender database was restored from a backup), the repair's events carry a
// version above the receiver's, or its version guard would skip them.
func TestRepairOvertakesAReceiverThatIsAhead(t *testing.T) {
	s := newScenario(t)
	s.edit(t)
	ctx := context.Background()
	// The receiver deleted s.missing at version 7 and applied version 40 of
	// s.differing; the sender's versions are 1 and 1.
	for id, v := range map[int64]struct {
		version int64
		deleted bool
	}{s.missing: {7, true}, s.differing: {40, false}} {
		exec(t, s.p.receiver, `INSERT INTO aggregate_version (aggregate_type, aggregate_id, version, deleted)
		        VALUES ('invoice_history', $1::bigint::text, $2, $3)`, id, v.version, v.deleted)
	}
	rep, err := s.p.verifier(t, Config{Grace: 0, Repair: true}, s.deliverDuringGrace(t)).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repaired != 3 {
		t.Fatalf("repaired %d, want 3: %+v", rep.Repaired, rep)
	}
	versions := map[int64]int64{}
	rows, err := s.p.sender.Pool.Query(ctx, `SELECT aggregate_id::bigint, version FROM transaction_outbox
	        WHERE aggregate_id <> ($1::bigint)::text`, s.inFlight)
	if err != nil {
		t.Fatal(err)
	}
	var id, version int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &version}, func() error { versions[id] = version; return nil }); err != nil {
		t.Fatal(err)
	}
	want := map[int64]int64{s.missing: 8, s.differing: 41, s.extraError: 3}
	if !maps.Equal(versions, want) {
		t.Fatalf("event versions by history = %v, want %v (above the receiver's)", versions, want)
	}
	// The sender's aggregate carries the new version, so later live changes
	// stay ahead of the receiver too.
	var v int64
	if err := s.p.sender.Pool.QueryRow(ctx, `SELECT version FROM aggregate_history_form WHERE history_id = $1`, s.differing).Scan(&v); err != nil || v != 41 {
		t.Fatalf("sender aggregate version %d (%v), want 41", v, err)
	}
	// A plain update still adds one; a version set lower is ignored.
	exec(t, s.p.sender, `UPDATE aggregate_history_form SET version = 3 WHERE history_id = $1`, s.differing)
	if err := s.p.sender.Pool.QueryRow(ctx, `SELECT version FROM aggregate_history_form WHERE history_id = $1`, s.differing).Scan(&v); err != nil || v != 42 {
		t.Fatalf("after an update setting version 3: version %d (%v), want 42", v, err)
	}
}

// Verify reads the receiver in read-only transactions and names the
// command that migrates a database that lacks its tables.
func TestReceiverChecks(t *testing.T) {
	empty := testsupport.NewDatabase(t)
	err := CheckReceiver(context.Background(), empty.Pool)
	if !errors.Is(err, ErrNotMigrated) || !strings.Contains(err.Error(), `"receiver migrate"`) {
		t.Fatalf("CheckReceiver on an empty database = %v, want ErrNotMigrated naming receiver migrate", err)
	}
	p := newPair(t)
	if err := CheckReceiver(context.Background(), p.receiver.Pool); err != nil {
		t.Fatalf("CheckReceiver on a migrated database = %v", err)
	}
	v := p.verifier(t, Config{}, nil)
	err = v.readReceiver(context.Background(), func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), "DELETE FROM received_invoice_history")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("a write in verify's receiver transaction = %v, want it refused as read-only", err)
	}
}
