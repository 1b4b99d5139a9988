package consume

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/invoicesync/invoicesync/pkg/logging"
)

// merger hands the batches of a generation's partitions to the handler one
// call at a time, each call with every batch that was waiting for it, and
// commits them in one request (Config.MergePartitions). While a call runs
// the partitions' next batches queue up, so under load one handler call
// (one database transaction in the receiver) takes the batches of all of
// them, which costs much less than one call each; at low load a call takes
// one batch, as without merging.
//
// Only small batches are offered (mergeMax): a large one already amortises
// its call, and large batches of several partitions are better applied in
// parallel, as without merging. A backfill's backlog so keeps every
// partition's transaction going at once and is applied as fast as before,
// while live traffic's many small batches are merged.
//
// It only takes the happy path. The batches of a call that failed go back
// to their partitions, which handle them on their own as without merging:
// retries with backoff, isolating a poison message, dead-lettering. So a
// failing partition still holds back only itself.
type merger struct {
	c   *Consumer
	com *committer
	in  chan *offer
}

// offer is one partition's batch; the merger answers on done.
type offer struct {
	p    *partition
	msgs []kafka.Message
	done chan verdict
}

// verdict is the merger's answer to an offer.
type verdict struct {
	// handled: applied and committed. Otherwise the partition handles the
	// batch itself.
	handled bool
	// err is the handler's error when the call held this batch alone: the
	// partition counts it as its first attempt instead of repeating it at
	// once. Nil after a merged call, whose failure may be another batch's.
	err error
}

// mergeMax is the largest batch a partition offers to the merger: a quarter
// of BatchSize.
func (c *Consumer) mergeMax() int { return max(1, c.cfg.BatchSize/4) }

func newMerger(c *Consumer, com *committer) *merger {
	return &merger{c: c, com: com, in: make(chan *offer)}
}

// submit offers msgs of p to the merger. It reports whether they were
// handled and committed; otherwise p handles them itself (also when the
// generation ended before the merger took them), starting from err when the
// merger's call failed with them alone.
func (m *merger) submit(p *partition, msgs []kafka.Message) (handled bool, err error) {
	o := &offer{p: p, msgs: msgs, done: make(chan verdict, 1)}
	select {
	case m.in <- o:
		v := <-o.done
		return v.handled, v.err
	case <-p.stop.Done():
		return false, nil
	}
}

// run takes an offer, adds the ones already waiting up to BatchSize
// messages, and hands them to the handler in one call, until genCtx ends. The
// call in flight then has DrainTimeout to finish. runCtx only provides
// values (the logger).
func (m *merger) run(runCtx, genCtx context.Context) {
	work, cancelWork := context.WithCancel(context.WithoutCancel(runCtx))
	defer cancelWork()
	defer context.AfterFunc(genCtx, func() { time.AfterFunc(m.c.cfg.DrainTimeout, cancelWork) })()
	for {
		var first *offer
		select {
		case first = <-m.in:
		case <-genCtx.Done():
			return
		}
		offers := []*offer{first}
		n := len(first.msgs)
	gather:
		for n < m.c.cfg.BatchSize {
			select {
			case o := <-m.in:
				offers = append(offers, o)
				n += len(o.msgs)
			default:
				break gather
			}
		}
		err := m.handle(work, offers, n)
		for _, o := range offers {
			v := verdict{handled: err == nil}
			if len(offers) == 1 {
				v.err = err
			}
			o.done <- v
		}
	}
}

// handle calls the handler once for all offers and commits them together.
// It returns the handler's error: nothing was applied, and each partition
// handles its batch again on its own.
func (m *merger) handle(work context.Context, offers []*offer, n int) error {
	msgs := make([]kafka.Message, 0, n)
	parts := make([]int, 0, len(offers))
	for _, o := range offers {
		msgs = append(msgs, o.msgs...)
		parts = append(parts, o.p.id)
	}
	slices.Sort(parts)
	log := m.c.log.With().Ints("partitions", parts).Int("batch_size", n).Logger()
	if len(offers) == 1 {
		log = offers[0].p.batchLogger(offers[0].msgs)
	}
	if err := m.c.h.HandleBatch(logging.WithContext(work, log), msgs); err != nil {
		if len(offers) > 1 && !errors.Is(err, ErrPermanent) {
			// Each partition tries its batch again: a retry, as in process
			// (which counts the failure of a batch alone itself).
			m.c.stats.retries.Add(1)
			m.c.metrics.retried()
		}
		log.Debug().Err(err).Msg("batch failed in the merger; each partition handles its own")
		return err
	}
	m.c.stats.batches.Add(1)
	m.c.stats.messages.Add(int64(n))
	m.c.metrics.applied(n)
	offsets := make(map[int]int64, len(offers))
	for _, o := range offers {
		offsets[o.p.id] = o.msgs[len(o.msgs)-1].Offset + 1
	}
	if err := m.com.commitAll(offsets); err != nil {
		m.c.stats.commitFailures.Add(1)
		m.c.metrics.commitFailed()
		log.Warn().Err(m.c.conn.Explain("", err)).Msg("commit failed; the messages will be delivered again")
	}
	return nil
}
