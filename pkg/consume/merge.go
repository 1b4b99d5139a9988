package consume

import (
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/logging"
)

// merger hands the batches of the assigned partitions to the handler one
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
	c    *Consumer
	in   chan *offer
	quit chan struct{} // closed by stop
	done chan struct{} // closed when run returned
}

// offer is one partition's batch; the merger answers on done.
type offer struct {
	p    *partition
	recs []*kgo.Record
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

func newMerger(c *Consumer) *merger {
	return &merger{c: c, in: make(chan *offer), quit: make(chan struct{}), done: make(chan struct{})}
}

// stop ends run once the call in flight, if any, is answered; done is
// closed then. Call it once, after every partition stopped.
func (m *merger) stop() { close(m.quit) }

// submit offers recs of p to the merger. It reports whether they were
// handled and committed; otherwise p handles them itself (also when p was
// told to stop before the merger took them), starting from err when the
// merger's call failed with them alone.
func (m *merger) submit(p *partition, recs []*kgo.Record) (handled bool, err error) {
	o := &offer{p: p, recs: recs, done: make(chan verdict, 1)}
	select {
	case m.in <- o:
		v := <-o.done
		return v.handled, v.err
	case <-p.stop.Done():
		return false, nil
	}
}

// run takes an offer, adds the ones already waiting up to BatchSize
// records, and hands them to the handler in one call, until stop.
func (m *merger) run() {
	defer close(m.done)
	for {
		var first *offer
		select {
		case first = <-m.in:
		case <-m.quit:
			return
		}
		offers := []*offer{first}
		n := len(first.recs)
	gather:
		for n < m.c.cfg.BatchSize {
			select {
			case o := <-m.in:
				offers = append(offers, o)
				n += len(o.recs)
			default:
				break gather
			}
		}
		err := m.handle(offers, n)
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
//
// The call runs under a context that ends when the work context of any of
// the offering partitions ends (DrainTimeout after it was told to stop).
func (m *merger) handle(offers []*offer, n int) error {
	work, cancel := context.WithCancel(context.WithoutCancel(m.c.runCtx))
	defer cancel()
	recs := make([]*kgo.Record, 0, n)
	parts := make([]int32, 0, len(offers))
	last := make(map[*partition]*kgo.Record, len(offers))
	for _, o := range offers {
		defer context.AfterFunc(o.p.work, cancel)()
		recs = append(recs, o.recs...)
		parts = append(parts, o.p.id)
		last[o.p] = o.recs[len(o.recs)-1]
	}
	slices.Sort(parts)
	log := m.c.log.With().Ints32("partitions", parts).Int("batch_size", n).Logger()
	if len(offers) == 1 {
		log = offers[0].p.batchLogger(offers[0].recs)
	}
	if err := m.c.h.HandleBatch(logging.WithContext(work, log), recs); err != nil {
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
	m.c.commitLogged(work, log, last)
	return nil
}
