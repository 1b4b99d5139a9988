-- A repair must be able to overtake the receiver. After the sender database
-- is restored from a backup, its aggregate versions are behind the ones the
-- receiver already applied, and the receiver's version guard skips every
-- event until the sender's versions pass its own: a repair that bumped the
-- version by one changed nothing there.
--
-- The version trigger now lets a writer move the version forward (never
-- back; every update still adds at least one), and
-- sync_history_aggregate(id, min_version) republishes a history's current
-- state with a version of at least min_version: `sender verify --repair`
-- passes the receiver's version plus one. sync_history_aggregate(id) is
-- that with no minimum, so the upsert is written once.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION aggregate_history_form_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.version := greatest(coalesce(NEW.version, 1), 1);
    ELSE
        -- Every update is a new version, even one that changes nothing: that
        -- is how a repair re-publishes the current state. A writer may jump
        -- further ahead (repair_history_aggregate), never back.
        NEW.version := greatest(OLD.version + 1, NEW.version);
    END IF;
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION sync_history_aggregate(p_history_id bigint, p_min_version bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
BEGIN
    INSERT INTO aggregate_history_form AS a (history_id, sent_at, sender_office_name, destination_code,
                                             sender_customer_id, sender_office_id, forms, email_status, version)
    SELECT s.history_id, s.sent_at, s.sender_office_name, s.destination_code,
           s.sender_customer_id, s.sender_office_id, s.forms, s.email_status, greatest(p_min_version, 1)
      FROM history_aggregate_shape(p_history_id, p_history_id) s
    ON CONFLICT (history_id) DO UPDATE
        SET sent_at = EXCLUDED.sent_at, sender_office_name = EXCLUDED.sender_office_name,
            destination_code = EXCLUDED.destination_code, sender_customer_id = EXCLUDED.sender_customer_id,
            sender_office_id = EXCLUDED.sender_office_id, forms = EXCLUDED.forms,
            email_status = EXCLUDED.email_status, version = greatest(a.version + 1, p_min_version)
    RETURNING a.version INTO v_version;
    IF v_version IS NULL THEN
        RAISE EXCEPTION 'send-invoice history % does not exist', p_history_id
            USING ERRCODE = 'no_data_found';
    END IF;
    RETURN v_version;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION sync_history_aggregate(bigint, bigint) IS
    'Republishes a history''s current state with a version of at least p_min_version, for sender verify with repair.';

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION sync_history_aggregate(p_history_id bigint) RETURNS bigint
LANGUAGE sql AS $$
    SELECT sync_history_aggregate(p_history_id, 0);
$$;
-- +goose StatementEnd

-- +goose Down
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
DROP FUNCTION sync_history_aggregate(bigint, bigint);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION aggregate_history_form_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.version := 1;
    ELSE
        -- Every update is a new version, even one that changes nothing: that
        -- is how a repair re-publishes the current state.
        NEW.version := OLD.version + 1;
    END IF;
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
