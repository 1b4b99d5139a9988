package latency

import (
	"math"
	"testing"
	"time"
)

func TestSummaryPercentiles(t *testing.T) {
	r := New()
	for i := 1; i <= 1000; i++ { // 1..1000 ms
		r.Record(time.Duration(i) * time.Millisecond)
	}
	s := r.Summary()
	check := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > want*0.002 { // 3 significant digits
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if s.Count != 1000 {
		t.Fatalf("count = %d", s.Count)
	}
	check("p50", s.P50, 500)
	check("p90", s.P90, 900)
	check("p99", s.P99, 990)
	check("p99.9", s.P999, 999)
	check("max", s.Max, 1000)
	check("mean", s.Mean, 500.5)
}

func TestMergeAggregatesRecorders(t *testing.T) {
	// Per-writer recorders merged give the distribution of all events: a
	// slow writer's tail must not be averaged away.
	fast, slow := New(), New()
	for i := 0; i < 990; i++ {
		fast.Record(2 * time.Millisecond)
	}
	for i := 0; i < 10; i++ {
		slow.Record(3 * time.Second)
	}
	all := New()
	all.Merge(fast)
	all.Merge(slow)
	s := all.Summary()
	if s.Count != 1000 || s.P50 > 2.01 || s.P99 > 2.01 || s.P999 < 2990 {
		t.Fatalf("merged summary = %+v", s)
	}
}

func TestClampsAndEmpty(t *testing.T) {
	if (New().Summary() != Summary{}) {
		t.Fatal("empty recorder must summarize to zeros")
	}
	r := New()
	r.Record(-time.Second)
	r.Record(2 * time.Hour)
	s := r.Summary()
	if s.Count != 2 || s.P50 != 0.001 || s.Max < 3599000 {
		t.Fatalf("clamped summary = %+v", s)
	}
}
