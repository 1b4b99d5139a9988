package kafkasec

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
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

// kafka-go's WriteErrors has no Unwrap: WriteCause must expose the causes.
func TestWriteCauseUnwrapsWriteErrors(t *testing.T) {
	err := WriteCause(kafka.WriteErrors{nil, kafka.SASLAuthenticationFailed, kafka.SASLAuthenticationFailed, io.ErrUnexpectedEOF})
	if !errors.Is(err, kafka.SASLAuthenticationFailed) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("WriteCause = %v: causes not reachable with errors.Is", err)
	}
	if plain := errors.New("x"); WriteCause(plain) != plain {
		t.Fatal("WriteCause changed an error that is not WriteErrors")
	}
}
