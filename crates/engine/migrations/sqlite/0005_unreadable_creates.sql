-- A create that took effect but whose answer could not be read (no id where the configuration
-- says): its twin exists, unknown. The record stays until that twin is recognised (its values
-- come back through a webhook or a poll) or an operator resets the side.
ALTER TABLE recorded_creates ADD COLUMN unreadable TEXT;

-- Creating on one side of a connection is stopped after such a create, until the side's
-- configuration changes (`config` is a fingerprint of it) or an operator resets it.
CREATE TABLE create_circuits (
    connection TEXT NOT NULL,
    side       TEXT NOT NULL,
    config     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    opened_at  TEXT NOT NULL,
    PRIMARY KEY (connection, side)
);
