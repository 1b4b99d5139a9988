package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A wrong SCRAM password makes the relay and the receiver exit non-zero
// within seconds (not after KAFKA_STARTUP_TIMEOUT: retrying cannot fix
// it) with an error naming the broker, the mechanism and the user: no hang,
// no bare "unexpected EOF", no password in the output.
func TestWrongPasswordExitsWithClearError(t *testing.T) {
	s := newStack(t)
	const bad = "wrong-password-123"
	for _, c := range []struct{ bin, cmd string }{{bins.sender, "relay"}, {bins.receiver, "serve"}} {
		t.Run(c.cmd, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, c.bin, c.cmd)
			cmd.Env = append(append([]string(nil), s.env...), "KAFKA_SASL_PASSWORD="+bad,
				"RECEIVER_HTTP_ADDR="+freeAddr(t))
			start := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(start)
			t.Logf("%s %s exited after %v:\n%s", c.bin, c.cmd, took.Round(time.Millisecond), tail(string(out), 2))
			if took > 15*time.Second {
				t.Errorf("a wrong password took %v to end %s", took, c.cmd)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("%s %s with a wrong password: err=%v (want a non-zero exit)\n%s", c.bin, c.cmd, err, out)
			}
			text := string(out)
			for _, want := range []string{"authentication failed", s.kafka.Config.Brokers[0], s.kafka.Config.Mechanism, s.kafka.Config.Username} {
				if !strings.Contains(text, want) {
					t.Errorf("output does not name %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, bad) {
				t.Errorf("output leaks the password:\n%s", text)
			}
		})
	}
}
