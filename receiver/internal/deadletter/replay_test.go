package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// replayed reads the original topic and returns its messages by event id.
func (f *fixture) replayed(t *testing.T, want int) map[string][]*kgo.Record {
	t.Helper()
	out := map[string][]*kgo.Record{}
	for _, m := range f.k.ReadAll(t, f.orig, want, 30*time.Second) {
		id := testsupport.Header(m, contract.HeaderEventID)
		out[id] = append(out[id], m)
	}
	return out
}

func (f *fixture) plan(t *testing.T, sel Selection, o ReplayOptions) Plan {
	t.Helper()
	p, err := f.q.Plan(context.Background(), sel, o)
	if err != nil {
		t.Fatalf("Plan(%+v) = %v", sel, err)
	}
	return p
}

func (f *fixture) replay(t *testing.T, p Plan) {
	t.Helper()
	lim := &countingLimiter{}
	n, err := f.q.Replay(context.Background(), p.Replay, lim, nil)
	if err != nil || n != len(p.Replay) || lim.waits != len(p.Replay) {
		t.Fatalf("Replay = %d, %v after %d waits; want %d", n, err, lim.waits, len(p.Replay))
	}
}

// Replay by id, by filter and --all: each entry goes back to its original
// topic with its key, value and headers plus the replay attempt, once;
// entries replayed already, handled, or at the attempt limit are skipped
// unless asked; planning alone changes nothing.
func TestReplay(t *testing.T) {
	f := newFixture(t)
	f.standard(t)
	if p := f.plan(t, Selection{All: true}, ReplayOptions{}); len(p.Replay) != 3 {
		t.Fatalf("dry plan = %v", ids(p.Replay))
	}
	if marks, err := f.marks.Load(context.Background(), f.dlq); err != nil || len(marks) != 0 {
		t.Fatalf("planning wrote marks: %v %v", marks, err)
	}

	p := f.plan(t, Selection{IDs: []string{"1:0", "1:0"}}, ReplayOptions{})
	if !slices.Equal(ids(p.Replay), []string{"1:0"}) {
		t.Fatalf("plan of 1:0 = %v", ids(p.Replay))
	}
	f.replay(t, p)
	got := f.replayed(t, 1)
	m := got[testEventID(3)]
	if len(got) != 1 || len(m) != 1 || string(m[0].Key) != "1" || !strings.Contains(string(m[0].Value), testEventID(3)) ||
		dlq.ReplayAttempt(m[0]) != 2 || testsupport.Header(m[0], contract.HeaderAggregateID) != "1" || testsupport.Header(m[0], dlq.HeaderReason) != "" {
		t.Fatalf("replayed 1:0 = %+v", got)
	}

	p = f.plan(t, Selection{Filter: Filter{Class: dlq.ClassSchema}}, ReplayOptions{})
	if !slices.Equal(ids(p.Replay), []string{"0:0"}) || len(p.Skipped) != 1 || !strings.Contains(p.Skipped[0].Why, "--force") {
		t.Fatalf("plan of class schema = %v, skipped %+v; want 1:1 skipped at its 5th attempt", ids(p.Replay), p.Skipped)
	}
	f.replay(t, p)

	p = f.plan(t, Selection{All: true}, ReplayOptions{Force: true})
	if !slices.Equal(ids(p.Replay), []string{"0:1", "1:1"}) || len(p.Skipped) != 2 {
		t.Fatalf("plan --all --force = %v, skipped %+v; want the two not replayed yet", ids(p.Replay), p.Skipped)
	}
	f.replay(t, p)
	got = f.replayed(t, 4)
	for n := 1; n <= 4; n++ {
		if len(got[testEventID(n)]) != 1 {
			t.Errorf("event %d was published %d times, want once", n, len(got[testEventID(n)]))
		}
	}
	if p := f.plan(t, Selection{IDs: []string{"0:0"}}, ReplayOptions{Again: true}); len(p.Replay) != 1 {
		t.Fatalf("--again plan = %v", ids(p.Replay))
	}
	for _, sel := range []Selection{{}, {All: true, IDs: []string{"0:0"}}, {IDs: []string{"0:0"}, Filter: Filter{Key: "1"}}} {
		if _, err := f.q.Plan(context.Background(), sel, ReplayOptions{}); err == nil {
			t.Errorf("Plan(%+v) succeeded, want an error asking for one kind of selection", sel)
		}
	}
	if _, err := f.q.Plan(context.Background(), Selection{IDs: []string{"0:0", "0:7"}}, ReplayOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Plan with a missing id = %v, want ErrNotFound", err)
	}
}

// An interrupted replay stops after the entry in flight; run again, it
// replays the rest, so every entry is published exactly once overall.
func TestReplayResumes(t *testing.T) {
	f := newFixture(t)
	var entries []dead
	for i := range 6 {
		entries = append(entries, dead{partition: i % 2, key: fmt.Sprint(10 + i), class: dlq.ClassConstraint,
			reason: "r", failedAt: t0.Add(time.Duration(i) * time.Minute)})
	}
	f.produce(t, entries...)
	p := f.plan(t, Selection{All: true}, ReplayOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := f.q.Replay(ctx, p.Replay, Every(1000), func(done int, _ Item) {
		if done == 2 {
			cancel() // as Ctrl-C would, while entry 2 is being finished
		}
	})
	if !errors.Is(err, ErrInterrupted) || n != 2 {
		t.Fatalf("interrupted Replay = %d, %v; want 2, ErrInterrupted", n, err)
	}
	p = f.plan(t, Selection{All: true}, ReplayOptions{})
	if len(p.Replay) != 4 || len(p.Skipped) != 2 {
		t.Fatalf("resumed plan = %v, skipped %d; want the 4 left", ids(p.Replay), len(p.Skipped))
	}
	f.replay(t, p)
	got := f.replayed(t, 6)
	for i := 1; i <= 6; i++ {
		if len(got[testEventID(i)]) != 1 {
			t.Errorf("event %d was published %d times, want once", i, len(got[testEventID(i)]))
		}
	}
}

// A handled entry is left out of --all; unmarked, it is new again.
func TestMarkHandledThenReplayAll(t *testing.T) {
	f := newFixture(t)
	f.standard(t)
	ctx := context.Background()
	if _, err := f.q.MarkHandled(ctx, []string{"0:0"}, "fixed by hand"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.q.MarkHandled(ctx, []string{"0:9"}, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MarkHandled(0:9) = %v, want ErrNotFound", err)
	}
	p := f.plan(t, Selection{All: true}, ReplayOptions{})
	if slices.Contains(ids(p.Replay), "0:0") || !slices.Contains(ids(p.Replay), "0:1") {
		t.Fatalf("plan --all = %v, want 0:0 (handled) left out", ids(p.Replay))
	}
	f.replay(t, p)
	if got := f.replayed(t, len(p.Replay)); len(got[testEventID(1)]) != 0 {
		t.Fatalf("handled entry 0:0 was replayed")
	}
	cleared, err := f.q.Unmark(ctx, []string{"0:0", "1:1"})
	if err != nil || !slices.Equal(cleared, []string{"0:0"}) {
		t.Fatalf("Unmark = %v, %v; want [0:0] (1:1 had no mark)", cleared, err)
	}
	if p := f.plan(t, Selection{IDs: []string{"0:0"}}, ReplayOptions{}); len(p.Replay) != 1 {
		t.Fatalf("unmarked entry not replayable: skipped %+v", p.Skipped)
	}
}

// The same message dead-lettered twice (a consumer crashed between the
// dead-letter publish and its offset commit) is replayed once: the newer
// entry is skipped as a duplicate of the older.
func TestReplaySkipsTheDuplicateOfAMessageDeadLetteredTwice(t *testing.T) {
	f := newFixture(t)
	orig := f.event(t, 1, dead{key: "7"})
	first := dlq.Build(orig, dlq.Failure{Class: dlq.ClassSchema, Reason: "forms[0].fileName: is required", Group: "g", At: t0})
	again := dlq.Build(orig, dlq.Failure{Class: dlq.ClassSchema, Reason: "forms[0].fileName: is required", Group: "g", At: t0.Add(time.Minute)})
	first.Partition, again.Partition = 0, 1
	f.write(t, f.dlq, first, again)
	other := f.event(t, 2, dead{key: "8"})
	otherDead := dlq.Build(other, dlq.Failure{Class: dlq.ClassSchema, Reason: "x", Group: "g", At: t0.Add(2 * time.Minute)})
	f.write(t, f.dlq, otherDead)

	p := f.plan(t, Selection{All: true}, ReplayOptions{})
	if got := ids(p.Replay); !slices.Equal(got, []string{"0:0", "0:1"}) {
		t.Fatalf("replay %v, want [0:0 0:1]: the older of the two copies and the other message", got)
	}
	if len(p.Skipped) != 1 || p.Skipped[0].ID != "1:0" || !strings.Contains(p.Skipped[0].Why, "duplicate of 0:0") {
		t.Fatalf("skipped %+v, want 1:0 as a duplicate of 0:0", p.Skipped)
	}
	f.replay(t, p)
	if got := f.replayed(t, 2); len(got[testEventID(1)]) != 1 || len(got[testEventID(2)]) != 1 {
		t.Fatalf("original topic got %d and %d copies of the two events, want 1 each", len(got[testEventID(1)]), len(got[testEventID(2)]))
	}
}
