package api

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// ServerConfig tunes the HTTP server. Zero durations mean the defaults.
type ServerConfig struct {
	// Addr is the host:port to listen on. Required.
	Addr string
	// ReadHeaderTimeout bounds reading a request's headers. Default 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request. Default 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds handling a request and writing the answer. Default 30s.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Default 2m.
	IdleTimeout time.Duration
	// ShutdownTimeout bounds how long requests in flight may finish once
	// shutdown starts; the rest are cut off. Default 15s.
	ShutdownTimeout time.Duration
}

// SetDefaults fills the zero fields with their defaults.
func (c *ServerConfig) SetDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, 5*time.Second)
	def(&c.ReadTimeout, 30*time.Second)
	def(&c.WriteTimeout, 30*time.Second)
	def(&c.IdleTimeout, 2*time.Minute)
	def(&c.ShutdownTimeout, 15*time.Second)
}

// Validate reports the first setting that is wrong, by name.
func (c *ServerConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("http addr: %q is not host:port: %w", c.Addr, err)
	}
	for name, d := range map[string]time.Duration{
		"read header timeout": c.ReadHeaderTimeout, "read timeout": c.ReadTimeout,
		"write timeout": c.WriteTimeout, "idle timeout": c.IdleTimeout, "shutdown timeout": c.ShutdownTimeout,
	} {
		if d < 0 {
			return fmt.Errorf("http %s: must not be negative, got %s", name, d)
		}
	}
	return nil
}

// Server serves a handler until its context ends.
type Server struct {
	cfg ServerConfig
	srv *http.Server
	ln  net.Listener
	log zerolog.Logger
}

// NewServer listens on cfg.Addr, so a taken port fails at startup; Run
// serves. Requests keep their own context through shutdown, so a write in
// flight commits instead of being cut off when the process is stopped.
func NewServer(cfg ServerConfig, h http.Handler, log zerolog.Logger) (*Server, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("http listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          stdlog.New(log.With().Str("component", "http").Logger(), "", 0),
	}
	return &Server{cfg: cfg, srv: srv, ln: ln, log: log}, nil
}

// Addr is the address listened on (the port chosen when Addr's was 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then stops accepting requests and waits up to
// ShutdownTimeout for those in flight. It returns nil after a complete drain.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info().Str("addr", s.Addr().String()).Msg("http server listening")
	select {
	case err := <-errc:
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info().Str("timeout", s.cfg.ShutdownTimeout.String()).Msg("http server draining")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("http serve: %w", serr)
	}
	if err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("http shutdown: requests still running after %s were cut off: %w", s.cfg.ShutdownTimeout, err)
	}
	return nil
}
