// Package apply turns invoice-history events from Kafka into changes of the
// receiver's store: it decodes and checks the envelope and payload against
// the contract, maps them onto the receiver's rows and applies them under
// the store's version guard. It is the consume.Handler of `receiver serve`.
package apply

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/invoicesync/invoicesync/pkg/consume"
	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/logging"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
	"github.com/invoicesync/invoicesync/receiver/internal/transform"
)

// ErrUnprocessable marks an event this build can never apply as it is: not
// JSON, breaking the contract (the error names the field), of another
// aggregate or event type, or of an unsupported schema major version. Such
// errors are also marked consume.Permanent, so the consumer logs them as
// permanent; until a dead-letter topic exists the consumer keeps retrying,
// holding the partition until the event or this build is fixed.
var ErrUnprocessable = errors.New("unprocessable event")

// Applier stores one history change; *store.Store is one.
type Applier interface {
	Apply(ctx context.Context, h store.History) (store.Outcome, error)
}

// Handler applies invoice_history.changed events.
type Handler struct {
	store Applier
	loc   *time.Location
}

// New returns a handler applying to s, with issue dates in loc (nil: UTC).
func New(s Applier, loc *time.Location) *Handler {
	if loc == nil {
		loc = time.UTC
	}
	return &Handler{store: s, loc: loc}
}

// Handle decodes m and applies it; it returns nil once the change is
// committed or known to be stale. Errors wrapping ErrUnprocessable are
// about the event; others (the database) are worth retrying.
func (h *Handler) Handle(ctx context.Context, m kafka.Message) error {
	row, err := h.decode(m)
	if err != nil {
		return consume.Permanent(fmt.Errorf("%w: %w", ErrUnprocessable, err))
	}
	outcome, err := h.store.Apply(ctx, row)
	if err != nil {
		return err
	}
	logging.Ctx(ctx).Debug().
		Stringer("outcome", outcome).
		Int64("version", row.SourceVersion).
		Str("email_status", row.EmailStatus).
		Msg("event handled")
	return nil
}

// decode checks m against the contract and maps it onto a store row.
func (h *Handler) decode(m kafka.Message) (store.History, error) {
	env, err := contract.DecodeEnvelope(m.Value)
	if err != nil {
		return store.History{}, fmt.Errorf("envelope: %w", err)
	}
	if env.AggregateType != contract.AggregateTypeHistory {
		return store.History{}, fmt.Errorf("%w: aggregateType: %q, this topic carries %q",
			contract.ErrInvalid, env.AggregateType, contract.AggregateTypeHistory)
	}
	if env.EventType != contract.EventTypeHistoryChanged {
		return store.History{}, fmt.Errorf("%w: eventType: %q, this handler applies %q",
			contract.ErrInvalid, env.EventType, contract.EventTypeHistoryChanged)
	}
	payload, err := contract.DecodeHistory(env.Payload)
	if err != nil {
		return store.History{}, fmt.Errorf("payload: %w", err)
	}
	row, err := transform.History(env, payload, h.loc)
	if err != nil {
		return store.History{}, fmt.Errorf("payload: %w", err)
	}
	return row, nil
}
