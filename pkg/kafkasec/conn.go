package kafkasec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/segmentio/kafka-go"
)

// ErrAuthentication is returned (wrapped in an *AuthError) when a broker
// rejects the configured credentials or mechanism.
var ErrAuthentication = errors.New("kafka authentication failed")

// AuthError names the broker, user and mechanism of a failed authentication.
type AuthError struct {
	Broker    string
	Mechanism string
	Username  string
	Err       error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("kafka authentication failed at broker %s with %s as user %q: "+
		"check the username, the password and that the broker accepts %s (%v)",
		e.Broker, e.Mechanism, e.Username, e.Mechanism, e.Err)
}

// Unwrap lets errors.Is(err, ErrAuthentication) match.
func (e *AuthError) Unwrap() []error { return []error{ErrAuthentication, e.Err} }

// Conn is the shared, ready-to-use connection material of one process.
type Conn struct {
	cfg       Config
	transport *kafka.Transport
	dialer    *kafka.Dialer
}

// New validates cfg and builds the shared transport and dialer.
func New(cfg Config) (*Conn, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mech, err := cfg.mechanism()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	return &Conn{
		cfg: cfg,
		transport: &kafka.Transport{
			DialTimeout: cfg.DialTimeout,
			SASL:        mech,
			TLS:         tlsCfg,
			ClientID:    cfg.ClientID,
		},
		dialer: &kafka.Dialer{
			Timeout:       cfg.DialTimeout,
			DualStack:     true,
			SASLMechanism: mech,
			TLS:           tlsCfg,
			ClientID:      cfg.ClientID,
		},
	}, nil
}

// Config returns the validated configuration.
func (c *Conn) Config() Config { return c.cfg }

// Brokers returns the bootstrap brokers.
func (c *Conn) Brokers() []string { return c.cfg.Brokers }

// Transport is the shared transport for kafka.Writer and kafka.Client.
func (c *Conn) Transport() *kafka.Transport { return c.transport }

// Dialer is the shared dialer for kafka.Reader.
func (c *Conn) Dialer() *kafka.Dialer { return c.dialer }

// Client returns a kafka.Client on the shared transport.
func (c *Conn) Client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Transport: c.transport}
}

// Check connects and authenticates to every bootstrap broker within the
// dial timeout and asks for metadata. It fails fast with an *AuthError when
// credentials or mechanism are wrong, and with a plain error naming the
// broker when it cannot be reached. Call it at startup so a misconfigured
// process exits instead of hanging.
func (c *Conn) Check(ctx context.Context) error {
	var errs []error
	reached := 0
	for _, b := range c.cfg.Brokers {
		dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
		conn, err := c.dialer.DialContext(dctx, "tcp", b)
		if err == nil {
			_, err = conn.Brokers()
			_ = conn.Close()
		}
		cancel()
		if err != nil {
			err = c.explain(b, err, true)
			if errors.Is(err, ErrAuthentication) {
				return err
			}
			if !strings.Contains(err.Error(), b) {
				err = fmt.Errorf("broker %s: %w", b, err)
			}
			errs = append(errs, err)
			continue
		}
		reached++
	}
	if reached == 0 {
		return fmt.Errorf("kafka: no broker reachable: %w", errors.Join(errs...))
	}
	return nil
}

// Explain translates a kafka-go error seen while talking to broker into one a
// person understands: authentication failures become *AuthError (kafka-go
// reports a SCRAM rejection as a bare "unexpected EOF" because the broker
// closes the connection), refused connections name the broker. Other errors
// are returned unchanged. broker may be empty when unknown.
func (c *Conn) Explain(broker string, err error) error {
	return c.explain(broker, err, false)
}

// explain is Explain; duringAuth says err came from dialing, where a closed
// connection means the broker rejected the SASL exchange.
func (c *Conn) explain(broker string, err error, duringAuth bool) error {
	if err == nil {
		return nil
	}
	err = WriteCause(err)
	if broker == "" {
		broker = strings.Join(c.cfg.Brokers, ",")
	}
	var ae *AuthError
	if errors.As(err, &ae) {
		return err
	}
	if isAuthFailure(err, duringAuth && c.cfg.Mechanism != MechanismNone) {
		return &AuthError{Broker: broker, Mechanism: c.cfg.Mechanism, Username: c.cfg.Username, Err: err}
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("kafka broker %s refused the connection (is it running and is the address right?): %w", broker, err)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Errorf("kafka broker %s: cannot resolve host: %w", broker, err)
	}
	return err
}

func isAuthFailure(err error, eofMeansAuth bool) bool {
	if errors.Is(err, kafka.SASLAuthenticationFailed) ||
		errors.Is(err, kafka.UnsupportedSASLMechanism) ||
		errors.Is(err, kafka.IllegalSASLState) {
		return true
	}
	if !eofMeansAuth {
		return false
	}
	// kafka-go surfaces a broker that drops the connection during the SASL
	// exchange as io.ErrUnexpectedEOF / io.EOF, sometimes only in the text.
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	return strings.Contains(err.Error(), "unexpected EOF")
}

// WriteCause flattens kafka-go's WriteErrors (one entry per message, and no
// Unwrap) into its distinct causes, so errors.Is can see them. Other errors
// are returned unchanged.
func WriteCause(err error) error {
	var we kafka.WriteErrors
	if !errors.As(err, &we) {
		return err
	}
	seen := map[string]bool{}
	var causes []error
	for _, e := range we {
		if e != nil && !seen[e.Error()] {
			seen[e.Error()] = true
			causes = append(causes, e)
		}
	}
	return fmt.Errorf("%d of %d messages not written: %w", we.Count(), len(we), errors.Join(causes...))
}

// CheckTopics reports, by name, any of topics the cluster does not have, so
// a process fails at startup instead of retrying writes to nowhere.
func (c *Conn) CheckTopics(ctx context.Context, topics ...string) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	md, err := c.Client().Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("kafka metadata for topics %v: %w", topics, c.Explain("", err))
	}
	var missing []string
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			missing = append(missing, t.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kafka topic %s does not exist on %s: create it (see README, Topics) or fix KAFKA_TOPIC",
			strings.Join(missing, ", "), strings.Join(c.cfg.Brokers, ","))
	}
	return nil
}
