package kafkasec

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
)

// ErrAuthentication is returned (wrapped in an *AuthError) when a broker
// rejects the configured credentials or mechanism.
var ErrAuthentication = errors.New("kafka authentication failed")

// ErrAuthorization marks a request the broker refused because the principal
// lacks an ACL (topic, group, cluster or transactional id). Like a failed
// authentication, retrying cannot fix it: processes exit on it.
var ErrAuthorization = errors.New("kafka authorization failed")

// ErrTopicMissing marks a topic the cluster does not have.
var ErrTopicMissing = errors.New("kafka topic does not exist")

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

// Fatal reports whether err is one that retrying cannot fix: a failed
// authentication or a refused authorization.
func Fatal(err error) bool {
	return errors.Is(err, ErrAuthentication) || errors.Is(err, ErrAuthorization) || isAuthzErr(err)
}

// Conn is the shared connection material of one process: the validated
// configuration, the client options built from it, and a lazily made admin
// client for metadata, offsets and topic checks. Close it when done.
type Conn struct {
	cfg  Config
	opts []kgo.Opt // without SASL
	mech sasl.Mechanism

	mu    sync.Mutex
	admin *kgo.Client
}

// New validates cfg and builds the client options.
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
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.DialTimeout(cfg.DialTimeout),
	}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	return &Conn{cfg: cfg, opts: opts, mech: mech}, nil
}

// Config returns the validated configuration.
func (c *Conn) Config() Config { return c.cfg }

// Brokers returns the bootstrap brokers.
func (c *Conn) Brokers() []string { return c.cfg.Brokers }

// Opts returns the options every client of this process starts from: seed
// brokers, client id, dial timeout, SASL and TLS.
func (c *Conn) Opts() []kgo.Opt {
	opts := slices.Clone(c.opts)
	if c.mech != nil {
		opts = append(opts, kgo.SASL(c.mech))
	}
	return opts
}

// NewClient builds a client with the connection options and extra. It does
// no I/O; the caller closes it.
func (c *Conn) NewClient(extra ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(c.Opts(), extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// Admin returns the process's shared admin client (metadata, offsets,
// topics), made on first use and closed by Close.
func (c *Conn) Admin() (*kadm.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.admin == nil {
		cl, err := c.NewClient()
		if err != nil {
			return nil, err
		}
		c.admin = cl
	}
	return kadm.NewClient(c.admin), nil
}

// Close closes the shared admin client, if one was made.
func (c *Conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.admin != nil {
		c.admin.Close()
		c.admin = nil
	}
}

// Check connects and authenticates to every bootstrap broker and asks it
// for metadata, each within the dial timeout. It fails fast with an
// *AuthError when credentials or mechanism are wrong, and with an error
// naming the broker when none can be reached or answers. Readiness probes
// call it; at start, WaitReady retries it.
func (c *Conn) Check(ctx context.Context) error {
	var errs []error
	for _, b := range c.cfg.Brokers {
		err := c.checkBroker(ctx, b)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if Fatal(err) {
			return err
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("kafka: no broker reachable: %w", errors.Join(errs...))
}

// checkBroker asks broker b alone for the cluster's metadata, once, within
// the dial timeout.
func (c *Conn) checkBroker(ctx context.Context, b string) error {
	opts := append(slices.Clone(c.opts), kgo.SeedBrokers(b), kgo.RequestRetries(0),
		kgo.RetryTimeout(c.cfg.DialTimeout), kgo.RequestTimeoutOverhead(c.cfg.DialTimeout))
	var tm *trackedMechanism
	if c.mech != nil {
		tm = &trackedMechanism{Mechanism: c.mech}
		opts = append(opts, kgo.SASL(tm))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	var closeOnce sync.Once
	closeClient := func() { closeOnce.Do(cl.Close) }
	defer closeClient()
	cctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	// kgo ties a new connection's handshake (ApiVersions, SASL) to the
	// client, not to the request's context: only closing the client ends
	// a handshake a silent broker never answers, so a stop signal is not
	// held up for the dial timeout.
	defer context.AfterFunc(cctx, closeClient)()
	_, err = cl.Request(cctx, kmsg.NewPtrMetadataRequest())
	if err == nil {
		return nil
	}
	if tm != nil && tm.rejected() && !isAuthFailure(err) && ctx.Err() == nil {
		// Some brokers (the embedded one) answer a failed SCRAM exchange
		// by closing the connection rather than with an error code.
		err = &AuthError{Broker: b, Mechanism: c.cfg.Mechanism, Username: c.cfg.Username,
			Err: fmt.Errorf("the broker closed the connection during the SASL exchange: %w", err)}
	}
	// The client's own dial timeout equals cctx's, so which fires first
	// varies: a network timeout means the same as cctx ending.
	var nerr net.Error
	if ctx.Err() == nil && (cctx.Err() != nil || errors.As(err, &nerr) && nerr.Timeout()) {
		err = fmt.Errorf("no answer within %s (KAFKA_DIAL_TIMEOUT): is %s a Kafka broker, and does it expect TLS? (%w)",
			c.cfg.DialTimeout, b, err)
	}
	err = c.Explain(b, err)
	if !strings.Contains(err.Error(), b) {
		err = fmt.Errorf("broker %s: %w", b, err)
	}
	return err
}

// CheckTopics reports, by name, any of topics the cluster does not have, so
// a process fails at startup instead of retrying writes to nowhere. A topic
// the principal may not describe is reported as an authorization failure.
func (c *Conn) CheckTopics(ctx context.Context, topics ...string) error {
	adm, err := c.Admin()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return fmt.Errorf("kafka metadata for topics %v: %w", topics, c.Explain("", err))
	}
	var missing []string
	for _, t := range topics {
		td, ok := md.Topics[t]
		switch {
		case ok && isAuthzErr(td.Err):
			return &AuthzError{Principal: c.cfg.Username, Resource: "topic " + t, Operation: "describe", Err: td.Err}
		case !ok || td.Err != nil || len(td.Partitions) == 0:
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s on %s: create it (README, Deploy) or fix the setting that names it (KAFKA_TOPIC, RECEIVER_DLQ_TOPIC)",
			ErrTopicMissing, strings.Join(missing, ", "), strings.Join(c.cfg.Brokers, ","))
	}
	return nil
}

// WaitReady runs Check and CheckTopics until both pass, for at most
// StartupTimeout: a broker that is down or does not answer is retried with
// backoff (each failure logged), while wrong credentials, a refused
// authorization or a missing topic end the wait at once. It returns
// ctx.Err() as soon as ctx ends.
func (c *Conn) WaitReady(ctx context.Context, log zerolog.Logger, topics ...string) error {
	deadline := time.Now().Add(c.cfg.StartupTimeout)
	wait := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.Check(ctx)
		if err == nil {
			err = c.CheckTopics(ctx, topics...)
			if err == nil || errors.Is(err, ErrTopicMissing) {
				return err // a missing topic is not waited for
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if Fatal(err) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w (gave up after %s, KAFKA_STARTUP_TIMEOUT)", err, c.cfg.StartupTimeout)
		}
		d := min(wait/2+rand.N(wait/2+1), left) //nolint:gosec // jitter needs no crypto
		log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", d).Dur("gives_up_in", left.Round(time.Second)).
			Msg("kafka not reachable yet; retrying")
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// AuthzError names what the broker refused: the principal, the resource
// and the operation.
type AuthzError struct {
	Principal string
	Resource  string
	Operation string
	Err       error
}

func (e *AuthzError) Error() string {
	p := e.Principal
	if p == "" {
		p = "ANONYMOUS"
	}
	return fmt.Sprintf("kafka authorization failed: principal User:%s may not %s %s: grant it the ACL (%v)",
		p, e.Operation, e.Resource, e.Err)
}

// Unwrap lets errors.Is(err, ErrAuthorization) match.
func (e *AuthzError) Unwrap() []error { return []error{ErrAuthorization, e.Err} }

// Explain translates a client error seen while talking to broker into one a
// person understands: authentication failures become *AuthError,
// authorization failures *AuthzError (the resource as far as the error
// tells it), refused connections and unknown hosts name the broker. Other
// errors are returned unchanged. broker may be empty when unknown.
func (c *Conn) Explain(broker string, err error) error {
	if err == nil {
		return nil
	}
	if broker == "" {
		broker = strings.Join(c.cfg.Brokers, ",")
	}
	var ae *AuthError
	var ze *AuthzError
	switch {
	case errors.As(err, &ae), errors.As(err, &ze):
		return err
	case isAuthFailure(err):
		return &AuthError{Broker: broker, Mechanism: c.cfg.Mechanism, Username: c.cfg.Username, Err: err}
	case isAuthzErr(err):
		return &AuthzError{Principal: c.cfg.Username, Resource: authzResource(err), Operation: "use", Err: err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("kafka broker %s refused the connection (is it running and is the address right?): %w", broker, err)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Errorf("kafka broker %s: cannot resolve host: %w", broker, err)
	}
	return err
}

// isAuthFailure reports the broker's typed answers to a failed SASL
// exchange. A connection merely closed is not one: franz-go reports that
// as ErrFirstReadEOF, with its own explanation.
func isAuthFailure(err error) bool {
	return errors.Is(err, kerr.SaslAuthenticationFailed) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) ||
		errors.Is(err, kerr.IllegalSaslState)
}

func isAuthzErr(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) ||
		errors.Is(err, kerr.GroupAuthorizationFailed) ||
		errors.Is(err, kerr.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) ||
		errors.Is(err, kerr.DelegationTokenAuthorizationFailed)
}

func authzResource(err error) string {
	switch {
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		return "a topic"
	case errors.Is(err, kerr.GroupAuthorizationFailed):
		return "the consumer group"
	case errors.Is(err, kerr.ClusterAuthorizationFailed):
		return "the cluster"
	case errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return "the transactional id"
	default:
		return "a resource"
	}
}

// ProduceSync produces recs on cl and waits for every acknowledgement,
// returning the first failure explained. It is the one synchronous produce
// of the non-transactional writers (dead-letter, replay).
func (c *Conn) ProduceSync(ctx context.Context, cl *kgo.Client, recs ...*kgo.Record) error {
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return c.Explain("", err)
	}
	return nil
}

// trackedMechanism tells whether a SASL exchange started and never
// completed: the broker cut it short, which is how some brokers reject
// credentials.
type trackedMechanism struct {
	sasl.Mechanism
	started, completed atomic.Bool
}

func (m *trackedMechanism) Authenticate(ctx context.Context, host string) (sasl.Session, []byte, error) {
	m.started.Store(true)
	s, first, err := m.Mechanism.Authenticate(ctx, host)
	if err != nil {
		return nil, nil, err
	}
	return &trackedSession{Session: s, m: m}, first, nil
}

func (m *trackedMechanism) rejected() bool { return m.started.Load() && !m.completed.Load() }

type trackedSession struct {
	sasl.Session
	m *trackedMechanism
}

func (s *trackedSession) Challenge(resp []byte) (bool, []byte, error) {
	done, next, err := s.Session.Challenge(resp)
	if done && err == nil {
		s.m.completed.Store(true)
	}
	return done, next, err
}
