// Package progress shows how far a long job (seeding, backfilling) got: a
// progress bar with rate and ETA when a person watches a terminal, and a log
// line every few seconds otherwise (containers, CI, files), so both can tell
// whether it moves and when it will end.
package progress

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
)

// DefaultInterval is how often the log mode writes a line.
const DefaultInterval = 5 * time.Second

// Options configure a Reporter.
type Options struct {
	// Out is where the bar is drawn (stderr). The bar is used only when Out
	// is a terminal.
	Out io.Writer
	// Log receives the periodic lines when Out is not a terminal, and the
	// final line in both modes.
	Log zerolog.Logger
	// What names the job ("backfill") and Unit what it counts ("histories").
	What, Unit string
	// Interval between log lines. Default DefaultInterval.
	Interval time.Duration
}

// Reporter counts work done against a total. Safe for one goroutine.
type Reporter struct {
	o     Options
	bar   *progressbar.ProgressBar
	total int64
	done  int64
	start time.Time
	last  time.Time
	now   func() time.Time
	mu    sync.Mutex
}

// New returns a reporter; Start begins it.
func New(o Options) *Reporter {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	return &Reporter{o: o, now: time.Now}
}

// IsTerminal reports whether w is a terminal a person can watch.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// Start begins counting towards total (an estimate; 0 when unknown).
func (r *Reporter) Start(total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total, r.done = total, 0
	r.start = r.now()
	r.last = r.start
	if IsTerminal(r.o.Out) {
		r.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(r.o.Out),
			progressbar.OptionSetDescription(r.o.What),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(r.o.Unit),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
}

// Add counts n more units done.
func (r *Reporter) Add(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done += n
	if r.bar != nil {
		_ = r.bar.Add64(n)
		return
	}
	if now := r.now(); now.Sub(r.last) >= r.o.Interval {
		r.last = now
		r.line(r.o.Log.Info(), now).Msg(r.o.What + " progress")
	}
}

// Finish ends the bar and logs the final count, rate and elapsed time.
func (r *Reporter) Finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Exit()
		_, _ = io.WriteString(r.o.Out, "\n")
		r.bar = nil
	}
	now := r.now()
	rate, _ := Estimate(r.done, r.total, now.Sub(r.start))
	r.o.Log.Info().Int64("done", r.done).Str("unit", r.o.Unit).Float64("rate_per_s", round1(rate)).
		Dur("elapsed", now.Sub(r.start).Round(time.Millisecond)).Msg(r.o.What + " progress: finished")
}

func (r *Reporter) line(e *zerolog.Event, now time.Time) *zerolog.Event {
	rate, eta := Estimate(r.done, r.total, now.Sub(r.start))
	e = e.Int64("done", r.done).Int64("total", r.total).Str("unit", r.o.Unit).Float64("rate_per_s", round1(rate))
	if r.total > 0 {
		e = e.Float64("percent", round1(100*float64(r.done)/float64(r.total)))
	}
	if eta >= 0 {
		e = e.Str("eta", eta.Round(time.Second).String())
	}
	return e
}

// Estimate returns the rate so far (units per second) and the time left
// to reach total at that rate; the ETA is -1 when it cannot be told (no
// total, nothing done yet, or no time elapsed).
func Estimate(done, total int64, elapsed time.Duration) (rate float64, eta time.Duration) {
	if elapsed <= 0 || done <= 0 {
		return 0, -1
	}
	rate = float64(done) / elapsed.Seconds()
	if total <= 0 {
		return rate, -1
	}
	left := max(total-done, 0)
	return rate, time.Duration(float64(left) / rate * float64(time.Second))
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
