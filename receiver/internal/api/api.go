// Package api serves SCI-Receiver's read API over HTTP with JSON bodies:
// one history with its forms, and a destination's histories newest first in
// keyset pages. Amounts are decimal strings so they stay exact; instants are
// RFC 3339 in UTC and calendar dates are YYYY-MM-DD.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/receiver/internal/store"
)

// Page sizes of the list endpoint.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Reader is what the API reads; *store.Store is one.
type Reader interface {
	Get(ctx context.Context, historyID int64) (store.History, error)
	ListByDestination(ctx context.Context, destinationCode string, limit int, cursor string) (store.Page, error)
}

// Config adds the process's own parts to the API. Both fields are optional.
type Config struct {
	// Routes, when set, adds the process's operational routes (metrics,
	// readiness) to the API's mux.
	Routes func(mux *http.ServeMux)
	// Wrap, when set, wraps the mux itself, so it sees the matched route
	// pattern (r.Pattern), e.g. for metrics.
	Wrap func(http.Handler) http.Handler
}

type api struct {
	r   Reader
	log zerolog.Logger
}

// New returns the API's handler:
//
//	GET /v1/histories/{historyId}                  one history with its forms, or 404
//	GET /v1/destinations/{destinationCode}/histories?limit=&cursor=
//	                                               {"items": [...], "nextCursor": "..."}
//	GET /healthz                                   200 while the process serves
//
// plus cfg.Routes. Errors are {"error": "..."} naming the parameter at
// fault (400: a historyId that is not a positive integer, a destinationCode
// that is not UTF-8, holds NUL or is longer than 255 characters, a bad
// limit or cursor); failures of the database are logged here once and answered 500
// without details.
func New(cfg Config, r Reader, log zerolog.Logger) http.Handler {
	a := &api{r: r, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/histories/{historyId}", a.getHistory)
	mux.HandleFunc("GET /v1/destinations/{destinationCode}/histories", a.listHistories)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if cfg.Routes != nil {
		cfg.Routes(mux)
	}
	if cfg.Wrap != nil {
		return cfg.Wrap(mux)
	}
	return mux
}

func (a *api) getHistory(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("historyId")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("historyId: %q is not a positive integer", raw))
		return
	}
	h, err := a.r.Get(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("history %d not found", id))
	case err != nil:
		a.internal(w, r, err)
	default:
		writeJSON(w, http.StatusOK, detailOf(h))
	}
}

func (a *api) listHistories(w http.ResponseWriter, r *http.Request) {
	limit := DefaultLimit
	if raw := r.URL.Query().Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: %q is not an integer from 1 to %d", raw, MaxLimit))
			return
		}
		limit = n
	}
	code := r.PathValue("destinationCode")
	// The contract's text rules: a value PostgreSQL cannot hold (NUL,
	// invalid UTF-8) is refused here rather than failed on there.
	if problem := contract.TextProblem(code, contract.MaxTextLen); problem != "" {
		writeError(w, http.StatusBadRequest, "destinationCode: "+problem)
		return
	}
	page, err := a.r.ListByDestination(r.Context(), code, limit, r.URL.Query().Get("cursor"))
	switch {
	case errors.Is(err, store.ErrBadCursor):
		writeError(w, http.StatusBadRequest, "cursor: not one this API issued (pass nextCursor from the previous page unchanged)")
	case err != nil:
		a.internal(w, r, err)
	default:
		out := listJSON{Items: make([]historyJSON, 0, len(page.Items)), NextCursor: page.NextCursor}
		for _, h := range page.Items {
			out.Items = append(out.Items, summaryOf(h))
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (a *api) internal(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away; nobody reads the answer
	}
	a.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("request failed")
	writeError(w, http.StatusInternalServerError, "internal error")
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a write error means the client is gone
}
