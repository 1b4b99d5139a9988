package deadletter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
)

// KafkaSource reads a dead-letter topic with plain fetches, without a
// consumer group, so reading it changes nothing.
type KafkaSource struct {
	conn   *kafkasec.Conn
	client *kafka.Client
	topic  string
}

// NewKafkaSource reads topic through conn.
func NewKafkaSource(conn *kafkasec.Conn, topic string) *KafkaSource {
	return &KafkaSource{conn: conn, client: conn.Client(), topic: topic}
}

// span is the offsets of one partition: [first, end).
type span struct {
	partition  int
	first, end int64
}

// Scan implements Source.
func (s *KafkaSource) Scan(ctx context.Context, fn func(kafka.Message) error) error {
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
func (s *KafkaSource) Fetch(ctx context.Context, partition int, offset int64) (kafka.Message, error) {
	spans, err := s.spans(ctx)
	if err != nil {
		return kafka.Message{}, err
	}
	id := idOf(partition, offset)
	if partition >= len(spans) {
		return kafka.Message{}, fmt.Errorf("%w %s in %s: partition %d does not exist (the topic has partitions 0 to %d)",
			ErrNotFound, id, s.topic, partition, len(spans)-1)
	}
	sp := spans[partition]
	if offset < sp.first || offset >= sp.end {
		return kafka.Message{}, fmt.Errorf("%w %s in %s: partition %d holds offsets %s",
			ErrNotFound, id, s.topic, partition, sp.describe())
	}
	var found *kafka.Message
	sp.first, sp.end = offset, offset+1
	err = s.scanPartition(ctx, sp, func(m kafka.Message) error { found = &m; return nil })
	if err != nil {
		return kafka.Message{}, err
	}
	if found == nil || found.Offset != offset {
		return kafka.Message{}, fmt.Errorf("%w %s in %s: no message at that offset", ErrNotFound, id, s.topic)
	}
	return *found, nil
}

func (sp span) describe() string {
	if sp.first >= sp.end {
		return "none (it is empty)"
	}
	return fmt.Sprintf("%d to %d", sp.first, sp.end-1)
}

// spans returns the partitions of the topic, by id, with their offsets now.
func (s *KafkaSource) spans(ctx context.Context) ([]span, error) {
	md, err := s.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", s.topic, s.conn.Explain("", err))
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) == 0 {
		return nil, fmt.Errorf("dead-letter topic %s does not exist", s.topic)
	}
	n := len(md.Topics[0].Partitions)
	reqs := make([]kafka.OffsetRequest, 0, 2*n)
	for p := range n {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := s.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{s.topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", s.topic, s.conn.Explain("", err))
	}
	spans := make([]span, n)
	for _, po := range resp.Topics[s.topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", s.topic, po.Partition, po.Error)
		}
		if po.Partition >= 0 && po.Partition < n {
			spans[po.Partition] = span{partition: po.Partition, first: po.FirstOffset, end: po.LastOffset}
		}
	}
	return spans, nil
}

// scanPartition fetches [sp.first, sp.end) of one partition. A fetch that
// returns no record ends it: only transaction markers, which fetches skip,
// can be left below the end offset then.
func (s *KafkaSource) scanPartition(ctx context.Context, sp span, fn func(kafka.Message) error) error {
	for off := sp.first; off < sp.end; {
		res, err := s.client.Fetch(ctx, &kafka.FetchRequest{Topic: s.topic, Partition: sp.partition,
			Offset: off, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 500 * time.Millisecond})
		if err == nil {
			err = res.Error
		}
		if errors.Is(err, kafka.OffsetOutOfRange) && res != nil && res.LogStartOffset > off {
			off = res.LogStartOffset // deleted by retention since we looked
			continue
		}
		if err != nil {
			return fmt.Errorf("fetch %s/%d at %d: %w", s.topic, sp.partition, off, s.conn.Explain("", err))
		}
		next, err := readRecords(res.Records, s.topic, sp.partition, off, sp.end, fn)
		if err != nil {
			return err
		}
		if next == off {
			return nil
		}
		off = next
	}
	return nil
}

// readRecords hands fn the records in [from, end) and returns the offset
// after the last one read (from when none was).
func readRecords(rr kafka.RecordReader, topic string, partition int, from, end int64, fn func(kafka.Message) error) (int64, error) {
	next := from
	for {
		r, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return next, nil
		}
		if err != nil {
			return next, fmt.Errorf("read %s/%d at %d: %w", topic, partition, next, err)
		}
		if r.Offset < from {
			continue // a batch may start before the offset asked for
		}
		if r.Offset >= end {
			return end, nil
		}
		m := kafka.Message{Topic: topic, Partition: partition, Offset: r.Offset, Time: r.Time,
			Headers: append([]kafka.Header(nil), r.Headers...)}
		if m.Key, err = kafka.ReadAll(r.Key); err == nil {
			m.Value, err = kafka.ReadAll(r.Value)
		}
		if err != nil {
			return next, fmt.Errorf("read %s/%d at %d: %w", topic, partition, r.Offset, err)
		}
		if err := fn(m); err != nil {
			return next, err
		}
		next = r.Offset + 1
	}
}

// KafkaPublisher publishes replayed entries with the relay's settings:
// acks from all in-sync replicas, the Java client's key hashing (so an
// aggregate's events stay on one partition), and no linger.
type KafkaPublisher struct {
	conn *kafkasec.Conn
	w    *kafka.Writer
}

// NewKafkaPublisher returns a publisher on conn; Close it when done.
func NewKafkaPublisher(conn *kafkasec.Conn) *KafkaPublisher {
	return &KafkaPublisher{conn: conn, w: &kafka.Writer{
		Addr:         kafka.TCP(conn.Brokers()...),
		Transport:    conn.Transport(),
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		Balancer:     &kafka.Murmur2Balancer{},
	}}
}

// Publish implements Publisher.
func (p *KafkaPublisher) Publish(ctx context.Context, m kafka.Message) error {
	if err := p.w.WriteMessages(ctx, m); err != nil {
		return p.conn.Explain("", err)
	}
	return nil
}

// Close flushes and closes the writer.
func (p *KafkaPublisher) Close() error { return p.w.Close() }
