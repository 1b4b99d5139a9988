// Package logging builds the process logger (zerolog): JSON lines by default,
// readable console output when writing to a terminal, and child loggers that
// carry the identifiers of the event being handled.
package logging

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// Formats accepted by New.
const (
	FormatAuto    = "auto"    // console on a terminal, JSON otherwise
	FormatJSON    = "json"    // one JSON object per line
	FormatConsole = "console" // human-readable, colored on a terminal
)

// New builds a logger writing to w in format at level (debug, info, warn,
// error). service is added to every line.
func New(w io.Writer, format, level, service string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("log level: %q is not one of debug, info, warn, error", level)
	}
	switch format {
	case FormatAuto, "":
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
		}
	case FormatConsole:
		f, ok := w.(*os.File)
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !ok || !isatty.IsTerminal(f.Fd())}
	case FormatJSON:
	default:
		return zerolog.Nop(), fmt.Errorf("log format: %q is not one of auto, json, console", format)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("service", service).Logger(), nil
}

// Event field names used on every line about an event.
const (
	FieldEventID     = "event_id"
	FieldAggregateID = "aggregate_id"
	FieldTopic       = "topic"
	FieldPartition   = "partition"
	FieldOffset      = "offset"
)

// WithContext stores l in ctx; Ctx retrieves it.
func WithContext(ctx context.Context, l zerolog.Logger) context.Context {
	return l.WithContext(ctx)
}

// Ctx returns the logger stored in ctx, or a disabled one.
func Ctx(ctx context.Context) *zerolog.Logger { return zerolog.Ctx(ctx) }
