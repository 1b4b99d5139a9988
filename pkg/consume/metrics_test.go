package consume_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// The consumer's series follow what it did: batch sizes, retries and dead
// letters by class agree with Stats; each assigned partition has a lag
// gauge that grows while the partition is stuck on a batch, drops to 0 once
// it caught up, and is removed when the partition is revoked.
func TestMetricsFollowWhatTheConsumerDid(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "metrics", 2)
	group := testsupport.Name("g")
	produce(t, k, topic, 0, 0, 3)  // m0..m2: m1 fails once, m2 is poison
	produce(t, k, topic, 1, 10, 1) // m10 blocks until released

	var failedOnce atomic.Bool
	blocked, release := make(chan struct{}), make(chan struct{})
	h := consume.BatchHandlerFunc(func(ctx context.Context, msgs []*kgo.Record) error {
		for _, m := range msgs {
			switch string(m.Value) {
			case "m1":
				if failedOnce.CompareAndSwap(false, true) {
					return errors.New("database unreachable")
				}
			case "m2":
				return consume.Permanent(dlq.ClassSchema, errors.New("forms[0].totalAmount: not a number"))
			case "m10":
				select {
				case blocked <- struct{}{}:
				default:
				}
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return nil
	})
	reg := prometheus.NewRegistry()
	cfg := testConfig(topic, group)
	cfg.Metrics, cfg.LagInterval = reg, 20*time.Millisecond
	c := newConsumer(t, k, cfg, h, zerolog.Nop())
	stop := run(t, c)

	<-blocked
	produce(t, k, topic, 1, 11, 4) // arrive behind the stuck m10
	waitFor(t, "the lag of partition 1 to show the 4 waiting messages", func() bool {
		v, ok := lag(t, reg, topic, 1)
		return ok && v == 4
	})
	close(release)
	waitFor(t, "both partitions to catch up", func() bool {
		l0, ok0 := lag(t, reg, topic, 0)
		l1, ok1 := lag(t, reg, topic, 1)
		return ok0 && ok1 && l0 == 0 && l1 == 0 &&
			committed(t, k, group, topic, 0) == 3 && committed(t, k, group, topic, 1) == 5
	})

	s := c.Stats()
	batches, messages := histogram(t, reg, "invoicesync_consumer_batch_size")
	if batches != uint64(s.Batches) || messages != float64(s.Messages) || batches == 0 {
		t.Errorf("batch_size count %d sum %v, want the %d batches of %d messages in Stats", batches, messages, s.Batches, s.Messages)
	}
	for name, want := range map[string]float64{
		"invoicesync_consumer_retries_total":         float64(s.Retries),
		"invoicesync_consumer_commit_failures_total": float64(s.CommitFailures),
	} {
		if got, _ := value(t, reg, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if s.Retries < 1 {
		t.Errorf("Stats.Retries = %d, want at least the one transient failure", s.Retries)
	}
	for class, want := range map[string]float64{dlq.ClassSchema: 1, dlq.ClassDecode: 0} {
		if got, ok := value(t, reg, "invoicesync_consumer_dead_lettered_total", map[string]string{"class": class}); !ok || got != want {
			t.Errorf("dead_lettered_total{class=%q} = %v (present %t), want %v", class, got, ok, want)
		}
	}

	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	for p := range 2 {
		if v, ok := lag(t, reg, topic, p); ok {
			t.Errorf("lag of partition %d still reported (%v) after the partitions were revoked", p, v)
		}
	}
}

func lag(t *testing.T, reg *prometheus.Registry, topic string, partition int) (float64, bool) {
	t.Helper()
	return value(t, reg, "invoicesync_consumer_lag_messages", map[string]string{"topic": topic, "partition": strconv.Itoa(partition)})
}

// value is the value of the counter or gauge name whose labels include
// labels, and whether it exists.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	s, ok := find(t, reg, name, labels)
	return s.value, ok
}

// histogram is the sample count and sum of the histogram name.
func histogram(t *testing.T, reg *prometheus.Registry, name string) (uint64, float64) {
	t.Helper()
	s, ok := find(t, reg, name, nil)
	if !ok {
		t.Fatalf("no series %s", name)
	}
	return s.count, s.sum
}

// sample is one gathered series: a counter's or gauge's value, or a
// histogram's count and sum.
type sample struct {
	value float64
	count uint64
	sum   float64
}

// find gathers reg and returns the first series of name whose labels
// include labels.
func find(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (sample, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			return sample{value: m.GetCounter().GetValue() + m.GetGauge().GetValue(),
				count: m.GetHistogram().GetSampleCount(), sum: m.GetHistogram().GetSampleSum()}, true
		}
	}
	return sample{}, false
}
