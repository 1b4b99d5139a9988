package outbox_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/outbox"
)

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*outbox.Config)
		want   string // a fragment of the error naming the setting; empty: valid
	}{
		{"defaults", func(*outbox.Config) {}, ""},
		{"schema-qualified table", func(c *outbox.Config) { c.Table = "sender.transaction_outbox" }, ""},
		{"injection in table", func(c *outbox.Config) { c.Table = "t; DROP TABLE x" }, "outbox table"},
		{"quote in table", func(c *outbox.Config) { c.Table = `t"x` }, "outbox table"},
		{"three-part table", func(c *outbox.Config) { c.Table = "a.b.c" }, "outbox table"},
		{"table too long", func(c *outbox.Config) { c.Table = strings.Repeat("t", 64) }, "outbox table"},
		{"bad channel", func(c *outbox.Config) { c.Channel = "chan nel" }, "outbox channel"},
		{"missing topic", func(c *outbox.Config) { c.Topic = "" }, "outbox topic: required"},
		{"bad topic", func(c *outbox.Config) { c.Topic = "a/b" }, "outbox topic"},
		{"negative batch", func(c *outbox.Config) { c.BatchSize = -1 }, "outbox batch size"},
		{"negative poll", func(c *outbox.Config) { c.PollInterval = -time.Second }, "outbox poll interval"},
		{"negative write timeout", func(c *outbox.Config) { c.WriteTimeout = -1 }, "outbox write timeout"},
		{"write timeout below 1s", func(c *outbox.Config) { c.WriteTimeout = 500 * time.Millisecond }, "outbox write timeout"},
		{"huge message limit", func(c *outbox.Config) { c.MaxMessageBytes = 1 << 30 }, "outbox max message bytes"},
		{"negative transaction timeout", func(c *outbox.Config) { c.TransactionTimeout = -1 }, "outbox transaction timeout"},
		{"transaction timeout below two writes", func(c *outbox.Config) { c.WriteTimeout, c.TransactionTimeout = 10*time.Second, 15*time.Second }, "outbox transaction timeout"},
		{"transactional id", func(c *outbox.Config) { c.TransactionalID = "sci-relay.v1_a-b" }, ""},
		{"transactional id with space", func(c *outbox.Config) { c.TransactionalID = "sci relay" }, "outbox transactional id"},
		{"transactional id of dots", func(c *outbox.Config) { c.TransactionalID = ".." }, "outbox transactional id"},
		{"transactional id too long", func(c *outbox.Config) { c.TransactionalID = strings.Repeat("x", 250) }, "outbox transactional id"},
		{"max below min backoff", func(c *outbox.Config) { c.MinBackoff, c.MaxBackoff = time.Second, time.Millisecond }, "outbox max backoff"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := outbox.Config{Topic: "invoice-history"}
			tc.mutate(&c)
			c.SetDefaults()
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := outbox.Config{Topic: "t"}
	c.SetDefaults()
	if c.Table != outbox.DefaultTable || c.Channel != outbox.DefaultChannel || c.BatchSize != outbox.DefaultBatchSize ||
		c.TransactionTimeout != outbox.DefaultTransactionTimeout || c.TransactionalID != "" || c.LockKey == 0 {
		t.Fatalf("SetDefaults left %+v", c)
	}
	other := outbox.Config{Topic: "t", Table: "other_outbox"}
	other.SetDefaults()
	if other.LockKey == c.LockKey {
		t.Fatal("two tables got the same default lock key: their relays would exclude each other")
	}
}

func TestNewRejectsInvalidConfigAndMissingDependencies(t *testing.T) {
	if _, err := outbox.New(outbox.Config{}, nil, nil, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "outbox topic") {
		t.Fatalf("New without a topic = %v, want the topic named", err)
	}
	if _, err := outbox.New(outbox.Config{Topic: "t"}, nil, nil, zerolog.Nop()); err == nil {
		t.Fatal("New without a pool succeeded")
	}
}
