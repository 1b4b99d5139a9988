package kafkasec_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

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

// saslBroker starts an embedded broker with SCRAM-SHA-512 on (plaintext)
// on port (0: any) and returns it.
func saslBroker(t *testing.T, port int) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.EnableSASL(),
		kfake.Superuser(kafkasec.MechanismSCRAMSHA512, tlsUser, tlsPassword), kfake.SeedTopics(1, tlsTopic))
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// freePort returns a loopback port nothing listens on (yet).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// checkFails runs Check with cfg and returns its error, failing the test
// when there is none, when it does not name the broker or any of hints, or
// when it comes later than the dial timeout allows.
func checkFails(t *testing.T, cfg kafkasec.Config, hints ...string) error {
	t.Helper()
	conn, err := kafkasec.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	err = conn.Check(context.Background())
	took := time.Since(start)
	t.Logf("Check failed in %v: %v", took.Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("Check succeeded")
	}
	if !strings.Contains(err.Error(), cfg.Brokers[0]) {
		t.Errorf("error does not name the broker %s", cfg.Brokers[0])
	}
	found := false
	for _, h := range hints {
		found = found || strings.Contains(err.Error(), h)
	}
	if !found {
		t.Errorf("error does not say what is likely wrong (any of %q)", hints)
	}
	if cfg.Password != "" && strings.Contains(err.Error(), cfg.Password) {
		t.Errorf("error leaks the password")
	}
	if limit := cfg.DialTimeout + 3*time.Second; took > limit {
		t.Errorf("Check took %v, more than the dial timeout %v and a margin", took, cfg.DialTimeout)
	}
	return err
}

// Each way of reaching the wrong thing fails within the dial timeout with
// an error that names the broker and what is likely wrong.
func TestCheckExplainsMisconfiguredConnections(t *testing.T) {
	ca := newTestCA(t, "invoicesync test CA")
	tlsAddr := tlsBroker(t, ca)
	plainAddr := saslBroker(t, 0).ListenAddrs()[0]
	http := httptest.NewServer(httpHandler{})
	t.Cleanup(http.Close)
	httpAddr := strings.TrimPrefix(http.URL, "http://")
	scram := func(addr string) kafkasec.Config {
		return kafkasec.Config{Brokers: []string{addr}, Mechanism: kafkasec.MechanismSCRAMSHA512,
			Username: tlsUser, Password: tlsPassword, DialTimeout: 3 * time.Second}
	}
	t.Run("no SASL against a SASL listener", func(t *testing.T) {
		cfg := scram(plainAddr)
		cfg.Mechanism, cfg.Username, cfg.Password = "", "", ""
		checkFails(t, cfg, "SASL", "KAFKA_SASL_MECHANISM")
	})
	t.Run("TLS against a plaintext listener", func(t *testing.T) {
		cfg := scram(plainAddr)
		cfg.TLS, cfg.InsecureSkipVerify = true, true
		checkFails(t, cfg, "TLS")
	})
	t.Run("plaintext against a TLS listener", func(t *testing.T) {
		checkFails(t, scram(tlsAddr), "TLS")
	})
	t.Run("an HTTP server", func(t *testing.T) {
		checkFails(t, scram(httpAddr), "HTTP", "not a Kafka broker", "a Kafka broker")
	})
	t.Run("a listener that never answers", func(t *testing.T) {
		cfg := scram(testsupport.NewSilentListener(t).Addr())
		cfg.DialTimeout = time.Second
		checkFails(t, cfg, "no answer within 1s")
	})
}

type httpHandler struct{}

func (httpHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	_, _ = io.WriteString(w, "hello")
}

// A check waiting on a broker that never answers ends as soon as its
// context does, whatever the dial timeout: a stop signal is never held up.
func TestCheckGivesWayToCancellation(t *testing.T) {
	conn, err := kafkasec.New(kafkasec.Config{Brokers: []string{testsupport.NewSilentListener(t).Addr()}, DialTimeout: time.Minute,
		Mechanism: kafkasec.MechanismSCRAMSHA512, Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for name, wait := range map[string]func(context.Context) error{
		"Check":     conn.Check,
		"WaitReady": func(ctx context.Context) error { return conn.WaitReady(ctx, zerolog.Nop()) },
	} {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		err := wait(ctx)
		took := time.Since(start)
		t.Logf("%s cancelled after 300ms returned after %v: %v", name, took.Round(time.Millisecond), err)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s = %v, want context.Canceled", name, err)
		}
		if took > 2*time.Second {
			t.Errorf("%s took %v to give way to a cancelled context", name, took)
		}
	}
}

// WaitReady keeps trying a broker that is down and uses it once it is up.
func TestWaitReadyUsesABrokerThatComesUp(t *testing.T) {
	port := freePort(t)
	conn, err := kafkasec.New(kafkasec.Config{Brokers: []string{fmt.Sprintf("127.0.0.1:%d", port)},
		Mechanism: kafkasec.MechanismSCRAMSHA512, Username: tlsUser, Password: tlsPassword,
		DialTimeout: 2 * time.Second, StartupTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	up := make(chan *kfake.Cluster, 1)
	time.AfterFunc(1500*time.Millisecond, func() {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.EnableSASL(),
			kfake.Superuser(kafkasec.MechanismSCRAMSHA512, tlsUser, tlsPassword), kfake.SeedTopics(1, tlsTopic))
		if err != nil {
			t.Errorf("start the broker late: %v", err)
		}
		up <- c
	})
	t.Cleanup(func() {
		if c := <-up; c != nil {
			c.Close()
		}
	})
	var logs testsupport.SyncBuffer
	start := time.Now()
	if err := conn.WaitReady(context.Background(), zerolog.New(&logs), tlsTopic); err != nil {
		t.Fatalf("WaitReady = %v; logs:\n%s", err, logs.String())
	}
	t.Logf("ready after %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("no retry was logged while the broker was down:\n%s", logs.String())
	}
}

// WaitReady gives up after the startup timeout, saying so and naming the
// broker; wrong credentials end it at once.
func TestWaitReadyGivesUp(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	conn, err := kafkasec.New(kafkasec.Config{Brokers: []string{addr}, DialTimeout: time.Second,
		StartupTimeout: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	err = conn.WaitReady(context.Background(), zerolog.Nop())
	took := time.Since(start)
	t.Logf("gave up after %v: %v", took.Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "KAFKA_STARTUP_TIMEOUT") ||
		!strings.Contains(err.Error(), "1.5s") {
		t.Fatalf("WaitReady = %v, want an error naming %s, 1.5s and KAFKA_STARTUP_TIMEOUT", err, addr)
	}
	if took < 1500*time.Millisecond || took > 5*time.Second {
		t.Errorf("gave up after %v, want about 1.5s", took)
	}

	b := saslBroker(t, 0)
	conn, err = kafkasec.New(kafkasec.Config{Brokers: b.ListenAddrs(), Mechanism: kafkasec.MechanismSCRAMSHA512,
		Username: tlsUser, Password: "wrong", DialTimeout: 2 * time.Second, StartupTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start = time.Now()
	err = conn.WaitReady(context.Background(), zerolog.Nop())
	t.Logf("wrong password: failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, kafkasec.ErrAuthentication) || time.Since(start) > 10*time.Second {
		t.Fatalf("WaitReady with a wrong password = %v after %v, want an authentication error at once", err, time.Since(start))
	}
}
