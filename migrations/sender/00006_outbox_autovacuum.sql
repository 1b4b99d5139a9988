-- Autovacuum settings for the outbox. Rows live in transaction_outbox only
-- until the broker acknowledged them, then the relay deletes them: under
-- load a steady stream of dead rows in a table whose live size stays small.
-- The default thresholds scale with that small live size but autovacuum
-- would throttle itself; vacuum it by absolute dead-row count, without the
-- cost delay, so reads and deletes by index stay cheap. (Autovacuum still
-- visits a database at most once per autovacuum_naptime, 1 min by default.)

-- +goose Up
ALTER TABLE transaction_outbox SET (
    autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0.0, autovacuum_vacuum_insert_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.0, autovacuum_analyze_threshold = 5000);

-- +goose Down
ALTER TABLE transaction_outbox RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_insert_threshold,
    autovacuum_vacuum_cost_delay,
    autovacuum_analyze_scale_factor, autovacuum_analyze_threshold);
