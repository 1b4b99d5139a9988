package outbox_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/outbox"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// While the broker refuses produce requests the relay retries, deletes
// nothing, and publishes once the broker is back.
func TestBrokerFailureIsRetriedWithoutLoss(t *testing.T) {
	e := newEnv(t)
	if e.kafka.Embedded == nil {
		t.Skip("needs the embedded broker to inject failures")
	}
	cluster := e.kafka.Embedded.Cluster()
	var failing atomic.Bool
	failing.Store(true)
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if !failing.Load() {
			cluster.DropControl()
			return nil, nil, false
		}
		cluster.KeepControl()
		return nil, errors.New("injected produce failure"), true // closes the connection
	})
	// A short WriteTimeout: franz-go retries a produce whose connection
	// broke until then, and only then does the relay abort and retry.
	r := e.relay(t, outbox.Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		WriteTimeout: time.Second})
	start(t, r)

	_, event := insert(t, e.db.Pool, "agg-1", 1)
	waitFor(t, "retried publish failures", func() bool { return r.Stats().Errors >= 2 })
	if n := e.pending(t); n != 1 {
		t.Fatalf("outbox holds %d rows while the broker refuses writes, want 1: a failed publish deleted it", n)
	}
	failing.Store(false)
	waitFor(t, "the event after the broker recovered", func() bool { return e.got.has(event) })
	waitFor(t, "an empty outbox", func() bool { return e.pending(t) == 0 })
}

// Losing the dedicated connection loses the leadership; the relay
// reconnects, takes the lock again and goes on publishing.
func TestRelayRecoversFromLostConnection(t *testing.T) {
	e := newEnv(t)
	r := e.relay(t, outbox.Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	start(t, r)
	waitFor(t, "leadership", func() bool { return r.Stats().Leader })
	before := lockHolder(t, e)

	var killed bool
	if err := e.db.Pool.QueryRow(context.Background(), "SELECT pg_terminate_backend($1)", before).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the relay's connection: %v, %v", killed, err)
	}
	waitFor(t, "the relay to notice", func() bool { return r.Stats().Errors >= 1 })
	waitFor(t, "leadership again", func() bool { return r.Stats().Leader })
	if after := lockHolder(t, e); after == before || after == 0 {
		t.Fatalf("lock holder is backend %d, want a new connection (was %d)", after, before)
	}
	_, event := insert(t, e.db.Pool, "agg-1", 1)
	waitFor(t, "an event after the reconnect", func() bool { return e.got.has(event) })
}

// lockHolder returns the backend pid holding an advisory lock in the test's
// database, or 0.
func lockHolder(t *testing.T, e *env) int {
	t.Helper()
	var pid int
	err := e.db.Pool.QueryRow(context.Background(), `SELECT coalesce(max(pid), 0) FROM pg_locks
	      WHERE locktype = 'advisory' AND granted
	        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&pid)
	if err != nil {
		t.Fatalf("find the lock holder: %v", err)
	}
	return pid
}

// While no broker answers, Run waits (KAFKA_STARTUP_TIMEOUT) rather than
// failing, and returns nil at once when cancelled, as on SIGTERM.
func TestRunWaitingForKafkaStopsOnCancel(t *testing.T) {
	e := newEnv(t)
	cfg := e.kafka.Config
	cfg.Brokers = []string{testsupport.NewProxy(t, "127.0.0.1:1").Addr()} // accepts, then drops the connection
	cfg.DialTimeout, cfg.StartupTimeout = time.Second, time.Minute
	conn, err := kafkasec.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := outbox.New(outbox.Config{Topic: e.topic}, e.db.Pool, conn, zeroLog(t))
	if err != nil {
		t.Fatal(err)
	}
	run := start(t, r)
	time.Sleep(1500 * time.Millisecond) // at least one failed attempt
	if err := run.Stop(); err != nil {
		t.Fatalf("Run = %v after cancel while waiting for Kafka, want nil", err)
	}
}
