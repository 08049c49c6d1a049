-- Every attempt at an event with its outcome and error, newest 50 per event, written in the
-- transaction that records the outcome (events.last_error keeps only the newest).
CREATE TABLE event_attempts (
    event_id    INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    at          TEXT    NOT NULL,
    error       TEXT,
    duration_ms INTEGER,
    outcome     TEXT    NOT NULL,
    PRIMARY KEY (event_id, attempt)
);
