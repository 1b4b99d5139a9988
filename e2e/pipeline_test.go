package e2e

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// TestPipeline drives the real binaries: histories written by concurrent
// writers arrive exactly as sent; an ERROR removes one; a replayed older
// event does not resurrect it; a re-send brings it back.
func TestPipeline(t *testing.T) {
	s := newStack(t)
	s.startAll()
	dest := testsupport.Name("CUST")

	const writers, perWriter = 8, 15
	sent := make(map[int64]sentHistory, writers*perWriter)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for i := range perWriter {
				h := randomHistory(r, dest, w*perWriter+i)
				id, err := s.record(h)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				sent[id] = h
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
	if len(sent) != writers*perWriter {
		t.Fatalf("recorded %d distinct histories, want %d", len(sent), writers*perWriter)
	}

	for id, h := range sent {
		var got *receivedHistory
		eventually(t, 30*time.Second, fmt.Sprintf("history %d at the receiver", id), func() bool {
			got = s.received(t, id)
			return got != nil
		})
		assertSame(t, id, h, got)
	}

	var victim int64
	for id := range sent {
		victim = id
		break
	}
	if v := s.setStatus(t, victim, contract.StatusError); v != 2 {
		t.Fatalf("ERROR version = %d, want 2", v)
	}
	eventually(t, 30*time.Second, "the ERROR history to disappear", func() bool { return s.received(t, victim) == nil })

	// Replay the victim's first (SENT, version 1) event, as a broker
	// redelivery or an operator's replay would.
	old := findEvent(t, s, victim, 1)
	s.kafka.Produce(t, s.topic, &kgo.Record{Key: old.Key, Value: old.Value, Headers: old.Headers})
	s.waitCaughtUp(t)
	if got := s.received(t, victim); got != nil {
		t.Fatalf("a replayed version-1 event resurrected history %d: %+v", victim, got)
	}

	// A re-send (a newer, non-ERROR version) brings it back.
	if v := s.setStatus(t, victim, contract.StatusSent); v != 3 {
		t.Fatalf("re-send version = %d, want 3", v)
	}
	var back *receivedHistory
	eventually(t, 30*time.Second, "the re-sent history to come back", func() bool {
		back = s.received(t, victim)
		return back != nil
	})
	if back.SourceVersion != 3 || back.EmailStatus != contract.StatusSent {
		t.Fatalf("re-sent history = version %d status %s, want 3 SENT", back.SourceVersion, back.EmailStatus)
	}
	assertSame(t, victim, sent[victim], back)
}

// findEvent returns the message of the aggregate's given version.
func findEvent(t *testing.T, s *stack, id int64, version int64) *kgo.Record {
	t.Helper()
	for _, m := range s.kafka.ReadAll(t, s.topic, -1, 30*time.Second) {
		env, err := contract.DecodeEnvelope(m.Value)
		if err == nil && env.AggregateID == strconv.FormatInt(id, 10) && env.Version == version {
			return m
		}
	}
	t.Fatalf("no version-%d event of history %d on %s", version, id, s.topic)
	return nil
}

// assertSame compares what the receiver holds with what was sent, field by
// field, after the documented transform.
func assertSame(t *testing.T, id int64, want sentHistory, got *receivedHistory) {
	t.Helper()
	fail := func(field string, g, w any) { t.Errorf("history %d: %s = %v, want %v", id, field, g, w) }
	if got.DestinationCode != want.DestinationCode {
		fail("destinationCode", got.DestinationCode, want.DestinationCode)
	}
	if got.SenderCustomerID != want.SenderCustomerID || got.SenderOfficeID != want.SenderOfficeID ||
		got.SenderOfficeName != want.SenderOfficeName {
		fail("sender", got.SenderCustomerID+"/"+got.SenderOfficeID+"/"+got.SenderOfficeName, want)
	}
	if !got.SentAt.Equal(time.Unix(want.SentAt, 0)) {
		fail("sentAt", got.SentAt, time.Unix(want.SentAt, 0).UTC())
	}
	if got.FormCount != len(want.Forms) || len(got.Forms) != len(want.Forms) {
		t.Fatalf("history %d: %d forms (count %d), want %d", id, len(got.Forms), got.FormCount, len(want.Forms))
	}
	total := new(big.Rat)
	for i, wf := range want.Forms {
		gf := got.Forms[i]
		wantAmount, _ := new(big.Rat).SetString(string(wf.TotalAmount))
		total.Add(total, wantAmount)
		if gf.FileName != wf.FileName || gf.FilePath != wf.FilePath || gf.SizeBytes != wf.Size || gf.InvoiceNumber != wf.InvoiceNumber {
			fail(fmt.Sprintf("forms[%d]", i), gf, wf)
		}
		if !gf.IssuedAt.Equal(time.UnixMilli(wf.IssueDate)) {
			fail(fmt.Sprintf("forms[%d].issuedAt", i), gf.IssuedAt, time.UnixMilli(wf.IssueDate).UTC())
		}
		if d := time.UnixMilli(wf.IssueDate).UTC().Format(time.DateOnly); gf.IssueDate != d {
			fail(fmt.Sprintf("forms[%d].issueDate", i), gf.IssueDate, d)
		}
		if a, ok := new(big.Rat).SetString(gf.TotalAmount); !ok || a.Cmp(wantAmount) != 0 {
			fail(fmt.Sprintf("forms[%d].totalAmount", i), gf.TotalAmount, wf.TotalAmount)
		}
	}
	if a, ok := new(big.Rat).SetString(got.TotalAmount); !ok || a.Cmp(total) != 0 {
		fail("totalAmount", got.TotalAmount, total.FloatString(2))
	}
}
