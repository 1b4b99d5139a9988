// Package stack runs the pieces of a pipeline the benchmark drives: child
// processes (the project's binaries, the embedded broker, the watermill
// forwarder), scratch PostgreSQL databases, and Kafka topics.
package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Proc is a running child process whose output goes to a log file.
type Proc struct {
	// Name identifies it in logs and errors.
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// envPrefixes are the variables of the project's processes: the
// benchmark's own environment must not leak into the children (a
// KAFKA_BROKERS set in the shell would point them elsewhere).
var envPrefixes = []string{"KAFKA_", "SENDER_", "RECEIVER_", "RELAY_", "BACKFILL_", "LOG_", "DEVKAFKA_", "BENCH_"}

// Env is the parent's environment without the project's variables, plus extra.
func Env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		keep := true
		for _, p := range envPrefixes {
			if strings.HasPrefix(kv, p) {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// Start starts bin with args and env; its output goes to logDir/name.log.
// The child is killed if the benchmark dies (Pdeathsig).
func Start(name, logDir string, env []string, bin string, args ...string) (*Proc, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to grace, then kills. It returns the exit
// error unless the process ended because of the signal.
func (p *Proc) Stop(grace time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %v of SIGTERM; killed", p.Name, grace)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && (ee.ExitCode() == 0 || !ee.Exited()) {
		return nil
	}
	return p.err
}

// Tail returns the last n lines of the log.
func (p *Proc) Tail(n int) string { return TailFile(p.LogPath, n) }

// TailFile returns the last n lines of a file.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// RunToEnd runs bin to completion (bounded by ctx) and returns its
// combined output; a non-zero exit is an error quoting the output's tail.
func RunToEnd(ctx context.Context, env []string, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := strings.TrimSpace(string(out))
		if len(s) > 2000 {
			s = s[len(s)-2000:]
		}
		return string(out), fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, s)
	}
	return string(out), nil
}

// FreeAddr returns a free loopback host:port.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// WaitHTTP polls url until it answers 200, p exits, or timeout passes.
func WaitHTTP(ctx context.Context, p *Proc, url string, timeout time.Duration) error {
	return waitFor(ctx, p, timeout, "answer on "+url, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// WaitPort polls addr until it accepts a TCP connection.
func WaitPort(ctx context.Context, p *Proc, addr string, timeout time.Duration) error {
	return waitFor(ctx, p, timeout, "listen on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

func waitFor(ctx context.Context, p *Proc, timeout time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited (%v) before it would %s; log tail:\n%s", p.Name, err, what, p.Tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not %s within %v; log tail:\n%s", p.Name, what, timeout, p.Tail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
