// Package report is the benchmark's result: the per-step rows and the
// headline numbers derived from them, written as bench/out/latest.json,
// latest.md (a table with ratios against the limit and the peer) and
// latest.svg (latency percentiles against offered rate).
package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/invoicesync/invoicesync/bench/internal/latency"
	"github.com/invoicesync/invoicesync/bench/internal/verdict"
)

// Series names.
const (
	SeriesLive = "live" // this project: outbox + relay + receiver
	SeriesPeer = "peer" // watermill-sql forwarder to Kafka + the same receiver
)

// Result is the whole output of one run. Headline fields are pointers so
// a number that could not be measured is null in the JSON, never absent.
type Result struct {
	// GeneratedAt is when the run finished.
	GeneratedAt time.Time `json:"generated_at"`
	// Profile is "quick" or "full".
	Profile string `json:"profile"`
	// Mode is the live write path: "go" (history.Record) or "http" (sender serve).
	Mode string `json:"mode"`
	// Writers is the number of concurrent writers.
	Writers int `json:"writers"`
	// WriterConns is the size of the writers' PostgreSQL pool.
	WriterConns int `json:"writer_conns"`
	// DurationS is the wall time of the whole run.
	DurationS float64 `json:"duration_s"`

	// LimitEPS is how many sender transactions PostgreSQL commits per second
	// with nothing else running (closed loop, same writers, same transaction).
	LimitEPS *float64 `json:"limit_eps"`
	// LimitNoNotifyEPS is LimitEPS with the outbox's NOTIFY trigger
	// disabled: a diagnostic, not a configuration the project ships.
	LimitNoNotifyEPS *float64 `json:"limit_no_notify_eps"`
	// SustainedEPS is the highest offered live rate whose step was sustained
	// (verdict.Judge: flat lag, p99 < 1 s, everything delivered).
	SustainedEPS *float64 `json:"sustained_eps"`
	// P99MsAt1000EPS and P99MsAt3000EPS are the live end-to-end p99 at those offered rates.
	P99MsAt1000EPS *float64 `json:"p99_ms_at_1000_eps"`
	P99MsAt3000EPS *float64 `json:"p99_ms_at_3000_eps"`
	// PeerSustainedEPS and PeerP99MsAt1000EPS are the same for the watermill peer.
	PeerSustainedEPS   *float64 `json:"peer_sustained_eps"`
	PeerP99MsAt1000EPS *float64 `json:"peer_p99_ms_at_1000_eps"`
	// BulkEPS is backfilled histories applied at the receiver per second
	// (a lower bound if the bulk did not finish in time: see Errors).
	BulkEPS *float64 `json:"bulk_eps"`
	// LiveP99MsDuringBulk is the live p99 (at Bulk.LiveOfferedEPS) while the backfill runs.
	LiveP99MsDuringBulk *float64 `json:"live_p99_ms_during_bulk"`
	// Undelivered is every written event of every series that never reached
	// the receiver by the final check of its step.
	Undelivered int64 `json:"undelivered"`

	Machine Machine `json:"machine"`
	Ratios  Ratios  `json:"ratios"`
	Limit   *Limit  `json:"limit"`
	Steps   []Step  `json:"steps"`
	Bulk    *Bulk   `json:"bulk"`
	// Method describes how things were measured (also in latest.md).
	Method []string `json:"method"`
	// Errors are the parts of the run that failed (their fields stay null).
	Errors []string `json:"errors"`
}

// Machine is where the run happened.
type Machine struct {
	Cores           int               `json:"cores"`
	MemoryBytes     uint64            `json:"memory_bytes"`
	CPUModel        string            `json:"cpu_model"`
	Kernel          string            `json:"kernel"`
	GoVersion       string            `json:"go_version"`
	PostgresVersion string            `json:"postgres_version"`
	PostgresConfig  map[string]string `json:"postgres_config"`
	BrokerKind      string            `json:"broker_kind"`
	LoadAvgAtStart  string            `json:"loadavg_at_start"`
}

// Ratios compare the headline numbers; null when a side is missing.
type Ratios struct {
	// SustainedVsLimit is SustainedEPS / LimitEPS: how much of what
	// PostgreSQL can commit the whole pipeline carries.
	SustainedVsLimit *float64 `json:"sustained_vs_limit"`
	// PeerSustainedVsLimit is PeerSustainedEPS / LimitEPS.
	PeerSustainedVsLimit *float64 `json:"peer_sustained_vs_limit"`
	// SustainedVsPeer is SustainedEPS / PeerSustainedEPS (> 1: we carry more).
	SustainedVsPeer *float64 `json:"sustained_vs_peer"`
	// PeerP99VsOursAt1000 is PeerP99MsAt1000EPS / P99MsAt1000EPS (> 1: we are faster).
	PeerP99VsOursAt1000 *float64 `json:"peer_p99_vs_ours_at_1000_eps"`
	// BulkVsLimit is BulkEPS / LimitEPS.
	BulkVsLimit *float64 `json:"bulk_vs_limit"`
}

// Limit is the PostgreSQL-only baseline.
type Limit struct {
	DurationS float64 `json:"duration_s"`
	Writers   int     `json:"writers"`
	Commits   int64   `json:"commits"`
	Errors    int64   `json:"errors"`
	EPS       float64 `json:"eps"`
	// CommitLatency is the duration of one transaction (begin to commit).
	CommitLatency latency.Summary `json:"commit_latency"`
	// CPUSPer1k is CPU seconds per 1,000 commits, by process.
	CPUSPer1k map[string]float64 `json:"cpu_s_per_1k_events"`
	// NoNotifyEPS is the same closed loop with the outbox's NOTIFY trigger
	// disabled (a diagnostic: what the relay's wake-up costs the writers).
	NoNotifyEPS           float64         `json:"no_notify_eps"`
	NoNotifyCommitLatency latency.Summary `json:"no_notify_commit_latency"`
}

// Step is one offered rate of one series.
type Step struct {
	Series     string  `json:"series"`
	Mode       string  `json:"mode"`
	OfferedEPS float64 `json:"offered_eps"`
	// WindowS is how long events were scheduled.
	WindowS float64 `json:"window_s"`
	// Scheduled, Written, WriteErrors, Delivered count the step's events.
	Scheduled int64 `json:"scheduled"`
	// NotWritten is scheduled events the writers never started: the queue
	// outlived the window by more than the grace. They count in the
	// latency percentiles with the time until the final check.
	NotWritten  int64 `json:"not_written"`
	Written     int64 `json:"written"`
	WriteErrors int64 `json:"write_errors"`
	Delivered   int64 `json:"delivered"`
	// WriteEPS is events committed at the sender per second, from the first
	// intended send to the last commit (at least the window).
	WriteEPS float64 `json:"write_eps"`
	// AchievedEPS is events delivered per second, from the first intended
	// send to the last receiver commit.
	AchievedEPS float64 `json:"achieved_eps"`
	// Latency is end to end: intended send time to the receiver's commit
	// (synced_at). Undelivered events count with the time until the final
	// check (a lower bound).
	Latency latency.Summary `json:"latency"`
	// SourceLatency is intended send time to the sender's commit (writer
	// queueing + the write transaction).
	SourceLatency latency.Summary `json:"source_latency"`
	// PipelineLatency is the sender's commit to the receiver's commit.
	PipelineLatency latency.Summary `json:"pipeline_latency"`
	// UndeliveredAfterDrain is events not at the receiver when the drain
	// timeout passed; Undelivered, at the step's final check.
	UndeliveredAfterDrain int64   `json:"undelivered_after_drain"`
	Undelivered           int64   `json:"undelivered"`
	DrainS                float64 `json:"drain_s"`
	// LagSlopeEPS is the growth of consumer lag over the window's second half.
	LagSlopeEPS float64 `json:"lag_slope_eps"`
	MaxLag      int64   `json:"max_lag"`
	MaxBacklog  int64   `json:"max_backlog"`
	// CPUSPer1k is CPU seconds per 1,000 delivered events, by process, from
	// the step's start to the end of its drain.
	CPUSPer1k map[string]float64 `json:"cpu_s_per_1k_events"`
	Sustained bool               `json:"sustained"`
	Reasons   []string           `json:"reasons"`
	Samples   []Sample           `json:"samples"`
}

// Sample is one observation of a step's progress.
type Sample struct {
	TS       float64 `json:"t_s"`
	Written  int64   `json:"written"`
	Received int64   `json:"received"`
	Lag      int64   `json:"lag"`
	Backlog  int64   `json:"backlog"`
}

// Bulk is the backfill run with live load on top.
type Bulk struct {
	// Method says how the bulk histories were written and published.
	Method    string `json:"method"`
	Histories int64  `json:"histories"`
	// EnqueueS is how long the backfill itself ran; AppliedS, until the
	// receiver had applied every bulk history.
	EnqueueS float64 `json:"enqueue_s"`
	AppliedS float64 `json:"applied_s"`
	EPS      float64 `json:"eps"`
	// Applied is how many bulk histories reached the receiver.
	Applied int64 `json:"applied"`
	// LiveOfferedEPS is the live rate offered during the bulk.
	LiveOfferedEPS float64 `json:"live_offered_eps"`
	// Live is the live step measured during the bulk.
	Live      Step               `json:"live"`
	CPUSPer1k map[string]float64 `json:"cpu_s_per_1k_events"`
}

// Finalize derives the headline fields and ratios from the rows.
func (r *Result) Finalize() {
	r.SustainedEPS = sustained(r.Steps, SeriesLive)
	r.PeerSustainedEPS = sustained(r.Steps, SeriesPeer)
	r.P99MsAt1000EPS = p99At(r.Steps, SeriesLive, 1000)
	r.P99MsAt3000EPS = p99At(r.Steps, SeriesLive, 3000)
	r.PeerP99MsAt1000EPS = p99At(r.Steps, SeriesPeer, 1000)
	if r.Limit != nil && r.Limit.Commits > 0 {
		r.LimitEPS = ptr(r.Limit.EPS)
		if r.Limit.NoNotifyEPS > 0 {
			r.LimitNoNotifyEPS = ptr(r.Limit.NoNotifyEPS)
		}
	}
	r.Undelivered = 0
	for _, s := range r.Steps {
		r.Undelivered += s.Undelivered
	}
	if r.Bulk != nil {
		r.Undelivered += r.Bulk.Live.Undelivered + (r.Bulk.Histories - r.Bulk.Applied)
		if r.Bulk.Applied > 0 {
			r.BulkEPS = ptr(r.Bulk.EPS) // a lower bound when not all were applied (see Errors)
		}
		if r.Bulk.Live.Latency.Count > 0 {
			r.LiveP99MsDuringBulk = ptr(r.Bulk.Live.Latency.P99)
		}
	}
	r.Ratios = Ratios{
		SustainedVsLimit:     ratio(r.SustainedEPS, r.LimitEPS),
		PeerSustainedVsLimit: ratio(r.PeerSustainedEPS, r.LimitEPS),
		SustainedVsPeer:      ratio(r.SustainedEPS, r.PeerSustainedEPS),
		PeerP99VsOursAt1000:  ratio(r.PeerP99MsAt1000EPS, r.P99MsAt1000EPS),
		BulkVsLimit:          ratio(r.BulkEPS, r.LimitEPS),
	}
}

func sustained(steps []Step, series string) *float64 {
	var pts []verdict.Point
	for _, s := range steps {
		if s.Series == series {
			pts = append(pts, verdict.Point{Offered: s.OfferedEPS, Sustained: s.Sustained})
		}
	}
	if len(pts) == 0 {
		return nil
	}
	v, ok := verdict.SustainedRate(pts)
	if !ok {
		return ptr(0) // measured, and nothing was sustained
	}
	return ptr(v)
}

func p99At(steps []Step, series string, rate float64) *float64 {
	for _, s := range steps {
		if s.Series == series && s.OfferedEPS == rate && s.Latency.Count > 0 {
			return ptr(s.Latency.P99)
		}
	}
	return nil
}

func ratio(a, b *float64) *float64 {
	if a == nil || b == nil || *b == 0 {
		return nil
	}
	return ptr(math.Round(*a / *b * 1000) / 1000)
}

func ptr(v float64) *float64 { return &v }

// WriteFiles writes latest.json, latest.md and latest.svg into dir.
func (r *Result) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write report: encode: %w", err)
	}
	files := map[string][]byte{"latest.json": append(b, '\n'), "latest.md": []byte(r.Markdown())}
	svg, err := r.SVG()
	if err != nil {
		return err
	}
	files["latest.svg"] = svg
	for name, content := range files {
		// Write then rename, so a reader never sees half a report.
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, content, 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}
