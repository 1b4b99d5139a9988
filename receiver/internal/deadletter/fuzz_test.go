package deadletter

import (
	"testing"

	"github.com/invoicesync/invoicesync/pkg/dlq"
)

// Whatever bytes a dead-letter entry holds, showing it must not panic, and
// the value either decodes or says why not.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"eventId":"00000000-0000-4000-8000-000000000001","eventType":"invoice_history.changed",` +
		`"aggregateType":"invoice_history","aggregateId":"1","version":1,"occurredAt":"2026-03-01T10:00:00Z",` +
		`"schemaVersion":"1.0","payload":{"historyId":1}}`))
	f.Add([]byte("not json"))
	f.Add([]byte(`{"eventId":7}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		d := Decode(value)
		if (d.Envelope == nil) == (d.EnvelopeErr == nil) {
			t.Fatalf("Decode(%q) = %+v: want an envelope or an error", value, d)
		}
		if d.Envelope != nil && (d.History == nil) == (d.PayloadErr == nil) {
			t.Fatalf("Decode(%q) = %+v: want a payload or an error", value, d)
		}
		_ = eventID(dlq.Entry{Value: value})
	})
}
