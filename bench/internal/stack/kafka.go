package stack

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
)

// Kafka is the broker of a run: the embedded one (bin/devkafka, a child
// process) or an external cluster.
type Kafka struct {
	// Config reaches the broker.
	Config kafkasec.Config
	// Kind describes the broker for the report.
	Kind string
	// Proc is the embedded broker, nil for an external cluster.
	Proc *Proc
	conn *kafkasec.Conn
}

// Embedded credentials of bin/devkafka in the benchmark.
const (
	devUser     = "invoicesync"
	devPassword = "invoicesync-secret"
)

// StartEmbedded starts bin/devkafka on a free port, in memory, with
// SCRAM-SHA-512 and no topics.
func StartEmbedded(ctx context.Context, devkafka, logDir string) (*Kafka, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	env := Env("KAFKA_SASL_USERNAME="+devUser, "KAFKA_SASL_PASSWORD="+devPassword, "LOG_FORMAT=json")
	p, err := Start("devkafka", logDir, env, devkafka, "--port", port, "--data-dir=", "--topics=",
		"--mechanism", kafkasec.MechanismSCRAMSHA512)
	if err != nil {
		return nil, err
	}
	if err := WaitPort(ctx, p, addr, 20*time.Second); err != nil {
		_ = p.Stop(5 * time.Second)
		return nil, err
	}
	k := &Kafka{Proc: p, Kind: "devkafka (franz-go kfake, 1 broker, in memory, SCRAM-SHA-512, own process)",
		Config: kafkasec.Config{Brokers: []string{addr}, Mechanism: kafkasec.MechanismSCRAMSHA512,
			Username: devUser, Password: devPassword}}
	return k, k.connect()
}

// External uses an existing cluster.
func External(cfg kafkasec.Config) (*Kafka, error) {
	k := &Kafka{Config: cfg, Kind: fmt.Sprintf("external Kafka %s (%s)", strings.Join(cfg.Brokers, ","),
		orNone(cfg.Mechanism))}
	return k, k.connect()
}

func orNone(s string) string {
	if s == "" {
		return "no SASL"
	}
	return "SASL/" + s
}

func (k *Kafka) connect() error {
	k.Config.SetDefaults()
	if k.Config.ClientID == "invoicesync" {
		k.Config.ClientID = "invoicesync-bench"
	}
	if err := k.Config.Validate(); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	conn, err := kafkasec.New(k.Config)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	k.conn = conn
	return nil
}

// PID is the embedded broker's process id, 0 for an external cluster.
func (k *Kafka) PID() int {
	if k.Proc == nil {
		return 0
	}
	return k.Proc.PID()
}

// Env is the KAFKA_* variables of the project's processes.
func (k *Kafka) Env() []string {
	c := k.Config
	return []string{
		"KAFKA_BROKERS=" + strings.Join(c.Brokers, ","),
		"KAFKA_SASL_MECHANISM=" + c.Mechanism,
		"KAFKA_SASL_USERNAME=" + c.Username,
		"KAFKA_SASL_PASSWORD=" + c.Password,
		"KAFKA_TLS=" + strconv.FormatBool(c.TLS),
		"KAFKA_TLS_CA_FILE=" + c.CAFile,
	}
}

// CreateTopics creates topics with partitions each (replication 1 on the
// embedded broker, the cluster's default otherwise).
func (k *Kafka) CreateTopics(ctx context.Context, partitions int, names ...string) error {
	rf := int16(1)
	if k.Proc == nil {
		rf = -1
	}
	adm, err := k.conn.Admin()
	if err != nil {
		return err
	}
	resp, err := adm.CreateTopics(ctx, int32(partitions), rf, nil, names...) //nolint:gosec // partition counts fit
	if err != nil {
		return fmt.Errorf("create topics %v: %w", names, k.conn.Explain("", err))
	}
	var errs []error
	for _, r := range resp.Sorted() {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("create topic %s: %w", r.Topic, r.Err))
		}
	}
	return errors.Join(errs...)
}

// DeleteTopics deletes topics (best effort: an external cluster may forbid it).
func (k *Kafka) DeleteTopics(ctx context.Context, names ...string) {
	if adm, err := k.conn.Admin(); err == nil {
		_, _ = adm.DeleteTopics(ctx, names...)
	}
}

// Stop closes the admin connection and stops the embedded broker.
func (k *Kafka) Stop() error {
	if k.conn != nil {
		k.conn.Close()
	}
	if k.Proc == nil {
		return nil
	}
	return k.Proc.Stop(10 * time.Second)
}

// LogPath is the embedded broker's log, "" for an external cluster.
func (k *Kafka) LogPath() string {
	if k.Proc == nil {
		return ""
	}
	return filepath.Clean(k.Proc.LogPath)
}
