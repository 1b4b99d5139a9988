// Package api is the sender's HTTP API: SCI's services record send-invoice
// histories and set their final e-mail status over HTTP, through package
// history, each write in one transaction.
//
// Routes:
//
//	POST /v1/histories                       event-shaped history -> 201 {"historyId","version"} + Location
//	                                         with an Idempotency-Key header, a retry of the same
//	                                         request answers the same (Idempotent-Replayed: true)
//	PUT  /v1/histories/{historyId}/status    {"emailStatus"}      -> 200 {"historyId","version"}
//	GET  /v1/histories/{historyId}                                -> 200 {"version","history"} as last published
//	GET  /healthz                            liveness             -> 200 {"status":"ok"}
//
// Every error answers {"error": "...", "fields": [{"field", "problem"}]},
// fields present when a field is at fault:
//
//	400 the body is not one JSON object, has an unknown field, the path id is not a positive integer,
//	    or the Idempotency-Key is empty, longer than 255 bytes or not printable ASCII
//	404 the history does not exist
//	409 the Idempotency-Key expired while the request ran; retry
//	413 the body is larger than the limit
//	415 the Content-Type is not application/json
//	422 a field has the wrong JSON type or a value the contract refuses (text
//	    that is not UTF-8 or holds NUL included), or the Idempotency-Key was
//	    used for a different request
//	503 the database is unreachable; retry
//	500 anything else (logged)
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/invoicesync/invoicesync/pkg/contract"
	"github.com/invoicesync/invoicesync/pkg/db"
	"github.com/invoicesync/invoicesync/sender/history"
	"github.com/invoicesync/invoicesync/sender/internal/idempotency"
)

// DefaultMaxBodyBytes is the default request body limit: 512 KiB. The
// event carries the whole history, and Kafka's default message limit is
// 1 MB: a larger history would be recorded and then held back by the relay.
const DefaultMaxBodyBytes = 512 << 10

// Config tunes the handler.
type Config struct {
	// MaxBodyBytes caps a request body; larger ones get 413. Default 512 KiB.
	MaxBodyBytes int64
	// Routes, when set, adds the process's own routes (metrics, readiness)
	// to the API's mux.
	Routes func(mux *http.ServeMux)
	// Wrap, when set, wraps the mux inside the request logging, so it sees
	// the matched route pattern (r.Pattern), e.g. for metrics.
	Wrap func(http.Handler) http.Handler
}

// SetDefaults fills the zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
}

// Validate reports the first setting that is wrong, by name.
func (c *Config) Validate() error {
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("max body bytes: must be positive, got %d", c.MaxBodyBytes)
	}
	return nil
}

// Pool is what the handler needs of the database: transactions for writes,
// plain queries for reads. *pgxpool.Pool is one.
type Pool interface {
	db.Beginner
	db.Querier
}

type handler struct {
	pool    Pool
	log     zerolog.Logger
	maxBody int64
}

// NewHandler returns the API's handler; each write begins its transaction
// on pool.
func NewHandler(cfg Config, pool Pool, log zerolog.Logger) (http.Handler, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &handler{pool: pool, log: log, maxBody: cfg.MaxBodyBytes}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/histories", h.record)
	mux.HandleFunc("PUT /v1/histories/{historyId}/status", h.setStatus)
	mux.HandleFunc("GET /v1/histories/{historyId}", h.get)
	mux.HandleFunc("GET /healthz", h.healthz)
	if cfg.Routes != nil {
		cfg.Routes(mux)
	}
	var inner http.Handler = mux
	if cfg.Wrap != nil {
		inner = cfg.Wrap(mux)
	}
	return h.logRequests(inner), nil
}

// headerIdempotencyKey makes POST /v1/histories safe to retry (package
// idempotency).
const headerIdempotencyKey = "Idempotency-Key"

func (h *handler) record(w http.ResponseWriter, r *http.Request) {
	key, keyed := r.Header.Get(headerIdempotencyKey), len(r.Header.Values(headerIdempotencyKey)) > 0
	if keyed {
		if err := idempotency.CheckKey(key); err != nil {
			h.fail(w, r, badRequest(headerIdempotencyKey+" header: "+err.Error(),
				history.FieldProblem{Field: headerIdempotencyKey, Problem: err.Error()}))
			return
		}
	}
	in, err := decodeHistory(w, r, h.maxBody)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var fingerprint []byte
	if keyed {
		canonical, err := json.Marshal(in)
		if err != nil {
			h.fail(w, r, fmt.Errorf("fingerprint the request: %w", err))
			return
		}
		fingerprint = idempotency.Hash(canonical)
	}
	var rec history.Recorded
	err = db.InTx(r.Context(), h.pool, func(tx pgx.Tx) error {
		rec, err = history.Record(r.Context(), tx, in)
		if err != nil || !keyed {
			return err
		}
		return idempotency.Remember(r.Context(), tx, key, idempotency.Answer{
			RequestSHA256: fingerprint, HistoryID: rec.HistoryID, Version: rec.Version})
	})
	if errors.Is(err, idempotency.ErrKeyTaken) {
		h.replay(w, r, key, fingerprint)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.created(w, r, rec)
}

// replay answers a request whose Idempotency-Key already recorded a
// history: with the first answer when the request is the same, with 422
// when the key was used for another request.
func (h *handler) replay(w http.ResponseWriter, r *http.Request, key string, fingerprint []byte) {
	a, err := idempotency.Lookup(r.Context(), h.pool, key)
	switch {
	case idempotency.IsNotFound(err):
		// Purged between the conflict and the lookup: the key has expired.
		h.fail(w, r, &requestError{status: http.StatusConflict,
			msg: headerIdempotencyKey + " header: the key expired while this request ran; retry it"})
		return
	case err != nil:
		h.fail(w, r, err)
		return
	case !bytes.Equal(a.RequestSHA256, fingerprint):
		problem := "already used for a different request (recorded history " + strconv.FormatInt(a.HistoryID, 10) + "); use a new key for a new history"
		h.fail(w, r, &requestError{status: http.StatusUnprocessableEntity, msg: headerIdempotencyKey + " header: " + problem,
			fields: []history.FieldProblem{{Field: headerIdempotencyKey, Problem: problem}}})
		return
	}
	w.Header().Set("Idempotent-Replayed", "true")
	h.created(w, r, history.Recorded{HistoryID: a.HistoryID, Version: a.Version})
}

// created answers 201 with the recorded history's id and version.
func (h *handler) created(w http.ResponseWriter, r *http.Request, rec history.Recorded) {
	noteHistory(r, rec.HistoryID)
	w.Header().Set("Location", "/v1/histories/"+strconv.FormatInt(rec.HistoryID, 10))
	writeJSON(w, http.StatusCreated, rec)
}

// statusResponse answers a status update.
type statusResponse struct {
	HistoryID int64 `json:"historyId"`
	Version   int64 `json:"version"`
}

// pathID parses the {historyId} path value.
func pathID(r *http.Request) (int64, error) {
	raw := r.PathValue("historyId")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest("historyId in the path must be a positive integer",
			history.FieldProblem{Field: "historyId", Problem: fmt.Sprintf("must be a positive integer, got %q", raw)})
	}
	return id, nil
}

// getResponse is a history as last published.
type getResponse struct {
	Version int64            `json:"version"`
	History contract.History `json:"history"`
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	noteHistory(r, id)
	hist, version, err := history.Get(r.Context(), h.pool, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, getResponse{Version: version, History: hist})
}

func (h *handler) setStatus(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	noteHistory(r, id)
	status, err := decodeStatus(w, r, h.maxBody)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var version int64
	err = db.InTx(r.Context(), h.pool, func(tx pgx.Tx) error {
		version, err = history.SetStatus(r.Context(), tx, id, status)
		return err
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, statusResponse{HistoryID: id, Version: version})
}

func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// errorBody is every error response.
type errorBody struct {
	Error  string                 `json:"error"`
	Fields []history.FieldProblem `json:"fields,omitempty"`
}

// fail answers err and records it for the request log line, the one place
// it is logged.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	noteError(r, err)
	var reqErr *requestError
	var verr *history.ValidationError
	switch {
	case errors.As(err, &reqErr):
		writeJSON(w, reqErr.status, errorBody{Error: reqErr.msg, Fields: reqErr.fields})
	case errors.As(err, &verr):
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: verr.Error(), Fields: verr.Fields})
	case errors.Is(err, history.ErrNotFound):
		writeJSON(w, http.StatusNotFound, errorBody{Error: err.Error()})
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		w.WriteHeader(http.StatusServiceUnavailable)
	case db.IsTransient(err):
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "database unavailable: retry later"})
	default:
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
	}
}
