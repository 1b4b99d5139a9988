-- The transactional outbox: one row per event, written in the same
-- transaction as the change it describes. Generic: any aggregate type, so the
-- same table and relay serve either direction. Rows are deleted by the relay
-- once the broker acknowledged them; what is here is not yet published.

-- +goose Up
CREATE TABLE transaction_outbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       uuid        NOT NULL DEFAULT gen_random_uuid(),
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    event_type     text        NOT NULL,
    version        bigint      NOT NULL CHECK (version > 0),
    payload        jsonb       NOT NULL,
    occurred_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT transaction_outbox_aggregate_id_not_blank CHECK (aggregate_id <> '')
);

COMMENT ON TABLE transaction_outbox IS
    'Events not yet published to Kafka. Written only inside the transaction of the change; drained by the relay.';

-- Wake the relay when events commit: NOTIFY is delivered at commit, never
-- for a rolled-back transaction, and once per statement keeps it cheap.
-- +goose StatementBegin
CREATE FUNCTION transaction_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('transaction_outbox', '');
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER transaction_outbox_notify
    AFTER INSERT ON transaction_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION transaction_outbox_notify();

-- +goose Down
DROP TABLE transaction_outbox;
DROP FUNCTION transaction_outbox_notify();
