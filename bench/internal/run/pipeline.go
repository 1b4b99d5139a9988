package run

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/invoicesync/invoicesync/bench/internal/peer"
	"github.com/invoicesync/invoicesync/bench/internal/procstat"
	"github.com/invoicesync/invoicesync/bench/internal/stack"
	"github.com/invoicesync/invoicesync/bench/internal/workload"
	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/dlq"
)

// pipeline is one series' running system: its two databases, its topic,
// the publishing process (relay or watermill forwarder), the receiver, and
// in http mode the sender API.
type pipeline struct {
	name        string // live, peer, bulk
	senderURL   string
	receiverURL string
	topic       string
	env         []string
	// sender is the benchmark's pool on the sender database (writers use
	// writerPool or sqlDB); receiver, on the receiver database.
	sender, receiver *pgxpool.Pool
	writerPool       *pgxpool.Pool
	sqlDB            *sql.DB
	procs            map[string]*stack.Proc // relay|forwarder, receiver, sender_api
	writer           workload.Writer
	backlog          func(context.Context) (int64, error)
	logDir           string
	// pprof is the pprof listen address of each process, when profiling.
	pprof   map[string]string
	closers []func()
}

// newPipeline builds and starts the pipeline of a series. kind is
// "live"/"bulk" (this project) or "peer" (watermill); mode picks the write
// path of this project ("go" or "http").
func (r *Runner) newPipeline(ctx context.Context, kind, mode string) (_ *pipeline, err error) {
	p := &pipeline{name: kind, procs: map[string]*stack.Proc{}, logDir: filepath.Join(r.cfg.WorkDir, "logs", kind),
		pprof: r.pprof}
	defer func() {
		if err != nil {
			p.close(r)
		}
	}()
	if p.senderURL, err = r.pg.Create(ctx, kind+"_sender"); err != nil {
		return nil, err
	}
	if p.receiverURL, err = r.pg.Create(ctx, kind+"_receiver"); err != nil {
		return nil, err
	}
	p.topic = "bench-" + r.runID + "-" + kind
	if err := r.kafka.CreateTopics(ctx, r.cfg.Partitions, p.topic); err != nil {
		return nil, err
	}
	if err := r.kafka.CreateTopics(ctx, 1, dlq.Topic(p.topic)); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.kafka.DeleteTopics(c, p.topic, dlq.Topic(p.topic))
	})
	env := append(r.kafka.Env(),
		"SENDER_DATABASE_URL="+p.senderURL,
		"RECEIVER_DATABASE_URL="+p.receiverURL,
		"KAFKA_TOPIC="+p.topic,
		"RECEIVER_GROUP_ID=bench-"+r.runID+"-"+kind,
		"LOG_FORMAT=json",
		"LOG_LEVEL="+r.cfg.ServiceLogLevel,
	)
	p.env = stack.Env(append(env, r.cfg.ServiceEnv...)...)
	if _, err := stack.RunToEnd(ctx, p.env, r.bins.sender, "migrate"); err != nil {
		return nil, err
	}
	if _, err := stack.RunToEnd(ctx, p.env, r.bins.receiver, "migrate"); err != nil {
		return nil, err
	}
	if p.sender, err = db.Open(ctx, p.senderURL, db.Options{MaxConns: 4, AppName: "bench-observer"}); err != nil {
		return nil, err
	}
	if p.receiver, err = db.Open(ctx, p.receiverURL, db.Options{MaxConns: 4, AppName: "bench-observer"}); err != nil {
		return nil, err
	}
	if kind == "peer" {
		err = r.startPeer(ctx, p)
	} else {
		err = r.startOurs(ctx, p, mode)
	}
	if err != nil {
		return nil, err
	}
	if err := r.startReceiver(ctx, p); err != nil {
		return nil, err
	}
	return p, r.warmUp(ctx, p)
}

// startOurs starts the relay (and the sender API in http mode) and picks
// the writer.
func (r *Runner) startOurs(ctx context.Context, p *pipeline, mode string) error {
	relay, err := stack.Start("relay", p.logDir, append(p.withPprof("relay"), "RELAY_HTTP_ADDR="), r.bins.sender, "relay")
	if err != nil {
		return err
	}
	p.procs["relay"] = relay
	p.backlog = func(ctx context.Context) (int64, error) {
		var n int64
		err := p.sender.QueryRow(ctx, "SELECT count(*) FROM transaction_outbox").Scan(&n)
		return n, err
	}
	switch mode {
	case "http":
		addr, err := stack.FreeAddr()
		if err != nil {
			return err
		}
		api, err := stack.Start("sender_api", p.logDir, append(p.withPprof("sender_api"), "SENDER_HTTP_ADDR="+addr),
			r.bins.sender, "serve")
		if err != nil {
			return err
		}
		p.procs["sender_api"] = api
		if err := stack.WaitHTTP(ctx, api, "http://"+addr+"/healthz", 30*time.Second); err != nil {
			return err
		}
		p.writer = workload.NewHTTPWriter("http://"+addr, r.cfg.Writers)
	default:
		p.writerPool, err = db.Open(ctx, p.senderURL, db.Options{MaxConns: int32(r.cfg.WriterConns), AppName: "bench-writer"}) //nolint:gosec // small
		if err != nil {
			return err
		}
		p.writer = workload.GoWriter{Pool: p.writerPool}
	}
	return nil
}

// startPeer prepares the peer's sender database and starts the watermill
// forwarder, a separate process (this binary's "forwarder" command).
func (r *Runner) startPeer(ctx context.Context, p *pipeline) error {
	if err := peer.Prepare(ctx, p.sender, peer.DefaultForwarderTopic); err != nil {
		return err
	}
	fwdEnv := append(p.withPprof("forwarder"),
		"BENCH_FORWARDER_POLL_INTERVAL="+r.cfg.PeerPollInterval.String())
	fwd, err := stack.Start("forwarder", p.logDir, fwdEnv, r.cfg.SelfExe, "forwarder")
	if err != nil {
		return err
	}
	p.procs["forwarder"] = fwd
	pool, err := db.Open(ctx, p.senderURL, db.Options{MaxConns: int32(r.cfg.WriterConns), AppName: "bench-writer"}) //nolint:gosec // small
	if err != nil {
		return err
	}
	p.writerPool = pool
	p.sqlDB = stdlib.OpenDBFromPool(pool)
	p.sqlDB.SetMaxOpenConns(r.cfg.WriterConns)
	p.sqlDB.SetMaxIdleConns(r.cfg.WriterConns)
	p.writer = peer.Writer{DB: p.sqlDB, Topic: p.topic, ForwarderTopic: peer.DefaultForwarderTopic}
	p.backlog = func(ctx context.Context) (int64, error) {
		return peer.Backlog(ctx, p.sender, peer.DefaultForwarderTopic, peer.DefaultConsumerGroup)
	}
	return nil
}

func (r *Runner) startReceiver(ctx context.Context, p *pipeline) error {
	addr, err := stack.FreeAddr()
	if err != nil {
		return err
	}
	rcv, err := stack.Start("receiver", p.logDir, append(p.withPprof("receiver"), "RECEIVER_HTTP_ADDR="+addr),
		r.bins.receiver, "serve")
	if err != nil {
		return err
	}
	p.procs["receiver"] = rcv
	return stack.WaitHTTP(ctx, rcv, "http://"+addr+"/healthz", 30*time.Second)
}

// warmUpEvents go through the pipeline before the first measured step.
const warmUpEvents = 2000

// warmUp writes warmUpEvents events and waits until the receiver has them,
// so the consumer group has joined and every connection is open before the
// first measured step; then it ANALYZEs both databases, so the services
// plan with statistics as on a running system. (A fresh database plans
// from empty tables until autovacuum's first ANALYZE, about a minute in.)
func (r *Runner) warmUp(ctx context.Context, p *pipeline) error {
	base, err := p.maxHistoryID(ctx)
	if err != nil {
		return err
	}
	const writers = 8
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			gen := workload.NewHistories(uint64(7 + w)) //nolint:gosec // small
			for i := 0; i < warmUpEvents/writers; i++ {
				if _, err := p.writer.Write(ctx, gen.Next()); err != nil {
					errs <- fmt.Errorf("warm-up write: %w", err)
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < writers; w++ {
		if err := <-errs; err != nil {
			return err
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, err := p.received(ctx, base)
		if err == nil && got >= warmUpEvents {
			for _, pool := range []*pgxpool.Pool{p.sender, p.receiver} {
				if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
					return fmt.Errorf("warm-up: analyze: %w", err)
				}
			}
			return nil
		}
		if err := p.checkAlive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up: the receiver has %d of %d events after 90s (logs in %s)", got, warmUpEvents, p.logDir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// withPprof is the pipeline's environment, plus a pprof address for name
// when the run profiles (the profiling builds listen on it).
func (p *pipeline) withPprof(name string) []string {
	env := append([]string(nil), p.env...)
	if addr := p.pprof[name]; addr != "" {
		env = append(env, "BENCH_PPROF_ADDR="+addr)
	}
	return env
}

// maxHistoryID is the highest history id at the sender.
func (p *pipeline) maxHistoryID(ctx context.Context) (int64, error) {
	var id int64
	err := p.sender.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM send_invoice_history").Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("max history id: %w", err)
	}
	return id, nil
}

// received counts the receiver's histories with an id in (after, upTo]
// (upTo 0: no bound).
func (p *pipeline) received(ctx context.Context, after int64, upTo ...int64) (int64, error) {
	hi := int64(1<<62 - 1)
	if len(upTo) > 0 && upTo[0] > 0 {
		hi = upTo[0]
	}
	var n int64
	err := p.receiver.QueryRow(ctx, "SELECT count(*) FROM received_invoice_history WHERE history_id > $1 AND history_id <= $2",
		after, hi).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count received: %w", err)
	}
	return n, nil
}

// applied counts the histories with an id in (after, upTo] the receiver
// has applied, deleted ones (status ERROR) included: its version guard
// remembers every one.
func (p *pipeline) applied(ctx context.Context, after, upTo int64) (int64, error) {
	var n int64
	err := p.receiver.QueryRow(ctx, `SELECT count(*) FROM aggregate_version
	    WHERE aggregate_type = 'invoice_history' AND aggregate_id::bigint > $1 AND aggregate_id::bigint <= $2`,
		after, upTo).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count applied: %w", err)
	}
	return n, nil
}

// syncedAt returns the receiver's commit time of every history with id > after.
func (p *pipeline) syncedAt(ctx context.Context, after int64) (map[int64]time.Time, error) {
	rows, err := p.receiver.Query(ctx, "SELECT history_id, synced_at FROM received_invoice_history WHERE history_id > $1", after)
	if err != nil {
		return nil, fmt.Errorf("synced_at: %w", err)
	}
	defer rows.Close()
	out := map[int64]time.Time{}
	for rows.Next() {
		var id int64
		var t time.Time
		if err := rows.Scan(&id, &t); err != nil {
			return nil, fmt.Errorf("synced_at: %w", err)
		}
		out[id] = t
	}
	return out, rows.Err()
}

// checkAlive reports a process of the pipeline that exited.
func (p *pipeline) checkAlive() error {
	for name, pr := range p.procs {
		if exited, err := pr.Exited(); exited {
			return fmt.Errorf("%s exited (%v); log tail:\n%s", name, err, pr.Tail(15))
		}
	}
	return nil
}

// cpu reads the CPU time used so far by every process of the run.
func (r *Runner) cpu(p *pipeline) map[string]time.Duration {
	stats := procstat.All()
	out := map[string]time.Duration{
		"postgres":  procstat.GroupCPU(stats, "postgres"),
		"generator": procstat.ProcessCPU(os.Getpid()),
	}
	if pid := r.kafka.PID(); pid > 0 {
		out["broker"] = procstat.ProcessCPU(pid)
	}
	if p != nil {
		for name, pr := range p.procs {
			out[name] = procstat.ProcessCPU(pr.PID())
		}
	}
	return out
}

// close stops the processes and closes the pools; the databases are
// dropped by the runner.
func (p *pipeline) close(r *Runner) {
	for _, name := range []string{"sender_api", "relay", "forwarder", "receiver"} {
		if pr := p.procs[name]; pr != nil {
			if err := pr.Stop(20 * time.Second); err != nil {
				r.log.Warn().Err(err).Str("process", name).Msg("stop")
			}
		}
	}
	if p.sqlDB != nil {
		p.sqlDB.Close()
	}
	for _, pool := range []*pgxpool.Pool{p.writerPool, p.sender, p.receiver} {
		if pool != nil {
			pool.Close()
		}
	}
	for _, c := range p.closers {
		c()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, u := range []string{p.senderURL, p.receiverURL} {
		if u != "" {
			if err := r.pg.Drop(ctx, u); err != nil {
				r.log.Warn().Err(err).Msg("drop database")
			}
		}
	}
}

// startLimitWriter opens the writers' pool of the limit (Go path only: the
// limit is PostgreSQL's, not the API's).
func (r *Runner) startLimitWriter(ctx context.Context, p *pipeline, url string) error {
	pool, err := db.Open(ctx, url, db.Options{MaxConns: int32(r.cfg.WriterConns), AppName: "bench-writer"}) //nolint:gosec // small
	if err != nil {
		return err
	}
	p.writerPool = pool
	p.writer = workload.GoWriter{Pool: pool}
	return nil
}
