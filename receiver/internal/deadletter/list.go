package deadletter

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/invoicesync/invoicesync/pkg/dlq"
)

// Filter selects entries; its zero value selects all of them.
type Filter struct {
	// Reason keeps entries whose reason contains it, ignoring case.
	Reason string
	// Class keeps entries of this error class (dlq.Class*).
	Class string
	// Key keeps entries whose message key (the aggregate id) is exactly it.
	Key string
	// Since keeps entries that failed at or after it (zero: no bound).
	Since time.Time
	// Until keeps entries that failed before it (zero: no bound).
	Until time.Time
}

// IsZero reports whether f selects every entry.
func (f Filter) IsZero() bool { return f == Filter{} }

// Match reports whether e passes every criterion of f.
func (f Filter) Match(e dlq.Entry) bool {
	switch {
	case f.Reason != "" && !strings.Contains(strings.ToLower(e.Reason), strings.ToLower(f.Reason)):
		return false
	case f.Class != "" && e.Class != f.Class:
		return false
	case f.Key != "" && string(e.Key) != f.Key:
		return false
	case !f.Since.IsZero() && e.FailedAt.Before(f.Since):
		return false
	case !f.Until.IsZero() && !e.FailedAt.Before(f.Until):
		return false
	}
	return true
}

// ParseTime reads a time bound: an RFC 3339 time, a date (midnight UTC), or
// a duration meaning that long before now ("24h", "90m").
func ParseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time (2024-05-01T10:00:00Z), a date (2024-05-01) "+
		"or a duration before now (24h, 90m)", s)
}

// ListOptions say which entries List returns.
type ListOptions struct {
	Filter
	// All includes handled entries, which are hidden otherwise.
	All bool
	// Limit keeps only the most recent Limit matching entries (0: all).
	Limit int
}

// Listing is the result of List.
type Listing struct {
	// Items are the matching entries, oldest failure first.
	Items []Item
	// Matched counts the matching entries before Limit was applied.
	Matched int
	// Hidden counts matching entries left out because they are handled.
	Hidden int
	// Invalid counts messages of the topic that are not dead-letter entries.
	Invalid int
}

// List reads the whole topic and returns the entries that match o.
func (q *Queue) List(ctx context.Context, o ListOptions) (Listing, error) {
	var l Listing
	err := q.scan(ctx, o.Filter, &l.Invalid, func(it Item) {
		if it.Status() == StateHandled && !o.All {
			l.Hidden++
			return
		}
		l.Items = append(l.Items, it)
	})
	if err != nil {
		return Listing{}, err
	}
	sortItems(l.Items)
	l.Matched = len(l.Items)
	if o.Limit > 0 && len(l.Items) > o.Limit {
		l.Items = l.Items[len(l.Items)-o.Limit:]
	}
	return l, nil
}
