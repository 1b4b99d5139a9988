package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// receiverZone is the receiver's RECEIVER_TIMEZONE in these tests: not UTC,
// so verify's issue dates must follow it.
const receiverZone = "Asia/Ho_Chi_Minh"

// volumeBins are the sender and receiver built without the race detector,
// for the 100k run: under -race the receiver alone would take most of the
// package's time budget. The other tests run the race-enabled binaries on
// the same code paths.
var volumeBins struct {
	once             sync.Once
	sender, receiver string
	err              error
}

func buildVolumeBins(t *testing.T) (sender, receiver string) {
	t.Helper()
	volumeBins.once.Do(func() {
		dir := filepath.Dir(bins.sender) // removed by TestMain
		volumeBins.sender = filepath.Join(dir, "sender-norace")
		volumeBins.receiver = filepath.Join(dir, "receiver-norace")
		for out, pkg := range map[string]string{volumeBins.sender: "github.com/invoicesync/invoicesync/sender/cmd/sender",
			volumeBins.receiver: "github.com/invoicesync/invoicesync/receiver/cmd/receiver"} {
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				volumeBins.err = err
				return
			}
		}
	})
	if volumeBins.err != nil {
		t.Fatalf("build the binaries without -race: %v", volumeBins.err)
	}
	return volumeBins.sender, volumeBins.receiver
}

// newBackfillStack is a stack whose receiver and verify use receiverZone.
func newBackfillStack(t *testing.T) *stack {
	t.Helper()
	s := newStack(t)
	s.env = append(s.env, "RECEIVER_TIMEZONE="+receiverZone)
	return s
}

// startPipeline starts the relay and the receiver from the given binaries.
func (s *stack) startPipeline(sender, receiver string) {
	s.t.Helper()
	s.start("sender-relay", sender, "relay")
	s.start("receiver", receiver, "serve")
	s.waitHealthy(s.receiverURL + "/healthz")
}

// exitOf runs a command to its end within timeout and returns its stdout,
// its stderr and its exit status.
func (s *stack) exitOf(timeout time.Duration, bin string, args ...string) (string, string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = s.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit) && ctx.Err() == nil:
		return stdout.String(), stderr.String(), exit.ExitCode()
	default:
		s.t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, tail(stderr.String(), 20))
		return "", "", -1
	}
}

// mustRun runs a command that must exit 0 within timeout and returns its stdout.
func (s *stack) mustRun(timeout time.Duration, bin string, args ...string) string {
	s.t.Helper()
	out, errOut, code := s.exitOf(timeout, bin, args...)
	if code != 0 {
		s.t.Fatalf("%s %s exited %d:\n%s", filepath.Base(bin), strings.Join(args, " "), code, tail(errOut, 20))
	}
	return out
}

// verifyReport is what "sender verify --json" prints.
type verifyReport struct {
	OK                                                bool
	Differences                                       int
	ShouldBeAtReceiver, AtReceiver, Repaired          int64
	Missing, Extra, Differing, Unrepairable, InFlight struct {
		Count int
		IDs   []int64
	}
}

// verify runs "sender verify --json" with args and returns its report and
// exit status.
func (s *stack) verify(args ...string) (verifyReport, int) {
	s.t.Helper()
	return s.verifyWith(bins.sender, args...)
}

// verifyWith is verify with the given sender binary.
func (s *stack) verifyWith(sender string, args ...string) (verifyReport, int) {
	s.t.Helper()
	out, errOut, code := s.exitOf(5*time.Minute, sender, append([]string{"verify", "--json"}, args...)...)
	var r verifyReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		s.t.Fatalf("verify (exit %d) printed no JSON report: %v\n%s\n%s", code, err, out, tail(errOut, 20))
	}
	return r, code
}

// sql returns one int64 from the sender (or receiver) database.
func sqlInt(t *testing.T, d *testsupport.Database, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := d.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// waitDelivered waits until the outbox is empty and the receiver holds as
// many histories as the sender has non-ERROR ones, then until the receiver
// group has committed the whole topic.
func (s *stack) waitDelivered(timeout time.Duration) {
	s.t.Helper()
	t := s.t
	eventually(t, timeout, "the outbox to drain", func() bool {
		return sqlInt(t, s.senderDB, "SELECT count(*) FROM transaction_outbox") == 0
	})
	want := sqlInt(t, s.senderDB, "SELECT count(*) FROM aggregate_history_form WHERE email_status <> 'ERROR'")
	eventually(t, timeout, "the receiver to hold every non-ERROR history", func() bool {
		return sqlInt(t, s.receiverDB, "SELECT count(*) FROM received_invoice_history") == want
	})
	s.waitCaughtUp(t)
}

// expectClean runs verify (with the given sender binary) and fails unless
// it reports no difference and exits 0.
func (s *stack) expectClean(sender string) verifyReport {
	s.t.Helper()
	r, code := s.verifyWith(sender, "--grace", "2s")
	if code != 0 || !r.OK || r.Differences != 0 || r.ShouldBeAtReceiver != r.AtReceiver {
		s.t.Fatalf("verify exited %d with %+v, want a clean report", code, r)
	}
	return r
}

// The acceptance run: 100,000 pre-existing histories, backfilled through
// the real binaries while the relay and the receiver run, all arrive, and
// verify finds no difference. A second backfill enqueues nothing and
// publishes nothing.
func TestBackfill100kArrivesCompletely(t *testing.T) {
	const n = 100000
	s := newBackfillStack(t)
	sender, receiver := buildVolumeBins(t)
	s.mustRun(5*time.Minute, sender, "seed", "-n", "100000")
	s.startPipeline(sender, receiver)
	out := s.mustRun(10*time.Minute, sender, "backfill", "--batch", "2000")
	if !strings.Contains(out, "100000 histories scanned, 100000 enqueued") {
		t.Fatalf("backfill said %q", out)
	}
	s.waitDelivered(15 * time.Minute)
	r := s.expectClean(sender)
	if r.ShouldBeAtReceiver < n*9/10 {
		t.Fatalf("verify compared %d histories, want most of %d", r.ShouldBeAtReceiver, n)
	}

	seq := `SELECT last_value FROM pg_sequences WHERE sequencename = 'transaction_outbox_id_seq'`
	events := sqlInt(t, s.senderDB, seq)
	out = s.mustRun(5*time.Minute, sender, "backfill")
	if !strings.Contains(out, " scanned, 0 enqueued") {
		t.Fatalf("second backfill said %q, want nothing enqueued", out)
	}
	if after := sqlInt(t, s.senderDB, seq); after != events {
		t.Fatalf("second backfill enqueued %d events, want none", after-events)
	}
}

// startBackfill runs "sender backfill" in the background, slowed down so
// the test can act while it runs.
func (s *stack) startBackfill(args ...string) *proc {
	s.t.Helper()
	s.start("backfill", bins.sender, append([]string{"backfill"}, args...)...)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs["backfill"]
}

// checkpoint returns the backfill checkpoint's last id (0 before the first batch).
func (s *stack) checkpoint() int64 {
	return sqlInt(s.t, s.senderDB, "SELECT coalesce(max(last_id), 0) FROM backfill_checkpoint")
}

// A backfill killed (SIGKILL) in the middle leaves a checkpoint that covers
// exactly its committed batches; run again, it resumes there and ends with
// every history published exactly once: no gap, no duplicate.
func TestBackfillKilledMidwayResumes(t *testing.T) {
	const n = 8000
	s := newBackfillStack(t)
	s.mustRun(5*time.Minute, bins.sender, "seed", "-n", "8000")
	s.startPipeline(bins.sender, bins.receiver)
	first := sqlInt(t, s.senderDB, "SELECT min(id) FROM send_invoice_history")
	last := sqlInt(t, s.senderDB, "SELECT max(id) FROM send_invoice_history")

	p := s.startBackfill("--batch", "250", "--rate", "1000")
	eventually(t, time.Minute, "a few committed batches", func() bool { return s.checkpoint() >= first+750 })
	_ = p.cmd.Process.Kill()
	<-p.done
	s.mu.Lock()
	delete(s.procs, "backfill")
	s.mu.Unlock()

	cp := s.checkpoint()
	if cp >= last {
		t.Fatalf("the backfill finished (checkpoint %d) before it could be killed midway", cp)
	}
	upTo := sqlInt(t, s.senderDB, "SELECT count(*) FROM send_invoice_history WHERE id <= $1", cp)
	if got := sqlInt(t, s.senderDB, "SELECT count(*) FROM aggregate_history_form"); got != upTo {
		t.Fatalf("after the kill %d histories have an aggregate row, want the %d up to the checkpoint %d", got, upTo, cp)
	}

	out := s.mustRun(5*time.Minute, bins.sender, "backfill", "--batch", "250")
	if !strings.Contains(out, "backfill finished") {
		t.Fatalf("resumed backfill said %q", out)
	}
	s.waitDelivered(10 * time.Minute)
	if got := sqlInt(t, s.senderDB, "SELECT count(*) FROM aggregate_history_form WHERE version = 1"); got != n {
		t.Fatalf("%d aggregate rows at version 1, want all %d: each history enqueued once", got, n)
	}
	perKey := map[string]int{}
	for _, m := range s.kafka.ReadAll(t, s.topic, n, 2*time.Minute) {
		perKey[string(m.Key)]++
	}
	for key, c := range perKey {
		if c != 1 {
			t.Fatalf("history %s was published %d times, want once", key, c)
		}
	}
	if len(perKey) != n {
		t.Fatalf("%d histories published, want %d", len(perKey), n)
	}
	s.expectClean(bins.sender)
}

// Live status changes made while a backfill runs win: the receiver ends
// with the live state and version, whether the change came before the
// backfill reached the history (the backfill leaves it alone) or after
// (a newer version, published in the live lane).
func TestLiveChangesDuringBackfillWin(t *testing.T) {
	s := newBackfillStack(t)
	s.mustRun(5*time.Minute, bins.sender, "seed", "-n", "8000")
	s.startAll()
	first := sqlInt(t, s.senderDB, "SELECT min(id) FROM send_invoice_history")
	last := sqlInt(t, s.senderDB, "SELECT max(id) FROM send_invoice_history")

	p := s.startBackfill("--batch", "250", "--rate", "1000")
	eventually(t, time.Minute, "the backfill to pass the first histories", func() bool {
		return s.checkpoint() >= first+1000
	})
	live := map[int64]string{first + 10: "DELIVERED", first + 20: "ERROR", last: "DELIVERED", last - 1: "ERROR"}
	versions := map[int64]int64{}
	for id, status := range live {
		versions[id] = s.setStatus(t, id, status)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("backfill: %v\n%s", err, tail(p.log.String(), 20))
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("the backfill did not finish")
	}
	s.mu.Lock()
	delete(s.procs, "backfill")
	s.mu.Unlock()
	s.waitDelivered(10 * time.Minute)

	for id, status := range live {
		if v := sqlInt(t, s.senderDB, "SELECT version FROM aggregate_history_form WHERE history_id = $1", id); v != versions[id] {
			t.Errorf("history %d: sender version %d, want the live one %d (the backfill overwrote it)", id, v, versions[id])
		}
		got := s.received(t, id)
		switch {
		case status == "ERROR" && got != nil:
			t.Errorf("history %d set to ERROR live is at the receiver (version %d)", id, got.SourceVersion)
		case status != "ERROR" && (got == nil || got.EmailStatus != status || got.SourceVersion != versions[id]):
			t.Errorf("history %d at the receiver = %+v, want %s version %d", id, got, status, versions[id])
		}
	}
	s.expectClean(bins.sender)
}

// Verify finds a row deleted, a row added and a row altered by hand at the
// receiver, and one the receiver holds at a version ahead of the sender's,
// each in its category and with its id, and exits 1; --repair re-enqueues
// them and a later verify is clean. A row the sender does not
// know is reported as unrepairable. Usage errors exit 2; an unmigrated
// database is named with the command that migrates it.
func TestVerifyFindsAndRepairsHandEdits(t *testing.T) {
	s := newBackfillStack(t)
	s.mustRun(time.Minute, bins.sender, "seed", "-n", "400")
	s.startPipeline(bins.sender, bins.receiver)
	s.mustRun(time.Minute, bins.sender, "backfill")
	s.waitDelivered(5 * time.Minute)
	s.expectClean(bins.sender)

	deleted := sqlInt(t, s.receiverDB, "SELECT min(history_id) FROM received_invoice_history")
	altered := sqlInt(t, s.receiverDB, "SELECT max(history_id) FROM received_invoice_history")
	added := sqlInt(t, s.senderDB, "SELECT min(history_id) FROM aggregate_history_form WHERE email_status = 'ERROR'")
	exec := func(sql string, args ...any) {
		if _, err := s.receiverDB.Pool.Exec(context.Background(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("DELETE FROM received_invoice_history WHERE history_id = $1", deleted)
	exec("UPDATE received_invoice_form SET total_amount = total_amount + 0.0001 WHERE history_id = $1", altered)
	insertRow := `INSERT INTO received_invoice_history (history_id, destination_code, sender_customer_id,
	        sender_office_id, sender_office_name, email_status, sent_at, form_count, total_amount,
	        source_version, source_event_id, source_occurred_at)
	        VALUES ($1, 'CUST-X', '001', 'MFV-HN-01', 'MFV-HN', 'SENT', now(), 0, 0, 1, gen_random_uuid(), now())`
	exec(insertRow, added)
	// A history the receiver holds at a version far ahead of the sender's,
	// as after restoring the sender database from a backup: the repair's
	// event must overtake it.
	ahead := sqlInt(t, s.receiverDB, "SELECT history_id FROM received_invoice_history ORDER BY history_id OFFSET 5 LIMIT 1")
	exec("UPDATE aggregate_version SET version = version + 1000 WHERE aggregate_type = 'invoice_history' AND aggregate_id = $1::bigint::text", ahead)
	exec("UPDATE received_invoice_history SET destination_code = 'CUST-RESTORED' WHERE history_id = $1", ahead)

	r, code := s.verify("--grace", "1s")
	if code != 1 || r.OK || r.Differences != 4 ||
		!equalIDs(r.Missing.IDs, deleted) || !equalIDs(r.Extra.IDs, added) || !equalIDs(r.Differing.IDs, ahead, altered) {
		t.Fatalf("verify exited %d with %+v; want exit 1, missing [%d], extra [%d], differing [%d %d]",
			code, r, deleted, added, ahead, altered)
	}
	r, code = s.verify("--grace", "1s", "--repair")
	if code != 1 || r.Repaired != 4 {
		t.Fatalf("verify --repair exited %d with %+v, want exit 1 and 4 repaired", code, r)
	}
	s.waitDelivered(time.Minute)
	s.expectClean(bins.sender)

	const unknown = 999_999_999
	exec(insertRow, unknown)
	r, code = s.verify("--grace", "0s", "--repair")
	if code != 1 || !equalIDs(r.Extra.IDs, unknown) || !equalIDs(r.Unrepairable.IDs, unknown) || r.Repaired != 0 {
		t.Fatalf("verify --repair with an unknown receiver row exited %d with %+v, want it extra and unrepairable", code, r)
	}

	if _, _, code := s.exitOf(time.Minute, bins.sender, "verify", "--bogus"); code != 2 {
		t.Fatalf("verify --bogus exited %d, want 2", code)
	}
	empty := testsupport.NewDatabase(t)
	_, errOut, code := s.exitOf(time.Minute, bins.sender, "verify", "--receiver-database-url", empty.URL)
	if code != 1 || !strings.Contains(errOut, "receiver migrate") {
		t.Fatalf("verify against an unmigrated receiver exited %d:\n%s", code, tail(errOut, 5))
	}
}

func equalIDs(got []int64, want ...int64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
