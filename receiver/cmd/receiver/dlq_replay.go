package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/settings"
	"github.com/invoicesync/invoicesync/receiver/internal/deadletter"
)

const dlqReplaySummary = `receiver dlq replay (ID... | --all | filters) [--dry-run] [--rate N] [--yes]

Republishes entries to the topic they came from, with their original key,
value and headers plus dlq-replay-attempt, so they go through the normal path
again: the receiver skips events it already applied, applies only versions
newer than the one it holds, and dead-letters a replayed event that fails
again with attempt+1.

Each entry is recorded as replayed in the receiver database as soon as the
broker acknowledged it. Running the same replay again skips what was
replayed (--again replays it anyway), so after Ctrl-C (which finishes the
entry in flight) or a failure, run the same command to resume. Handled
entries are never replayed (unmark them first); entries that failed
--max-attempts times or more are skipped unless --force.

Selecting by --all or filters asks for confirmation on a terminal; elsewhere
it needs --yes. --dry-run lists what would be replayed and changes nothing.`

// replayFlags are the flags of `receiver dlq replay`.
type replayFlags struct {
	filterFlags
	all, dryRun, yes bool
	rate             int
	opts             deadletter.ReplayOptions
}

func (f *replayFlags) register(s *settings.Set) {
	f.filterFlags.register(s)
	s.Bool(&f.all, "all", "", false, "replay every entry of the topic (handled ones excepted)")
	s.Bool(&f.dryRun, "dry-run", "", false, "print what would be replayed; publish and record nothing")
	s.Bool(&f.yes, "yes", "", false, "do not ask for confirmation (needed for --all or filters when stdin is not a terminal)")
	s.Int(&f.rate, "rate", "", 50, "replay at most N entries per second (0: no limit)")
	s.Int(&f.opts.MaxAttempts, "max-attempts", "", deadletter.DefaultMaxAttempts,
		"skip entries that already failed this many times (loop protection)")
	s.Bool(&f.opts.Force, "force", "", false, "replay entries at or above --max-attempts too")
	s.Bool(&f.opts.Again, "again", "", false, "replay entries that were replayed before too")
}

// dlqReplay runs `receiver dlq replay`.
func (a *app) dlqReplay(ctx context.Context, args []string) error {
	var f replayFlags
	cfg, ids, err := a.dlqConfigure("replay", dlqReplaySummary, args, f.register)
	if err != nil {
		return err
	}
	sel := deadletter.Selection{IDs: ids, All: f.all}
	if sel.Filter, err = f.filter(time.Now); err != nil {
		return err
	}
	if err := sel.Validate(); err != nil {
		return fmt.Errorf("receiver dlq replay: %w (see --help)", err)
	}
	if f.rate < 0 || f.opts.MaxAttempts < 1 {
		return fmt.Errorf("--rate must be 0 or more and --max-attempts 1 or more (got %d and %d)", f.rate, f.opts.MaxAttempts)
	}
	s, err := a.openDLQ(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.close()
	plan, err := s.queue.Plan(ctx, sel, f.opts)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	a.reportSkips(plan.Skipped, len(ids) > 0)
	if len(plan.Replay) == 0 {
		fmt.Fprintln(a.stderr, "nothing to replay")
		return nil
	}
	target := strings.Join(plan.Topics(), ", ")
	if f.dryRun {
		if err := writeTable(a.stdout, plan.Replay); err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "dry run: would replay %d %s to %s; nothing was published or recorded\n",
			len(plan.Replay), plural(len(plan.Replay), "entry", "entries"), target)
		return nil
	}
	if err := s.conn.CheckTopics(ctx, plan.Topics()...); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if len(ids) == 0 && !f.yes {
		if err := a.confirm(len(plan.Replay), target); err != nil {
			return err
		}
	}
	return a.runReplay(ctx, s.queue, plan.Replay, f.rate, target)
}

// runReplay replays items with progress and says how to resume when cut short.
func (a *app) runReplay(ctx context.Context, q *deadletter.Queue, items []deadletter.Item, rate int, target string) error {
	p := newProgress(a.stderr, a.log, len(items))
	n, err := q.Replay(ctx, items, deadletter.Every(rate), p.update)
	p.finish()
	if err != nil {
		left := len(items) - n
		how := "run the same command again to replay the remaining %d (those replayed are recorded and skipped)"
		if errors.Is(err, deadletter.ErrInterrupted) {
			return fmt.Errorf("replay interrupted after %d of %d entries: "+how, n, len(items), left)
		}
		return fmt.Errorf("%w; %d of %d entries were replayed: fix the cause, then "+how, err, n, len(items), left)
	}
	fmt.Fprintf(a.stderr, "replayed %d %s to %s\n", n, plural(n, "entry", "entries"), target)
	return nil
}

// reportSkips says which selected entries are left alone and why: each of
// them when named by id, else a count per reason with a few ids.
func (a *app) reportSkips(skips []deadletter.Skip, byID bool) {
	if byID {
		for _, s := range skips {
			fmt.Fprintf(a.stderr, "skipping %s: %s\n", s.ID, s.Why)
		}
		return
	}
	var order []string
	byWhy := map[string][]string{}
	for _, s := range skips {
		if _, ok := byWhy[s.Why]; !ok {
			order = append(order, s.Why)
		}
		byWhy[s.Why] = append(byWhy[s.Why], s.ID)
	}
	for _, why := range order {
		ids := byWhy[why]
		example := strings.Join(ids[:min(len(ids), 5)], ", ")
		if len(ids) > 5 {
			example += ", …"
		}
		fmt.Fprintf(a.stderr, "skipping %d %s: %s (%s)\n", len(ids), plural(len(ids), "entry", "entries"), why, example)
	}
}

// confirm asks on the terminal whether to replay n entries to target;
// without a terminal to ask on, it asks for --yes.
func (a *app) confirm(n int, target string) error {
	what := fmt.Sprintf("%d %s to %s", n, plural(n, "entry", "entries"), target)
	if !isTerminal(os.Stdin) || !isTerminal(a.stderr) {
		return fmt.Errorf("replay of %s not confirmed: stdin is not a terminal; pass --yes to replay without asking", what)
	}
	fmt.Fprintf(a.stderr, "Replay %s? [y/N] ", what)
	answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if ans := strings.ToLower(strings.TrimSpace(answer)); ans != "y" && ans != "yes" {
		return errors.New("replay cancelled: nothing was replayed")
	}
	return nil
}

// progress shows a replay's progress: a line rewritten in place on a
// terminal, a log line every few seconds elsewhere.
type progress struct {
	w        io.Writer
	log      zerolog.Logger
	terminal bool
	total    int
	start    time.Time
	last     time.Time
	every    time.Duration
	drawn    bool
}

func newProgress(w io.Writer, log zerolog.Logger, total int) *progress {
	p := &progress{w: w, log: log, terminal: isTerminal(w), total: total, start: time.Now(), every: 5 * time.Second}
	if p.terminal {
		p.every = 100 * time.Millisecond
	}
	return p
}

// update is called after each replayed entry.
func (p *progress) update(done int, _ deadletter.Item) {
	now := time.Now()
	if done < p.total && now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 1e-3)
	eta := time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second)
	if p.terminal {
		fmt.Fprintf(p.w, "\rreplayed %d/%d  %.1f/s  ETA %s   ", done, p.total, rate, eta)
		p.drawn = true
		return
	}
	p.log.Info().Int("replayed", done).Int("total", p.total).Float64("per_second", math.Round(rate*10)/10).
		Str("eta", eta.String()).Msg("replay progress")
}

// finish ends the progress line.
func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
