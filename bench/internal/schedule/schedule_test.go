package schedule

import (
	"context"
	"testing"
	"time"
)

func TestIntendedAndDue(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s := Schedule{Start: start, Rate: 1000}
	tests := []struct {
		i    int
		want time.Duration
	}{{0, 0}, {1, time.Millisecond}, {1500, 1500 * time.Millisecond}, {999, 999 * time.Millisecond}}
	for _, tt := range tests {
		if got := s.Intended(tt.i).Sub(start); got != tt.want {
			t.Errorf("Intended(%d) = +%v, want +%v", tt.i, got, tt.want)
		}
	}
	dues := []struct {
		at   time.Duration
		want int
	}{{-time.Second, 0}, {0, 1}, {999 * time.Microsecond, 1}, {time.Millisecond, 2}, {time.Second, 1001}}
	for _, tt := range dues {
		if got := s.Due(start.Add(tt.at)); got != tt.want {
			t.Errorf("Due(+%v) = %d, want %d", tt.at, got, tt.want)
		}
	}
}

func TestCount(t *testing.T) {
	start := time.Unix(0, 0)
	tests := []struct {
		rate float64
		d    time.Duration
		want int
	}{
		{1000, time.Second, 1000},
		{250, 30 * time.Second, 7500},
		{3, time.Second, 3},
		{3, 1001 * time.Millisecond, 4},
		{0.5, 10 * time.Second, 5},
	}
	for _, tt := range tests {
		s := Schedule{Start: start, Rate: tt.rate}
		if got := s.Count(tt.d); got != tt.want {
			t.Errorf("rate %v over %v: Count = %d, want %d", tt.rate, tt.d, got, tt.want)
		}
	}
}

func TestReleaseIsOpenLoop(t *testing.T) {
	// Released events carry their scheduled time even when the consumer
	// reads them late: a stall does not shift the schedule.
	s := Schedule{Start: time.Now(), Rate: 2000}
	out := make(chan Job, 1000)
	n := Release(context.Background(), s, 100*time.Millisecond, nil, out)
	close(out)
	if n != 200 {
		t.Fatalf("released %d events, want 200", n)
	}
	i := 0
	for j := range out {
		if j.Index != i || !j.Intended.Equal(s.Intended(i)) {
			t.Fatalf("job %d = %+v, want index %d at %v", i, j, i, s.Intended(i))
		}
		i++
	}
}

func TestReleaseStops(t *testing.T) {
	stop := make(chan struct{})
	out := make(chan Job, 100000)
	done := make(chan int)
	go func() { done <- Release(context.Background(), Schedule{Start: time.Now(), Rate: 1000}, 0, stop, out) }()
	time.Sleep(30 * time.Millisecond)
	close(stop)
	select {
	case n := <-done:
		if n == 0 {
			t.Fatal("released nothing before stop")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Release did not return after stop")
	}
}
