package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestEstimate(t *testing.T) {
	tests := []struct {
		name        string
		done, total int64
		elapsed     time.Duration
		rate        float64
		eta         time.Duration
	}{
		{"half way", 50, 100, 10 * time.Second, 5, 10 * time.Second},
		{"done", 100, 100, 4 * time.Second, 25, 0},
		{"past an estimated total", 120, 100, 2 * time.Second, 60, 0},
		{"nothing done yet", 0, 100, time.Second, 0, -1},
		{"no time elapsed", 10, 100, 0, 0, -1},
		{"unknown total", 30, 0, 3 * time.Second, 10, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rate, eta := Estimate(tt.done, tt.total, tt.elapsed)
			if rate != tt.rate || eta != tt.eta {
				t.Fatalf("Estimate(%d, %d, %s) = %v, %s; want %v, %s", tt.done, tt.total, tt.elapsed, rate, eta, tt.rate, tt.eta)
			}
		})
	}
}

// Off a terminal the reporter logs a line once per interval, with the
// count, rate and ETA, and a final line.
func TestLogModeWritesPeriodicLines(t *testing.T) {
	var logs bytes.Buffer
	r := New(Options{Out: &bytes.Buffer{}, Log: zerolog.New(&logs), What: "backfill", Unit: "histories",
		Interval: 5 * time.Second})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	r.Start(1000)
	for range 10 {
		now = now.Add(time.Second)
		r.Add(50)
	}
	r.Finish()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d log lines, want 2 periodic and 1 final:\n%s", len(lines), logs.String())
	}
	for _, want := range []string{`"done":250`, `"total":1000`, `"rate_per_s":50`, `"percent":25`, `"eta":"15s"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("first line %s lacks %s", lines[0], want)
		}
	}
	if !strings.Contains(lines[2], `"done":500`) || !strings.Contains(lines[2], "finished") {
		t.Errorf("final line %s", lines[2])
	}
}
