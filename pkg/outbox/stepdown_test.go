package outbox_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/outbox"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// A leader that reaches PostgreSQL but not Kafka does not keep the lead
// forever: after StepDownAfter of failing to publish it ends its term and
// waits its turn, a standby that reaches Kafka takes over, and nothing is
// lost or reordered. While it leads without publishing, Ready says so.
func TestLeaderThatCannotReachKafkaStepsDown(t *testing.T) {
	e := newEnv(t)
	proxy := testsupport.NewProxy(t, e.kafka.Config.Brokers[0])
	cfg := outbox.Config{PollInterval: 100 * time.Millisecond, StepDownAfter: 2 * time.Second,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, WriteTimeout: time.Second}
	cut := e.relay(t, cfg)
	outbox.WithClientOpts(cut, kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, proxy.Addr()) // every broker of the one-broker cluster
	}))
	start(t, cut)
	waitFor(t, "the relay behind the proxy to lead", func() bool { return cut.Stats().Leader })
	_, first := insert(t, e.db.Pool, "agg-1", 1)
	waitFor(t, "the first event", func() bool { return e.got.has(first) })
	if err := cut.Ready(context.Background()); err != nil {
		t.Fatalf("Ready of a publishing leader = %v", err)
	}

	proxy.Cut()
	for v := int64(2); v <= 5; v++ {
		insert(t, e.db.Pool, "agg-1", v)
	}
	waitFor(t, "Ready to report the leader that cannot publish", func() bool {
		err := cut.Ready(context.Background())
		return err != nil && strings.Contains(err.Error(), "cannot publish")
	})
	standby := e.relay(t, cfg)
	start(t, standby)
	cutAt := time.Now()
	waitFor(t, "the standby to take over", func() bool { return standby.Stats().Leader })
	took := time.Since(cutAt)
	t.Logf("standby leads %s after it started (step-down bound %s)", took.Round(time.Millisecond), cfg.StepDownAfter)
	if took > 3*cfg.StepDownAfter+5*time.Second {
		t.Fatalf("standby took %s to lead, want within about the step-down bound %s", took, cfg.StepDownAfter)
	}
	if s := cut.Stats(); s.Leader || s.TermsEnded == 0 {
		t.Fatalf("relay behind the cut proxy: %+v, want a term ended and not leading", s)
	}
	waitFor(t, "every version on the topic", func() bool { return len(versions(e.got.all(), "agg-1")) >= 5 })
	seen := map[int64]bool{}
	var last int64
	for _, v := range versions(e.got.all(), "agg-1") {
		if v < last && !seen[v] {
			t.Fatalf("version %d after %d: reordered", v, last)
		}
		seen[v], last = true, max(last, v)
	}
	for v := int64(1); v <= 5; v++ {
		if !seen[v] {
			t.Fatalf("version %d never published", v)
		}
	}
	waitFor(t, "an empty outbox", func() bool { return e.pending(t) == 0 })
}

// versions lists the versions of aggregateID's events in topic order.
func versions(recs []*kgo.Record, aggregateID string) []int64 {
	var out []int64
	for _, r := range recs {
		if string(r.Key) == aggregateID {
			v, _ := strconv.ParseInt(header(r, contract.HeaderVersion), 10, 64)
			out = append(out, v)
		}
	}
	return out
}

// A leader whose every publish fails while it keeps its producer (here the
// broker refuses each batch, the abort succeeds) steps down after
// StepDownAfter instead of holding the lock forever; the standby then
// publishes everything, in order.
func TestLeaderWhosePublishesFailStepsDownAfterTheBound(t *testing.T) {
	e := newEnv(t)
	cfg := outbox.Config{PollInterval: 100 * time.Millisecond, StepDownAfter: 2 * time.Second,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	failing := e.relay(t, cfg)
	outbox.SetBeforeCommit(failing, func() error { return errors.New("broker refuses the batch (simulated)") })
	start(t, failing)
	waitFor(t, "the failing relay to lead", func() bool { return failing.Stats().Leader })
	standby := e.relay(t, cfg)
	start(t, standby)
	began := time.Now()
	for v := int64(1); v <= 3; v++ {
		insert(t, e.db.Pool, "agg-1", v)
	}
	waitFor(t, "Ready to report the leader that cannot publish", func() bool {
		err := failing.Ready(context.Background())
		return err != nil && strings.Contains(err.Error(), "cannot publish")
	})
	waitFor(t, "the standby to take over", func() bool { return standby.Stats().Leader })
	took := time.Since(began)
	t.Logf("standby leads %s after the first failed publish (bound %s)", took.Round(time.Millisecond), cfg.StepDownAfter)
	if took < cfg.StepDownAfter-500*time.Millisecond {
		t.Fatalf("the failing leader stepped down after %s, before its bound %s", took, cfg.StepDownAfter)
	}
	waitFor(t, "every version on the topic", func() bool { return len(versions(e.got.all(), "agg-1")) >= 3 })
	if got := versions(e.got.all(), "agg-1"); got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("versions on the topic %v, want 1, 2, 3 in order", got)
	}
	if err := standby.Ready(context.Background()); err != nil {
		t.Fatalf("Ready of the publishing standby-turned-leader = %v", err)
	}
}

// A relay whose database connection stops answering without closing (a
// partition, a dead host) does not hang on it: every statement of its
// session is bounded by WriteTimeout, so it drops the connection and tries
// again. Here a standby's connection is black-holed while it polls for the
// lock (what was sent meanwhile is lost for good); once the network is
// back and the leader stops, the standby takes over.
func TestStandbyWhoseDatabaseStopsAnsweringRecovers(t *testing.T) {
	e := newEnv(t)
	proxy, url := testsupport.ProxyURL(t, e.db.URL)
	ctx := context.Background()
	pool, err := db.Open(ctx, url, db.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	leader := e.relay(t, outbox.Config{PollInterval: 100 * time.Millisecond})
	runLeader := start(t, leader)
	waitFor(t, "a leader", func() bool { return leader.Stats().Leader })
	cfg := outbox.Config{Topic: e.topic, PollInterval: 100 * time.Millisecond, WriteTimeout: time.Second,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	standby, err := outbox.New(cfg, pool, e.kafka.Conn, zeroLog(t))
	if err != nil {
		t.Fatal(err)
	}
	start(t, standby)
	time.Sleep(300 * time.Millisecond) // a few lock polls on the proxied connection

	proxy.Blackhole()
	time.Sleep(2 * cfg.WriteTimeout)
	proxy.Restore()
	if err := runLeader.Stop(); err != nil {
		t.Fatalf("leader Run = %v", err)
	}
	waitFor(t, "the standby to take over", func() bool { return standby.Stats().Leader })
	_, event := insert(t, e.db.Pool, "agg-1", 1)
	waitFor(t, "the event published by the former standby", func() bool { return e.got.has(event) })
	if standby.Stats().Errors == 0 {
		t.Fatal("the standby counted no failure while its database did not answer")
	}
}
