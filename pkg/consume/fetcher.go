package consume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
)

// fetcher reads one partition from its leader, on a connection of its own,
// and hands over every fetch response whole.
//
// kafka.Reader is not used: it bounds the whole fetch round trip by MaxWait,
// the time the broker may wait for data. A response that takes longer than
// that to build and send (a large backlog on a busy broker) timed out on
// every attempt, the reader reconnected and asked again for the same bytes,
// and the partition never moved, with nothing but warnings in the log. Here
// the broker is given MaxWait and the response FetchTimeout on top of it.
type fetcher struct {
	conn      *kafkasec.Conn
	topic     string
	partition int
	cfg       *Config
	log       zerolog.Logger

	kc     *kafka.Conn // nil until connected, and after an error
	offset int64       // the next offset to fetch; kafka.FirstOffset at first on a new group
}

func newFetcher(conn *kafkasec.Conn, cfg *Config, partition int, offset int64, log zerolog.Logger) *fetcher {
	return &fetcher{conn: conn, topic: cfg.Topic, partition: partition, cfg: cfg, log: log, offset: offset}
}

// fetch returns the next messages, waiting until there is at least one or
// ctx ends. After an error the connection is dropped and the next call makes
// a new one, starting after the last message returned.
func (f *fetcher) fetch(ctx context.Context) ([]kafka.Message, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if f.kc == nil {
			if err := f.connect(ctx); err != nil {
				return nil, err
			}
		}
		msgs, err := f.fetchOnce(ctx)
		switch {
		case len(msgs) > 0:
			// Messages read before an error are good; the error, if it
			// lasts, comes back on the next call, on a new connection
			// unless the broker sent it.
			var kerr kafka.Error
			if err != nil && !errors.As(err, &kerr) {
				f.close()
			}
			return msgs, nil
		case err == nil, errors.Is(err, kafka.RequestTimedOut):
			continue // the broker's wait ended without new data
		case errors.Is(err, kafka.OffsetOutOfRange):
			if err := f.reposition(ctx); err != nil {
				f.close()
				return nil, err
			}
		default:
			f.close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("fetch partition %d of %s at offset %d: %w", f.partition, f.topic, f.offset, err)
		}
	}
}

// fetchOnce sends one fetch request and reads its whole response. Ending
// ctx closes the connection, which ends a fetch the broker is holding.
func (f *fetcher) fetchOnce(ctx context.Context) ([]kafka.Message, error) {
	kc := f.kc
	defer context.AfterFunc(ctx, func() { _ = kc.Close() })()
	if err := kc.SetDeadline(time.Now().Add(f.cfg.MaxWait + f.cfg.FetchTimeout)); err != nil {
		return nil, err
	}
	b := kc.ReadBatchWith(kafka.ReadBatchConfig{
		MinBytes:       f.cfg.MinBytes,
		MaxBytes:       f.cfg.MaxBytes,
		MaxWait:        f.cfg.MaxWait,
		IsolationLevel: kafka.ReadCommitted,
	})
	var msgs []kafka.Message
	for {
		m, err := b.ReadMessage()
		if err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	err := b.Close() // nil when the response was read to its end
	if len(msgs) > 0 {
		f.offset = msgs[len(msgs)-1].Offset + 1
	}
	if err == nil {
		// The connection's offset may have moved past the last message, over
		// transaction markers or compacted records.
		f.offset, _ = kc.Offset()
	}
	return msgs, err
}

// connect dials the partition's leader and positions the connection at
// f.offset, resolving kafka.FirstOffset and an offset that retention deleted.
func (f *fetcher) connect(ctx context.Context) error {
	var errs []error
	for _, broker := range f.conn.Brokers() {
		kc, err := f.conn.Dialer().DialLeader(ctx, "tcp", broker, f.topic, f.partition)
		if err != nil {
			errs = append(errs, f.conn.Explain(broker, err))
			continue
		}
		f.kc = kc
		if err := f.reposition(ctx); err != nil {
			f.close()
			return err
		}
		return nil
	}
	return fmt.Errorf("connect to the leader of partition %d of %s: %w", f.partition, f.topic, errors.Join(errs...))
}

// reposition asks the leader for the partition's first and last offsets and
// seeks to f.offset, or to the first offset when f.offset is
// kafka.FirstOffset or was deleted by retention before it was consumed:
// those messages are gone, and the error log says how many. An offset past
// the end (a truncated log) is an error: the caller retries later.
func (f *fetcher) reposition(ctx context.Context) error {
	kc := f.kc
	defer context.AfterFunc(ctx, func() { _ = kc.Close() })()
	if err := kc.SetDeadline(time.Now().Add(f.cfg.FetchTimeout)); err != nil {
		return err
	}
	first, last, err := kc.ReadOffsets()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("read the offsets of partition %d of %s: %w", f.partition, f.topic, err)
	}
	switch {
	case f.offset == kafka.FirstOffset:
		f.offset = first
	case f.offset == kafka.LastOffset:
		f.offset = last
	case f.offset < first:
		f.log.Error().Int64("offset", f.offset).Int64("first_offset", first).Int64("lost_messages", first-f.offset).
			Msg("messages were deleted by retention before they were consumed; resuming at the partition's first offset")
		f.offset = first
	case f.offset > last:
		return fmt.Errorf("offset %d is past the end of partition %d of %s (%d): waiting for the partition to reach it",
			f.offset, f.partition, f.topic, last)
	}
	if _, err := kc.Seek(f.offset, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		return fmt.Errorf("seek partition %d of %s to offset %d: %w", f.partition, f.topic, f.offset, err)
	}
	return nil
}

func (f *fetcher) close() {
	if f.kc != nil {
		_ = f.kc.Close()
		f.kc = nil
	}
}
