package consume_test

import (
	"context"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// The next-generation group protocol (KIP-848, Protocol "consumer") works
// end to end: two members share the partitions, every record is handled,
// and every partition's offset is committed after it.
func TestConsumerProtocolHandlesAndCommitsEverything(t *testing.T) {
	k := testsupport.NewKafka(t)
	const partitions, perPartition = 3, 20
	topic := topics(t, k, "kip848", partitions)
	group := testsupport.Name("g")
	var mu sync.Mutex
	seen := map[string]int{}
	h := consume.BatchHandlerFunc(func(_ context.Context, recs []*kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			seen[string(r.Key)]++
		}
		return nil
	})
	cfg := testConfig(topic, group)
	cfg.Protocol = consume.ProtocolConsumer
	run(t, newConsumer(t, k, cfg, h, zerolog.Nop()))
	run(t, newConsumer(t, k, cfg, h, zerolog.Nop()))
	for p := range partitions {
		produce(t, k, topic, p, p*perPartition, perPartition)
	}
	waitFor(t, "every partition committed to its end", func() bool {
		for p := range partitions {
			if committed(t, k, group, topic, p) != perPartition {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != partitions*perPartition {
		t.Fatalf("handled %d distinct records, want %d", len(seen), partitions*perPartition)
	}
}
