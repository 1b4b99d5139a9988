package store

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/metrics"
)

// PruneLedger deletes up to limit ledger rows of events processed more than
// olderThan ago, oldest first, and returns how many it deleted. Dropping a
// row only ends the duplicate check by event id: the version guard still
// refuses the event if it is delivered again (it is reported Stale).
func (s *Store) PruneLedger(ctx context.Context, olderThan time.Duration, limit int) (int64, error) {
	tag, err := s.db.Exec(ctx, `
		DELETE FROM processed_event
		 WHERE event_id IN (SELECT event_id FROM processed_event
		                     WHERE processed_at < clock_timestamp() - $1 * interval '1 microsecond'
		                     ORDER BY processed_at
		                     LIMIT $2)`, olderThan.Microseconds(), limit)
	if err != nil {
		return 0, fmt.Errorf("prune ledger: %w", err)
	}
	return tag.RowsAffected(), nil
}

// JanitorConfig tunes a Janitor. Every field has a default.
type JanitorConfig struct {
	// Retention is how long a processed event id is remembered; a duplicate
	// delivered later is still refused by the version guard. Default 168h.
	Retention time.Duration
	// Interval is how often the janitor prunes. Default 10m.
	Interval time.Duration
	// BatchRows bounds the rows one DELETE removes, so pruning a large
	// backlog never holds long locks or one huge transaction. Default 10000.
	BatchRows int
	// Metrics, when set, receives invoicesync_receiver_ledger_pruned_total.
	// Default nil: no metrics.
	Metrics prometheus.Registerer
}

// Defaults of JanitorConfig.
const (
	DefaultLedgerRetention       = 168 * time.Hour
	DefaultLedgerCleanupInterval = 10 * time.Minute
	DefaultLedgerBatchRows       = 10000
)

// SetDefaults fills the zero fields with their defaults.
func (c *JanitorConfig) SetDefaults() {
	if c.Retention == 0 {
		c.Retention = DefaultLedgerRetention
	}
	if c.Interval == 0 {
		c.Interval = DefaultLedgerCleanupInterval
	}
	if c.BatchRows == 0 {
		c.BatchRows = DefaultLedgerBatchRows
	}
}

// Validate names the first setting that is wrong.
func (c *JanitorConfig) Validate() error {
	switch {
	case c.Retention <= 0:
		return fmt.Errorf("ledger retention: must be positive, got %v", c.Retention)
	case c.Interval <= 0:
		return fmt.Errorf("ledger cleanup interval: must be positive, got %v", c.Interval)
	case c.BatchRows < 1:
		return fmt.Errorf("ledger cleanup batch rows: must be at least 1, got %d", c.BatchRows)
	}
	return nil
}

// Janitor keeps the processed-event ledger bounded by deleting the rows
// older than the retention, in bounded batches, at a fixed interval.
type Janitor struct {
	cfg    JanitorConfig
	store  *Store
	log    zerolog.Logger
	pruned prometheus.Counter // nil: no metrics
}

// NewJanitor validates cfg (after filling its defaults) and returns a
// janitor of s's ledger, with its counter registered on cfg.Metrics when set.
func NewJanitor(cfg JanitorConfig, s *Store, log zerolog.Logger) (*Janitor, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	j := &Janitor{cfg: cfg, store: s, log: log.With().Str("component", "ledger-janitor").Logger()}
	if cfg.Metrics != nil {
		j.pruned = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "receiver", Name: "ledger_pruned_total",
			Help: "Processed-event ledger rows deleted for being older than the retention.",
		})
		if err := cfg.Metrics.Register(j.pruned); err != nil {
			return nil, fmt.Errorf("ledger janitor metrics: %w", err)
		}
	}
	return j, nil
}

// Run prunes at once and then every Interval until ctx is cancelled, and
// returns nil then. A failed pass is logged and tried again next time.
func (j *Janitor) Run(ctx context.Context) error {
	t := time.NewTicker(j.cfg.Interval)
	defer t.Stop()
	for {
		n, err := j.Prune(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			j.log.Warn().Err(err).Int64("deleted", n).Dur("retry_in", j.cfg.Interval).Msg("ledger cleanup failed")
		case n > 0:
			j.log.Info().Int64("deleted", n).Dur("retention", j.cfg.Retention).Msg("ledger cleaned up")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Prune deletes every ledger row older than the retention, BatchRows at a
// time, and returns how many it deleted.
func (j *Janitor) Prune(ctx context.Context) (int64, error) {
	var total int64
	for {
		n, err := j.store.PruneLedger(ctx, j.cfg.Retention, j.cfg.BatchRows)
		total += n
		if j.pruned != nil {
			j.pruned.Add(float64(n))
		}
		if err != nil || n < int64(j.cfg.BatchRows) {
			return total, err
		}
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}
