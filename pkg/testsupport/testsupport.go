// Package testsupport gives integration tests their real dependencies: a
// fresh, migrated PostgreSQL database per test and a Kafka-protocol broker
// reached over TCP with SASL/SCRAM, with unique topic names per test.
//
// PostgreSQL comes from INVOICESYNC_TEST_DATABASE_URL (a role that may create
// databases); tests that need it skip when it is unset, and fail when it is
// set but unreachable. Kafka is the embedded broker unless
// INVOICESYNC_TEST_KAFKA_BROKERS names a real cluster, with
// INVOICESYNC_TEST_KAFKA_MECHANISM, _USER and _PASSWORD.
package testsupport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/devbroker"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
)

// Environment variables read by this package.
const (
	EnvDatabaseURL    = "INVOICESYNC_TEST_DATABASE_URL"
	EnvKafkaBrokers   = "INVOICESYNC_TEST_KAFKA_BROKERS"
	EnvKafkaMechanism = "INVOICESYNC_TEST_KAFKA_MECHANISM"
	EnvKafkaUser      = "INVOICESYNC_TEST_KAFKA_USER"
	EnvKafkaPassword  = "INVOICESYNC_TEST_KAFKA_PASSWORD"
)

// Name returns a short random lowercase name with prefix, unique per call.
func Name(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// Database is a fresh database for one test.
type Database struct {
	// URL reaches the database.
	URL string
	// Pool is open on it and closed at cleanup.
	Pool *pgxpool.Pool
}

// NewDatabase creates an empty database, dropped at cleanup. It skips the
// test when EnvDatabaseURL is unset.
func NewDatabase(t testing.TB) *Database {
	t.Helper()
	admin := os.Getenv(EnvDatabaseURL)
	if admin == "" {
		t.Skipf("%s is not set: skipping a test that needs PostgreSQL (make test sets it)", EnvDatabaseURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testsupport: connect %s: %v", db.Redact(admin), err)
	}
	defer conn.Close(ctx)
	name := Name("t")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testsupport: create database: %v", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("testsupport: parse %s: %v", EnvDatabaseURL, err)
	}
	u.Path = "/" + name
	d := &Database{URL: u.String()}
	d.Pool, err = db.Open(ctx, d.URL, db.Options{MaxConns: 20})
	if err != nil {
		t.Fatalf("testsupport: %v", err)
	}
	t.Cleanup(func() {
		d.Pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("testsupport: drop database: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testsupport: drop database %s: %v", name, err)
		}
	})
	return d
}

// MigratedDatabase is NewDatabase with the migrations of which applied.
func MigratedDatabase(t testing.TB, which migrations.Database) *Database {
	t.Helper()
	d := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := migrations.Up(ctx, d.Pool, which); err != nil {
		t.Fatalf("testsupport: %v", err)
	}
	return d
}

// Kafka is a broker for one test.
type Kafka struct {
	// Config reaches the broker with valid SCRAM credentials.
	Config kafkasec.Config
	// Conn is built from Config.
	Conn *kafkasec.Conn
	// Embedded is the embedded broker, nil against an external cluster.
	Embedded *devbroker.Broker
}

// NewKafka returns the external broker named by EnvKafkaBrokers, or starts
// an embedded one with SCRAM-SHA-512 stopped at cleanup.
func NewKafka(t testing.TB) *Kafka {
	t.Helper()
	k := &Kafka{}
	if brokers := os.Getenv(EnvKafkaBrokers); brokers != "" {
		k.Config = kafkasec.Config{
			Brokers:   kafkasec.ParseBrokers(brokers),
			Mechanism: envOr(EnvKafkaMechanism, kafkasec.MechanismSCRAMSHA512),
			Username:  os.Getenv(EnvKafkaUser),
			Password:  os.Getenv(EnvKafkaPassword),
		}
	} else {
		b, err := devbroker.Start(devbroker.Config{})
		if err != nil {
			t.Fatalf("testsupport: %v", err)
		}
		t.Cleanup(b.Close)
		k.Embedded = b
		k.Config = b.KafkaConfig()
	}
	k.Config.DialTimeout = 5 * time.Second
	conn, err := kafkasec.New(k.Config)
	if err != nil {
		t.Fatalf("testsupport: kafka config: %v", err)
	}
	k.Conn = conn
	return k
}

// Topic creates a topic with a unique name and the given partitions.
func (k *Kafka) Topic(t testing.TB, prefix string, partitions int) string {
	t.Helper()
	name := strings.ReplaceAll(Name(prefix), "_", "-")
	k.CreateTopic(t, name, partitions)
	return name
}

// CreateTopic creates the topic name with the given partitions.
func (k *Kafka) CreateTopic(t testing.TB, name string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := k.Conn.Client().CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err == nil {
		err = resp.Errors[name]
	}
	if err != nil {
		t.Fatalf("testsupport: create topic %s: %v", name, err)
	}
}

// ByPartition sends each message to the partition it names (Message.Partition).
var ByPartition = kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition })

// Writer returns a writer to topic that waits for every replica's ack and
// batches for at most 1ms. balancer nil means by key hash. Close it.
func (k *Kafka) Writer(topic string, balancer kafka.Balancer) *kafka.Writer {
	if balancer == nil {
		balancer = &kafka.Hash{}
	}
	return &kafka.Writer{Addr: kafka.TCP(k.Config.Brokers...), Topic: topic, Transport: k.Conn.Transport(),
		RequiredAcks: kafka.RequireAll, Balancer: balancer, BatchTimeout: time.Millisecond}
}

// Produce writes msgs to topic through a Writer with balancer (nil: by key
// hash) and fails the test if the broker does not acknowledge them.
func (k *Kafka) Produce(t testing.TB, topic string, balancer kafka.Balancer, msgs ...kafka.Message) {
	t.Helper()
	w := k.Writer(topic, balancer)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("testsupport: produce to %s: %v", topic, err)
	}
}

// ReadAll reads every message of topic until want have arrived or timeout
// passes, without a consumer group, and returns them in partition order.
func (k *Kafka) ReadAll(t testing.TB, topic string, want int, timeout time.Duration) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	parts, err := k.partitions(ctx, topic)
	if err != nil {
		t.Fatalf("testsupport: %v", err)
	}
	var out []kafka.Message
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: k.Config.Brokers, Topic: topic, Partition: p, Dialer: k.Conn.Dialer(),
			// kafka.Reader bounds the fetch's whole round trip by MaxWait
			// (less a quarter below 1s): give a busy broker a second.
			MaxWait: 2 * time.Second,
		})
		end, err := lastOffset(ctx, k, topic, p)
		if err != nil {
			_ = r.Close()
			t.Fatalf("testsupport: %v", err)
		}
		for off := int64(0); off < end; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				_ = r.Close()
				t.Fatalf("testsupport: read %s/%d: %v", topic, p, err)
			}
			out = append(out, m)
		}
		_ = r.Close()
	}
	if want >= 0 && len(out) < want {
		t.Fatalf("testsupport: %s holds %d messages, want at least %d", topic, len(out), want)
	}
	return out
}

func (k *Kafka) partitions(ctx context.Context, topic string) ([]int, error) {
	md, err := k.Conn.Client().Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w", topic, err)
	}
	var ps []int
	for _, tp := range md.Topics {
		if tp.Error != nil {
			return nil, fmt.Errorf("metadata %s: %w", topic, tp.Error)
		}
		for _, p := range tp.Partitions {
			ps = append(ps, p.ID)
		}
	}
	return ps, nil
}

func lastOffset(ctx context.Context, k *Kafka, topic string, p int) (int64, error) {
	resp, err := k.Conn.Client().ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p)}},
	})
	if err != nil {
		return 0, fmt.Errorf("list offsets %s/%d: %w", topic, p, err)
	}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return 0, fmt.Errorf("list offsets %s/%d: %w", topic, p, po.Error)
		}
		return po.LastOffset, nil
	}
	return 0, fmt.Errorf("list offsets %s/%d: no answer", topic, p)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
