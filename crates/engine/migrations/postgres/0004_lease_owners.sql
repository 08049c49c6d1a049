-- Every running engine writes its lease owner name here every second; the leases of an
-- owner that stopped writing (a killed process) are given back without waiting for them to
-- expire.
CREATE TABLE lease_owners (
    owner        TEXT PRIMARY KEY,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
