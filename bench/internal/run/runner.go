// Package run drives the benchmark: the PostgreSQL-only limit, the live
// series of offered rates through this project's pipeline, the same series
// through the watermill peer, and the bulk backfill with live load on top,
// each on fresh scratch databases and topics, and collects the report.
package run

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/bench/internal/report"
	"github.com/invoicesync/invoicesync/bench/internal/stack"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
)

// Config is what one run does.
type Config struct {
	// Profile names the run in the report: "quick" or "full".
	Profile string
	// Mode is this project's live write path: "go" or "http".
	Mode string
	// Rates are the offered live rates, events/s, in order.
	Rates []float64
	// PeerRates are the watermill peer's; empty skips the peer.
	PeerRates []float64
	// StepDuration is how long each rate is offered.
	StepDuration time.Duration
	// DrainTimeout is how long after a step's writes the receiver may take
	// to catch up before the rest counts as undelivered.
	DrainTimeout time.Duration
	// RecoveryTimeout is how much longer a backlog is waited out before the
	// next step (unmeasured); a series stops when it is not enough.
	RecoveryTimeout time.Duration
	// LimitDuration is how long the closed-loop limit runs; 0 skips it.
	LimitDuration time.Duration
	// Writers is the number of concurrent writers.
	Writers int
	// WriterConns is the size of the PostgreSQL pool the writers share (Go
	// write path, limit and peer), as an app's pool would be: more
	// connections than a few per core only add contention.
	WriterConns int
	// BulkHistories is how many pre-existing histories are backfilled; 0 skips bulk.
	BulkHistories int
	// BulkLiveRate is the live rate offered during the bulk.
	BulkLiveRate float64
	// BulkTimeout bounds the bulk phase.
	BulkTimeout time.Duration
	// Partitions of each topic.
	Partitions int
	// SampleInterval is how often backlog and lag are sampled.
	SampleInterval time.Duration
	// AdminURL reaches PostgreSQL as a role that may create databases.
	AdminURL string
	// BinDir holds sender, receiver and devkafka (make build).
	BinDir string
	// OutDir receives latest.json, latest.md, latest.svg.
	OutDir string
	// WorkDir receives logs and profiles of the run.
	WorkDir string
	// Kafka is an external cluster; empty Brokers starts bin/devkafka.
	Kafka kafkasec.Config
	// ProfileRate is the live rate during which every process is profiled;
	// 0 profiles nothing.
	ProfileRate float64
	// PeerPollInterval is the watermill-sql subscriber's poll interval.
	PeerPollInterval time.Duration
	// SelfExe is this binary (it runs the watermill forwarder).
	SelfExe string
	// ServiceLogLevel is LOG_LEVEL of the project's processes.
	ServiceLogLevel string
	// ServiceEnv are more NAME=value settings of the project's processes
	// (relay, receiver, API, backfill), for tuning experiments.
	ServiceEnv []string
}

// Runner runs one benchmark.
type Runner struct {
	cfg   Config
	log   zerolog.Logger
	runID string
	pg    *stack.Postgres
	kafka *stack.Kafka
	bins  struct{ sender, receiver, devkafka string }
	pprof map[string]string
	res   *report.Result
}

// New returns a runner for cfg.
func New(cfg Config, log zerolog.Logger) *Runner {
	id := stack.NewRunID()
	r := &Runner{cfg: cfg, log: log, runID: id, pg: &stack.Postgres{AdminURL: cfg.AdminURL, RunID: id},
		pprof: map[string]string{}}
	r.bins.sender = filepath.Join(cfg.BinDir, "sender")
	r.bins.receiver = filepath.Join(cfg.BinDir, "receiver")
	r.bins.devkafka = filepath.Join(cfg.BinDir, "devkafka")
	return r
}

// Run runs every part and returns the report; a part that fails is noted
// in Errors and leaves its numbers null. The error is for what makes the
// run impossible (no PostgreSQL, no broker).
func (r *Runner) Run(ctx context.Context) (*report.Result, error) {
	began := time.Now()
	r.res = &report.Result{Profile: r.cfg.Profile, Mode: r.cfg.Mode, Writers: r.cfg.Writers, WriterConns: r.cfg.WriterConns, Steps: []report.Step{}}
	defer func() {
		if err := r.pg.DropAll(); err != nil {
			r.log.Warn().Err(err).Msg("drop scratch databases")
		}
	}()
	if err := os.MkdirAll(r.cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	if r.cfg.ProfileRate > 0 {
		if err := r.buildProfiling(ctx); err != nil {
			return nil, err
		}
	}
	r.res.Machine = r.machine(ctx)
	if r.res.Machine.PostgresVersion == "" {
		return nil, fmt.Errorf("postgres at %s is not reachable (run make postgres)", r.cfg.AdminURL)
	}
	var err error
	if len(r.cfg.Kafka.Brokers) > 0 {
		r.kafka, err = stack.External(r.cfg.Kafka)
	} else {
		r.kafka, err = stack.StartEmbedded(ctx, r.bins.devkafka, filepath.Join(r.cfg.WorkDir, "logs"))
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := r.kafka.Stop(); err != nil {
			r.log.Warn().Err(err).Msg("stop broker")
		}
	}()
	r.res.Machine.BrokerKind = r.kafka.Kind
	r.res.Method = method(r.cfg)

	r.part(ctx, "limit", r.limit)
	r.part(ctx, "live series", func(ctx context.Context) error {
		return r.series(ctx, report.SeriesLive, r.cfg.Mode, r.cfg.Rates)
	})
	if len(r.cfg.PeerRates) > 0 {
		r.part(ctx, "peer series", func(ctx context.Context) error {
			return r.series(ctx, report.SeriesPeer, "watermill", r.cfg.PeerRates)
		})
	}
	if r.cfg.BulkHistories > 0 {
		r.part(ctx, "bulk", r.bulk)
	}
	r.res.GeneratedAt = time.Now().UTC()
	r.res.DurationS = round(time.Since(began).Seconds(), 1)
	r.res.Finalize()
	return r.res, ctx.Err()
}

// part runs one part, logging and recording its failure.
func (r *Runner) part(ctx context.Context, name string, f func(context.Context) error) {
	if ctx.Err() != nil {
		r.res.Errors = append(r.res.Errors, name+": not run (interrupted)")
		return
	}
	t := time.Now()
	r.log.Info().Str("part", name).Msg("starting")
	if err := f(ctx); err != nil {
		r.log.Error().Err(err).Str("part", name).Msg("failed")
		r.res.Errors = append(r.res.Errors, fmt.Sprintf("%s: %v", name, err))
		return
	}
	r.log.Info().Str("part", name).Dur("took", time.Since(t)).Msg("done")
}

// limit measures how many of the sender's transactions PostgreSQL commits
// per second with nothing else running.
func (r *Runner) limit(ctx context.Context) error {
	if r.cfg.LimitDuration <= 0 {
		return nil
	}
	url, err := r.pg.Create(ctx, "limit_sender")
	if err != nil {
		return err
	}
	defer func() { _ = r.pg.Drop(context.Background(), url) }()
	env := stack.Env("SENDER_DATABASE_URL="+url, "LOG_FORMAT=json")
	if _, err := stack.RunToEnd(ctx, env, r.bins.sender, "migrate"); err != nil {
		return err
	}
	p := &pipeline{name: "limit", senderURL: url, procs: map[string]*stack.Proc{}}
	defer p.close(r)
	if err := r.startLimitWriter(ctx, p, url); err != nil {
		return err
	}
	// Under load the busy relay has turned listening off, so writers do not
	// NOTIFY; with no relay running the flag keeps its default (on). Set it
	// as a busy relay would, so the limit measures the writers' real
	// transaction.
	if _, err := p.writerPool.Exec(ctx, "UPDATE outbox_relay_state SET listening = false"); err != nil {
		return fmt.Errorf("limit: turn listening off: %w", err)
	}
	cpu0 := r.cpu(nil)
	res := closedLoop(ctx, p.writer, r.cfg.Writers, r.cfg.LimitDuration, r.log)
	cpu1 := r.cpu(nil)
	delete(cpu1, "broker")
	eps := float64(res.commits) / res.elapsed.Seconds()
	r.res.Limit = &report.Limit{DurationS: round(res.elapsed.Seconds(), 2), Writers: r.cfg.Writers,
		Commits: res.commits, Errors: res.errors, EPS: round(eps, 1), CommitLatency: res.txLatency.Summary(),
		CPUSPer1k: cpuPer1k(cpu0, cpu1, res.commits)}
	r.log.Info().Float64("eps", eps).Int64("commits", res.commits).Msg("limit")

	// Diagnostic: the same again without the outbox's NOTIFY trigger. A
	// transaction that notified holds PostgreSQL's global notify lock
	// through its commit (WAL flush included), which serializes such
	// commits; the difference is what the wake-up costs the writers.
	if _, err := p.writerPool.Exec(ctx, "ALTER TABLE transaction_outbox DISABLE TRIGGER transaction_outbox_notify"); err != nil {
		return fmt.Errorf("limit without notify: %w", err)
	}
	nn := closedLoop(ctx, p.writer, r.cfg.Writers, r.cfg.LimitDuration, r.log)
	nnEPS := float64(nn.commits) / nn.elapsed.Seconds()
	r.res.Limit.NoNotifyEPS = round(nnEPS, 1)
	r.res.Limit.NoNotifyCommitLatency = nn.txLatency.Summary()
	r.log.Info().Float64("eps", nnEPS).Int64("commits", nn.commits).Msg("limit without the NOTIFY trigger")
	return nil
}

// series runs one series of steps on a fresh pipeline. It stops early when
// a step's backlog outlives the recovery timeout: later steps would
// measure that backlog, not their rate.
func (r *Runner) series(ctx context.Context, series, mode string, rates []float64) error {
	kind := series
	p, err := r.newPipeline(ctx, kind, mode)
	if err != nil {
		return err
	}
	defer p.close(r)
	for i, rate := range rates {
		last := i == len(rates)-1
		st, err := r.step(ctx, p, series, mode, rate, r.cfg.StepDuration, last)
		if err != nil {
			return fmt.Errorf("%s: %w", stepLabel(series, rate), err)
		}
		r.res.Steps = append(r.res.Steps, st)
		r.log.Info().Str("series", series).Float64("offered", rate).Float64("achieved", st.AchievedEPS).
			Float64("p50_ms", st.Latency.P50).Float64("p99_ms", st.Latency.P99).Float64("p999_ms", st.Latency.P999).
			Int64("undelivered_after_drain", st.UndeliveredAfterDrain).Bool("sustained", st.Sustained).
			Strs("reasons", st.Reasons).Msg("step")
		if !last && st.Undelivered > 0 {
			r.res.Errors = append(r.res.Errors, fmt.Sprintf("%s: %d events still undelivered after the recovery "+
				"timeout; the higher rates of this series were not run", stepLabel(series, rate), st.Undelivered))
			return nil
		}
	}
	return nil
}

// machine describes the host, PostgreSQL and the broker.
func (r *Runner) machine(ctx context.Context) report.Machine {
	m := report.Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb uint64
		for _, line := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				m.MemoryBytes = kb * 1024
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvgAtStart = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, settings, err := r.pg.Describe(c)
	if err != nil {
		r.log.Error().Err(err).Msg("postgres")
	}
	m.PostgresVersion, m.PostgresConfig = v, settings
	return m
}

// method documents how the numbers were taken, for the report.
func method(c Config) []string {
	return []string{
		fmt.Sprintf("Open-loop load: event i is intended at t0 + i/rate and queued for %d concurrent writers "+
			"sharing a pool of %d PostgreSQL connections (as an app's pool; the HTTP API has its own); "+
			"latency counts from the intended time, so queueing behind a stalled writer, the pool or the pipeline "+
			"is measured (no coordinated omission).", c.Writers, c.WriterConns),
		"An event is one send-invoice history with 1-5 forms (uniform, 3 on average), written in its own transaction " +
			map[string]string{"go": "with history.Record (the Go write path)", "http": "through POST /v1/histories of `sender serve`"}[c.Mode] + ".",
		"End-to-end latency: intended send time to received_invoice_history.synced_at (the receiver's clock_timestamp() " +
			"at apply), joined by history id after the step; same host, same clock. Source latency: intended time to " +
			"the sender's commit; pipeline latency: sender commit to receiver commit. HDR histograms (1 µs-1 h, 3 digits).",
		fmt.Sprintf("Warm-up before the first step of a series: %d events through the pipeline, then ANALYZE of both "+
			"databases, so the services plan with statistics as on a running system (a fresh database plans from "+
			"empty tables until autovacuum's first ANALYZE, about a minute in).", warmUpEvents),
		fmt.Sprintf("Each rate runs %v; then the receiver gets %v to catch up (drain), else the rest counts as "+
			"undelivered-after-drain and, before the next rate, up to %v more (unmeasured). Undelivered events enter "+
			"the latency histogram with the time until the final check (a lower bound).", c.StepDuration, c.DrainTimeout, c.RecoveryTimeout),
		fmt.Sprintf("Sustained = writers committed >= 99%% of the schedule, no write errors, everything delivered "+
			"within the drain timeout, p99 < 1 s, and consumer lag (sender commits - receiver commits) growing by "+
			"at most 5%% of the rate per second over the step's second half (sampled every %v). The sustained rate "+
			"is the highest sustained step.", c.SampleInterval),
		"CPU: utime+stime from /proc/<pid>/stat at the step's start and after its drain, per 1,000 delivered events: " +
			"relay (or forwarder), receiver, broker, generator (this process: writers, sampling; in http mode the API " +
			"is sender_api), postgres = every postgres process of the cluster plus what the postmaster reaped from " +
			"exited backends. The cluster is shared: other databases' work counts too.",
		"Limit: the same writers and transaction (history.Record) closed-loop, flat out, on a fresh database with " +
			"no relay and no receiver; commits/s. The outbox trigger still writes its row (it is part of the transaction).",
		fmt.Sprintf("Peer: watermill v1.5 forwarder (watermill-sql v3 on database/sql + pgx stdlib, watermill-kafka v3 "+
			"on Sarama, SCRAM-SHA-512, acks=all) as a separate process, publishing to its own topic consumed by the same "+
			"`receiver serve`. Writers call record_send_invoice_history (through bench_peer_record, which also returns "+
			"the event payload) and insert the watermill message with the watermill-sql publisher on the same "+
			"transaction; our outbox trigger is disabled on the peer's database, so only watermill publishes. Kafka "+
			"key = history id. Subscriber poll interval %v (watermill's default is 1 s), batch 100.", c.PeerPollInterval),
		fmt.Sprintf("Bulk: `sender seed -n %d` fills SCI's legacy tables (not measured), then `sender backfill` "+
			"publishes them through the outbox's bulk lane while live load runs at %.0f/s; bulk_eps = histories / time "+
			"from the backfill's start until the receiver holds all of them.", c.BulkHistories, c.BulkLiveRate),
		fmt.Sprintf("Scratch databases bench_<run>_* are created per series and dropped at the end; topics have %d "+
			"partitions. Processes run from %s; logs in %s.", c.Partitions, c.BinDir, filepath.Join(c.WorkDir, "logs")),
	}
}
