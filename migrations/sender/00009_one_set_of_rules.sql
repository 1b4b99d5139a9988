-- One set of rules for an event, on every path. The receiver validates each
-- event with pkg/contract (History.Validate, contract.DecodeForApply) and
-- dead-letters what fails, for good: so the sender must refuse, with the
-- same rules, whatever would fail there, instead of committing it and
-- publishing poison. Before this migration history_problem only checked
-- presence and JSON types: a 300-character file name, zero forms, a date
-- before 1990, an amount with 5 decimals or a 600-form history were
-- accepted by record_send_invoice_history and dead-lettered by the receiver.
--
-- * _history_problem(p, event) is the SQL twin of contract.History.Validate
--   (event) and ValidateDraft (not event): the same checks in the same
--   order, and the first problem as '<field>: <problem>' with Go's wording.
--   Text limits count characters (char_length), as Go now does. A missing
--   or null field is its zero value, as in Go's JSON decoding: size and
--   filePath may be left out, the other fields are then "required".
--   sender/history's TestRulesAgree runs one corpus of valid and invalid
--   histories through both and fails when they disagree.
-- * history_problem(p) is what record_send_invoice_history checks (a new
--   history: no ids yet); history_event_problem(p) what the receiver
--   accepts: an ERROR needs only a positive historyId (a deletion must
--   always apply), any other status the whole rule set.
-- * history_problems(first, last) lists the histories whose current state
--   in SCI's tables cannot form a valid event. sync_history_aggregate
--   refuses to publish such a state (22023, the field named), the backfill
--   skips and reports them (backfill_history_aggregates_checked), and
--   sender verify reports them instead of repairing them.
-- * NUL and invalid UTF-8 never reach these functions: PostgreSQL refuses
--   them when the text or jsonb value is built (22P05, 22021, 22P02).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION _json_kind(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(v) WHEN 'object' THEN 'an object' WHEN 'array' THEN 'an array'
                                WHEN 'string' THEN 'a string' WHEN 'boolean' THEN 'a boolean'
                                WHEN 'number' THEN 'a number' ELSE 'null' END
$$;
-- +goose StatementEnd

-- _integer returns v as a bigint: 0 when v is missing or null (Go's zero
-- value), NULL when v is not an integer that fits 64 bits.
-- +goose StatementBegin
CREATE FUNCTION _integer(v jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN v IS NULL OR v = 'null' THEN 0
        WHEN jsonb_typeof(v) = 'number' AND v::text ~ '^-?[0-9]{1,19}$'
             AND v::numeric BETWEEN -9223372036854775808 AND 9223372036854775807 THEN v::text::bigint
    END
$$;
-- +goose StatementEnd

-- _integer_problem says why field value v is not an integer, or NULL.
-- +goose StatementBegin
CREATE FUNCTION _integer_problem(v jsonb, field text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN _integer(v) IS NOT NULL THEN NULL
        WHEN jsonb_typeof(v) = 'number' THEN field || ': must be an integer of at most 64 bits, got ' || v::text
        ELSE field || ': must be an integer, got ' || _json_kind(v)
    END
$$;
-- +goose StatementEnd

-- _text_problem checks text field k of object p, as Go's text/textProblem.
-- +goose StatementBegin
CREATE FUNCTION _text_problem(p jsonb, k text, prefix text, p_limit int, p_required boolean) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN coalesce(p -> k, 'null') <> 'null' AND jsonb_typeof(p -> k) <> 'string'
            THEN prefix || k || ': must be a string, got ' || _json_kind(p -> k)
        WHEN coalesce(p ->> k, '') = '' THEN CASE WHEN p_required THEN prefix || k || ': is required' END
        WHEN char_length(p ->> k) > p_limit THEN prefix || k || ': longer than ' || p_limit || ' characters'
    END
$$;
-- +goose StatementEnd

-- _history_problem is contract.History.Validate (p_event) or ValidateDraft
-- (not p_event, where historyId and senderFormId are ignored and an empty
-- emailStatus means SENT): the first problem, or NULL.
-- +goose StatementBegin
CREATE FUNCTION _history_problem(p jsonb, p_event boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_forms   jsonb := p -> 'forms';
    v_form    jsonb;
    v_status  text;
    v_n       bigint;
    v_amount  numeric;
    v_at      text;
    v_problem text;
    v_seen    jsonb := '{}';
BEGIN
    IF jsonb_typeof(p) IS DISTINCT FROM 'object' THEN
        RETURN 'history: a JSON object is required';
    END IF;
    IF p_event THEN
        v_problem := _integer_problem(p -> 'historyId', 'historyId');
        IF v_problem IS NOT NULL THEN
            RETURN v_problem;
        ELSIF _integer(p -> 'historyId') <= 0 THEN
            RETURN 'historyId: must be a positive integer';
        END IF;
    END IF;
    IF coalesce(p -> 'emailStatus', 'null') <> 'null' AND jsonb_typeof(p -> 'emailStatus') <> 'string' THEN
        RETURN 'emailStatus: must be a string, got ' || _json_kind(p -> 'emailStatus');
    END IF;
    v_status := coalesce(p ->> 'emailStatus', '');
    IF v_status = '' AND NOT p_event THEN
        v_status := 'SENT';
    END IF;
    IF v_status NOT IN ('SENT', 'DELIVERED', 'ERROR') THEN
        RETURN 'emailStatus: must be one of [SENT DELIVERED ERROR], got ' || to_jsonb(v_status)::text;
    END IF;
    v_problem := _integer_problem(p -> 'sentAt', 'sentAt');
    IF v_problem IS NOT NULL THEN
        RETURN v_problem;
    END IF;
    v_n := _integer(p -> 'sentAt');
    IF v_n = 0 THEN
        RETURN 'sentAt: is required (Unix seconds)';
    ELSIF v_n NOT BETWEEN 631152000 AND 7258118400 THEN -- 1990-01-01 .. 2200-01-01 UTC
        RETURN 'sentAt: ' || v_n || ' is not a plausible time in Unix seconds';
    END IF;
    v_problem := coalesce(_text_problem(p, 'senderOfficeName', '', 255, true),
                          _text_problem(p, 'destinationCode', '', 255, true),
                          _text_problem(p, 'senderCustomerId', '', 255, true),
                          _text_problem(p, 'senderOfficeId', '', 255, true));
    IF v_problem IS NOT NULL THEN
        RETURN v_problem;
    END IF;
    IF coalesce(v_forms, 'null') = 'null' OR v_forms = '[]' THEN
        RETURN 'forms: at least one form is required';
    ELSIF jsonb_typeof(v_forms) <> 'array' THEN
        RETURN 'forms: must be an array, got ' || _json_kind(v_forms);
    ELSIF jsonb_array_length(v_forms) > 500 THEN
        RETURN 'forms: at most 500 forms, got ' || jsonb_array_length(v_forms);
    END IF;
    FOR i IN 0 .. jsonb_array_length(v_forms) - 1 LOOP
        v_form := v_forms -> i;
        v_at := 'forms[' || i || '].';
        IF v_form <> 'null' AND jsonb_typeof(v_form) <> 'object' THEN
            RETURN 'forms[' || i || ']: must be an object, got ' || _json_kind(v_form);
        END IF;
        v_problem := coalesce(_text_problem(v_form, 'fileName', v_at, 255, true),
                              _text_problem(v_form, 'filePath', v_at, 1024, false),
                              _integer_problem(v_form -> 'size', v_at || 'size'));
        IF v_problem IS NOT NULL THEN
            RETURN v_problem;
        ELSIF _integer(v_form -> 'size') < 0 THEN
            RETURN v_at || 'size: must not be negative';
        END IF;
        v_problem := coalesce(_text_problem(v_form, 'invoiceNumber', v_at, 255, true),
                              _integer_problem(v_form -> 'issueDate', v_at || 'issueDate'));
        IF v_problem IS NOT NULL THEN
            RETURN v_problem;
        END IF;
        v_n := _integer(v_form -> 'issueDate');
        IF v_n = 0 THEN
            RETURN v_at || 'issueDate: is required (Unix milliseconds)';
        ELSIF v_n NOT BETWEEN 631152000000 AND 7258118400000 THEN
            RETURN v_at || 'issueDate: ' || v_n || ' is not a plausible time in Unix milliseconds';
        END IF;
        IF coalesce(v_form -> 'totalAmount', 'null') = 'null' THEN
            RETURN v_at || 'totalAmount: is required';
        ELSIF jsonb_typeof(v_form -> 'totalAmount') <> 'number' THEN
            RETURN v_at || 'totalAmount: must be a JSON number, got ' || _json_kind(v_form -> 'totalAmount');
        END IF;
        v_amount := (v_form -> 'totalAmount')::numeric;
        IF abs(v_amount) >= 1e16 THEN
            RETURN v_at || 'totalAmount: ' || (v_form -> 'totalAmount')::text || ' is too large';
        ELSIF v_amount <> round(v_amount, 4) THEN
            RETURN v_at || 'totalAmount: ' || (v_form -> 'totalAmount')::text || ' has more than 4 decimal places';
        END IF;
        IF p_event THEN
            v_problem := _integer_problem(v_form -> 'senderFormId', v_at || 'senderFormId');
            IF v_problem IS NOT NULL THEN
                RETURN v_problem;
            END IF;
            v_n := _integer(v_form -> 'senderFormId');
            IF v_n <= 0 THEN
                RETURN v_at || 'senderFormId: must be a positive integer';
            ELSIF v_seen ? v_n::text THEN
                RETURN v_at || 'senderFormId: ' || v_n || ' repeats forms[' || (v_seen ->> v_n::text) || ']';
            END IF;
            v_seen := v_seen || jsonb_build_object(v_n::text, i);
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- history_problem returns what is wrong with a history about to be
-- recorded (event shape, ids ignored) as '<field>: <problem>', or NULL
-- when record_send_invoice_history accepts it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION history_problem(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT _history_problem(p, false)
$$;
-- +goose StatementEnd

-- history_event_problem returns why the receiver would refuse event
-- payload p, or NULL (contract.DecodeForApply): an ERROR only needs a
-- positive historyId.
-- +goose StatementBegin
CREATE FUNCTION history_event_problem(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN jsonb_typeof(p) = 'object' AND p -> 'emailStatus' = '"ERROR"' THEN
            coalesce(_integer_problem(p -> 'historyId', 'historyId'),
                     CASE WHEN _integer(p -> 'historyId') <= 0 THEN 'historyId: must be a positive integer' END)
        ELSE _history_problem(p, true)
    END
$$;
-- +goose StatementEnd

-- history_problems lists the histories with p_first <= id <= p_last whose
-- current state in SCI's tables cannot form an event the receiver accepts,
-- with the first problem.
-- +goose StatementBegin
CREATE FUNCTION history_problems(p_first bigint, p_last bigint)
RETURNS TABLE (history_id bigint, problem text)
LANGUAGE sql STABLE AS $$
    SELECT s.history_id, p.problem
      FROM history_aggregate_shape(p_first, p_last) s,
           LATERAL (SELECT history_event_problem(jsonb_build_object(
                       'historyId', s.history_id, 'emailStatus', s.email_status, 'sentAt', s.sent_at,
                       'senderOfficeName', s.sender_office_name, 'destinationCode', s.destination_code,
                       'senderCustomerId', s.sender_customer_id, 'senderOfficeId', s.sender_office_id,
                       'forms', s.forms)) AS problem) p
     WHERE p.problem IS NOT NULL
$$;
-- +goose StatementEnd

-- record_send_invoice_history: as in 00005, with an empty emailStatus meaning
-- SENT and a missing size meaning 0, as history_problem (and Go) read them.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION record_send_invoice_history(p jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id      bigint;
    v_problem text := history_problem(p);
BEGIN
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION '%', v_problem USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO send_invoice_history (sent_at, sender_office_name, destination_code, sender_customer_id,
                                      sender_office_id, email_status)
    VALUES (to_timestamp((p ->> 'sentAt')::bigint), p ->> 'senderOfficeName', p ->> 'destinationCode',
            p ->> 'senderCustomerId', p ->> 'senderOfficeId', coalesce(nullif(p ->> 'emailStatus', ''), 'SENT'))
    RETURNING id INTO v_id;
    WITH f AS (
        INSERT INTO send_invoice_history_form (history_id, file_name, file_path, size, invoice_number,
                                               issue_date, total_amount)
        SELECT v_id, e.f ->> 'fileName', coalesce(e.f ->> 'filePath', ''), coalesce((e.f ->> 'size')::bigint, 0),
               e.f ->> 'invoiceNumber', to_timestamp((e.f ->> 'issueDate')::bigint / 1000.0),
               (e.f ->> 'totalAmount')::numeric
          FROM jsonb_array_elements(p -> 'forms') WITH ORDINALITY AS e(f, n)
         ORDER BY e.n
        RETURNING id, file_name, file_path, size, invoice_number, issue_date, total_amount)
    INSERT INTO aggregate_history_form (history_id, sent_at, sender_office_name, destination_code,
                                        sender_customer_id, sender_office_id, forms, email_status)
    SELECT h.id, extract(epoch FROM h.sent_at)::bigint, h.sender_office_name, h.destination_code,
           h.sender_customer_id, h.sender_office_id,
           (SELECT jsonb_agg(jsonb_build_object(
                       'fileName', f.file_name,
                       'filePath', f.file_path,
                       'size', f.size,
                       'invoiceNumber', f.invoice_number,
                       'issueDate', (extract(epoch FROM f.issue_date) * 1000)::bigint,
                       'totalAmount', f.total_amount,
                       'senderFormId', f.id) ORDER BY f.id) FROM f),
           h.email_status
      FROM send_invoice_history h
     WHERE h.id = v_id;
    RETURN v_id;
END;
$$;
-- +goose StatementEnd

-- sync_history_aggregate: as in 00008, but a state that cannot form a valid
-- event (rows edited outside the API) is refused, naming the field, instead
-- of being published for the receiver to dead-letter. Setting ERROR always
-- works: a deletion needs only the id.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION sync_history_aggregate(p_history_id bigint, p_min_version bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
    v_problem text;
BEGIN
    SELECT problem INTO v_problem FROM history_problems(p_history_id, p_history_id);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION '%', v_problem USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('send-invoice history %s as stored cannot form a valid event; correct it, or set ERROR', p_history_id);
    END IF;
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

-- backfill_history_aggregates_checked creates the aggregate row (and so the
-- event) of every history with p_first <= id <= p_last that has none yet
-- and can form a valid event; it returns how many it created, and the ids
-- and first problems of those it skipped because they cannot.
-- +goose StatementBegin
CREATE FUNCTION backfill_history_aggregates_checked(p_first bigint, p_last bigint,
    OUT created bigint, OUT rejected_ids bigint[], OUT rejected_problems text[])
LANGUAGE sql AS $$
    WITH s AS (
        SELECT s.*, history_event_problem(jsonb_build_object(
                   'historyId', s.history_id, 'emailStatus', s.email_status, 'sentAt', s.sent_at,
                   'senderOfficeName', s.sender_office_name, 'destinationCode', s.destination_code,
                   'senderCustomerId', s.sender_customer_id, 'senderOfficeId', s.sender_office_id,
                   'forms', s.forms)) AS problem
          FROM history_aggregate_shape(p_first, p_last) s
         WHERE NOT EXISTS (SELECT 1 FROM aggregate_history_form a WHERE a.history_id = s.history_id)),
    c AS (
        INSERT INTO aggregate_history_form (history_id, sent_at, sender_office_name, destination_code,
                                            sender_customer_id, sender_office_id, forms, email_status)
        SELECT s.history_id, s.sent_at, s.sender_office_name, s.destination_code,
               s.sender_customer_id, s.sender_office_id, s.forms, s.email_status
          FROM s
         WHERE s.problem IS NULL
         ORDER BY s.history_id
        ON CONFLICT (history_id) DO NOTHING
        RETURNING 1)
    SELECT (SELECT count(*) FROM c),
           coalesce(array_agg(s.history_id ORDER BY s.history_id) FILTER (WHERE s.problem IS NOT NULL), '{}'),
           coalesce(array_agg(s.problem ORDER BY s.history_id) FILTER (WHERE s.problem IS NOT NULL), '{}')
      FROM s
$$;
-- +goose StatementEnd

-- backfill_history_aggregates (00003) now skips what cannot form a valid
-- event too, for callers that only want the count.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION backfill_history_aggregates(p_first bigint, p_last bigint) RETURNS bigint
LANGUAGE sql AS $$
    SELECT created FROM backfill_history_aggregates_checked(p_first, p_last)
$$;
-- +goose StatementEnd

DROP FUNCTION _json_field_problem(jsonb, text, text, text);

-- +goose Down
-- The functions as 00008 left them.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION backfill_history_aggregates(p_first bigint, p_last bigint) RETURNS bigint
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
DROP FUNCTION backfill_history_aggregates_checked(bigint, bigint);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION sync_history_aggregate(p_history_id bigint, p_min_version bigint) RETURNS bigint
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION record_send_invoice_history(p jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id      bigint;
    v_problem text := history_problem(p);
BEGIN
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION '%', v_problem USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO send_invoice_history (sent_at, sender_office_name, destination_code, sender_customer_id,
                                      sender_office_id, email_status)
    VALUES (to_timestamp((p ->> 'sentAt')::bigint), p ->> 'senderOfficeName', p ->> 'destinationCode',
            p ->> 'senderCustomerId', p ->> 'senderOfficeId', coalesce(p ->> 'emailStatus', 'SENT'))
    RETURNING id INTO v_id;
    WITH f AS (
        INSERT INTO send_invoice_history_form (history_id, file_name, file_path, size, invoice_number,
                                               issue_date, total_amount)
        SELECT v_id, e.f ->> 'fileName', coalesce(e.f ->> 'filePath', ''), (e.f ->> 'size')::bigint,
               e.f ->> 'invoiceNumber', to_timestamp((e.f ->> 'issueDate')::bigint / 1000.0),
               (e.f ->> 'totalAmount')::numeric
          FROM jsonb_array_elements(p -> 'forms') WITH ORDINALITY AS e(f, n)
         ORDER BY e.n
        RETURNING id, file_name, file_path, size, invoice_number, issue_date, total_amount)
    INSERT INTO aggregate_history_form (history_id, sent_at, sender_office_name, destination_code,
                                        sender_customer_id, sender_office_id, forms, email_status)
    SELECT h.id, extract(epoch FROM h.sent_at)::bigint, h.sender_office_name, h.destination_code,
           h.sender_customer_id, h.sender_office_id,
           (SELECT jsonb_agg(jsonb_build_object(
                       'fileName', f.file_name,
                       'filePath', f.file_path,
                       'size', f.size,
                       'invoiceNumber', f.invoice_number,
                       'issueDate', (extract(epoch FROM f.issue_date) * 1000)::bigint,
                       'totalAmount', f.total_amount,
                       'senderFormId', f.id) ORDER BY f.id) FROM f),
           h.email_status
      FROM send_invoice_history h
     WHERE h.id = v_id;
    RETURN v_id;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION _json_field_problem(p jsonb, k text, kind text, prefix text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb := p -> k;
BEGIN
    CASE kind
        WHEN 'text' THEN
            IF jsonb_typeof(v) IS DISTINCT FROM 'string' OR v = '""' THEN
                RETURN prefix || k || ': is required (a non-empty string)';
            END IF;
        WHEN 'integer' THEN
            IF jsonb_typeof(v) IS DISTINCT FROM 'number' OR v::text !~ '^-?[0-9]{1,18}$' THEN
                RETURN prefix || k || ': is required (an integer)';
            END IF;
        WHEN 'number' THEN
            IF jsonb_typeof(v) IS DISTINCT FROM 'number' THEN
                RETURN prefix || k || ': is required (a number)';
            END IF;
    END CASE;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION history_problem(p jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_forms   jsonb := p -> 'forms';
    v_problem text;
BEGIN
    IF jsonb_typeof(p) IS DISTINCT FROM 'object' THEN
        RETURN 'history: a JSON object is required';
    END IF;
    IF jsonb_typeof(v_forms) IS DISTINCT FROM 'array' OR jsonb_array_length(v_forms) = 0 THEN
        RETURN 'forms: at least one form is required';
    END IF;
    IF coalesce(p ->> 'emailStatus', 'SENT') NOT IN ('SENT', 'DELIVERED', 'ERROR') THEN
        RETURN 'emailStatus: must be one of SENT, DELIVERED, ERROR, got ' || (p ->> 'emailStatus');
    END IF;
    v_problem := coalesce(_json_field_problem(p, 'sentAt', 'integer', ''),
                          _json_field_problem(p, 'senderOfficeName', 'text', ''),
                          _json_field_problem(p, 'destinationCode', 'text', ''),
                          _json_field_problem(p, 'senderCustomerId', 'text', ''),
                          _json_field_problem(p, 'senderOfficeId', 'text', ''));
    IF v_problem IS NOT NULL THEN
        RETURN v_problem;
    END IF;
    FOR i IN 0 .. jsonb_array_length(v_forms) - 1 LOOP
        v_problem := 'forms[' || i || '].';
        v_problem := coalesce(_json_field_problem(v_forms -> i, 'fileName', 'text', v_problem),
                              _json_field_problem(v_forms -> i, 'size', 'integer', v_problem),
                              _json_field_problem(v_forms -> i, 'invoiceNumber', 'text', v_problem),
                              _json_field_problem(v_forms -> i, 'issueDate', 'integer', v_problem),
                              _json_field_problem(v_forms -> i, 'totalAmount', 'number', v_problem));
        IF v_problem IS NOT NULL THEN
            RETURN v_problem;
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

DROP FUNCTION history_problems(bigint, bigint);
DROP FUNCTION history_event_problem(jsonb);
DROP FUNCTION _history_problem(jsonb, boolean);
DROP FUNCTION _text_problem(jsonb, text, text, int, boolean);
DROP FUNCTION _integer_problem(jsonb, text);
DROP FUNCTION _integer(jsonb);
DROP FUNCTION _json_kind(jsonb);
