// Package health serves the liveness and readiness endpoints every process
// exposes: /healthz answers 200 while the process runs; /readyz runs the
// process's named checks (database and Kafka reachable) and answers 503
// naming each failing one. Checks run at most once per CacheFor so a busy
// prober does not load the dependencies.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Check reports whether one dependency is usable.
type Check func(ctx context.Context) error

// Config tunes the readiness checks.
type Config struct {
	// Timeout bounds one run of all checks. Default 3s.
	Timeout time.Duration
	// CacheFor reuses a result this long. Default 2s.
	CacheFor time.Duration
}

// Checker runs named checks for /readyz.
type Checker struct {
	cfg    Config
	checks map[string]Check

	mu      sync.Mutex
	last    time.Time
	results map[string]string
}

// New returns a Checker over checks (name → check).
func New(cfg Config, checks map[string]Check) *Checker {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.CacheFor <= 0 {
		cfg.CacheFor = 2 * time.Second
	}
	return &Checker{cfg: cfg, checks: checks}
}

// Run runs the checks (or returns the cached result) and returns, per
// check, "ok" or the error text.
func (c *Checker) Run(ctx context.Context) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.results != nil && time.Since(c.last) < c.cfg.CacheFor {
		return c.results
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	out := make(map[string]string, len(c.checks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, check := range c.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := "ok"
			if err := check(ctx); err != nil {
				res = err.Error()
			}
			mu.Lock()
			out[name] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	c.results, c.last = out, time.Now()
	return out
}

// Register adds GET /healthz and GET /readyz to mux.
func (c *Checker) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", c.Readyz)
}

// Readyz answers 200 when every check passes, 503 naming the failing ones.
func (c *Checker) Readyz(w http.ResponseWriter, r *http.Request) {
	res := c.Run(r.Context())
	status, failing := http.StatusOK, []string{}
	for name, v := range res {
		if v != "ok" {
			status = http.StatusServiceUnavailable
			failing = append(failing, name)
		}
	}
	sort.Strings(failing)
	writeJSON(w, status, map[string]any{"ready": status == http.StatusOK, "checks": res, "failing": failing})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
