package run

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/invoicesync/invoicesync/bench/internal/report"
	"github.com/invoicesync/invoicesync/bench/internal/stack"
)

// bulk measures the backfill path with live load on top: `sender seed`
// fills SCI's legacy tables with BulkHistories histories (not measured),
// then `sender backfill` publishes them through the outbox's bulk lane
// while live events arrive at BulkLiveRate. It measures how fast the
// receiver applies the bulk and the live latency meanwhile.
func (r *Runner) bulk(ctx context.Context) error {
	p, err := r.newPipeline(ctx, "bulk", "go")
	if err != nil {
		return err
	}
	defer p.close(r)
	help, _ := stack.RunToEnd(ctx, p.env, r.bins.sender, "help")
	if !strings.Contains(help, "backfill") || !strings.Contains(help, "seed") {
		return fmt.Errorf("bin/sender has no seed/backfill commands: rebuild with make build")
	}
	before, err := p.maxHistoryID(ctx)
	if err != nil {
		return err
	}
	seedStart := time.Now()
	if _, err := stack.RunToEnd(ctx, p.env, r.bins.sender, "seed", "-n", strconv.Itoa(r.cfg.BulkHistories)); err != nil {
		return err
	}
	after, err := p.maxHistoryID(ctx)
	if err != nil {
		return err
	}
	n := after - before
	// An ERROR history is deleted downstream: the receiver keeps only its
	// version, so it never shows in received_invoice_history.
	var failed int64
	if err := p.sender.QueryRow(ctx, `SELECT count(*) FROM send_invoice_history
	    WHERE id > $1 AND id <= $2 AND email_status = 'ERROR'`, before, after).Scan(&failed); err != nil {
		return fmt.Errorf("bulk: count ERROR histories: %w", err)
	}
	r.log.Info().Int64("histories", n).Int64("error_status", failed).Dur("took", time.Since(seedStart)).
		Msg("bulk: seeded (not measured)")

	bk := &report.Bulk{Method: "`sender seed` then `sender backfill` (bulk lane), relay and receiver as in the live series",
		Histories: n, LiveOfferedEPS: r.cfg.BulkLiveRate}
	cpu0 := r.cpu(p)
	start := time.Now().Add(20 * time.Millisecond)
	load := startLoad(ctx, loadSpec{writer: p.writer, rate: r.cfg.BulkLiveRate, writers: r.cfg.Writers,
		seed: 4242, log: r.log}, start)
	smp := r.startSampler(ctx, p, after, start, load.written.Load)

	type result struct {
		took time.Duration
		err  error
	}
	backfillDone := make(chan result, 1)
	go func() {
		t := time.Now()
		bctx, cancel := context.WithTimeout(ctx, r.cfg.BulkTimeout)
		defer cancel()
		_, err := stack.RunToEnd(bctx, p.env, r.bins.sender, "backfill")
		backfillDone <- result{time.Since(t), err}
	}()
	deadline := start.Add(r.cfg.BulkTimeout)
	for {
		shown, err := p.received(ctx, before, after)
		if err == nil && shown >= n-failed || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		if err := p.checkAlive(); err != nil {
			load.Stop()
			_, _ = load.Wait()
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	appliedS := time.Since(start)
	window := time.Since(start)
	load.Stop()
	events, skipped := load.Wait()
	br := <-backfillDone
	if br.err != nil {
		r.res.Errors = append(r.res.Errors, fmt.Sprintf("bulk: backfill: %v", br.err))
	}
	applied, err := p.applied(ctx, before, after)
	if err != nil {
		return err
	}
	bk.EnqueueS = round(br.took.Seconds(), 2)
	bk.Applied = applied
	bk.AppliedS = round(appliedS.Seconds(), 2)
	if appliedS > 0 {
		bk.EPS = round(float64(applied)/appliedS.Seconds(), 1)
	}
	got, err := r.waitReceived(ctx, p, after, int64(len(events)), r.cfg.DrainTimeout)
	if err != nil {
		return err
	}
	samples := smp.finish()
	cpu1 := r.cpu(p)
	synced, err := p.syncedAt(ctx, after)
	if err != nil {
		return err
	}
	live := report.Step{Series: "bulk-live", Mode: "go", OfferedEPS: r.cfg.BulkLiveRate, WindowS: round(window.Seconds(), 2),
		UndeliveredAfterDrain: int64(len(events)) - got}
	fillStep(&live, events, skipped, synced, samples, time.Now(), start, window, load.scheduled.Load(), load.errors.Load())
	bk.Live = live
	bk.CPUSPer1k = cpuPer1k(cpu0, cpu1, applied+live.Delivered)
	r.res.Bulk = bk
	r.log.Info().Int64("histories", n).Int64("applied", applied).Float64("eps", bk.EPS).
		Float64("live_p99_ms", live.Latency.P99).Msg("bulk")
	if applied < n {
		return fmt.Errorf("only %d of %d bulk histories applied within %v", applied, n, r.cfg.BulkTimeout)
	}
	return nil
}
