package run

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/invoicesync/invoicesync/bench/internal/latency"
	"github.com/invoicesync/invoicesync/bench/internal/report"
	"github.com/invoicesync/invoicesync/bench/internal/verdict"
)

// sampler observes a step: sender commits (from the load), receiver
// commits and the publisher's backlog (from the databases).
type sampler struct {
	mu      sync.Mutex
	samples []verdict.Sample
	backlog []int64
	stop    chan struct{}
	done    chan struct{}
}

func (r *Runner) startSampler(ctx context.Context, p *pipeline, base int64, start time.Time, writtenNow func() int64) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(r.cfg.SampleInterval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			w := writtenNow()
			rcv, err1 := p.received(qctx, base)
			bl, err2 := p.backlog(qctx)
			cancel()
			if err1 != nil || err2 != nil {
				continue
			}
			s.mu.Lock()
			s.samples = append(s.samples, verdict.Sample{At: time.Since(start), Written: w, Received: rcv, Backlog: bl})
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sampler) finish() []verdict.Sample {
	close(s.stop)
	<-s.done
	return s.samples
}

// step offers rate for window to p and measures it. last says no step
// follows, so a backlog is not waited out.
func (r *Runner) step(ctx context.Context, p *pipeline, series, mode string, rate float64, window time.Duration, last bool) (report.Step, error) {
	st := report.Step{Series: series, Mode: mode, OfferedEPS: rate, WindowS: window.Seconds()}
	base, err := p.maxHistoryID(ctx)
	if err != nil {
		return st, err
	}
	cpu0 := r.cpu(p)
	start := time.Now().Add(20 * time.Millisecond)
	// Writers may work through a queue that built up for half a window more
	// (at most the drain timeout); what is not started by then is recorded
	// as not written, with its latency counted until the final check.
	grace := min(window/2, r.cfg.DrainTimeout)
	load := startLoad(ctx, loadSpec{writer: p.writer, rate: rate, writers: r.cfg.Writers, window: window,
		deadline: start.Add(window + grace), seed: uint64(rate), log: r.log}, start)
	smp := r.startSampler(ctx, p, base, start, load.written.Load)
	stopProfile := r.maybeProfile(ctx, p, series, rate, window)
	events, skipped := load.Wait()
	stopProfile()
	r.log.Info().Str("series", series).Float64("rate", rate).Int64("written", load.written.Load()).
		Int64("errors", load.errors.Load()).Dur("writers_done_after", time.Since(start)).Msg("step: writes done")

	// Drain: wait for the receiver to have every written event.
	want := int64(len(events))
	drainStart := time.Now()
	got, err := r.waitReceived(ctx, p, base, want, r.cfg.DrainTimeout)
	if err != nil {
		return st, err
	}
	st.DrainS = round(time.Since(drainStart).Seconds(), 3)
	st.UndeliveredAfterDrain = want - got
	if st.UndeliveredAfterDrain > 0 && !last {
		r.log.Warn().Int64("undelivered", st.UndeliveredAfterDrain).Dur("recovery_timeout", r.cfg.RecoveryTimeout).
			Msg("step: backlog left after the drain timeout; waiting for it before the next step")
		if got, err = r.waitReceived(ctx, p, base, want, r.cfg.RecoveryTimeout); err != nil {
			return st, err
		}
	}
	samples := smp.finish()
	cpu1 := r.cpu(p)
	synced, err := p.syncedAt(ctx, base)
	if err != nil {
		return st, err
	}
	final := time.Now()
	fillStep(&st, events, skipped, synced, samples, final, start, window, load.scheduled.Load(), load.errors.Load())
	st.CPUSPer1k = cpuPer1k(cpu0, cpu1, st.Delivered)
	if err := p.checkAlive(); err != nil {
		st.Reasons = append(st.Reasons, err.Error())
		st.Sustained = false
	}
	return st, nil
}

// fillStep computes the step's row from the raw observations.
func fillStep(st *report.Step, events []written, skipped []time.Time, synced map[int64]time.Time,
	samples []verdict.Sample, final, start time.Time, window time.Duration, scheduled, writeErrors int64) {
	e2e, src, pipe := latency.New(), latency.New(), latency.New()
	for _, intended := range skipped { // never written: a lower bound, like the undelivered
		e2e.Record(final.Sub(intended))
		src.Record(final.Sub(intended))
	}
	st.NotWritten = int64(len(skipped))
	var lastSynced time.Time
	for _, e := range events {
		src.Record(e.committed.Sub(e.intended))
		t, ok := synced[e.id]
		if !ok {
			st.Undelivered++
			e2e.Record(final.Sub(e.intended)) // a lower bound: it has not arrived yet
			continue
		}
		st.Delivered++
		e2e.Record(t.Sub(e.intended))
		pipe.Record(t.Sub(e.committed))
		if t.After(lastSynced) {
			lastSynced = t
		}
	}
	st.Scheduled, st.Written, st.WriteErrors = scheduled, int64(len(events)), writeErrors
	st.Latency, st.SourceLatency, st.PipelineLatency = e2e.Summary(), src.Summary(), pipe.Summary()
	var lastCommit time.Time
	for _, e := range events {
		if e.committed.After(lastCommit) {
			lastCommit = e.committed
		}
	}
	st.WriteEPS = round(float64(st.Written)/math.Max(lastCommit.Sub(start).Seconds(), window.Seconds()), 1)
	if span := lastSynced.Sub(start).Seconds(); st.Delivered > 0 && span > 0 {
		st.AchievedEPS = round(float64(st.Delivered)/math.Max(span, window.Seconds()), 1)
	}
	for _, s := range samples {
		st.Samples = append(st.Samples, report.Sample{TS: round(s.At.Seconds(), 3), Written: s.Written,
			Received: s.Received, Lag: s.Lag(), Backlog: s.Backlog})
		st.MaxLag = max(st.MaxLag, s.Lag())
		st.MaxBacklog = max(st.MaxBacklog, s.Backlog)
	}
	st.LagSlopeEPS = round(verdict.LagSlope(samples, window/2, window), 1)
	st.Sustained, st.Reasons = verdict.Judge(verdict.Step{Offered: st.OfferedEPS, Window: window,
		Scheduled: scheduled, Written: st.Written, WriteErrors: writeErrors,
		UndeliveredAfterDrain: st.UndeliveredAfterDrain,
		P99:                   time.Duration(st.Latency.P99 * float64(time.Millisecond)), Samples: samples})
}

// waitReceived waits until the receiver holds want histories with id >
// base, or timeout passes, and returns how many it holds.
func (r *Runner) waitReceived(ctx context.Context, p *pipeline, base, want int64, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		got, err := p.received(ctx, base)
		if err != nil {
			return 0, err
		}
		if got >= want || time.Now().After(deadline) {
			return got, nil
		}
		if err := p.checkAlive(); err != nil {
			return got, err
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cpuPer1k is CPU seconds per 1,000 events between two readings.
func cpuPer1k(before, after map[string]time.Duration, events int64) map[string]float64 {
	out := map[string]float64{}
	if events <= 0 {
		return out
	}
	for name, a := range after {
		d := a - before[name]
		if d < 0 { // a process restarted between the readings
			continue
		}
		out[name] = round(d.Seconds()/float64(events)*1000, 4)
	}
	return out
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// stepLabel names a step in logs and files.
func stepLabel(series string, rate float64) string { return fmt.Sprintf("%s-%.0f", series, rate) }
