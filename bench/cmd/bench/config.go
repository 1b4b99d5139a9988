package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/invoicesync/invoicesync/bench/internal/run"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/settings"
)

// preset is the defaults of a named run size.
type preset struct {
	rates, peerRates                          string
	step, drain, recovery, limit, bulkTimeout time.Duration
	sample                                    time.Duration
	bulkHistories                             int
}

// presets: quick fits in under 3 minutes with the build; full is the series
// of the real measurement (on a quiet machine).
var presets = map[string]preset{
	"quick": {rates: "500,1000,3000", peerRates: "500,1000", step: 10 * time.Second, drain: 8 * time.Second,
		recovery: 10 * time.Second, limit: 8 * time.Second, bulkTimeout: 30 * time.Second, sample: 250 * time.Millisecond,
		bulkHistories: 10000},
	"full": {rates: "250,500,1000,1500,2000,3000,4000,5000,6000", peerRates: "250,500,1000,1500,2000,3000",
		step: 30 * time.Second, drain: 30 * time.Second, recovery: time.Minute, limit: 30 * time.Second,
		bulkTimeout: 10 * time.Minute, sample: 500 * time.Millisecond, bulkHistories: 200000},
}

// config is the command line of "bench run".
type config struct {
	Preset                                     string
	Rates, PeerRates                           string
	Step, Drain, Recovery, Limit, BulkTimeout  time.Duration
	Sample                                     time.Duration
	Writers, WriterConns, BulkHistories        int
	Partitions                                 int
	BulkLiveRate, ProfileRate                  float64
	Mode, DatabaseURL, BinDir, OutDir, WorkDir string
	PeerPollInterval                           time.Duration
	ServiceLogLevel                            string
	ServiceEnv                                 string
	KafkaBrokers, KafkaMechanism, KafkaUser    string
	KafkaPassword, KafkaCAFile                 string
	KafkaTLS                                   bool
	bulkLiveRate, profileRate                  string
}

func (c *config) bind(s *settings.Set) {
	s.String(&c.Preset, "preset", "BENCH_PRESET", "full", "run size: quick (< 3 min) or full; sets the defaults below marked (preset)")
	s.String(&c.Rates, "rates", "BENCH_RATES", "", "offered live rates, events/s, comma-separated (preset)")
	s.String(&c.PeerRates, "peer-rates", "BENCH_PEER_RATES", "", `offered rates of the watermill peer; "none" skips it (preset)`)
	s.Duration(&c.Step, "step", "BENCH_STEP", 0, "how long each rate is offered (preset)")
	s.Duration(&c.Drain, "drain-timeout", "BENCH_DRAIN_TIMEOUT", 0, "how long the receiver may take to catch up after a step (preset)")
	s.Duration(&c.Recovery, "recovery-timeout", "BENCH_RECOVERY_TIMEOUT", 0, "more unmeasured catch-up time before the next step (preset)")
	s.Duration(&c.Limit, "limit-duration", "BENCH_LIMIT_DURATION", 0, "how long the PostgreSQL-only limit runs; negative skips it (preset)")
	s.Duration(&c.BulkTimeout, "bulk-timeout", "BENCH_BULK_TIMEOUT", 0, "bound of the bulk phase (preset)")
	s.Duration(&c.Sample, "sample-interval", "BENCH_SAMPLE_INTERVAL", 0, "how often backlog and lag are sampled (preset)")
	s.Int(&c.BulkHistories, "bulk-histories", "BENCH_BULK_HISTORIES", -1, "histories backfilled in the bulk phase; 0 skips it (preset)")
	s.Int(&c.Writers, "writers", "BENCH_WRITERS", 32, "concurrent writers")
	s.Int(&c.WriterConns, "writer-conns", "BENCH_WRITER_CONNS", 0,
		"PostgreSQL connections the writers share, as an app's pool would (0: 4 per core)")
	s.Int(&c.Partitions, "partitions", "BENCH_PARTITIONS", 6, "partitions of each topic")
	s.String(&c.bulkLiveRate, "bulk-live-rate", "BENCH_BULK_LIVE_RATE", "500", "live events/s offered during the bulk")
	s.String(&c.profileRate, "profile-rate", "BENCH_PROFILE_RATE", "0",
		"profile every process during the live step at this rate (builds pprof-enabled binaries; 0: off)")
	s.String(&c.Mode, "mode", "BENCH_MODE", "go", "live write path: go (history.Record) or http (sender serve)")
	s.String(&c.DatabaseURL, "database-url", "BENCH_DATABASE_URL", "postgres://invoicesync:invoicesync@127.0.0.1:5432/postgres",
		"PostgreSQL admin URL (a role that may create databases); scratch databases bench_<run>_* are created and dropped")
	s.String(&c.BinDir, "bin-dir", "BENCH_BIN_DIR", "bin", "directory of sender, receiver, devkafka (make build)")
	s.String(&c.OutDir, "out", "BENCH_OUT", "bench/out", "where latest.json, latest.md and latest.svg go")
	s.String(&c.WorkDir, "work-dir", "BENCH_WORK_DIR", "bench/out/run.tmp", "where logs and profiles of the run go (git-ignored)")
	s.Duration(&c.PeerPollInterval, "peer-poll-interval", "BENCH_PEER_POLL_INTERVAL", 10*time.Millisecond,
		"watermill-sql subscriber poll interval of the peer (watermill's default: 1s)")
	s.String(&c.ServiceLogLevel, "service-log-level", "BENCH_SERVICE_LOG_LEVEL", "info", "LOG_LEVEL of relay, receiver, API")
	s.String(&c.ServiceEnv, "service-env", "BENCH_SERVICE_ENV", "",
		"settings of the project's processes, NAME=value,... (e.g. RELAY_BUSY_POLL_INTERVAL=5ms,BACKFILL_RATE=2000): "+
			"the benchmark does not pass its own environment's")
	s.String(&c.KafkaBrokers, "kafka-brokers", "BENCH_KAFKA_BROKERS", "", "an external Kafka cluster (host:port,...); empty starts bin/devkafka")
	s.String(&c.KafkaMechanism, "kafka-sasl-mechanism", "BENCH_KAFKA_SASL_MECHANISM", kafkasec.MechanismSCRAMSHA512,
		"SASL mechanism of the external cluster: SCRAM-SHA-512, SCRAM-SHA-256 or empty")
	s.String(&c.KafkaUser, "kafka-sasl-username", "BENCH_KAFKA_SASL_USERNAME", "", "SCRAM user of the external cluster")
	s.Secret(&c.KafkaPassword, "kafka-sasl-password", "BENCH_KAFKA_SASL_PASSWORD", "SCRAM password of the external cluster")
	s.Bool(&c.KafkaTLS, "kafka-tls", "BENCH_KAFKA_TLS", false, "TLS to the external cluster")
	s.String(&c.KafkaCAFile, "kafka-tls-ca-file", "BENCH_KAFKA_TLS_CA_FILE", "", "PEM CA of the external cluster")
}

// runConfig validates c, fills the preset's defaults and returns the runner's configuration.
func (c *config) runConfig() (run.Config, error) {
	p, ok := presets[c.Preset]
	if !ok {
		return run.Config{}, fmt.Errorf("--preset: %q is not quick or full", c.Preset)
	}
	or := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	or(&c.Step, p.step)
	or(&c.Drain, p.drain)
	or(&c.Recovery, p.recovery)
	or(&c.Limit, p.limit)
	or(&c.BulkTimeout, p.bulkTimeout)
	or(&c.Sample, p.sample)
	if c.BulkHistories < 0 {
		c.BulkHistories = p.bulkHistories
	}
	if c.Rates == "" {
		c.Rates = p.rates
	}
	if c.PeerRates == "" {
		c.PeerRates = p.peerRates
	}
	rates, err := parseRates(c.Rates)
	if err != nil || len(rates) == 0 {
		return run.Config{}, fmt.Errorf("--rates: %q: want positive numbers, comma-separated", c.Rates)
	}
	var peerRates []float64
	if c.PeerRates != "none" {
		if peerRates, err = parseRates(c.PeerRates); err != nil {
			return run.Config{}, fmt.Errorf("--peer-rates: %w", err)
		}
	}
	bulkLive, err := strconv.ParseFloat(c.bulkLiveRate, 64)
	if err != nil || bulkLive <= 0 {
		return run.Config{}, fmt.Errorf("--bulk-live-rate: %q is not a positive number", c.bulkLiveRate)
	}
	profileRate, err := strconv.ParseFloat(c.profileRate, 64)
	if err != nil || profileRate < 0 {
		return run.Config{}, fmt.Errorf("--profile-rate: %q is not a number >= 0", c.profileRate)
	}
	switch {
	case c.Mode != "go" && c.Mode != "http":
		return run.Config{}, fmt.Errorf("--mode: %q is not go or http", c.Mode)
	case c.Writers < 1 || c.Writers > 512:
		return run.Config{}, fmt.Errorf("--writers: %d is not between 1 and 512", c.Writers)
	case c.WriterConns < 0 || c.WriterConns > 512:
		return run.Config{}, fmt.Errorf("--writer-conns: %d is not between 0 and 512", c.WriterConns)
	case c.Partitions < 1:
		return run.Config{}, fmt.Errorf("--partitions: must be positive, got %d", c.Partitions)
	case c.Step < time.Second:
		return run.Config{}, fmt.Errorf("--step: at least 1s, got %v", c.Step)
	case c.Sample <= 0 || c.Drain <= 0 || c.Recovery < 0 || c.BulkTimeout <= 0:
		return run.Config{}, errors.New("--sample-interval, --drain-timeout, --bulk-timeout must be positive, --recovery-timeout not negative")
	}
	if c.WriterConns == 0 {
		c.WriterConns = min(4*runtime.NumCPU(), c.Writers)
	}
	serviceEnv, err := parseServiceEnv(c.ServiceEnv)
	if err != nil {
		return run.Config{}, err
	}
	if c.Limit < 0 {
		c.Limit = 0
	}
	self, err := os.Executable()
	if err != nil {
		return run.Config{}, fmt.Errorf("locate this binary: %w", err)
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	rc := run.Config{Profile: c.Preset, Mode: c.Mode, Rates: rates, PeerRates: peerRates, StepDuration: c.Step,
		DrainTimeout: c.Drain, RecoveryTimeout: c.Recovery, LimitDuration: c.Limit, Writers: c.Writers,
		WriterConns:   c.WriterConns,
		BulkHistories: c.BulkHistories, BulkLiveRate: bulkLive, BulkTimeout: c.BulkTimeout, Partitions: c.Partitions,
		SampleInterval: c.Sample, AdminURL: c.DatabaseURL, BinDir: abs(c.BinDir), OutDir: abs(c.OutDir),
		WorkDir: abs(c.WorkDir), ProfileRate: profileRate, PeerPollInterval: c.PeerPollInterval, SelfExe: self,
		ServiceLogLevel: c.ServiceLogLevel, ServiceEnv: serviceEnv}
	if c.KafkaBrokers != "" {
		rc.Kafka = kafkasec.Config{Brokers: kafkasec.ParseBrokers(c.KafkaBrokers), Mechanism: c.KafkaMechanism,
			Username: c.KafkaUser, Password: c.KafkaPassword, TLS: c.KafkaTLS, CAFile: c.KafkaCAFile}
		rc.Kafka.SetDefaults()
		if err := rc.Kafka.Validate(); err != nil {
			return run.Config{}, fmt.Errorf("--kafka-* settings: %w", err)
		}
	}
	for _, bin := range []string{"sender", "receiver", "devkafka"} {
		if _, err := os.Stat(filepath.Join(rc.BinDir, bin)); err != nil {
			return run.Config{}, fmt.Errorf("--bin-dir: %s is missing: run make build", filepath.Join(rc.BinDir, bin))
		}
	}
	return rc, nil
}

// parseRates parses "500,1000,3000".
func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive rate", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// serviceVarRE is a setting of the project's processes.
var serviceVarRE = regexp.MustCompile(`^(SENDER|RELAY|RECEIVER|BACKFILL)_[A-Z0-9_]+$`)

// parseServiceEnv parses --service-env: NAME=value pairs, comma-separated,
// each naming a setting of the sender, relay, receiver or backfill.
func parseServiceEnv(s string) ([]string, error) {
	var out []string
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		name, _, ok := strings.Cut(kv, "=")
		if !ok || !serviceVarRE.MatchString(name) {
			return nil, fmt.Errorf("--service-env: %q is not NAME=value with a SENDER_, RELAY_, RECEIVER_ or BACKFILL_ name", kv)
		}
		out = append(out, kv)
	}
	return out, nil
}
