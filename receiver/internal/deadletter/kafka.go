package deadletter

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
)

// KafkaSource reads a dead-letter topic without a consumer group, so reading
// it changes nothing: it lists the partitions' offsets with admin calls,
// then reads each partition from an exact offset up to the end it had when
// listed. It reads committed data only (read_committed): records of aborted
// transactions and transaction markers are skipped.
type KafkaSource struct {
	conn  *kafkasec.Conn
	topic string

	// ListTimeout bounds each admin call (partitions and their offsets).
	// Default: the connection's dial timeout (KAFKA_DIAL_TIMEOUT).
	ListTimeout time.Duration
	// StallTimeout is how long a read may wait for the broker to answer a
	// fetch before it fails; a long read that keeps getting answers is not
	// cut short. Default 30s.
	StallTimeout time.Duration
}

// fetchMaxWait is how long the broker holds a fetch that has nothing to
// return; emptyAnswers such answers in a row end a partition's read.
const (
	fetchMaxWait = 500 * time.Millisecond
	emptyAnswers = 3
)

// NewKafkaSource reads topic through conn.
func NewKafkaSource(conn *kafkasec.Conn, topic string) *KafkaSource {
	return &KafkaSource{conn: conn, topic: topic, ListTimeout: conn.Config().DialTimeout, StallTimeout: 30 * time.Second}
}

// span is the offsets of one partition: [first, end).
type span struct {
	partition  int
	first, end int64
}

// Scan implements Source. Partitions are read one after the other, each in
// offset order.
func (s *KafkaSource) Scan(ctx context.Context, fn func(*kgo.Record) error) error {
	spans, err := s.spans(ctx)
	if err != nil {
		return err
	}
	for _, sp := range spans {
		if err := s.scanPartition(ctx, sp, fn); err != nil {
			return err
		}
	}
	return nil
}

// Fetch implements Source.
func (s *KafkaSource) Fetch(ctx context.Context, partition int, offset int64) (*kgo.Record, error) {
	spans, err := s.spans(ctx)
	if err != nil {
		return nil, err
	}
	id := idOf(partition, offset)
	if partition >= len(spans) {
		return nil, fmt.Errorf("%w %s in %s: partition %d does not exist (the topic has partitions 0 to %d)",
			ErrNotFound, id, s.topic, partition, len(spans)-1)
	}
	sp := spans[partition]
	if offset < sp.first || offset >= sp.end {
		return nil, fmt.Errorf("%w %s in %s: partition %d holds offsets %s",
			ErrNotFound, id, s.topic, partition, sp.describe())
	}
	var found *kgo.Record
	sp.first, sp.end = offset, offset+1
	err = s.read(ctx, sp, func(r *kgo.Record) error {
		found = r
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	switch {
	case found == nil || found.Offset > offset:
		return nil, fmt.Errorf("%w %s in %s: no message at that offset (deleted by retention, compacted away, "+
			"or part of an aborted transaction)", ErrNotFound, id, s.topic)
	case found.Attrs.IsControl():
		return nil, fmt.Errorf("%w %s in %s: that offset holds a transaction marker, not a message", ErrNotFound, id, s.topic)
	}
	return found, nil
}

// errStop ends a read early without an error.
var errStop = errors.New("stop")

func (sp span) describe() string {
	if sp.first >= sp.end {
		return "none (it is empty)"
	}
	return fmt.Sprintf("%d to %d", sp.first, sp.end-1)
}

// spans returns the partitions of the topic, by id, with their offsets now:
// from the log start to the last stable offset (the end a read_committed
// reader can reach).
func (s *KafkaSource) spans(ctx context.Context) ([]span, error) {
	adm, err := s.conn.Admin()
	if err != nil {
		return nil, err
	}
	list := func(what string, fn func(context.Context, ...string) (kadm.ListedOffsets, error)) (kadm.ListedOffsets, error) {
		lctx, cancel := context.WithTimeout(ctx, s.ListTimeout)
		defer cancel()
		l, err := fn(lctx, s.topic)
		if err != nil {
			if lctx.Err() != nil && ctx.Err() == nil {
				err = fmt.Errorf("no answer within %s (KAFKA_DIAL_TIMEOUT): %w", s.ListTimeout, err)
			}
			return nil, fmt.Errorf("%s offsets of %s: %w", what, s.topic, s.conn.Explain("", err))
		}
		return l, nil
	}
	starts, err := list("start", adm.ListStartOffsets)
	if err != nil {
		return nil, err
	}
	ends, err := list("end", adm.ListCommittedOffsets)
	if err != nil {
		return nil, err
	}
	if o, ok := starts.Lookup(s.topic, -1); ok || len(starts[s.topic]) == 0 {
		return nil, fmt.Errorf("dead-letter topic %s does not exist (%v)", s.topic, o.Err)
	}
	spans := make([]span, len(starts[s.topic]))
	for i := range spans {
		st, ok1 := starts.Lookup(s.topic, int32(i)) //nolint:gosec // partition counts fit
		en, ok2 := ends.Lookup(s.topic, int32(i))   //nolint:gosec // partition counts fit
		for _, o := range []kadm.ListedOffset{st, en} {
			if o.Err != nil {
				return nil, fmt.Errorf("offsets of %s/%d: %w", s.topic, i, s.conn.Explain("", o.Err))
			}
		}
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("offsets of %s/%d: the broker did not list them", s.topic, i)
		}
		spans[i] = span{partition: i, first: st.Offset, end: en.Offset}
	}
	return spans, nil
}

// scanPartition hands fn the messages of [sp.first, sp.end), transaction
// markers left out.
func (s *KafkaSource) scanPartition(ctx context.Context, sp span, fn func(*kgo.Record) error) error {
	return s.read(ctx, sp, func(r *kgo.Record) error {
		if r.Attrs.IsControl() {
			return nil
		}
		return fn(r)
	})
}

// read fetches the partition from sp.first and hands fn every record below
// sp.end, transaction markers included (so the reader sees how far it got).
// It ends at sp.end, or when the broker answered emptyAnswers fetches in a
// row with nothing to hand over: what is left below sp.end then is records
// of aborted transactions or was deleted by retention since the offsets were
// listed. An offset deleted since then is skipped: the read resumes at the
// log start.
func (s *KafkaSource) read(ctx context.Context, sp span, fn func(*kgo.Record) error) error {
	if sp.first >= sp.end {
		return nil
	}
	answers := &fetchAnswers{}
	cl, err := s.conn.NewClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: {int32(sp.partition): kgo.NewOffset().At(sp.first)}}), //nolint:gosec // partition ids fit
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.WithHooks(answers),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	where := fmt.Sprintf("%s/%d", s.topic, sp.partition)
	seen := answers.n.Load() // answers counted since the last record handed over
	lastAnswer, lastCount := time.Now(), seen
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*fetchMaxWait)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %w", where, err)
		}
		for _, fe := range fs.Errors() {
			var loss *kgo.ErrDataLoss
			if errors.Is(fe.Err, context.DeadlineExceeded) || errors.As(fe.Err, &loss) {
				continue // a poll that timed out; a reset the client reports and recovers from
			}
			return fmt.Errorf("read %s: %w", where, s.conn.Explain("", fe.Err))
		}
		got := false
		var stop error
		fs.EachRecord(func(r *kgo.Record) {
			if stop != nil || r.Offset >= sp.end {
				stop = errStop
				return
			}
			got = true
			stop = fn(r)
			if stop == nil && r.Offset+1 >= sp.end {
				stop = errStop
			}
		})
		if stop != nil {
			if errors.Is(stop, errStop) {
				stop = nil
			}
			return stop
		}
		now, n := time.Now(), answers.n.Load()
		if got {
			seen = n
		} else if n-seen >= emptyAnswers {
			return nil
		}
		if n != lastCount {
			lastAnswer, lastCount = now, n
		} else if now.Sub(lastAnswer) > s.StallTimeout {
			return fmt.Errorf("read %s: the broker did not answer a fetch within %s", where, s.StallTimeout)
		}
	}
}

// fetchAnswers counts the fetch responses a client read without error.
type fetchAnswers struct{ n atomic.Int64 }

// OnBrokerRead implements kgo.HookBrokerRead.
func (a *fetchAnswers) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == kmsg.Fetch.Int16() && err == nil {
		a.n.Add(1)
	}
}

// KafkaPublisher publishes replayed entries with the relay's settings:
// acks from all in-sync replicas, idempotent, the Java client's key hashing
// (murmur2, so an aggregate's events land on the partition the relay would
// have chosen), and no linger.
type KafkaPublisher struct {
	conn *kafkasec.Conn
	cl   *kgo.Client
}

// NewKafkaPublisher returns a publisher on conn; Close it when done.
func NewKafkaPublisher(conn *kafkasec.Conn) (*KafkaPublisher, error) {
	cl, err := conn.NewClient(
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // nil: murmur2, as Java
		kgo.ProducerLinger(0),
	)
	if err != nil {
		return nil, err
	}
	return &KafkaPublisher{conn: conn, cl: cl}, nil
}

// Publish implements Publisher: it writes r to r.Topic and waits for the
// acknowledgement.
func (p *KafkaPublisher) Publish(ctx context.Context, r *kgo.Record) error {
	return p.conn.ProduceSync(ctx, p.cl, r)
}

// Close closes the client; Publish already waited for every record.
func (p *KafkaPublisher) Close() { p.cl.Close() }
