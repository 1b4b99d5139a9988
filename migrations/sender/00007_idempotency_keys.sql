-- Idempotency keys of POST /v1/histories. A client that did not get the
-- answer to a request (a timeout, a dropped connection) retries it with the
-- same Idempotency-Key header and gets the first answer again instead of
-- recording a second history. The key row is written in the transaction
-- that records the history, so either both exist or neither does; the
-- sender's serve process deletes keys older than SENDER_IDEMPOTENCY_KEY_TTL.

-- +goose Up
CREATE TABLE api_idempotency_key (
    idempotency_key text PRIMARY KEY,
    -- sha256 of the request as decoded, to refuse a key reused for another request
    request_sha256  bytea NOT NULL,
    history_id      bigint NOT NULL,
    version         bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_idempotency_key_created_at ON api_idempotency_key (created_at);

-- +goose Down
DROP TABLE api_idempotency_key;
