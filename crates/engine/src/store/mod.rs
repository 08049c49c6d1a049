//! Durable store: the event queue, links with their shadows, dead letters, the audit log and
//! poll cursors, behind one [`Store`] trait with an SQLite and a PostgreSQL backend.
//!
//! The queue *is* the database (hook0's lesson): a receiver answers `202` only after
//! [`Store::enqueue`] returned, and a worker's claim, its outcome, the link's new shadow and the
//! audit rows are written in one transaction ([`Store::complete`]), so a crash at any point
//! leaves either the old state (the event is claimed again once its lease expires) or the new
//! one, never half of each.
//!
//! Ordering: every event carries an *ordering key* (by default `connection:side:item`, or the
//! link's key once the item is linked). [`Store::claim_due`] hands out only the oldest
//! unfinished event of a key and never two events of one key at once, so edits to one item are
//! applied in the order they arrived while other items proceed in parallel.
//!
//! Both backends keep the same rows; only SQL dialect and locking differ, so what does not
//! depend on the dialect is written once:
//! - here: the types, the [`Store`] trait, URL dispatch and the checks both backends make;
//! - `sql.rs`: every statement both backends run, one constant each;
//! - `rows.rs`: reading rows into the types (a backend says only how it reads a time or an
//!   integer);
//! - `migrate.rs`: the migration runner over `migrations/sqlite/` and `migrations/postgres/`.
//!
//! `sqlite.rs` (with its group-commit `sqlite/writer.rs`) and `postgres.rs` keep their binds,
//! their connection handling and the few statements that truly differ.

mod migrate;
mod postgres;
mod rows;
mod sql;
mod sqlite;

pub use postgres::{drop_postgres_schema, open_postgres_in_schema};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tandem_core::attachment::AttachmentLink;
use tandem_core::{ChangeEvent, CommentLink, FieldValue, Link, Shadow, Side};

/// The result of every store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// What can go wrong in the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Db(String),
    /// The caller's lease on the event expired and another worker claimed it (or it was
    /// released); the caller's outcome was not recorded.
    #[error("lease on event {event_id} was lost; the outcome was not recorded")]
    LeaseLost { event_id: i64 },
    /// A link changed (or was created) under the caller since it was read.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A row holds data this version cannot read (bad JSON, unknown status, bad timestamp).
    #[error("corrupt data in the store: {0}")]
    Corrupt(String),
    /// The store URL names no backend we know or is malformed.
    #[error("invalid store URL: {0}")]
    InvalidUrl(String),
    /// The caller passed an argument the operation cannot honour (a completion status other
    /// than done/ignored, a lease too long to represent).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// Opens the store named by `url` and brings its schema up to date.
///
/// Accepted forms: `sqlite://path/to/file.db`, `sqlite:path`, a bare path ending in `.db`
/// (the file and its directory are created if missing), `sqlite::memory:` (tests), and
/// `postgres://…` / `postgresql://…` (tables live in the connection's current schema).
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    let trimmed = url.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        let store = postgres::PgStore::open(trimmed, None).await?;
        return Ok(Arc::new(store));
    }
    if trimmed.starts_with("sqlite:") || trimmed.ends_with(".db") {
        let store = sqlite::SqliteStore::open(trimmed).await?;
        return Ok(Arc::new(store));
    }
    Err(StoreError::InvalidUrl(format!(
        "`{}`: expected sqlite://PATH, sqlite::memory:, a path ending in .db, or postgres://…",
        redact_url(trimmed)
    )))
}

/// The URL with any password replaced, so it can go into an error message or a log.
pub use crate::secret::redact_url;

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Waiting until `next_attempt_at`.
    Pending,
    /// Claimed by a worker until `lease_expires_at`.
    Leased,
    /// Processed; the other side holds the change (or needed none).
    Done,
    /// Failed permanently or ran out of attempts; see the dead letters.
    Dead,
    /// Deliberately not synced (filtered out, an echo of Tandem's own write); the reason is in
    /// `last_error`.
    Ignored,
}

impl EventStatus {
    pub const ALL: [EventStatus; 5] = [
        EventStatus::Pending,
        EventStatus::Leased,
        EventStatus::Done,
        EventStatus::Dead,
        EventStatus::Ignored,
    ];

    /// The spelling stored in the database and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Leased => "leased",
            EventStatus::Done => "done",
            EventStatus::Dead => "dead",
            EventStatus::Ignored => "ignored",
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown event status `{s}`: expected pending, leased, done, dead or ignored"
                )
            })
    }
}

/// An event as the queue holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedEvent {
    pub id: i64,
    pub event: ChangeEvent,
    /// The key it is serialised under (see [`Store::claim_due`]).
    pub ordering_key: String,
    pub status: EventStatus,
    /// Failed attempts so far (claims do not count; retries and dead letters do).
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The last transient error, the dead-letter reason, or why the event was ignored.
    pub last_error: Option<String>,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The answer to an enqueue: a new row, or the row an earlier delivery with the same
/// idempotency key created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Enqueued {
    New(i64),
    Duplicate(i64),
}

impl Enqueued {
    /// The event's id, new or not.
    pub fn id(self) -> i64 {
        match self {
            Enqueued::New(id) | Enqueued::Duplicate(id) => id,
        }
    }
    pub fn is_new(self) -> bool {
        matches!(self, Enqueued::New(_))
    }
}

/// One field written to one side, for people to read later ("who changed this, and why?").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub connection: String,
    pub event_id: Option<i64>,
    pub jira_id: String,
    pub external_id: String,
    /// The side that was written.
    pub target: Side,
    /// The field id on the target side.
    pub field: String,
    pub mapping_key: String,
    pub from: Option<FieldValue>,
    pub to: FieldValue,
    /// Who or what made the write (`worker:<id>`, `sync`, an operator).
    pub actor: String,
}

/// A conflict the policy settled while an event was applied ([`tandem_core::plan::Conflict`]
/// with where and when), as [`Store::list_conflicts`] returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictEntry {
    /// Its row id (0 before it is stored).
    pub id: i64,
    /// When the policy decided.
    pub at: DateTime<Utc>,
    pub connection: String,
    /// The event being applied; `None` before it is stored means the completed event.
    pub event_id: Option<i64>,
    pub jira_id: String,
    pub jira_key: Option<String>,
    pub external_id: String,
    pub mapping_key: String,
    /// `later_wins`, `jira_wins` or `external_wins`.
    pub policy: tandem_core::mapping::ConflictPolicy,
    /// The side whose value was kept.
    pub winner: Side,
    /// Both values in canonical (Jira) terms.
    pub jira_value: FieldValue,
    pub external_value: FieldValue,
    /// When each side's edit was made, when known.
    pub jira_edited_at: Option<DateTime<Utc>>,
    pub external_edited_at: Option<DateTime<Utc>>,
    /// Why, in words a person can follow.
    pub detail: String,
}

/// The successful outcome of a claimed event, recorded atomically by [`Store::complete`].
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// [`EventStatus::Done`] or [`EventStatus::Ignored`].
    pub status: EventStatus,
    /// The link after this event: inserted if the store has none for its Jira id; otherwise
    /// its shadow and Jira key replace the stored ones only if the stored version is
    /// `link.version - 1` (the caller increments the version it read), else
    /// [`StoreError::Conflict`] and nothing is written.
    pub link: Option<Link>,
    /// Entries without an `event_id` are recorded under the completed event.
    pub audit: Vec<AuditEntry>,
    /// The conflicts the policy settled for this event; entries without an `event_id` are
    /// recorded under the completed event.
    pub conflicts: Vec<ConflictEntry>,
    /// Kept in the event's `last_error` column (why it was ignored).
    pub note: Option<String>,
    /// Set when the item was read afresh after every event up to this id had been queued:
    /// that read carried the changes of the item's later events still waiting behind this
    /// one (same connection, ordering key, side and item; comments excepted), so they are
    /// settled as done here instead of each costing a claim, a read and an outcome. A burst
    /// of edits to one item is then carried by one read and at most one write.
    pub covers_through: Option<i64>,
}

impl Completion {
    /// Done, with nothing else to record.
    pub fn done() -> Self {
        Completion {
            status: EventStatus::Done,
            link: None,
            audit: Vec::new(),
            conflicts: Vec::new(),
            note: None,
            covers_through: None,
        }
    }

    /// Ignored, with the reason people will see.
    pub fn ignored(reason: impl Into<String>) -> Self {
        Completion {
            status: EventStatus::Ignored,
            link: None,
            audit: Vec::new(),
            conflicts: Vec::new(),
            note: Some(reason.into()),
            covers_through: None,
        }
    }
}

/// Which events [`Store::list_events`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    pub connection: Option<String>,
    pub status: Option<EventStatus>,
    /// The side the event came from.
    pub side: Option<Side>,
    /// Received at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Received before this instant.
    pub until: Option<DateTime<Utc>>,
    pub limit: u32,
}

impl Default for EventFilter {
    fn default() -> Self {
        EventFilter {
            connection: None,
            status: None,
            side: None,
            since: None,
            until: None,
            limit: 100,
        }
    }
}

/// The `[since, until)` bounds of a time filter as the statements bind them: an open end is a
/// time before or after any event, so both backends run one statement with no NULL test (a
/// NULL-able timestamp parameter would need a cast each dialect spells differently).
pub(crate) fn time_bounds(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let first = DateTime::from_timestamp(0, 0).unwrap_or_default();
    // 9999-12-31T23:59:59Z: the last instant both backends store (and RFC 3339 can write).
    let last = DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default();
    (since.unwrap_or(first), until.unwrap_or(last))
}

/// What an operator does to dead letters from the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeadAction {
    /// Back to the queue: pending, attempts 0, due at once.
    Retry,
    /// Given up on for good: status ignored, with who discarded it as the reason.
    Discard,
}

impl DeadAction {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadAction::Retry => "retry",
            DeadAction::Discard => "discard",
        }
    }
}

/// Which dead letters [`Store::resolve_dead`] acts on, and who asked: one event, or every
/// dead event matching the connection and side given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadResolution {
    pub action: DeadAction,
    pub event_id: Option<i64>,
    pub connection: Option<String>,
    pub side: Option<Side>,
    /// Only events received at or after this instant (with `event_id: None`).
    pub since: Option<DateTime<Utc>>,
    /// Only events received before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Who did it, as the audit trail shows it (`console:admin`).
    pub actor: String,
}

/// One action an operator took, as [`Store::list_operator_actions`] returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorAction {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: DeadAction,
    pub connection: Option<String>,
    pub side: Option<Side>,
    pub event_id: Option<i64>,
    /// How many events it changed.
    pub events: i64,
}

/// The cheap facts about one recent event the console's overview is computed from (no
/// payload is decoded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentEvent {
    pub id: i64,
    pub connection: String,
    pub source: Side,
    pub status: EventStatus,
    pub last_error: Option<String>,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One attempt at an event, as [`Store::list_attempts`] returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventAttempt {
    /// 1 for the first attempt; numbering goes on across an operator's retry.
    pub attempt: i64,
    pub at: DateTime<Utc>,
    /// The error (retry, dead) or why it was ignored; `None` when it was applied.
    pub error: Option<String>,
    /// From the claim to the outcome, when this process made the claim.
    pub duration_ms: Option<i64>,
    /// `done`, `ignored`, `retry` or `dead`.
    pub outcome: String,
}

/// Which queue times [`Store::shift_schedule`] moves after a jump of the clock by `by`.
///
/// Rows written since the jump already hold times of the new clock and must not move:
/// they are told apart by their `updated_at`, which is later than the old clock's reading of
/// now (`now - by`) only for them when the clock went forward. Going back, nothing tells them
/// apart, and it need not: a retry moved back is only clamped to now (early, never lost), and
/// leases are left alone, since their holders renew them on the new clock within a third of
/// the lease (a lease moved back could end under a worker still busy with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShiftPlan {
    /// Pending events due after this move (not yet due before the jump, by either clock).
    pub due_after: DateTime<Utc>,
    /// Only rows last written at or before this (the old clock's now) move.
    pub written_by: DateTime<Utc>,
    /// Whether this instance's leases move too (forward jumps only).
    pub move_leases: bool,
}

impl ShiftPlan {
    pub(crate) fn new(by: TimeDelta, now: DateTime<Utc>) -> ShiftPlan {
        let old_now = now - by;
        ShiftPlan {
            due_after: old_now.min(now),
            written_by: old_now,
            move_leases: by > TimeDelta::zero(),
        }
    }
}

/// Attempts kept per event (the newest ones); `sql::TRIM_ATTEMPTS` spells the same number.
pub const KEPT_ATTEMPTS: i64 = 50;

/// When this process claimed each event it holds, so an outcome can say how long its attempt
/// took. In memory: the claimer is the only one who records the outcome, and after a restart
/// the duration is merely unknown.
#[derive(Default)]
pub(crate) struct AttemptClock(std::sync::Mutex<std::collections::HashMap<i64, DateTime<Utc>>>);

impl AttemptClock {
    pub(crate) fn started(&self, ids: impl IntoIterator<Item = i64>, now: DateTime<Utc>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Claims whose outcome never came (lease lost, shutdown) are let go after a day.
        m.retain(|_, at| now - *at < TimeDelta::days(1));
        for id in ids {
            m.insert(id, now);
        }
    }

    /// Milliseconds since event `id` was claimed here, forgetting the claim.
    pub(crate) fn took(&self, id: i64, now: DateTime<Utc>) -> Option<i64> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&id).map(|at| (now - at).num_milliseconds().max(0))
    }
}

/// A poll cursor and when it last moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorState {
    pub connection: String,
    pub side: Side,
    pub cursor: String,
    pub updated_at: DateTime<Utc>,
}

/// `%text%` for a `LIKE … ESCAPE '\'` that matches `text` literally anywhere.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// What [`Store::resolve_dead`] sets: the new status and the note replacing the last error.
pub(crate) fn resolution_outcome(r: &DeadResolution) -> (&'static str, Option<String>) {
    match r.action {
        DeadAction::Retry => ("pending", None),
        DeadAction::Discard => ("ignored", Some(format!("discarded by {}", r.actor))),
    }
}

/// An event that will not be retried on its own, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event_id: i64,
    pub connection: String,
    pub reason: String,
    pub at: DateTime<Utc>,
    pub event: ChangeEvent,
}

/// A held [`Store::lock_connection`] lock; dropping it releases the lock.
///
/// The backend keeps whatever holds the lock (a database session, a mutex guard) inside; the
/// caller only keeps the value alive for as long as it needs the lock.
pub struct ConnectionLock {
    _held: Box<dyn std::any::Any + Send>,
}

impl ConnectionLock {
    pub(crate) fn new(held: impl std::any::Any + Send) -> Self {
        ConnectionLock {
            _held: Box::new(held),
        }
    }
}

impl fmt::Debug for ConnectionLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectionLock")
    }
}

/// The durable store. Every method is one round of I/O against the database; methods that
/// write more than one row do so in one transaction.
///
/// Times are passed in (`now`) rather than read from the clock so tests can move time, and so
/// that one worker iteration uses one consistent instant.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// Succeeds when the database answers (readiness).
    async fn ping(&self) -> StoreResult<()>;

    /// Queues `ev` under its own ordering key ([`ChangeEvent::ordering_key`]). Durable when it
    /// returns. A second event with the same `(connection, idempotency_key)` is not stored
    /// again: the answer is [`Enqueued::Duplicate`] with the first one's id.
    async fn enqueue(&self, ev: &ChangeEvent, now: DateTime<Utc>) -> StoreResult<Enqueued> {
        self.enqueue_with_key(ev, &ev.ordering_key(), now).await
    }

    /// As [`Store::enqueue`], with a caller-chosen ordering key (the server uses the link's
    /// key for linked items, so edits on both sides of one link are serialised).
    async fn enqueue_with_key(
        &self,
        ev: &ChangeEvent,
        ordering_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Enqueued>;

    /// Leases up to `limit` due events to `owner` until `now + lease`.
    ///
    /// Due: pending with `next_attempt_at <= now`, or leased with an expired lease. Per
    /// ordering key only the oldest unfinished (pending or leased) event is eligible, and only
    /// while no other event of that key holds a live lease. Attempts are not incremented.
    /// Safe to call from several processes at once. Returned in id order.
    ///
    /// A claimed event whose row cannot be decoded is not returned: it is set to dead with
    /// `unreadable: …` in `last_error` (and logged), so one bad row cannot stall the workers.
    async fn claim_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> StoreResult<Vec<QueuedEvent>> {
        self.claim_due_except(owner, now, lease, limit, &[]).await
    }

    /// [`Store::claim_due`], passing over the events of the connections in `except` (those
    /// holding their share of the worker's slots already).
    async fn claim_due_except(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
        except: &[String],
    ) -> StoreResult<Vec<QueuedEvent>>;

    /// Pushes the lease on an event `owner` still holds to `now + lease`, so a long piece of
    /// work (slow remote calls, retries inside one attempt) is not taken over by another
    /// worker while it runs. `Ok(false)` when `owner` no longer holds it.
    async fn extend_lease(
        &self,
        event_id: i64,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<bool>;

    /// Records the outcome of a leased event in one transaction: status, link and shadow,
    /// audit rows. [`StoreError::LeaseLost`] (nothing written) when `owner` no longer holds
    /// the lease; [`StoreError::Conflict`] (nothing written) on a stale link version.
    ///
    /// A lease that expired but was not claimed by anyone else still counts as held: the
    /// work is done, and refusing it would only cause the same write to be made twice.
    async fn complete(
        &self,
        event_id: i64,
        owner: &str,
        c: Completion,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// The id of the newest event queued so far (0 when none): taken before reading an item,
    /// it bounds the events that read covers ([`Completion::covers_through`]). Ids grow with
    /// the order events began to be queued, so every event at or below it was sent, and its
    /// change made, before the read.
    async fn newest_event_id(&self) -> StoreResult<i64>;

    /// Settles as done the comment events of event `event_id`'s pair queued after it, up to
    /// id `through` (the newest before its listing), still pending: the reconcile `event_id`
    /// ran listed both sides' comments after they were queued, so it carried them. A burst
    /// of comment webhooks and polls of one pair costs one listing instead of one each.
    /// Returns how many were settled.
    async fn settle_comment_reconciles(
        &self,
        event_id: i64,
        through: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// Gives the event back for another attempt at `next_at`: attempts + 1, status pending,
    /// lease cleared, `error` kept. Returns the attempts so far.
    async fn retry_later(
        &self,
        event_id: i64,
        owner: &str,
        next_at: DateTime<Utc>,
        error: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u32>;

    /// Moves a leased event to `ordering_key` and gives it back to the queue, due `now`, when
    /// it is queued under another key; `Ok(true)` if it moved (the caller stops processing
    /// it), `Ok(false)` if it already was under that key or `owner` no longer holds it.
    ///
    /// An event queued before its item was linked sits under the item's own key, so it is
    /// not serialised with the link's events; moved under the link's key (keeping its id,
    /// so it stays ahead of later events), it is claimed only once no other event of the
    /// link is in flight.
    async fn move_to_key(
        &self,
        event_id: i64,
        owner: &str,
        ordering_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Gives up on the event: attempts + 1, status dead, lease cleared, a dead-letter row.
    async fn dead_letter(
        &self,
        event_id: i64,
        owner: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Returns every lease `owner` holds to the queue, due at once, and forgets its heartbeat
    /// (graceful shutdown).
    async fn release_leases(&self, owner: &str) -> StoreResult<u64>;

    /// The host's wall clock jumped by `by` (negative: back), as of `now` (the clock after the
    /// jump): moves the times the queue waits for by as much, so every wait lasts as long in
    /// real time as it was meant to (see [`ShiftPlan`] for which rows move). Without this, a
    /// clock set back an hour would hold every retry (and every later event of its link) for
    /// an extra hour, and a clock set forward would end this instance's leases mid-work.
    /// Returns how many events moved.
    async fn shift_schedule(
        &self,
        owner: &str,
        by: chrono::TimeDelta,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;

    async fn get_event(&self, id: i64) -> StoreResult<Option<QueuedEvent>>;

    /// Events matching `f`, newest first.
    async fn list_events(&self, f: &EventFilter) -> StoreResult<Vec<QueuedEvent>>;

    /// Unresolved dead letters, newest first.
    async fn list_dead_letters(
        &self,
        connection: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeadLetter>>;

    /// Puts one dead event (or all of them) back in the queue: pending, attempts 0, due
    /// `now`. Their dead-letter rows are marked resolved, not deleted, to keep the history.
    /// Returns how many events came back.
    async fn retry_dead(&self, event_id: Option<i64>, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Retries or discards one dead event or every dead event matching the connection and
    /// side, resolves their dead-letter rows and records who did it in the operator actions,
    /// all in one transaction. Returns how many events changed (0: nothing matched, and no
    /// action is recorded).
    async fn resolve_dead(&self, r: &DeadResolution, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Every attempt at event `id` still kept (the newest [`KEPT_ATTEMPTS`]), oldest first.
    async fn list_attempts(&self, id: i64) -> StoreResult<Vec<EventAttempt>>;

    /// Operator actions, newest first.
    async fn list_operator_actions(&self, limit: u32) -> StoreResult<Vec<OperatorAction>>;

    /// The newest `limit` events (any status) without their payloads, newest first: what the
    /// console's overview computes throughput, latency and the last errors from.
    async fn recent_events(&self, limit: u32) -> StoreResult<Vec<RecentEvent>>;

    /// Every poll cursor.
    async fn list_cursors(&self) -> StoreResult<Vec<CursorState>>;

    /// Links whose Jira key, Jira id, external id or stored field values contain `text`
    /// (case-insensitively for ASCII), in the order they were made.
    async fn search_links(
        &self,
        connection: Option<&str>,
        text: &str,
        limit: u32,
        offset: u32,
    ) -> StoreResult<Vec<Link>>;

    /// One link's audit entries (every field written on either side), oldest first.
    async fn link_audit(
        &self,
        connection: &str,
        jira_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>>;

    /// Event counts by connection and status (only non-zero ones).
    async fn queue_depth(&self) -> StoreResult<Vec<(String, EventStatus, i64)>>;

    /// The link holding `item_id` on `side` of `connection`.
    async fn link_by_item(
        &self,
        connection: &str,
        side: Side,
        item_id: &str,
    ) -> StoreResult<Option<Link>>;

    /// Takes the lock that serialises link discovery and twin creation for `connection`
    /// among every worker sharing this store, in this process and in others: without it,
    /// the echo of a twin that one instance is creating can be picked up by another instance
    /// before the link is stored, and that one would create a second twin. Waits while
    /// another holder has it; released when the returned value is dropped.
    ///
    /// PostgreSQL: a session advisory lock on a pooled connection (a killed holder's session
    /// ends and the lock with it). SQLite: an in-process lock; one SQLite file serves one
    /// process, so several instances need PostgreSQL.
    async fn lock_connection(&self, connection: &str) -> StoreResult<ConnectionLock>;

    /// Stores a link between an event's remote calls (its pending writes, before it writes):
    /// Jira key, shadow and pending writes replace the stored ones only if the stored version
    /// is `link.version - 1`, else [`StoreError::Conflict`] and nothing is written. The link
    /// must exist. Not tied to a lease: the version check is what keeps a concurrent writer
    /// from being overwritten.
    async fn save_link(&self, link: &Link) -> StoreResult<()>;

    /// Inserts a new link and forgets the recorded creates of its two items;
    /// `Ok(Err(existing))` when its Jira id or external id is already linked in that
    /// connection (nothing written).
    async fn insert_link(&self, link: &Link) -> StoreResult<Result<(), Link>>;

    /// Records the values a twin create is about to send, keyed by the item it copies
    /// (`source` side, `item_id`), before the create call; replaces an earlier record. A
    /// create is not idempotent and its answer can be lost, or the process killed before the
    /// link is stored: the twin is then found later by discovery, and
    /// [`Store::recorded_create`] gives the link the shadow of what the create wrote, so
    /// later edits on the twin are told from the values it was created with. Forgotten by
    /// [`Store::insert_link`] once a link holds either item.
    async fn record_create(
        &self,
        connection: &str,
        source: Side,
        item_id: &str,
        values: &Shadow,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Forgets the recorded create of the item: its create was refused, so no twin exists
    /// for an arriving item to be recognised as.
    async fn forget_create(&self, connection: &str, source: Side, item_id: &str)
    -> StoreResult<()>;

    /// The values recorded by [`Store::record_create`] for the item, if any.
    async fn recorded_create(
        &self,
        connection: &str,
        source: Side,
        item_id: &str,
    ) -> StoreResult<Option<Shadow>>;

    /// Every recorded create whose twin would be on `target` (copies of items of the other
    /// side), oldest first. An unlinked item arriving on `target` that holds the values of
    /// one of them is that create's twin coming back, not a new item (see
    /// [`RecordedCreate::unreadable`]).
    async fn recorded_creates_into(
        &self,
        connection: &str,
        target: Side,
    ) -> StoreResult<Vec<RecordedCreate>>;

    /// Notes that the recorded create of (`source`, `item_id`) took effect but its answer
    /// could not be read (`reason`), and opens the circuit that stops creating on the other
    /// side of `connection` ([`Store::create_circuits`]); `config` is the fingerprint of that
    /// side's configuration, so a changed configuration closes it
    /// ([`Store::close_create_circuits`]). One transaction; an open circuit keeps its first
    /// reason.
    async fn create_unreadable(
        &self,
        connection: &str,
        source: Side,
        item_id: &str,
        reason: &str,
        config: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// The open create circuits, in connection and side order.
    async fn create_circuits(&self) -> StoreResult<Vec<CreateCircuit>>;

    /// Closes create circuits: those of `connection` (all when `None`) on `side` (both when
    /// `None`). With `unless_config`, only circuits opened under another configuration (the
    /// configuration was fixed); without it (an operator's reset) the unreadable creates into
    /// those sides are also let go, so the items held for them are twinned again. Returns
    /// how many circuits closed.
    async fn close_create_circuits(
        &self,
        connection: Option<&str>,
        side: Option<Side>,
        unless_config: Option<&str>,
    ) -> StoreResult<u64>;

    /// Notes that lease owner `owner` is alive (every running engine, every second).
    ///
    /// Heartbeats are timed by the store's clock (PostgreSQL's `now()`, the one machine's
    /// clock for SQLite), never by each instance's, so a clock running ahead on one instance
    /// cannot make the others look dead.
    async fn heartbeat(&self, owner: &str) -> StoreResult<()>;

    /// Gives back, due at once, every lease held by an owner whose last heartbeat is older
    /// than `silent_for` (a process that was killed), and forgets those owners. Owners that
    /// never wrote a heartbeat (an older version) keep their leases until they expire.
    /// Returns how many leases came back.
    async fn release_dead_owners(&self, silent_for: Duration) -> StoreResult<u64>;

    /// Links in the order they were made (stable pages while new links are added).
    async fn list_links(
        &self,
        connection: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> StoreResult<Vec<Link>>;

    async fn count_links(&self, connection: Option<&str>) -> StoreResult<i64>;

    /// The comment thread of the pair (`jira_id`, `external_id`): its baseline — `since` if
    /// this is the pair's first reconcile, which starts the thread — and its comment links,
    /// oldest first.
    async fn comment_thread(
        &self,
        connection: &str,
        jira_id: &str,
        external_id: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<(DateTime<Utc>, Vec<CommentLink>)>;

    /// Stores `link`, a comment link of the pair (`jira_id`, `external_id`): inserted when
    /// its id is 0, else rewritten. Answers its id. A comment already linked in the
    /// connection is refused ([`StoreError::Conflict`]).
    async fn save_comment_link(
        &self,
        connection: &str,
        jira_id: &str,
        external_id: &str,
        link: &CommentLink,
        now: DateTime<Utc>,
    ) -> StoreResult<i64>;

    /// Forgets comment link `id`.
    async fn delete_comment_link(&self, id: i64) -> StoreResult<()>;

    /// Settled conflicts, newest first: `limit` of them after skipping `offset`, of
    /// `connection` (all when `None`) and of the link of Jira item `jira_id` (all when `None`).
    async fn list_conflicts(
        &self,
        connection: Option<&str>,
        jira_id: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> StoreResult<Vec<ConflictEntry>>;
    /// The attachment links of the pair whose Jira item is `jira_id`, oldest first.
    async fn attachment_links(
        &self,
        connection: &str,
        jira_id: &str,
    ) -> StoreResult<Vec<AttachmentLink>>;

    /// Stores `link`, an attachment link of the pair (`jira_id`, `external_id`): inserted
    /// when its id is 0, else rewritten (ids, hash and state). Answers its id. An attachment
    /// already linked in the connection is refused ([`StoreError::Conflict`]).
    async fn save_attachment_link(
        &self,
        connection: &str,
        jira_id: &str,
        external_id: &str,
        link: &AttachmentLink,
        now: DateTime<Utc>,
    ) -> StoreResult<i64>;

    /// Forgets attachment link `id`.
    async fn delete_attachment_link(&self, id: i64) -> StoreResult<()>;

    /// Audit entries, newest first.
    async fn list_audit(
        &self,
        connection: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>>;

    /// The poll cursor of one side of a connection.
    async fn get_cursor(&self, connection: &str, side: Side) -> StoreResult<Option<String>>;

    async fn set_cursor(
        &self,
        connection: &str,
        side: Side,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
}

/// An attachment link's write refused because one of its attachments is linked already.
pub(crate) fn attachment_link_error(e: sqlx::Error, link: &AttachmentLink) -> StoreError {
    match e.as_database_error() {
        Some(d) if d.is_unique_violation() => StoreError::Conflict(format!(
            "attachment {} is linked already",
            link.jira_id
                .as_deref()
                .or(link.external_id.as_deref())
                .unwrap_or("?")
        )),
        _ => e.into(),
    }
}

/// A comment link's write refused because one of its comments is linked already.
pub(crate) fn comment_link_error(e: sqlx::Error, link: &CommentLink) -> StoreError {
    match e.as_database_error() {
        Some(d) if d.is_unique_violation() => StoreError::Conflict(format!(
            "comment {} is linked already",
            link.jira_id
                .as_deref()
                .or(link.external_id.as_deref())
                .unwrap_or("?")
        )),
        _ => e.into(),
    }
}

/// A create Tandem started, as [`Store::recorded_creates_into`] lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCreate {
    /// The side of the item that was copied.
    pub source: Side,
    pub item_id: String,
    /// The values the create sent, keyed by mapping key.
    pub values: Shadow,
    /// Set when the create took effect but its answer could not be read: its twin exists and
    /// nobody knows its id, so until it is recognised no unknown item on the target side is
    /// twinned (it may be that twin).
    pub unreadable: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

/// Creating on one side of a connection is stopped: a create there took effect but its
/// answer could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateCircuit {
    pub connection: String,
    /// The side where creating is stopped.
    pub side: Side,
    pub reason: String,
    pub opened_at: DateTime<Utc>,
}

/// JSON text for a value we are about to store. Our types always serialise; the error path
/// exists so a future type that cannot does not panic.
pub(crate) fn to_json<T: Serialize>(what: &str, v: &T) -> StoreResult<String> {
    serde_json::to_string(v)
        .map_err(|e| StoreError::InvalidArgument(format!("{what} cannot be stored as JSON: {e}")))
}

/// `now + lease`, refusing leases so long the time cannot be represented.
pub(crate) fn lease_expiry(now: DateTime<Utc>, lease: Duration) -> StoreResult<DateTime<Utc>> {
    TimeDelta::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| StoreError::InvalidArgument(format!("lease of {lease:?} is too long")))
}

/// What an event settled by another event's read says in `last_error`.
/// Connection names as the claim's `$5` reads them: `,a,b,`, or empty for none.
pub(crate) fn except_list(names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    format!(",{},", names.join(","))
}

pub(crate) fn covered_note(by: i64) -> String {
    format!("carried by event {by}, which read the item after this one arrived")
}

/// Checks a completion before any write, so a programming error cannot mark an event with a
/// status the queue does not expect after a claim.
pub(crate) fn check_completion(c: &Completion) -> StoreResult<()> {
    match c.status {
        EventStatus::Done | EventStatus::Ignored => Ok(()),
        other => Err(StoreError::InvalidArgument(format!(
            "complete() records done or ignored, not {other}; use retry_later or dead_letter"
        ))),
    }
}

/// Why [`Store::save_link`] wrote nothing.
pub(crate) fn link_not_saved(wanted: &Link, stored: Option<&Link>) -> StoreError {
    match stored {
        Some(_) => link_conflict(wanted, stored),
        None => StoreError::Conflict(format!(
            "link {}/{} is not stored",
            wanted.connection, wanted.jira_id
        )),
    }
}

/// Why a link update was refused, in words an operator can act on.
pub(crate) fn link_conflict(wanted: &Link, stored: Option<&Link>) -> StoreError {
    match stored {
        Some(s) if s.external_id != wanted.external_id => StoreError::Conflict(format!(
            "link {}/{} is stored with external id {}, not {}",
            wanted.connection, wanted.jira_id, s.external_id, wanted.external_id
        )),
        Some(s) => StoreError::Conflict(format!(
            "link {}/{} is at version {}, the update expected {}",
            wanted.connection,
            wanted.jira_id,
            s.version,
            wanted.version - 1
        )),
        None => StoreError::Conflict(format!(
            "link {}/{} cannot be inserted: external id {} is already linked to another Jira item",
            wanted.connection, wanted.jira_id, wanted.external_id
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_reject_unknown() {
        for st in EventStatus::ALL {
            assert_eq!(st.as_str().parse::<EventStatus>(), Ok(st));
        }
        assert!("Done".parse::<EventStatus>().is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@db:5432/x?sslmode=require"),
            "postgres://u:***@db:5432/x?sslmode=require"
        );
        assert_eq!(redact_url("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
    }
}
