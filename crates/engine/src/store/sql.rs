//! The statements both backends run, written once: one constant per statement, named for what
//! it does, its parameters listed in its doc line.
//!
//! One text serves both dialects because it keeps to what SQLite and PostgreSQL both read:
//! `$n` parameters (SQLite takes `$NNN` as a numbered parameter, so one may be used twice or
//! out of order: see the tests), `CAST($n AS TEXT)` rather than PostgreSQL's `$n::text` (the
//! cast also tells PostgreSQL the type of a parameter that may be NULL),
//! `ON CONFLICT … DO NOTHING / DO UPDATE`, and `RETURNING`. Timestamps are bound by each
//! backend as it stores them (RFC 3339 text in SQLite, `TIMESTAMPTZ` in PostgreSQL); the text
//! here does not depend on which.
//!
//! What truly differs stays in the backend, next to a note on why: the claim (PostgreSQL skips
//! rows locked by other instances), settling carried events (how each reads JSON), heartbeats
//! and dead owners (PostgreSQL's clock and row locks), the link search (`LIKE` or `ILIKE`), the
//! migrations table's types, and PostgreSQL's advisory locks and schemas. The shared parts of
//! those are the macros here.

// ---------------------------------------------------------------------------------------------
// Columns, in the order the row decoders (`rows.rs`) name them.

/// Columns of `events` that make a [`super::QueuedEvent`].
macro_rules! event_cols {
    () => {
        "id, payload, ordering_key, status, attempts, next_attempt_at, lease_owner, lease_expires_at, \
         last_error, received_at, updated_at"
    };
}
pub(crate) use event_cols;

/// Columns of `links` that make a [`tandem_core::Link`].
macro_rules! link_cols {
    () => {
        "connection, jira_id, jira_key, external_id, shadow, pending, version"
    };
}

/// Columns of `audit_log` that make a [`super::AuditEntry`].
macro_rules! audit_cols {
    () => {
        "id, at, connection, event_id, jira_id, external_id, target, field, mapping_key, \
         from_value, to_value, actor"
    };
}

/// Succeeds when the database answers (readiness).
pub(crate) const PING: &str = "SELECT 1";

// ---------------------------------------------------------------------------------------------
// The queue.

/// Queues an event: `$1` connection, `$2` idempotency key, `$3` ordering key, `$4` source side,
/// `$5` item id, `$6` payload, `$7` now; returns its id, or no row when the idempotency key is
/// already queued.
pub(crate) const ENQUEUE: &str =
    "INSERT INTO events (connection, idempotency_key, ordering_key, source, item_id, payload,
                         status, attempts, next_attempt_at, received_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)
     ON CONFLICT (connection, idempotency_key) DO NOTHING
     RETURNING id";

/// The id of the event queued under `$1` connection and `$2` idempotency key.
pub(crate) const EVENT_BY_IDEMPOTENCY_KEY: &str =
    "SELECT id FROM events WHERE connection = $1 AND idempotency_key = $2";

/// The claim's pick: the ids of up to `$4` due events (pending and due at `$3`, or leased with
/// an expired lease) that head their ordering key, oldest first, of the connections not named
/// in `$5` (`,a,b,`; empty for none; `$position` is the backend's substring search, as
/// connection names hold no comma), read from `$events` (the table as the backend names it,
/// so SQLite can be held to the index).
///
/// It walks the open events in id order (index `events_open`) and stops at `$4`: each one
/// costs two probes of small partial indexes, whether an older open event of its key exists
/// (then it is not the head) and whether another event of its key holds a live lease. A claim
/// therefore costs the heads it takes and the open events ahead of them, not a pass over every
/// open event (the `GROUP BY ordering_key` it replaces).
macro_rules! claim_pick {
    ($events:literal, $position:literal) => {
        concat!(
            "SELECT e.id FROM ",
            $events,
            " WHERE e.status IN ('pending', 'leased')
               AND ",
            $position,
            "($5, ',' || e.connection || ',') = 0
               -- Due, written as one comparison: as an OR of the two cases it reads to
               -- PostgreSQL's planner as a bitmap scan of `events_due` for every due event and
               -- a sort, the whole-queue pass this walk is for avoiding.
               AND CASE WHEN e.status = 'pending' THEN e.next_attempt_at
                        ELSE e.lease_expires_at END <= $3
               -- Only the oldest unfinished event of its key.
               AND NOT EXISTS (SELECT 1 FROM events o
                               WHERE o.ordering_key = e.ordering_key
                                 AND o.status IN ('pending', 'leased')
                                 AND o.id < e.id)
               -- A later event can hold a live lease when an earlier one came back from the
               -- dead letters; the key stays busy until it finishes.
               AND NOT EXISTS (SELECT 1 FROM events l
                               WHERE l.ordering_key = e.ordering_key
                                 AND l.status = 'leased'
                                 AND l.lease_expires_at > $3
                                 AND l.id <> e.id)
             ORDER BY e.id
             LIMIT $4"
        )
    };
}
pub(crate) use claim_pick;

/// The claim's update of the picked rows: leased to `$1` until `$2`, at `$3`.
macro_rules! claim_lease {
    () => {
        "UPDATE events
         SET status = 'leased', lease_owner = $1, lease_expires_at = $2, updated_at = $3"
    };
}
pub(crate) use claim_lease;

/// Takes unreadable event `$3`, leased by `$4`, out of the queue: dead, with `$1` as the
/// reason, at `$2`.
pub(crate) const QUARANTINE: &str = "UPDATE events
     SET status = 'dead', last_error = $1, lease_owner = NULL, lease_expires_at = NULL,
         updated_at = $2
     WHERE id = $3 AND status = 'leased' AND lease_owner = $4";

/// Finishes event `$4` if `$5` still holds its lease: status `$1`, note `$2`, at `$3`.
pub(crate) const COMPLETE: &str = "UPDATE events
     SET status = $1, lease_owner = NULL, lease_expires_at = NULL, last_error = $2,
         updated_at = $3
     WHERE id = $4 AND status = 'leased' AND lease_owner = $5";

/// The statement that settles the events a fresh read carried (see
/// [`super::Completion::covers_through`]), the same on both backends but for how each reads the
/// payload's `kind`: `$1` note, `$2` now, `$3` the completed event, `$4` the newest id before
/// the read.
macro_rules! settle_carried {
    ($payload_kind:literal) => {
        concat!(
            "UPDATE events
             SET status = 'done', last_error = $1, updated_at = $2
             -- The key and the open-status terms let it seek the few open events of this key
             -- in `events_open_by_key` (whose condition they repeat) rather than read every
             -- event in the id range, so JSON is read only for the events it settles.
             WHERE ordering_key = (SELECT ordering_key FROM events WHERE id = $3)
               AND status IN ('pending', 'leased') AND status = 'pending'
               AND id > $3 AND id <= $4
               AND (connection, source, item_id) =
                   (SELECT connection, source, item_id FROM events WHERE id = $3)
               AND ",
            $payload_kind,
            " NOT IN ('commented', 'attached')"
        )
    };
}
pub(crate) use settle_carried;

/// Settles, as carried by the comment reconcile `$3`, the later comment events of its pair
/// still pending (same connection and ordering key, ids up to `$4`, the newest before its
/// listing): each asked for the same pair's comments to be listed and reconciled again, and
/// the listing made after they were queued saw whatever they announced. `$1` note, `$2` now.
macro_rules! settle_comment_reconciles {
    ($payload_kind:literal) => {
        concat!(
            "UPDATE events
             SET status = 'done', last_error = $1, updated_at = $2
             WHERE ordering_key = (SELECT ordering_key FROM events WHERE id = $3)
               AND status IN ('pending', 'leased') AND status = 'pending'
               AND id > $3 AND id <= $4
               AND connection = (SELECT connection FROM events WHERE id = $3)
               AND ",
            $payload_kind,
            " = 'commented'"
        )
    };
}
pub(crate) use settle_comment_reconciles;

/// The id of the newest event (NULL when the queue is empty).
pub(crate) const NEWEST_EVENT_ID: &str = "SELECT MAX(id) FROM events";

/// Puts event `$4` back if `$5` holds its lease, due at `$1`, with error `$2`, at `$3`;
/// returns its attempts so far.
pub(crate) const RETRY_LATER: &str = "UPDATE events
     SET status = 'pending', attempts = attempts + 1, next_attempt_at = $1,
         last_error = $2, lease_owner = NULL, lease_expires_at = NULL, updated_at = $3
     WHERE id = $4 AND status = 'leased' AND lease_owner = $5
     RETURNING attempts";

/// Moves the lease of event `$3`, held by `$4`, to `$1`, at `$2`.
pub(crate) const EXTEND_LEASE: &str = "UPDATE events SET lease_expires_at = $1, updated_at = $2
     WHERE id = $3 AND status = 'leased' AND lease_owner = $4";

/// Re-queues event `$3`, leased by `$4`, under ordering key `$1`, due at once (`$2`), unless
/// it is under that key already.
pub(crate) const MOVE_TO_KEY: &str = "UPDATE events
     SET ordering_key = $1, status = 'pending', next_attempt_at = $2,
         lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
     WHERE id = $3 AND status = 'leased' AND lease_owner = $4 AND ordering_key <> $1";

/// Makes event `$3`, leased by `$4`, dead with reason `$1`, at `$2`; returns its connection.
pub(crate) const DEAD_EVENT: &str = "UPDATE events
     SET status = 'dead', attempts = attempts + 1, last_error = $1,
         lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
     WHERE id = $3 AND status = 'leased' AND lease_owner = $4
     RETURNING connection";

/// The dead letter of event `$1` in connection `$2`: reason `$3`, at `$4`.
pub(crate) const INSERT_DEAD_LETTER: &str =
    "INSERT INTO dead_letters (event_id, connection, reason, at) VALUES ($1, $2, $3, $4)";

/// Gives back every lease owner `$2` holds, due at once, at `$1`.
pub(crate) const RELEASE_LEASES: &str = "UPDATE events
     SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = $1
     WHERE status = 'leased' AND lease_owner = $2";

/// Forgets lease owner `$1`'s heartbeat.
pub(crate) const FORGET_OWNER: &str = "DELETE FROM lease_owners WHERE owner = $1";

/// Event `$1`.
pub(crate) const GET_EVENT: &str = concat!("SELECT ", event_cols!(), " FROM events WHERE id = $1");

/// Events newest first, `$3` of them, in connection `$1`, status `$2` and from side `$4`
/// (each NULL for any), received in `[$5, $6)` (see [`super::time_bounds`]).
pub(crate) const LIST_EVENTS: &str = concat!(
    "SELECT ",
    event_cols!(),
    " FROM events
      WHERE (CAST($1 AS TEXT) IS NULL OR connection = $1)
        AND (CAST($2 AS TEXT) IS NULL OR status = $2)
        AND (CAST($4 AS TEXT) IS NULL OR source = $4)
        AND received_at >= $5 AND received_at < $6
      ORDER BY id DESC LIMIT $3"
);

/// How many events each connection has in each status.
pub(crate) const QUEUE_DEPTH: &str = "SELECT connection, status, COUNT(*) AS n FROM events
     GROUP BY connection, status ORDER BY connection, status";

/// The cheap facts about the newest `$1` events (no payload).
pub(crate) const RECENT_EVENTS: &str =
    "SELECT id, connection, source, status, last_error, received_at, updated_at
     FROM events ORDER BY id DESC LIMIT $1";

// ---------------------------------------------------------------------------------------------
// Every attempt at an event.

/// Records an attempt at event `$1`: at `$2`, error `$3`, duration `$4` ms (NULL: unknown),
/// outcome `$5`; numbered one past the event's newest attempt.
pub(crate) const INSERT_ATTEMPT: &str =
    "INSERT INTO event_attempts (event_id, attempt, at, error, duration_ms, outcome)
     VALUES ($1, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM event_attempts WHERE event_id = $1),
             $2, $3, $4, $5)";

/// Forgets event `$1`'s attempts older than its newest [`super::KEPT_ATTEMPTS`].
pub(crate) const TRIM_ATTEMPTS: &str = "DELETE FROM event_attempts
     WHERE event_id = $1
       AND attempt <= (SELECT MAX(attempt) FROM event_attempts WHERE event_id = $1) - 50";

/// Event `$1`'s attempts, oldest first.
pub(crate) const LIST_ATTEMPTS: &str =
    "SELECT attempt, at, error, duration_ms, outcome FROM event_attempts
     WHERE event_id = $1 ORDER BY attempt";

// ---------------------------------------------------------------------------------------------
// Dead letters and the operators' actions on them.

/// Unresolved dead letters, newest first, `$2` of them, in connection `$1` (NULL for any),
/// with their events' payloads.
pub(crate) const LIST_DEAD_LETTERS: &str =
    "SELECT d.event_id, d.connection, d.reason, d.at, e.payload
     FROM dead_letters d JOIN events e ON e.id = d.event_id
     WHERE d.resolved_at IS NULL AND (CAST($1 AS TEXT) IS NULL OR d.connection = $1)
     ORDER BY d.id DESC LIMIT $2";

/// Resolves, at `$1`, the dead letters of dead event `$2` (NULL: of every dead event); run
/// before the events change.
pub(crate) const RETRY_DEAD_LETTERS: &str = "UPDATE dead_letters SET resolved_at = $1
     WHERE resolved_at IS NULL AND (CAST($2 AS BIGINT) IS NULL OR event_id = $2)
       AND event_id IN (SELECT id FROM events WHERE status = 'dead')";

/// Queues dead event `$2` (NULL: every dead event) again at `$1`, attempts back to 0.
pub(crate) const RETRY_DEAD_EVENTS: &str = "UPDATE events
     SET status = 'pending', attempts = 0, next_attempt_at = $1, lease_owner = NULL,
         lease_expires_at = NULL, updated_at = $1
     WHERE status = 'dead' AND (CAST($2 AS BIGINT) IS NULL OR id = $2)";

/// Which dead events a [`super::DeadResolution`] acts on: `$2` event id, `$3` connection,
/// `$4` side, each `NULL` for any, received in `[$since, $until)` (the parameters named by the
/// caller, so each statement numbers its own without gaps).
macro_rules! dead_match {
    ($since:literal, $until:literal) => {
        concat!(
            "status = 'dead' AND (CAST($2 AS BIGINT) IS NULL OR id = $2)
         AND (CAST($3 AS TEXT) IS NULL OR connection = $3)
         AND (CAST($4 AS TEXT) IS NULL OR source = $4)
         AND received_at >= ",
            $since,
            " AND received_at < ",
            $until
        )
    };
}

/// Resolves the matching dead letters' rows at `$1` (run before the events change); `$5`,
/// `$6` the time bounds.
pub(crate) const RESOLVE_DEAD_LETTERS: &str = concat!(
    "UPDATE dead_letters SET resolved_at = $1
     WHERE resolved_at IS NULL AND event_id IN (SELECT id FROM events WHERE ",
    dead_match!("$5", "$6"),
    ")"
);

/// Moves the matching dead events to `$5` (pending or ignored) at `$1`; `$6`, when set,
/// replaces the last error. A retry keeps the error (it says what failed before); a discard
/// says who discarded it. `$7`, `$8` the time bounds.
pub(crate) const RESOLVE_DEAD_EVENTS: &str = concat!(
    "UPDATE events
     SET status = $5, attempts = CASE WHEN $5 = 'pending' THEN 0 ELSE attempts END,
         next_attempt_at = $1, lease_owner = NULL, lease_expires_at = NULL,
         last_error = COALESCE($6, last_error), updated_at = $1
     WHERE ",
    dead_match!("$7", "$8")
);

/// Records an operator action: `$1` at, `$2` actor, `$3` action, `$4` connection, `$5` side,
/// `$6` event id, `$7` how many events it changed.
pub(crate) const RECORD_ACTION: &str =
    "INSERT INTO operator_actions (at, actor, action, connection, side, event_id, events)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// The newest `$1` operator actions, newest first.
pub(crate) const OPERATOR_ACTIONS: &str =
    "SELECT id, at, actor, action, connection, side, event_id, events
     FROM operator_actions ORDER BY id DESC LIMIT $1";

// ---------------------------------------------------------------------------------------------
// Links.

/// The link of Jira item `$2` in connection `$1`.
pub(crate) const LINK_BY_JIRA_ID: &str = concat!(
    "SELECT ",
    link_cols!(),
    " FROM links WHERE connection = $1 AND jira_id = $2"
);

/// The link of external item `$2` in connection `$1`.
pub(crate) const LINK_BY_EXTERNAL_ID: &str = concat!(
    "SELECT ",
    link_cols!(),
    " FROM links WHERE connection = $1 AND external_id = $2"
);

/// The link that keeps a new link of `$2` (Jira) and `$3` (external) in connection `$1` from
/// being inserted: the one holding the Jira id if there is one, else the external id's.
pub(crate) const LINK_IN_THE_WAY: &str = concat!(
    "SELECT ",
    link_cols!(),
    " FROM links WHERE connection = $1 AND (jira_id = $2 OR external_id = $3)
      ORDER BY (jira_id = $2) DESC LIMIT 1"
);

/// Replaces a link's Jira key `$1`, shadow `$2`, version `$3`, `updated_at` `$4` and pending
/// writes `$9` if it is stored as connection `$5`, Jira id `$6`, external id `$7` at version
/// `$8`.
pub(crate) const UPDATE_LINK: &str =
    "UPDATE links SET jira_key = $1, shadow = $2, version = $3, updated_at = $4, pending = $9
     WHERE connection = $5 AND jira_id = $6 AND external_id = $7 AND version = $8";

/// Inserts a link (`$1` connection, `$2` Jira id, `$3` Jira key, `$4` external id, `$5`
/// shadow, `$6` version, `$7` now, `$8` pending writes) unless either id is already linked.
/// `ON CONFLICT DO NOTHING` rather than catching the unique violation, because on PostgreSQL
/// an error would abort the surrounding transaction.
pub(crate) const INSERT_LINK: &str =
    "INSERT INTO links (connection, jira_id, jira_key, external_id, shadow, version,
                        created_at, updated_at, pending)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)
     ON CONFLICT DO NOTHING";

/// Links in the order they were made, `$2` of them from `$3`, in connection `$1` (NULL: all).
pub(crate) const LIST_LINKS: &str = concat!(
    "SELECT ",
    link_cols!(),
    " FROM links WHERE (CAST($1 AS TEXT) IS NULL OR connection = $1)
      ORDER BY id LIMIT $2 OFFSET $3"
);

/// How many links connection `$1` (NULL: all) has.
pub(crate) const COUNT_LINKS: &str =
    "SELECT COUNT(*) FROM links WHERE (CAST($1 AS TEXT) IS NULL OR connection = $1)";

/// Links in `$1` (any when `NULL`) with `$2` (a [`super::contains_pattern`]) in their key, ids
/// or synced values, `$3` of them from `$4`; `$like` is the case-insensitive LIKE of the
/// dialect.
macro_rules! search_links {
    ($like:literal) => {
        concat!(
            "SELECT ",
            $crate::store::sql::link_cols!(),
            " FROM links WHERE (CAST($1 AS TEXT) IS NULL OR connection = $1)
                AND (jira_key ",
            $like,
            " $2 ESCAPE '\\' OR jira_id ",
            $like,
            " $2 ESCAPE '\\' OR external_id ",
            $like,
            " $2 ESCAPE '\\' OR shadow ",
            $like,
            " $2 ESCAPE '\\')
              ORDER BY id LIMIT $3 OFFSET $4"
        )
    };
}
pub(crate) use {link_cols, search_links};

// ---------------------------------------------------------------------------------------------
// The audit log.

/// An audit entry: `$1` at, `$2` connection, `$3` event, `$4` Jira id, `$5` external id,
/// `$6` target side, `$7` field, `$8` mapping key, `$9` old value, `$10` new value, `$11` actor.
pub(crate) const INSERT_AUDIT: &str =
    "INSERT INTO audit_log (at, connection, event_id, jira_id, external_id, target, field,
                            mapping_key, from_value, to_value, actor)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Audit entries newest first, `$2` of them, of connection `$1` (NULL: all).
pub(crate) const LIST_AUDIT: &str = concat!(
    "SELECT ",
    audit_cols!(),
    " FROM audit_log WHERE (CAST($1 AS TEXT) IS NULL OR connection = $1)
      ORDER BY id DESC LIMIT $2"
);

/// The first `$3` audit entries of the link of Jira item `$2` in connection `$1`, oldest first.
pub(crate) const LINK_AUDIT: &str = concat!(
    "SELECT ",
    audit_cols!(),
    " FROM audit_log WHERE connection = $1 AND jira_id = $2
      ORDER BY id LIMIT $3"
);

// ---------------------------------------------------------------------------------------------
// The conflict log.

/// A settled conflict: `$1` at, `$2` connection, `$3` event, `$4` Jira id, `$5` Jira key,
/// `$6` external id, `$7` mapping key, `$8` policy, `$9` winner, `$10` Jira value,
/// `$11` external value, `$12` Jira edit time, `$13` external edit time, `$14` detail.
pub(crate) const INSERT_CONFLICT: &str =
    "INSERT INTO conflict_log (at, connection, event_id, jira_id, jira_key, external_id,
                               mapping_key, policy, winner, jira_value, external_value,
                               jira_edited_at, external_edited_at, detail)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// Settled conflicts newest first, `$3` of them from `$4`, of connection `$1` and the link of
/// Jira item `$2` (each NULL: all).
pub(crate) const LIST_CONFLICTS: &str =
    "SELECT id, at, connection, event_id, jira_id, jira_key, external_id, mapping_key, policy,
            winner, jira_value, external_value, jira_edited_at, external_edited_at, detail
     FROM conflict_log
     WHERE (CAST($1 AS TEXT) IS NULL OR connection = $1)
       AND (CAST($2 AS TEXT) IS NULL OR jira_id = $2)
     ORDER BY id DESC LIMIT $3 OFFSET $4";

// ---------------------------------------------------------------------------------------------
// Recorded creates and create circuits.

/// Records (or replaces) the create of item `$3` from side `$2` in connection `$1`: values
/// `$4`, at `$5`.
pub(crate) const RECORD_CREATE: &str =
    "INSERT INTO recorded_creates (connection, source_side, item_id, shadow, recorded_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (connection, source_side, item_id)
     DO UPDATE SET shadow = excluded.shadow, recorded_at = excluded.recorded_at";

/// Forgets the recorded create of item `$3` from side `$2` in connection `$1`.
pub(crate) const FORGET_CREATE: &str = "DELETE FROM recorded_creates
     WHERE connection = $1 AND source_side = $2 AND item_id = $3";

/// Forgets the recorded creates of both items of a link just stored (connection `$1`, Jira id
/// `$2`, external id `$3`): the link now holds what they were kept for.
pub(crate) const FORGET_LINKED_CREATES: &str = "DELETE FROM recorded_creates WHERE connection = $1
       AND ((source_side = 'jira' AND item_id = $2)
         OR (source_side = 'external' AND item_id = $3))";

/// The values recorded for the create of item `$3` from side `$2` in connection `$1`.
pub(crate) const RECORDED_CREATE: &str = "SELECT shadow FROM recorded_creates
     WHERE connection = $1 AND source_side = $2 AND item_id = $3";

/// The creates recorded in connection `$1` from side `$2`, oldest first.
pub(crate) const RECORDED_CREATES_FROM: &str =
    "SELECT item_id, shadow, unreadable, recorded_at FROM recorded_creates
     WHERE connection = $1 AND source_side = $2 ORDER BY recorded_at, item_id";

/// Marks the recorded create of item `$3` from side `$2` in connection `$1` unreadable, for
/// reason `$4`.
pub(crate) const MARK_UNREADABLE: &str = "UPDATE recorded_creates SET unreadable = $4
     WHERE connection = $1 AND source_side = $2 AND item_id = $3";

/// Opens the create circuit of side `$2` in connection `$1` (configuration `$3`, reason `$4`,
/// at `$5`); one already open keeps its first reason.
pub(crate) const OPEN_CIRCUIT: &str =
    "INSERT INTO create_circuits (connection, side, config, reason, opened_at)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (connection, side) DO NOTHING";

/// The open create circuits, in connection and side order.
pub(crate) const CREATE_CIRCUITS: &str = "SELECT connection, side, reason, opened_at
     FROM create_circuits ORDER BY connection, side";

/// Closes circuits: `$1` connection, `$2` side (NULL: all), `$3` the configuration to keep
/// (NULL: none).
pub(crate) const CLOSE_CIRCUITS: &str = "DELETE FROM create_circuits
     WHERE (CAST($1 AS TEXT) IS NULL OR connection = $1)
       AND (CAST($2 AS TEXT) IS NULL OR side = $2)
       AND (CAST($3 AS TEXT) IS NULL OR config <> $3)";

/// Lets go the unreadable creates into side `$2` (NULL: both) of connection `$1` (NULL: all);
/// the creates into that side are copies of the other side's items.
pub(crate) const LET_GO_UNREADABLE: &str = "UPDATE recorded_creates SET unreadable = NULL
     WHERE (CAST($1 AS TEXT) IS NULL OR connection = $1)
       AND (CAST($2 AS TEXT) IS NULL OR source_side <> $2) AND unreadable IS NOT NULL";

// ---------------------------------------------------------------------------------------------
// Poll cursors.

/// The cursor of side `$2` of connection `$1`.
pub(crate) const GET_CURSOR: &str =
    "SELECT cursor FROM cursors WHERE connection = $1 AND side = $2";

/// Sets the cursor of side `$2` of connection `$1` to `$3`, at `$4`.
pub(crate) const SET_CURSOR: &str =
    "INSERT INTO cursors (connection, side, cursor, updated_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (connection, side)
     DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at";

/// Every cursor, in connection and side order.
pub(crate) const CURSORS: &str =
    "SELECT connection, side, cursor, updated_at FROM cursors ORDER BY connection, side";

// ---------------------------------------------------------------------------------------------
// Comment threads and comment links (see core::comment).

/// The baseline of the pair whose Jira item is `$2` in connection `$1`.
pub(crate) const COMMENT_THREAD_SINCE: &str =
    "SELECT since FROM comment_threads WHERE connection = $1 AND jira_id = $2";

/// Starts the thread of the pair (`$1` connection, `$2` Jira item, `$3` external item) with
/// baseline `$4`, unless it has one already.
pub(crate) const START_COMMENT_THREAD: &str =
    "INSERT INTO comment_threads (connection, jira_id, external_id, since) VALUES ($1, $2, $3, $4)
     ON CONFLICT (connection, jira_id) DO NOTHING";

/// The columns of a comment link, as `rows::comment_link` reads them.
macro_rules! comment_link_cols {
    () => {
        "id, origin, jira_comment, external_comment, shadow, state"
    };
}

/// The comment links of the pair whose Jira item is `$2` in connection `$1`, oldest first.
pub(crate) const COMMENT_LINKS: &str = concat!(
    "SELECT ",
    comment_link_cols!(),
    " FROM comment_links WHERE connection = $1 AND jira_id = $2 ORDER BY id"
);

/// Records a new comment link (`$1` connection, `$2`/`$3` the pair's items, `$4` origin,
/// `$5`/`$6` the comments' ids, `$7` shadow, `$8` state, `$9` now), answering its id.
pub(crate) const INSERT_COMMENT_LINK: &str = "INSERT INTO comment_links
       (connection, jira_id, external_id, origin, jira_comment, external_comment, shadow, state,
        updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";

/// Rewrites comment link `$1`: ids `$2`/`$3`, shadow `$4`, state `$5`, at `$6`.
pub(crate) const UPDATE_COMMENT_LINK: &str = "UPDATE comment_links
     SET jira_comment = $2, external_comment = $3, shadow = $4, state = $5, updated_at = $6
     WHERE id = $1";

/// Forgets comment link `$1`.
pub(crate) const DELETE_COMMENT_LINK: &str = "DELETE FROM comment_links WHERE id = $1";

// ---------------------------------------------------------------------------------------------
// Attachment links (see core::attachment).

/// The columns of an attachment link, as `rows::attachment_link` reads them.
macro_rules! attachment_link_cols {
    () => {
        "id, origin, jira_attachment, external_attachment, sha256, filename, size, state"
    };
}

/// The attachment links of the pair whose Jira item is `$2` in connection `$1`, oldest first.
pub(crate) const ATTACHMENT_LINKS: &str = concat!(
    "SELECT ",
    attachment_link_cols!(),
    " FROM attachment_links WHERE connection = $1 AND jira_id = $2 ORDER BY id"
);

/// Records a new attachment link (`$1` connection, `$2`/`$3` the pair's items, `$4` origin,
/// `$5`/`$6` the attachments' ids, `$7` sha256, `$8` file name, `$9` size, `$10` state, `$11`
/// now), answering its id.
pub(crate) const INSERT_ATTACHMENT_LINK: &str = "INSERT INTO attachment_links
       (connection, jira_id, external_id, origin, jira_attachment, external_attachment, sha256,
        filename, size, state, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id";

/// Rewrites attachment link `$1`: ids `$2`/`$3`, sha256 `$4`, state `$5`, at `$6`.
pub(crate) const UPDATE_ATTACHMENT_LINK: &str = "UPDATE attachment_links
     SET jira_attachment = $2, external_attachment = $3, sha256 = $4, state = $5, updated_at = $6
     WHERE id = $1";

/// Forgets attachment link `$1`.
pub(crate) const DELETE_ATTACHMENT_LINK: &str = "DELETE FROM attachment_links WHERE id = $1";

#[cfg(test)]
mod tests {
    use sqlx::Connection;
    use sqlx::sqlite::SqliteConnection;

    /// The shared text relies on SQLite reading `$n` as parameter number n, whatever order
    /// the parameters appear in and however often; `?` style would bind them by position.
    #[tokio::test]
    async fn sqlite_binds_numbered_parameters_by_number() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let (text, null_check): (String, i64) = sqlx::query_as(
            "SELECT $3 || $1 || $2 || $1, CAST($4 AS TEXT) IS NULL AND CAST($5 AS BIGINT) = 7",
        )
        .bind("a")
        .bind("b")
        .bind("c")
        .bind(Option::<&str>::None)
        .bind(7_i64)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(text, "caba");
        assert_eq!(null_check, 1);
    }
}
