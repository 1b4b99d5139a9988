-- Backfill of SCI's pre-existing histories, without delaying live changes.
--
-- * Outbox lanes: transaction_outbox.lane is 0 (live) or 1 (bulk). The
--   aggregate trigger takes it from the transaction-local setting
--   invoicesync.outbox_lane ('bulk' from "sender backfill", unset otherwise),
--   and the relay drains the live lane first, so a live change is never stuck
--   behind a large backfill backlog. A live event may overtake an older bulk
--   event of the same history; the receiver's version guard then skips the
--   older one as stale.
-- * history_aggregate_shape computes the aggregated (event) shape of a range
--   of histories from SCI's tables: the one place that shape is defined.
--   sync_history_aggregate (one history, upsert) and the backfill (many,
--   insert-if-absent) both use it; so does "sender verify".
-- * backfill_checkpoint remembers how far a backfill got, written in the
--   transaction of each batch, so an interrupted run resumes with no gap.

-- +goose Up
ALTER TABLE transaction_outbox ADD COLUMN lane smallint NOT NULL DEFAULT 0
    CONSTRAINT transaction_outbox_lane CHECK (lane IN (0, 1));
COMMENT ON COLUMN transaction_outbox.lane IS
    '0 live, 1 bulk (backfill). The relay publishes the live lane first.';
CREATE INDEX transaction_outbox_live ON transaction_outbox (id) WHERE lane = 0;
CREATE INDEX transaction_outbox_bulk ON transaction_outbox (id) WHERE lane = 1;

-- outbox_lane is the lane of the events written by the current transaction:
-- SET LOCAL invoicesync.outbox_lane = 'bulk' makes them bulk. An unknown
-- value is refused rather than silently published live.
-- +goose StatementBegin
CREATE FUNCTION outbox_lane() RETURNS smallint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v text := coalesce(current_setting('invoicesync.outbox_lane', true), '');
BEGIN
    CASE v
        WHEN '', 'live' THEN RETURN 0;
        WHEN 'bulk' THEN RETURN 1;
        ELSE RAISE EXCEPTION 'invoicesync.outbox_lane: must be live or bulk, got %', v
            USING ERRCODE = 'invalid_parameter_value';
    END CASE;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION aggregate_history_form_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO transaction_outbox (aggregate_type, aggregate_id, event_type, version, payload, lane)
    VALUES ('invoice_history', NEW.history_id::text, 'invoice_history.changed', NEW.version,
            jsonb_build_object(
                'historyId', NEW.history_id,
                'emailStatus', NEW.email_status,
                'sentAt', NEW.sent_at,
                'senderOfficeName', NEW.sender_office_name,
                'destinationCode', NEW.destination_code,
                'senderCustomerId', NEW.sender_customer_id,
                'senderOfficeId', NEW.sender_office_id,
                'forms', NEW.forms),
            outbox_lane());
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- history_aggregate_shape returns the aggregate rows (event shape) of the
-- histories with p_first <= id <= p_last, computed from SCI's tables. A
-- plain SQL function, so the planner inlines it and scans the id range.
-- +goose StatementBegin
CREATE FUNCTION history_aggregate_shape(p_first bigint, p_last bigint)
RETURNS TABLE (history_id bigint, sent_at bigint, sender_office_name text, destination_code text,
               sender_customer_id text, sender_office_id text, forms jsonb, email_status text)
LANGUAGE sql STABLE AS $$
    SELECT h.id,
           extract(epoch FROM h.sent_at)::bigint,
           h.sender_office_name, h.destination_code, h.sender_customer_id, h.sender_office_id,
           coalesce((SELECT jsonb_agg(jsonb_build_object(
                                'fileName', f.file_name,
                                'filePath', f.file_path,
                                'size', f.size,
                                'invoiceNumber', f.invoice_number,
                                'issueDate', (extract(epoch FROM f.issue_date) * 1000)::bigint,
                                'totalAmount', f.total_amount,
                                'senderFormId', f.id) ORDER BY f.id)
                     FROM send_invoice_history_form f WHERE f.history_id = h.id), '[]'::jsonb),
           h.email_status
      FROM send_invoice_history h
     WHERE h.id BETWEEN p_first AND p_last
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION sync_history_aggregate(p_history_id bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
BEGIN
    INSERT INTO aggregate_history_form AS a (history_id, sent_at, sender_office_name, destination_code,
                                             sender_customer_id, sender_office_id, forms, email_status)
    SELECT s.history_id, s.sent_at, s.sender_office_name, s.destination_code,
           s.sender_customer_id, s.sender_office_id, s.forms, s.email_status
      FROM history_aggregate_shape(p_history_id, p_history_id) s
    ON CONFLICT (history_id) DO UPDATE
        SET sent_at = EXCLUDED.sent_at, sender_office_name = EXCLUDED.sender_office_name,
            destination_code = EXCLUDED.destination_code, sender_customer_id = EXCLUDED.sender_customer_id,
            sender_office_id = EXCLUDED.sender_office_id, forms = EXCLUDED.forms,
            email_status = EXCLUDED.email_status
    RETURNING a.version INTO v_version;
    IF v_version IS NULL THEN
        RAISE EXCEPTION 'send-invoice history % does not exist', p_history_id
            USING ERRCODE = 'no_data_found';
    END IF;
    RETURN v_version;
END;
$$;
-- +goose StatementEnd

-- backfill_history_aggregates creates the aggregate row (and so the event)
-- of every history with p_first <= id <= p_last that has none yet, and
-- returns how many it created. A history the live path already wrote keeps
-- its state: an older backfilled state never overwrites a live change.
-- +goose StatementBegin
CREATE FUNCTION backfill_history_aggregates(p_first bigint, p_last bigint) RETURNS bigint
LANGUAGE sql AS $$
    WITH created AS (
        INSERT INTO aggregate_history_form (history_id, sent_at, sender_office_name, destination_code,
                                            sender_customer_id, sender_office_id, forms, email_status)
        SELECT s.history_id, s.sent_at, s.sender_office_name, s.destination_code,
               s.sender_customer_id, s.sender_office_id, s.forms, s.email_status
          FROM history_aggregate_shape(p_first, p_last) s
         ORDER BY s.history_id
        ON CONFLICT (history_id) DO NOTHING
        RETURNING 1)
    SELECT count(*) FROM created
$$;
-- +goose StatementEnd

CREATE TABLE backfill_checkpoint (
    name           text        PRIMARY KEY,
    last_id        bigint      NOT NULL DEFAULT 0,
    scanned_count  bigint      NOT NULL DEFAULT 0,
    enqueued_count bigint      NOT NULL DEFAULT 0,
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
COMMENT ON TABLE backfill_checkpoint IS
    'How far each backfill got: every history with id <= last_id was handled. Written in the transaction of each batch.';

-- +goose Down
DROP TABLE backfill_checkpoint;
DROP FUNCTION backfill_history_aggregates(bigint, bigint);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION sync_history_aggregate(p_history_id bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
BEGIN
    INSERT INTO aggregate_history_form AS a (history_id, sent_at, sender_office_name, destination_code,
                                             sender_customer_id, sender_office_id, forms, email_status)
    SELECT h.id,
           extract(epoch FROM h.sent_at)::bigint,
           h.sender_office_name, h.destination_code, h.sender_customer_id, h.sender_office_id,
           coalesce((SELECT jsonb_agg(jsonb_build_object(
                                'fileName', f.file_name,
                                'filePath', f.file_path,
                                'size', f.size,
                                'invoiceNumber', f.invoice_number,
                                'issueDate', (extract(epoch FROM f.issue_date) * 1000)::bigint,
                                'totalAmount', f.total_amount,
                                'senderFormId', f.id) ORDER BY f.id)
                     FROM send_invoice_history_form f WHERE f.history_id = h.id), '[]'::jsonb),
           h.email_status
    FROM send_invoice_history h
    WHERE h.id = p_history_id
    ON CONFLICT (history_id) DO UPDATE
        SET sent_at = EXCLUDED.sent_at, sender_office_name = EXCLUDED.sender_office_name,
            destination_code = EXCLUDED.destination_code, sender_customer_id = EXCLUDED.sender_customer_id,
            sender_office_id = EXCLUDED.sender_office_id, forms = EXCLUDED.forms,
            email_status = EXCLUDED.email_status
    RETURNING a.version INTO v_version;
    IF v_version IS NULL THEN
        RAISE EXCEPTION 'send-invoice history % does not exist', p_history_id
            USING ERRCODE = 'no_data_found';
    END IF;
    RETURN v_version;
END;
$$;
-- +goose StatementEnd
DROP FUNCTION history_aggregate_shape(bigint, bigint);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION aggregate_history_form_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO transaction_outbox (aggregate_type, aggregate_id, event_type, version, payload)
    VALUES ('invoice_history', NEW.history_id::text, 'invoice_history.changed', NEW.version,
            jsonb_build_object(
                'historyId', NEW.history_id,
                'emailStatus', NEW.email_status,
                'sentAt', NEW.sent_at,
                'senderOfficeName', NEW.sender_office_name,
                'destinationCode', NEW.destination_code,
                'senderCustomerId', NEW.sender_customer_id,
                'senderOfficeId', NEW.sender_office_id,
                'forms', NEW.forms));
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
DROP FUNCTION outbox_lane();
DROP INDEX transaction_outbox_bulk;
DROP INDEX transaction_outbox_live;
ALTER TABLE transaction_outbox DROP COLUMN lane;
