package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// serve exposes on its read API's listener the series of what it did —
// events by outcome, end-to-end latencies, dead letters by class, batch
// sizes, the lag of each partition, HTTP requests by route — and /readyz,
// which names the database when it cannot be reached while /healthz, a
// liveness check, still answers 200.
func TestServeExposesMetricsAndReadiness(t *testing.T) {
	d := testsupport.MigratedDatabase(t, migrations.Receiver)
	proxy, dbURL := testsupport.ProxyURL(t, d.URL)
	k := testsupport.NewKafka(t)
	topic := k.Topic(t, "histories", 2)
	k.CreateTopic(t, topic+".dlq", 1)
	env := map[string]string{
		"RECEIVER_DATABASE_URL": dbURL, "RECEIVER_HTTP_ADDR": "127.0.0.1:0", "LOG_FORMAT": "json",
		"KAFKA_BROKERS": strings.Join(k.Config.Brokers, ","), "KAFKA_SASL_MECHANISM": k.Config.Mechanism,
		"KAFKA_SASL_USERNAME": k.Config.Username, "KAFKA_SASL_PASSWORD": k.Config.Password,
		"KAFKA_TOPIC": topic, "RECEIVER_GROUP_ID": testsupport.Name("g"),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		a := newApp(&syncBuffer{}, logs, func(key string) (string, bool) { v, ok := env[key]; return v, ok })
		done <- a.run(ctx, []string{"serve"})
	}()
	base := "http://" + waitForLog(t, logs, done, regexp.MustCompile(`"addr":"([^"]+)"`))

	dup := historyEvent(t, 2, 1, contract.StatusSent, "2")
	poison := historyEvent(t, 3, 1, contract.StatusSent, "0.00001") // more decimals than the contract allows
	k.Produce(t, topic,
		historyEvent(t, 1, 1, contract.StatusSent, "1"), historyEvent(t, 1, 2, contract.StatusDelivered, "1"), // applied ×2
		historyEvent(t, 1, 1, contract.StatusSent, "1"), // republished v1: stale
		dup, again(dup), // applied, duplicate
		historyEvent(t, 2, 2, contract.StatusError, "2"), // deleted
		poison)
	var got map[string]float64
	waitUntil(t, "every event handled and both partitions caught up", func() bool {
		got = scrape(t, base)
		handled := 0.0
		for _, o := range []string{"applied", "deleted", "stale", "duplicate"} {
			handled += got[`invoicesync_receiver_events_total{outcome="`+o+`"}`]
		}
		return handled == 6 && got[`invoicesync_consumer_dead_lettered_total{class="schema"}`] == 1 &&
			lagOf(got, topic, 0) == "0" && lagOf(got, topic, 1) == "0"
	})
	for series, want := range map[string]float64{
		`invoicesync_receiver_events_total{outcome="applied"}`:     3,
		`invoicesync_receiver_events_total{outcome="deleted"}`:     1,
		`invoicesync_receiver_events_total{outcome="stale"}`:       1,
		`invoicesync_receiver_events_total{outcome="duplicate"}`:   1,
		`invoicesync_receiver_end_to_end_latency_seconds_count`:    4, // applied + deleted
		`invoicesync_consumer_dead_lettered_total{class="schema"}`: 1,
		`invoicesync_consumer_dead_lettered_total{class="decode"}`: 0,
		`invoicesync_consumer_commit_failures_total`:               0,
		`invoicesync_receiver_ledger_pruned_total`:                 0, // nothing is a week old
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %t), want %v", series, v, ok, want)
		}
	}
	for _, series := range []string{"invoicesync_consumer_batch_size_count", "invoicesync_consumer_retries_total",
		`invoicesync_http_requests_total{code="200",route="GET /metrics"}`, "go_goroutines"} {
		if _, ok := got[series]; !ok {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if got["invoicesync_consumer_batch_size_count"] < 1 {
		t.Errorf("batch_size count = %v, want at least one batch", got["invoicesync_consumer_batch_size_count"])
	}

	if status, body := readyz(t, base); status != http.StatusOK || !body.Ready ||
		body.Checks["database"] != "ok" || body.Checks["kafka"] != "ok" {
		t.Fatalf("/readyz = %d %+v, want 200 with database and kafka ok", status, body)
	}
	proxy.Cut()
	waitUntil(t, "/readyz to name the unreachable database", func() bool {
		status, body := readyz(t, base)
		return status == http.StatusServiceUnavailable && slices.Equal(body.Failing, []string{"database"}) &&
			body.Checks["kafka"] == "ok"
	})
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz with the database unreachable = %v, %v; want 200 (liveness only)", resp, err)
	} else {
		resp.Body.Close()
	}
	proxy.Restore()
	waitUntil(t, "/readyz to recover", func() bool { status, _ := readyz(t, base); return status == http.StatusOK })
	if got := scrape(t, base); got[`invoicesync_http_requests_total{code="503",route="GET /readyz"}`] < 1 {
		t.Errorf("no 503 of GET /readyz counted")
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve = %v after cancel, want nil", err)
	}
}

// lagOf is the lag gauge of a partition as written, "" when absent.
func lagOf(got map[string]float64, topic string, partition int) string {
	v, ok := got[fmt.Sprintf(`invoicesync_consumer_lag_messages{partition="%d",topic="%s"}`, partition, topic)]
	if !ok {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// scrape reads /metrics in the text format: series (name{labels} as
// written) → value.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return out
}

type readiness struct {
	Ready   bool              `json:"ready"`
	Checks  map[string]string `json:"checks"`
	Failing []string          `json:"failing"`
}

func readyz(t *testing.T, base string) (int, readiness) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var r readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	return resp.StatusCode, r
}

// waitUntil polls cond until it holds, failing the test after a generous deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// again is a copy of r to produce once more: a record is produced once.
func again(r *kgo.Record) *kgo.Record {
	c := *r
	return &c
}

// historyEvent is a new event (its own id) of history id at version, with
// one form of amount, that occurred now.
func historyEvent(t *testing.T, id, version int64, status, amount string) *kgo.Record {
	t.Helper()
	now := time.Now()
	payload, err := json.Marshal(contract.History{HistoryID: id, EmailStatus: status, SentAt: now.Unix(),
		SenderOfficeName: "Office", DestinationCode: "D", SenderCustomerID: "C", SenderOfficeID: "O",
		Forms: []contract.Form{{FileName: "a.pdf", FilePath: "/a.pdf", Size: 1, InvoiceNumber: "INV-1",
			IssueDate: now.UnixMilli(), TotalAmount: json.Number(amount), SenderFormID: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	env := contract.Envelope{EventID: newUUID(), EventType: contract.EventTypeHistoryChanged,
		AggregateType: contract.AggregateTypeHistory, AggregateID: contract.AggregateID(id), Version: version,
		OccurredAt: now, Payload: payload}
	value, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Key: []byte(env.AggregateID), Value: value,
		Headers: []kgo.RecordHeader{{Key: contract.HeaderEventID, Value: []byte(env.EventID)}}}
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
