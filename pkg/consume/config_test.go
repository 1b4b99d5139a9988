package consume_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/dlq"
)

func TestConfigValidateNamesTheSetting(t *testing.T) {
	cases := map[string]struct {
		mutate func(*consume.Config)
		want   string
	}{
		"no topic":          {func(c *consume.Config) { c.Topic = "" }, "topic"},
		"no group":          {func(c *consume.Config) { c.GroupID = "" }, "group id"},
		"dlq is the topic":  {func(c *consume.Config) { c.DLQTopic = c.Topic }, "dead-letter topic"},
		"no batch":          {func(c *consume.Config) { c.BatchSize = -1 }, "batch size"},
		"negative linger":   {func(c *consume.Config) { c.BatchLinger = -time.Millisecond }, "batch linger"},
		"backoff inverted":  {func(c *consume.Config) { c.MaxBackoff = time.Millisecond }, "max backoff"},
		"short session":     {func(c *consume.Config) { c.SessionTimeout = time.Millisecond }, "session timeout"},
		"negative wait":     {func(c *consume.Config) { c.MaxWait = -time.Second }, "max wait"},
		"rebalance < drain": {func(c *consume.Config) { c.RebalanceTimeout = c.DrainTimeout }, "rebalance timeout"},
		"slow heartbeat":    {func(c *consume.Config) { c.HeartbeatInterval = c.SessionTimeout / 2 }, "heartbeat interval"},
		"no heartbeat":      {func(c *consume.Config) { c.HeartbeatInterval = -time.Second }, "heartbeat interval"},
		"unknown protocol":  {func(c *consume.Config) { c.Protocol = "range" }, "group protocol"},
		"bad instance id":   {func(c *consume.Config) { c.InstanceID = "pod 1" }, "group instance id"},
		"long instance id":  {func(c *consume.Config) { c.InstanceID = strings.Repeat("p", 250) }, "group instance id"},
		"huge max bytes":    {func(c *consume.Config) { c.MaxBytes = 1 << 30 }, "max bytes"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := consume.Config{Topic: "t", GroupID: "g"}
			c.SetDefaults()
			tc.mutate(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error naming %q", err, tc.want)
			}
		})
	}
	c := consume.Config{Topic: "t", GroupID: "g"}
	c.SetDefaults()
	if err := c.Validate(); err != nil || c.MaxWait != consume.DefaultMaxWait || c.MaxBackoff != 10*time.Second ||
		c.SessionTimeout != 6*time.Second || c.HeartbeatInterval != time.Second || c.RebalanceTimeout != 30*time.Second ||
		c.Protocol != consume.ProtocolCooperativeSticky || c.InstanceID != "" ||
		c.MinBackoff != 100*time.Millisecond || c.BatchSize != 500 || c.DLQTopic != dlq.Topic("t") ||
		c.BatchLinger <= 0 || c.BatchLinger > 2*time.Millisecond {
		t.Fatalf("defaults: %+v, Validate = %v", c, err)
	}
	// A crashed member's partitions must move within 10s: a session and
	// a heartbeat to notice, and a rebalance.
	if c.SessionTimeout+c.HeartbeatInterval > 8*time.Second {
		t.Fatalf("default session timeout %v + heartbeat %v leave too little of 10s for the rebalance", c.SessionTimeout, c.HeartbeatInterval)
	}
	// A short session gets a shorter heartbeat by default; static members
	// and the next-generation protocol are accepted.
	c = consume.Config{Topic: "t", GroupID: "g", SessionTimeout: 1500 * time.Millisecond,
		InstanceID: "receiver-0.pod_1", Protocol: consume.ProtocolConsumer}
	c.SetDefaults()
	if err := c.Validate(); err != nil || c.HeartbeatInterval != 500*time.Millisecond {
		t.Fatalf("short session: heartbeat %v, Validate = %v", c.HeartbeatInterval, err)
	}
}

func TestPermanentMarksWithTheClassWithoutChangingTheText(t *testing.T) {
	cause := errors.New("payload: forms[0].totalAmount: not a number")
	err := fmt.Errorf("handle: %w", consume.Permanent(dlq.ClassSchema, cause))
	if !errors.Is(err, consume.ErrPermanent) || !errors.Is(err, cause) || err.Error() != "handle: "+cause.Error() {
		t.Fatalf("Permanent: %q, is permanent %t, is cause %t", err, errors.Is(err, consume.ErrPermanent), errors.Is(err, cause))
	}
	if got := consume.ClassOf(err); got != dlq.ClassSchema {
		t.Fatalf("ClassOf = %q, want %q", got, dlq.ClassSchema)
	}
	if consume.ClassOf(cause) != "" || consume.ClassOf(fmt.Errorf("x: %w", consume.ErrPermanent)) != consume.ClassUnknown {
		t.Fatal("ClassOf: want empty for a transient error and ClassUnknown for a bare ErrPermanent")
	}
	if consume.Permanent(dlq.ClassSchema, nil) != nil || errors.Is(cause, consume.ErrPermanent) {
		t.Fatal("Permanent(nil) must be nil and must not mark its argument")
	}
}
