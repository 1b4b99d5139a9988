// Package seed fills SCI's legacy tables (send_invoice_history and its
// forms) with realistic histories, fast, with COPY: the stand-in for the
// history SCI holds before invoicesync is installed. It writes no aggregate
// rows and no events; "sender backfill" is what publishes them.
package seed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/invoicesync/invoicesync/pkg/db"
)

// DefaultBatchSize is how many histories one transaction writes.
const DefaultBatchSize = 10000

// Config says how much to seed.
type Config struct {
	// Count is how many histories to write. Required, positive.
	Count int
	// BatchSize is how many histories each transaction writes (one COPY of
	// histories, one of forms). Default DefaultBatchSize.
	BatchSize int
	// Seed makes the data reproducible: the same seed writes the same
	// values. Default 1.
	Seed uint64
	// Now is the end of the sentAt span. Default time.Now().
	Now time.Time
}

// Validate reports the first setting that is wrong, by name.
func (c *Config) Validate() error {
	switch {
	case c.Count <= 0:
		return fmt.Errorf("count: must be positive, got %d", c.Count)
	case c.BatchSize < 0:
		return fmt.Errorf("batch size: must be positive, got %d", c.BatchSize)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
}

// Progress is told the total, then each batch written.
type Progress interface {
	Start(total int64)
	Add(n int64)
	Finish()
}

// Result is what a run wrote.
type Result struct {
	// Histories and Forms count the rows committed.
	Histories, Forms int64
	// FirstID and LastID bound the history ids written (ids are reserved
	// from the table's identity, so concurrent writers never collide).
	FirstID, LastID int64
	// Interrupted says ctx ended before Count histories were written; what
	// was committed stays.
	Interrupted bool
}

// Run writes cfg.Count histories in batches, one transaction each. When ctx
// ends it finishes the batch in flight and returns what it wrote.
func Run(ctx context.Context, pool *pgxpool.Pool, cfg Config, p Progress) (Result, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, fmt.Errorf("seed: %w", err)
	}
	p.Start(int64(cfg.Count))
	defer p.Finish()
	var res Result
	for batch := 0; res.Histories < int64(cfg.Count); batch++ {
		if ctx.Err() != nil {
			res.Interrupted = true
			return res, nil
		}
		n := min(cfg.BatchSize, cfg.Count-int(res.Histories))
		g := NewGenerator(cfg.Seed, uint64(batch), cfg.Now) //nolint:gosec // batch >= 0
		hs, forms, err := writeBatch(context.WithoutCancel(ctx), pool, g, n)
		if err != nil {
			return res, fmt.Errorf("seed batch %d: %w", batch+1, err)
		}
		if res.FirstID == 0 {
			res.FirstID = hs[0].ID
		}
		res.LastID = hs[len(hs)-1].ID
		res.Histories += int64(len(hs))
		res.Forms += forms
		p.Add(int64(len(hs)))
	}
	return res, nil
}

// writeBatch reserves n history ids and copies n generated histories and
// their forms in one transaction.
func writeBatch(ctx context.Context, pool *pgxpool.Pool, g *Generator, n int) ([]History, int64, error) {
	var hs []History
	var forms int64
	err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		ids, err := reserveIDs(ctx, tx, n)
		if err != nil {
			return err
		}
		hs = make([]History, n)
		for i, id := range ids {
			hs[i] = g.History(id)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"send_invoice_history"}, historyColumns, historyRows(hs)); err != nil {
			return fmt.Errorf("copy histories: %w", err)
		}
		forms, err = tx.CopyFrom(ctx, pgx.Identifier{"send_invoice_history_form"}, formColumns, formRows(hs))
		if err != nil {
			return fmt.Errorf("copy forms: %w", err)
		}
		return nil
	})
	return hs, forms, err
}

// reserveIDs takes n ids from send_invoice_history's identity sequence.
func reserveIDs(ctx context.Context, tx pgx.Tx, n int) ([]int64, error) {
	rows, err := tx.Query(ctx, `SELECT nextval(pg_get_serial_sequence('send_invoice_history', 'id'))
	                              FROM generate_series(1, $1)`, n)
	if err != nil {
		return nil, fmt.Errorf("reserve ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("reserve ids: %w", err)
	}
	if len(ids) != n {
		return nil, errors.New("reserve ids: the sequence returned too few")
	}
	return ids, nil
}

var historyColumns = []string{"id", "sent_at", "sender_office_name", "destination_code",
	"sender_customer_id", "sender_office_id", "email_status", "created_at", "updated_at"}

func historyRows(hs []History) pgx.CopyFromSource {
	return pgx.CopyFromSlice(len(hs), func(i int) ([]any, error) {
		h := &hs[i]
		return []any{h.ID, h.SentAt, h.SenderOfficeName, h.DestinationCode, h.SenderCustomerID,
			h.SenderOfficeID, h.EmailStatus, h.SentAt, h.SentAt}, nil
	})
}

var formColumns = []string{"history_id", "file_name", "file_path", "size", "invoice_number",
	"issue_date", "total_amount"}

// formRows lists the forms of hs in history order, so form ids (the
// table's identity) increase with the history and form position.
func formRows(hs []History) pgx.CopyFromSource {
	var rows [][]any
	for i := range hs {
		for _, f := range hs[i].Forms {
			rows = append(rows, []any{hs[i].ID, f.FileName, f.FilePath, f.Size, f.InvoiceNumber,
				f.IssueDate, f.AmountNumeric()})
		}
	}
	return pgx.CopyFromRows(rows)
}
