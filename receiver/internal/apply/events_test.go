package apply_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/contract"
)

// sentAt is the sentAt of every test history, in Unix seconds.
const sentAt = 1714564800

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// payload is version-independent history content with one form per amount.
func payload(id int64, status string, amounts ...string) contract.History {
	h := contract.History{HistoryID: id, EmailStatus: status, SentAt: sentAt, SenderOfficeName: "Office",
		DestinationCode: "DEST", SenderCustomerID: "C", SenderOfficeID: "O"}
	for i, a := range amounts {
		h.Forms = append(h.Forms, contract.Form{FileName: fmt.Sprintf("f%d.pdf", i), FilePath: "/f.pdf", Size: 10,
			InvoiceNumber: fmt.Sprintf("INV-%d", i), IssueDate: sentAt * 1000, TotalAmount: json.Number(a),
			SenderFormID: int64(i + 1)})
	}
	return h
}

// event wraps h as version v in an envelope and a Kafka message keyed and
// headed like the relay's.
func event(t *testing.T, h contract.History, v int64) *kgo.Record {
	t.Helper()
	body, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	env := contract.Envelope{EventID: uuid(), EventType: contract.EventTypeHistoryChanged,
		AggregateType: contract.AggregateTypeHistory, AggregateID: contract.AggregateID(h.HistoryID),
		Version: v, OccurredAt: time.Unix(sentAt+v, 0), Payload: body}
	return envelopeMessage(t, env)
}

func envelopeMessage(t *testing.T, env contract.Envelope) *kgo.Record {
	t.Helper()
	if env.SchemaVersion == "" {
		env.SchemaVersion = contract.SchemaVersion
	}
	value, err := json.Marshal(env) // not env.Marshal: tests send invalid envelopes too
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Key: []byte(env.AggregateID), Value: value, Headers: []kgo.RecordHeader{
		{Key: contract.HeaderEventID, Value: []byte(env.EventID)},
		{Key: contract.HeaderEventType, Value: []byte(env.EventType)},
		{Key: contract.HeaderAggregateType, Value: []byte(env.AggregateType)},
		{Key: contract.HeaderAggregateID, Value: []byte(env.AggregateID)},
		{Key: contract.HeaderVersion, Value: []byte(strconv.FormatInt(env.Version, 10))},
		{Key: contract.HeaderSchemaVersion, Value: []byte(env.SchemaVersion)},
	}}
}
