package main

import (
	"reflect"
	"testing"
)

func TestParseRates(t *testing.T) {
	got, err := parseRates(" 500, 1000,,3000 ")
	if err != nil || !reflect.DeepEqual(got, []float64{500, 1000, 3000}) {
		t.Fatalf("parseRates = %v, %v", got, err)
	}
	for _, bad := range []string{"fast", "100,-5", "0"} {
		if _, err := parseRates(bad); err == nil {
			t.Errorf("parseRates(%q): no error", bad)
		}
	}
}

func TestPresetsAreComplete(t *testing.T) {
	for name, p := range presets {
		if _, err := parseRates(p.rates); err != nil {
			t.Errorf("%s: rates: %v", name, err)
		}
		if _, err := parseRates(p.peerRates); err != nil {
			t.Errorf("%s: peer rates: %v", name, err)
		}
		if p.step <= 0 || p.drain <= 0 || p.limit <= 0 || p.sample <= 0 || p.bulkTimeout <= 0 || p.bulkHistories <= 0 {
			t.Errorf("%s: a zero duration or size: %+v", name, p)
		}
	}
	// The quick run reports the headline rates: they must be in its series.
	q, _ := parseRates(presets["quick"].rates)
	if !reflect.DeepEqual(q, []float64{500, 1000, 3000}) {
		t.Errorf("quick rates = %v", q)
	}
}

func TestRunConfigRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(*config)
	}{
		{"unknown preset", func(c *config) { c.Preset = "huge" }},
		{"bad mode", func(c *config) { c.Mode = "grpc" }},
		{"no writers", func(c *config) { c.Writers = 0 }},
		{"bad rates", func(c *config) { c.Rates = "x" }},
		{"bad bulk rate", func(c *config) { c.bulkLiveRate = "-1" }},
		{"service env without value", func(c *config) { c.ServiceEnv = "RELAY_BATCH_SIZE" }},
		{"service env not ours", func(c *config) { c.ServiceEnv = "RELAY_BATCH_SIZE=10,PATH=/tmp" }},
		{"service env for the broker", func(c *config) { c.ServiceEnv = "KAFKA_BROKERS=elsewhere:9092" }},
	}
	for _, tt := range tests {
		c := config{Preset: "quick", Mode: "go", Writers: 32, Partitions: 6, BulkHistories: -1,
			bulkLiveRate: "500", profileRate: "0", BinDir: t.TempDir()}
		tt.change(&c)
		if _, err := c.runConfig(); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestParseServiceEnv(t *testing.T) {
	got, err := parseServiceEnv(" RELAY_BUSY_POLL_INTERVAL=5ms, BACKFILL_RATE=2000 ,")
	if err != nil || len(got) != 2 || got[0] != "RELAY_BUSY_POLL_INTERVAL=5ms" || got[1] != "BACKFILL_RATE=2000" {
		t.Fatalf("parseServiceEnv = %q, %v", got, err)
	}
}
