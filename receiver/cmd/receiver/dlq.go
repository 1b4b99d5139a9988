package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/migrations"
	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/pkg/dlq"
	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/logging"
	"github.com/invoicesync/invoicesync/pkg/settings"
	"github.com/invoicesync/invoicesync/receiver/internal/deadletter"
)

const dlqSummary = `Inspects and replays the dead-letter topic: the events the receiver could
not apply, with why. Reads the whole topic up to its end as of now (it never
tails) and never commits consumer offsets.

Subcommands:
  list [filters]            entries as a table (--json: one JSON object a line)
  show ID                   one entry in full: headers, value, decoded event
  replay ID... | --all | [filters]
                            republish entries to their original topic
  mark-handled ID... [--note TEXT]
                            hide entries from list and from replay
  unmark ID...              forget marks: the entries are new again

ID is partition:offset in the dead-letter topic, as list shows it.
Filters: --reason SUBSTR --class CLASS --key AGGREGATE_KEY --since T --until T.
Run "receiver dlq <subcommand> --help" for its flags.`

// dlq dispatches `receiver dlq <subcommand>`.
func (a *app) dlq(ctx context.Context, args []string) error {
	if len(args) == 0 {
		a.dlqUsage(a.stderr)
		return &usageError{errors.New("no dlq subcommand given (want list, show, replay, mark-handled or unmark)")}
	}
	rest := args[1:]
	switch args[0] {
	case "list":
		return a.dlqList(ctx, rest)
	case "show":
		return a.dlqShow(ctx, rest)
	case "replay":
		return a.dlqReplay(ctx, rest)
	case "mark-handled":
		return a.dlqMarkHandled(ctx, rest)
	case "unmark":
		return a.dlqUnmark(ctx, rest)
	case "help", "-h", "-help", "--help":
		a.dlqUsage(a.stdout)
		return nil
	default:
		return &usageError{fmt.Errorf("unknown dlq subcommand %q (want list, show, replay, mark-handled or unmark; see receiver dlq --help)", args[0])}
	}
}

// dlqUsage prints the subcommands and the settings they share.
func (a *app) dlqUsage(w io.Writer) {
	set := settings.New("receiver dlq", dlqSummary)
	(&dlqConfig{}).register(set)
	set.SetOutput(w)
	set.PrintUsage(w)
}

// dlqConfig is the configuration every `receiver dlq` subcommand shares.
type dlqConfig struct {
	// DatabaseURL reaches the receiver database, which records what was done
	// with each entry. RECEIVER_DATABASE_URL, default as for serve.
	DatabaseURL string
	// Kafka reaches the brokers: the KAFKA_* settings, as for serve.
	Kafka kafkasec.Config
	// Topic is the events' topic; it names the default dead-letter topic.
	// KAFKA_TOPIC, default sci.invoice-history.v1.
	Topic string
	// DLQTopic is the dead-letter topic. RECEIVER_DLQ_TOPIC, default
	// KAFKA_TOPIC + ".dlq". Entries are replayed to the topic they came from,
	// as recorded in each entry.
	DLQTopic string
	// Log is LOG_FORMAT and LOG_LEVEL, as for serve.
	Log settings.Log
}

func (c *dlqConfig) register(set *settings.Set) {
	set.String(&c.DatabaseURL, "database-url", "RECEIVER_DATABASE_URL", DefaultDatabaseURL,
		"PostgreSQL URL of the receiver database (records replayed and handled entries)")
	set.Kafka(&c.Kafka)
	c.Kafka.ClientID = "invoicesync-receiver-dlq"
	set.String(&c.Topic, "kafka-topic", "KAFKA_TOPIC", DefaultTopic, "topic of the invoice history events")
	set.String(&c.DLQTopic, "dlq-topic", "RECEIVER_DLQ_TOPIC", "",
		`dead-letter topic (default: KAFKA_TOPIC + "`+dlq.Suffix+`")`)
	set.Log(&c.Log)
}

// Validate checks the settings, names the one at fault, and fills DLQTopic.
func (c *dlqConfig) Validate() error {
	if c.DatabaseURL == "" {
		return errors.New("RECEIVER_DATABASE_URL (--database-url): required")
	}
	c.Kafka.SetDefaults()
	if err := c.Kafka.Validate(); err != nil {
		return fmt.Errorf("%w (KAFKA_* settings)", err)
	}
	if c.DLQTopic == "" {
		if c.Topic == "" {
			return errors.New("KAFKA_TOPIC (--kafka-topic) or RECEIVER_DLQ_TOPIC (--dlq-topic): required")
		}
		c.DLQTopic = dlq.Topic(c.Topic)
	}
	return nil
}

// MarshalZerologObject logs the configuration with secrets masked.
func (c dlqConfig) MarshalZerologObject(e *zerolog.Event) {
	e.Str("database_url", db.Redact(c.DatabaseURL)).Str("kafka", c.Kafka.String()).
		Str("dlq_topic", c.DLQTopic).Str("log_format", c.Log.Format).Str("log_level", c.Log.Level)
}

// dlqConfigure parses the settings of `receiver dlq <name>` (the shared ones
// plus those extra registers) and returns the arguments that are not flags.
// The configuration is logged at debug level only: an operator's command
// prints its answer, not a startup line (LOG_LEVEL=debug shows it).
func (a *app) dlqConfigure(name, summary string, args []string, extra func(*settings.Set)) (*dlqConfig, []string, error) {
	cfg := &dlqConfig{}
	set := settings.New("receiver dlq "+name, summary)
	set.SetLookup(a.lookup)
	set.SetOutput(a.stdout)
	cfg.register(set)
	extra(set)
	rest, err := set.ParseArgs(args)
	if err != nil {
		return nil, nil, asUsage(err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("configuration: %w", err)
	}
	log, err := logging.New(a.stderr, cfg.Log.Format, cfg.Log.Level, "receiver")
	if err != nil {
		return nil, nil, fmt.Errorf("configuration: %w", err)
	}
	a.log = log
	a.log.Debug().Str("subcommand", "dlq "+name).Object("config", cfg).Msg("starting")
	return cfg, rest, nil
}

// dlqSession is the open dead-letter queue of one command.
type dlqSession struct {
	queue *deadletter.Queue
	conn  *kafkasec.Conn
	close func()
}

// openDLQ connects to the database (migrated) and to the brokers (the
// dead-letter topic must exist) and returns the queue on them. Each step is
// bounded (the database's connect timeout, KAFKA_DIAL_TIMEOUT per broker)
// and ends at once when ctx does: an unreachable broker, wrong credentials
// or a missing topic fail with an error that names them, not a hang.
func (a *app) openDLQ(ctx context.Context, cfg *dlqConfig) (*dlqSession, error) {
	pool, err := db.Open(ctx, cfg.DatabaseURL, db.Options{AppName: "invoicesync-receiver-dlq", MaxConns: 2})
	if err != nil {
		return nil, err
	}
	pending, err := migrations.Pending(ctx, pool, migrations.Receiver)
	if err == nil && pending > 0 {
		err = fmt.Errorf("receiver database %s has %d pending migration(s): run `receiver migrate` first",
			db.Redact(cfg.DatabaseURL), pending)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	conn, err := kafkasec.New(cfg.Kafka)
	if err != nil {
		pool.Close()
		return nil, err
	}
	closeAll := func() { conn.Close(); pool.Close() }
	if err = conn.Check(ctx); err == nil {
		if err = conn.CheckTopics(ctx, cfg.DLQTopic); err != nil {
			err = fmt.Errorf("RECEIVER_DLQ_TOPIC (--dlq-topic): %w", err)
		}
	}
	var pub *deadletter.KafkaPublisher
	if err == nil {
		pub, err = deadletter.NewKafkaPublisher(conn)
	}
	if err != nil {
		closeAll()
		return nil, err
	}
	q, err := deadletter.New(cfg.DLQTopic, deadletter.NewKafkaSource(conn, cfg.DLQTopic), pub,
		deadletter.NewPostgresMarks(pool))
	if err != nil {
		pub.Close()
		closeAll()
		return nil, err
	}
	return &dlqSession{queue: q, conn: conn, close: func() { pub.Close(); closeAll() }}, nil
}

// filterFlags are the filters list and replay share.
type filterFlags struct {
	reason, class, key, since, until string
}

func (f *filterFlags) register(set *settings.Set) {
	set.String(&f.reason, "reason", "", "", "only entries whose reason contains this text (any case)")
	set.String(&f.class, "class", "", "", "only entries of this error class: decode, schema, unsupported_schema, transform, constraint")
	set.String(&f.key, "key", "", "", "only entries with this message key (the aggregate id, e.g. the history id)")
	set.String(&f.since, "since", "", "", "only entries that failed at or after this: RFC 3339 time, date, or duration ago (24h)")
	set.String(&f.until, "until", "", "", "only entries that failed before this: RFC 3339 time, date, or duration ago")
}

// filter validates the flags into a filter; errors name the flag.
func (f *filterFlags) filter(now func() time.Time) (deadletter.Filter, error) {
	out := deadletter.Filter{Reason: f.reason, Class: f.class, Key: f.key}
	var err error
	if f.since != "" {
		if out.Since, err = deadletter.ParseTime(f.since, now()); err != nil {
			return out, fmt.Errorf("--since: %w", err)
		}
	}
	if f.until != "" {
		if out.Until, err = deadletter.ParseTime(f.until, now()); err != nil {
			return out, fmt.Errorf("--until: %w", err)
		}
	}
	return out, nil
}

// checkIDs fails, before anything is opened, when ids is empty or one of
// them is not partition:offset.
func checkIDs(cmd string, ids []string) error {
	if len(ids) == 0 {
		return &usageError{fmt.Errorf("receiver dlq %s: no entry id given (want partition:offset, as dlq list shows; see --help)", cmd)}
	}
	for _, id := range ids {
		if _, _, err := dlq.ParseID(id); err != nil {
			return err
		}
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
