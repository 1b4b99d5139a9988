package apply

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/invoicesync/invoicesync/pkg/metrics"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

// handlerMetrics are the handler's Prometheus series. A nil *handlerMetrics
// records nothing.
type handlerMetrics struct {
	events  *prometheus.CounterVec
	latency prometheus.Histogram
}

func newHandlerMetrics(reg prometheus.Registerer) (*handlerMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &handlerMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "receiver", Name: "events_total",
			Help: "Events handled, by outcome: applied, deleted (ERROR), stale (an older version), duplicate (seen before).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "receiver", Name: "end_to_end_latency_seconds",
			Help: "From the change's commit at the source (the event's occurredAt) to its apply here, " +
				"for applied and deleted events.",
			Buckets: metrics.LatencyBuckets,
		}),
	}
	for _, c := range []prometheus.Collector{m.events, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("handler metrics: %w", err)
		}
	}
	// Every outcome starts at 0, so its rate exists before its first event.
	for _, o := range []store.Outcome{store.Applied, store.Deleted, store.Stale, store.Duplicate} {
		m.events.WithLabelValues(o.String())
	}
	return m, nil
}

// observe counts an event's outcome and, when it changed the store, the
// time since its change was committed at the source.
func (m *handlerMetrics) observe(o store.Outcome, occurredAt, now time.Time) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(o.String()).Inc()
	if o == store.Applied || o == store.Deleted {
		// Clock skew between the hosts can make it negative; 0 is the honest floor.
		m.latency.Observe(max(0, now.Sub(occurredAt).Seconds()))
	}
}
