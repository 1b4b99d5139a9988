package kafkasec

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestValidateNamesTheSetting(t *testing.T) {
	ok := Config{Brokers: []string{"b:9092"}, Mechanism: MechanismSCRAMSHA512, Username: "u", Password: "p"}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; empty means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no sasl is allowed", func(c *Config) { c.Mechanism, c.Username, c.Password = "", "", "" }, ""},
		{"no brokers", func(c *Config) { c.Brokers = nil }, "kafka brokers"},
		{"broker without port", func(c *Config) { c.Brokers = []string{"host"} }, `"host" is not host:port`},
		{"unknown mechanism", func(c *Config) { c.Mechanism = "PLAIN" }, "kafka sasl mechanism"},
		{"missing user", func(c *Config) { c.Username = "" }, "kafka sasl username"},
		{"missing password", func(c *Config) { c.Password = "" }, "kafka sasl password"},
		{"ca without tls", func(c *Config) { c.CAFile = "/ca.pem" }, "kafka ca file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestStringMasksPassword(t *testing.T) {
	c := Config{Brokers: []string{"b:1"}, Username: "u", Password: "hunter2"}
	if s := c.String(); strings.Contains(s, "hunter2") {
		t.Fatalf("String leaks the password: %s", s)
	}
}

func TestParseBrokers(t *testing.T) {
	got := ParseBrokers(" a:1, ,b:2,")
	if len(got) != 2 || got[0] != "a:1" || got[1] != "b:2" {
		t.Fatalf("ParseBrokers = %q", got)
	}
}

// Only the broker's typed SASL answers are authentication failures: a
// network error that merely mentions SASL, or a connection closed, must not
// be, since processes stop for good on one. Refused ACLs are authorization
// failures, also fatal.
func TestExplainClassifiesOnlyRealAuthFailures(t *testing.T) {
	c, err := New(Config{Brokers: []string{"b:9092"}, Mechanism: MechanismSCRAMSHA512, Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	auth := fmt.Errorf("unable to authenticate to b:9092: %w", kerr.SaslAuthenticationFailed)
	if err := c.Explain("b:9092", auth); !errors.Is(err, ErrAuthentication) || !Fatal(err) {
		t.Fatalf("typed SASL failure = %v, want ErrAuthentication", err)
	}
	blip := errors.New("SASL handshake failed: read tcp 10.0.0.1:9092: i/o timeout")
	if err := c.Explain("b:9092", blip); errors.Is(err, ErrAuthentication) || Fatal(err) {
		t.Fatalf("network timeout during SASL = %v, classified as fatal", err)
	}
	if err := c.Explain("b:9092", io.ErrUnexpectedEOF); errors.Is(err, ErrAuthentication) || Fatal(err) {
		t.Fatalf("EOF = %v, classified as an authentication failure", err)
	}
	denied := c.Explain("b:9092", fmt.Errorf("produce: %w", kerr.TopicAuthorizationFailed))
	if !errors.Is(denied, ErrAuthorization) || !Fatal(denied) || !strings.Contains(denied.Error(), "User:u") {
		t.Fatalf("refused ACL = %v, want ErrAuthorization naming User:u", denied)
	}
}
