package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// unreachable is a PostgreSQL URL nothing listens on.
const unreachable = "postgres://invoicesync:topsecret@127.0.0.1:1/nowhere"

// Verify names the database at fault, and the command that fixes an
// unmigrated one, without printing a password.
func TestVerifyNamesTheDatabaseAtFault(t *testing.T) {
	migrated := testsupport.MigratedDatabase(t, migrations.Sender).URL
	receiver := testsupport.MigratedDatabase(t, migrations.Receiver).URL
	empty := testsupport.NewDatabase(t).URL
	tests := []struct {
		name, sender, receiver string
		want                   []string
	}{
		{"sender unreachable", unreachable, receiver, []string{"sender database", "unreachable"}},
		{"receiver unreachable", migrated, unreachable, []string{"receiver database", "unreachable"}},
		{"sender not migrated", empty, receiver, []string{"sender database", `"sender migrate"`}},
		{"receiver not migrated", migrated, empty, []string{"receiver database", `"receiver migrate"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, out := testCLI(map[string]string{"SENDER_DATABASE_URL": tt.sender, "RECEIVER_DATABASE_URL": tt.receiver})
			err := c.run(context.Background(), []string{"verify", "--grace", "0"})
			if err == nil {
				t.Fatal("verify succeeded")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error()+out.String(), "topsecret") {
				t.Errorf("a password was printed: %v\n%s", err, out)
			}
		})
	}
}

func TestNewCommandsCheckTheirSettings(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"seed"}, nil, "-n"},
		{[]string{"seed", "-n", "10", "--batch", "0"}, nil, "--batch"},
		{[]string{"backfill", "--rate", "-1"}, nil, "BACKFILL_RATE"},
		{[]string{"backfill"}, map[string]string{"BACKFILL_BATCH_SIZE": "0"}, "BACKFILL_BATCH_SIZE"},
		{[]string{"verify"}, map[string]string{"RECEIVER_TIMEZONE": "Mars/Olympus"}, "RECEIVER_TIMEZONE"},
		{[]string{"verify", "--chunk", "0"}, nil, "VERIFY_CHUNK_SIZE"},
	}
	for _, tt := range tests {
		env := map[string]string{}
		for k, v := range tt.env {
			env[k] = v
		}
		c, _ := testCLI(env)
		err := c.run(context.Background(), tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v = %v, want an error naming %s", tt.args, err, tt.want)
		}
	}
	c, out := testCLI(map[string]string{})
	if err := c.run(context.Background(), []string{"help"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"seed", "backfill", "verify"} {
		if !strings.Contains(out.String(), "  "+name+" ") {
			t.Errorf("help does not list %s:\n%s", name, out)
		}
	}
}

// The commands end to end on one database pair, without a relay: seed,
// dry run, backfill, backfill again; verify counts the unpublished events
// as in flight, and once they are gone (lost, here) reports them missing
// with the error that makes the exit status 1.
func TestSeedBackfillVerifyCommands(t *testing.T) {
	sender := testsupport.MigratedDatabase(t, migrations.Sender)
	receiver := testsupport.MigratedDatabase(t, migrations.Receiver)
	env := func() map[string]string {
		return map[string]string{"SENDER_DATABASE_URL": sender.URL, "RECEIVER_DATABASE_URL": receiver.URL}
	}
	run := func(args ...string) (string, error) {
		c, out := testCLI(env())
		err := c.run(context.Background(), args)
		return out.String(), err
	}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"seed", "-n", "600", "--batch", "250"}, `"histories":600`},
		{[]string{"backfill", "--dry-run"}, "600 histories after id 0 would be scanned, 600 enqueued"},
		{[]string{"backfill", "--batch", "100"}, "600 histories scanned, 600 enqueued"},
		{[]string{"backfill"}, "0 histories scanned, 0 enqueued"},
		{[]string{"verify", "--grace", "0"}, "OK: the receiver holds exactly what it should"},
	}
	for _, s := range steps {
		out, err := run(s.args...)
		if err != nil || !strings.Contains(out, s.want) {
			t.Fatalf("%v = %v; want output with %q:\n%s", s.args, err, s.want, out)
		}
	}
	if _, err := sender.Pool.Exec(context.Background(), "DELETE FROM transaction_outbox"); err != nil {
		t.Fatal(err)
	}
	out, err := run("verify", "--grace", "0", "--json", "--list-limit", "3")
	var uerr *usageError
	if !errors.Is(err, errDifferent) || errors.As(err, &uerr) {
		t.Fatalf("verify with histories missing = %v, want errDifferent (exit 1)", err)
	}
	var rep struct {
		OK      bool
		Missing struct {
			Count int
			IDs   []int64
		}
	}
	start := strings.Index(out, "{\n  \"ok\"")
	if start < 0 {
		t.Fatalf("no JSON report in the output:\n%s", out)
	}
	report := out[start:]
	if err := json.Unmarshal([]byte(report[:strings.Index(report, "\n}\n")+3]), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, out)
	}
	if rep.OK || rep.Missing.Count < 500 || len(rep.Missing.IDs) != 3 {
		t.Fatalf("report %+v, want the non-ERROR histories missing (3 ids listed)", rep)
	}
}

// A legacy history that cannot form a valid event (edited outside the API:
// a file name over the limit) is not published by backfill: the summary
// counts it as rejected and the others go through.
func TestBackfillCommandReportsRejectedHistories(t *testing.T) {
	sender := testsupport.MigratedDatabase(t, migrations.Sender)
	receiver := testsupport.MigratedDatabase(t, migrations.Receiver)
	env := map[string]string{"SENDER_DATABASE_URL": sender.URL, "RECEIVER_DATABASE_URL": receiver.URL}
	run := func(args ...string) string {
		t.Helper()
		c, out := testCLI(env)
		if err := c.run(context.Background(), args); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out.String()
	}
	run("seed", "-n", "10")
	if _, err := sender.Pool.Exec(context.Background(), `UPDATE send_invoice_history_form SET file_name = repeat('x', 300)
		WHERE history_id = (SELECT min(id) FROM send_invoice_history)`); err != nil {
		t.Fatal(err)
	}
	if out := run("backfill", "--dry-run"); !strings.Contains(out, "9 enqueued, 1 rejected") {
		t.Fatalf("dry run = %q, want 9 enqueued and 1 rejected", out)
	}
	if out := run("backfill"); !strings.Contains(out, "10 histories scanned, 9 enqueued, 1 rejected") {
		t.Fatalf("backfill = %q, want 10 scanned, 9 enqueued and 1 rejected", out)
	}
	var n int
	if err := sender.Pool.QueryRow(context.Background(), "SELECT count(*) FROM transaction_outbox").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 9 {
		t.Fatalf("outbox holds %d events, want the 9 valid histories", n)
	}
}
