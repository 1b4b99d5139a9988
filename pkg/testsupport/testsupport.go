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
	"errors"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

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
	t.Cleanup(conn.Close)
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
	k.CreateTopicWithConfig(t, name, partitions, nil)
}

// CreateTopicWithConfig creates the topic name with the given partitions and
// topic configs (cleanup.policy, max.message.bytes, ...).
func (k *Kafka) CreateTopicWithConfig(t testing.TB, name string, partitions int, configs map[string]*string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm, err := k.Conn.Admin()
	if err == nil {
		var resp kadm.CreateTopicResponse
		resp, err = adm.CreateTopic(ctx, int32(partitions), 1, configs, name) //nolint:gosec // test sizes
		if err == nil {
			err = resp.Err
		}
	}
	if err != nil {
		t.Fatalf("testsupport: create topic %s: %v", name, err)
	}
}

// Client returns a client on the broker with extra options, closed at
// cleanup.
func (k *Kafka) Client(t testing.TB, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := k.Conn.NewClient(extra...)
	if err != nil {
		t.Fatalf("testsupport: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Produce writes recs to topic, partitioned by key as the Java client does
// (murmur2; records without a key spread), and fails the test if the broker
// does not acknowledge every one with acks=all.
func (k *Kafka) Produce(t testing.TB, topic string, recs ...*kgo.Record) {
	t.Helper()
	k.produce(t, topic, nil, recs)
}

// ProduceToPartitions writes each of recs to the partition it names
// (Record.Partition), like Produce otherwise.
func (k *Kafka) ProduceToPartitions(t testing.TB, topic string, recs ...*kgo.Record) {
	t.Helper()
	k.produce(t, topic, kgo.ManualPartitioner(), recs)
}

func (k *Kafka) produce(t testing.TB, topic string, p kgo.Partitioner, recs []*kgo.Record) {
	t.Helper()
	opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0)}
	if p != nil {
		opts = append(opts, kgo.RecordPartitioner(p))
	}
	cl, err := k.Conn.NewClient(opts...)
	if err != nil {
		t.Fatalf("testsupport: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range recs {
		r.Topic = topic
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("testsupport: produce to %s: %v", topic, k.Conn.Explain("", err))
	}
}

// ReadAll reads topic from the start, without a consumer group and with
// read_committed isolation (records of aborted transactions and the
// transactions' control markers are skipped), until every partition was
// read up to the end it had when ReadAll started, or, once at least want
// records arrived, nothing more came for a second (control markers take
// offsets no record is returned for). It fails the test when fewer than
// want arrived within timeout (want < 0: no minimum). Records come grouped
// by partition, each partition in offset order.
func (k *Kafka) ReadAll(t testing.TB, topic string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	adm, err := k.Conn.Admin()
	if err != nil {
		t.Fatalf("testsupport: %v", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("testsupport: end offsets of %s: %v", topic, err)
	}
	left := map[int32]int64{} // partition -> end offset not reached yet
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl, err := k.Conn.NewClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatalf("testsupport: %v", err)
	}
	defer cl.Close()
	byPart := map[int32][]*kgo.Record{}
	n := 0
	for len(left) > 0 {
		pctx := ctx
		var pcancel context.CancelFunc = func() {}
		if want >= 0 && n >= want {
			pctx, pcancel = context.WithTimeout(ctx, time.Second)
		}
		fs := cl.PollFetches(pctx)
		pcancel()
		if pctx.Err() != nil {
			break
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				t.Fatalf("testsupport: read %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			byPart[r.Partition] = append(byPart[r.Partition], r)
			n++
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	var out []*kgo.Record
	parts := make([]int32, 0, len(byPart))
	for p := range byPart {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		out = append(out, byPart[p]...)
	}
	if want >= 0 && len(out) < want {
		t.Fatalf("testsupport: %s holds %d messages, want at least %d", topic, len(out), want)
	}
	return out
}

// Header returns the value of r's header key, or "".
func Header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
