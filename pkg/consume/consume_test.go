package consume_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/logging"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

func newConsumer(t *testing.T, k *testsupport.Kafka, topic, group string, h consume.Handler, log zerolog.Logger) *consume.Consumer {
	t.Helper()
	c, err := consume.New(consume.Config{
		Topic: topic, GroupID: group, SessionTimeout: 6 * time.Second,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}, k.Conn, h, log)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A failing message is retried in place: nothing after it is handled and
// its offset is not committed until the handler succeeds; the per-message
// logger in the context names the event.
func TestFailingMessageIsRetriedInPlaceAndCommittedAfterSuccess(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := k.Topic(t, "retry", 1)
	group := testsupport.Name("g")
	produce(t, k, topic, 0, 3)

	var attempts recorder
	var failures atomic.Int32
	release := make(chan struct{})
	h := consume.HandlerFunc(func(ctx context.Context, m kafka.Message) error {
		attempts.add(m.Offset)
		if m.Offset == 0 {
			select {
			case <-release:
			default:
				failures.Add(1)
				logging.Ctx(ctx).Info().Msg("from the handler")
				return consume.Permanent(errors.New("undecodable payload"))
			}
		}
		return nil
	})
	logs := &syncBuffer{}
	stop := run(t, newConsumer(t, k, topic, group, h, zerolog.New(logs)))

	waitFor(t, "three failed attempts", func() bool { return failures.Load() >= 3 })
	if off := committed(t, k, group, topic); off >= 0 {
		t.Fatalf("committed offset %d while message 0 keeps failing", off)
	}
	close(release)
	waitFor(t, "all three committed", func() bool { return committed(t, k, group, topic) == 3 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}

	got := attempts.offsets()
	n := int(failures.Load())
	want := append(slices.Repeat([]int64{0}, n+1), 1, 2)
	if !slices.Equal(got, want) {
		t.Fatalf("handled offsets %v, want %v (message 0 retried in place, then 1, 2)", got, want)
	}
	out := logs.String()
	for _, s := range []string{`"event_id":"event-0"`, `"aggregate_id":"agg-0"`, `"partition":0`,
		`"offset":0`, `"topic":"` + topic + `"`, `"permanent":true`, "undecodable payload", "from the handler"} {
		if !strings.Contains(out, s) {
			t.Errorf("logs lack %s:\n%s", s, out)
		}
	}
}

// A stopped consumer leaves its failing message uncommitted; the next member
// of the group resumes exactly there, without handling committed messages.
func TestRestartResumesAtTheFirstUncommittedMessage(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := k.Topic(t, "restart", 1)
	group := testsupport.Name("g")
	produce(t, k, topic, 0, 4)

	var first recorder
	var failures atomic.Int32
	stop := run(t, newConsumer(t, k, topic, group, consume.HandlerFunc(func(_ context.Context, m kafka.Message) error {
		first.add(m.Offset)
		if m.Offset == 2 {
			failures.Add(1)
			return errors.New("transient")
		}
		return nil
	}), zerolog.Nop()))
	waitFor(t, "message 2 failing twice", func() bool { return failures.Load() >= 2 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if off := committed(t, k, group, topic); off != 2 {
		t.Fatalf("committed offset %d after handling 0 and 1 and failing 2, want 2", off)
	}

	var second recorder
	stop = run(t, newConsumer(t, k, topic, group, consume.HandlerFunc(func(_ context.Context, m kafka.Message) error {
		second.add(m.Offset)
		return nil
	}), zerolog.Nop()))
	waitFor(t, "all four committed", func() bool { return committed(t, k, group, topic) == 4 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := second.offsets(); !slices.Equal(got, []int64{2, 3}) {
		t.Fatalf("restarted member handled %v, want [2 3] (committed ones skipped, uncommitted redelivered)", got)
	}
}

// Cancelling Run lets the message in flight finish and be committed; a
// handler that does not finish within the drain timeout is abandoned,
// uncommitted.
func TestShutdownDrainsTheMessageInFlight(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := k.Topic(t, "drain", 1)
	produce(t, k, topic, 0, 2)

	t.Run("finishes and commits", func(t *testing.T) {
		group := testsupport.Name("g")
		entered, release := make(chan struct{}), make(chan struct{})
		stop := run(t, newConsumer(t, k, topic, group, consume.HandlerFunc(func(ctx context.Context, m kafka.Message) error {
			if m.Offset == 0 {
				close(entered)
				<-release
				return ctx.Err() // still alive: cancellation of Run does not reach it
			}
			return nil
		}), zerolog.Nop()))
		<-entered
		done := make(chan error, 1)
		go func() { done <- stop() }()
		time.Sleep(50 * time.Millisecond) // let the cancellation land first
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if off := committed(t, k, group, topic); off != 1 {
			t.Fatalf("committed offset %d, want 1 (in-flight message finished, nothing after it)", off)
		}
	})
	t.Run("abandons after the drain timeout", func(t *testing.T) {
		group := testsupport.Name("g")
		entered := make(chan struct{})
		c, err := consume.New(consume.Config{Topic: topic, GroupID: group, DrainTimeout: 100 * time.Millisecond, SessionTimeout: 6 * time.Second},
			k.Conn, consume.HandlerFunc(func(ctx context.Context, m kafka.Message) error {
				close(entered)
				<-ctx.Done()
				return ctx.Err()
			}), zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		stop := run(t, c)
		<-entered
		if err := stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if off := committed(t, k, group, topic); off >= 0 {
			t.Fatalf("committed offset %d for an abandoned message", off)
		}
	})
}

func TestRunFailsFastOnWrongCredentials(t *testing.T) {
	k := testsupport.NewKafka(t)
	cfg := k.Config
	cfg.Password = "wrong"
	conn, err := kafkasec.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := consume.New(consume.Config{Topic: "t", GroupID: "g"}, conn,
		consume.HandlerFunc(func(context.Context, kafka.Message) error { return nil }), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = c.Run(ctx)
	if !errors.Is(err, kafkasec.ErrAuthentication) || !strings.Contains(err.Error(), cfg.Username) {
		t.Fatalf("Run = %v, want an authentication error naming the user", err)
	}
}

func TestConfigValidateNamesTheSetting(t *testing.T) {
	cases := map[string]struct {
		mutate func(*consume.Config)
		want   string
	}{
		"no topic":         {func(c *consume.Config) { c.Topic = "" }, "topic"},
		"no group":         {func(c *consume.Config) { c.GroupID = "" }, "group id"},
		"backoff inverted": {func(c *consume.Config) { c.MaxBackoff = time.Millisecond }, "max backoff"},
		"short session":    {func(c *consume.Config) { c.SessionTimeout = time.Millisecond }, "session timeout"},
		"negative wait":    {func(c *consume.Config) { c.MaxWait = -time.Second }, "max wait"},
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
	if err := c.Validate(); err != nil || c.MaxWait != 100*time.Millisecond || c.MaxBackoff != 10*time.Second {
		t.Fatalf("defaults: %+v, Validate = %v", c, err)
	}
}

func TestPermanentMarksWithoutChangingTheText(t *testing.T) {
	cause := errors.New("payload: forms[0].totalAmount: not a number")
	err := fmt.Errorf("handle: %w", consume.Permanent(cause))
	if !errors.Is(err, consume.ErrPermanent) || !errors.Is(err, cause) || err.Error() != "handle: "+cause.Error() {
		t.Fatalf("Permanent: %q, is permanent %t, is cause %t", err, errors.Is(err, consume.ErrPermanent), errors.Is(err, cause))
	}
	if consume.Permanent(nil) != nil || errors.Is(cause, consume.ErrPermanent) {
		t.Fatal("Permanent(nil) must be nil and must not mark its argument")
	}
}
