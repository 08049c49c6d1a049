-- The conflicts the policy settled, with both values and the side kept: the part of the audit
-- trail that audit_log (one row per field written) cannot hold, since a conflict lost writes
-- nothing. Written in the transaction that completes the event.
CREATE TABLE conflict_log (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                 TIMESTAMPTZ NOT NULL,
    connection         TEXT        NOT NULL,
    event_id           BIGINT,
    jira_id            TEXT        NOT NULL,
    jira_key           TEXT,
    external_id        TEXT        NOT NULL,
    mapping_key        TEXT        NOT NULL,
    policy             TEXT        NOT NULL,
    winner             TEXT        NOT NULL,
    jira_value         TEXT        NOT NULL,
    external_value     TEXT        NOT NULL,
    jira_edited_at     TIMESTAMPTZ,
    external_edited_at TIMESTAMPTZ,
    detail             TEXT        NOT NULL
);
CREATE INDEX conflict_log_by_connection ON conflict_log (connection, id);
CREATE INDEX conflict_log_by_link ON conflict_log (connection, jira_id, id);
