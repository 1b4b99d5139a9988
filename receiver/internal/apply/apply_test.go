package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/apply"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

func TestHandleAppliesDeletesAndSkipsStale(t *testing.T) {
	s := store.New(testsupport.MigratedDatabase(t, migrations.Receiver).Pool)
	h := apply.New(s, nil)
	ctx := context.Background()
	handle := func(m kafka.Message) {
		t.Helper()
		if err := h.Handle(ctx, m); err != nil {
			t.Fatalf("Handle: %v", err)
		}
	}

	sent := event(t, payload(5, contract.StatusSent, "0.1", "0.2"), 1)
	handle(sent)
	got, err := s.Get(ctx, 5)
	if err != nil || got.TotalAmount != "0.3000" || got.SourceVersion != 1 || len(got.Forms) != 2 {
		t.Fatalf("after SENT v1: %+v, %v", got, err)
	}
	handle(event(t, payload(5, contract.StatusError, "0.1", "0.2"), 2))
	handle(sent) // replay: stale, no error
	if _, err := s.Get(ctx, 5); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after ERROR v2 and a replay of v1: Get = %v, want ErrNotFound", err)
	}
}

func TestHandleRejectsUnprocessableEventsNamingTheProblem(t *testing.T) {
	h := apply.New(nil, nil) // never reaches the store
	valid := payload(5, contract.StatusSent, "1")
	withEnvelope := func(mutate func(*contract.Envelope)) kafka.Message {
		body, _ := json.Marshal(valid)
		env := contract.Envelope{EventID: uuid(), EventType: contract.EventTypeHistoryChanged,
			AggregateType: contract.AggregateTypeHistory, AggregateID: "5", Version: 1,
			OccurredAt: time.Unix(sentAt, 0), Payload: body}
		mutate(&env)
		return envelopeMessage(t, env)
	}
	badAmount := payload(5, contract.StatusSent, "1", "0.00001") // 5 decimals
	badStatus := payload(5, "BOUNCED", "1")
	cases := map[string]struct {
		m    kafka.Message
		want string
	}{
		"not JSON":           {kafka.Message{Value: []byte("{oops")}, "envelope is not valid JSON"},
		"tombstone":          {kafka.Message{Key: []byte("5")}, "envelope is not valid JSON"},
		"other aggregate":    {withEnvelope(func(e *contract.Envelope) { e.AggregateType = "invoice" }), `aggregateType: "invoice"`},
		"other event type":   {withEnvelope(func(e *contract.Envelope) { e.EventType = "x.created" }), `eventType: "x.created"`},
		"schema major 2":     {withEnvelope(func(e *contract.Envelope) { e.SchemaVersion = "2.0" }), "unsupported schema version"},
		"aggregate mismatch": {withEnvelope(func(e *contract.Envelope) { e.AggregateID = "6" }), "aggregateId"},
		"bad amount":         {event(t, badAmount, 1), "forms[1].totalAmount"},
		"unknown status":     {event(t, badStatus, 1), "emailStatus"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := h.Handle(context.Background(), tc.m)
			if !errors.Is(err, apply.ErrUnprocessable) || !errors.Is(err, consume.ErrPermanent) {
				t.Fatalf("Handle = %v, want ErrUnprocessable (permanent)", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Handle = %q, want it to name %q", err, tc.want)
			}
		})
	}
}
