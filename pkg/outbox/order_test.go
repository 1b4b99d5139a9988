package outbox_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/outbox"
)

// Concurrent writers change a few histories many times, each change in its
// own transaction, while the relay runs: every version of every history
// reaches the topic, and each history's versions appear in increasing order.
func TestPerAggregateOrderUnderConcurrentWriters(t *testing.T) {
	const histories, writers, updates = 4, 4, 25
	e := newEnv(t)
	ctx := context.Background()
	// Small batches so the relay runs many rounds while the writers write.
	start(t, e.relay(t, outbox.Config{BatchSize: 7}))

	ids := make([]int64, histories)
	for i := range ids {
		ids[i] = recordHistory(t, e, i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for u := range updates {
				status := contract.StatusSent
				if u%2 == 0 {
					status = contract.StatusDelivered
				}
				id := ids[(w+u)%histories]
				if _, err := e.db.Pool.Exec(ctx, "SELECT set_send_invoice_history_status($1, $2)", id, status); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	final := map[string]int64{}
	rows, err := e.db.Pool.Query(ctx, "SELECT history_id::text, version FROM aggregate_history_form")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		final[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an empty outbox", func() bool { return e.pending(t) == 0 })
	waitFor(t, "every version on the topic", func() bool { return allVersions(e.got, final) })

	// Order: per key, the first appearance of each version must increase.
	seen := map[string]map[int64]bool{}
	last := map[string]int64{}
	for _, m := range e.got.all() {
		key := string(m.Key)
		v, err := strconv.ParseInt(header(m, contract.HeaderVersion), 10, 64)
		if err != nil {
			t.Fatalf("version header: %v", err)
		}
		if seen[key] == nil {
			seen[key] = map[int64]bool{}
		}
		if seen[key][v] {
			continue // a duplicate, allowed
		}
		seen[key][v] = true
		if v <= last[key] {
			t.Fatalf("history %s: version %d published after version %d", key, v, last[key])
		}
		last[key] = v
	}
}

// recordHistory records one send-invoice history through the SQL write
// path and returns its id.
func recordHistory(t *testing.T, e *env, i int) int64 {
	t.Helper()
	doc := fmt.Sprintf(`{"sentAt": 1700000000, "senderOfficeName": "office %d", "destinationCode": "D%d",
	  "senderCustomerId": "C%d", "senderOfficeId": "O%d",
	  "forms": [{"fileName": "inv-%d.pdf", "size": 10, "invoiceNumber": "INV-%d",
	             "issueDate": 1700000000000, "totalAmount": 12.5}]}`, i, i, i, i, i, i)
	var id int64
	if err := e.db.Pool.QueryRow(context.Background(), "SELECT record_send_invoice_history($1::jsonb)", doc).Scan(&id); err != nil {
		t.Fatalf("record history: %v", err)
	}
	return id
}

// allVersions reports whether versions 1..final of every aggregate arrived.
func allVersions(c *collector, final map[string]int64) bool {
	got := map[string]map[string]bool{}
	for _, m := range c.all() {
		key := string(m.Key)
		if got[key] == nil {
			got[key] = map[string]bool{}
		}
		got[key][header(m, contract.HeaderVersion)] = true
	}
	for id, n := range final {
		for v := int64(1); v <= n; v++ {
			if !got[id][strconv.FormatInt(v, 10)] {
				return false
			}
		}
	}
	return true
}
