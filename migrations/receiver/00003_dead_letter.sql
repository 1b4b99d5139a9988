-- What operators did with dead-letter entries (`receiver dlq`): an entry is
-- replayed (republished to its original topic; recorded right after the
-- broker acknowledged it, so an interrupted replay resumes where it stopped)
-- or handled (dealt with by hand; hidden from `dlq list`, never replayed).
-- An entry without a row is new. Entries are named by their place in the
-- dead-letter topic, which never changes.

-- +goose Up
CREATE TABLE dead_letter_mark (
    dlq_topic     text        NOT NULL,
    dlq_partition int         NOT NULL CHECK (dlq_partition >= 0),
    dlq_offset    bigint      NOT NULL CHECK (dlq_offset >= 0),
    state         text        NOT NULL CHECK (state IN ('replayed', 'handled')),
    replayed_at   timestamptz,
    handled_at    timestamptz,
    note          text        NOT NULL DEFAULT '',
    CHECK (state <> 'replayed' OR replayed_at IS NOT NULL),
    CHECK (state <> 'handled' OR handled_at IS NOT NULL),
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
);

-- +goose Down
DROP TABLE dead_letter_mark;
