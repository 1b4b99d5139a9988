package run

import (
	"context"
	_ "embed" // the pprof overlay
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/invoicesync/invoicesync/bench/internal/report"
	"github.com/invoicesync/invoicesync/bench/internal/stack"
)

//go:embed overlay/pprof.go.txt
var pprofOverlay []byte

// buildProfiling builds sender, receiver and devkafka with a pprof
// listener added by `go build -overlay` (the sources are not touched) into
// WorkDir/bin, and points the run at them.
func (r *Runner) buildProfiling(ctx context.Context) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(r.cfg.WorkDir, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The overlay's source sits in a directory go's ./... patterns skip
	// (a leading underscore), so `go vet ./bench/...` still works after a
	// profiled run.
	srcDir := filepath.Join(dir, "_overlay")
	if err := os.MkdirAll(srcDir, 0o755); err != nil {
		return err
	}
	src := filepath.Join(srcDir, "zz_bench_pprof.go")
	if err := os.WriteFile(src, pprofOverlay, 0o644); err != nil {
		return err
	}
	for name, pkg := range map[string]string{"sender": "sender/cmd/sender", "receiver": "receiver/cmd/receiver",
		"devkafka": "pkg/cmd/devkafka"} {
		ov, _ := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(root, pkg, "zz_bench_pprof.go"): src}})
		ovPath := filepath.Join(dir, name+".overlay.json")
		if err := os.WriteFile(ovPath, ov, 0o644); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-overlay", ovPath, "-o", filepath.Join(dir, name), "./"+pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("profiling build of %s: %w\n%s", name, err, out)
		}
	}
	r.bins.sender, r.bins.receiver, r.bins.devkafka = filepath.Join(dir, "sender"), filepath.Join(dir, "receiver"),
		filepath.Join(dir, "devkafka")
	for _, name := range []string{"relay", "receiver", "sender_api", "forwarder"} {
		addr, err := stack.FreeAddr()
		if err != nil {
			return err
		}
		r.pprof[name] = addr
	}
	return nil
}

// repoRoot is the directory holding go.work, from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("profiling: no go.work above the working directory")
		}
		dir = parent
	}
}

// maybeProfile profiles every process during the step of the live series
// at ProfileRate: CPU profiles of relay and receiver (pprof over HTTP), of
// this process (runtime/pprof), and a system-wide perf profile (postgres
// and the broker included) when perf is installed. It returns a function
// that waits for the profiles and writes their top functions.
func (r *Runner) maybeProfile(ctx context.Context, p *pipeline, series string, rate float64, window time.Duration) func() {
	if r.cfg.ProfileRate <= 0 || rate != r.cfg.ProfileRate || series != report.SeriesLive {
		return func() {}
	}
	dir := filepath.Join(r.cfg.WorkDir, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return func() {}
	}
	secs := int(window.Seconds()) - 2
	if secs < 2 {
		secs = 2
	}
	var wg sync.WaitGroup
	for name := range p.procs {
		addr := r.pprof[name]
		if addr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := filepath.Join(dir, name+".pprof")
			if err := fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), out); err != nil {
				r.log.Warn().Err(err).Str("process", name).Msg("profile")
				return
			}
			top(out)
		}()
	}
	genOut := filepath.Join(dir, "generator.pprof")
	if f, err := os.Create(genOut); err == nil {
		if err := pprof.StartCPUProfile(f); err == nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(secs) * time.Second)
				pprof.StopCPUProfile()
				f.Close()
				top(genOut)
			}()
		} else {
			f.Close()
		}
	}
	if perf, err := exec.LookPath("perf"); err == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := filepath.Join(dir, "perf.data")
			cmd := exec.CommandContext(ctx, perf, "record", "-a", "-g", "-F", "199", "-o", data, "--", "sleep", fmt.Sprint(secs))
			if out, err := cmd.CombinedOutput(); err != nil {
				r.log.Warn().Err(err).Str("out", string(out)).Msg("perf record")
				return
			}
			for _, sort := range []string{"comm", "comm,dso,sym"} {
				rep := exec.Command(perf, "report", "-i", data, "--no-children", "--sort", sort, "--stdio", "-g", "none",
					"--percent-limit", "0.7")
				out, _ := rep.Output()
				name := "perf-" + strings.ReplaceAll(sort, ",", "-") + ".txt"
				_ = os.WriteFile(filepath.Join(dir, name), out, 0o644)
			}
		}()
	}
	r.log.Info().Str("dir", dir).Int("seconds", secs).Msg("profiling this step")
	return wg.Wait
}

func fetch(ctx context.Context, url, out string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// top writes `go tool pprof -top` of a profile next to it.
func top(profile string) {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=30", profile).CombinedOutput()
	if err != nil {
		return
	}
	_ = os.WriteFile(strings.TrimSuffix(profile, ".pprof")+".top.txt", out, 0o644)
}
