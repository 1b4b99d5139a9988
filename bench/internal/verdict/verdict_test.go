package verdict

import (
	"strings"
	"testing"
	"time"
)

// samples returns one sample every 500ms over d with lag = base + growth*t.
func samples(d time.Duration, base, growth float64) []Sample {
	var out []Sample
	for at := time.Duration(0); at <= d; at += 500 * time.Millisecond {
		written := int64(1000 * at.Seconds())
		lag := int64(base + growth*at.Seconds())
		out = append(out, Sample{At: at, Written: written, Received: written - lag})
	}
	return out
}

func TestLagSlope(t *testing.T) {
	tests := []struct {
		name         string
		base, growth float64
		want         float64
	}{
		{"flat", 40, 0, 0},
		{"growing", 0, 250, 250},
		{"shrinking", 5000, -100, -100},
	}
	for _, tt := range tests {
		got := LagSlope(samples(10*time.Second, tt.base, tt.growth), 5*time.Second, 10*time.Second)
		if d := got - tt.want; d > 1 || d < -1 {
			t.Errorf("%s: slope = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := LagSlope(samples(time.Second, 0, 100), 0, time.Second); got == 0 {
		t.Error("three samples are enough for a slope")
	}
	if got := LagSlope(samples(500*time.Millisecond, 0, 100), 0, time.Second); got != 0 {
		t.Errorf("two samples: slope = %v, want 0", got)
	}
}

func TestJudge(t *testing.T) {
	ok := Step{Offered: 1000, Window: 10 * time.Second, Scheduled: 10000, Written: 10000,
		P99: 80 * time.Millisecond, Samples: samples(10*time.Second, 30, 0)}
	tests := []struct {
		name   string
		change func(*Step)
		want   string // "" = sustained
	}{
		{"keeps up", func(*Step) {}, ""},
		{"slow p99", func(s *Step) { s.P99 = 1200 * time.Millisecond }, "p99"},
		{"lag grows", func(s *Step) { s.Samples = samples(10*time.Second, 0, 300) }, "lag grew"},
		{"lag grows a little", func(s *Step) { s.Samples = samples(10*time.Second, 0, 20) }, ""},
		{"writers behind", func(s *Step) { s.Written = 8000 }, "writers committed"},
		{"undelivered", func(s *Step) { s.UndeliveredAfterDrain = 3 }, "not delivered"},
		{"write errors", func(s *Step) { s.WriteErrors = 1 }, "writes failed"},
	}
	for _, tt := range tests {
		s := ok
		tt.change(&s)
		got, why := Judge(s)
		if tt.want == "" {
			if !got {
				t.Errorf("%s: not sustained: %v", tt.name, why)
			}
			continue
		}
		if got || !strings.Contains(strings.Join(why, "; "), tt.want) {
			t.Errorf("%s: sustained=%v why=%v, want a reason with %q", tt.name, got, why, tt.want)
		}
	}
}

func TestSustainedRate(t *testing.T) {
	pts := []Point{{250, true}, {500, true}, {1000, true}, {2000, false}, {3000, true}, {4000, false}}
	if got, ok := SustainedRate(pts); !ok || got != 3000 {
		t.Errorf("SustainedRate = %v, %v; want 3000", got, ok)
	}
	if _, ok := SustainedRate([]Point{{500, false}}); ok {
		t.Error("no sustained point must report false")
	}
}
