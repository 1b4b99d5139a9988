package consume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/metrics"
)

// consumerMetrics are the consumer's Prometheus series. A nil
// *consumerMetrics records nothing, so the consumer calls its methods
// unconditionally.
type consumerMetrics struct {
	lag            *prometheus.GaugeVec
	deadLettered   *prometheus.CounterVec
	retries        prometheus.Counter
	batchSize      prometheus.Histogram
	commitFailures prometheus.Counter
}

// newConsumerMetrics registers the consumer's series on reg; nil reg gives
// nil (no metrics). A series already registered by another consumer on the
// same registry is shared, so several consumers may report to one registry.
func newConsumerMetrics(reg prometheus.Registerer) (*consumerMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &consumerMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "consumer", Name: "lag_messages",
			Help: "Messages behind: the partition's high watermark minus the next offset the consumer reads. " +
				"Removed when the partition is revoked.",
		}, []string{"topic", "partition"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "consumer", Name: "dead_lettered_total",
			Help: "Messages published to the dead-letter topic, by error class.",
		}, []string{"class"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "consumer", Name: "retries_total",
			Help: "Transient handler failures; each batch is retried in place.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "consumer", Name: "batch_size",
			Help: "Messages per batch the handler applied.", Buckets: metrics.SizeBuckets,
		}),
		commitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "consumer", Name: "commit_failures_total",
			Help: "Offset commits that failed; their messages are delivered again.",
		}),
	}
	var err error
	if m.lag, err = register(reg, m.lag); err != nil {
		return nil, err
	}
	if m.deadLettered, err = register(reg, m.deadLettered); err != nil {
		return nil, err
	}
	if m.retries, err = register(reg, m.retries); err != nil {
		return nil, err
	}
	if m.batchSize, err = register(reg, m.batchSize); err != nil {
		return nil, err
	}
	if m.commitFailures, err = register(reg, m.commitFailures); err != nil {
		return nil, err
	}
	// Known classes start at 0, so a rate over them exists before the
	// first dead letter.
	for _, class := range []string{dlq.ClassDecode, dlq.ClassSchema, dlq.ClassUnsupported,
		dlq.ClassTransform, dlq.ClassConstraint, ClassUnknown} {
		m.deadLettered.WithLabelValues(class)
	}
	return m, nil
}

// register registers c on reg, or returns the equal collector registered
// before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("consumer metrics: %w", err)
	}
	return c, nil
}

func (m *consumerMetrics) applied(n int) {
	if m != nil {
		m.batchSize.Observe(float64(n))
	}
}

func (m *consumerMetrics) retried() {
	if m != nil {
		m.retries.Inc()
	}
}

func (m *consumerMetrics) deadLetter(class string) {
	if m != nil {
		m.deadLettered.WithLabelValues(class).Inc()
	}
}

func (m *consumerMetrics) commitFailed() {
	if m != nil {
		m.commitFailures.Inc()
	}
}

// lagGauge reports the lag of one assigned partition: for every batch, from
// the high watermark of the fetch that brought it, and every interval from
// the broker (ListOffsets), so the gauge also grows while the partition is
// stuck on a batch it cannot yet apply.
type lagGauge struct {
	g         prometheus.Gauge
	end       func(context.Context) (int64, error)
	committed func() int64 // the group's committed offset, -1 when none
	next      atomic.Int64 // the offset after the last record handed to the handler; negative until known
	interval  time.Duration
	log       zerolog.Logger
	remove    func()
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// startLag starts reporting the lag of a partition, asking end for its end
// offset and committed for where the group resumes it; nil when metrics
// are off. Stop it when the partition is revoked.
func (m *consumerMetrics) startLag(topic string, partition int32, end func(context.Context) (int64, error),
	committed func() int64, interval time.Duration, log zerolog.Logger) *lagGauge {
	if m == nil {
		return nil
	}
	labels := []string{topic, strconv.Itoa(int(partition))}
	l := &lagGauge{g: m.lag.WithLabelValues(labels...), end: end, committed: committed, interval: interval, log: log,
		remove: func() { m.lag.DeleteLabelValues(labels...) }}
	l.next.Store(-1)
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Go(func() { l.poll(ctx) })
	return l
}

// poll asks the broker for the lag at once and then every interval.
func (l *lagGauge) poll(ctx context.Context) {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, l.interval)
		end, err := l.end(rctx)
		cancel()
		next := l.next.Load()
		if next < 0 {
			next = l.committed() // nothing handed over yet: the group resumes there
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// The client logs broker failures; the gauge keeps its last value.
			l.log.Debug().Err(err).Msg("reading the partition lag failed")
		case next >= 0:
			l.g.Set(float64(max(0, end-next)))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// fetched updates the gauge from the last record of a batch handed to the
// handler and the high watermark of the fetch that brought the latest
// records.
func (l *lagGauge) fetched(last *kgo.Record, hwm int64) {
	if l == nil {
		return
	}
	l.next.Store(last.Offset + 1)
	if hwm > 0 {
		l.g.Set(float64(max(0, hwm-(last.Offset+1))))
	}
}

// stop ends the polling and removes the partition's series: another member
// reports it now.
func (l *lagGauge) stop() {
	if l == nil {
		return
	}
	l.cancel()
	l.wg.Wait()
	l.remove()
}

// partitionEnd returns a function that asks the broker for the partition's
// end offset (its high watermark), for the lag gauge.
func (c *Consumer) partitionEnd(id int32) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		adm, err := c.conn.Admin()
		if err != nil {
			return 0, err
		}
		ends, err := adm.ListEndOffsets(ctx, c.cfg.Topic)
		if err != nil {
			return 0, err
		}
		o, ok := ends.Lookup(c.cfg.Topic, id)
		switch {
		case !ok:
			return 0, fmt.Errorf("no end offset for partition %d of %s in the answer", id, c.cfg.Topic)
		case o.Err != nil:
			return 0, o.Err
		}
		return o.Offset, nil
	}
}
