package outbox_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/invoicesync/invoicesync/pkg/outbox"
)

// After traffic the series say what happened: backlog while the relay is
// stopped, then published count and batches once it ran, backlog back to 0.
func TestMetricsMatchWhatHappened(t *testing.T) {
	e := newEnv(t)
	r := e.relay(t, outbox.Config{BatchSize: 4})
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collector(), r.BacklogCollector())

	var ids []string
	for v := int64(1); v <= 10; v++ {
		_, id := insert(t, e.db.Pool, "agg-m", v)
		ids = append(ids, id)
	}
	if got := gauge(t, reg, "invoicesync_outbox_backlog_events"); got != 10 {
		t.Fatalf("backlog before the relay runs = %v, want 10", got)
	}
	if got := gauge(t, reg, "invoicesync_outbox_oldest_event_age_seconds"); got <= 0 {
		t.Fatalf("oldest age = %v, want > 0", got)
	}

	start(t, r)
	waitFor(t, "all events", func() bool {
		for _, id := range ids {
			if !e.got.has(id) {
				return false
			}
		}
		return true
	})
	waitFor(t, "the outbox to empty", func() bool { return e.pending(t) == 0 })
	// The last batch is counted just after its delete.
	waitFor(t, "the last batch counted", func() bool {
		return uint64(gauge(t, reg, "invoicesync_relay_batches_total")) == histCount(t, reg, "invoicesync_relay_batch_size")
	})
	if got := gauge(t, reg, "invoicesync_relay_published_events_total"); got != 10 {
		t.Fatalf("published = %v, want 10", got)
	}
	if got := gauge(t, reg, "invoicesync_relay_leader"); got != 1 {
		t.Fatalf("leader = %v, want 1", got)
	}
	if got := gauge(t, reg, "invoicesync_outbox_backlog_events"); got != 0 {
		t.Fatalf("backlog after = %v, want 0", got)
	}
	batches := gauge(t, reg, "invoicesync_relay_batches_total")
	if batches < 3 { // 10 events in batches of at most 4
		t.Fatalf("batches = %v, want at least 3", batches)
	}
	if got := histCount(t, reg, "invoicesync_relay_batch_size"); got != uint64(batches) {
		t.Fatalf("batch size observations = %d, want one per batch (%v)", got, batches)
	}
}

func histCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("series %s not exposed", name)
	return 0
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
	}
	t.Fatalf("series %s not exposed", name)
	return 0
}
