package outbox_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/outbox"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// A transaction that took a lower id but commits after a later one must
// still be published: an id > last-seen cursor would skip it for good.
func TestLateCommitIsPublished(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	start(t, e.relay(t, outbox.Config{}))

	txA, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = txA.Rollback(ctx) }()
	idA, eventA := insert(t, txA, "late", 1)
	idB, eventB := insert(t, e.db.Pool, "early", 1)
	if idA >= idB {
		t.Fatalf("setup: late row id %d is not below the early one %d", idA, idB)
	}
	waitFor(t, "the event committed first", func() bool { return e.got.has(eventB) })
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event committed late, with the lower id", func() bool { return e.got.has(eventA) })
	waitFor(t, "an empty outbox", func() bool { return e.pending(t) == 0 })
}

// A rolled-back event is never published, and a published one carries the
// envelope and headers of the contract.
func TestRollbackIsNotPublished(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	start(t, e.relay(t, outbox.Config{}))

	tx, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, rolledBack := insert(t, tx, "agg-1", 1)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	_, committed := insert(t, e.db.Pool, "agg-1", 2)
	waitFor(t, "the committed event", func() bool { return e.got.has(committed) })
	if e.got.has(rolledBack) {
		t.Fatalf("rolled-back event %s was published", rolledBack)
	}
	for _, m := range e.got.all() {
		checkMessage(t, m.Key, m.Value, func(k string) string { return header(m, k) })
	}
}

// checkMessage asserts one message follows the contract: keyed by
// aggregate id, a valid envelope, headers that repeat its fields.
func checkMessage(t *testing.T, key, value []byte, header func(string) string) {
	t.Helper()
	env, err := contract.DecodeEnvelope(value)
	if err != nil {
		t.Fatalf("published value is not a valid envelope: %v", err)
	}
	want := map[string]string{
		contract.HeaderEventID:       env.EventID,
		contract.HeaderEventType:     env.EventType,
		contract.HeaderAggregateType: env.AggregateType,
		contract.HeaderAggregateID:   env.AggregateID,
		contract.HeaderVersion:       strconv.FormatInt(env.Version, 10),
		contract.HeaderSchemaVersion: contract.SchemaVersion,
		contract.HeaderOccurredAt:    env.OccurredAt.Format(time.RFC3339Nano),
	}
	for k, v := range want {
		if got := header(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if string(key) != env.AggregateID {
		t.Errorf("key = %q, want the aggregate id %q", key, env.AggregateID)
	}
}

// With polling effectively off, an event inserted while the relay is idle
// still arrives: LISTEN/NOTIFY wakes it.
func TestNotifyWakesIdleRelay(t *testing.T) {
	e := newEnv(t)
	r := e.relay(t, outbox.Config{PollInterval: time.Hour})
	start(t, r)
	waitFor(t, "leadership", func() bool { return r.Stats().Leader })

	_, first := insert(t, e.db.Pool, "agg-1", 1)
	waitFor(t, "the first event", func() bool { return e.got.has(first) })
	// The relay read the table before this insert and now waits: only a
	// NOTIFY can bring the next event out within the hour.
	_, second := insert(t, e.db.Pool, "agg-1", 2)
	end := time.Now().Add(20 * time.Second)
	for !e.got.has(second) {
		if time.Now().After(end) {
			t.Fatal("an event inserted while the relay was idle did not arrive: NOTIFY did not wake it")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A wrong SCRAM password ends Run at once with the authentication error.
func TestBadPasswordFailsFast(t *testing.T) {
	e := newEnv(t)
	cfg := e.kafka.Config
	cfg.Password = "not-the-password"
	conn, err := kafkasec.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := outbox.New(outbox.Config{Topic: e.topic}, e.db.Pool, conn, zeroLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	err = r.Run(ctx)
	if !errors.Is(err, kafkasec.ErrAuthentication) {
		t.Fatalf("Run = %v, want an authentication error (a nil error means it hung until the deadline)", err)
	}
}

// An event that breaks the envelope contract holds back its aggregate only:
// other aggregates flow, nothing is deleted, and once the row is fixed the
// aggregate is published in order.
func TestUnencodableEventHoldsItsAggregateOnly(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.relay(t, outbox.Config{MaxBackoff: 300 * time.Millisecond})
	start(t, r)

	var badID int64
	err := e.db.Pool.QueryRow(ctx, `INSERT INTO transaction_outbox
	        (aggregate_type, aggregate_id, event_type, version, payload)
	        VALUES ('test', 'bad', 'test.changed', 1, 'null') RETURNING id`).Scan(&badID)
	if err != nil {
		t.Fatal(err)
	}
	_, afterBad := insert(t, e.db.Pool, "bad", 2)
	_, other := insert(t, e.db.Pool, "good", 1)
	waitFor(t, "the other aggregate's event", func() bool { return e.got.has(other) })
	waitFor(t, "the bad event to be reported", func() bool { return r.Stats().Held > 0 })
	if e.got.has(afterBad) {
		t.Fatal("a later event of the held aggregate was published before the bad one: order broken")
	}
	waitFor(t, "the other aggregate's row deleted", func() bool { return e.rowsOf(t, "good") == 0 })
	if n := e.rowsOf(t, "bad"); n != 2 {
		t.Fatalf("outbox holds %d rows of the held aggregate, want both: nothing may be lost", n)
	}

	if _, err := e.db.Pool.Exec(ctx, `UPDATE transaction_outbox SET payload = '{"fixed": true}' WHERE id = $1`, badID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the held aggregate after the fix", func() bool { return e.got.has(afterBad) })
	var versions []string
	for _, m := range e.got.all() {
		if string(m.Key) == "bad" {
			versions = append(versions, header(m, contract.HeaderVersion))
		}
	}
	if len(versions) != 2 || versions[0] != "1" || versions[1] != "2" {
		t.Fatalf("held aggregate published versions %v, want [1 2]", versions)
	}
}

// An event larger than MaxMessageBytes, which the broker would refuse on
// every attempt, holds back its aggregate only, like an unencodable one:
// other aggregates flow, nothing is deleted, and the error names the size.
func TestOversizedEventHoldsItsAggregateOnly(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	logs := &testsupport.SyncBuffer{}
	cfg := outbox.Config{MaxBackoff: 300 * time.Millisecond, MaxMessageBytes: 4096, Topic: e.topic}
	r, err := outbox.New(cfg, e.db.Pool, e.kafka.Conn, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	start(t, r)

	if _, err := e.db.Pool.Exec(ctx, `INSERT INTO transaction_outbox
	        (aggregate_type, aggregate_id, event_type, version, payload)
	        VALUES ('test', 'huge', 'test.changed', 1, jsonb_build_object('blob', repeat('x', 10000)))`); err != nil {
		t.Fatal(err)
	}
	_, afterHuge := insert(t, e.db.Pool, "huge", 2)
	_, other := insert(t, e.db.Pool, "small", 1)
	waitFor(t, "the other aggregate's event", func() bool { return e.got.has(other) })
	waitFor(t, "the oversized event to be reported", func() bool { return r.Stats().Held > 0 })
	waitFor(t, "the other aggregate's row deleted", func() bool { return e.rowsOf(t, "small") == 0 })
	if e.got.has(afterHuge) {
		t.Fatal("a later event of the held aggregate was published: order broken")
	}
	if n := e.rowsOf(t, "huge"); n != 2 {
		t.Fatalf("outbox holds %d rows of the held aggregate, want both: nothing may be lost", n)
	}
	if out := logs.String(); !strings.Contains(out, "above the relay's limit of 4096") || !strings.Contains(out, "RELAY_MAX_MESSAGE_BYTES") {
		t.Fatalf("no error naming the size limit:\n%s", out)
	}
}
