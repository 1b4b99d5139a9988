package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

var bins = struct{ sender, receiver string }{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "invoicesync-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.sender = filepath.Join(dir, "sender")
	bins.receiver = filepath.Join(dir, "receiver")
	for out, pkg := range map[string]string{bins.sender: "github.com/invoicesync/invoicesync/sender/cmd/sender",
		bins.receiver: "github.com/invoicesync/invoicesync/receiver/cmd/receiver"} {
		cmd := exec.Command("go", "build", "-race", "-o", out, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n", pkg, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// stack is one running pipeline: two databases, a topic, and the processes.
type stack struct {
	t           *testing.T
	kafka       *testsupport.Kafka
	senderDB    *testsupport.Database
	receiverDB  *testsupport.Database
	topic       string
	group       string
	env         []string
	senderURL   string
	receiverURL string
	procs       map[string]*proc
	mu          sync.Mutex
}

type proc struct {
	cmd  *exec.Cmd
	log  *testsupport.SyncBuffer
	done chan error
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, procs: map[string]*proc{}}
	s.senderDB = testsupport.NewDatabase(t)
	s.receiverDB = testsupport.NewDatabase(t)
	s.kafka = testsupport.NewKafka(t)
	s.topic = s.kafka.Topic(t, "e2e-history", 6)
	createDeadLetterTopic(t, s.kafka, s.topic) // receiver serve checks it exists at start
	s.group = testsupport.Name("e2e_group")
	senderAddr, receiverAddr := freeAddr(t), freeAddr(t)
	s.senderURL, s.receiverURL = "http://"+senderAddr, "http://"+receiverAddr
	kc := s.kafka.Config
	s.env = append(os.Environ(),
		"SENDER_DATABASE_URL="+s.senderDB.URL,
		"RECEIVER_DATABASE_URL="+s.receiverDB.URL,
		"SENDER_HTTP_ADDR="+senderAddr,
		// No relay listener unless a test scrapes the relay.
		"RELAY_HTTP_ADDR=",
		"RECEIVER_HTTP_ADDR="+receiverAddr,
		"KAFKA_BROKERS="+strings.Join(kc.Brokers, ","),
		"KAFKA_SASL_MECHANISM="+kc.Mechanism,
		"KAFKA_SASL_USERNAME="+kc.Username,
		"KAFKA_SASL_PASSWORD="+kc.Password,
		"KAFKA_TOPIC="+s.topic,
		"RECEIVER_GROUP_ID="+s.group,
		"LOG_FORMAT=json",
		"LOG_LEVEL=info",
	)
	s.runToEnd(bins.sender, "migrate")
	s.runToEnd(bins.receiver, "migrate")
	t.Cleanup(s.stopAll)
	return s
}

// runToEnd runs a command that must exit 0.
func (s *stack) runToEnd(bin string, args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// start starts a long-running process under name.
func (s *stack) start(name, bin string, args ...string) {
	s.t.Helper()
	s.startWith(name, nil, bin, args...)
}

// startWith starts a long-running process under name with the stack's
// environment overridden by env (KEY=value entries).
func (s *stack) startWith(name string, env []string, bin string, args ...string) {
	s.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append([]string(nil), s.env...), env...)
	p := &proc{cmd: cmd, log: &testsupport.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- cmd.Wait() }()
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
}

// startAll starts the sender API, the relay and the receiver and waits
// until both HTTP APIs answer.
func (s *stack) startAll() {
	s.t.Helper()
	s.start("sender-api", bins.sender, "serve")
	s.start("sender-relay", bins.sender, "relay")
	s.start("receiver", bins.receiver, "serve")
	s.waitHealthy(s.senderURL + "/healthz")
	s.waitHealthy(s.receiverURL + "/healthz")
	s.requireRunning("sender-relay")
}

func (s *stack) waitHealthy(url string) {
	s.t.Helper()
	eventually(s.t, 30*time.Second, "healthy "+url, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// requireRunning fails the test with the process's log when it has
// already exited (a start-up failure would otherwise surface much later).
func (s *stack) requireRunning(name string) {
	s.t.Helper()
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	select {
	case err := <-p.done:
		p.done <- err // keep it for stop
		s.t.Fatalf("%s exited at start: %v\n%s", name, err, tail(p.log.String(), 20))
	case <-time.After(300 * time.Millisecond):
	}
}

// stop sends SIGTERM to name and waits for it to exit; it returns the exit error.
func (s *stack) stop(name string) error {
	s.mu.Lock()
	p := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("%w; log tail:\n%s", err, tail(p.log.String(), 15))
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within 30s of SIGTERM", name)
	}
}

func (s *stack) stopAll() {
	s.mu.Lock()
	names := make([]string, 0, len(s.procs))
	for n := range s.procs {
		names = append(names, n)
	}
	s.mu.Unlock()
	for _, n := range names {
		s.mu.Lock()
		p := s.procs[n]
		s.mu.Unlock()
		err := s.stop(n)
		if err != nil || s.t.Failed() {
			s.t.Logf("---- %s (exit: %v) log tail ----\n%s", n, err, tail(p.log.String(), 40))
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a free 127.0.0.1 port for a child process to listen on.
// It is taken below the kernel's ephemeral range: a port from that range
// (what listening on port 0 gives) can be taken by some process's outgoing
// connection before the child binds it. Ports handed out once are not
// handed out again.
func freeAddr(t *testing.T) string {
	t.Helper()
	low := ephemeralLow()
	addrsMu.Lock()
	defer addrsMu.Unlock()
	for range 1000 {
		port := 10000 + rand.IntN(low-10000)
		if handedOut[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use
		}
		addr := l.Addr().String()
		_ = l.Close()
		handedOut[port] = true
		return addr
	}
	t.Fatalf("no free port found between 10000 and %d", low)
	return ""
}

var (
	addrsMu   sync.Mutex
	handedOut = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 11000 {
		return 32768
	}
	return n
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// createDeadLetterTopic creates the default dead-letter topic of topic.
func createDeadLetterTopic(t *testing.T, k *testsupport.Kafka, topic string) {
	t.Helper()
	k.CreateTopic(t, dlq.Topic(topic), 1)
}
