package kafkasec_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
	"github.com/invoicesync/invoicesync/pkg/testsupport"
)

func TestCheckAcceptsValidCredentials(t *testing.T) {
	k := testsupport.NewKafka(t)
	if err := k.Conn.Check(context.Background()); err != nil {
		t.Fatalf("Check with valid credentials: %v", err)
	}
}

func TestCheckReportsBadCredentialsClearly(t *testing.T) {
	k := testsupport.NewKafka(t)
	cases := map[string]func(c *kafkasec.Config){
		"wrong password": func(c *kafkasec.Config) { c.Password = "not-the-password" },
		"wrong user":     func(c *kafkasec.Config) { c.Username = "nobody" },
		"wrong mechanism": func(c *kafkasec.Config) {
			if c.Mechanism == kafkasec.MechanismSCRAMSHA512 {
				c.Mechanism = kafkasec.MechanismSCRAMSHA256
			} else {
				c.Mechanism = kafkasec.MechanismSCRAMSHA512
			}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := k.Config
			mutate(&cfg)
			conn, err := kafkasec.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = conn.Check(context.Background())
			if !errors.Is(err, kafkasec.ErrAuthentication) {
				t.Fatalf("Check = %v, want an authentication error", err)
			}
			msg := err.Error()
			for _, want := range []string{cfg.Brokers[0], cfg.Mechanism, cfg.Username} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not name %q", msg, want)
				}
			}
			if strings.HasPrefix(msg, "unexpected EOF") {
				t.Errorf("error is the bare kafka-go text: %q", msg)
			}
			if strings.Contains(msg, cfg.Password) {
				t.Errorf("error leaks the password: %q", msg)
			}
			t.Logf("reported in %v: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

func TestCheckNamesUnreachableBroker(t *testing.T) {
	conn, err := kafkasec.New(kafkasec.Config{Brokers: []string{"127.0.0.1:1"}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = conn.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("Check = %v, want an error naming 127.0.0.1:1", err)
	}
	if errors.Is(err, kafkasec.ErrAuthentication) {
		t.Fatalf("refused connection reported as authentication failure: %v", err)
	}
}

func TestCheckTopicsNamesMissingTopic(t *testing.T) {
	k := testsupport.NewKafka(t)
	have := k.Topic(t, "present", 1)
	if err := k.Conn.CheckTopics(context.Background(), have); err != nil {
		t.Fatalf("CheckTopics(existing) = %v", err)
	}
	err := k.Conn.CheckTopics(context.Background(), have, "no-such-topic")
	if err == nil || !strings.Contains(err.Error(), "no-such-topic") || strings.Contains(err.Error(), have+",") {
		t.Fatalf("CheckTopics = %v, want an error naming only no-such-topic", err)
	}
}
