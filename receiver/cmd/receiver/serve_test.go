package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

func TestServeRefusesPendingMigrations(t *testing.T) {
	d := testsupport.NewDatabase(t) // empty: nothing migrated
	_, _, err := invoke(context.Background(), map[string]string{
		"RECEIVER_DATABASE_URL": d.URL, "KAFKA_BROKERS": "127.0.0.1:1",
		"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p",
	}, "serve")
	if err == nil || !strings.Contains(err.Error(), "pending migration") || !strings.Contains(err.Error(), "receiver migrate") {
		t.Fatalf("serve on an unmigrated database = %v, want it to ask for `receiver migrate`", err)
	}
}

// migrate, then serve against the SCRAM broker: an event produced to the
// topic shows up in the read API; cancelling the context stops serve cleanly.
func TestMigrateThenServe(t *testing.T) {
	d := testsupport.NewDatabase(t)
	k := testsupport.NewKafka(t)
	topic := k.Topic(t, "histories", 2)
	k.CreateTopic(t, topic+".dlq", 1)
	env := map[string]string{
		"RECEIVER_DATABASE_URL": d.URL, "RECEIVER_HTTP_ADDR": "127.0.0.1:0", "LOG_FORMAT": "json",
		"KAFKA_BROKERS": strings.Join(k.Config.Brokers, ","), "KAFKA_SASL_MECHANISM": k.Config.Mechanism,
		"KAFKA_SASL_USERNAME": k.Config.Username, "KAFKA_SASL_PASSWORD": k.Config.Password,
		"KAFKA_TOPIC": topic, "RECEIVER_GROUP_ID": testsupport.Name("g"), "RECEIVER_TIMEZONE": "Europe/Prague",
	}
	for i, want := range []string{`"source":"00002_processed_event.sql"`, `"applied":0`} { // the second run finds nothing to do
		_, logs, err := invoke(context.Background(), env, "migrate")
		if err != nil || !strings.Contains(logs.String(), want) {
			t.Fatalf("migrate #%d = %v, logs:\n%s", i+1, err, logs)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		a := newApp(&syncBuffer{}, logs, func(key string) (string, bool) { v, ok := env[key]; return v, ok })
		done <- a.run(ctx, []string{"serve"})
	}()
	addr := waitForLog(t, logs, done, regexp.MustCompile(`"addr":"([^"]+)"`))
	if out := logs.String(); strings.Contains(out, k.Config.Password) || !strings.Contains(out, `"timezone":"Europe/Prague"`) ||
		!strings.Contains(out, `"dlq_topic":"`+topic+`.dlq"`) || !strings.Contains(out, `"batch_size":500`) {
		t.Fatalf("startup log leaks the password or lacks the config:\n%s", out)
	}

	produceHistory(t, k, topic, 77)
	var got struct {
		TotalAmount string `json:"totalAmount"`
		Forms       []struct {
			IssueDate string `json:"issueDate"`
		} `json:"forms"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v1/histories/77")
		if err == nil && resp.StatusCode == http.StatusOK {
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			break
		}
		if err == nil {
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("history 77 never showed up in the API (last error %v); logs:\n%s", err, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// 2024-01-31T23:30Z is already 1 February in Prague.
	if got.TotalAmount != "10.0500" || len(got.Forms) != 1 || got.Forms[0].IssueDate != "2024-02-01" {
		t.Fatalf("history 77 = %+v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve = %v after cancel, want nil", err)
	}
}

// waitForLog waits until re matches the logs and returns its first group.
func waitForLog(t *testing.T, logs *syncBuffer, done <-chan error, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned %v before logging %s; logs:\n%s", err, re, logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line matches %s; logs:\n%s", re, logs)
		}
	}
}

func produceHistory(t *testing.T, k *testsupport.Kafka, topic string, id int64) {
	t.Helper()
	issued := time.Date(2024, 1, 31, 23, 30, 0, 0, time.UTC)
	payload, err := json.Marshal(contract.History{HistoryID: id, EmailStatus: contract.StatusSent,
		SentAt: issued.Unix(), SenderOfficeName: "Office", DestinationCode: "D", SenderCustomerID: "C",
		SenderOfficeID: "O", Forms: []contract.Form{{FileName: "a.pdf", FilePath: "/a.pdf", Size: 1,
			InvoiceNumber: "INV-1", IssueDate: issued.UnixMilli(), TotalAmount: "10.05", SenderFormID: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	env := contract.Envelope{EventID: "0b6c3c5e-4d8a-4f0e-9d3a-1c2b3a4d5e6f", EventType: contract.EventTypeHistoryChanged,
		AggregateType: contract.AggregateTypeHistory, AggregateID: contract.AggregateID(id), Version: 1,
		OccurredAt: issued, Payload: payload}
	value, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	k.Produce(t, topic, &kgo.Record{Key: []byte(env.AggregateID), Value: value})
}
