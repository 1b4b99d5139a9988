package consume

import (
	"context"
	"errors"
	"fmt"
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
	c    *Consumer
	id   int
	com  *committer
	fail context.CancelCauseFunc
	log  zerolog.Logger
	lag  *lagGauge // nil: no metrics
	// merger, when set, takes batches to hand over together with other
	// partitions' (Config.MergePartitions).
	merger *merger
	// fetched carries the fetcher's responses; it is closed when the
	// fetcher stops. pending holds what the last batch left of them.
	fetched <-chan []kafka.Message
	pending []kafka.Message
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
func (c *Consumer) runPartition(runCtx, genCtx context.Context, com *committer, m *merger, pa kafka.PartitionAssignment, fail context.CancelCauseFunc) {
	stop, cancelStop := context.WithCancel(context.WithoutCancel(runCtx))
	defer cancelStop()
	defer context.AfterFunc(genCtx, cancelStop)()
	work, cancelWork := context.WithCancel(context.WithoutCancel(runCtx))
	defer cancelWork()
	defer context.AfterFunc(stop, func() { time.AfterFunc(c.cfg.DrainTimeout, cancelWork) })()

	log := c.log.With().Int(logging.FieldPartition, pa.ID).Logger()
	// pa.Offset is the group's committed offset, or kafka.FirstOffset when
	// the group never committed one for this partition.
	log.Debug().Int64("start_offset", pa.Offset).Msg("partition started")
	lag := c.metrics.startLag(c.cfg.Topic, pa.ID, pa.Offset, c.partitionEnd(pa.ID), c.cfg.LagInterval, log)
	defer lag.stop()
	fetched := make(chan []kafka.Message, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancelStop() // the fetcher stops before the wait above
	wg.Go(func() {
		defer close(fetched)
		c.fetchLoop(stop, newFetcher(c.conn, &c.cfg, pa.ID, pa.Offset, log), fetched, fail, log)
	})
	p := &partition{c: c, id: pa.ID, com: com, merger: m, fail: fail, log: log, lag: lag, fetched: fetched, stop: stop, work: work}
	p.run()
	log.Debug().Msg("partition stopped")
}

// fetchLoop sends what f fetches to out until ctx ends, one response ahead
// of the handler, retrying failed fetches with backoff. A refused
// authentication fails the consumer.
func (c *Consumer) fetchLoop(ctx context.Context, f *fetcher, out chan<- []kafka.Message, fail context.CancelCauseFunc, log zerolog.Logger) {
	defer f.close()
	failures := 0
	for {
		msgs, err := f.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, kafkasec.ErrAuthentication) {
				fail(err)
				return
			}
			failures++
			delay := c.backoff(failures)
			log.Warn().Err(err).Int("attempt", failures).Dur("retry_in", delay).Msg("fetch failed")
			if !sleep(ctx, delay) {
				return
			}
			continue
		}
		failures = 0
		select {
		case out <- msgs:
		case <-ctx.Done():
			return
		}
	}
}

// partitionEnd returns a function that asks the broker for the partition's
// end offset (its high watermark), for the lag gauge.
func (c *Consumer) partitionEnd(id int) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		resp, err := c.conn.Client().ListOffsets(ctx, &kafka.ListOffsetsRequest{
			Topics: map[string][]kafka.OffsetRequest{c.cfg.Topic: {kafka.LastOffsetOf(id)}},
		})
		if err != nil {
			return 0, err
		}
		for _, po := range resp.Topics[c.cfg.Topic] {
			if po.Partition == id {
				if po.Error != nil {
					return 0, po.Error
				}
				return po.LastOffset, nil
			}
		}
		return 0, fmt.Errorf("no offsets for partition %d of %s in the answer", id, c.cfg.Topic)
	}
}

// run takes batches and processes them until the partition must stop.
func (p *partition) run() {
	for {
		batch, ok := p.next()
		if !ok {
			return
		}
		p.lag.fetched(batch[len(batch)-1])
		var failed error // the merger's attempt, when it was the batch's own
		if p.merger != nil && len(batch) <= p.c.mergeMax() {
			handled, err := p.merger.submit(p, batch)
			switch {
			case p.stop.Err() != nil:
				return // a batch not handled is delivered again to the next owner
			case handled:
				continue
			}
			failed = err
		}
		if !p.process(batch, failed) {
			return
		}
	}
}

// next returns the next batch: what is pending, or else the next fetch
// response together with the ones that arrive within BatchLinger, up to
// BatchSize messages. It reports false when the partition must stop.
func (p *partition) next() ([]kafka.Message, bool) {
	if len(p.pending) == 0 {
		select {
		case msgs, ok := <-p.fetched:
			if !ok {
				return nil, false
			}
			p.pending = msgs
		case <-p.stop.Done():
			return nil, false
		}
		if len(p.pending) < p.c.cfg.BatchSize && p.c.cfg.BatchLinger > 0 {
			p.linger()
		}
	}
	n := min(len(p.pending), p.c.cfg.BatchSize)
	batch := p.pending[:n:n]
	p.pending = p.pending[n:]
	return batch, true
}

// linger adds to pending the responses that arrive within BatchLinger, until
// it holds BatchSize messages.
func (p *partition) linger() {
	t := time.NewTimer(p.c.cfg.BatchLinger)
	defer t.Stop()
	for len(p.pending) < p.c.cfg.BatchSize {
		select {
		case msgs, ok := <-p.fetched:
			if !ok {
				return
			}
			p.pending = append(p.pending, msgs...)
		case <-t.C:
			return
		case <-p.stop.Done():
			return
		}
	}
}

// process hands msgs to the handler until it succeeds (then commits them),
// fails permanently (then isolates the message at fault) or the partition
// must stop. failed, when not nil, is the outcome of an attempt already made
// (by the merger): it counts as the first. It reports whether the partition
// may go on.
func (p *partition) process(msgs []kafka.Message, failed error) bool {
	log := p.batchLogger(msgs)
	ctx := logging.WithContext(p.work, log)
	for attempt := 1; ; attempt++ {
		err := failed
		if err == nil {
			err = p.c.h.HandleBatch(ctx, msgs)
		}
		failed = nil
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
		if !p.process([]kafka.Message{m}, nil) {
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
	return c.commitAll(map[int]int64{partition: offset})
}

// commitAll commits the offsets of several partitions in one request.
func (c *committer) commitAll(offsets map[int]int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen.CommitOffsets(map[string]map[int]int64{c.topic: offsets})
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
