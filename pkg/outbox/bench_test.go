package outbox_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/outbox"
)

// envBenchBrokerPID names the broker's process (a local Apache Kafka), whose
// CPU the benchmarks then report too: transaction markers cost the broker.
const envBenchBrokerPID = "INVOICESYNC_BENCH_BROKER_PID"

// publishModes compares the relay's transaction per batch with a plain
// idempotent producer, on the same broker in the same run.
var publishModes = []struct {
	name  string
	apply func(*outbox.Relay)
}{
	{"transactional", func(*outbox.Relay) {}},
	{"idempotent", outbox.SetIdempotentOnly},
}

// BenchmarkRelayPublish measures draining pre-inserted events end to end:
// start, read, publish (acks=all), delete, until the outbox is empty; with
// full batches (a backlog) and with small ones (live traffic).
func BenchmarkRelayPublish(b *testing.B) {
	const events = 2000
	for _, batch := range []int{500, 10} {
		for _, mode := range publishModes {
			b.Run(fmt.Sprintf("batch=%d/%s", batch, mode.name), func(b *testing.B) {
				e := newEnv(b)
				ctx := context.Background()
				var cpu cpuMeter
				for b.Loop() {
					b.StopTimer()
					_, err := e.db.Pool.Exec(ctx, `INSERT INTO transaction_outbox
					        (aggregate_type, aggregate_id, event_type, version, payload)
					        SELECT 'bench', 'agg-' || (g % 100), 'bench.changed', g, '{"n": 1}'
					          FROM generate_series(1, $1) AS g`, events)
					if err != nil {
						b.Fatal(err)
					}
					r := e.relay(b, outbox.Config{BatchSize: batch})
					mode.apply(r)
					cpu.start()
					b.StartTimer()
					g := start(b, r)
					for e.pending(b) > 0 {
						time.Sleep(time.Millisecond)
					}
					b.StopTimer()
					cpu.stop()
					if err := g.Stop(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
				cpu.report(b, b.N*events, "event")
			})
		}
	}
}

// BenchmarkRelayLatency measures one event at a time, from its insert until
// the relay deleted it after publishing: the latency a quiet outbox sees.
func BenchmarkRelayLatency(b *testing.B) {
	for _, mode := range publishModes {
		b.Run(mode.name, func(b *testing.B) {
			e := newEnv(b)
			r := e.relay(b, outbox.Config{})
			mode.apply(r)
			start(b, r)
			insert(b, e.db.Pool, "warm-up", 1)
			waitFor(b, "the warm-up event", func() bool { return r.Stats().Batches == 1 })
			var cpu cpuMeter
			cpu.start()
			n := 0
			for b.Loop() {
				n++
				insert(b, e.db.Pool, "agg-"+strconv.Itoa(n%10), int64(n))
				for r.Stats().Batches < uint64(n+1) {
					time.Sleep(100 * time.Microsecond)
				}
			}
			cpu.stop()
			cpu.report(b, n, "op")
		})
	}
}

// cpuMeter sums the CPU time this process (and the broker, when
// envBenchBrokerPID names it) spends between start and stop.
type cpuMeter struct {
	self, broker, selfAt, brokerAt time.Duration
}

func (m *cpuMeter) start() { m.selfAt, m.brokerAt = selfCPU(), brokerCPU() }

func (m *cpuMeter) stop() {
	m.self += selfCPU() - m.selfAt
	m.broker += brokerCPU() - m.brokerAt
}

func (m *cpuMeter) report(b *testing.B, n int, unit string) {
	b.ReportMetric(float64(m.self.Nanoseconds())/float64(n), "cpu-ns/"+unit)
	if os.Getenv(envBenchBrokerPID) != "" {
		b.ReportMetric(float64(m.broker.Nanoseconds())/float64(n), "broker-cpu-ns/"+unit)
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// brokerCPU reads utime+stime of the broker's process from /proc (0 when
// not configured or unreadable).
func brokerCPU() time.Duration {
	pid := os.Getenv(envBenchBrokerPID)
	if pid == "" {
		return 0
	}
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after "pid (comm) "
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}
