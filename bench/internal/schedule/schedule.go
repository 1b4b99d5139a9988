// Package schedule is the open-loop arrival schedule of the load generator:
// event i is intended at Start + i/Rate, whatever happened to the events
// before it. Latency is measured from that intended time, so a writer or a
// pipeline that stalls shows up as latency of every event scheduled during
// the stall (no coordinated omission).
package schedule

import (
	"context"
	"time"
)

// Schedule is a fixed-rate arrival schedule.
type Schedule struct {
	// Start is when event 0 is intended.
	Start time.Time
	// Rate is events per second; must be positive.
	Rate float64
}

// Intended is when event i is intended.
func (s Schedule) Intended(i int) time.Time {
	return s.Start.Add(time.Duration(float64(i) / s.Rate * float64(time.Second)))
}

// Due is how many events are intended at or before now: events 0..Due-1.
func (s Schedule) Due(now time.Time) int {
	if now.Before(s.Start) {
		return 0
	}
	return int(now.Sub(s.Start).Seconds()*s.Rate) + 1
}

// Count is how many events are intended in [Start, Start+d).
func (s Schedule) Count(d time.Duration) int {
	n := int(d.Seconds() * s.Rate)
	// Guard against float rounding: event n must not fall before Start+d.
	for n > 0 && !s.Intended(n-1).Before(s.Start.Add(d)) {
		n--
	}
	for s.Intended(n).Before(s.Start.Add(d)) {
		n++
	}
	return n
}

// Job is one scheduled event.
type Job struct {
	// Index is the event's place in the schedule.
	Index int
	// Intended is when it should have been sent.
	Intended time.Time
}

// Tick is how often Release wakes to hand out the events that became due.
// Handing out late by up to a tick does not bias latency: it is measured
// from Intended.
const Tick = time.Millisecond

// Release sends the events intended in [Start, Start+d) to out as they
// become due, never blocking on a slow consumer for longer than it takes to
// queue (out should hold all of them), and returns how many it released.
// It stops early when ctx ends or stop is closed (d <= 0: only then).
func Release(ctx context.Context, s Schedule, d time.Duration, stop <-chan struct{}, out chan<- Job) int {
	limit := -1
	if d > 0 {
		limit = s.Count(d)
	}
	next := 0
	t := time.NewTicker(Tick)
	defer t.Stop()
	for {
		due := s.Due(time.Now())
		if limit >= 0 && due > limit {
			due = limit
		}
		for ; next < due; next++ {
			select {
			case out <- Job{Index: next, Intended: s.Intended(next)}:
			case <-ctx.Done():
				return next
			case <-stop:
				return next
			}
		}
		if limit >= 0 && next >= limit {
			return next
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return next
		case <-stop:
			return next
		}
	}
}
