package e2e

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// SIGTERM to the relay and the receiver while histories are being written:
// both exit 0 within the bound, and once restarted every history written
// arrives — nothing in flight is lost.
func TestSigtermUnderLoadLosesNothing(t *testing.T) {
	s := newStack(t)
	s.startAll()
	dest := testsupport.Name("CUST")

	ctx, stopWriting := context.WithCancel(context.Background())
	var mu sync.Mutex
	var ids []int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for n := 0; ctx.Err() == nil; n++ {
				id, err := s.record(randomHistory(r, dest, w*100000+n))
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		}()
	}
	written := func() int { mu.Lock(); defer mu.Unlock(); return len(ids) }

	eventually(t, 30*time.Second, "some histories written", func() bool { return written() >= 50 })
	for _, name := range []string{"sender-relay", "receiver"} {
		start := time.Now()
		if err := s.stop(name); err != nil {
			t.Fatalf("%s after SIGTERM under load: %v (want exit 0)", name, err)
		}
		t.Logf("%s exited cleanly %v after SIGTERM", name, time.Since(start).Round(time.Millisecond))
	}
	at := written()
	eventually(t, 30*time.Second, "more histories written while relay and receiver are down", func() bool {
		return written() >= at+50
	})
	s.start("sender-relay", bins.sender, "relay")
	s.start("receiver", bins.receiver, "serve")
	s.waitHealthy(s.receiverURL + "/healthz")
	time.Sleep(200 * time.Millisecond) // writes continue across the restart
	stopWriting()
	wg.Wait()

	mu.Lock()
	all := append([]int64(nil), ids...)
	mu.Unlock()
	for _, id := range all {
		eventually(t, 60*time.Second, "every written history at the receiver", func() bool {
			return s.received(t, id) != nil
		})
	}
	t.Logf("%d histories written across two SIGTERMs, all arrived", len(all))
}
