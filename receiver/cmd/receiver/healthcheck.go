package main

import (
	"context"
	"time"

	"github.com/invoicesync/invoicesync/pkg/probe"
	"github.com/invoicesync/invoicesync/pkg/settings"
)

// healthcheck asks a running "receiver serve" whether it is healthy and
// exits non-zero when not: the container health check (the image has no curl).
func (a *app) healthcheck(ctx context.Context, args []string) error {
	var url string
	var timeout time.Duration
	s := settings.New("receiver healthcheck", "Exit 0 when the receiver answers its health endpoint, 1 otherwise.")
	s.String(&url, "url", "", "http://127.0.0.1:8081/healthz", "health endpoint to ask")
	s.Duration(&timeout, "timeout", "", 3*time.Second, "how long to wait for the answer")
	s.SetOutput(a.stdout)
	s.SetLookup(a.lookup)
	if err := s.Parse(args); err != nil {
		return asUsage(err)
	}
	return probe.HTTP(ctx, url, timeout)
}
