package seed

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// History is one generated send-invoice history, as SCI's tables hold it.
type History struct {
	ID               int64
	SentAt           time.Time
	SenderOfficeName string
	DestinationCode  string
	SenderCustomerID string
	SenderOfficeID   string
	EmailStatus      string
	Forms            []Form
}

// Form is one generated invoice of a history.
type Form struct {
	FileName      string
	FilePath      string
	Size          int64
	InvoiceNumber string
	IssueDate     time.Time
	// Amount is the invoice total in ten-thousandths (NUMERIC(20,4)).
	Amount int64
}

// AmountNumeric is Amount as an exact PostgreSQL numeric.
func (f Form) AmountNumeric() pgtype.Numeric {
	return pgtype.Numeric{Int: big.NewInt(f.Amount), Exp: -4, Valid: true}
}

// office is a sending office: its id and display name.
type office struct{ id, name string }

// offices are SCI's sending offices: a few cities, several desks each.
var offices = func() []office {
	var out []office
	for _, city := range []string{"HN", "HCM", "DN", "HP", "CT", "TKY", "OSK"} {
		for desk := 1; desk <= 4; desk++ {
			out = append(out, office{id: fmt.Sprintf("MFV-%s-%02d", city, desk), name: "MFV-" + city})
		}
	}
	return out
}()

// Sizes of the generated population.
const (
	destinations = 20000 // receiving customers
	customers    = 2000  // sender customer ids
	yearsBack    = 3     // sentAt spans this many years before now
)

// Generator makes plausible histories, deterministic for a seed.
type Generator struct {
	r   *rand.Rand
	now time.Time
}

// NewGenerator returns a generator for seed (one stream per seed and
// stream, so batches can be generated independently) with sentAt before now.
func NewGenerator(seed, stream uint64, now time.Time) *Generator {
	return &Generator{r: rand.New(rand.NewPCG(seed, stream)), now: now.Truncate(time.Second)} //nolint:gosec // test data
}

// History generates history id: 1 to 5 forms (3 on average), mostly
// delivered, a few still sent or failed (ERROR).
func (g *Generator) History(id int64) History {
	r := g.r
	o := offices[r.IntN(len(offices))]
	sent := g.now.Add(-time.Duration(r.Int64N(int64(yearsBack*365*24*time.Hour/time.Second))) * time.Second)
	h := History{
		ID:               id,
		SentAt:           sent,
		SenderOfficeName: o.name,
		SenderOfficeID:   o.id,
		DestinationCode:  fmt.Sprintf("CUST-%05d", r.IntN(destinations)+1),
		SenderCustomerID: fmt.Sprintf("%06d", r.IntN(customers)+1),
		EmailStatus:      g.status(),
	}
	n := 1 + r.IntN(5)
	h.Forms = make([]Form, n)
	for i := range h.Forms {
		h.Forms[i] = g.form(h, i)
	}
	return h
}

func (g *Generator) status() string {
	switch p := g.r.IntN(100); {
	case p < 3:
		return "ERROR"
	case p < 20:
		return "SENT"
	default:
		return "DELIVERED"
	}
}

// form generates the i-th invoice of h, issued up to 30 days before it was
// sent, at a millisecond instant.
func (g *Generator) form(h History, i int) Form {
	r := g.r
	issued := h.SentAt.Add(-time.Duration(r.Int64N(int64(30*24*time.Hour/time.Millisecond))) * time.Millisecond)
	number := fmt.Sprintf("INV-%d-%07d-%d", issued.Year(), h.ID, i+1)
	return Form{
		FileName:      fmt.Sprintf("invoice_%s.pdf", number),
		FilePath:      fmt.Sprintf("s3://sci-invoices/%s/%s/", h.SenderOfficeID, issued.Format("2006/01")),
		Size:          20_000 + r.Int64N(2_000_000),
		InvoiceNumber: number,
		IssueDate:     issued,
		Amount:        g.amount(),
	}
}

// amount is mostly cents up to 50,000.00, sometimes four decimals, rarely
// very large: the shapes that break float arithmetic.
func (g *Generator) amount() int64 {
	r := g.r
	switch p := r.IntN(100); {
	case p < 2:
		return r.Int64N(1_000_000_000_0000) + 1 // up to 1e9, four decimals
	case p < 12:
		return r.Int64N(100_000_0000) + 1 // up to 100,000, four decimals
	default:
		return (r.Int64N(5_000_000) + 1) * 100 // cents up to 50,000.00
	}
}
