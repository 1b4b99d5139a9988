package outbox

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/invoicesync/invoicesync/pkg/metrics"
)

// Collector exposes the relay's counters to Prometheus, read from the same
// atomics as Stats at scrape time, plus the batch-size and publish-latency
// histograms:
//
//	invoicesync_relay_leader                     1 while this relay holds the lock
//	invoicesync_relay_published_events_total     events acknowledged by the broker
//	invoicesync_relay_batches_total              batches published and deleted
//	invoicesync_relay_publish_errors_total       database, Kafka and encoding failures
//	invoicesync_relay_held_total                 events held back (not encodable, or too large)
//	invoicesync_relay_terms_ended_total          terms given up: producer fenced, commit or abort failed
//	invoicesync_relay_batch_size                 events per published batch
//	invoicesync_relay_publish_duration_seconds   one batch: begin transaction until committed
func (r *Relay) Collector() prometheus.Collector { return (*relayCollector)(r) }

var (
	descLeader    = desc("relay_leader", "1 while this relay holds the outbox lock and publishes.")
	descPublished = desc("relay_published_events_total", "Events acknowledged by the broker (duplicates after retries included).")
	descBatches   = desc("relay_batches_total", "Batches published and deleted.")
	descErrors    = desc("relay_publish_errors_total", "Failures: database, Kafka and events that could not be published (not encodable, too large).")
	descHeld      = desc("relay_held_total", "Times an event could not be published (not encodable, or above the size limit) and its aggregate was held back.")
	descTermsEnd  = desc("relay_terms_ended_total", "Leadership terms given up because the producer was fenced by a newer leader or a transaction could not be committed or aborted.")
)

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(metrics.Namespace+"_"+name, help, nil, nil)
}

// newHistograms builds the relay's histograms (registered via Collector).
func newHistograms() (batchSize, publish prometheus.Histogram) {
	batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metrics.Namespace, Name: "relay_batch_size",
		Help: "Events per published batch.", Buckets: metrics.SizeBuckets,
	})
	publish = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metrics.Namespace, Name: "relay_publish_duration_seconds",
		Help: "Time to publish one batch: its Kafka transaction from begin until committed.", Buckets: metrics.LatencyBuckets,
	})
	return batchSize, publish
}

type relayCollector Relay

func (c *relayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLeader, descPublished, descBatches, descErrors, descHeld, descTermsEnd} {
		ch <- d
	}
	c.batchSize.Describe(ch)
	c.publishTime.Describe(ch)
}

func (c *relayCollector) Collect(ch chan<- prometheus.Metric) {
	s := (*Relay)(c).Stats()
	leader := 0.0
	if s.Leader {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(descPublished, prometheus.CounterValue, float64(s.Published))
	ch <- prometheus.MustNewConstMetric(descBatches, prometheus.CounterValue, float64(s.Batches))
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(s.Errors))
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.CounterValue, float64(s.Held))
	ch <- prometheus.MustNewConstMetric(descTermsEnd, prometheus.CounterValue, float64(s.TermsEnded))
	c.batchSize.Collect(ch)
	c.publishTime.Collect(ch)
}

// BacklogCollector reports the outbox backlog at scrape time (one indexed
// query, bounded by 2s): what operators watch first when events are late.
//
//	invoicesync_outbox_backlog_events             unpublished events
//	invoicesync_outbox_oldest_event_age_seconds   age of the oldest one (0 when empty)
func (r *Relay) BacklogCollector() prometheus.Collector { return (*backlogCollector)(r) }

var (
	descBacklog = desc("outbox_backlog_events", "Events in the outbox not yet published.")
	descOldest  = desc("outbox_oldest_event_age_seconds", "Age of the oldest unpublished event (0 when the outbox is empty).")
	descScrape  = desc("outbox_backlog_scrape_errors_total", "Backlog queries that failed.")
)

type backlogCollector Relay

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBacklog
	ch <- descOldest
	ch <- descScrape
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var n int64
	var age float64
	err := c.pool.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(occurred_at)), 0)::float8
		FROM `+c.table).Scan(&n, &age)
	if err != nil {
		c.scrapeErrors.Add(1)
	} else {
		ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(n))
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age)
	}
	ch <- prometheus.MustNewConstMetric(descScrape, prometheus.CounterValue, float64(c.scrapeErrors.Load()))
}
