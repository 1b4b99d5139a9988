package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// The start-up of the two processes that talk to Kafka, against brokers
// that are not there yet, never answer, or refuse the credentials: they
// wait a bounded time, give way to SIGTERM at once, and say what is wrong.

// kafkaProcess is a subcommand that waits for Kafka at start.
type kafkaProcess struct{ name, bin, cmd string }

func kafkaProcesses() []kafkaProcess {
	return []kafkaProcess{{"sender relay", bins.sender, "relay"}, {"receiver serve", bins.receiver, "serve"}}
}

// SIGTERM while the process waits on a broker that accepts TCP and never
// answers (within one long dial timeout) ends it at once, with exit 0.
func TestStartupGivesWayToSigtermOnASilentBroker(t *testing.T) {
	s := newStack(t)
	for _, p := range kafkaProcesses() {
		t.Run(p.cmd, func(t *testing.T) {
			silent := testsupport.NewSilentListener(t)
			s.startWith(p.name, []string{"KAFKA_BROKERS=" + silent.Addr(), "KAFKA_DIAL_TIMEOUT=30s",
				"RECEIVER_HTTP_ADDR=" + freeAddr(t)}, p.bin, p.cmd)
			eventually(t, 30*time.Second, p.name+" to connect to the silent broker", func() bool {
				return silent.Accepted() > 0
			})
			time.Sleep(300 * time.Millisecond) // well inside the handshake that never ends
			start := time.Now()
			err := s.stop(p.name)
			took := time.Since(start)
			t.Logf("%s exited %v after SIGTERM (err %v)", p.name, took.Round(time.Millisecond), err)
			if err != nil {
				t.Errorf("%s stopped while waiting for Kafka: %v (want exit 0)", p.name, err)
			}
			if took > 5*time.Second {
				t.Errorf("%s took %v to exit after SIGTERM while waiting for Kafka", p.name, took)
			}
		})
	}
}

// runFailing runs the process with env overrides, expecting it to exit
// non-zero on its own; it returns its output and how long it ran.
func (s *stack) runFailing(t *testing.T, p kafkaProcess, env ...string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, p.cmd)
	cmd.Env = append(append(append([]string(nil), s.env...), "RECEIVER_HTTP_ADDR="+freeAddr(t)), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("%s: err=%v after %v, want a non-zero exit\n%s", p.name, err, took, out)
	}
	return string(out), took
}

// A broker that never answers is retried for KAFKA_STARTUP_TIMEOUT, then
// the process exits non-zero naming the broker and the timeout.
func TestStartupGivesUpOnASilentBrokerAfterTheStartupTimeout(t *testing.T) {
	s := newStack(t)
	silent := testsupport.NewSilentListener(t)
	for _, p := range kafkaProcesses() {
		t.Run(p.cmd, func(t *testing.T) {
			out, took := s.runFailing(t, p, "KAFKA_BROKERS="+silent.Addr(), "KAFKA_DIAL_TIMEOUT=1s", "KAFKA_STARTUP_TIMEOUT=3s")
			t.Logf("%s exited non-zero after %v:\n%s", p.name, took.Round(time.Millisecond), tail(out, 3))
			for _, want := range []string{silent.Addr(), "KAFKA_STARTUP_TIMEOUT", "3s"} {
				if !strings.Contains(out, want) {
					t.Errorf("output does not name %q", want)
				}
			}
			if took < 3*time.Second || took > 30*time.Second {
				t.Errorf("gave up after %v with KAFKA_STARTUP_TIMEOUT=3s", took)
			}
		})
	}
}

// lateBroker is an address where nothing listens until up is called; then
// it forwards every connection to target, as a broker that finishes
// starting would answer.
type lateBroker struct {
	t      *testing.T
	addr   string
	target string
}

func (b *lateBroker) up() {
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		b.t.Errorf("late broker: listen %s: %v", b.addr, err)
		return
	}
	b.t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", b.target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
}

// A broker that comes up while the processes wait at start is used: they
// start, and a history written then arrives at the receiver.
func TestStartupUsesABrokerThatComesUp(t *testing.T) {
	s := newStack(t)
	late := &lateBroker{t: t, addr: freeAddr(t), target: s.kafka.Config.Brokers[0]}
	env := []string{"KAFKA_BROKERS=" + late.addr, "KAFKA_STARTUP_TIMEOUT=90s"}
	s.start("sender-api", bins.sender, "serve")
	s.startWith("sender-relay", env, bins.sender, "relay")
	s.startWith("receiver", env, bins.receiver, "serve")
	for _, name := range []string{"sender-relay", "receiver"} {
		eventually(t, 30*time.Second, name+" to log that it retries", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return strings.Contains(s.procs[name].log.String(), "kafka not reachable yet")
		})
	}
	late.up()
	start := time.Now()
	s.waitHealthy(s.senderURL + "/healthz")
	s.waitHealthy(s.receiverURL + "/healthz")
	id, err := s.record(randomHistory(newRand(), testsupport.Name("CUST"), 1))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the history at the receiver", func() bool { return s.received(t, id) != nil })
	t.Logf("broker up; a history went through %v later", time.Since(start).Round(time.Millisecond))
	s.requireRunning("sender-relay")
	s.requireRunning("receiver")
}
