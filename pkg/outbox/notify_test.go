package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/outbox"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// Writers NOTIFY only while the relay says it listens: a NOTIFY makes the
// commit take a database-wide lock, serializing every notifying commit.
// Notifications arrive in commit order, so if the first (busy) insert had
// notified, its notification would come before the second's.
func TestWritersNotifyOnlyWhileRelayListens(t *testing.T) {
	d := testsupport.MigratedDatabase(t, migrations.Sender)
	ctx := context.Background()
	listener, err := pgx.Connect(ctx, d.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN transaction_outbox"); err != nil {
		t.Fatal(err)
	}
	setListening := func(on bool) {
		t.Helper()
		if _, err := d.Pool.Exec(ctx, "UPDATE outbox_relay_state SET listening = $1 WHERE channel = 'transaction_outbox'", on); err != nil {
			t.Fatal(err)
		}
	}
	setListening(false)
	insert(t, d.Pool, "busy", 1)
	setListening(true)
	wantID, _ := insert(t, d.Pool, "listening", 1)

	wctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil {
		t.Fatalf("no notification for the insert made while listening: %v", err)
	}
	// The one notification must be the second commit's: check that nothing
	// else is queued behind it and that the first was really committed.
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if extra, err := listener.WaitForNotification(short); err == nil {
		t.Fatalf("two notifications (%v, %v): the insert made while busy notified too", n, extra)
	}
	var first int64
	if err := d.Pool.QueryRow(ctx, "SELECT min(id) FROM transaction_outbox").Scan(&first); err != nil || first >= wantID {
		t.Fatalf("outbox rows: min id %d (err %v), want the busy insert before %d", first, err, wantID)
	}
}

// The leader turns listening off while it finds rows and on once idle.
func TestRelayTogglesListening(t *testing.T) {
	e := newEnv(t)
	r := e.relay(t, outbox.Config{PollInterval: time.Hour, IdleAfter: 50 * time.Millisecond})
	start(t, r)
	waitFor(t, "leadership", func() bool { return r.Stats().Leader })
	listening := func() bool {
		var on bool
		if err := e.db.Pool.QueryRow(context.Background(),
			"SELECT listening FROM outbox_relay_state WHERE channel = 'transaction_outbox'").Scan(&on); err != nil {
			t.Fatal(err)
		}
		return on
	}
	waitFor(t, "the idle relay to listen", listening)

	// A steady stream keeps it busy: listening goes off while events flow.
	stop := make(chan struct{})
	done := make(chan struct{})
	var last string
	go func() {
		defer close(done)
		for v := int64(1); ; v++ {
			select {
			case <-stop:
				return
			default:
			}
			_, last = insert(t, e.db.Pool, "stream", v)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitFor(t, "the busy relay to stop listening", func() bool { return !listening() })
	close(stop)
	<-done
	waitFor(t, "the last event of the stream", func() bool { return e.got.has(last) })
	waitFor(t, "the relay to listen again once idle", listening)
}
