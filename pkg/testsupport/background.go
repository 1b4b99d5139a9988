package testsupport

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer safe to write from a running component (a
// logger, a command's output) while the test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Runner is anything long-running that returns when its context ends.
type Runner interface {
	Run(ctx context.Context) error
}

// StopTimeout bounds how long Stop and Wait wait for Run to return.
const StopTimeout = 60 * time.Second

// Running is a Runner started in the background by Start.
type Running struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan struct{}
	err    error // of Run, once done is closed
	once   sync.Once
}

// Start runs r.Run in the background until Stop or the end of the test.
func Start(t testing.TB, r Runner) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &Running{t: t, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		g.err = r.Run(ctx)
	}()
	t.Cleanup(func() { _ = g.Stop() })
	return g
}

// Stop cancels Run and returns its result; calling it again returns the same.
func (g *Running) Stop() error {
	g.once.Do(g.cancel)
	return g.Wait()
}

// Wait returns Run's result once it returned by itself (or was stopped); a
// Run that does not return within StopTimeout fails the test.
func (g *Running) Wait() error {
	select {
	case <-g.done:
		return g.err
	case <-time.After(StopTimeout):
		g.t.Errorf("Run did not return within %v", StopTimeout)
		return nil
	}
}
