-- What people did from the console (retry, discard), with who did it: the operator half of
-- the audit trail (the field writes are in audit_log).
CREATE TABLE operator_actions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    connection TEXT,
    side       TEXT,
    event_id   INTEGER,
    events     INTEGER NOT NULL
);
-- A link's timeline reads its audit rows without scanning the connection's whole history.
CREATE INDEX audit_log_by_link ON audit_log (connection, jira_id, id);
