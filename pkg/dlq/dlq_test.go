package dlq

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestBuildParseReplayRoundTrip(t *testing.T) {
	orig := &kgo.Record{Topic: "t", Partition: 3, Offset: 41, Key: []byte("7"), Value: []byte(`{"x":1}`),
		Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("e1")}}}
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	dead := Build(orig, Failure{Class: ClassSchema, Reason: "forms[0].fileName: is required", Group: "g", At: at})
	dead.Partition, dead.Offset = 1, 9
	e, err := Parse(dead)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "1:9" || e.Attempt != 1 || e.Class != ClassSchema || e.OriginalTopic != "t" ||
		e.OriginalPartition != 3 || e.OriginalOffset != 41 || !e.FailedAt.Equal(at) || e.Group != "g" ||
		string(e.Key) != "7" || string(e.Value) != `{"x":1}` || e.Header("event-id") != "e1" || len(e.Headers) != 1 {
		t.Fatalf("parsed entry = %+v", e)
	}
	// A replayed message that fails again is dead-lettered with attempt 2.
	replay := e.ReplayMessage()
	if replay.Topic != "t" || ReplayAttempt(replay) != 1 {
		t.Fatalf("replay = %+v", replay)
	}
	replay.Topic, replay.Partition, replay.Offset = "t", 0, 100
	again, err := Parse(Build(replay, Failure{Class: ClassSchema, Reason: "still broken", At: at}))
	if err != nil {
		t.Fatal(err)
	}
	if again.Attempt != 2 || again.OriginalOffset != 100 || len(again.Headers) != 1 {
		t.Fatalf("second failure = %+v, want attempt 2 and no stale dlq headers", again)
	}
}

func TestParseRejectsPlainMessage(t *testing.T) {
	if _, err := Parse(&kgo.Record{Partition: 0, Offset: 1}); err == nil || !strings.Contains(err.Error(), "0:1") {
		t.Fatalf("Parse(plain) = %v", err)
	}
}

func TestParseID(t *testing.T) {
	if p, o, err := ParseID("2:17"); err != nil || p != 2 || o != 17 {
		t.Fatalf("ParseID = %d %d %v", p, o, err)
	}
	for _, bad := range []string{"", "2", "a:1", "1:b", "-1:0", "1:-2"} {
		if _, _, err := ParseID(bad); err == nil || !strings.Contains(err.Error(), "partition:offset") {
			t.Errorf("ParseID(%q) = %v", bad, err)
		}
	}
}
