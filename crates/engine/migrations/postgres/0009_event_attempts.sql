-- Every attempt at an event with its outcome and error, newest 50 per event, written in the
-- transaction that records the outcome (events.last_error keeps only the newest).
CREATE TABLE event_attempts (
    event_id    BIGINT      NOT NULL,
    attempt     BIGINT      NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    error       TEXT,
    duration_ms BIGINT,
    outcome     TEXT        NOT NULL,
    PRIMARY KEY (event_id, attempt)
);
