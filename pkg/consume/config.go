package consume

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Config tunes a Consumer. Topic and GroupID are required; every other field
// has a default filled in by SetDefaults.
type Config struct {
	// Topic is the topic to consume. Required.
	Topic string
	// GroupID is the consumer group; the group's committed offsets are where
	// a restarted consumer resumes. Required.
	GroupID string
	// MinBytes is the least data a fetch waits for. Default 1, so a single
	// message is delivered at once.
	MinBytes int
	// MaxBytes caps one fetch response. Default 10 MiB.
	MaxBytes int
	// MaxWait bounds how long a fetch waits for MinBytes. Default 100ms: low
	// latency matters more here than fetch efficiency.
	MaxWait time.Duration
	// SessionTimeout is how long the group coordinator waits for a heartbeat
	// before it hands this member's partitions to another. Default 30s.
	SessionTimeout time.Duration
	// MinBackoff is the first pause before a failed message is handled again;
	// it doubles with each failure (with jitter) up to MaxBackoff. Default 100ms.
	MinBackoff time.Duration
	// MaxBackoff caps the pause between attempts. Default 10s.
	MaxBackoff time.Duration
	// DrainTimeout bounds how long Run waits, after its context is cancelled,
	// for the message in flight to be handled and committed. Default 10s.
	DrainTimeout time.Duration
}

// SetDefaults fills the zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.MinBytes == 0 {
		c.MinBytes = 1
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 10 << 20
	}
	if c.MaxWait == 0 {
		c.MaxWait = 100 * time.Millisecond
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 30 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
}

// Validate reports the first setting that is missing or wrong, by name.
func (c *Config) Validate() error {
	switch {
	case c.Topic == "":
		return errors.New("consumer topic: required")
	case c.GroupID == "":
		return errors.New("consumer group id: required")
	case c.MinBytes < 1:
		return fmt.Errorf("consumer min bytes: must be at least 1, got %d", c.MinBytes)
	case c.MaxBytes < c.MinBytes:
		return fmt.Errorf("consumer max bytes: %d is below min bytes %d", c.MaxBytes, c.MinBytes)
	case c.MaxWait <= 0:
		return fmt.Errorf("consumer max wait: must be positive, got %v", c.MaxWait)
	case c.SessionTimeout < time.Second:
		return fmt.Errorf("consumer session timeout: must be at least 1s, got %v", c.SessionTimeout)
	case c.MinBackoff <= 0:
		return fmt.Errorf("consumer min backoff: must be positive, got %v", c.MinBackoff)
	case c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("consumer max backoff: %v is below min backoff %v", c.MaxBackoff, c.MinBackoff)
	case c.DrainTimeout <= 0:
		return fmt.Errorf("consumer drain timeout: must be positive, got %v", c.DrainTimeout)
	}
	return nil
}

// String describes the configuration for startup logs.
func (c Config) String() string {
	return "topic=" + c.Topic + " group=" + c.GroupID +
		" max_wait=" + c.MaxWait.String() + " session_timeout=" + c.SessionTimeout.String() +
		" backoff=" + c.MinBackoff.String() + ".." + c.MaxBackoff.String() +
		" drain_timeout=" + c.DrainTimeout.String() + " min_bytes=" + strconv.Itoa(c.MinBytes)
}
