package settings

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestPrecedenceDefaultEnvFlag(t *testing.T) {
	var addr string
	var n int
	var d time.Duration
	s := New("x", "test")
	s.SetOutput(io.Discard)
	s.String(&addr, "addr", "X_ADDR", ":1", "")
	s.Int(&n, "n", "X_N", 3, "")
	s.Duration(&d, "d", "X_D", time.Second, "")
	s.SetLookup(env(map[string]string{"X_ADDR": ":2", "X_N": "7"}))
	if err := s.Parse([]string{"-n", "9"}); err != nil {
		t.Fatal(err)
	}
	if addr != ":2" || n != 9 || d != time.Second {
		t.Fatalf("addr=%q n=%d d=%v; want env :2, flag 9, default 1s", addr, n, d)
	}
}

func TestBadEnvValueNamesTheVariable(t *testing.T) {
	var n int
	s := New("x", "test")
	s.SetOutput(io.Discard)
	s.Int(&n, "n", "X_N", 3, "")
	s.SetLookup(env(map[string]string{"X_N": "many"}))
	err := s.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "X_N") || !strings.Contains(err.Error(), "many") {
		t.Fatalf("Parse = %v, want an error naming X_N and its value", err)
	}
}

func TestUnknownFlagAndStrayArgument(t *testing.T) {
	s := New("x", "test")
	s.SetOutput(io.Discard)
	s.SetLookup(env(nil))
	if err := s.Parse([]string{"--nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("Parse(--nope) = %v", err)
	}
	s2 := New("x", "test")
	s2.SetLookup(env(nil))
	if err := s2.Parse([]string{"stray"}); err == nil || !strings.Contains(err.Error(), "stray") {
		t.Fatalf("Parse(stray) = %v", err)
	}
}

func TestKafkaSettingsAndSecretMasked(t *testing.T) {
	var c kafkasec.Config
	s := New("x", "test")
	s.Kafka(&c)
	s.SetLookup(env(map[string]string{"KAFKA_BROKERS": "a:1,b:2", "KAFKA_SASL_PASSWORD": "hunter2", "KAFKA_SASL_USERNAME": "u"}))
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if len(c.Brokers) != 2 || c.Password != "hunter2" || c.Username != "u" || c.Mechanism != kafkasec.MechanismSCRAMSHA512 {
		t.Fatalf("config = %+v", c)
	}
	for k, v := range s.Describe() {
		if strings.Contains(v, "hunter2") {
			t.Fatalf("Describe leaks the password in %s", k)
		}
	}
}
