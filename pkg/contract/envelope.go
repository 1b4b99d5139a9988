// Package contract is the event contract between the services, in one place:
// the versioned envelope every message carries, the payloads it wraps, their
// validation, and the Kafka header names. The sender validates before it
// enqueues; the receiver validates before it transforms.
package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is the envelope schema this build writes. Readers accept any
// 1.x (minor versions only add optional fields) and reject other majors with
// ErrUnsupportedSchema so they can be routed deliberately.
const SchemaVersion = "1.0"

// SupportedMajor is the envelope major version this build understands.
const SupportedMajor = 1

// Kafka header names set on every published event.
const (
	HeaderEventID       = "event-id"
	HeaderEventType     = "event-type"
	HeaderAggregateType = "aggregate-type"
	HeaderAggregateID   = "aggregate-id"
	HeaderVersion       = "version"
	HeaderSchemaVersion = "schema-version"
	HeaderOccurredAt    = "occurred-at"
)

// ErrUnsupportedSchema marks an envelope whose major schema version this
// build does not understand.
var ErrUnsupportedSchema = errors.New("unsupported schema version")

// ErrInvalid marks an event that does not satisfy the contract. The error
// text names the field at fault.
var ErrInvalid = errors.New("invalid event")

// Envelope wraps every event. AggregateID is also the Kafka message key, so
// all events of one aggregate land on one partition, in order.
type Envelope struct {
	// EventID is unique per event (a UUID); consumers deduplicate on it.
	EventID string `json:"eventId"`
	// EventType names the payload's meaning, e.g. "invoice_history.changed".
	EventType string `json:"eventType"`
	// AggregateType names the kind of aggregate, e.g. "invoice_history".
	AggregateType string `json:"aggregateType"`
	// AggregateID identifies the aggregate within its type.
	AggregateID string `json:"aggregateId"`
	// Version grows by at least one with every change of the aggregate.
	Version int64 `json:"version"`
	// OccurredAt is when the change was written at the source.
	OccurredAt time.Time `json:"occurredAt"`
	// SchemaVersion is "major.minor" of the envelope and payload schema.
	SchemaVersion string `json:"schemaVersion"`
	// Payload is the event body; its shape depends on EventType.
	Payload json.RawMessage `json:"payload"`
}

// Validate checks the envelope fields; it does not look inside Payload.
func (e *Envelope) Validate() error {
	var v problems
	if e.SchemaVersion == "" {
		v.add("schemaVersion", "is required")
	} else if major, err := MajorVersion(e.SchemaVersion); err != nil {
		v.add("schemaVersion", err.Error())
	} else if major != SupportedMajor {
		return fmt.Errorf("%w: %q (this build reads %d.x)", ErrUnsupportedSchema, e.SchemaVersion, SupportedMajor)
	}
	if e.EventID == "" {
		v.add("eventId", "is required")
	} else if !isUUID(e.EventID) {
		v.add("eventId", "must be a UUID")
	}
	if e.EventType == "" {
		v.add("eventType", "is required")
	}
	if e.AggregateType == "" {
		v.add("aggregateType", "is required")
	}
	if e.AggregateID == "" {
		v.add("aggregateId", "is required")
	}
	if e.Version <= 0 {
		v.add("version", "must be positive")
	}
	if e.OccurredAt.IsZero() {
		v.add("occurredAt", "is required")
	}
	if len(bytes.TrimSpace(e.Payload)) == 0 || string(bytes.TrimSpace(e.Payload)) == "null" {
		v.add("payload", "is required")
	}
	return v.err()
}

// Marshal validates e and encodes it.
func (e *Envelope) Marshal() ([]byte, error) {
	if e.SchemaVersion == "" {
		e.SchemaVersion = SchemaVersion
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// DecodeEnvelope parses and validates an envelope. Unknown fields are
// accepted (a newer minor version may add some).
func DecodeEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Envelope{}, fmt.Errorf("%w: envelope is not valid JSON: %v", ErrInvalid, err)
	}
	if err := e.Validate(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// MajorVersion parses the major part of a "major.minor" schema version.
func MajorVersion(s string) (int, error) {
	majorStr, _, _ := strings.Cut(s, ".")
	major, err := strconv.Atoi(majorStr)
	if err != nil || major < 0 {
		return 0, fmt.Errorf("%q is not major.minor", s)
	}
	return major, nil
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}

// problems collects field errors so one error names every field at fault.
type problems []string

func (p *problems) add(field, problem string) { *p = append(*p, field+": "+problem) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(p, "; "))
}
