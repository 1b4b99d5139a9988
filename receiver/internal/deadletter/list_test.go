package deadletter

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/dlq"
)

func TestFilterMatch(t *testing.T) {
	e := dlq.Entry{Key: []byte("7"), Class: dlq.ClassSchema, Reason: "forms[0].fileName: is required", FailedAt: t0}
	cases := map[string]struct {
		f    Filter
		want bool
	}{
		"zero":                  {Filter{}, true},
		"reason ignoring case":  {Filter{Reason: "FILENAME"}, true},
		"other reason":          {Filter{Reason: "version"}, false},
		"class":                 {Filter{Class: dlq.ClassSchema}, true},
		"other class":           {Filter{Class: dlq.ClassDecode}, false},
		"key is exact":          {Filter{Key: "7"}, true},
		"key prefix is not":     {Filter{Key: "77"}, false},
		"since is inclusive":    {Filter{Since: t0}, true},
		"since after":           {Filter{Since: t0.Add(time.Second)}, false},
		"until is exclusive":    {Filter{Until: t0}, false},
		"until after":           {Filter{Until: t0.Add(time.Second)}, true},
		"all criteria together": {Filter{Reason: "required", Class: dlq.ClassSchema, Key: "7", Since: t0}, true},
	}
	for name, tc := range cases {
		if got := tc.f.Match(e); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", name, got, tc.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := t0
	for in, want := range map[string]time.Time{
		"2026-03-01T09:30:00Z":      t0.Add(-30 * time.Minute),
		"2026-03-01T11:00:00+01:00": t0,
		"2026-02-28":                time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC),
		"24h":                       t0.Add(-24 * time.Hour),
		"90m":                       t0.Add(-90 * time.Minute),
	} {
		if got, err := ParseTime(in, now); err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-5h", "2026-13-01"} {
		if _, err := ParseTime(bad, now); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
			t.Errorf("ParseTime(%q) = %v, want an error explaining the forms", bad, err)
		}
	}
}

// List reads every partition to its end, filters, hides handled entries
// unless asked, keeps the most recent with a limit, and skips stray messages.
func TestList(t *testing.T) {
	f := newFixture(t)
	f.standard(t)
	ctx := context.Background()
	if _, err := f.q.MarkHandled(ctx, []string{"0:1"}, "bad producer, fixed upstream"); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		o          ListOptions
		want       []string
		wantHidden int
	}{
		"default hides handled": {ListOptions{}, []string{"0:0", "1:0", "1:1"}, 1},
		"all":                   {ListOptions{All: true}, []string{"0:0", "0:1", "1:0", "1:1"}, 0},
		"reason":                {ListOptions{Filter: Filter{Reason: "Required"}}, []string{"0:0"}, 0},
		"class":                 {ListOptions{Filter: Filter{Class: dlq.ClassSchema}}, []string{"0:0", "1:1"}, 0},
		"key":                   {ListOptions{Filter: Filter{Key: "1"}}, []string{"0:0", "1:0"}, 0},
		"since":                 {ListOptions{Filter: Filter{Since: t0.Add(time.Hour)}}, []string{"1:0", "1:1"}, 1},
		"until":                 {ListOptions{Filter: Filter{Until: t0.Add(2 * time.Hour)}, All: true}, []string{"0:0", "0:1"}, 0},
		"range":                 {ListOptions{Filter: Filter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Hour)}}, []string{"1:0"}, 1},
		"limit keeps newest":    {ListOptions{Limit: 2}, []string{"1:0", "1:1"}, 1},
		"nothing matches":       {ListOptions{Filter: Filter{Key: "404"}}, nil, 0},
	}
	for name, tc := range cases {
		l, err := f.q.List(ctx, tc.o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := ids(l.Items); !slices.Equal(got, tc.want) || l.Hidden != tc.wantHidden || l.Invalid != 1 {
			t.Errorf("%s: List = %v hidden %d invalid %d; want %v hidden %d invalid 1",
				name, got, l.Hidden, l.Invalid, tc.want, tc.wantHidden)
		}
	}
	l, err := f.q.List(ctx, ListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Item{}
	for _, it := range l.Items {
		byID[it.ID] = it
	}
	if it := byID["0:1"]; it.Status() != StateHandled || it.Mark.Note != "bad producer, fixed upstream" || it.Mark.HandledAt.IsZero() {
		t.Errorf("handled entry = %+v", it.Mark)
	}
	if it := byID["1:0"]; it.Status() != StateNew || it.Attempt != 2 || it.EventID != testEventID(3) || string(it.Key) != "1" {
		t.Errorf("entry 1:0 = status %s attempt %d event %s key %s", it.Status(), it.Attempt, it.EventID, it.Key)
	}
}

// Get returns the whole entry; ids that name nothing say why.
func TestGet(t *testing.T) {
	f := newFixture(t)
	f.standard(t)
	ctx := context.Background()
	it, err := f.q.Get(ctx, "0:0")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for _, h := range it.Stored {
		stored[h.Key] = string(h.Value)
	}
	if stored[dlq.HeaderReason] != "forms[0].fileName: is required" || stored["event-id"] != testEventID(1) ||
		it.Header("aggregate-id") != "1" || it.OriginalTopic != f.orig || it.OriginalOffset != 101 {
		t.Fatalf("entry 0:0 = %+v, stored headers %v", it.Entry, stored)
	}
	d := Decode(it.Value)
	if d.EnvelopeErr != nil || d.PayloadErr != nil || d.Envelope.EventID != testEventID(1) ||
		d.History == nil || d.History.HistoryID != 1 || !strings.Contains(string(d.Envelope.Payload), "\n  \"historyId\": 1") {
		t.Fatalf("Decode(0:0) = %+v", d)
	}
	it, err = f.q.Get(ctx, "0:1")
	if err != nil {
		t.Fatal(err)
	}
	if d := Decode(it.Value); d.Envelope != nil || d.EnvelopeErr == nil || !strings.Contains(d.EnvelopeErr.Error(), "not valid JSON") {
		t.Fatalf("Decode(not json) = %+v", d)
	}
	for id, want := range map[string]string{
		"5:0":  "partition 5 does not exist (the topic has partitions 0 to 1)",
		"0:99": "partition 0 holds offsets 0 to 1",
		"1:2":  "is not a dead-letter entry",
	} {
		_, err := f.q.Get(ctx, id)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), want) {
			t.Errorf("Get(%s) = %v, want ErrNotFound naming it and saying %q", id, err, want)
		}
	}
	if _, err := f.q.Get(ctx, "zero"); err == nil || !strings.Contains(err.Error(), `"zero"`) {
		t.Errorf("Get(zero) = %v, want a malformed id error", err)
	}
}
