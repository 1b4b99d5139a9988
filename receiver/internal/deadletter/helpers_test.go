package deadletter

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// t0 is when the first test entry failed.
var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// fixture is a broker with an original topic and its dead-letter topic (two
// partitions each), a migrated receiver database, and the queue on them.
type fixture struct {
	k         *testsupport.Kafka
	orig, dlq string
	q         *Queue
	marks     *PostgresMarks
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	d := testsupport.MigratedDatabase(t, migrations.Receiver)
	k := testsupport.NewKafka(t)
	f := &fixture{k: k, orig: k.Topic(t, "orig", 2), dlq: k.Topic(t, "orig-dlq", 2), marks: NewPostgresMarks(d.Pool)}
	pub, err := NewKafkaPublisher(k.Conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	q, err := New(f.dlq, NewKafkaSource(k.Conn, f.dlq), pub, f.marks)
	if err != nil {
		t.Fatal(err)
	}
	f.q = q
	return f
}

// dead describes one dead-letter entry to produce.
type dead struct {
	partition int // in the dead-letter topic
	key       string
	class     string
	reason    string
	failedAt  time.Time
	attempt   int    // 1 when 0
	value     string // a valid history event when ""
}

// testEventID is the event id of the n-th test event.
func testEventID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// produce writes the entries to the dead-letter topic, in order, each to its
// partition, built with dlq.Build as the consumer builds them. The n-th
// entry (from 1) carries event n.
func (f *fixture) produce(t *testing.T, entries ...dead) {
	t.Helper()
	msgs := make([]*kgo.Record, 0, len(entries))
	for i, d := range entries {
		orig := f.event(t, i+1, d)
		m := dlq.Build(orig, dlq.Failure{Class: d.class, Reason: d.reason, Group: "g", At: d.failedAt})
		m.Partition = int32(d.partition) //nolint:gosec // test partitions
		msgs = append(msgs, m)
	}
	f.write(t, f.dlq, msgs...)
}

// event is the original message of entry n as the relay published it; an
// attempt above 1 is carried as a replay header, as a replayed event is.
func (f *fixture) event(t *testing.T, n int, d dead) *kgo.Record {
	t.Helper()
	value := []byte(d.value)
	if d.value == "" {
		id, _ := strconv.ParseInt(d.key, 10, 64)
		payload, err := json.Marshal(contract.History{HistoryID: id, EmailStatus: contract.StatusSent,
			SentAt: t0.Unix(), SenderOfficeName: "Office", DestinationCode: "D", SenderCustomerID: "C",
			SenderOfficeID: "O", Forms: []contract.Form{{FileName: "a.pdf", FilePath: "/a.pdf", Size: 1,
				InvoiceNumber: "INV-1", IssueDate: t0.UnixMilli(), TotalAmount: "10.05", SenderFormID: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		env := contract.Envelope{EventID: testEventID(n), EventType: contract.EventTypeHistoryChanged,
			AggregateType: contract.AggregateTypeHistory, AggregateID: d.key, Version: 1, OccurredAt: t0, Payload: payload}
		if value, err = env.Marshal(); err != nil {
			t.Fatal(err)
		}
	}
	hs := []kgo.RecordHeader{{Key: contract.HeaderEventID, Value: []byte(testEventID(n))},
		{Key: contract.HeaderAggregateID, Value: []byte(d.key)}}
	if d.attempt > 1 {
		hs = append(hs, kgo.RecordHeader{Key: dlq.HeaderReplayAttempt, Value: []byte(strconv.Itoa(d.attempt - 1))})
	}
	return &kgo.Record{Topic: f.orig, Partition: 1, Offset: int64(100 + n), Key: []byte(d.key), Value: value, Headers: hs}
}

// write produces msgs to topic, each to the partition it names.
func (f *fixture) write(t *testing.T, topic string, msgs ...*kgo.Record) {
	t.Helper()
	f.k.ProduceToPartitions(t, topic, msgs...)
}

// standard are four entries over both partitions, then a message that is
// not a dead-letter entry (1:2):
//
//	0:0 key 1 schema     t0     attempt 1
//	0:1 key 2 decode     t0+1h  attempt 1 (value is not JSON)
//	1:0 key 1 constraint t0+2h  attempt 2
//	1:1 key 3 schema     t0+3h  attempt 5
func (f *fixture) standard(t *testing.T) {
	t.Helper()
	f.produce(t,
		dead{partition: 0, key: "1", class: dlq.ClassSchema, reason: "forms[0].fileName: is required", failedAt: t0},
		dead{partition: 0, key: "2", class: dlq.ClassDecode, reason: "envelope is not valid JSON",
			failedAt: t0.Add(time.Hour), value: "not json"},
		dead{partition: 1, key: "1", class: dlq.ClassConstraint, reason: "duplicate key value",
			failedAt: t0.Add(2 * time.Hour), attempt: 2},
		dead{partition: 1, key: "3", class: dlq.ClassSchema, reason: "version: must be positive",
			failedAt: t0.Add(3 * time.Hour), attempt: 5},
	)
	f.write(t, f.dlq, &kgo.Record{Partition: 1, Key: []byte("x"), Value: []byte("stray")})
}

func ids(items []Item) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// countingLimiter lets every entry go and counts the waits.
type countingLimiter struct{ waits int }

func (l *countingLimiter) Wait(ctx context.Context) error { l.waits++; return ctx.Err() }
