package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/dlq"
)

// list and show, as an operator reads them.
func TestDlqListAndShow(t *testing.T) {
	e := newDlqEnv(t)
	out, notes := e.run(t, "dlq", "list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") ||
		!strings.HasPrefix(lines[1], "0:0") || !strings.Contains(lines[2], "decode") || !strings.Contains(notes, "3 entries") {
		t.Fatalf("list:\n%s\n%s", out, notes)
	}
	out, _ = e.run(t, "dlq", "list", "--json", "--class", "decode")
	var entry entryJSON
	if err := json.Unmarshal([]byte(out), &entry); err != nil || entry.ID != "0:1" || entry.Status != "new" ||
		entry.Key != "2" || entry.EventID != "00000000-0000-4000-8000-000000000002" || entry.Class != "decode" ||
		entry.Attempt != 1 || entry.OriginalTopic != e.orig || entry.ConsumerGroup != "g" || len(entry.Headers) < 9 {
		t.Fatalf("list --json --class decode = %s (%v)", out, err)
	}
	for _, args := range [][]string{{"--key", "404"}, {"--reason", "nope", "--json"}, {"--since", "1h"}} {
		out, notes = e.run(t, append([]string{"dlq", "list"}, args...)...)
		if out != "" || !strings.Contains(notes, "no dead-letter entries match") {
			t.Errorf("list %v = %q, notes %q; want nothing on stdout and a note", args, out, notes)
		}
	}

	out, _ = e.run(t, "dlq", "show", "0:0")
	for _, want := range []string{"Entry 0:0 of " + dlq.Topic(e.orig), "status:          new", "class:           schema",
		"Headers (as stored):", "dlq-reason: reason 0", "event-id: 00000000-0000-4000-8000-000000000001",
		"Decoded envelope and payload:", `"historyId": 1`, "Payload is a valid invoice_history.changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("show 0:0 lacks %q:\n%s", want, out)
		}
	}
	out, _ = e.run(t, "dlq", "show", "0:1")
	if !strings.Contains(out, "Does not decode: invalid event: envelope is not valid JSON") || !strings.Contains(out, "not json") {
		t.Errorf("show 0:1 (undecodable):\n%s", out)
	}
	out, _ = e.run(t, "dlq", "show", "--json", "0:1")
	if err := json.Unmarshal([]byte(out), &entry); err != nil || *entry.Value != "not json" || entry.DecodeError == "" {
		t.Errorf("show --json 0:1 = %s", out)
	}
	for id, want := range map[string]string{"0:9": "partition 0 holds offsets 0 to 2", "4:0": "partition 4 does not exist"} {
		_, _, err := invoke(context.Background(), e.env, "dlq", "show", id)
		if err == nil || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), want) {
			t.Errorf("show %s = %v, want an error naming it: %s", id, err, want)
		}
	}
}

// replay, dry run, confirmation, marks and loop protection, end to end.
func TestDlqReplayAndMarks(t *testing.T) {
	e := newDlqEnv(t)
	out, notes := e.run(t, "dlq", "replay", "--all", "--dry-run")
	if !strings.Contains(out, "0:0") || !strings.Contains(out, "0:1") || strings.Contains(out, "0:2") ||
		!strings.Contains(notes, "dry run: would replay 2 entries") || !strings.Contains(notes, "failed 5 times, limit 5 (use --force) (0:2)") {
		t.Fatalf("dry run:\n%s\n%s", out, notes)
	}
	if _, _, err := invoke(context.Background(), e.env, "dlq", "replay", "--all"); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("replay --all without a terminal or --yes = %v", err)
	}
	if got := e.k.ReadAll(t, e.orig, 0, 10*time.Second); len(got) != 0 {
		t.Fatalf("dry run or unconfirmed replay published %d messages", len(got))
	}

	out, _ = e.run(t, "dlq", "mark-handled", "0:1", "--note", "fixed upstream")
	if out != "0:1 handled\n" {
		t.Fatalf("mark-handled = %q", out)
	}
	if _, notes = e.run(t, "dlq", "list"); !strings.Contains(notes, "1 handled entry hidden") {
		t.Errorf("list after mark-handled: %s", notes)
	}
	_, notes = e.run(t, "dlq", "replay", "--all", "--yes", "--rate", "0")
	if !strings.Contains(notes, "replayed 1 entry to "+e.orig) || !strings.Contains(notes, "skipping 1 entry: handled") {
		t.Fatalf("replay --all:\n%s", notes)
	}
	got := e.k.ReadAll(t, e.orig, 1, 10*time.Second)
	if len(got) != 1 || string(got[0].Key) != "1" || dlq.ReplayAttempt(got[0]) != 1 {
		t.Fatalf("replayed messages = %+v, want 0:0's event with dlq-replay-attempt 1", got)
	}

	if _, notes = e.run(t, "dlq", "replay", "0:0"); !strings.Contains(notes, "skipping 0:0: already replayed (use --again)") ||
		!strings.Contains(notes, "nothing to replay") {
		t.Errorf("replaying 0:0 again: %s", notes)
	}
	e.run(t, "dlq", "replay", "0:2", "--force")
	e.run(t, "dlq", "unmark", "0:1")
	want := map[string]string{"0:0": "replayed", "0:1": "new", "0:2": "replayed"}
	if got := e.statuses(t, "--all"); len(got) != 3 || got["0:0"] != want["0:0"] || got["0:1"] != want["0:1"] || got["0:2"] != want["0:2"] {
		t.Fatalf("statuses = %v, want %v", got, want)
	}
	if got := e.k.ReadAll(t, e.orig, 2, 10*time.Second); len(got) != 2 || dlq.ReplayAttempt(got[1]) != 5 {
		t.Fatalf("after replay 0:2 --force the topic holds %d messages", len(got))
	}
}
