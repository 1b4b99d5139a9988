package consume

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/logging"
)

// partition consumes one assigned partition for one generation.
type partition struct {
	c      *Consumer
	id     int
	reader *kafka.Reader
	com    *committer
	fail   context.CancelCauseFunc
	log    zerolog.Logger
	lag    *lagGauge // nil: no metrics
	// stop is done when the partition must stop taking new work: the
	// generation ended (a rebalance, or Run closing the group).
	stop context.Context
	// work is what the handler, the dead-letter publish and the commit run
	// under: it outlives stop by DrainTimeout, so the batch in flight can
	// finish and be committed, but no longer.
	work context.Context
}

// runPartition consumes pa until genCtx ends. runCtx only provides values
// (the logger); cancelling Run reaches the partition through the generation.
func (c *Consumer) runPartition(runCtx, genCtx context.Context, com *committer, pa kafka.PartitionAssignment, fail context.CancelCauseFunc) {
	stop, cancelStop := context.WithCancel(context.WithoutCancel(runCtx))
	defer cancelStop()
	defer context.AfterFunc(genCtx, cancelStop)()
	work, cancelWork := context.WithCancel(context.WithoutCancel(runCtx))
	defer cancelWork()
	defer context.AfterFunc(stop, func() { time.AfterFunc(c.cfg.DrainTimeout, cancelWork) })()

	log := c.log.With().Int(logging.FieldPartition, pa.ID).Logger()
	r := kafka.NewReader(c.readerConfig(pa.ID))
	defer func() {
		if err := r.Close(); err != nil {
			log.Warn().Err(err).Msg("close partition reader")
		}
	}()
	// pa.Offset is the group's committed offset, or kafka.FirstOffset when
	// the group never committed one for this partition.
	if err := r.SetOffset(pa.Offset); err != nil {
		log.Error().Err(err).Msg("cannot position the partition reader")
		return
	}
	log.Debug().Int64("start_offset", pa.Offset).Msg("partition started")
	lag := c.metrics.startLag(c.cfg.Topic, pa.ID, r, c.cfg.LagInterval, log)
	defer lag.stop()
	p := &partition{c: c, id: pa.ID, reader: r, com: com, fail: fail, log: log, lag: lag, stop: stop, work: work}
	p.run()
	log.Debug().Msg("partition stopped")
}

func (c *Consumer) readerConfig(id int) kafka.ReaderConfig {
	return kafka.ReaderConfig{
		Brokers:        c.conn.Brokers(),
		Topic:          c.cfg.Topic,
		Partition:      id,
		Dialer:         c.conn.Dialer(),
		MinBytes:       c.cfg.MinBytes,
		MaxBytes:       c.cfg.MaxBytes,
		MaxWait:        c.cfg.MaxWait,
		QueueCapacity:  c.cfg.BatchSize, // a full batch can be waiting while one is handled
		IsolationLevel: kafka.ReadCommitted,
		ErrorLogger:    c.kafkaLogger(),
		// The lag gauge polls on its own (and only with metrics on);
		// kafka-go's poll would dial every partition leader once a minute
		// for a statistic nobody reads.
		ReadLagInterval: -1,
	}
}

// run fetches and processes batches until the partition must stop.
func (p *partition) run() {
	failures := 0
	for {
		batch, err := p.fetch()
		if err != nil {
			if p.stop.Err() != nil {
				return
			}
			err = p.c.conn.Explain("", err)
			if errors.Is(err, kafkasec.ErrAuthentication) {
				p.fail(err)
				return
			}
			failures++
			delay := p.c.backoff(failures)
			p.log.Warn().Err(err).Dur("retry_in", delay).Msg("fetch failed")
			if !sleep(p.stop, delay) {
				return
			}
			continue
		}
		failures = 0
		p.lag.fetched(batch[len(batch)-1])
		if !p.process(batch) {
			return
		}
	}
}

// fetch waits for a message, then collects the ones already there, for at
// most BatchLinger and up to BatchSize.
func (p *partition) fetch() ([]kafka.Message, error) {
	m, err := p.reader.FetchMessage(p.stop)
	if err != nil {
		return nil, err
	}
	batch := make([]kafka.Message, 1, min(p.c.cfg.BatchSize, 64))
	batch[0] = m
	if p.c.cfg.BatchSize == 1 {
		return batch, nil
	}
	linger, cancel := context.WithTimeout(p.stop, p.c.cfg.BatchLinger)
	defer cancel()
	for len(batch) < p.c.cfg.BatchSize {
		m, err := p.reader.FetchMessage(linger)
		if err != nil {
			if linger.Err() == nil {
				p.log.Warn().Err(err).Msg("fetch failed while collecting a batch")
			}
			break
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// process hands msgs to the handler until it succeeds (then commits them),
// fails permanently (then isolates the message at fault) or the partition
// must stop. It reports whether the partition may go on.
func (p *partition) process(msgs []kafka.Message) bool {
	log := p.batchLogger(msgs)
	ctx := logging.WithContext(p.work, log)
	for attempt := 1; ; attempt++ {
		err := p.c.h.HandleBatch(ctx, msgs)
		switch {
		case err == nil:
			p.c.stats.batches.Add(1)
			p.c.stats.messages.Add(int64(len(msgs)))
			p.c.metrics.applied(len(msgs))
			return p.commit(log, msgs[len(msgs)-1])
		case errors.Is(err, ErrPermanent) && len(msgs) > 1:
			log.Warn().Err(err).Msg("batch failed permanently; handling its messages one by one")
			return p.isolate(msgs)
		case errors.Is(err, ErrPermanent):
			return p.deadLetter(log, msgs[0], err)
		case p.stop.Err() != nil:
			log.Info().Err(err).Msg("stopped before the batch was handled; it will be delivered again")
			return false
		}
		p.c.stats.retries.Add(1)
		p.c.metrics.retried()
		delay := p.c.backoff(attempt)
		log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", delay).
			Msg("handling failed; retrying the same batch")
		if !sleep(p.stop, delay) {
			log.Info().Msg("stopped before the batch was handled; it will be delivered again")
			return false
		}
	}
}

// isolate processes msgs one at a time, so the one that fails permanently is
// dead-lettered alone and the others are applied.
func (p *partition) isolate(msgs []kafka.Message) bool {
	for _, m := range msgs {
		if p.stop.Err() != nil {
			return false
		}
		if !p.process([]kafka.Message{m}) {
			return false
		}
	}
	return true
}

// commit commits the offset after last. A failed commit is logged and
// skipped: the messages will be delivered again, which handlers tolerate.
// It reports whether the partition may go on.
func (p *partition) commit(log zerolog.Logger, last kafka.Message) bool {
	if err := p.com.commit(p.id, last.Offset+1); err != nil {
		p.c.stats.commitFailures.Add(1)
		p.c.metrics.commitFailed()
		log.Warn().Err(p.c.conn.Explain("", err)).Int64("commit_offset", last.Offset+1).
			Msg("commit failed; the messages will be delivered again")
	}
	return p.stop.Err() == nil
}

func (p *partition) batchLogger(msgs []kafka.Message) zerolog.Logger {
	first, last := msgs[0], msgs[len(msgs)-1]
	l := p.log.With()
	if len(msgs) == 1 {
		l = l.Int64(logging.FieldOffset, first.Offset).
			Str(logging.FieldEventID, header(first, contract.HeaderEventID)).
			Str(logging.FieldAggregateID, header(first, contract.HeaderAggregateID))
	} else {
		l = l.Int64("first_offset", first.Offset).Int64("last_offset", last.Offset).Int("batch_size", len(msgs))
	}
	return l.Logger()
}

// committer commits the offsets of one generation; partitions share it.
type committer struct {
	mu    sync.Mutex // one commit request at a time on the generation's connection
	gen   *kafka.Generation
	topic string
}

func (c *committer) commit(partition int, offset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen.CommitOffsets(map[string]map[int]int64{c.topic: {partition: offset}})
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
