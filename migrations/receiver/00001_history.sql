-- SCI-Receiver's copy of the send-invoice history, in its own names and
-- types (timestamps, dates, numeric amounts), plus the per-aggregate version
-- guard that makes applying events order-safe and deletions permanent
-- against replays of older events.

-- +goose Up
CREATE TABLE received_invoice_history (
    history_id         bigint      PRIMARY KEY,
    destination_code   text        NOT NULL,
    sender_customer_id text        NOT NULL,
    sender_office_id   text        NOT NULL,
    sender_office_name text        NOT NULL,
    email_status       text        NOT NULL,
    sent_at            timestamptz NOT NULL,
    form_count         int         NOT NULL,
    total_amount       numeric(24, 4) NOT NULL,
    source_version     bigint      NOT NULL,
    source_event_id    uuid        NOT NULL,
    source_occurred_at timestamptz NOT NULL,
    synced_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- The customer view: a destination's histories, newest first, keyset-paged.
CREATE INDEX received_invoice_history_destination
    ON received_invoice_history (destination_code, sent_at DESC, history_id DESC);

CREATE TABLE received_invoice_form (
    history_id     bigint         NOT NULL REFERENCES received_invoice_history (history_id) ON DELETE CASCADE,
    sender_form_id bigint         NOT NULL,
    file_name      text           NOT NULL,
    file_path      text           NOT NULL,
    size_bytes     bigint         NOT NULL,
    invoice_number text           NOT NULL,
    issued_at      timestamptz    NOT NULL,
    issue_date     date           NOT NULL,
    total_amount   numeric(20, 4) NOT NULL,
    PRIMARY KEY (history_id, sender_form_id)
);

-- One row per aggregate ever seen: the newest version applied, and whether
-- that version deleted it. An event applies only when its version is newer,
-- so a replayed older event can never resurrect a deleted history.
CREATE TABLE aggregate_version (
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    version        bigint      NOT NULL,
    deleted        boolean     NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- +goose Down
DROP TABLE aggregate_version;
DROP TABLE received_invoice_form;
DROP TABLE received_invoice_history;
