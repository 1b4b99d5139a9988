package deadletter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/invoicesync/invoicesync/pkg/dlq"
)

// Selection says which entries a replay considers: the entries named by
// IDs, or every entry (All), or those matching Filter (All with a Filter is
// the Filter).
type Selection struct {
	// IDs name entries as "partition:offset".
	IDs []string
	// All selects every entry of the topic.
	All bool
	// Filter selects the matching entries.
	Filter Filter
}

// Validate checks that sel selects in exactly one way, with well-formed ids.
func (sel Selection) Validate() error {
	switch {
	case len(sel.IDs) > 0 && (sel.All || !sel.Filter.IsZero()):
		return errors.New("give entry ids, --all or filters, not several of them")
	case len(sel.IDs) == 0 && !sel.All && sel.Filter.IsZero():
		return errors.New("say which entries to replay: entry ids, --all, or filters")
	}
	for _, id := range sel.IDs {
		if _, _, err := dlq.ParseID(id); err != nil {
			return err
		}
	}
	return nil
}

// ReplayOptions are the safety rules of a replay.
type ReplayOptions struct {
	// MaxAttempts skips entries that already failed this many times or
	// more (loop protection). Default 5.
	MaxAttempts int
	// Force replays entries at or above MaxAttempts all the same.
	Force bool
	// Again replays entries that were already replayed.
	Again bool
}

// DefaultMaxAttempts is ReplayOptions.MaxAttempts when unset.
const DefaultMaxAttempts = 5

// Skip is a selected entry that the replay leaves alone, and why.
type Skip struct {
	Item
	// Why is a short reason, e.g. "already replayed (use --again)".
	Why string
}

// Plan is what a replay will do.
type Plan struct {
	// Replay are the entries to replay, oldest failure first.
	Replay []Item
	// Skipped are the selected entries it leaves alone.
	Skipped []Skip
}

// Topics are the original topics the plan's entries go back to.
func (p Plan) Topics() []string {
	seen := map[string]bool{}
	var out []string
	for _, it := range p.Replay {
		if !seen[it.OriginalTopic] {
			seen[it.OriginalTopic] = true
			out = append(out, it.OriginalTopic)
		}
	}
	return out
}

// Plan selects the entries of sel and sorts them into those to replay and
// those to skip under o. Of entries for the same original message (a
// consumer that crashed between the dead-letter publish and its offset
// commit dead-letters the message again on restart) only the oldest is
// considered. Every id is checked before anything is replayed.
func (q *Queue) Plan(ctx context.Context, sel Selection, o ReplayOptions) (Plan, error) {
	if err := sel.Validate(); err != nil {
		return Plan{}, err
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	var items []Item
	if len(sel.IDs) > 0 {
		var err error
		if items, err = q.getAll(ctx, sel.IDs); err != nil {
			return Plan{}, err
		}
	} else {
		var invalid int
		if err := q.scan(ctx, sel.Filter, &invalid, func(it Item) { items = append(items, it) }); err != nil {
			return Plan{}, err
		}
	}
	sortItems(items)
	var p Plan
	first := map[origin]string{} // the first entry of each original message
	for _, it := range items {
		from := origin{it.OriginalTopic, it.OriginalPartition, it.OriginalOffset, string(it.Key), it.EventID}
		dup, isDup := first[from]
		if !isDup {
			first[from] = it.ID
		}
		switch {
		case isDup:
			p.Skipped = append(p.Skipped, Skip{it, "duplicate of " + dup +
				" (the same message dead-lettered twice: a crash between the dead-letter publish and the offset commit)"})
		case it.Status() == StateHandled:
			p.Skipped = append(p.Skipped, Skip{it, "handled (dlq unmark it to replay it)"})
		case it.Status() == StateReplayed && !o.Again:
			p.Skipped = append(p.Skipped, Skip{it, "already replayed (use --again)"})
		case it.Attempt >= o.MaxAttempts && !o.Force:
			p.Skipped = append(p.Skipped, Skip{it, fmt.Sprintf("failed %d times, limit %d (use --force)", it.Attempt, o.MaxAttempts)})
		default:
			p.Replay = append(p.Replay, it)
		}
	}
	return p, nil
}

// origin is where a dead-lettered message was read from, with its key and
// event id so that entries carrying unreliable coordinates are not taken
// for copies of each other.
type origin struct {
	topic     string
	partition int
	offset    int64
	key       string
	eventID   string
}

// ErrInterrupted is returned by Replay when its context was cancelled
// before every entry was replayed.
var ErrInterrupted = errors.New("replay interrupted")

// Limiter paces the replay.
type Limiter interface {
	// Wait blocks until the next entry may go, or ctx is done.
	Wait(ctx context.Context) error
}

// Replay republishes each item's ReplayMessage to its original topic, one
// at a time, waiting for lim before each, and records it as replayed right
// after the broker acknowledged it, so a replay run again skips it. When ctx
// is cancelled, it finishes the entry in flight (within InterruptGrace) and
// returns ErrInterrupted. progress (may be nil) is called after each entry.
// It returns how many entries it replayed.
func (q *Queue) Replay(ctx context.Context, items []Item, lim Limiter, progress func(done int, it Item)) (int, error) {
	for i, it := range items {
		if err := lim.Wait(ctx); err != nil || ctx.Err() != nil {
			return i, fmt.Errorf("%w after %d of %d entries", ErrInterrupted, i, len(items))
		}
		if err := q.replayOne(ctx, it); err != nil {
			return i, err
		}
		if progress != nil {
			progress(i+1, it)
		}
	}
	return len(items), nil
}

// replayOne publishes and records one entry. An interrupt gives it
// InterruptGrace more to finish, so a healthy broker's acknowledgement is
// still recorded while a hung one does not hold the stop up; PublishTimeout
// bounds it in any case.
func (q *Queue) replayOne(ctx context.Context, it Item) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.PublishTimeout)
	defer cancel()
	stopGrace := context.AfterFunc(parent, func() {
		t := time.NewTimer(q.InterruptGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-ctx.Done():
		}
	})
	defer stopGrace()
	if err := q.pub.Publish(ctx, it.ReplayMessage()); err != nil {
		return fmt.Errorf("replay %s to %s: %w", it.ID, it.OriginalTopic, err)
	}
	m := Mark{Partition: it.Partition, Offset: it.Offset, State: StateReplayed}
	if err := q.marks.Set(ctx, q.topic, m); err != nil {
		return fmt.Errorf("entry %s was replayed but not recorded, so a new run replays it again "+
			"(harmless: the receiver deduplicates events): %w", it.ID, err)
	}
	return nil
}

// Every returns a Limiter that lets perSecond entries go each second, evenly
// spaced; perSecond <= 0 means no limit.
func Every(perSecond int) Limiter {
	if perSecond <= 0 {
		return unlimited{}
	}
	return &pacer{interval: time.Second / time.Duration(perSecond)}
}

type unlimited struct{}

func (unlimited) Wait(ctx context.Context) error { return ctx.Err() }

// pacer spaces calls interval apart; it is used by one goroutine.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func (p *pacer) Wait(ctx context.Context) error {
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	wait := p.next.Sub(now)
	p.next = p.next.Add(p.interval)
	if wait <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// idOf formats the id of an entry's place.
func idOf(partition int, offset int64) string { return dlq.FormatID(partition, offset) }
