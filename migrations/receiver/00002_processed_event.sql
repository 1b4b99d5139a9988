-- The processed-event ledger: the id of every event the receiver has
-- handled, written in the same transaction as the event's effect. A
-- redelivered event (a broker redelivery, a restart or rebalance before the
-- offset commit, a producer retry) finds its id here and changes nothing, so
-- each event takes effect exactly once.
--
-- `receiver serve` deletes rows older than RECEIVER_LEDGER_RETENTION (default
-- 168h). An event redelivered after its row is gone is still harmless: the
-- aggregate_version guard (00001) refuses any version not newer than the one
-- applied, so it is reported stale and changes nothing.

-- +goose Up
CREATE TABLE processed_event (
    event_id       uuid        PRIMARY KEY,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    version        bigint      NOT NULL,
    processed_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- The retention janitor deletes the oldest rows in bounded batches.
CREATE INDEX processed_event_processed_at ON processed_event (processed_at);

-- +goose Down
DROP TABLE processed_event;
