package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/receiver/internal/deadletter"
)

// Wrong use fails before anything is opened, naming what is wrong.
func TestDlqUsageErrors(t *testing.T) {
	env := map[string]string{"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
	for args, want := range map[string]string{
		"dlq":                            "no dlq subcommand",
		"dlq bogus":                      `unknown dlq subcommand "bogus"`,
		"dlq list --bogus":               "flag provided but not defined: -bogus",
		"dlq list 0:1":                   `unexpected argument "0:1"`,
		"dlq list --since yesterday":     `--since: "yesterday" is not an RFC 3339 time`,
		"dlq show":                       "no entry id given",
		"dlq show 0:1 0:2":               "one entry id at a time",
		"dlq show 1-2":                   `dead-letter id "1-2": want partition:offset`,
		"dlq replay":                     "say which entries to replay",
		"dlq replay 0:1 --all":           "not several of them",
		"dlq replay 0:x":                 `dead-letter id "0:x"`,
		"dlq replay --all --rate -1":     "--rate",
		"dlq mark-handled --note x":      "no entry id given",
		"dlq unmark 3":                   `dead-letter id "3"`,
		"dlq replay --all --max-tries 3": "flag provided but not defined: -max-tries",
	} {
		_, _, err := invoke(context.Background(), env, strings.Fields(args)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("receiver %s = %v, want an error containing %q", args, err, want)
		}
	}
}

func TestDlqHelp(t *testing.T) {
	for args, want := range map[string][]string{
		"help":                    {"dlq"},
		"dlq --help":              {"list", "show", "replay", "mark-handled", "unmark", "RECEIVER_DLQ_TOPIC", "RECEIVER_DATABASE_URL", "KAFKA_SASL_USERNAME", "KAFKA_TOPIC"},
		"dlq list -h":             {"-reason", "-class", "-key", "-since", "-until", "-all", "-json", "-limit", "RECEIVER_DLQ_TOPIC", "LOG_LEVEL"},
		"dlq show --help":         {"partition:offset", "-json", "KAFKA_BROKERS"},
		"dlq replay --help":       {"-dry-run", "-rate", "-max-attempts", "-force", "-again", "-yes", "-all", "-reason", "RECEIVER_DLQ_TOPIC"},
		"dlq mark-handled --help": {"-note", "-unmark", "RECEIVER_DATABASE_URL"},
	} {
		out, _, err := invoke(context.Background(), nil, strings.Fields(args)...)
		if err != nil {
			t.Errorf("receiver %s = %v, want success", args, err)
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("receiver %s does not mention %s:\n%s", args, w, out)
			}
		}
	}
}

func TestWriteTable(t *testing.T) {
	long := strings.Repeat("x", 100)
	items := []deadletter.Item{
		{Entry: dlq.Entry{ID: "0:7", Class: dlq.ClassSchema, Attempt: 2, Key: []byte("42"),
			Reason: "forms[0].fileName:\n is required", FailedAt: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)},
			EventID: "0b6c3c5e-4d8a-4f0e-9d3a-1c2b3a4d5e6f", Mark: deadletter.Mark{State: deadletter.StateHandled}},
		{Entry: dlq.Entry{ID: "1:12", Class: dlq.ClassDecode, Attempt: 1, Reason: long}},
	}
	var b bytes.Buffer
	if err := writeTable(&b, items); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID FAILED AT CLASS ATTEMPT KEY EVENT ID STATUS REASON" {
		t.Fatalf("table:\n%s", b.String())
	}
	if got := strings.Fields(lines[1]); strings.Join(got, " ") !=
		"0:7 2026-03-01T10:00:00Z schema 2 42 0b6c3c5e-4d8a-4f0e-9d3a-1c2b3a4d5e6f handled forms[0].fileName: is required" {
		t.Errorf("row 1 = %q", lines[1])
	}
	if got := strings.Fields(lines[2]); len(got) != 8 || got[1] != "-" || got[4] != "-" || got[6] != "new" ||
		got[7] != strings.Repeat("x", 59)+"…" {
		t.Errorf("row 2 = %q, want blanks as - and the reason cut to 60 characters", lines[2])
	}
	if strings.Index(lines[0], "REASON") != strings.Index(lines[1], "forms") {
		t.Errorf("columns are not aligned:\n%s", b.String())
	}
}

// dlqEnv is a migrated receiver database, an events topic and its
// dead-letter topic holding three entries, and the environment reaching them:
//
//	0:0 key 1 schema  attempt 1, a valid event
//	0:1 key 2 decode  attempt 1, value "not json"
//	0:2 key 3 schema  attempt 5
type dlqEnv struct {
	k    *testsupport.Kafka
	orig string
	env  map[string]string
}

func newDlqEnv(t *testing.T) *dlqEnv {
	t.Helper()
	d := testsupport.MigratedDatabase(t, migrations.Receiver)
	k := testsupport.NewKafka(t)
	e := &dlqEnv{k: k, orig: k.Topic(t, "events", 1)}
	dlqTopic := dlq.Topic(e.orig) // the default RECEIVER_DLQ_TOPIC
	k.CreateTopic(t, dlqTopic, 1)
	e.env = map[string]string{
		"RECEIVER_DATABASE_URL": d.URL, "LOG_FORMAT": "json", "KAFKA_TOPIC": e.orig,
		"KAFKA_BROKERS": strings.Join(k.Config.Brokers, ","), "KAFKA_SASL_MECHANISM": k.Config.Mechanism,
		"KAFKA_SASL_USERNAME": k.Config.Username, "KAFKA_SASL_PASSWORD": k.Config.Password,
	}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var msgs []*kgo.Record
	for i, c := range []struct{ class, value string }{{dlq.ClassSchema, ""}, {dlq.ClassDecode, "not json"}, {dlq.ClassSchema, ""}} {
		orig := e.event(t, int64(i+1), c.value)
		if i == 2 {
			orig.Headers = append(orig.Headers, kgo.RecordHeader{Key: dlq.HeaderReplayAttempt, Value: []byte("4")})
		}
		msgs = append(msgs, dlq.Build(orig, dlq.Failure{Class: c.class, Reason: fmt.Sprintf("reason %d", i), Group: "g", At: at}))
	}
	k.Produce(t, dlqTopic, msgs...)
	return e
}

// event is history id's original message; value "" means a valid event.
func (e *dlqEnv) event(t *testing.T, id int64, value string) *kgo.Record {
	t.Helper()
	eventID := fmt.Sprintf("00000000-0000-4000-8000-%012d", id)
	v := []byte(value)
	if value == "" {
		payload, _ := json.Marshal(contract.History{HistoryID: id, EmailStatus: contract.StatusSent, SentAt: 1686110218,
			SenderOfficeName: "O", DestinationCode: "D", SenderCustomerID: "C", SenderOfficeID: "O",
			Forms: []contract.Form{{FileName: "a.pdf", FilePath: "/a", Size: 1, InvoiceNumber: "I", IssueDate: 1686110218222,
				TotalAmount: "1", SenderFormID: 1}}})
		env := contract.Envelope{EventID: eventID, EventType: contract.EventTypeHistoryChanged,
			AggregateType: contract.AggregateTypeHistory, AggregateID: contract.AggregateID(id), Version: 1,
			OccurredAt: time.Unix(1, 0), Payload: payload}
		var err error
		if v, err = env.Marshal(); err != nil {
			t.Fatal(err)
		}
	}
	return &kgo.Record{Topic: e.orig, Key: []byte(contract.AggregateID(id)), Value: v,
		Headers: []kgo.RecordHeader{{Key: contract.HeaderEventID, Value: []byte(eventID)}}}
}

// run runs receiver with args and fails the test on an error.
func (e *dlqEnv) run(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	out, errOut, err := invoke(context.Background(), e.env, args...)
	if err != nil {
		t.Fatalf("receiver %s = %v; stderr:\n%s", strings.Join(args, " "), err, errOut)
	}
	return out.String(), errOut.String()
}

// statuses lists the entries as JSON and returns their status by id.
func (e *dlqEnv) statuses(t *testing.T, args ...string) map[string]string {
	t.Helper()
	out, _ := e.run(t, append([]string{"dlq", "list", "--json"}, args...)...)
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var entry entryJSON
		if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
			t.Fatalf("list --json line %q: %v", sc.Text(), err)
		}
		got[entry.ID] = entry.Status
	}
	return got
}
