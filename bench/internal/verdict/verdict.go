// Package verdict decides whether the pipeline sustained an offered rate,
// from what one step measured, and finds the highest sustained rate of a
// series of steps.
package verdict

import (
	"fmt"
	"time"
)

// Criteria of a sustained step.
const (
	// MaxP99 is the end-to-end p99 a sustained step stays under.
	MaxP99 = time.Second
	// MaxLagGrowth is how fast consumer lag may grow, as a fraction of the
	// offered rate, over the second half of the step: a pipeline that keeps
	// up has a flat lag; one that does not accumulates (rate - capacity)/s.
	MaxLagGrowth = 0.05
	// MinLagGrowthFloor keeps a tiny absolute slope at low rates from failing a
	// step on sampling noise (events/s).
	MinLagGrowthFloor = 5.0
	// MinWrittenShare is the share of the scheduled events the writers must
	// commit by the end of the step's window plus its grace.
	MinWrittenShare = 0.99
)

// Sample is one observation of the pipeline during a step.
type Sample struct {
	// At is the time since the step started.
	At time.Duration
	// Written is how many of the step's events the sender had committed.
	Written int64
	// Received is how many of them the receiver had committed.
	Received int64
	// Backlog is the unpublished outbox rows (or the peer's pending messages).
	Backlog int64
}

// Lag is the events committed at the sender but not yet at the receiver.
func (s Sample) Lag() int64 { return s.Written - s.Received }

// LagSlope is the least-squares growth of the lag in events per second over
// the samples taken in [from, to]; 0 with fewer than three samples.
func LagSlope(samples []Sample, from, to time.Duration) float64 {
	var n, sx, sy, sxx, sxy float64
	for _, s := range samples {
		if s.At < from || s.At > to {
			continue
		}
		x, y := s.At.Seconds(), float64(s.Lag())
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	if n < 3 {
		return 0
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// Step is what the verdict needs of one step.
type Step struct {
	// Offered is the scheduled rate, events/s.
	Offered float64
	// Window is how long events were scheduled.
	Window time.Duration
	// Scheduled, Written are the events scheduled and committed at the sender.
	Scheduled, Written int64
	// WriteErrors is writes that failed.
	WriteErrors int64
	// UndeliveredAfterDrain is events written but not at the receiver when
	// the drain timeout passed.
	UndeliveredAfterDrain int64
	// P99 is the end-to-end p99 (intended send to receiver commit).
	P99 time.Duration
	// Samples are the pipeline observations during the step.
	Samples []Sample
}

// Judge returns whether s was sustained and, when not, every reason.
func Judge(s Step) (bool, []string) {
	why := []string{}
	if s.Scheduled > 0 && float64(s.Written) < MinWrittenShare*float64(s.Scheduled) {
		why = append(why, fmt.Sprintf("writers committed %d of %d scheduled events", s.Written, s.Scheduled))
	}
	if s.WriteErrors > 0 {
		why = append(why, fmt.Sprintf("%d writes failed", s.WriteErrors))
	}
	if s.UndeliveredAfterDrain > 0 {
		why = append(why, fmt.Sprintf("%d events not delivered within the drain timeout", s.UndeliveredAfterDrain))
	}
	if s.P99 >= MaxP99 {
		why = append(why, fmt.Sprintf("p99 %v >= %v", s.P99.Round(time.Millisecond), MaxP99))
	}
	limit := MaxLagGrowth * s.Offered
	if limit < MinLagGrowthFloor {
		limit = MinLagGrowthFloor
	}
	if slope := LagSlope(s.Samples, s.Window/2, s.Window); slope > limit {
		why = append(why, fmt.Sprintf("lag grew %.0f events/s (limit %.0f)", slope, limit))
	}
	return len(why) == 0, why
}

// Point is one judged step of a series.
type Point struct {
	Offered   float64
	Sustained bool
}

// SustainedRate is the highest offered rate among the sustained points, and
// false when none was sustained.
func SustainedRate(points []Point) (float64, bool) {
	best, ok := 0.0, false
	for _, p := range points {
		if p.Sustained && p.Offered > best {
			best, ok = p.Offered, true
		}
	}
	return best, ok
}
