package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// Two relays share the outbox; SIGKILL to the leader while histories are
// created and their statuses changed: the standby takes the lock, every
// history reaches the receiver at its last version, and the topic holds
// every version of every aggregate in order (a republished duplicate of an
// already-seen version is allowed: delivery is at least once).
func TestRelayFailoverKillingTheLeaderLosesNothingAndKeepsOrder(t *testing.T) {
	s := newStack(t)
	s.start("sender-api", bins.sender, "serve")
	s.start("receiver", bins.receiver, "serve")
	relays := map[string]string{"relay-a": freeAddr(t), "relay-b": freeAddr(t)}
	for name, addr := range relays {
		s.startWithEnv(name, bins.sender, []string{"RELAY_HTTP_ADDR=" + addr}, "relay")
	}
	s.waitHealthy(s.senderURL + "/healthz")
	s.waitHealthy(s.receiverURL + "/healthz")

	var leader, standby string
	eventually(t, 60*time.Second, "exactly one relay to lead", func() bool {
		a, okA := relayLeader(relays["relay-a"])
		b, okB := relayLeader(relays["relay-b"])
		switch {
		case !okA || !okB || a == b:
			return false
		case a:
			leader, standby = "relay-a", "relay-b"
		default:
			leader, standby = "relay-b", "relay-a"
		}
		return true
	})

	w := startStatusWriters(t, s, 4)
	eventually(t, 60*time.Second, "writes flowing to the receiver", func() bool {
		first := w.firstID()
		return w.ops() >= 300 && first != 0 && s.received(t, first) != nil
	})
	killedAt := time.Now()
	s.kill(leader)
	eventually(t, 60*time.Second, standby+" to take the lead after "+leader+" was killed", func() bool {
		ok, _ := relayLeader(relays[standby])
		return ok
	})
	t.Logf("%s killed after %d writes; %s leads %v later", leader, w.ops(), standby,
		time.Since(killedAt).Round(time.Millisecond))
	at := w.ops()
	eventually(t, 60*time.Second, "more writes after the takeover", func() bool { return w.ops() >= at+300 })
	written := w.stop()

	for id, h := range written {
		var got *receivedHistory
		eventually(t, 60*time.Second, fmt.Sprintf("history %d at the receiver at version %d", id, h.last()), func() bool {
			got = s.received(t, id)
			return got != nil && got.SourceVersion >= h.last()
		})
		if got.SourceVersion != h.last() || got.EmailStatus != h.status {
			t.Errorf("history %d at the receiver: version %d %s, want %d %s",
				id, got.SourceVersion, got.EmailStatus, h.last(), h.status)
		}
	}
	dups := assertTopicOrder(t, s, written)
	t.Logf("%d histories, %d writes; %d duplicate republishes on the topic", len(written), w.ops(), dups)
}

// assertTopicOrder checks that, per aggregate, the topic holds every version
// the API returned, on one partition, in non-decreasing order once exact
// duplicates of already-seen versions are skipped. It returns the number of
// duplicates skipped.
func assertTopicOrder(t *testing.T, s *stack, written map[int64]*writtenHistory) int {
	t.Helper()
	type seen struct {
		partition int
		max       int64
		values    map[int64][]byte
	}
	byID := map[int64]*seen{}
	dups := 0
	for _, m := range s.kafka.ReadAll(t, s.topic, -1, 60*time.Second) {
		env, err := contract.DecodeEnvelope(m.Value)
		if err != nil {
			t.Fatalf("%s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err)
		}
		id, err := strconv.ParseInt(env.AggregateID, 10, 64)
		if err != nil || written[id] == nil {
			t.Fatalf("%s/%d@%d: aggregate %q was not written by this test", m.Topic, m.Partition, m.Offset, env.AggregateID)
		}
		a := byID[id]
		if a == nil {
			a = &seen{partition: int(m.Partition), values: map[int64][]byte{}}
			byID[id] = a
		}
		at := fmt.Sprintf("history %d version %d at %d@%d", id, env.Version, m.Partition, m.Offset)
		switch prev, dup := a.values[env.Version]; {
		case int(m.Partition) != a.partition:
			t.Errorf("%s: on a second partition (first %d)", at, a.partition)
		case dup && !bytes.Equal(prev, m.Value):
			t.Errorf("%s: same version, different event:\n%s\n%s", at, prev, m.Value)
		case dup:
			dups++
		case env.Version < a.max:
			t.Errorf("%s: after version %d", at, a.max)
		default:
			a.values[env.Version], a.max = m.Value, env.Version
		}
	}
	for id, h := range written {
		a := byID[id]
		for _, v := range h.versions {
			if a == nil || a.values[v] == nil {
				t.Errorf("history %d: version %d is not on the topic", id, v)
			}
		}
		if a != nil && a.max != h.last() {
			t.Errorf("history %d: topic reaches version %d, the API returned %d last", id, a.max, h.last())
		}
	}
	return dups
}

// writtenHistory is one history a writer owns: every version the API
// returned for it, in order, and its last status.
type writtenHistory struct {
	versions []int64
	status   string
}

func (h *writtenHistory) last() int64 { return h.versions[len(h.versions)-1] }

// statusWriters create histories and change their statuses until stopped.
// Each history belongs to one writer, so the last version the API returned
// for it is its final one.
type statusWriters struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	n       int
	first   int64
	written map[int64]*writtenHistory
}

func startStatusWriters(t *testing.T, s *stack, n int) *statusWriters {
	ctx, cancel := context.WithCancel(context.Background())
	w := &statusWriters{cancel: cancel, written: map[int64]*writtenHistory{}}
	t.Cleanup(func() { w.stop() })
	dest := testsupport.Name("CUST")
	for i := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			if err := w.run(ctx, s, rand.New(rand.NewPCG(uint64(i), 11)), dest, i); err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	return w
}

// run creates a history every eighth write and otherwise flips the status
// of one of its own between SENT and DELIVERED (never ERROR, which removes
// a history from the receiver).
func (w *statusWriters) run(ctx context.Context, s *stack, r *rand.Rand, dest string, writer int) error {
	var own []int64
	for n := 0; ctx.Err() == nil; n++ {
		if n%8 == 0 {
			id, err := s.record(randomHistory(r, dest, writer*1_000_000+n))
			if err != nil {
				return err
			}
			own = append(own, id)
			w.note(id, 1, contract.StatusSent)
			continue
		}
		id := own[r.IntN(len(own))]
		w.mu.Lock()
		status := contract.StatusDelivered
		if w.written[id].status == status {
			status = contract.StatusSent
		}
		w.mu.Unlock()
		v, err := putStatus(s, id, status)
		if err != nil {
			return err
		}
		w.note(id, v, status)
	}
	return nil
}

func (w *statusWriters) note(id, version int64, status string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	if w.first == 0 {
		w.first = id
	}
	h := w.written[id]
	if h == nil {
		h = &writtenHistory{}
		w.written[id] = h
	}
	h.versions = append(h.versions, version)
	h.status = status
}

func (w *statusWriters) ops() int       { w.mu.Lock(); defer w.mu.Unlock(); return w.n }
func (w *statusWriters) firstID() int64 { w.mu.Lock(); defer w.mu.Unlock(); return w.first }

// stop stops the writers and returns what they wrote.
func (w *statusWriters) stop() map[int64]*writtenHistory {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written
}

// putStatus is setStatus for a writer goroutine: it returns the error
// rather than failing the test from outside its goroutine.
func putStatus(s *stack, id int64, status string) (int64, error) {
	var out struct {
		Version int64 `json:"version"`
	}
	code, err := call(http.MethodPut, fmt.Sprintf("%s/v1/histories/%d/status", s.senderURL, id),
		map[string]string{"emailStatus": status}, &out)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("PUT status %s on %d: HTTP %d", status, id, code)
	}
	return out.Version, err
}

// relayLeader scrapes a relay's /metrics: leader reports
// invoicesync_relay_leader, ok whether the relay answered with it.
func relayLeader(addr string) (leader, ok bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return false, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, found := strings.CutPrefix(sc.Text(), "invoicesync_relay_leader "); found {
			return strings.TrimSpace(v) == "1", resp.StatusCode == http.StatusOK
		}
	}
	return false, false
}

// startWithEnv is start with extra environment entries, which win over
// s.env's entries of the same name.
func (s *stack) startWithEnv(name, bin string, extra []string, args ...string) {
	s.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(slices.Clip(s.env), extra...)
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

// kill sends SIGKILL to name, reaps it and forgets it, so that stopAll
// leaves it alone; its log is printed at the end if the test fails.
func (s *stack) kill(name string) {
	s.t.Helper()
	s.mu.Lock()
	p := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if p == nil {
		s.t.Fatalf("kill %s: not running", name)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		s.t.Fatalf("kill %s: %v", name, err)
	}
	var exit error
	select {
	case exit = <-p.done:
	case <-time.After(30 * time.Second):
		s.t.Fatalf("%s not reaped within 30s of SIGKILL", name)
	}
	s.t.Cleanup(func() {
		if s.t.Failed() {
			s.t.Logf("---- %s (killed, exit: %v) log tail ----\n%s", name, exit, tail(p.log.String(), 40))
		}
	})
}
