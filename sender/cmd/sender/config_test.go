package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/settings"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

type bindable interface {
	bind(*settings.Set)
	validator
}

func parse(t *testing.T, cfg bindable, env map[string]string, args ...string) error {
	t.Helper()
	s := settings.New("test", "test")
	s.SetOutput(io.Discard)
	s.SetLookup(lookup(env))
	cfg.bind(s)
	if err := s.Parse(args); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg.Validate()
}

func TestDefaultsAreValid(t *testing.T) {
	var serve serveConfig
	if err := parse(t, &serve, nil); err != nil {
		t.Fatalf("serve defaults: %v", err)
	}
	if serve.DatabaseURL != defaultDatabaseURL || serve.HTTPAddr != "127.0.0.1:8080" || serve.MaxBodyBytes != 524288 {
		t.Fatalf("serve defaults = %+v", serve)
	}
	var relay relayConfig
	if err := parse(t, &relay, map[string]string{"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}); err != nil {
		t.Fatalf("relay defaults: %v", err)
	}
	if relay.Topic != "sci.invoice-history.v1" || relay.BatchSize != 500 || relay.PollInterval.String() != "1s" ||
		relay.TransactionTimeout.String() != "30s" || relay.TransactionalID != "" || relay.Kafka.Brokers[0] != "localhost:9092" {
		t.Fatalf("relay defaults = %+v", relay)
	}
	var migrate migrateConfig
	if err := parse(t, &migrate, nil); err != nil {
		t.Fatalf("migrate defaults: %v", err)
	}
}

func TestValidateNamesTheSettingAtFault(t *testing.T) {
	creds := map[string]string{"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
	tests := []struct {
		name string
		cfg  bindable
		env  map[string]string
		want string
	}{
		{"empty database url", &serveConfig{}, map[string]string{"SENDER_DATABASE_URL": ""}, "SENDER_DATABASE_URL"},
		{"bad database url", &serveConfig{}, map[string]string{"SENDER_DATABASE_URL": "postgres://u:pw@h:notaport/db"}, "SENDER_DATABASE_URL"},
		{"addr without port", &serveConfig{}, map[string]string{"SENDER_HTTP_ADDR": "localhost"}, "SENDER_HTTP_ADDR"},
		{"addr with bad port", &serveConfig{}, map[string]string{"SENDER_HTTP_ADDR": ":http-alt"}, "SENDER_HTTP_ADDR"},
		{"zero body limit", &serveConfig{}, map[string]string{"SENDER_MAX_BODY_BYTES": "0"}, "SENDER_MAX_BODY_BYTES"},
		{"huge body limit", &serveConfig{}, map[string]string{"SENDER_MAX_BODY_BYTES": "1000000000"}, "SENDER_MAX_BODY_BYTES"},
		{"short key ttl", &serveConfig{}, map[string]string{"SENDER_IDEMPOTENCY_KEY_TTL": "10s"}, "SENDER_IDEMPOTENCY_KEY_TTL"},
		{"bad log level", &migrateConfig{}, map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{"bad log format", &migrateConfig{}, map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT"},
		{"no kafka password", &relayConfig{}, map[string]string{"KAFKA_SASL_USERNAME": "u"}, "kafka sasl password"},
		{"no topic", &relayConfig{}, with(creds, "KAFKA_TOPIC", ""), "KAFKA_TOPIC"},
		{"bad topic", &relayConfig{}, with(creds, "KAFKA_TOPIC", "sci invoices"), "KAFKA_TOPIC"},
		{"zero batch", &relayConfig{}, with(creds, "RELAY_BATCH_SIZE", "0"), "RELAY_BATCH_SIZE"},
		{"tiny message limit", &relayConfig{}, with(creds, "RELAY_MAX_MESSAGE_BYTES", "10"), "RELAY_MAX_MESSAGE_BYTES"},
		{"zero poll interval", &relayConfig{}, with(creds, "RELAY_POLL_INTERVAL", "0s"), "RELAY_POLL_INTERVAL"},
		{"zero busy poll interval", &relayConfig{}, with(creds, "RELAY_BUSY_POLL_INTERVAL", "0s"), "RELAY_BUSY_POLL_INTERVAL"},
		{"slow busy poll interval", &relayConfig{}, with(creds, "RELAY_BUSY_POLL_INTERVAL", "2s"), "RELAY_BUSY_POLL_INTERVAL"},
		{"huge message limit", &relayConfig{}, with(creds, "RELAY_MAX_MESSAGE_BYTES", "1000000000"), "RELAY_MAX_MESSAGE_BYTES"},
		{"bad transactional id", &relayConfig{}, with(creds, "RELAY_TRANSACTIONAL_ID", "sci relay"), "RELAY_TRANSACTIONAL_ID"},
		{"short transaction timeout", &relayConfig{}, with(creds, "RELAY_TRANSACTION_TIMEOUT", "5s"), "RELAY_TRANSACTION_TIMEOUT"},
		{"zero step-down bound", &relayConfig{}, with(creds, "RELAY_STEP_DOWN_AFTER", "0s"), "RELAY_STEP_DOWN_AFTER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := parse(t, tt.cfg, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Fatalf("Validate leaked the password: %v", err)
			}
		})
	}
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for mk, mv := range m {
		if mk != k {
			out[mk] = mv
		}
	}
	return out
}

func TestFlagOverridesEnvironment(t *testing.T) {
	var cfg serveConfig
	if err := parse(t, &cfg, map[string]string{"SENDER_HTTP_ADDR": ":1"}, "--http-addr", ":2"); err != nil || cfg.HTTPAddr != ":2" {
		t.Fatalf("HTTPAddr = %q (%v), want the flag's :2", cfg.HTTPAddr, err)
	}
}

func TestLoggedConfigMasksSecrets(t *testing.T) {
	var cfg relayConfig
	env := map[string]string{"SENDER_DATABASE_URL": "postgres://u:dbsecret@h:5432/d",
		"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "kafkasecret"}
	if err := parse(t, &cfg, env); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	log.Info().Object("config", &cfg).Msg("starting")
	out := buf.String()
	if strings.Contains(out, "dbsecret") || strings.Contains(out, "kafkasecret") || !strings.Contains(out, "****") {
		t.Fatalf("logged config %s: secrets not masked", out)
	}
	if !strings.Contains(out, "sci.invoice-history.v1") || !strings.Contains(out, "h:5432") {
		t.Fatalf("logged config %s lacks settings", out)
	}
}
