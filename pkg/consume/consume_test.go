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
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/logging"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// A transiently failing message is retried in place: nothing after it is
// handled, nothing is dead-lettered and its offset is not committed until
// the handler succeeds; the per-message logger in the context names it.
func TestTransientFailureIsRetriedInPlaceAndCommittedAfterSuccess(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "retry", 1)
	group := testsupport.Name("g")
	produce(t, k, topic, 0, 0, 3)

	var seen recorder
	var failures atomic.Int32
	release := make(chan struct{})
	h := consume.BatchHandlerFunc(func(ctx context.Context, msgs []*kgo.Record) error {
		seen.add(msgs)
		if msgs[0].Offset == 0 {
			select {
			case <-release:
			default:
				failures.Add(1)
				logging.Ctx(ctx).Info().Msg("from the handler")
				return errors.New("database unreachable")
			}
		}
		return nil
	})
	logs := &syncBuffer{}
	cfg := testConfig(topic, group)
	cfg.BatchSize = 1
	c := newConsumer(t, k, cfg, h, zerolog.New(logs))
	stop := run(t, c)

	waitFor(t, "three failed attempts", func() bool { return failures.Load() >= 3 })
	if off := committed(t, k, group, topic, 0); off >= 0 {
		t.Fatalf("committed offset %d while message 0 keeps failing", off)
	}
	close(release)
	waitFor(t, "all three committed", func() bool { return committed(t, k, group, topic, 0) == 3 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}

	n := int(failures.Load())
	var want [][]int64
	for range n + 1 {
		want = append(want, []int64{0})
	}
	want = append(want, []int64{1}, []int64{2})
	if got := seen.all(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("handled batches %v, want %v (message 0 retried in place, then 1, 2)", got, want)
	}
	if s := c.Stats(); s.Retries != int64(n) || s.DeadLettered != 0 || s.Messages != 3 {
		t.Fatalf("stats %+v, want %d retries, 3 messages, nothing dead-lettered", s, n)
	}
	out := logs.String()
	for _, s := range []string{`"event_id":"event-0"`, `"aggregate_id":"agg-0"`, `"partition":0`,
		`"offset":0`, `"topic":"` + topic + `"`, "database unreachable", "from the handler"} {
		if !strings.Contains(out, s) {
			t.Errorf("logs lack %s:\n%s", s, out)
		}
	}
}

// A stopped consumer leaves its failing message uncommitted; the next member
// of the group resumes exactly there, without handling committed messages.
func TestRestartResumesAtTheFirstUncommittedMessage(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "restart", 1)
	group := testsupport.Name("g")
	produce(t, k, topic, 0, 0, 4)
	cfg := testConfig(topic, group)
	cfg.BatchSize = 1

	var failures atomic.Int32
	stop := run(t, newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(_ context.Context, msgs []*kgo.Record) error {
		if msgs[0].Offset == 2 {
			failures.Add(1)
			return errors.New("transient")
		}
		return nil
	}), zerolog.Nop()))
	waitFor(t, "message 2 failing twice", func() bool { return failures.Load() >= 2 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if off := committed(t, k, group, topic, 0); off != 2 {
		t.Fatalf("committed offset %d after handling 0 and 1 and failing 2, want 2", off)
	}

	var second recorder
	stop = run(t, newConsumer(t, k, testConfig(topic, group), consume.BatchHandlerFunc(func(_ context.Context, msgs []*kgo.Record) error {
		second.add(msgs)
		return nil
	}), zerolog.Nop()))
	waitFor(t, "all four committed", func() bool { return committed(t, k, group, topic, 0) == 4 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := slices.Concat(second.all()...); !slices.Equal(got, []int64{2, 3}) {
		t.Fatalf("restarted member handled %v, want [2 3] (committed ones skipped, uncommitted redelivered)", got)
	}
}

// Cancelling Run lets the batch in flight finish and be committed; a
// handler that does not finish within the drain timeout is abandoned,
// uncommitted.
func TestShutdownDrainsTheBatchInFlight(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "drain", 1)
	produce(t, k, topic, 0, 0, 2)

	t.Run("finishes and commits", func(t *testing.T) {
		group := testsupport.Name("g")
		entered, release := make(chan []*kgo.Record, 1), make(chan struct{})
		var calls atomic.Int32
		stop := run(t, newConsumer(t, k, testConfig(topic, group), consume.BatchHandlerFunc(func(ctx context.Context, msgs []*kgo.Record) error {
			if calls.Add(1) == 1 {
				entered <- msgs
				<-release
				return ctx.Err() // still alive: cancellation of Run does not reach it
			}
			return nil
		}), zerolog.Nop()))
		inFlight := <-entered
		done := make(chan error, 1)
		go func() { done <- stop() }()
		time.Sleep(50 * time.Millisecond) // let the cancellation land first
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		want := inFlight[len(inFlight)-1].Offset + 1
		if off := committed(t, k, group, topic, 0); off != want || calls.Load() != 1 {
			t.Fatalf("committed offset %d after %d batches, want %d (the batch in flight, nothing after it)", off, calls.Load(), want)
		}
	})
	t.Run("abandons after the drain timeout", func(t *testing.T) {
		group := testsupport.Name("g")
		entered := make(chan struct{})
		cfg := testConfig(topic, group)
		cfg.DrainTimeout = 100 * time.Millisecond
		stop := run(t, newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(ctx context.Context, msgs []*kgo.Record) error {
			close(entered)
			<-ctx.Done()
			return ctx.Err()
		}), zerolog.Nop()))
		<-entered
		if err := stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if off := committed(t, k, group, topic, 0); off >= 0 {
			t.Fatalf("committed offset %d for an abandoned batch", off)
		}
	})
}

// A partition whose handler keeps failing does not hold back another: the
// other is handled and committed meanwhile, and the failing one catches up
// once its dependency is back.
func TestPartitionsProgressIndependently(t *testing.T) {
	for _, merge := range []bool{false, true} {
		t.Run(fmt.Sprintf("merge partitions %t", merge), func(t *testing.T) {
			k := testsupport.NewKafka(t)
			topic := topics(t, k, "independent", 2)
			group := testsupport.Name("g")
			produce(t, k, topic, 0, 0, 3)
			produce(t, k, topic, 1, 10, 3)

			var blockedAttempts atomic.Int32
			var healthy atomic.Bool
			h := consume.BatchHandlerFunc(func(_ context.Context, msgs []*kgo.Record) error {
				if !healthy.Load() && slices.ContainsFunc(msgs, func(m *kgo.Record) bool { return m.Partition == 0 }) {
					blockedAttempts.Add(1)
					return errors.New("partition 0's database is down")
				}
				return nil
			})
			cfg := testConfig(topic, group)
			cfg.MergePartitions = merge
			c := newConsumer(t, k, cfg, h, zerolog.Nop())
			stop := run(t, c)

			waitFor(t, "partition 1 committed to its end", func() bool { return committed(t, k, group, topic, 1) == 3 })
			waitFor(t, "partition 0 retried", func() bool { return blockedAttempts.Load() >= 2 })
			if off := committed(t, k, group, topic, 0); off >= 0 {
				t.Fatalf("partition 0 committed %d while its handler fails", off)
			}
			healthy.Store(true)
			waitFor(t, "partition 0 committed to its end", func() bool { return committed(t, k, group, topic, 0) == 3 })
			if err := stop(); err != nil {
				t.Fatalf("Run = %v", err)
			}
			if s := c.Stats(); s.DeadLettered != 0 || s.Retries < 2 {
				t.Fatalf("stats %+v: want retries and nothing dead-lettered", s)
			}
		})
	}
}

// poisonHandler fails permanently on any batch holding the message keyed
// poison and records the offsets it applied.
func poisonHandler(poison string, applied *recorder) consume.BatchHandler {
	return consume.BatchHandlerFunc(func(_ context.Context, msgs []*kgo.Record) error {
		for _, m := range msgs {
			if string(m.Key) == poison {
				return fmt.Errorf("handle: %w", consume.Permanent(dlq.ClassSchema,
					fmt.Errorf("message %s: forms[0].fileName: is required", poison)))
			}
		}
		applied.add(msgs)
		return nil
	})
}

// A batch with a poison message in the middle is split: the messages before
// and after it are applied, it alone is dead-lettered (original key, value
// and headers plus the dlq-* headers), and the partition moves on.
func TestPermanentFailureDeadLettersOnlyThePoisonOfABatch(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "poison", 1)
	group := testsupport.Name("g")
	produce(t, k, topic, 0, 0, 5) // message 2 is the poison

	var applied, batches recorder
	poison := poisonHandler("2", &applied)
	cfg := testConfig(topic, group)
	cfg.BatchLinger = 500 * time.Millisecond // all five arrive as one batch
	c := newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(ctx context.Context, msgs []*kgo.Record) error {
		batches.add(msgs)
		return poison.HandleBatch(ctx, msgs)
	}), zerolog.Nop())
	stop := run(t, c)
	waitFor(t, "all five committed", func() bool { return committed(t, k, group, topic, 0) == 5 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}

	if first := batches.all()[0]; !slices.Equal(first, []int64{0, 1, 2, 3, 4}) {
		t.Fatalf("first batch %v, want all five (the test needs the poison inside a batch)", first)
	}
	if got := slices.Concat(applied.all()...); !slices.Equal(got, []int64{0, 1, 3, 4}) {
		t.Fatalf("applied %v, want [0 1 3 4] each once", got)
	}
	dead := k.ReadAll(t, dlq.Topic(topic), 1, 30*time.Second)
	if len(dead) != 1 {
		t.Fatalf("dead-letter topic holds %d messages, want 1", len(dead))
	}
	assertDeadLetter(t, dead[0], message(2), topic, 2, dlq.ClassSchema, "forms[0].fileName: is required", group)
	if s := c.Stats(); s.DeadLettered != 1 || s.Messages != 4 {
		t.Fatalf("stats %+v, want 4 applied and 1 dead-lettered", s)
	}
}

// assertDeadLetter checks that dead is orig, from topic at offset, with
// the dlq-* headers of a first failure of class naming reason.
func assertDeadLetter(t *testing.T, dead, orig *kgo.Record, topic string, offset int64, class, reason, group string) {
	t.Helper()
	e, err := dlq.Parse(dead)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Key) != string(orig.Key) || string(e.Value) != string(orig.Value) || !slices.EqualFunc(e.Headers, orig.Headers, sameHeader) {
		t.Errorf("dead letter carries key %q value %q headers %v, want the original %q %q %v",
			e.Key, e.Value, e.Headers, orig.Key, orig.Value, orig.Headers)
	}
	if e.Class != class || !strings.Contains(e.Reason, reason) || e.OriginalTopic != topic || e.OriginalPartition != 0 ||
		e.OriginalOffset != offset || e.Attempt != 1 || e.Group != group || e.FailedAt.IsZero() ||
		time.Since(e.FailedAt) > time.Hour {
		t.Errorf("dead letter %+v: want class %s, reason naming %q, from %s/0@%d, attempt 1, group %s, failed just now",
			e, class, reason, topic, offset, group)
	}
}

func TestRunFailsFast(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := k.Topic(t, "nodlq", 1) // its dead-letter topic is missing
	nop := consume.BatchHandlerFunc(func(context.Context, []*kgo.Record) error { return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("wrong credentials", func(t *testing.T) {
		cfg := k.Config
		cfg.Password = "wrong"
		conn, err := kafkasec.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := consume.New(consume.Config{Topic: topic, GroupID: "g"}, conn, nop, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		err = c.Run(ctx)
		if !errors.Is(err, kafkasec.ErrAuthentication) || !strings.Contains(err.Error(), cfg.Username) {
			t.Fatalf("Run = %v, want an authentication error naming the user", err)
		}
	})
	t.Run("missing dead-letter topic", func(t *testing.T) {
		c := newConsumer(t, k, consume.Config{Topic: topic, GroupID: "g"}, nop, zerolog.Nop())
		if err := c.Run(ctx); err == nil || !strings.Contains(err.Error(), dlq.Topic(topic)) {
			t.Fatalf("Run = %v, want an error naming the missing topic %s", err, dlq.Topic(topic))
		}
	})
}

func sameHeader(a, b kgo.RecordHeader) bool {
	return a.Key == b.Key && string(a.Value) == string(b.Value)
}

// deleteRecords deletes the messages of a partition below offset, as
// retention would, through the broker's DeleteRecords API.
func deleteRecords(t *testing.T, k *testsupport.Kafka, topic string, partition int, offset int64) {
	t.Helper()
	adm, err := k.Conn.Admin()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: int32(partition), At: offset}) //nolint:gosec // test sizes
	resp, err := adm.DeleteRecords(ctx, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete records of %s/%d: %v", topic, partition, err)
	}
}

// When retention deleted messages the group had not consumed yet, the
// consumer resumes at the partition's first offset and says, at error
// level, how many messages were lost.
func TestOffsetDeletedByRetentionResumesAtTheFirstOffsetAndSaysSo(t *testing.T) {
	k := testsupport.NewKafka(t)
	topic := topics(t, k, "retention", 1)
	group := testsupport.Name("g")
	produce(t, k, topic, 0, 0, 10)
	cfg := testConfig(topic, group)
	cfg.BatchSize = 1
	stop := run(t, newConsumer(t, k, cfg, consume.BatchHandlerFunc(func(_ context.Context, msgs []*kgo.Record) error {
		if msgs[0].Offset >= 3 {
			return errors.New("not yet")
		}
		return nil
	}), zerolog.Nop()))
	waitFor(t, "offsets 0-2 committed", func() bool { return committed(t, k, group, topic, 0) == 3 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	deleteRecords(t, k, topic, 0, 6)

	var applied recorder
	logs := &syncBuffer{}
	stop = run(t, newConsumer(t, k, testConfig(topic, group), consume.BatchHandlerFunc(func(_ context.Context, msgs []*kgo.Record) error {
		applied.add(msgs)
		return nil
	}), zerolog.New(logs)))
	waitFor(t, "all ten committed", func() bool { return committed(t, k, group, topic, 0) == 10 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := slices.Concat(applied.all()...); !slices.Equal(got, []int64{6, 7, 8, 9}) {
		t.Fatalf("applied %v, want [6 7 8 9]: what retention left", got)
	}
	out := logs.String()
	if !strings.Contains(out, `"level":"error"`) || !strings.Contains(out, "deleted by retention") || !strings.Contains(out, `"lost_messages":3`) {
		t.Fatalf("no error log naming the 3 lost messages:\n%s", out)
	}
}
