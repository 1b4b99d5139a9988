package consume

import (
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/dlq"
)

// deadLetter publishes r, which failed permanently with cause, to the
// dead-letter topic and commits its offset once the broker acknowledged
// it. A failed publish is retried with backoff until it succeeds or the
// partition must stop; r is then left uncommitted, to be delivered again.
// It reports whether the partition may go on.
func (p *partition) deadLetter(log zerolog.Logger, r *kgo.Record, cause error) bool {
	class := ClassOf(cause)
	failure := dlq.Failure{Class: class, Reason: cause.Error(), Group: p.c.cfg.GroupID, At: time.Now()}
	log = log.With().Str("error_class", class).Str("dlq_topic", p.c.cfg.DLQTopic).Logger()
	log.Error().Err(cause).Msg("message failed permanently; dead-lettering it")
	for attempt := 1; ; attempt++ {
		// A record is produced once: each attempt builds its own.
		err := p.c.conn.ProduceSync(p.work, p.c.dlq, dlq.Build(r, failure))
		if err == nil {
			p.c.stats.deadLettered.Add(1)
			p.c.metrics.deadLetter(class)
			log.Warn().Msg("message dead-lettered; moving on")
			return p.commit(log, r)
		}
		if p.stop.Err() != nil {
			log.Info().Err(err).Msg("stopped before the message was dead-lettered; it will be delivered again")
			return false
		}
		p.c.stats.dlqRetries.Add(1)
		delay := p.c.backoff(attempt)
		log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", delay).
			Msg("dead-letter publish failed; retrying (the offset stays before the message)")
		if !sleep(p.stop, delay) {
			log.Info().Msg("stopped before the message was dead-lettered; it will be delivered again")
			return false
		}
	}
}
