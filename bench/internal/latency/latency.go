// Package latency records latencies in an HDR histogram (microsecond
// resolution, 3 significant digits, up to one hour) and summarizes them in
// milliseconds.
package latency

import (
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: 1 µs to 1 h, 3 significant digits.
const (
	lowest  = 1
	highest = int64(time.Hour / time.Microsecond)
	sigfigs = 3
)

// Recorder collects latencies. Not safe for concurrent use: give each
// goroutine its own and Merge them.
type Recorder struct {
	h *hdrhistogram.Histogram
}

// New returns an empty recorder.
func New() *Recorder { return &Recorder{h: hdrhistogram.New(lowest, highest, sigfigs)} }

// Record adds one latency; values below 1 µs count as 1 µs (clocks of two
// processes may disagree by that much) and above an hour as an hour.
func (r *Recorder) Record(d time.Duration) {
	us := d.Microseconds()
	if us < lowest {
		us = lowest
	}
	if us > highest {
		us = highest
	}
	_ = r.h.RecordValue(us) // in range by construction
}

// Merge adds every latency of o.
func (r *Recorder) Merge(o *Recorder) { r.h.Merge(o.h) }

// Count is how many latencies were recorded.
func (r *Recorder) Count() int64 { return r.h.TotalCount() }

// Summary is the distribution in milliseconds; all zero when empty.
type Summary struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// Summary computes the percentiles.
func (r *Recorder) Summary() Summary {
	if r.h.TotalCount() == 0 {
		return Summary{}
	}
	ms := func(us int64) float64 { return round3(float64(us) / 1000) }
	return Summary{
		Count: r.h.TotalCount(),
		P50:   ms(r.h.ValueAtQuantile(50)),
		P90:   ms(r.h.ValueAtQuantile(90)),
		P99:   ms(r.h.ValueAtQuantile(99)),
		P999:  ms(r.h.ValueAtQuantile(99.9)),
		Max:   ms(r.h.Max()),
		Mean:  round3(r.h.Mean() / 1000),
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
