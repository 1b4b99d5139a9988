package apply

import (
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/contract"
)

// FuzzDecode feeds arbitrary bytes to the decoder: it must never panic,
// whatever it rejects must be permanent with a dead-letter class, and
// whatever it accepts must be a consistent row.
func FuzzDecode(f *testing.F) {
	payload, _ := json.Marshal(contract.History{HistoryID: 1, EmailStatus: contract.StatusSent, SentAt: 1714564800,
		SenderOfficeName: "O", DestinationCode: "D", SenderCustomerID: "C", SenderOfficeID: "O",
		Forms: []contract.Form{{FileName: "f", FilePath: "/f", Size: 1, InvoiceNumber: "I",
			IssueDate: 1714564800000, TotalAmount: "-0.1", SenderFormID: 1}}})
	env, _ := json.Marshal(contract.Envelope{EventID: "3f0e4a52-7c1e-4b0a-9d51-2a8f0c1e9b10",
		EventType: contract.EventTypeHistoryChanged, AggregateType: contract.AggregateTypeHistory,
		AggregateID: "1", Version: 1, OccurredAt: time.Unix(1714564800, 0), SchemaVersion: "1.0", Payload: payload})
	f.Add(env)
	f.Add([]byte(`{"schemaVersion":"1.9","payload":{}}`))
	f.Add([]byte(`null`))
	h, err := New(nil, Config{Location: time.FixedZone("X", -11*3600)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		row, err := h.decode(&kgo.Record{Value: b})
		if err != nil {
			if class := consume.ClassOf(err); class == "" || class == consume.ClassUnknown {
				t.Fatalf("rejection of %q is not permanent with a class: %v", b, err)
			}
			return
		}
		total, ok := new(big.Rat).SetString(row.TotalAmount)
		sum := new(big.Rat)
		for _, f := range row.Forms {
			a, ok := new(big.Rat).SetString(f.TotalAmount)
			if !ok {
				t.Fatalf("form amount %q is not a decimal", f.TotalAmount)
			}
			sum.Add(sum, a)
		}
		if !ok || total.Cmp(sum) != 0 || row.FormCount != len(row.Forms) || row.FormCount == 0 ||
			row.Deleted != (row.EmailStatus == contract.StatusError) || row.SourceVersion <= 0 {
			t.Fatalf("inconsistent row from %q: %+v", b, row)
		}
	})
}
