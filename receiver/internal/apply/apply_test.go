package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/apply"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

func TestHandleBatchAppliesDeletesAndSkipsStaleAndDuplicates(t *testing.T) {
	s := store.New(testsupport.MigratedDatabase(t, migrations.Receiver).Pool)
	reg := prometheus.NewRegistry()
	h, err := apply.New(s, apply.Config{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	handle := func(msgs ...*kgo.Record) {
		t.Helper()
		if err := h.HandleBatch(ctx, msgs); err != nil {
			t.Fatalf("HandleBatch: %v", err)
		}
	}

	sent := event(t, payload(5, contract.StatusSent, "0.1", "0.2"), 1)
	handle(sent)
	got, err := s.Get(ctx, 5)
	if err != nil || got.TotalAmount != "0.3000" || got.SourceVersion != 1 || len(got.Forms) != 2 {
		t.Fatalf("after SENT v1: %+v, %v", got, err)
	}
	republished := event(t, payload(5, contract.StatusSent, "0.1", "0.2"), 1) // same version, new event id
	handle(event(t, payload(5, contract.StatusError, "0.1", "0.2"), 2), sent, republished)
	if _, err := s.Get(ctx, 5); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after ERROR v2 and replays of v1: Get = %v, want ErrNotFound", err)
	}
	if st := h.Stats(); st != (apply.Stats{Applied: 1, Deleted: 1, Stale: 1, Duplicate: 1}) {
		t.Fatalf("stats %+v, want 1 applied, 1 deleted, 1 stale (republished v1), 1 duplicate (redelivered v1)", st)
	}
	want := `
# HELP invoicesync_receiver_events_total Events handled, by outcome: applied, deleted (ERROR), stale (an older version), duplicate (seen before).
# TYPE invoicesync_receiver_events_total counter
invoicesync_receiver_events_total{outcome="applied"} 1
invoicesync_receiver_events_total{outcome="deleted"} 1
invoicesync_receiver_events_total{outcome="duplicate"} 1
invoicesync_receiver_events_total{outcome="stale"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "invoicesync_receiver_events_total"); err != nil {
		t.Error(err)
	}
	// One latency per change the store took: the applied v1 and the deleting v2.
	if got := latencyCount(t, reg); got != 2 {
		t.Errorf("end_to_end_latency_seconds count = %d, want 2 (applied + deleted)", got)
	}
}

// latencyCount is how many latencies the handler observed.
func latencyCount(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "invoicesync_receiver_end_to_end_latency_seconds" {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// Every event this build cannot apply fails permanently, names the problem,
// and carries the dead-letter class that says what kind of problem it is.
func TestHandleBatchClassifiesUnprocessableEvents(t *testing.T) {
	h := newHandler(t, nil) // never reaches the store
	valid := payload(5, contract.StatusSent, "1")
	withEnvelope := func(mutate func(*contract.Envelope)) *kgo.Record {
		body, _ := json.Marshal(valid)
		env := contract.Envelope{EventID: uuid(), EventType: contract.EventTypeHistoryChanged,
			AggregateType: contract.AggregateTypeHistory, AggregateID: "5", Version: 1,
			OccurredAt: time.Unix(sentAt, 0), Payload: body}
		mutate(&env)
		return envelopeMessage(t, env)
	}
	cases := map[string]struct {
		m           *kgo.Record
		class, want string
	}{
		"not JSON":           {&kgo.Record{Value: []byte("{oops")}, dlq.ClassDecode, "envelope is not valid JSON"},
		"tombstone":          {&kgo.Record{Key: []byte("5")}, dlq.ClassDecode, "envelope is not valid JSON"},
		"no event id":        {withEnvelope(func(e *contract.Envelope) { e.EventID = "" }), dlq.ClassSchema, "eventId: is required"},
		"other aggregate":    {withEnvelope(func(e *contract.Envelope) { e.AggregateType = "invoice" }), dlq.ClassSchema, `aggregateType: "invoice"`},
		"other event type":   {withEnvelope(func(e *contract.Envelope) { e.EventType = "x.created" }), dlq.ClassSchema, `eventType: "x.created"`},
		"schema major 2":     {withEnvelope(func(e *contract.Envelope) { e.SchemaVersion = "2.0" }), dlq.ClassUnsupported, "unsupported schema version"},
		"bad amount":         {event(t, payload(5, contract.StatusSent, "1", "0.00001"), 1), dlq.ClassSchema, "forms[1].totalAmount"},
		"unknown status":     {event(t, payload(5, "BOUNCED", "1"), 1), dlq.ClassSchema, "emailStatus"},
		"aggregate mismatch": {withEnvelope(func(e *contract.Envelope) { e.AggregateID = "6" }), dlq.ClassTransform, "aggregateId"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			good := event(t, payload(1, contract.StatusSent, "1"), 1)
			err := h.HandleBatch(context.Background(), []*kgo.Record{good, tc.m})
			if !errors.Is(err, apply.ErrUnprocessable) || !errors.Is(err, consume.ErrPermanent) {
				t.Fatalf("HandleBatch = %v, want ErrUnprocessable (permanent)", err)
			}
			if got := consume.ClassOf(err); got != tc.class {
				t.Errorf("class %q, want %q", got, tc.class)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("HandleBatch = %q, want it to name %q", err, tc.want)
			}
		})
	}
}

// A database refusal of the data is permanent (class constraint); a
// database that cannot be reached is not.
func TestHandleBatchClassifiesDatabaseErrors(t *testing.T) {
	d := testsupport.MigratedDatabase(t, migrations.Receiver)
	h := newHandler(t, store.New(d.Pool))
	// A value the contract accepts and this database refuses for good.
	if _, err := d.Pool.Exec(context.Background(), `ALTER TABLE received_invoice_history
	        ADD CONSTRAINT no_refused_office CHECK (sender_office_name <> 'Refused')`); err != nil {
		t.Fatal(err)
	}
	refused := payload(7, contract.StatusSent, "1")
	refused.SenderOfficeName = "Refused"
	err := h.HandleBatch(context.Background(), []*kgo.Record{event(t, refused, 1)})
	if got := consume.ClassOf(err); got != dlq.ClassConstraint || !strings.Contains(err.Error(), "23514") {
		t.Fatalf("HandleBatch(a refused value) = %v (class %q), want a permanent constraint error naming SQLSTATE 23514", err, got)
	}
	// NUL cannot be stored in a text column: the contract refuses it first,
	// naming the field.
	nul := payload(7, contract.StatusSent, "1")
	nul.SenderOfficeName = "Office\x00"
	err = h.HandleBatch(context.Background(), []*kgo.Record{event(t, nul, 1)})
	if got := consume.ClassOf(err); got != dlq.ClassSchema || !strings.Contains(err.Error(), "senderOfficeName: must not contain NUL") {
		t.Fatalf("HandleBatch(NUL in a text) = %v (class %q), want a schema error naming senderOfficeName", err, got)
	}

	d.Pool.Close()
	err = h.HandleBatch(context.Background(), []*kgo.Record{event(t, payload(8, contract.StatusSent, "1"), 1)})
	if err == nil || errors.Is(err, consume.ErrPermanent) {
		t.Fatalf("HandleBatch on a closed pool = %v, want a transient error", err)
	}
}
