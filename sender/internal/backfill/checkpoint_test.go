package backfill

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	finished := time.Now()
	tests := []struct {
		name    string
		cp      *Checkpoint
		restart bool
		start   Start
		from    int64
	}{
		{"no checkpoint", nil, false, Fresh, 0},
		{"no checkpoint, restart asked", nil, true, Fresh, 0},
		{"interrupted run", &Checkpoint{LastID: 4200}, false, Resume, 4200},
		{"interrupted run, restart asked", &Checkpoint{LastID: 4200}, true, Restart, 0},
		{"finished run", &Checkpoint{LastID: 9000, FinishedAt: &finished}, false, Recheck, 9000},
		{"finished run, restart asked", &Checkpoint{LastID: 9000, FinishedAt: &finished}, true, Restart, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, from := decide(tt.cp, tt.restart)
			if start != tt.start || from != tt.from {
				t.Fatalf("decide = %s after id %d, want %s after id %d", start, from, tt.start, tt.from)
			}
		})
	}
}

func TestPace(t *testing.T) {
	began := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		rate    int
		done    int64
		elapsed time.Duration
		want    time.Duration
	}{
		{"no cap", 0, 1_000_000, time.Millisecond, 0},
		{"ahead of the rate", 1000, 3000, time.Second, 2 * time.Second},
		{"on the rate", 1000, 3000, 3 * time.Second, 0},
		{"behind the rate", 1000, 3000, 10 * time.Second, 0},
		{"fractional", 400, 100, 0, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pace(tt.rate, began, tt.done, began.Add(tt.elapsed)); got != tt.want {
				t.Fatalf("pace = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBatchSizeFollowsTheRate(t *testing.T) {
	for _, tt := range []struct{ batch, rate, want int }{{1000, 0, 1000}, {1000, 250, 250}, {1000, 5000, 1000}} {
		c := Config{BatchSize: tt.batch, Rate: tt.rate}
		if got := c.batchSize(); got != tt.want {
			t.Errorf("batch %d rate %d: batchSize = %d, want %d", tt.batch, tt.rate, got, tt.want)
		}
	}
}
