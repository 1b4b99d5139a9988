package deadletter

import (
	"bytes"
	"encoding/json"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/dlq"
)

// Decoded is an entry's value read with the event contract, for display.
type Decoded struct {
	// Envelope is the decoded envelope, with its payload indented; nil when
	// the value does not decode.
	Envelope *contract.Envelope
	// EnvelopeErr says why the value is not a valid envelope.
	EnvelopeErr error
	// History is the decoded payload of an invoice history event.
	History *contract.History
	// PayloadErr says why the payload does not decode (or that its event
	// type is unknown to this build).
	PayloadErr error
}

// Decode reads value as an event of the contract. It never fails: what does
// not decode is described in the Err fields, which is what an operator
// looking at a dead-letter entry needs to see.
func Decode(value []byte) Decoded {
	var d Decoded
	env, err := contract.DecodeEnvelope(value)
	if err != nil {
		d.EnvelopeErr = err
		return d
	}
	if env.EventType != contract.EventTypeHistoryChanged {
		d.PayloadErr = errUnknownEventType(env.EventType)
	} else if h, err := contract.DecodeHistory(env.Payload); err != nil {
		d.PayloadErr = err
	} else {
		d.History = &h
	}
	var indented bytes.Buffer
	if json.Indent(&indented, env.Payload, "", "  ") == nil {
		env.Payload = indented.Bytes()
	}
	d.Envelope = &env
	return d
}

type errUnknownEventType string

func (e errUnknownEventType) Error() string {
	return "event type " + string(e) + " is not one this build decodes"
}

// eventID is the original event's id: its event-id header, or the envelope's
// eventId when the header is missing.
func eventID(e dlq.Entry) string {
	if id := e.Header(contract.HeaderEventID); id != "" {
		return id
	}
	var env struct {
		EventID string `json:"eventId"`
	}
	if json.Unmarshal(e.Value, &env) == nil {
		return env.EventID
	}
	return ""
}
