package peer

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/xdg-go/scram"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
)

// ForwarderConfig configures the watermill forwarder process.
type ForwarderConfig struct {
	// DB is the sender database (database/sql, pgx stdlib driver).
	DB *sql.DB
	// Kafka is the broker and its SCRAM credentials.
	Kafka kafkasec.Config
	// ForwarderTopic is the watermill-sql topic to drain. Default DefaultForwarderTopic.
	ForwarderTopic string
	// ConsumerGroup of the watermill-sql subscriber. Default "forwarder".
	ConsumerGroup string
	// PollInterval is how long the subscriber waits after finding nothing.
	// Watermill's default is 1 s; the benchmark uses 10 ms so the peer is
	// not judged on an idle poll it would be tuned away from.
	PollInterval time.Duration
	// BatchSize is the rows the subscriber reads per query (watermill's default 100).
	BatchSize int
}

// DefaultConsumerGroup is the forwarder's watermill-sql consumer group.
const DefaultConsumerGroup = "forwarder"

// RunForwarder forwards watermill-sql messages to Kafka until ctx ends.
func RunForwarder(ctx context.Context, c ForwarderConfig, logger watermill.LoggerAdapter) error {
	if c.ForwarderTopic == "" {
		c.ForwarderTopic = DefaultForwarderTopic
	}
	if c.ConsumerGroup == "" {
		c.ConsumerGroup = DefaultConsumerGroup
	}
	sub, err := wmsql.NewSubscriber(c.DB, wmsql.SubscriberConfig{
		ConsumerGroup:  c.ConsumerGroup,
		PollInterval:   c.PollInterval,
		SchemaAdapter:  wmsql.DefaultPostgreSQLSchema{SubscribeBatchSize: c.BatchSize},
		OffsetsAdapter: wmsql.DefaultPostgreSQLOffsetsAdapter{},
	}, logger)
	if err != nil {
		return fmt.Errorf("forwarder: subscriber: %w", err)
	}
	sc, err := SaramaConfig(c.Kafka)
	if err != nil {
		return err
	}
	pub, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{
		Brokers: c.Kafka.Brokers,
		Marshaler: wmkafka.NewWithPartitioningMarshaler(func(_ string, m *message.Message) (string, error) {
			return m.Metadata.Get(KeyMetadata), nil
		}),
		OverwriteSaramaConfig: sc,
	}, logger)
	if err != nil {
		return fmt.Errorf("forwarder: kafka publisher: %w", err)
	}
	fwd, err := forwarder.NewForwarder(sub, pub, logger, forwarder.Config{ForwarderTopic: c.ForwarderTopic,
		CloseTimeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- fwd.Run(ctx) }()
	select {
	case err := <-errc:
		_ = pub.Close()
		return err
	case <-ctx.Done():
		cerr := fwd.Close()
		<-errc
		return errors.Join(cerr, pub.Close())
	}
}

// SaramaConfig is a synchronous producer configuration with acks=all and
// the SASL/SCRAM (and TLS) settings of k.
func SaramaConfig(k kafkasec.Config) (*sarama.Config, error) {
	sc := wmkafka.DefaultSaramaSyncPublisherConfig()
	sc.Version = sarama.V2_8_0_0
	sc.ClientID = "invoicesync-bench-watermill"
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	if k.DialTimeout > 0 {
		sc.Net.DialTimeout = k.DialTimeout
	}
	switch k.Mechanism {
	case kafkasec.MechanismNone:
	case kafkasec.MechanismSCRAMSHA512, kafkasec.MechanismSCRAMSHA256:
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Handshake = true
		sc.Net.SASL.User, sc.Net.SASL.Password = k.Username, k.Password
		hash := scram.SHA512
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		if k.Mechanism == kafkasec.MechanismSCRAMSHA256 {
			hash, sc.Net.SASL.Mechanism = scram.SHA256, sarama.SASLTypeSCRAMSHA256
		}
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: hash} }
	default:
		return nil, fmt.Errorf("forwarder: kafka sasl mechanism %q is not supported", k.Mechanism)
	}
	if k.TLS {
		sc.Net.TLS.Enable = true
	}
	return sc, nil
}

// scramClient adapts xdg-go/scram to sarama.SCRAMClient.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	cl, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = cl.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }
func (c *scramClient) Done() bool                            { return c.conv.Done() }

// Compile-time checks that the hashes are linked in.
var _ = []any{sha256.New, sha512.New}
