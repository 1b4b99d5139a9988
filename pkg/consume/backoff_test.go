package consume

import (
	"testing"
	"time"
)

func TestBackoffDoublesWithJitterAndCaps(t *testing.T) {
	c := &Consumer{cfg: Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second}}
	for n, base := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		5: 1600 * time.Millisecond, 8: 10 * time.Second, 40: 10 * time.Second, 1000: 10 * time.Second} {
		for range 50 {
			if d := c.backoff(n); d < base/2 || d > base {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, base/2, base)
			}
		}
	}
}
