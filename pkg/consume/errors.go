package consume

import "errors"

// ErrPermanent marks a handler error that retrying cannot fix: the message
// cannot be decoded, breaks the contract, or the database refuses it for
// good. Handlers mark errors with Permanent; the consumer tests errors.Is.
// A batch that fails permanently is split to find the message at fault,
// and that message alone is published to the dead-letter topic.
var ErrPermanent = errors.New("permanent failure")

// ClassUnknown is the dead-letter class of a permanent error that carries
// none (it wraps ErrPermanent without going through Permanent).
const ClassUnknown = "unknown"

// Permanent marks err as permanent (errors.Is(err, ErrPermanent) holds)
// with class, the dead-letter error class (one of the dlq.Class constants),
// without changing its text. Permanent(class, nil) is nil.
func Permanent(class string, err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{class: class, err: err}
}

type permanentError struct {
	class string
	err   error
}

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// ClassOf returns the dead-letter class err was marked with, ClassUnknown
// for a permanent error without one, and "" for an error that is not
// permanent.
func ClassOf(err error) string {
	var p *permanentError
	switch {
	case errors.As(err, &p) && p.class != "":
		return p.class
	case errors.Is(err, ErrPermanent):
		return ClassUnknown
	default:
		return ""
	}
}
