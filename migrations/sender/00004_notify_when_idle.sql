-- Notify only when the relay waits. pg_notify makes the committing
-- transaction take a database-wide lock that is held until its commit is
-- flushed, so every notifying commit runs one at a time: under load that,
-- not the work, bounds how fast the sender can commit (measured here:
-- ~300-500 commits/s with a NOTIFY per transaction, ~1,500-1,800 without).
-- The relay now says when it is idle and waiting (listening = true); while it
-- is busy it reads again every few milliseconds and no writer notifies.
-- The check runs in a deferred trigger, at commit, so the flag is read as
-- late as possible; bulk-lane rows (backfill) never notify.

-- +goose Up
CREATE TABLE outbox_relay_state (
    channel    text        PRIMARY KEY,
    listening  boolean     NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE outbox_relay_state IS
    'Per NOTIFY channel: whether the leading relay is idle and waits for a NOTIFY (written by the relay).';
INSERT INTO outbox_relay_state (channel) VALUES ('transaction_outbox');

DROP TRIGGER transaction_outbox_notify ON transaction_outbox;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION transaction_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce((SELECT listening FROM outbox_relay_state WHERE channel = TG_ARGV[0]), true) THEN
        PERFORM pg_notify(TG_ARGV[0], '');
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE CONSTRAINT TRIGGER transaction_outbox_notify
    AFTER INSERT ON transaction_outbox
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.lane = 0)
    EXECUTE FUNCTION transaction_outbox_notify('transaction_outbox');

-- +goose Down
DROP TRIGGER transaction_outbox_notify ON transaction_outbox;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION transaction_outbox_notify() RETURNS trigger
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
DROP TABLE outbox_relay_state;
