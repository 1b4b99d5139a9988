package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = testsupport.SyncBuffer

// invoke runs the command with args and exactly the environment env.
func invoke(ctx context.Context, env map[string]string, args ...string) (stdout, stderr *syncBuffer, err error) {
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	a := newApp(stdout, stderr, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return stdout, stderr, a.run(ctx, args)
}

// A command line that cannot run is a usage error (main exits 2, as the
// sender does) naming what is wrong.
func TestCommandLineErrorsAreUsageErrors(t *testing.T) {
	for args, want := range map[string]string{
		"":                   "no subcommand",
		"bogus":              `unknown subcommand "bogus"`,
		"serve --nope":       "nope",
		"migrate stray":      "stray",
		"healthcheck --nope": "nope",
		"dlq":                "no dlq subcommand",
		"dlq bogus":          `unknown dlq subcommand "bogus"`,
		"dlq list --nope":    "nope",
		"dlq show":           "no entry id",
	} {
		_, _, err := invoke(context.Background(), map[string]string{"RECEIVER_DATABASE_URL": "postgres://u@127.0.0.1:1/db", "KAFKA_TOPIC": "t",
			"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, strings.Fields(args)...)
		var uerr *usageError
		if !errors.As(err, &uerr) || !strings.Contains(err.Error(), want) {
			t.Errorf("receiver %s = %v, want a usage error containing %q", args, err, want)
		}
	}
}

func TestHelp(t *testing.T) {
	for args, want := range map[string][]string{
		"help":   {"serve", "migrate"},
		"--help": {"serve", "migrate"},
		"serve --help": {"RECEIVER_DATABASE_URL", "RECEIVER_HTTP_ADDR", "KAFKA_TOPIC", "RECEIVER_GROUP_ID", "RECEIVER_TIMEZONE", "KAFKA_SASL_USERNAME", "LOG_LEVEL",
			"RECEIVER_DLQ_TOPIC", "RECEIVER_BATCH_SIZE", "RECEIVER_LEDGER_RETENTION", "RECEIVER_LEDGER_CLEANUP_INTERVAL", "168h", "10m", "500"},
		"migrate -h": {"RECEIVER_DATABASE_URL", "LOG_FORMAT"},
	} {
		out, _, err := invoke(context.Background(), nil, strings.Fields(args)...)
		if err != nil {
			t.Errorf("receiver %s = %v, want success", args, err)
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("receiver %s does not mention %s:\n%s", args, w, out)
			}
		}
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	valid := map[string]string{"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
	cases := map[string]struct {
		env  map[string]string
		want string
	}{
		"no kafka user":  {map[string]string{}, "kafka sasl username"},
		"bad timezone":   {map[string]string{"RECEIVER_TIMEZONE": "Mars/Olympus"}, "RECEIVER_TIMEZONE"},
		"bad http addr":  {map[string]string{"RECEIVER_HTTP_ADDR": "8081"}, "RECEIVER_HTTP_ADDR"},
		"empty topic":    {map[string]string{"KAFKA_TOPIC": ""}, "KAFKA_TOPIC"},
		"bad log level":  {map[string]string{"LOG_LEVEL": "loud"}, "log level"},
		"unparsable env": {map[string]string{"KAFKA_TLS": "maybe"}, "KAFKA_TLS"},
		"dlq is topic":   {map[string]string{"KAFKA_TOPIC": "t", "RECEIVER_DLQ_TOPIC": "t"}, "RECEIVER_DLQ_TOPIC"},
		"zero batch":     {map[string]string{"RECEIVER_BATCH_SIZE": "0"}, "RECEIVER_BATCH_SIZE"},
		"zero linger":    {map[string]string{"RECEIVER_BATCH_LINGER": "0s"}, "RECEIVER_BATCH_LINGER"},
		"long linger":    {map[string]string{"RECEIVER_BATCH_LINGER": "5s"}, "RECEIVER_BATCH_LINGER"},
		"no retention":   {map[string]string{"RECEIVER_LEDGER_RETENTION": "-1h"}, "RECEIVER_LEDGER_RETENTION"},
		"no cleanup":     {map[string]string{"RECEIVER_LEDGER_CLEANUP_INTERVAL": "0s"}, "RECEIVER_LEDGER_CLEANUP_INTERVAL"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{}
			if name != "no kafka user" {
				for k, v := range valid {
					env[k] = v
				}
			}
			for k, v := range tc.env {
				env[k] = v
			}
			_, _, err := invoke(context.Background(), env, "serve")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// A stop signal that comes while serve is still starting ends it cleanly;
// migrate cut short the same way fails.
func TestStopSignalWhileStarting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := map[string]string{"RECEIVER_DATABASE_URL": "postgres://u:p@127.0.0.1:1/db",
		"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p", "LOG_FORMAT": "json"}
	var stopped *stoppedWhileStarting
	if _, _, err := invoke(ctx, env, "serve"); !errors.As(err, &stopped) {
		t.Errorf("serve stopped while starting = %v, want a clean stop", err)
	}
	if _, _, err := invoke(ctx, env, "migrate"); err == nil || errors.As(err, &stopped) {
		t.Errorf("migrate stopped while starting = %v, want a failure", err)
	}
}
