package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// failEnv is the environment of a dlq command on a migrated database and
// the test broker, with over applied.
func failEnv(t *testing.T, k *testsupport.Kafka, over map[string]string) map[string]string {
	t.Helper()
	d := testsupport.MigratedDatabase(t, migrations.Receiver)
	env := map[string]string{
		"RECEIVER_DATABASE_URL": d.URL, "LOG_FORMAT": "json", "KAFKA_TOPIC": "events",
		"KAFKA_BROKERS": strings.Join(k.Config.Brokers, ","), "KAFKA_SASL_MECHANISM": k.Config.Mechanism,
		"KAFKA_SASL_USERNAME": k.Config.Username, "KAFKA_SASL_PASSWORD": k.Config.Password,
	}
	for key, v := range over {
		env[key] = v
	}
	return env
}

// Wrong credentials and a missing dead-letter topic fail at once, with
// errors that name what to fix.
func TestDlqFailsClearlyOnWrongCredentialsAndMissingTopic(t *testing.T) {
	k := testsupport.NewKafka(t)
	for name, tc := range map[string]struct {
		over map[string]string
		want []string
	}{
		"wrong password": {map[string]string{"KAFKA_SASL_PASSWORD": "not-the-password"},
			[]string{"authentication failed", k.Config.Brokers[0], k.Config.Username, k.Config.Mechanism}},
		"missing topic": {map[string]string{"RECEIVER_DLQ_TOPIC": "no-such-dlq"},
			[]string{"RECEIVER_DLQ_TOPIC", "no-such-dlq", "does not exist"}},
	} {
		t.Run(name, func(t *testing.T) {
			env := failEnv(t, k, tc.over)
			start := time.Now()
			_, _, err := invoke(context.Background(), env, "dlq", "list")
			took := time.Since(start)
			if err == nil {
				t.Fatal("dlq list succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "not-the-password") {
				t.Errorf("error leaks the password: %v", err)
			}
			t.Logf("failed in %v: %v", took.Round(time.Millisecond), err)
		})
	}
}

// Against a listener that accepts TCP and never answers, a dlq command
// fails after KAFKA_DIAL_TIMEOUT naming the broker, and an interrupt (the
// context main cancels on SIGTERM) ends it at once whatever the timeout.
func TestDlqSilentBrokerTimesOutAndGivesWayToInterrupt(t *testing.T) {
	k := testsupport.NewKafka(t)
	addr := testsupport.NewSilentListener(t).Addr()
	env := failEnv(t, k, map[string]string{"KAFKA_BROKERS": addr, "KAFKA_DIAL_TIMEOUT": "1s"})
	start := time.Now()
	_, _, err := invoke(context.Background(), env, "dlq", "list")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "KAFKA_DIAL_TIMEOUT") {
		t.Fatalf("dlq list against a silent broker = %v, want an error naming %s and KAFKA_DIAL_TIMEOUT", err, addr)
	}
	if errors.Is(err, kafkasec.ErrAuthentication) {
		t.Errorf("a silent broker reported as an authentication failure: %v", err)
	}
	t.Logf("failed in %v: %v", took.Round(time.Millisecond), err)
	if took > 10*time.Second {
		t.Errorf("took %v with a 1s dial timeout", took)
	}

	env["KAFKA_DIAL_TIMEOUT"] = "1m"
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	start = time.Now()
	_, _, err = invoke(ctx, env, "dlq", "replay", "--all", "--yes")
	took = time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted dlq replay = %v, want context.Canceled", err)
	}
	t.Logf("interrupted after 500ms, returned after %v", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("an interrupt took %v to end a dlq command waiting on a silent broker", took)
	}
}
