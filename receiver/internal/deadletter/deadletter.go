// Package deadletter is what operators do with a dead-letter topic: list its
// entries with filters, show one in full, replay entries to their original
// topic (rate-limited, resumable, with loop protection), and mark entries
// handled. It works behind three small interfaces — reading the topic,
// publishing, and the marks store — so `receiver dlq` only parses flags and
// prints.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/dlq"
)

// Source reads a dead-letter topic.
type Source interface {
	// Scan calls fn for every message of the topic, each partition in
	// offset order, from the first offset to the end offsets as of the
	// call: it ends, it does not tail. An error from fn stops the scan and
	// is returned.
	Scan(ctx context.Context, fn func(*kgo.Record) error) error
	// Fetch returns the message at partition:offset, or an error wrapping
	// ErrNotFound that says why there is none.
	Fetch(ctx context.Context, partition int, offset int64) (*kgo.Record, error)
}

// Publisher writes a record to the topic it names and returns once the
// broker acknowledged it.
type Publisher interface {
	Publish(ctx context.Context, r *kgo.Record) error
}

// Marks stores what was done with the entries of dead-letter topics.
type Marks interface {
	// Load returns the marks of topic's entries by entry id.
	Load(ctx context.Context, topic string) (map[string]Mark, error)
	// Set records m.State (with m.Note when handled) for m's entry, now.
	Set(ctx context.Context, topic string, m Mark) error
	// Clear removes the entry's mark; it reports whether there was one.
	Clear(ctx context.Context, topic string, partition int, offset int64) (bool, error)
}

// Entry states.
const (
	StateNew      = "new"      // nothing was done with the entry
	StateReplayed = "replayed" // republished to its original topic
	StateHandled  = "handled"  // dealt with by hand: hidden by list, never replayed
)

// Mark is what was done with one entry.
type Mark struct {
	// Partition and Offset locate the entry in the dead-letter topic.
	Partition int
	Offset    int64
	// State is StateReplayed or StateHandled.
	State string
	// ReplayedAt is when it was last replayed (zero if never).
	ReplayedAt time.Time
	// HandledAt is when it was marked handled (zero if not).
	HandledAt time.Time
	// Note is the operator's note given with mark-handled.
	Note string
}

// Item is an entry with what the tool knows about it.
type Item struct {
	dlq.Entry
	// Stored are the headers as stored in the dead-letter topic, dlq-* included.
	Stored []kgo.RecordHeader
	// EventID is the original event's id, "" when it cannot be told.
	EventID string
	// Mark is the entry's mark; its State is "" for a new entry.
	Mark Mark
}

// Status is the entry's state: StateNew, StateReplayed or StateHandled.
func (it Item) Status() string {
	if it.Mark.State == "" {
		return StateNew
	}
	return it.Mark.State
}

// ErrNotFound marks an entry id that names no entry of the topic.
var ErrNotFound = errors.New("no such dead-letter entry")

// Queue is one dead-letter topic and what can be done with its entries.
type Queue struct {
	topic string
	src   Source
	pub   Publisher
	marks Marks

	// PublishTimeout bounds publishing and recording one replayed entry.
	// Default 30s.
	PublishTimeout time.Duration
	// InterruptGrace is how long the entry in flight may still take to be
	// published and recorded once the replay is interrupted. Default 2s.
	InterruptGrace time.Duration
}

// New returns the queue of dead-letter topic, read through src, replayed
// through pub, with its marks in marks.
func New(topic string, src Source, pub Publisher, marks Marks) (*Queue, error) {
	if topic == "" || src == nil || pub == nil || marks == nil {
		return nil, errors.New("dead-letter queue: a topic, a source, a publisher and a marks store are required")
	}
	return &Queue{topic: topic, src: src, pub: pub, marks: marks, PublishTimeout: 30 * time.Second, InterruptGrace: 2 * time.Second}, nil
}

// Topic is the dead-letter topic's name.
func (q *Queue) Topic() string { return q.topic }

// Get returns the entry id ("partition:offset") with its mark.
func (q *Queue) Get(ctx context.Context, id string) (Item, error) {
	items, err := q.getAll(ctx, []string{id})
	if err != nil {
		return Item{}, err
	}
	return items[0], nil
}

// getAll returns the entries ids, each once, in the order given; it fails
// on the first id that names no entry.
func (q *Queue) getAll(ctx context.Context, ids []string) ([]Item, error) {
	if len(ids) == 0 {
		return nil, errors.New("no entry id given (want partition:offset, as listed by dlq list)")
	}
	marks, err := q.marks.Load(ctx, q.topic)
	if err != nil {
		return nil, fmt.Errorf("load marks: %w", err)
	}
	items := make([]Item, 0, len(ids))
	seen := map[string]bool{}
	for _, id := range ids {
		p, o, err := dlq.ParseID(id)
		if err != nil {
			return nil, err
		}
		m, err := q.src.Fetch(ctx, p, o)
		if err != nil {
			return nil, err
		}
		it, err := newItem(m, marks)
		if err != nil {
			return nil, fmt.Errorf("%w: %s in %s is not a dead-letter entry (%v)", ErrNotFound, id, q.topic, err)
		}
		if !seen[it.ID] {
			seen[it.ID] = true
			items = append(items, it)
		}
	}
	return items, nil
}

// scan reads every entry and calls fn with those that match f. Messages
// that are not dead-letter entries are counted in *invalid and skipped.
func (q *Queue) scan(ctx context.Context, f Filter, invalid *int, fn func(Item)) error {
	marks, err := q.marks.Load(ctx, q.topic)
	if err != nil {
		return fmt.Errorf("load marks: %w", err)
	}
	err = q.src.Scan(ctx, func(m *kgo.Record) error {
		it, err := newItem(m, marks)
		if err != nil {
			*invalid++
			return nil
		}
		if f.Match(it.Entry) {
			fn(it)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", q.topic, err)
	}
	return nil
}

func newItem(m *kgo.Record, marks map[string]Mark) (Item, error) {
	e, err := dlq.Parse(m)
	if err != nil {
		return Item{}, err
	}
	return Item{Entry: e, Stored: m.Headers, EventID: eventID(e), Mark: marks[e.ID]}, nil
}

// sortItems orders items by failure time, then by place in the topic.
func sortItems(items []Item) {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if !a.FailedAt.Equal(b.FailedAt) {
			return a.FailedAt.Before(b.FailedAt)
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
}
