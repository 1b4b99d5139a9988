package run

import (
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/bench/internal/report"
	"github.com/invoicesync/invoicesync/bench/internal/verdict"
)

func TestFillStepMeasuresFromIntendedTime(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	// Three events at 1 ms intervals. Event 2 was committed late (its writer
	// stalled): its latency counts from when it was due, not when written.
	events := []written{
		{id: 1, intended: t0, committed: t0.Add(ms(2))},
		{id: 2, intended: t0.Add(ms(1)), committed: t0.Add(ms(500))},
		{id: 3, intended: t0.Add(ms(2)), committed: t0.Add(ms(4))},
	}
	synced := map[int64]time.Time{1: t0.Add(ms(10)), 2: t0.Add(ms(510))}
	final := t0.Add(2 * time.Second)
	samples := []verdict.Sample{{At: ms(100), Written: 3, Received: 2}, {At: ms(200), Written: 3, Received: 2}}
	st := report.Step{OfferedEPS: 1000}
	skipped := []time.Time{t0.Add(ms(3))} // released, never started
	fillStep(&st, events, skipped, synced, samples, final, t0, time.Second, 4, 0)

	if st.Delivered != 2 || st.Undelivered != 1 || st.Written != 3 || st.Scheduled != 4 || st.NotWritten != 1 {
		t.Fatalf("counts: %+v", st)
	}
	// e2e: 10 ms, 509 ms, and the undelivered and the unwritten ones at >= 1997 ms.
	if st.Latency.Count != 4 || st.Latency.P50 < 508 || st.Latency.P50 > 510 || st.Latency.Max < 1997 {
		t.Errorf("latency = %+v", st.Latency)
	}
	// source: 2, 499 (the stalled write), 2, and the unwritten one at 1997.
	if st.SourceLatency.Count != 4 || st.SourceLatency.Max < 1996 || st.SourceLatency.Mean < 624 || st.SourceLatency.Mean > 626 {
		t.Errorf("source latency = %+v", st.SourceLatency)
	}
	if st.PipelineLatency.Count != 2 || st.PipelineLatency.Max > 10.1 {
		t.Errorf("pipeline latency = %+v", st.PipelineLatency)
	}
	if st.MaxLag != 1 || len(st.Samples) != 2 || st.Samples[0].Lag != 1 {
		t.Errorf("samples: max lag %d, %+v", st.MaxLag, st.Samples)
	}
	if st.Sustained || len(st.Reasons) == 0 {
		t.Errorf("a p99 of 2 s must not be sustained: %v", st.Reasons)
	}
	if st.AchievedEPS != 2 { // 2 delivered over max(0.51 s, the 1 s window)
		t.Errorf("achieved = %v, want 2", st.AchievedEPS)
	}
}

func TestCPUPer1k(t *testing.T) {
	before := map[string]time.Duration{"relay": time.Second, "postgres": 10 * time.Second, "gone": 5 * time.Second}
	after := map[string]time.Duration{"relay": 3 * time.Second, "postgres": 14 * time.Second, "gone": time.Second, "new": time.Second}
	got := cpuPer1k(before, after, 4000)
	want := map[string]float64{"relay": 0.5, "postgres": 1, "new": 0.25}
	if len(got) != len(want) {
		t.Fatalf("cpuPer1k = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(cpuPer1k(before, after, 0)) != 0 {
		t.Error("no events: no rates")
	}
}
