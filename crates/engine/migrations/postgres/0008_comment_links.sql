-- Comments of linked items (see core::comment). A thread is a linked pair whose comments
-- Tandem keeps in step; `since` is when it first looked at them: comments written before are
-- history, copied only with `comments_history = true`.
CREATE TABLE comment_threads (
    connection  TEXT        NOT NULL,
    jira_id     TEXT        NOT NULL,
    external_id TEXT        NOT NULL,
    since       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (connection, jira_id)
);

-- A comment and its twin. A row is written *before* the twin's create call (`pending`, the
-- twin's id still NULL) so that a retry recognises a twin whose answer was lost.
CREATE TABLE comment_links (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection       TEXT        NOT NULL,
    jira_id          TEXT        NOT NULL,
    external_id      TEXT        NOT NULL,
    origin           TEXT        NOT NULL CHECK (origin IN ('jira', 'external')),
    jira_comment     TEXT,
    external_comment TEXT,
    shadow           TEXT        NOT NULL,
    state            TEXT        NOT NULL CHECK (state IN ('pending', 'linked', 'kept')),
    updated_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (connection, jira_comment),
    UNIQUE (connection, external_comment)
);
CREATE INDEX comment_links_by_pair ON comment_links (connection, jira_id);
