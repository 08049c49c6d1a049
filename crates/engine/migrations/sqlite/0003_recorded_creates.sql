-- The values of twin creates Tandem has started (see `Store::record_create`): written before
-- the create call, so a twin found later by discovery (the create's answer was lost, or the
-- process died before the link was stored) starts with the shadow of what was created.
-- Forgotten once a link holds either item.
CREATE TABLE recorded_creates (
    connection  TEXT NOT NULL,
    source_side TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    shadow      TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (connection, source_side, item_id)
);
