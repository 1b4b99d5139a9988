package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/settings"
	"github.com/invoicesync/invoicesync/sender/internal/progress"
	"github.com/invoicesync/invoicesync/sender/internal/seed"
)

// seedConfig is the configuration of "sender seed".
type seedConfig struct {
	commonConfig
	// Count is how many histories to write (-n). Required.
	Count int
	// BatchSize is how many histories one transaction writes (--batch).
	// Default 10000.
	BatchSize int
	// Seed makes the data reproducible (--seed). Default 1.
	Seed int
}

func (c *seedConfig) bind(s *settings.Set) {
	c.commonConfig.bind(s)
	s.Int(&c.Count, "n", "", 0, "how many histories to write (required)")
	s.Int(&c.BatchSize, "batch", "", seed.DefaultBatchSize, "histories written per transaction (one COPY each)")
	s.Int(&c.Seed, "seed", "", 1, "random seed: the same seed writes the same values")
}

// Validate reports the first setting that is wrong, by name.
func (c *seedConfig) Validate() error {
	if err := c.validate(); err != nil {
		return err
	}
	switch {
	case c.Count <= 0:
		return fmt.Errorf("-n: how many histories to write is required (a positive number), got %d", c.Count)
	case c.BatchSize <= 0:
		return fmt.Errorf("--batch: must be positive, got %d", c.BatchSize)
	case c.Seed <= 0:
		return fmt.Errorf("--seed: must be positive, got %d", c.Seed)
	}
	return nil
}

func (c *seedConfig) MarshalZerologObject(e *zerolog.Event) {
	c.commonConfig.MarshalZerologObject(e)
	e.Int("n", c.Count).Int("batch", c.BatchSize).Int("seed", c.Seed)
}

// seedHistories fills SCI's legacy tables with realistic histories (no
// aggregate rows, no events): the stand-in for SCI's pre-existing history.
func seedHistories(ctx context.Context, c *cli, args []string) error {
	var cfg seedConfig
	s := settings.New("sender seed", "Fill SCI's legacy history tables with N realistic histories, fast (COPY), "+
		"one transaction per batch. Writes no aggregate rows and no events: \"sender backfill\" publishes them.")
	cfg.bind(s)
	log, err := c.configure(s, args, "seed", &cfg.Log, &cfg)
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, cfg.DatabaseURL, "seed")
	if err != nil {
		return fmt.Errorf("sender database: %w", err)
	}
	defer pool.Close()
	if err := requireMigrated(ctx, pool); err != nil {
		return err
	}
	p := progress.New(progress.Options{Out: c.stderr, Log: log, What: "seed", Unit: "histories"})
	res, err := seed.Run(ctx, pool, seed.Config{Count: cfg.Count, BatchSize: cfg.BatchSize, Seed: uint64(cfg.Seed)}, p) //nolint:gosec // validated positive
	if err != nil {
		return err
	}
	log.Info().Int64("histories", res.Histories).Int64("forms", res.Forms).Int64("first_id", res.FirstID).
		Int64("last_id", res.LastID).Msg("seeded")
	if res.Interrupted {
		return errors.New("seed interrupted: the batches logged above are committed")
	}
	return nil
}
