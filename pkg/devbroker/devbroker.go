// Package devbroker runs an embedded Kafka-protocol broker (franz-go's kfake)
// on loopback with SASL/SCRAM on, for the local run and the tests. It is not
// for production: point the services at a real Kafka there.
package devbroker

import (
	"errors"
	"fmt"
	"time"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Config describes the embedded broker.
type Config struct {
	// Port is the loopback TCP port; 0 picks a free one.
	Port int
	// DataDir persists topics, offsets and groups across restarts; empty keeps
	// everything in memory.
	DataDir string
	// Mechanism is the SCRAM mechanism of the user: SCRAM-SHA-512 (default) or SCRAM-SHA-256.
	Mechanism string
	// Username and Password of the one (super)user. Defaults: invoicesync / invoicesync-secret.
	Username, Password string
	// Topics are created at start (if missing) with Partitions partitions each (default 6).
	Topics     []string
	Partitions int32
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	cfg     Config
}

// Start starts the broker and returns once it accepts connections.
func Start(cfg Config) (*Broker, error) {
	if cfg.Mechanism == "" {
		cfg.Mechanism = kafkasec.MechanismSCRAMSHA512
	}
	if cfg.Mechanism != kafkasec.MechanismSCRAMSHA512 && cfg.Mechanism != kafkasec.MechanismSCRAMSHA256 {
		return nil, fmt.Errorf("devbroker: mechanism %q: use %s or %s", cfg.Mechanism,
			kafkasec.MechanismSCRAMSHA512, kafkasec.MechanismSCRAMSHA256)
	}
	if cfg.Username == "" {
		cfg.Username = "invoicesync"
	}
	if cfg.Password == "" {
		cfg.Password = "invoicesync-secret"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(cfg.Port),
		kfake.EnableSASL(),
		kfake.Superuser(cfg.Mechanism, cfg.Username, cfg.Password),
		kfake.DefaultNumPartitions(int(cfg.Partitions)),
		kfake.GroupMinSessionTimeout(time.Second),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if len(cfg.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(cfg.Partitions, cfg.Topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("devbroker: start: %w", err)
	}
	if len(c.ListenAddrs()) == 0 {
		c.Close()
		return nil, errors.New("devbroker: broker is not listening")
	}
	return &Broker{cluster: c, cfg: cfg}, nil
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return b.cluster.ListenAddrs()[0] }

// KafkaConfig is the client configuration that reaches this broker.
func (b *Broker) KafkaConfig() kafkasec.Config {
	return kafkasec.Config{
		Brokers:   []string{b.Addr()},
		Mechanism: b.cfg.Mechanism,
		Username:  b.cfg.Username,
		Password:  b.cfg.Password,
	}
}

// Cluster exposes kfake for fault injection in tests.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the broker, flushing its data dir.
func (b *Broker) Close() { b.cluster.Close() }
