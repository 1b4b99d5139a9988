package seed_test

import (
	"context"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
	"github.com/invoicesync/invoicesync/sender/internal/seed"
)

type nopProgress struct{ added int64 }

func (p *nopProgress) Start(int64) {}
func (p *nopProgress) Add(n int64) { p.added += n }
func (p *nopProgress) Finish()     {}

// The same seed and stream generate the same histories; another stream
// other ones.
func TestGeneratorIsDeterministic(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	a, b := seed.NewGenerator(7, 3, now).History(42), seed.NewGenerator(7, 3, now).History(42)
	if a.DestinationCode != b.DestinationCode || !a.SentAt.Equal(b.SentAt) || len(a.Forms) != len(b.Forms) ||
		a.Forms[0].Amount != b.Forms[0].Amount {
		t.Fatalf("same seed, different histories: %+v / %+v", a, b)
	}
	if c := seed.NewGenerator(7, 4, now).History(42); c.SentAt.Equal(a.SentAt) && c.DestinationCode == a.DestinationCode {
		t.Fatal("another stream generated the same history")
	}
}

// Seeding writes SCI's legacy tables only: N histories with 1-5 forms (3
// on average), varied and plausible values, and no aggregate rows or
// events.
func TestSeedFillsLegacyTablesOnly(t *testing.T) {
	const n = 2500
	d := testsupport.MigratedDatabase(t, migrations.Sender)
	ctx := context.Background()
	p := &nopProgress{}
	now := time.Now()
	res, err := seed.Run(ctx, d.Pool, seed.Config{Count: n, BatchSize: 1000}, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Histories != n || p.added != n || res.LastID-res.FirstID != n-1 {
		t.Fatalf("result %+v, progress %d; want %d histories with consecutive ids", res, p.added, n)
	}
	var got struct {
		histories, forms, minForms, maxForms, destinations, offices, statuses, fourDecimals int64
		aggregates, events                                                                  int64
		oldest, newest                                                                      time.Time
	}
	err = d.Pool.QueryRow(ctx, `SELECT
	        (SELECT count(*) FROM send_invoice_history),
	        (SELECT count(*) FROM send_invoice_history_form),
	        (SELECT min(c) FROM (SELECT count(*) c FROM send_invoice_history_form GROUP BY history_id) x),
	        (SELECT max(c) FROM (SELECT count(*) c FROM send_invoice_history_form GROUP BY history_id) x),
	        (SELECT count(DISTINCT destination_code) FROM send_invoice_history),
	        (SELECT count(DISTINCT sender_office_id) FROM send_invoice_history),
	        (SELECT count(DISTINCT email_status) FROM send_invoice_history),
	        (SELECT count(*) FROM send_invoice_history_form WHERE total_amount * 100 <> trunc(total_amount * 100)),
	        (SELECT count(*) FROM aggregate_history_form),
	        (SELECT count(*) FROM transaction_outbox),
	        (SELECT min(sent_at) FROM send_invoice_history),
	        (SELECT max(sent_at) FROM send_invoice_history)`).Scan(&got.histories, &got.forms, &got.minForms,
		&got.maxForms, &got.destinations, &got.offices, &got.statuses, &got.fourDecimals, &got.aggregates,
		&got.events, &got.oldest, &got.newest)
	if err != nil {
		t.Fatal(err)
	}
	if got.histories != n || got.forms != res.Forms {
		t.Fatalf("tables hold %d histories and %d forms, want %d and %d", got.histories, got.forms, n, res.Forms)
	}
	if avg := float64(got.forms) / n; got.minForms != 1 || got.maxForms != 5 || avg < 2.8 || avg > 3.2 {
		t.Errorf("forms per history: min %d max %d avg %.2f, want 1, 5 and about 3", got.minForms, got.maxForms, avg)
	}
	if got.destinations < 1000 || got.offices < 20 || got.statuses != 3 || got.fourDecimals == 0 {
		t.Errorf("not varied: %d destinations, %d offices, %d statuses, %d amounts with 4 decimals",
			got.destinations, got.offices, got.statuses, got.fourDecimals)
	}
	if got.newest.After(now) || got.oldest.Before(now.AddDate(-3, 0, -1)) {
		t.Errorf("sentAt from %s to %s, want within the last 3 years", got.oldest, got.newest)
	}
	if got.aggregates != 0 || got.events != 0 {
		t.Errorf("seed wrote %d aggregate rows and %d events, want none", got.aggregates, got.events)
	}
}

func TestSeedRefusesBadConfig(t *testing.T) {
	for _, cfg := range []seed.Config{{Count: 0}, {Count: 10, BatchSize: -1}} {
		if _, err := seed.Run(context.Background(), nil, cfg, &nopProgress{}); err == nil {
			t.Errorf("Run(%+v) = nil error, want the setting named", cfg)
		}
	}
}
