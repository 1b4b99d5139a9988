package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/invoicesync/invoicesync/pkg/settings"
	"github.com/invoicesync/invoicesync/receiver/internal/deadletter"
)

const dlqShowSummary = `receiver dlq show ID [--json]

Shows one dead-letter entry in full: why and when it failed, where it came
from, what was done with it (new, replayed, handled), every header as stored,
the key, the raw value, and the value decoded as an event of the contract
(envelope and payload, indented) or the error that keeps it from decoding.
ID is partition:offset, as "receiver dlq list" shows it.`

// dlqShow runs `receiver dlq show`.
func (a *app) dlqShow(ctx context.Context, args []string) error {
	var asJSON bool
	cfg, ids, err := a.dlqConfigure("show", dlqShowSummary, args, func(s *settings.Set) {
		s.Bool(&asJSON, "json", "", false, "print the entry as one JSON object, with its value and any decode error")
	})
	if err != nil {
		return err
	}
	if err := checkIDs("show", ids); err != nil {
		return err
	}
	if len(ids) > 1 {
		return fmt.Errorf("receiver dlq show: one entry id at a time, got %d", len(ids))
	}
	s, err := a.openDLQ(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.close()
	it, err := s.queue.Get(ctx, ids[0])
	if err != nil {
		return err
	}
	d := deadletter.Decode(it.Value)
	if asJSON {
		e := toJSON(it)
		v := string(it.Value)
		e.Value = &v
		if err := decodeErr(d); err != nil {
			e.DecodeError = err.Error()
		}
		return json.NewEncoder(a.stdout).Encode(e)
	}
	return writeEntry(a.stdout, s.queue.Topic(), it, d)
}

func decodeErr(d deadletter.Decoded) error {
	if d.EnvelopeErr != nil {
		return d.EnvelopeErr
	}
	return d.PayloadErr
}

// writeEntry prints an entry for a person.
func writeEntry(w io.Writer, topic string, it deadletter.Item, d deadletter.Decoded) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Entry %s of %s\n", it.ID, topic)
	field := func(name, value string) { fmt.Fprintf(&b, "  %-16s %s\n", name+":", value) }
	field("status", status(it))
	field("failed at", formatTime(it.FailedAt))
	field("class", it.Class)
	field("reason", it.Reason)
	field("attempt", fmt.Sprint(it.Attempt))
	field("consumer group", it.Group)
	field("came from", fmt.Sprintf("%s partition %d offset %d", it.OriginalTopic, it.OriginalPartition, it.OriginalOffset))
	field("key", printable(it.Key))
	field("event id", it.EventID)
	b.WriteString("\nHeaders (as stored):\n")
	for _, h := range it.Stored {
		fmt.Fprintf(&b, "  %s: %s\n", h.Key, printable(h.Value))
	}
	fmt.Fprintf(&b, "\nValue (%d bytes):\n  %s\n", len(it.Value), printable(it.Value))
	switch {
	case d.Envelope == nil:
		fmt.Fprintf(&b, "\nDoes not decode: %v\n", d.EnvelopeErr)
	default:
		env, err := json.MarshalIndent(d.Envelope, "  ", "  ")
		if err != nil {
			return fmt.Errorf("show %s: %w", it.ID, err)
		}
		fmt.Fprintf(&b, "\nDecoded envelope and payload:\n  %s\n", env)
		if d.PayloadErr != nil {
			fmt.Fprintf(&b, "\nPayload does not decode: %v\n", d.PayloadErr)
		} else {
			fmt.Fprintf(&b, "\nPayload is a valid %s.\n", d.Envelope.EventType)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// status describes the entry's mark.
func status(it deadletter.Item) string {
	m := it.Mark
	switch it.Status() {
	case deadletter.StateHandled:
		s := "handled at " + formatTime(m.HandledAt)
		if m.Note != "" {
			s += " (" + m.Note + ")"
		}
		if !m.ReplayedAt.IsZero() {
			s += ", replayed at " + formatTime(m.ReplayedAt)
		}
		return s
	case deadletter.StateReplayed:
		return "replayed at " + formatTime(m.ReplayedAt)
	default:
		return "new (never replayed nor handled)"
	}
}

// printable is b as text, quoted when it is not valid UTF-8.
func printable(b []byte) string {
	if b == nil {
		return "(none)"
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return fmt.Sprintf("%q", b)
}
