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
		"no fetch timeout":  {func(c *consume.Config) { c.FetchTimeout = -time.Second }, "fetch timeout"},
		"rebalance < drain": {func(c *consume.Config) { c.RebalanceTimeout = c.DrainTimeout }, "rebalance timeout"},
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
	if err := c.Validate(); err != nil || c.MaxWait != consume.DefaultMaxWait || c.FetchTimeout != 30*time.Second || c.MaxBackoff != 10*time.Second ||
		c.MinBackoff != 100*time.Millisecond || c.BatchSize != 500 || c.DLQTopic != dlq.Topic("t") ||
		c.BatchLinger <= 0 || c.BatchLinger > 2*time.Millisecond {
		t.Fatalf("defaults: %+v, Validate = %v", c, err)
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
