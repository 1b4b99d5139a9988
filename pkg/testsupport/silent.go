package testsupport

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// SilentListener accepts TCP connections and never answers on them, as a
// hung broker, or a wrong port behind a load balancer, does: only the
// clients' timeouts (and their giving way to a signal) end their wait.
type SilentListener struct {
	ln       net.Listener
	accepted atomic.Int64
}

// NewSilentListener listens on a free loopback port until the end of the
// test.
func NewSilentListener(t testing.TB) *SilentListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testsupport: silent listener: %v", err)
	}
	s := &SilentListener{ln: ln}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return s
}

// Addr is the listener's host:port.
func (s *SilentListener) Addr() string { return s.ln.Addr().String() }

// Accepted counts the connections accepted so far.
func (s *SilentListener) Accepted() int64 { return s.accepted.Load() }
