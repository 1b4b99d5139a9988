package run

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/bench/internal/latency"
	"github.com/invoicesync/invoicesync/bench/internal/schedule"
	"github.com/invoicesync/invoicesync/bench/internal/workload"
)

// written is one committed event.
type written struct {
	id                  int64
	intended, committed time.Time
}

// openLoad is an open-loop load: events released on a fixed schedule to a
// pool of writers. An event waits in the queue while every writer is busy,
// and its latency counts from its intended time all the same.
type openLoad struct {
	sched     schedule.Schedule
	scheduled atomic.Int64
	written   atomic.Int64
	errors    atomic.Int64
	mu        sync.Mutex
	events    []written
	// skipped are the intended times of events released but not started
	// before the deadline: never written, still part of the schedule.
	skipped  []time.Time
	done     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
}

// loadSpec describes an open-loop load.
type loadSpec struct {
	writer  workload.Writer
	rate    float64
	writers int
	// window is how long events are scheduled; 0 until Stop.
	window time.Duration
	// deadline is the last moment a writer starts a queued event; zero: none.
	deadline time.Time
	seed     uint64
	log      zerolog.Logger
}

// startLoad starts the schedule at start and the writers.
func startLoad(ctx context.Context, s loadSpec, start time.Time) *openLoad {
	l := &openLoad{sched: schedule.Schedule{Start: start, Rate: s.rate}, done: make(chan struct{}), stop: make(chan struct{})}
	capacity := int(s.rate*600) + 1
	if s.window > 0 {
		capacity = l.sched.Count(s.window) + 1
	}
	jobs := make(chan schedule.Job, capacity)
	go func() {
		n := schedule.Release(ctx, l.sched, s.window, l.stop, jobs)
		l.scheduled.Store(int64(n))
		close(jobs)
	}()
	var wg sync.WaitGroup
	var logged atomic.Int64
	for w := 0; w < s.writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := workload.NewHistories(s.seed*1000 + uint64(w))
			var mine []written
			var late []time.Time
			for j := range jobs {
				if !s.deadline.IsZero() && time.Now().After(s.deadline) || ctx.Err() != nil {
					late = append(late, j.Intended)
					continue
				}
				id, err := s.writer.Write(ctx, gen.Next())
				if err != nil {
					l.errors.Add(1)
					if logged.Add(1) <= 5 {
						s.log.Warn().Err(err).Int("event", j.Index).Msg("write failed")
					}
					continue
				}
				mine = append(mine, written{id: id, intended: j.Intended, committed: time.Now()})
				l.written.Add(1)
			}
			l.mu.Lock()
			l.events = append(l.events, mine...)
			l.skipped = append(l.skipped, late...)
			l.mu.Unlock()
		}()
	}
	go func() {
		wg.Wait()
		close(l.done)
	}()
	return l
}

// Stop ends an open-ended schedule (window 0).
func (l *openLoad) Stop() { l.stopOnce.Do(func() { close(l.stop) }) }

// Wait waits until the writers are done and returns the committed events
// and the intended times of the events never started.
func (l *openLoad) Wait() ([]written, []time.Time) {
	<-l.done
	return l.events, l.skipped
}

// closedLoopResult is what a closed-loop run measured.
type closedLoopResult struct {
	commits, errors int64
	elapsed         time.Duration
	txLatency       *latency.Recorder
}

// closedLoop runs writers back to back, flat out, for d: the most the
// write path (PostgreSQL) commits.
func closedLoop(ctx context.Context, w workload.Writer, writers int, d time.Duration, log zerolog.Logger) closedLoopResult {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	start := time.Now()
	end := start.Add(d)
	var commits, errs atomic.Int64
	recs := make([]*latency.Recorder, writers)
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		recs[i] = latency.New()
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := workload.NewHistories(uint64(900_000 + i))
			for time.Now().Before(end) && ctx.Err() == nil {
				t := time.Now()
				if _, err := w.Write(ctx, gen.Next()); err != nil {
					if errs.Add(1) <= 5 {
						log.Warn().Err(err).Msg("limit: write failed")
					}
					continue
				}
				recs[i].Record(time.Since(t))
				commits.Add(1)
			}
		}()
	}
	wg.Wait()
	all := latency.New()
	for _, r := range recs {
		all.Merge(r)
	}
	return closedLoopResult{commits: commits.Load(), errors: errs.Load(), elapsed: time.Since(start), txLatency: all}
}
