package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/invoicesync/invoicesync/bench/internal/latency"
)

// headline are the top-level fields the lead's tooling reads.
var headline = []string{"limit_eps", "sustained_eps", "p99_ms_at_1000_eps", "p99_ms_at_3000_eps",
	"peer_sustained_eps", "peer_p99_ms_at_1000_eps", "bulk_eps", "live_p99_ms_during_bulk",
	"undelivered", "machine", "steps"}

func step(series string, rate, p99 float64, ok bool, undelivered int64) Step {
	return Step{Series: series, OfferedEPS: rate, Sustained: ok, Undelivered: undelivered,
		Latency: latency.Summary{Count: 10, P50: p99 / 4, P99: p99, P999: p99 * 2}}
}

func sample() *Result {
	r := &Result{Profile: "quick", Mode: "go", Writers: 32,
		Machine: Machine{Cores: 2, PostgresVersion: "15.8", BrokerKind: "devkafka"},
		Limit:   &Limit{Commits: 40000, EPS: 4000, DurationS: 10},
		Steps: []Step{
			step(SeriesLive, 500, 20, true, 0), step(SeriesLive, 1000, 30, true, 0), step(SeriesLive, 3000, 1500, false, 7),
			step(SeriesPeer, 500, 200, true, 0), step(SeriesPeer, 1000, 2500, false, 0),
		},
		Bulk: &Bulk{Histories: 1000, Applied: 1000, EPS: 2000, Live: step(SeriesLive, 500, 45, true, 0)},
	}
	r.Finalize()
	return r
}

func TestFinalize(t *testing.T) {
	r := sample()
	eq := func(name string, got *float64, want float64) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("%s = %v, want %v", name, deref(got), want)
		}
	}
	eq("limit", r.LimitEPS, 4000)
	eq("sustained", r.SustainedEPS, 1000)
	eq("p99@1000", r.P99MsAt1000EPS, 30)
	eq("p99@3000", r.P99MsAt3000EPS, 1500)
	eq("peer sustained", r.PeerSustainedEPS, 500)
	eq("peer p99@1000", r.PeerP99MsAt1000EPS, 2500)
	eq("bulk", r.BulkEPS, 2000)
	eq("live p99 during bulk", r.LiveP99MsDuringBulk, 45)
	eq("sustained/limit", r.Ratios.SustainedVsLimit, 0.25)
	eq("sustained/peer", r.Ratios.SustainedVsPeer, 2)
	eq("peer p99/ours", r.Ratios.PeerP99VsOursAt1000, 83.333)
	if r.Undelivered != 7 {
		t.Errorf("undelivered = %d, want 7", r.Undelivered)
	}
}

func TestFinalizeMissingParts(t *testing.T) {
	r := &Result{Steps: []Step{step(SeriesLive, 500, 2000, false, 0)},
		Bulk: &Bulk{Histories: 100, Applied: 90}}
	r.Finalize()
	if r.SustainedEPS == nil || *r.SustainedEPS != 0 {
		t.Errorf("a measured series with no sustained step: sustained = %v, want 0", deref(r.SustainedEPS))
	}
	if r.LimitEPS != nil || r.PeerSustainedEPS != nil || r.Ratios.SustainedVsLimit != nil {
		t.Errorf("unmeasured numbers must be null: %+v", r)
	}
	if r.Undelivered != 10 {
		t.Errorf("undelivered = %d, want the 10 bulk histories never applied", r.Undelivered)
	}
}

func TestJSONShape(t *testing.T) {
	for _, r := range []*Result{sample(), {}} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range headline {
			if _, ok := m[k]; !ok {
				t.Errorf("JSON lacks top-level %q", k)
			}
		}
		var machine map[string]json.RawMessage
		_ = json.Unmarshal(m["machine"], &machine)
		for _, k := range []string{"cores", "memory_bytes", "go_version", "postgres_version", "broker_kind"} {
			if _, ok := machine[k]; !ok {
				t.Errorf("machine lacks %q", k)
			}
		}
	}
	b, _ := json.Marshal(sample())
	var back struct {
		Steps []map[string]json.RawMessage `json:"steps"`
	}
	_ = json.Unmarshal(b, &back)
	for _, k := range []string{"offered_eps", "achieved_eps", "latency", "cpu_s_per_1k_events", "samples", "undelivered", "sustained"} {
		if _, ok := back.Steps[0][k]; !ok {
			t.Errorf("step row lacks %q", k)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	if err := sample().WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"latest.json", "latest.md", "latest.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %v (%d bytes)", name, err, len(b))
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "latest.md"))
	for _, want := range []string{"| sustained live rate (events/s) | 1000 | 0.25 | 2.00 |", "## peer steps", "no: "} {
		if !strings.Contains(string(md), want) {
			t.Errorf("latest.md lacks %q:\n%s", want, md)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
