-- Attachments of linked items (see core::attachment). A file and its twin, identified by the
-- SHA-256 of the content and the file name. A row is written *before* the upload (`pending`,
-- the twin's id still NULL) so that a retry after a lost answer or a crash recognises the twin
-- by its identity instead of uploading a second copy. `skipped` remembers a file not copied
-- (over attachment_max_bytes, or a content type not allowed), so the skip is reported once.
CREATE TABLE attachment_links (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection          TEXT    NOT NULL,
    jira_id             TEXT    NOT NULL,
    external_id         TEXT    NOT NULL,
    origin              TEXT    NOT NULL CHECK (origin IN ('jira', 'external')),
    jira_attachment     TEXT,
    external_attachment TEXT,
    sha256              TEXT    NOT NULL,
    filename            TEXT    NOT NULL,
    size                BIGINT  NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('pending', 'linked', 'kept', 'skipped')),
    updated_at          TIMESTAMPTZ NOT NULL,
    UNIQUE (connection, jira_attachment),
    UNIQUE (connection, external_attachment)
);
CREATE INDEX attachment_links_by_pair ON attachment_links (connection, jira_id);
