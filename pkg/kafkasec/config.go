// Package kafkasec is the Kafka layer every process stands on: the
// connection and security settings (broker list, SASL/SCRAM credentials,
// optional TLS, timeouts), the franz-go client options built from them, the
// start-up check that fails fast on wrong credentials and waits a bounded
// time for a broker that is down, and errors that name the broker, the user
// and the mechanism instead of the client's bare ones.
//
// Producers (pkg/outbox, the dead-letter writer), the consumer group
// (pkg/consume) and the admin calls (topics, offsets) are all franz-go
// clients (kgo) built from Conn.Opts, so they share one set of settings.
package kafkasec

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Supported SASL mechanisms.
const (
	MechanismNone        = ""
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// Defaults of Config.
const (
	DefaultDialTimeout    = 10 * time.Second
	DefaultStartupTimeout = 60 * time.Second
)

// Config is the connection and security configuration for a Kafka cluster.
type Config struct {
	// Brokers is the bootstrap broker list, host:port. Required.
	Brokers []string
	// Mechanism is the SASL mechanism: SCRAM-SHA-512 (default), SCRAM-SHA-256,
	// or empty for no SASL (only for brokers without authentication).
	Mechanism string
	// Username is the SASL user. Required when Mechanism is set.
	Username string
	// Password is the SASL password. Required when Mechanism is set. Never logged.
	Password string
	// TLS enables TLS to the brokers. Default false.
	TLS bool
	// CAFile is a PEM file with the CA that signed the brokers' certificates.
	// Empty means the system roots. Only used with TLS.
	CAFile string
	// InsecureSkipVerify disables broker certificate verification (tests only).
	InsecureSkipVerify bool
	// DialTimeout bounds connecting and authenticating to one broker, and
	// each request of the start-up check. Default 10s.
	DialTimeout time.Duration
	// StartupTimeout is how long a process waits at start for a broker
	// that cannot be reached (down, or not answering), retrying with
	// backoff, before it gives up. Wrong credentials and refused
	// authorization end the wait at once. Default 60s.
	StartupTimeout time.Duration
	// ClientID is sent to the broker to identify this process in its logs.
	ClientID string
}

// SetDefaults fills the zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.StartupTimeout == 0 {
		c.StartupTimeout = DefaultStartupTimeout
	}
	if c.ClientID == "" {
		c.ClientID = "invoicesync"
	}
}

// Validate reports the first setting that is missing or wrong, by name.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka brokers: at least one host:port is required")
	}
	for _, b := range c.Brokers {
		if !strings.Contains(b, ":") || strings.HasPrefix(b, ":") || strings.HasSuffix(b, ":") {
			return fmt.Errorf("kafka brokers: %q is not host:port", b)
		}
	}
	switch c.Mechanism {
	case MechanismNone:
	case MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		if c.Username == "" {
			return fmt.Errorf("kafka sasl username: required with mechanism %s", c.Mechanism)
		}
		if c.Password == "" {
			return fmt.Errorf("kafka sasl password: required with mechanism %s", c.Mechanism)
		}
	default:
		return fmt.Errorf("kafka sasl mechanism: %q is not supported (use %s, %s or empty for none)",
			c.Mechanism, MechanismSCRAMSHA512, MechanismSCRAMSHA256)
	}
	if c.CAFile != "" && !c.TLS {
		return errors.New("kafka ca file: set but TLS is off (enable TLS or remove the CA file)")
	}
	if c.DialTimeout < 0 {
		return errors.New("kafka dial timeout: must not be negative")
	}
	if c.StartupTimeout < 0 {
		return errors.New("kafka startup timeout: must not be negative")
	}
	return nil
}

// String describes the configuration with the password masked, for startup logs.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = "****"
	}
	return fmt.Sprintf("brokers=%s mechanism=%q user=%q password=%q tls=%t ca_file=%q",
		strings.Join(c.Brokers, ","), c.Mechanism, c.Username, pw, c.TLS, c.CAFile)
}

// ParseBrokers splits a comma-separated broker list, dropping blanks.
func ParseBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// mechanism builds the SASL mechanism, or nil when SASL is off.
func (c *Config) mechanism() (sasl.Mechanism, error) {
	auth := scram.Auth{User: c.Username, Pass: c.Password}
	switch c.Mechanism {
	case MechanismNone:
		return nil, nil
	case MechanismSCRAMSHA256:
		return auth.AsSha256Mechanism(), nil
	case MechanismSCRAMSHA512:
		return auth.AsSha512Mechanism(), nil
	default:
		return nil, fmt.Errorf("kafka sasl mechanism: %q is not supported", c.Mechanism)
	}
}

// tlsConfig builds the TLS configuration, or nil when TLS is off.
func (c *Config) tlsConfig() (*tls.Config, error) {
	if !c.TLS {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in for tests
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka ca file: %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
