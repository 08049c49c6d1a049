-- Tandem store, version 1 (SQLite).
-- Timestamps are RFC 3339 text in UTC with milliseconds ("2025-01-31T09:00:00.000Z"), so that
-- comparing the strings compares the times. JSON columns hold serde_json text.

-- The queue. Rows are never deleted by the engine: `id` order is arrival order, and
-- AUTOINCREMENT guarantees an id is never reused, which per-key ordering relies on.
CREATE TABLE events (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    connection       TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    ordering_key     TEXT    NOT NULL,
    source           TEXT    NOT NULL,
    item_id          TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL
        CHECK (status IN ('pending', 'leased', 'done', 'dead', 'ignored')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT    NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    last_error       TEXT,
    received_at      TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    UNIQUE (connection, idempotency_key)
);
-- Finding due work.
CREATE INDEX events_due ON events (status, next_attempt_at);
-- The oldest unfinished event of each key; partial, so the done rows that pile up under a
-- busy key are not scanned on every claim.
CREATE INDEX events_open_by_key ON events (ordering_key, id)
    WHERE status IN ('pending', 'leased');
-- Whether a key has a live lease: a handful of rows, whatever the backlog.
CREATE INDEX events_live_leases ON events (ordering_key, lease_expires_at)
    WHERE status = 'leased';
-- Listing by connection, newest first.
CREATE INDEX events_by_connection ON events (connection, id);

CREATE TABLE links (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    connection  TEXT    NOT NULL,
    jira_id     TEXT    NOT NULL,
    jira_key    TEXT,
    external_id TEXT    NOT NULL,
    shadow      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    UNIQUE (connection, jira_id),
    UNIQUE (connection, external_id)
);

-- History of dead letters: a retry marks the row resolved instead of deleting it.
CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    INTEGER NOT NULL REFERENCES events (id),
    connection  TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    at          TEXT    NOT NULL,
    resolved_at TEXT
);
CREATE INDEX dead_letters_open ON dead_letters (connection, id) WHERE resolved_at IS NULL;
CREATE INDEX dead_letters_by_event ON dead_letters (event_id);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT    NOT NULL,
    connection  TEXT    NOT NULL,
    event_id    INTEGER,
    jira_id     TEXT    NOT NULL,
    external_id TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    field       TEXT    NOT NULL,
    mapping_key TEXT    NOT NULL,
    from_value  TEXT,
    to_value    TEXT    NOT NULL,
    actor       TEXT    NOT NULL
);
CREATE INDEX audit_log_by_connection ON audit_log (connection, id);

CREATE TABLE cursors (
    connection TEXT NOT NULL,
    side       TEXT NOT NULL,
    cursor     TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (connection, side)
);
