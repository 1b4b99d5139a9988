package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// shutdownTimeout bounds how long Run waits for requests in flight.
const shutdownTimeout = 10 * time.Second

// Server serves a handler on a bound address.
type Server struct {
	srv *http.Server
	ln  net.Listener
	log zerolog.Logger
}

// Listen binds addr now, so a taken port fails at startup; Run serves.
func Listen(addr string, h http.Handler, log zerolog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http listen %s: %w", addr, err)
	}
	return &Server{ln: ln, log: log, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}}, nil
}

// Addr is the bound address (with the real port when addr asked for :0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx is cancelled, then lets requests in flight finish
// within 10s and returns nil. It returns an error if serving fails.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info().Str("addr", s.Addr()).Msg("serving the read API")
	select {
	case err := <-errc:
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close()
		s.log.Warn().Err(err).Msg("http shutdown: closed requests still in flight")
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http serve: %w", err)
	}
	return nil
}
