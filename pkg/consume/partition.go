package consume

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/logging"
)

// errRevoked is the outcome of a commit of a partition no longer assigned.
var errRevoked = errors.New("partition no longer assigned to this member")

// partition consumes one assigned partition until it is revoked or lost.
type partition struct {
	c   *Consumer
	id  int32
	log zerolog.Logger
	lag *lagGauge // nil: no metrics

	// The poll loop appends to inbox (deliver); the partition's goroutine
	// takes batches from it (next). Fetching is paused while a full batch
	// waits there.
	mu     sync.Mutex
	inbox  []*kgo.Record
	hwm    int64 // the high watermark of the last delivery
	paused bool
	notify chan struct{} // a delivery happened; capacity 1

	// expect is the offset the next delivered record should have, -1 until
	// known. Only the poll loop uses it.
	expect int64

	// stop is done when the partition must stop taking new work: revoked,
	// lost, or Run stopping.
	stop       context.Context
	cancelStop context.CancelFunc
	// work is what the handler, the dead-letter publish and the commit run
	// under: it outlives stop until the deadline of the revocation (or
	// shutdown), DrainTimeout after it began, so the batch in flight can
	// finish and be committed, but no longer.
	work       context.Context
	cancelWork context.CancelFunc
	done       chan struct{} // closed when the goroutine returned
	deadline   time.Time     // set by stopTaking; guarded by mu

	// commitMu makes a commit and the end of ownership exclusive: once a
	// revocation completed or the partition was lost, nothing commits it.
	commitMu sync.Mutex
	owned    bool
}

func (c *Consumer) newPartition(id int32) *partition {
	log := c.log.With().Int32(logging.FieldPartition, id).Logger()
	p := &partition{c: c, id: id, log: log, expect: -1, notify: make(chan struct{}, 1),
		done: make(chan struct{}), owned: true}
	p.stop, p.cancelStop = context.WithCancel(context.WithoutCancel(c.runCtx))
	p.work, p.cancelWork = context.WithCancel(context.WithoutCancel(c.runCtx))
	p.lag = c.metrics.startLag(c.cfg.Topic, id, c.partitionEnd(id), c.committedOffset(id), c.cfg.LagInterval, log)
	return p
}

// deliver appends what was fetched for the partition to its inbox, and
// pauses fetching it once a full batch waits there. It runs on the poll
// loop.
func (p *partition) deliver(fp kgo.FetchPartition) {
	p.checkRetention(fp)
	p.mu.Lock()
	p.inbox = append(p.inbox, fp.Records...)
	p.hwm = fp.HighWatermark
	if !p.paused && len(p.inbox) >= p.c.cfg.BatchSize {
		p.paused = true
		p.c.cl.PauseFetchPartitions(map[string][]int32{p.c.cfg.Topic: {p.id}})
	}
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// checkRetention logs, at error level, the messages that retention deleted
// before the group consumed them: the client then resumed at the
// partition's first offset (ConsumeResetOffset), skipping them.
func (p *partition) checkRetention(fp kgo.FetchPartition) {
	if p.expect < 0 {
		p.expect = p.c.committedOffset(p.id)()
	}
	first := fp.Records[0].Offset
	if p.expect >= 0 && first > p.expect && fp.LogStartOffset > p.expect {
		p.log.Error().Int64("offset", p.expect).Int64("first_offset", fp.LogStartOffset).
			Int64("lost_messages", min(first, fp.LogStartOffset)-p.expect).
			Msg("messages were deleted by retention before they were consumed; resuming at the partition's first offset")
	}
	p.expect = fp.Records[len(fp.Records)-1].Offset + 1
}

// drainGrace is how long beyond its deadline a stopping partition's
// goroutine may take to return (its work context ended at the deadline)
// before it is abandoned.
const drainGrace = time.Second

// stopTaking tells the partition to stop. With drain, the batch in flight
// may finish and be committed until deadline; without, the partition is no
// longer owned and stops at once. Told to stop again (a rebalance during
// Run's shutdown), it keeps the earlier deadline.
func (p *partition) stopTaking(drain bool, deadline time.Time) {
	p.cancelStop()
	if !drain {
		deadline = time.Now()
	}
	p.mu.Lock()
	if p.deadline.IsZero() || deadline.Before(p.deadline) {
		p.deadline = deadline
		time.AfterFunc(time.Until(deadline), p.cancelWork)
	}
	p.mu.Unlock()
	if !drain {
		p.cancelWork()
		p.disown()
	}
}

// wait waits for the partition's goroutine to return, at most drainGrace
// beyond the partition's deadline, and then makes sure nothing commits the
// partition any more: its next owner's progress must not be overwritten.
// The partitions of one revocation share a deadline, so waiting for each
// in turn takes no longer than waiting for one.
func (p *partition) wait() {
	p.mu.Lock()
	deadline := p.deadline
	p.mu.Unlock()
	t := time.NewTimer(time.Until(deadline) + drainGrace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.log.Error().Dur("drain_timeout", p.c.cfg.DrainTimeout).
			Msg("the handler overran the drain timeout and was abandoned: it ignores its context; whatever it still does is not committed")
	}
	p.disown()
	p.mu.Lock()
	p.inbox = nil
	if p.paused {
		p.paused = false
		p.c.cl.ResumeFetchPartitions(map[string][]int32{p.c.cfg.Topic: {p.id}})
	}
	p.mu.Unlock()
}

func (p *partition) disown() {
	p.commitMu.Lock()
	p.owned = false
	p.commitMu.Unlock()
}

// run takes batches and processes them until the partition must stop.
func (p *partition) run() {
	defer close(p.done)
	defer p.lag.stop()
	defer p.cancelWork()
	p.log.Debug().Msg("partition started")
	for {
		batch, hwm, ok := p.next()
		if !ok {
			p.log.Debug().Msg("partition stopped")
			return
		}
		p.lag.fetched(batch[len(batch)-1], hwm)
		var failed error // the merger's attempt, when it was the batch's own
		if p.c.merger != nil && len(batch) <= p.c.mergeMax() && p.c.assignedCount() > 1 {
			handled, err := p.c.merger.submit(p, batch)
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

// next returns the next batch, up to BatchSize records, with the high
// watermark last seen: what waits in the inbox, or else what arrives next
// together with what arrives within BatchLinger. It reports false when the
// partition must stop.
func (p *partition) next() ([]*kgo.Record, int64, bool) {
	if p.waiting() == 0 {
		for p.waiting() == 0 {
			select {
			case <-p.notify:
			case <-p.stop.Done():
				return nil, 0, false
			}
		}
		if p.c.cfg.BatchLinger > 0 {
			p.linger()
		}
	}
	if p.stop.Err() != nil {
		return nil, 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := min(len(p.inbox), p.c.cfg.BatchSize)
	batch := p.inbox[:n:n]
	p.inbox = p.inbox[n:]
	if p.paused && len(p.inbox) < p.c.cfg.BatchSize {
		p.paused = false
		p.c.cl.ResumeFetchPartitions(map[string][]int32{p.c.cfg.Topic: {p.id}})
	}
	return batch, p.hwm, true
}

func (p *partition) waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inbox)
}

// linger waits up to BatchLinger for the inbox to hold BatchSize records.
func (p *partition) linger() {
	t := time.NewTimer(p.c.cfg.BatchLinger)
	defer t.Stop()
	for p.waiting() < p.c.cfg.BatchSize {
		select {
		case <-p.notify:
		case <-t.C:
			return
		case <-p.stop.Done():
			return
		}
	}
}

// process hands recs to the handler until it succeeds (then commits them),
// fails permanently (then isolates the record at fault) or the partition
// must stop. failed, when not nil, is the outcome of an attempt already made
// (by the merger): it counts as the first. It reports whether the partition
// may go on.
func (p *partition) process(recs []*kgo.Record, failed error) bool {
	log := p.batchLogger(recs)
	ctx := logging.WithContext(p.work, log)
	for attempt := 1; ; attempt++ {
		err := failed
		if err == nil {
			err = p.c.h.HandleBatch(ctx, recs)
		}
		failed = nil
		switch {
		case err == nil:
			p.c.stats.batches.Add(1)
			p.c.stats.messages.Add(int64(len(recs)))
			p.c.metrics.applied(len(recs))
			return p.commit(log, recs[len(recs)-1])
		case errors.Is(err, ErrPermanent) && len(recs) > 1:
			log.Warn().Err(err).Msg("batch failed permanently; handling its messages one by one")
			return p.isolate(recs)
		case errors.Is(err, ErrPermanent):
			return p.deadLetter(log, recs[0], err)
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

// isolate processes recs one at a time, so the one that fails permanently is
// dead-lettered alone and the others are applied.
func (p *partition) isolate(recs []*kgo.Record) bool {
	for _, r := range recs {
		if p.stop.Err() != nil {
			return false
		}
		if !p.process([]*kgo.Record{r}, nil) {
			return false
		}
	}
	return true
}

// commit commits the offset after last. A failed commit is logged and
// skipped: the records will be delivered again, which handlers tolerate.
// It reports whether the partition may go on.
func (p *partition) commit(log zerolog.Logger, last *kgo.Record) bool {
	p.c.commitLogged(p.work, log, map[*partition]*kgo.Record{p: last})
	return p.stop.Err() == nil
}

func (p *partition) batchLogger(recs []*kgo.Record) zerolog.Logger {
	first, last := recs[0], recs[len(recs)-1]
	l := p.log.With()
	if len(recs) == 1 {
		l = l.Int64(logging.FieldOffset, first.Offset).
			Str(logging.FieldEventID, header(first, contract.HeaderEventID)).
			Str(logging.FieldAggregateID, header(first, contract.HeaderAggregateID))
	} else {
		l = l.Int64("first_offset", first.Offset).Int64("last_offset", last.Offset).Int("batch_size", len(recs))
	}
	return l.Logger()
}

// commitLogged commits, for each partition, the offset after its record in
// last, and logs and counts a failure.
func (c *Consumer) commitLogged(ctx context.Context, log zerolog.Logger, last map[*partition]*kgo.Record) {
	err := c.commit(ctx, last)
	switch {
	case errors.Is(err, errRevoked):
		log.Info().Msg("not committed: the partition was revoked meanwhile; the messages will be delivered again")
	case err != nil:
		c.stats.commitFailures.Add(1)
		c.metrics.commitFailed()
		log.Warn().Err(c.conn.Explain("", err)).Msg("commit failed; the messages will be delivered again")
	}
}

// commit commits, in one request, for each partition still owned, the
// offset after its record in last, with the record's leader epoch. It
// returns errRevoked when none is owned any more.
func (c *Consumer) commit(ctx context.Context, last map[*partition]*kgo.Record) error {
	ps := make([]*partition, 0, len(last))
	for p := range last {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *partition) int { return int(a.id - b.id) })
	offsets := make(map[int32]kgo.EpochOffset, len(ps))
	for _, p := range ps {
		p.commitMu.Lock()
		defer p.commitMu.Unlock()
		if p.owned {
			r := last[p]
			offsets[p.id] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		}
	}
	if len(offsets) == 0 {
		return errRevoked
	}
	var rerr error
	c.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{c.cfg.Topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				rerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, tp := range t.Partitions {
					if err := kerr.ErrorForCode(tp.ErrorCode); err != nil {
						rerr = errors.Join(rerr, err)
					}
				}
			}
		})
	return rerr
}

// committedOffset returns a function that reads the group's committed
// offset of partition id as this member knows it: -1 when there is none
// (yet).
func (c *Consumer) committedOffset(id int32) func() int64 {
	return func() int64 {
		if eo, ok := c.cl.CommittedOffsets()[c.cfg.Topic][id]; ok {
			return eo.Offset
		}
		return -1
	}
}

// assignedCount is the number of partitions assigned now, and of those
// still stopping.
func (c *Consumer) assignedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.parts)
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
