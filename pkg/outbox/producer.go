package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
)

// producerLinger lets a batch's records gather per partition while the
// relay hands them to the client, so a batch goes out in one request per
// broker. It adds no latency: the relay flushes each batch as soon as it
// has handed it over, and a flush ends every linger.
const producerLinger = 50 * time.Millisecond

// batchOverhead is what Kafka's record-batch framing adds around records.
const batchOverhead = 4096

// producer is the Kafka producer of one leadership term: a franz-go client
// with the outbox's transactional id, initialised right after the lock was
// taken and before anything is read, so the broker has fenced every older
// producer of that id (an old leader's open transaction is aborted, and its
// commit refused) before this term publishes anything.
type producer struct {
	cl    *kgo.Client
	txnID string // empty: idempotent only, no transactions (benchmarks)
}

// termError ends the leadership term: the producer's transaction is in a
// state this relay cannot vouch for (fenced by a newer leader, a commit or
// abort that failed or whose outcome is unknown). The producer is closed
// and the session dropped, which releases the lock; whoever leads next
// initialises the transactional id again, which aborts or completes what
// was left open.
type termError struct {
	err error
	// stepDown: the leader could not publish for StepDownAfter; it waits
	// its turn before standing again.
	stepDown bool
}

func (e *termError) Error() string { return e.err.Error() }
func (e *termError) Unwrap() error { return e.err }

// startProducer builds the term's client and initialises its producer id.
func (r *Relay) startProducer(ctx context.Context, txnID string) (*producer, error) {
	cl, err := r.kafka.NewClient(r.producerOpts(txnID)...)
	if err != nil {
		return nil, &fatalError{err} // options the client refuses: retrying cannot help
	}
	ictx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	defer cancel()
	id, epoch, err := cl.ProducerID(ictx)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("initialise the producer (transactional id %q): %w", txnID, r.kafka.Explain("", err))
	}
	r.log.Info().Str("transactional_id", txnID).Int64("producer_id", id).Int16("producer_epoch", epoch).
		Msg("producer initialised: any older producer of this transactional id is fenced")
	return &producer{cl: cl, txnID: txnID}, nil
}

// producerOpts are the options of a term's client. Retries belong to
// franz-go here (they keep the producer's sequence numbers right), each
// bounded by WriteTimeout; the relay's own retry starts over with a new
// transaction.
func (r *Relay) producerOpts(txnID string) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.DefaultProduceTopic(r.cfg.Topic),
		// Keyed records go where the Java client sends them:
		// murmur2(key) mod partitions.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(producerLinger),
		// A partition's batch stays under the broker's limit; the relay
		// holds back any single event above MaxMessageBytes before this.
		kgo.ProducerBatchMaxBytes(int32(r.cfg.MaxMessageBytes + batchOverhead)), //nolint:gosec // at most 64 MiB, validated
		kgo.MaxBufferedRecords(max(r.cfg.BatchSize, 10_000)),
		kgo.ProduceRequestTimeout(r.cfg.WriteTimeout),
		kgo.RecordDeliveryTimeout(r.cfg.WriteTimeout),
	}
	if txnID != "" {
		opts = append(opts, kgo.TransactionalID(txnID), kgo.TransactionTimeout(r.cfg.TransactionTimeout))
	}
	return append(opts, r.extraOpts...)
}

// publish produces recs in one transaction and commits it, each step
// bounded by WriteTimeout; ctx should not be cancelled by the shutdown (the
// batch in flight is finished). A failed produce is aborted and returned
// as is: nothing of it is visible to read_committed consumers, and the
// term goes on. A fenced producer, a failed abort and a failed or
// unconfirmed commit return a *termError; a refused authentication or
// authorization a *fatalError.
func (r *Relay) publish(ctx context.Context, p *producer, recs []*kgo.Record) error {
	if p.txnID != "" {
		if err := p.cl.BeginTransaction(); err != nil {
			return r.classify(fmt.Errorf("begin transaction: %w", err))
		}
	}
	var (
		mu     sync.Mutex
		failed error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if failed == nil {
				failed = err
			}
			mu.Unlock()
		}
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	defer cancel()
	for _, rec := range recs {
		p.cl.Produce(pctx, rec, promise)
	}
	err := p.cl.Flush(pctx)
	mu.Lock()
	if failed != nil {
		err = failed // franz-go would commit what succeeded; a batch is all or nothing
	}
	mu.Unlock()
	if err == nil && r.beforeCommit != nil {
		err = r.beforeCommit()
	}
	if err != nil {
		return r.abort(ctx, p, fmt.Errorf("produce: %w", err))
	}
	if p.txnID == "" {
		return nil
	}
	cctx, ccancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	defer ccancel()
	if err := p.cl.EndTransaction(cctx, kgo.TryCommit); err != nil {
		if c := r.classify(fmt.Errorf("commit: %w", err)); isTerm(c) {
			return c
		}
		// Whatever went wrong, the outcome is now the broker's: the next
		// initialisation of the transactional id settles it.
		return &termError{err: fmt.Errorf("commit failed, its outcome settled by the next leader's producer: %w", r.kafka.Explain("", err))}
	}
	return nil
}

// abort aborts the open transaction after a failed produce and returns
// cause, unless cause or the abort ends the term or Run.
func (r *Relay) abort(ctx context.Context, p *producer, cause error) error {
	if c := r.classify(cause); isTerm(c) {
		return c
	}
	actx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	defer cancel()
	err := p.cl.AbortBufferedRecords(actx)
	if err == nil && p.txnID != "" {
		err = p.cl.EndTransaction(actx, kgo.TryAbort)
	}
	if err != nil {
		if c := r.classify(err); isTerm(c) {
			return fmt.Errorf("%w; then abort: %w", cause, c)
		}
		return &termError{err: fmt.Errorf("%w; then abort failed (the next leader's initialisation aborts it): %w", cause, err)}
	}
	return r.kafka.Explain("", cause)
}

// classify explains err and marks what ends Run (authentication,
// authorization) or the term (a newer producer of the same transactional
// id exists).
func (r *Relay) classify(err error) error {
	err = r.kafka.Explain("", err)
	switch {
	case kafkasec.Fatal(err):
		return &fatalError{err}
	case errors.Is(err, kerr.ProducerFenced), errors.Is(err, kerr.InvalidProducerEpoch),
		errors.Is(err, kerr.InvalidProducerIDMapping), errors.Is(err, kerr.TransactionalIDNotFound):
		return &termError{err: fmt.Errorf("fenced: a newer producer of this transactional id exists (another relay took the lead): %w", err)}
	}
	return err
}

// isTerm reports whether err ends the term or Run.
func isTerm(err error) bool {
	var term *termError
	var fatal *fatalError
	return errors.As(err, &term) || errors.As(err, &fatal)
}

// close closes the client. An open transaction (only after a failed abort
// or commit) stays open at the broker until the next initialisation of
// the transactional id aborts it, or TransactionTimeout.
func (p *producer) close() { p.cl.Close() }
