package consume

import (
	"context"
	"errors"
	"net"
	"strconv"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kgoLogger passes the client's own log lines (connections, group
// membership, offset resets) to zerolog: its warnings and errors as such,
// its informational lines at debug level.
type kgoLogger struct{ log zerolog.Logger }

func (l kgoLogger) Level() kgo.LogLevel {
	if l.log.GetLevel() <= zerolog.DebugLevel {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var e *zerolog.Event
	switch level {
	case kgo.LogLevelError:
		e = l.log.Error()
	case kgo.LogLevelWarn:
		e = l.log.Warn()
	case kgo.LogLevelInfo:
		e = l.log.Debug()
	default:
		return
	}
	for i := 0; i+1 < len(keyvals); i += 2 {
		k, ok := keyvals[i].(string)
		if !ok {
			continue
		}
		if err, ok := keyvals[i+1].(error); ok {
			e = e.AnErr("kgo_"+k, err)
		} else {
			e = e.Interface("kgo_"+k, keyvals[i+1])
		}
	}
	e.Msg(msg)
}

// requestFailureLog logs every request to a broker that failed on the wire
// (a dropped connection, a timeout): the client retries them, which would
// otherwise go unnoticed.
type requestFailureLog struct {
	ctx context.Context // once done, failures are the client closing
	log zerolog.Logger
}

func (h requestFailureLog) OnBrokerE2E(meta kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	err := e2e.Err()
	if err == nil || h.ctx.Err() != nil || errors.Is(err, kgo.ErrClientClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed) {
		return
	}
	h.log.Warn().Err(err).Str("broker", net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))).
		Str("request", kmsg.NameForKey(key)).Msg("kafka request failed; the client retries")
}
