// Package idempotency remembers the answer to each POST /v1/histories sent
// with an Idempotency-Key header, so a client that retries a request whose
// answer it never got receives the first answer instead of recording the
// history twice.
//
// Remember writes the key in the transaction that records the history: if
// that transaction rolls back, the key was never used. Two requests with the
// same key at once are serialised by the key's primary key: the second
// waits for the first to commit, then finds its answer. Keys are kept for a
// TTL (Janitor deletes older ones); a retry after that records again.
package idempotency

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/db"
)

// MaxKeyLength is the longest key accepted, in bytes.
const MaxKeyLength = 255

// ErrKeyTaken means the key already answered a request; Lookup returns the
// answer.
var ErrKeyTaken = errors.New("idempotency key already used")

// CheckKey reports what is wrong with a key: it must be 1 to MaxKeyLength
// printable ASCII characters (a UUID is typical).
func CheckKey(key string) error {
	if key == "" || len(key) > MaxKeyLength {
		return fmt.Errorf("must be 1 to %d characters, got %d", MaxKeyLength, len(key))
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return fmt.Errorf("must be printable ASCII; byte %d is 0x%02x", i, key[i])
		}
	}
	return nil
}

// Hash is the fingerprint of a request, compared when a key comes back.
func Hash(canonical []byte) []byte {
	sum := sha256.Sum256(canonical)
	return sum[:]
}

// Answer is what a key answered the first time.
type Answer struct {
	RequestSHA256 []byte
	HistoryID     int64
	Version       int64
	CreatedAt     time.Time
}

// Remember stores key's answer inside the caller's transaction q. It returns
// ErrKeyTaken when the key is already stored (after waiting for a
// transaction that is storing it right now); the caller then rolls back and
// answers with Lookup.
func Remember(ctx context.Context, q db.Querier, key string, a Answer) error {
	tag, err := q.Exec(ctx, `INSERT INTO api_idempotency_key (idempotency_key, request_sha256, history_id, version)
		VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING`, key, a.RequestSHA256, a.HistoryID, a.Version)
	if err != nil {
		return fmt.Errorf("remember idempotency key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrKeyTaken
	}
	return nil
}

// Lookup returns the answer stored for key; pgx.ErrNoRows wrapped when there
// is none (it expired, or its transaction rolled back).
func Lookup(ctx context.Context, q db.Querier, key string) (Answer, error) {
	var a Answer
	err := q.QueryRow(ctx, `SELECT request_sha256, history_id, version, created_at
		FROM api_idempotency_key WHERE idempotency_key = $1`, key).Scan(&a.RequestSHA256, &a.HistoryID, &a.Version, &a.CreatedAt)
	if err != nil {
		return Answer{}, fmt.Errorf("look up idempotency key: %w", err)
	}
	return a, nil
}

// IsNotFound reports whether err from Lookup means the key is not stored.
func IsNotFound(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// Purge deletes the keys stored more than ttl ago and returns how many.
func Purge(ctx context.Context, q db.Querier, ttl time.Duration) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM api_idempotency_key WHERE created_at < now() - $1::interval`, ttl)
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Janitor deletes expired keys every Interval.
type Janitor struct {
	DB       db.Querier
	TTL      time.Duration
	Interval time.Duration
	Log      zerolog.Logger
}

// Run purges at once and then every Interval until ctx ends. A failed purge
// is logged and tried again at the next tick: keys only pile up meanwhile.
func (j *Janitor) Run(ctx context.Context) error {
	t := time.NewTicker(j.Interval)
	defer t.Stop()
	for {
		n, err := Purge(ctx, j.DB, j.TTL)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			j.Log.Warn().Err(err).Msg("purging expired idempotency keys failed; retrying at the next tick")
		case n > 0:
			j.Log.Debug().Int64("deleted", n).Msg("purged expired idempotency keys")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
