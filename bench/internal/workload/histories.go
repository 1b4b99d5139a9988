// Package workload makes the benchmark's events and writes them through one
// of the write paths: the Go package (history.Record in its own
// transaction), the HTTP API (sender serve), or the watermill peer (the
// same history rows plus a watermill-sql message in the same transaction).
package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/invoicesync/invoicesync/pkg/contract"
)

// Writer records one history in a transaction of its own and returns the
// id the database assigned, once committed. Safe for concurrent use.
type Writer interface {
	Write(ctx context.Context, h contract.History) (int64, error)
}

// MinForms, MaxForms bound the forms of one history: uniform, 3 on average.
const MinForms, MaxForms = 1, 5

// Histories makes realistic send-invoice histories. Not safe for
// concurrent use: give each writer its own.
type Histories struct {
	rng *rand.Rand
	n   int
}

// NewHistories returns a generator seeded with seed (same seed, same data).
func NewHistories(seed uint64) *Histories {
	return &Histories{rng: rand.New(rand.NewPCG(seed, 0x1f2e3d4c))}
}

// Next returns the next history (sent now, not yet recorded).
func (g *Histories) Next() contract.History {
	g.n++
	now := time.Now()
	office := g.rng.IntN(40)
	h := contract.History{
		EmailStatus:      contract.StatusSent,
		SentAt:           now.Unix(),
		SenderOfficeName: "Office " + strconv.Itoa(office),
		DestinationCode:  fmt.Sprintf("CUST-%05d", g.rng.IntN(20000)),
		SenderCustomerID: fmt.Sprintf("SC-%04d", g.rng.IntN(500)),
		SenderOfficeID:   fmt.Sprintf("OFF-%02d", office),
		Forms:            make([]contract.Form, MinForms+g.rng.IntN(MaxForms-MinForms+1)),
	}
	for i := range h.Forms {
		cents := g.rng.Int64N(10_000_000)
		h.Forms[i] = contract.Form{
			FileName:      fmt.Sprintf("invoice-%d-%d.pdf", g.n, i),
			FilePath:      "s3://sci-invoices/2025/bench/",
			Size:          20_000 + g.rng.Int64N(400_000),
			InvoiceNumber: fmt.Sprintf("INV-%d-%d", g.n, i),
			IssueDate:     now.Add(-time.Duration(g.rng.IntN(30*24)) * time.Hour).UnixMilli(),
			TotalAmount:   json.Number(fmt.Sprintf("%d.%02d", cents/100, cents%100)),
		}
	}
	return h
}
