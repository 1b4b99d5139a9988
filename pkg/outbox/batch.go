package outbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/logging"
)

// row is one outbox row.
type row struct {
	id            int64
	eventID       string
	aggregateType string
	aggregateID   string
	eventType     string
	version       int64
	payload       []byte
	occurredAt    time.Time
}

// batch is what one round publishes: the records and the outbox ids they
// came from, in id order.
type batch struct {
	recs []*kgo.Record
	ids  []int64
}

// publishError is a failure to publish whose transaction was aborted: the
// relay keeps its leadership and producer and retries, where a database
// error or a *termError costs it the term.
type publishError struct {
	err         error
	count       int
	first, last int64
}

func (e *publishError) Error() string { return e.err.Error() }

// drain publishes batches while this session leads: at once while batches
// come back full, otherwise after a NOTIFY or PollInterval. It returns nil
// when ctx ends, and the error when the database fails or the term ends
// (the session is then dropped) or when Run must end.
func (r *Relay) drain(ctx context.Context, s *session, p *producer, bo *backoff) error {
	bo.reset()
	var emptySince time.Time // start of the current run of empty reads while busy
	for ctx.Err() == nil {
		n, err := r.round(ctx, s, p)
		var pe *publishError
		switch {
		case errors.As(err, &pe):
			r.stats.errors.Add(1)
			if failed, stepDown := r.noteFailure(pe.err); stepDown {
				return &termError{err: fmt.Errorf("could not publish for %s (RELAY_STEP_DOWN_AFTER %s): %w",
					failed.Round(time.Millisecond), r.cfg.StepDownAfter, pe.err), stepDown: true}
			}
			d := bo.next()
			r.log.Error().Err(pe.err).Int("count", pe.count).Int64("first_id", pe.first).
				Int64("last_id", pe.last).Dur("retry_in", d).Msg("publish failed: nothing deleted, retrying")
			sleep(ctx, d)
			continue
		case err != nil:
			return err
		}
		r.failing.Store(nil)
		bo.reset()
		if err := r.pace(ctx, s, n, &emptySince); err != nil {
			return err
		}
	}
	return nil
}

// pace decides what follows a round that found n rows. Busy (rows found
// lately, writers not notifying): read again at once after a full batch,
// else after BusyPollInterval. Idle for IdleAfter: tell writers to notify,
// read once more (a commit may have skipped its NOTIFY just before), then
// wait for a NOTIFY or PollInterval.
func (r *Relay) pace(ctx context.Context, s *session, n int, emptySince *time.Time) error {
	switch {
	case n >= r.cfg.BatchSize:
		return r.busy(ctx, s, emptySince)
	case n > 0:
		if err := r.busy(ctx, s, emptySince); err != nil {
			return err
		}
		sleep(ctx, r.cfg.BusyPollInterval)
		return nil
	case !s.idleFlag || s.listening:
		d := r.cfg.PollInterval
		if s.settle {
			d, s.settle = min(d, settleWait), false
		}
		return s.wait(ctx, d)
	case emptySince.IsZero():
		*emptySince = time.Now()
	case time.Since(*emptySince) >= r.cfg.IdleAfter:
		// Listening from here on; the next round reads once more before waiting.
		return s.setListening(ctx, r.cfg.Channel, true)
	}
	sleep(ctx, r.cfg.BusyPollInterval)
	return nil
}

// settleWait is the first wait after turning listening on: long enough for
// a commit that read the flag just before (its WAL flush) to become visible.
const settleWait = 50 * time.Millisecond

// busy stops writers' NOTIFYs (a round found rows) and restarts the idle clock.
func (r *Relay) busy(ctx context.Context, s *session, emptySince *time.Time) error {
	*emptySince = time.Time{}
	if s.idleFlag && s.listening {
		return s.setListening(ctx, r.cfg.Channel, false)
	}
	return nil
}

// round reads, publishes and deletes one batch. The rows are read after the
// term's producer was initialised (see producer), so a batch can only be
// committed by a producer no newer leader has fenced: what an old leader
// commits precedes, on every partition, all that a newer one publishes.
func (r *Relay) round(ctx context.Context, s *session, p *producer) (int, error) {
	rows, err := r.fetch(ctx, s)
	if err != nil {
		return 0, err
	}
	b := r.encode(rows)
	if len(b.recs) == 0 {
		return len(rows), nil
	}
	first, last := b.ids[0], b.ids[len(b.ids)-1]
	// The batch in flight is finished even when ctx ends: each step is
	// bounded by WriteTimeout, and a publish without its delete is a
	// duplicate later.
	started := time.Now()
	if err := r.publish(context.WithoutCancel(ctx), p, b.recs); err != nil {
		if isTerm(err) {
			return 0, fmt.Errorf("publish %d events (outbox ids %d..%d; nothing deleted): %w", len(b.ids), first, last, err)
		}
		return 0, &publishError{err, len(b.ids), first, last}
	}
	r.publishTime.Observe(time.Since(started).Seconds())
	r.batchSize.Observe(float64(len(b.recs)))
	r.stats.published.Add(uint64(len(b.recs)))
	if r.afterPublish != nil {
		if err := r.afterPublish(); err != nil {
			return 0, &fatalError{fmt.Errorf("after publish: %w", err)}
		}
	}
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.WriteTimeout)
	defer dcancel()
	// Planned with the ids at hand every time (QueryExecModeExec, an unnamed
	// statement), never with a cached generic plan: the outbox stays small
	// while rows churn through it, and a generic plan made while it is tiny
	// scans the whole table, dead rows included, on every delete.
	if _, err := s.conn.Exec(dctx, "DELETE FROM "+r.table+" WHERE id = ANY($1)", pgx.QueryExecModeExec, b.ids); err != nil {
		return 0, fmt.Errorf("delete %d published events (outbox ids %d..%d; they will be published again): %w",
			len(b.ids), first, last, err)
	}
	r.stats.batches.Add(1)
	if e := r.log.Debug(); e.Enabled() {
		e.Int("count", len(b.ids)).Int64("first_id", first).Int64("last_id", last).
			Strs("event_ids", eventIDs(b.recs)).Msg("published")
	}
	return len(rows), nil
}

// fetch reads the rows to publish next, leaving out the aggregates held
// back: on a table with lanes the oldest live rows, and bulk rows only to
// fill the rest of the batch; otherwise the oldest rows.
func (r *Relay) fetch(ctx context.Context, s *session) ([]row, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	defer cancel()
	const cols = `id, event_id::text, aggregate_type, aggregate_id, event_type, version, payload, occurred_at`
	query := `SELECT ` + cols + ` FROM ` + r.table + `
	  WHERE aggregate_id <> ALL($1::text[]) ORDER BY id LIMIT $2`
	if s.lanes {
		// One round trip: each branch walks its lane's index. Without
		// parallel workers (off on the session) Append runs the branches in
		// order and LIMIT stops it early: live rows first, bulk rows only
		// to fill the batch, and no bulk row read when live fills it.
		branch := func(lane int) string {
			return fmt.Sprintf(`(SELECT %s FROM %s WHERE aggregate_id <> ALL($1::text[]) AND lane = %d
			  ORDER BY id LIMIT $2)`, cols, r.table, lane)
		}
		query = branch(0) + ` UNION ALL ` + branch(1) + ` LIMIT $2`
	}
	rows, err := s.conn.Query(ctx, query, r.held.list(time.Now()), r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(rs pgx.CollectableRow) (row, error) {
		var x row
		err := rs.Scan(&x.id, &x.eventID, &x.aggregateType, &x.aggregateID, &x.eventType,
			&x.version, &x.payload, &x.occurredAt)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

func (r *Relay) encode(rows []row) batch {
	b := batch{recs: make([]*kgo.Record, 0, len(rows)), ids: make([]int64, 0, len(rows))}
	var stuck map[string]bool
	for i := range rows {
		x := &rows[i]
		if stuck[x.aggregateID] {
			continue
		}
		m, err := record(x, r.cfg.Topic)
		if size := recordSize(m); err == nil && size > r.cfg.MaxMessageBytes {
			err = fmt.Errorf("event is %d bytes, above the relay's limit of %d (RELAY_MAX_MESSAGE_BYTES; "+
				"raise it with the topic's max.message.bytes, or fix or delete the row)", size, r.cfg.MaxMessageBytes)
		}
		if err != nil {
			if stuck == nil {
				stuck = map[string]bool{}
			}
			stuck[x.aggregateID] = true
			r.hold(x, err)
			continue
		}
		b.recs = append(b.recs, m)
		b.ids = append(b.ids, x.id)
	}
	return b
}

// recordSize is what m weighs against the broker's limit: key, value and
// headers (the record's framing adds a few bytes more).
func recordSize(m *kgo.Record) int {
	if m == nil {
		return 0
	}
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// hold records and reports an event that cannot be published.
func (r *Relay) hold(x *row, err error) {
	r.held.add(x.aggregateID, time.Now())
	r.stats.errors.Add(1)
	r.stats.poison.Add(1)
	r.log.Error().Err(err).Int64("outbox_id", x.id).Str(logging.FieldEventID, x.eventID).
		Str(logging.FieldAggregateID, x.aggregateID).Str("aggregate_type", x.aggregateType).
		Int64("version", x.version).Dur("retry_in", r.cfg.MaxBackoff).
		Msg("event cannot be published: its aggregate is held back (fix or delete the outbox row)")
}

// record builds the Kafka record of one row for topic: keyed by aggregate
// id, the envelope as value, the envelope's fields also as headers.
func record(x *row, topic string) (*kgo.Record, error) {
	env := contract.Envelope{
		EventID:       x.eventID,
		EventType:     x.eventType,
		AggregateType: x.aggregateType,
		AggregateID:   x.aggregateID,
		Version:       x.version,
		OccurredAt:    x.occurredAt.UTC(),
		SchemaVersion: contract.SchemaVersion,
		Payload:       x.payload,
	}
	value, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(x.aggregateID),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: contract.HeaderEventID, Value: []byte(env.EventID)},
			{Key: contract.HeaderEventType, Value: []byte(env.EventType)},
			{Key: contract.HeaderAggregateType, Value: []byte(env.AggregateType)},
			{Key: contract.HeaderAggregateID, Value: []byte(env.AggregateID)},
			{Key: contract.HeaderVersion, Value: strconv.AppendInt(nil, env.Version, 10)},
			{Key: contract.HeaderSchemaVersion, Value: []byte(env.SchemaVersion)},
			{Key: contract.HeaderOccurredAt, Value: []byte(env.OccurredAt.Format(time.RFC3339Nano))},
		},
	}, nil
}

func eventIDs(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i := range recs {
		out[i] = string(recs[i].Headers[0].Value)
	}
	return out
}

// held is the set of aggregates held back because one of their events
// could not be published (not encodable, too large). It empties after retry so those events are looked
// at again (someone may have fixed the row).
type held struct {
	retry time.Duration
	ids   map[string]struct{}
	until time.Time
}

func (h *held) add(aggregateID string, now time.Time) {
	if len(h.ids) == 0 {
		h.ids = map[string]struct{}{}
		h.until = now.Add(h.retry)
	}
	h.ids[aggregateID] = struct{}{}
}

// list returns the aggregates held back now, never nil.
func (h *held) list(now time.Time) []string {
	if now.After(h.until) {
		clear(h.ids)
	}
	out := make([]string, 0, len(h.ids))
	for id := range h.ids {
		out = append(out, id)
	}
	return out
}
