package main

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/settings"
	"github.com/invoicesync/invoicesync/sender/internal/backfill"
	"github.com/invoicesync/invoicesync/sender/internal/progress"
)

// backfillConfig is the configuration of "sender backfill".
type backfillConfig struct {
	commonConfig
	// BatchSize is how many histories one transaction handles.
	// BACKFILL_BATCH_SIZE (--batch), default 1000.
	BatchSize int
	// Rate caps the histories handled per second, 0 for no cap.
	// BACKFILL_RATE (--rate), default 0.
	Rate int
	// DryRun counts what would be enqueued and writes nothing (--dry-run).
	DryRun bool
	// Restart scans from the first history again (--restart).
	Restart bool
}

func (c *backfillConfig) bind(s *settings.Set) {
	c.commonConfig.bind(s)
	s.Int(&c.BatchSize, "batch", "BACKFILL_BATCH_SIZE", backfill.DefaultBatchSize, "histories handled per transaction")
	s.Int(&c.Rate, "rate", "BACKFILL_RATE", 0, "most histories handled per second (0: no cap)")
	s.Bool(&c.DryRun, "dry-run", "", false, "count what would be enqueued; write nothing")
	s.Bool(&c.Restart, "restart", "", false,
		"scan from the first history again (histories that have an aggregate row are still left alone)")
}

// Validate reports the first setting that is wrong, by name.
func (c *backfillConfig) Validate() error {
	if err := c.validate(); err != nil {
		return err
	}
	switch {
	case c.BatchSize <= 0:
		return fmt.Errorf("BACKFILL_BATCH_SIZE (--batch): must be positive, got %d", c.BatchSize)
	case c.Rate < 0:
		return fmt.Errorf("BACKFILL_RATE (--rate): must be 0 (no cap) or positive, got %d", c.Rate)
	}
	return nil
}

func (c *backfillConfig) MarshalZerologObject(e *zerolog.Event) {
	c.commonConfig.MarshalZerologObject(e)
	e.Int("batch", c.BatchSize).Int("rate", c.Rate).Bool("dry_run", c.DryRun).Bool("restart", c.Restart)
}

// backfillHistories publishes SCI's pre-existing histories through the
// outbox's bulk lane, resumably.
func backfillHistories(ctx context.Context, c *cli, args []string) error {
	var cfg backfillConfig
	s := settings.New("sender backfill", "Publish SCI's pre-existing histories: create the aggregate row (and so the "+
		"event) of every history that has none, in id order, batch by batch, resuming where an interrupted run stopped. "+
		"Ctrl-C stops after the batch in flight.")
	cfg.bind(s)
	log, err := c.configure(s, args, "backfill", &cfg.Log, &cfg)
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, cfg.DatabaseURL, "backfill")
	if err != nil {
		return fmt.Errorf("sender database: %w", err)
	}
	defer pool.Close()
	if err := requireMigrated(ctx, pool); err != nil {
		return err
	}
	p := progress.New(progress.Options{Out: c.stderr, Log: log, What: "backfill", Unit: "histories"})
	b, err := backfill.New(backfill.Config{BatchSize: cfg.BatchSize, Rate: cfg.Rate, DryRun: cfg.DryRun,
		Restart: cfg.Restart}, pool, p, log)
	if err != nil {
		return err
	}
	res, err := b.Run(ctx)
	if err != nil {
		return err
	}
	return reportBackfill(c, log, cfg.DryRun, res)
}

// reportBackfill prints the outcome: a summary line on stdout, the details
// in the log, and an error telling how to resume after an interrupt.
func reportBackfill(c *cli, log zerolog.Logger, dryRun bool, res backfill.Result) error {
	if dryRun {
		log.Info().Str("start", res.Start.String()).Int64("after_id", res.FromID).Int64("would_scan", res.Scanned).
			Int64("would_enqueue", res.Enqueued).Int64("would_reject", res.Rejected).Msg("dry run: nothing written")
		fmt.Fprintf(c.stdout, "dry run: %d histories after id %d would be scanned, %d enqueued, %d rejected "+
			"(they cannot form a valid event; the log names each with the field at fault)\n",
			res.Scanned, res.FromID, res.Enqueued, res.Rejected)
		return nil
	}
	e := log.Info().Str("start", res.Start.String()).Int64("after_id", res.FromID).Int64("last_id", res.LastID).
		Int64("scanned", res.Scanned).Int64("enqueued", res.Enqueued).Int64("rejected", res.Rejected).Int("batches", res.Batches)
	if cp := res.Checkpoint; cp != nil {
		e = e.Int64("checkpoint_scanned", cp.Scanned).Int64("checkpoint_enqueued", cp.Enqueued)
	}
	if res.Interrupted {
		e.Msg("backfill interrupted after the batch in flight")
		return fmt.Errorf("backfill interrupted at history id %d (%d enqueued in this run): "+
			"run \"sender backfill\" again to resume from there", res.LastID, res.Enqueued)
	}
	e.Msg("backfill finished")
	fmt.Fprintf(c.stdout, "backfill finished: %d histories scanned, %d enqueued, %d rejected "+
		"(they cannot form a valid event; the log names each with the field at fault), up to id %d\n",
		res.Scanned, res.Enqueued, res.Rejected, res.LastID)
	return nil
}
