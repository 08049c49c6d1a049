-- What people did from the console (retry, discard), with who did it: the operator half of
-- the audit trail (the field writes are in audit_log).
CREATE TABLE operator_actions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT        NOT NULL,
    action     TEXT        NOT NULL,
    connection TEXT,
    side       TEXT,
    event_id   BIGINT,
    events     BIGINT      NOT NULL
);
-- A link's timeline reads its audit rows without scanning the connection's whole history.
CREATE INDEX audit_log_by_link ON audit_log (connection, jira_id, id);
