package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/invoicesync/invoicesync/pkg/logging"
)

// requestNote collects what the request log line reports beyond the request
// itself; handlers fill it through noteHistory and noteError.
type requestNote struct {
	historyID int64
	err       error
}

type noteKey struct{}

func noteHistory(r *http.Request, id int64) {
	if n, ok := r.Context().Value(noteKey{}).(*requestNote); ok {
		n.historyID = id
	}
}

func noteError(r *http.Request, err error) {
	if n, ok := r.Context().Value(noteKey{}).(*requestNote); ok {
		n.err = err
	}
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// logRequests logs one line per request: at debug level, or at error level
// with the error when the answer is a server error.
func (h *handler) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		note := &requestNote{}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), noteKey{}, note)))
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		ev := h.log.Debug()
		switch {
		case sw.status >= 500 && r.Context().Err() == nil:
			ev = h.log.Error().Err(note.err)
		case note.err != nil:
			ev = ev.Str("problem", note.err.Error())
		}
		if note.historyID != 0 {
			ev = ev.Int64(logging.FieldAggregateID, note.historyID)
		}
		ev.Str("method", r.Method).Str("path", r.URL.Path).Int("status", sw.status).
			Dur("duration", time.Since(start)).Msg("http request")
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
