// Command devkafka runs the embedded Kafka-protocol broker (franz-go's kfake)
// on loopback with SASL/SCRAM on and a data directory, for the local run. It
// is a development stand-in: production points the services at real Kafka.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/invoicesync/invoicesync/pkg/devbroker"
	"github.com/invoicesync/invoicesync/pkg/logging"
	"github.com/invoicesync/invoicesync/pkg/settings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "devkafka:", err)
		os.Exit(1)
	}
}

type config struct {
	broker devbroker.Config
	topics string
	log    settings.Log
}

func run(ctx context.Context, args []string) error {
	var c config
	var partitions int
	s := settings.New("devkafka", "Runs an embedded Kafka-protocol broker on 127.0.0.1 with SASL/SCRAM, for local runs and tests.")
	s.Int(&c.broker.Port, "port", "DEVKAFKA_PORT", 9092, "loopback port to listen on")
	s.String(&c.broker.DataDir, "data-dir", "DEVKAFKA_DATA_DIR", ".local/kafka", "directory that keeps topics and offsets across restarts (empty: memory only)")
	s.String(&c.broker.Mechanism, "mechanism", "DEVKAFKA_MECHANISM", "SCRAM-SHA-512", "SCRAM mechanism of the user: SCRAM-SHA-512 or SCRAM-SHA-256")
	s.String(&c.broker.Username, "username", "KAFKA_SASL_USERNAME", "invoicesync", "SCRAM username")
	s.Secret(&c.broker.Password, "password", "KAFKA_SASL_PASSWORD", "SCRAM password (default invoicesync-secret)")
	s.String(&c.topics, "topics", "DEVKAFKA_TOPICS", "sci.invoice-history.v1,sci.invoice-history.v1.dlq", "comma-separated topics to create at start")
	s.Int(&partitions, "partitions", "DEVKAFKA_PARTITIONS", 6, "partitions per created topic")
	s.Log(&c.log)
	if err := s.Parse(args); err != nil {
		return err
	}
	if partitions < 1 {
		return fmt.Errorf("partitions: must be at least 1, got %d", partitions)
	}
	c.broker.Partitions = int32(partitions)
	for _, t := range strings.Split(c.topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.broker.Topics = append(c.broker.Topics, t)
		}
	}
	log, err := logging.New(os.Stderr, c.log.Format, c.log.Level, "devkafka")
	if err != nil {
		return err
	}
	b, err := devbroker.Start(c.broker)
	if err != nil {
		return err
	}
	defer b.Close()
	kc := b.KafkaConfig()
	log.Info().Str("addr", b.Addr()).Str("mechanism", kc.Mechanism).Str("user", kc.Username).
		Str("data_dir", c.broker.DataDir).Strs("topics", c.broker.Topics).Msg("embedded Kafka broker listening")
	<-ctx.Done()
	log.Info().Msg("stopping")
	return nil
}
