package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// session is the relay's dedicated database connection: outside the pool,
// because it holds the session-level advisory lock that makes this relay the
// leader, and LISTENs for the outbox's NOTIFY. The leader reads and deletes
// on it too, so it cannot publish a batch it could not delete for want of a
// connection.
type session struct {
	conn   *pgx.Conn
	leader bool
	// lanes says the table has a lane column: the live lane (0) is then
	// drained before the bulk lane (1).
	lanes bool
	// idleFlag says the database has outbox_relay_state: writers then
	// NOTIFY only while this relay says it is listening.
	idleFlag bool
	// listening is what this relay last told outbox_relay_state.
	listening bool
	// settle is set when listening was just turned on: a commit that read
	// the flag just before may not have notified, so the first wait is short.
	settle bool
	// txnID is the transactional id of the producer of this session's
	// terms: the configured one, or the default derived from the database.
	txnID string
	// wake holds one pending signal: every NOTIFY received while the
	// connection was busy collapses into it, so a burst costs one read.
	wake chan struct{}
	// timeout bounds each statement (WriteTimeout): a connection that
	// stopped answering without closing fails within it, and the relay
	// drops it and stands for the lead again.
	timeout time.Duration
}

// connect opens the dedicated connection with the pool's settings.
func (r *Relay) connect(ctx context.Context) (*session, error) {
	s := &session{wake: make(chan struct{}, 1), timeout: r.cfg.WriteTimeout}
	cfg := r.pool.Config().ConnConfig // a copy
	cfg.OnNotification = func(*pgconn.PgConn, *pgconn.Notification) {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s.conn = conn
	// The relay's reads are small index scans; a parallel plan could also
	// interleave the lanes of fetch's UNION ALL.
	if _, err := conn.Exec(cctx, "SET max_parallel_workers_per_gather = 0"); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("configure the relay session: %w", err)
	}
	// Looked up per connection, so a relay picks up a lane column added by
	// a migration when it reconnects.
	var database string
	err = conn.QueryRow(cctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute
	        WHERE attrelid = to_regclass($1) AND attname = 'lane' AND attnum > 0 AND NOT attisdropped),
	        to_regclass('outbox_relay_state') IS NOT NULL, current_database()`,
		r.cfg.Table).Scan(&s.lanes, &s.idleFlag, &database)
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("look up the outbox lanes: %w", err)
	}
	s.txnID = r.cfg.TransactionalID
	if s.txnID == "" {
		system, err := r.systemIdentifier(cctx, conn)
		if err != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
			return nil, err
		}
		s.txnID = defaultTransactionalID(r.cfg.Topic, system, database, r.cfg.Table)
	}
	return s, nil
}

// systemIdentifier returns the database cluster's system identifier, which
// tells apart two databases of the same name on different servers (and
// stays the same on a promoted physical standby). A role that may not
// read it gets "" and a warning: the default transactional id then rests
// on the database and table names alone.
func (r *Relay) systemIdentifier(ctx context.Context, conn *pgx.Conn) (string, error) {
	var system string
	err := conn.QueryRow(ctx, `SELECT system_identifier::text FROM pg_control_system()`).Scan(&system)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
		r.log.Warn().Err(err).Msg("cannot read the database's system identifier: the default transactional id " +
			"rests on the database and table names; set RELAY_TRANSACTIONAL_ID if another outbox of that name publishes to this topic")
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the database's system identifier: %w", err)
	}
	return system, nil
}

// lead tries to take the advisory lock without waiting. Once it has it, it
// LISTENs before anything is read, so no commit after the first read goes
// unsignalled. A standby does not LISTEN: it would only pile up
// notifications.
func (s *session) lead(ctx context.Context, key int64, channel string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var ok bool
	if err := s.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
		return false, fmt.Errorf("try advisory lock: %w", err)
	}
	if !ok {
		return false, nil
	}
	if _, err := s.conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen %s: %w", channel, err)
	}
	s.leader = true
	return true, nil
}

// wait returns when a NOTIFY arrived (maybe earlier, while the connection
// was busy), when d passed, or when ctx ended. Only a broken connection is
// an error.
func (s *session) wait(ctx context.Context, d time.Duration) error {
	select {
	case <-s.wake:
		return nil
	default:
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	// A timeout here leaves the connection usable (pgconn closes it only on
	// other errors).
	if err := s.conn.PgConn().WaitForNotification(wctx); err != nil && wctx.Err() == nil {
		return fmt.Errorf("wait for notification: %w", err)
	}
	select {
	case <-s.wake:
	default:
	}
	return nil
}

// setListening tells writers whether to NOTIFY: true when this relay is
// idle and waits for them, false while it is busy and polls. Without the
// state table writers always notify and this does nothing.
func (s *session) setListening(ctx context.Context, channel string, on bool) error {
	if !s.idleFlag {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.conn.Exec(ctx, `INSERT INTO outbox_relay_state (channel, listening) VALUES ($1, $2)
		ON CONFLICT (channel) DO UPDATE SET listening = EXCLUDED.listening, updated_at = clock_timestamp()`, channel, on)
	if err != nil {
		return fmt.Errorf("set relay listening=%t: %w", on, err)
	}
	s.listening, s.settle = on, on
	return nil
}

// close ends the session; the server releases the lock with it.
func (s *session) close(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = s.conn.Close(ctx)
}
