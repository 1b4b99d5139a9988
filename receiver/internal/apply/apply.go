// Package apply turns invoice-history events from Kafka into changes of the
// receiver's store: it decodes and checks each envelope and payload against
// the contract, maps them onto the receiver's rows and applies a whole batch
// in one transaction, where the store records every event id and applies
// the version guard. It is the consume.BatchHandler of `receiver serve`, and
// it tells the consumer which failures are permanent, with the dead-letter
// class that says why.
package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/logging"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
	"github.com/invoicesync/invoicesync/receiver/internal/transform"
)

// ErrUnprocessable marks an event this build can never apply as it is: not
// JSON, breaking the contract (the error names the field), of another
// aggregate or event type, of an unsupported schema major version, or not
// storable. Such errors are also marked consume.Permanent with their
// dead-letter class, so the consumer dead-letters the event and moves on.
var ErrUnprocessable = errors.New("unprocessable event")

// Applier stores a batch of history changes in one transaction; *store.Store
// is one.
type Applier interface {
	ApplyBatch(ctx context.Context, changes []store.History) ([]store.Outcome, error)
}

// Stats count the events the handler applied, by outcome.
type Stats struct {
	// Applied and Deleted events changed a history.
	Applied, Deleted int64
	// Stale events carried a version not newer than the stored one.
	Stale int64
	// Duplicate events had been applied before (same event id).
	Duplicate int64
}

// Config tunes a Handler. Every field has a default.
type Config struct {
	// Location is the zone in which an invoice's issue instant becomes its
	// issue date. Default UTC.
	Location *time.Location
	// Metrics, when set, receives the handler's series:
	// invoicesync_receiver_events_total{outcome} and
	// invoicesync_receiver_end_to_end_latency_seconds. Default nil: no
	// metrics.
	Metrics prometheus.Registerer
}

// Handler applies invoice_history.changed events.
type Handler struct {
	store                               Applier
	loc                                 *time.Location
	applied, deleted, stale, duplicated atomic.Int64
	metrics                             *handlerMetrics // nil: no metrics
}

// New returns a handler applying to s, and registers its series on
// cfg.Metrics when set.
func New(s Applier, cfg Config) (*Handler, error) {
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	m, err := newHandlerMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Handler{store: s, loc: cfg.Location, metrics: m}, nil
}

// Stats returns the outcome counts so far; safe while the consumer runs.
func (h *Handler) Stats() Stats {
	return Stats{Applied: h.applied.Load(), Deleted: h.deleted.Load(), Stale: h.stale.Load(), Duplicate: h.duplicated.Load()}
}

// HandleBatch decodes every record, then applies them all in one
// transaction; it returns nil once they are committed (or known to be
// duplicates or stale). A message that cannot be decoded, breaks the
// contract or is refused by the database fails the batch permanently,
// with its dead-letter class; the consumer then hands the messages over one
// by one so only that one is dead-lettered. Other errors (the database is
// unreachable, a deadlock, anything unexpected) are transient: the consumer
// retries, so nothing is lost.
func (h *Handler) HandleBatch(ctx context.Context, recs []*kgo.Record) error {
	rows := make([]store.History, len(recs))
	for i, r := range recs {
		row, err := h.decode(r)
		if err != nil {
			return err
		}
		rows[i] = row
	}
	outcomes, err := h.store.ApplyBatch(ctx, rows)
	if errors.Is(err, store.ErrRejected) {
		return consume.Permanent(dlq.ClassConstraint, fmt.Errorf("%w: %w", ErrUnprocessable, err))
	}
	if err != nil {
		return err
	}
	h.record(ctx, recs, rows, outcomes)
	return nil
}

// record counts the outcomes, observes the end-to-end latency of the
// changes (the batch transaction has just committed) and logs one debug
// line per event.
func (h *Handler) record(ctx context.Context, recs []*kgo.Record, rows []store.History, outcomes []store.Outcome) {
	log := logging.Ctx(ctx)
	now := time.Now()
	for i, o := range outcomes {
		h.metrics.observe(o, rows[i].SourceOccurredAt, now)
		switch o {
		case store.Applied:
			h.applied.Add(1)
		case store.Deleted:
			h.deleted.Add(1)
		case store.Stale:
			h.stale.Add(1)
		case store.Duplicate:
			h.duplicated.Add(1)
		}
		log.Debug().
			Int32(logging.FieldPartition, recs[i].Partition).
			Int64(logging.FieldOffset, recs[i].Offset).
			Str(logging.FieldEventID, rows[i].SourceEventID).
			Str(logging.FieldAggregateID, contract.AggregateID(rows[i].HistoryID)).
			Stringer("outcome", o).
			Int64("version", rows[i].SourceVersion).
			Str("email_status", rows[i].EmailStatus).
			Msg("event handled")
	}
}

// decode checks r against the contract and maps it onto a store row. Its
// errors are permanent, with the dead-letter class of the problem:
//
//   - dlq.ClassDecode: the value is not JSON (or is empty: a tombstone);
//   - dlq.ClassUnsupported: a schema major version this build cannot read.
//     Nothing is wrong with the event: it is dead-lettered so an operator
//     can replay it once the receiver is upgraded, instead of holding the
//     partition or guessing at its meaning;
//   - dlq.ClassSchema: the event breaks the contract (a field, a type,
//     another aggregate or event type);
//   - dlq.ClassTransform: a valid event that does not map onto the
//     receiver's rows.
func (h *Handler) decode(r *kgo.Record) (store.History, error) {
	fail := func(class, what string, err error) (store.History, error) {
		return store.History{}, consume.Permanent(class, fmt.Errorf("%w: %s: %w", ErrUnprocessable, what, err))
	}
	env, err := contract.DecodeEnvelope(r.Value)
	switch {
	case err != nil && !json.Valid(r.Value):
		return fail(dlq.ClassDecode, "envelope", err)
	case errors.Is(err, contract.ErrUnsupportedSchema):
		return fail(dlq.ClassUnsupported, "envelope", err)
	case err != nil:
		return fail(dlq.ClassSchema, "envelope", err)
	case env.AggregateType != contract.AggregateTypeHistory:
		return fail(dlq.ClassSchema, "envelope", fmt.Errorf("%w: aggregateType: %q, this topic carries %q",
			contract.ErrInvalid, env.AggregateType, contract.AggregateTypeHistory))
	case env.EventType != contract.EventTypeHistoryChanged:
		return fail(dlq.ClassSchema, "envelope", fmt.Errorf("%w: eventType: %q, this handler applies %q",
			contract.ErrInvalid, env.EventType, contract.EventTypeHistoryChanged))
	}
	// DecodeForApply: an ERROR needs only its history id, so a deletion
	// applies even when the rest of its payload no longer validates.
	payload, err := contract.DecodeForApply(env.Payload)
	if err != nil {
		return fail(dlq.ClassSchema, "payload", err)
	}
	row, err := transform.History(env, payload, h.loc)
	if err != nil {
		return fail(dlq.ClassTransform, "payload", err)
	}
	return row, nil
}
