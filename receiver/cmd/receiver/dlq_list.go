package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/invoicesync/invoicesync/pkg/settings"
	"github.com/invoicesync/invoicesync/receiver/internal/deadletter"
)

const dlqListSummary = `Lists the dead-letter entries that match the filters, oldest failure first,
as a table (ID, failed at, class, attempt, key, event id, status, reason cut
to 60 characters), or with --json as one JSON object a line (for jq), on a
terminal or not. Handled entries are hidden unless --all. Counts and hints go
to stderr, so stdout holds only the entries. Exit 0 also when none match.`

// dlqList runs `receiver dlq list`.
func (a *app) dlqList(ctx context.Context, args []string) error {
	var ff filterFlags
	var o deadletter.ListOptions
	var asJSON bool
	cfg, rest, err := a.dlqConfigure("list", dlqListSummary, args, func(s *settings.Set) {
		ff.register(s)
		s.Bool(&o.All, "all", "", false, "include handled entries")
		s.Bool(&asJSON, "json", "", false, "print one JSON object per entry and line instead of a table")
		s.Int(&o.Limit, "limit", "", 0, "show only the N most recent matching entries (0: all)")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("receiver dlq list: unexpected argument %q (it takes filters, not ids: see --help)", rest[0])
	}
	if o.Filter, err = ff.filter(time.Now); err != nil {
		return err
	}
	if o.Limit < 0 {
		return fmt.Errorf("--limit: %d is negative", o.Limit)
	}
	s, err := a.openDLQ(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.close()
	l, err := s.queue.List(ctx, o)
	if err != nil {
		return fmt.Errorf("list %s: %w", s.queue.Topic(), err)
	}
	if asJSON {
		err = writeJSONLines(a.stdout, l.Items)
	} else if len(l.Items) > 0 {
		err = writeTable(a.stdout, l.Items)
	}
	if err != nil {
		return err
	}
	a.listNotes(s.queue.Topic(), l)
	return nil
}

// listNotes tells, on stderr, what the listing leaves out.
func (a *app) listNotes(topic string, l deadletter.Listing) {
	if len(l.Items) == 0 {
		fmt.Fprintf(a.stderr, "no dead-letter entries match in %s\n", topic)
	} else if len(l.Items) < l.Matched {
		fmt.Fprintf(a.stderr, "showing the %d most recent of %d matching entries (--limit 0 shows all)\n", len(l.Items), l.Matched)
	} else {
		fmt.Fprintf(a.stderr, "%d %s\n", l.Matched, plural(l.Matched, "entry", "entries"))
	}
	if l.Hidden > 0 {
		fmt.Fprintf(a.stderr, "%d handled %s hidden (--all shows them)\n", l.Hidden, plural(l.Hidden, "entry", "entries"))
	}
	if l.Invalid > 0 {
		fmt.Fprintf(a.stderr, "%d %s in %s %s not dead-letter entries (no %s header): skipped\n",
			l.Invalid, plural(l.Invalid, "message", "messages"), topic, plural(l.Invalid, "is", "are"), "dlq-original-topic")
	}
}

// writeTable prints items as an aligned table.
func writeTable(w io.Writer, items []deadletter.Item) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFAILED AT\tCLASS\tATTEMPT\tKEY\tEVENT ID\tSTATUS\tREASON")
	for _, it := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", it.ID, formatTime(it.FailedAt), cell(it.Class, 20),
			it.Attempt, cell(string(it.Key), 24), cell(it.EventID, 36), it.Status(), cell(it.Reason, 60))
	}
	return tw.Flush()
}

// cell makes s fit on one table line in at most n characters.
func cell(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.Trim(fmt.Sprintf("%q", s), `"`)
	}
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// entryJSON is an entry in --json output.
type entryJSON struct {
	ID                string       `json:"id"`
	Partition         int          `json:"partition"`
	Offset            int64        `json:"offset"`
	Status            string       `json:"status"`
	FailedAt          time.Time    `json:"failedAt"`
	Class             string       `json:"class"`
	Reason            string       `json:"reason"`
	Attempt           int          `json:"attempt"`
	ConsumerGroup     string       `json:"consumerGroup"`
	Key               string       `json:"key"`
	EventID           string       `json:"eventId"`
	OriginalTopic     string       `json:"originalTopic"`
	OriginalPartition int          `json:"originalPartition"`
	OriginalOffset    int64        `json:"originalOffset"`
	ReplayedAt        *time.Time   `json:"replayedAt,omitempty"`
	HandledAt         *time.Time   `json:"handledAt,omitempty"`
	Note              string       `json:"note,omitempty"`
	Headers           []headerJSON `json:"headers"`
	// Value and DecodeError are in show's output only.
	Value       *string `json:"value,omitempty"`
	DecodeError string  `json:"decodeError,omitempty"`
}

type headerJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func toJSON(it deadletter.Item) entryJSON {
	e := entryJSON{ID: it.ID, Partition: it.Partition, Offset: it.Offset, Status: it.Status(),
		FailedAt: it.FailedAt, Class: it.Class, Reason: it.Reason, Attempt: it.Attempt, ConsumerGroup: it.Group,
		Key: string(it.Key), EventID: it.EventID, OriginalTopic: it.OriginalTopic,
		OriginalPartition: it.OriginalPartition, OriginalOffset: it.OriginalOffset, Note: it.Mark.Note,
		Headers: make([]headerJSON, 0, len(it.Stored))}
	if !it.Mark.ReplayedAt.IsZero() {
		e.ReplayedAt = &it.Mark.ReplayedAt
	}
	if !it.Mark.HandledAt.IsZero() {
		e.HandledAt = &it.Mark.HandledAt
	}
	for _, h := range it.Stored {
		e.Headers = append(e.Headers, headerJSON{Key: h.Key, Value: string(h.Value)})
	}
	return e
}

func writeJSONLines(w io.Writer, items []deadletter.Item) error {
	enc := json.NewEncoder(w)
	for _, it := range items {
		if err := enc.Encode(toJSON(it)); err != nil {
			return fmt.Errorf("write json: %w", err)
		}
	}
	return nil
}
