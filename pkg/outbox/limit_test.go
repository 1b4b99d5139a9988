package outbox_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/outbox"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// A relay whose event limit does not fit under the topic's
// max.message.bytes would have every large event refused by the broker and
// retried forever: it refuses to start instead, naming both values.
func TestRelayRefusesALimitAboveTheTopicsMaxMessageBytes(t *testing.T) {
	e := newEnv(t)
	limit := "100000"
	topic := strings.ReplaceAll(testsupport.Name("small"), "_", "-")
	e.kafka.CreateTopicWithConfig(t, topic, 1, map[string]*string{"max.message.bytes": &limit})
	r, err := outbox.New(outbox.Config{Topic: topic}, e.db.Pool, e.kafka.Conn, zeroLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = r.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "100000") || !strings.Contains(err.Error(), "RELAY_MAX_MESSAGE_BYTES") {
		t.Fatalf("Run = %v, want an error naming the topic's max.message.bytes (100000) and RELAY_MAX_MESSAGE_BYTES", err)
	}

	// A limit that fits is accepted.
	fits, err := outbox.New(outbox.Config{Topic: topic, MaxMessageBytes: 90_000}, e.db.Pool, e.kafka.Conn, zeroLog(t))
	if err != nil {
		t.Fatal(err)
	}
	run := start(t, fits)
	waitFor(t, "the relay that fits to lead", func() bool { return fits.Stats().Leader })
	if err := run.Stop(); err != nil {
		t.Fatalf("Run with a limit under the topic's = %v", err)
	}
}
