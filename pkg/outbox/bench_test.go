package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/outbox"
)

// BenchmarkRelayPublish measures publishing pre-inserted events end to end:
// start, read, publish with acks=all, delete, until the outbox is empty.
func BenchmarkRelayPublish(b *testing.B) {
	const events = 2000
	e := newEnv(b)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		_, err := e.db.Pool.Exec(ctx, `INSERT INTO transaction_outbox
		        (aggregate_type, aggregate_id, event_type, version, payload)
		        SELECT 'bench', 'agg-' || (g % 100), 'bench.changed', g, '{"n": 1}'
		          FROM generate_series(1, $1) AS g`, events)
		if err != nil {
			b.Fatal(err)
		}
		r := e.relay(b, outbox.Config{})
		b.StartTimer()
		g := start(b, r)
		for e.pending(b) > 0 {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		if err := g.Stop(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}
