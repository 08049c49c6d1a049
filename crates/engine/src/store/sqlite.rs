//! The SQLite backend: the default, embedded store in one file.
//!
//! Durability: WAL with `synchronous=FULL`, so a transaction that returned is on disk and a
//! `202` survives `kill -9`. Concurrency: SQLite has one writer at a time. Within the process,
//! writers queue on an async mutex (no busy-wait sleeping); across processes, every write
//! transaction starts with `BEGIN IMMEDIATE` (or is a single write statement, which takes the
//! write lock before it reads), so two processes can never both read "event 7 is free" and both
//! take it, and the 5 s busy timeout makes the second one wait its turn.
//!
//! Timestamps are RFC 3339 text in UTC with milliseconds, so string order is time order and
//! the claim query compares them directly.

use super::rows::{self as decode, Columns, What, col, decode_recorded_create};
use super::{
    AuditEntry, Completion, ConflictEntry, ConnectionLock, CreateCircuit, CursorState, DeadLetter,
    DeadResolution, Enqueued, EventFilter, EventStatus, OperatorAction, QueuedEvent, RecentEvent,
    RecordedCreate, Store, StoreError, StoreResult, attachment_link_error, check_completion,
    comment_link_error, contains_pattern, covered_note, lease_expiry, link_conflict,
    link_not_saved, resolution_outcome, sql, to_json,
};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tandem_core::attachment::AttachmentLink;
use tandem_core::{ChangeEvent, CommentLink, Link, Shadow, Side};
use tokio::sync::Mutex;

mod writer;

use super::migrate::{self, Migrator, Step};
use super::{AttemptClock, EventAttempt, time_bounds};
use writer::{WriteFailures, Writer};

// Statements only SQLite runs; the rest are in `sql.rs`.

/// Claims due events. SQLite has no row locks to skip, and needs none: the statement takes the
/// write lock before its first read and keeps it to its last write, so the pick can sit inside
/// the `UPDATE`. The pick is held to `events_open` because, without statistics, SQLite would
/// rather read every due event through `events_due` and sort them, which is the pass over the
/// whole open queue that the id-ordered walk avoids.
const CLAIM: &str = concat!(
    sql::claim_lease!(),
    " WHERE id IN (",
    sql::claim_pick!("events e INDEXED BY events_open", "instr"),
    ") RETURNING ",
    sql::event_cols!()
);

/// Settles the events a fresh read carried; SQLite reads the payload's JSON with
/// `json_extract`.
/// Settles the later comment events of a reconciled pair ([`sql::settle_comment_reconciles`]).
const SETTLE_COMMENT_RECONCILES: &str =
    sql::settle_comment_reconciles!("json_extract(payload, '$.kind')");

const SETTLE_CARRIED: &str = sql::settle_carried!("json_extract(payload, '$.kind')");

/// Notes that lease owner `$1` is alive at `$2`. This machine's clock is the only one a SQLite
/// file is used under, so the time is bound like every other.
/// Moves pending events due after `$3` and last written at or before `$4` by `$1` seconds
/// (text, `-3600.000`), never to before `$2` (now). Timestamps are RFC 3339 text with
/// milliseconds and `Z`, which `strftime` writes back in the same form, so they still compare
/// as text.
const SHIFT_PENDING: &str = "UPDATE events
     SET next_attempt_at = MAX(strftime('%Y-%m-%dT%H:%M:%fZ', next_attempt_at, $1 || ' seconds'), $2),
         updated_at = $2
     WHERE status = 'pending' AND next_attempt_at > $3 AND updated_at <= $4";

/// Moves the leases owner `$2` holds, last written at or before `$3`, by `$1` seconds.
const SHIFT_LEASES: &str = "UPDATE events
     SET lease_expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', lease_expires_at, $1 || ' seconds')
     WHERE status = 'leased' AND lease_owner = $2 AND updated_at <= $3";

const HEARTBEAT: &str = "INSERT INTO lease_owners (owner, heartbeat_at) VALUES ($1, $2)
     ON CONFLICT (owner) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";

/// Gives back, due at once (`$2`), the leases of owners silent since before `$1`. One writer
/// at a time, so no other process can be releasing the same owners meanwhile.
const RELEASE_DEAD_OWNERS: &str = "UPDATE events
     SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
     WHERE status = 'leased' AND lease_owner IN
           (SELECT owner FROM lease_owners WHERE heartbeat_at < $1)";

/// Forgets the owners silent since before `$1`.
const FORGET_DEAD_OWNERS: &str = "DELETE FROM lease_owners WHERE heartbeat_at < $1";

/// Links matching a search; SQLite's `LIKE` ignores ASCII case already.
const SEARCH_LINKS: &str = sql::search_links!("LIKE");

/// The migrations table in SQLite's types (times as text).
const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
         version    INTEGER PRIMARY KEY,
         name       TEXT NOT NULL,
         applied_at TEXT NOT NULL
     )";

/// Records migration `$1` named `$2`, applied at `$3`.
const RECORD_MIGRATION: &str =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)";

pub(crate) struct SqliteStore {
    pool: SqlitePool,
    /// Serialises this process's write transactions, so they wait on each other here rather
    /// than in SQLite's busy handler, which polls with sleeps. The group-commit [`Writer`]
    /// holds it for each of its batches.
    write: Arc<Mutex<()>>,
    /// Runs the frequent writes (enqueue, claim, outcome, lease and link updates) in shared
    /// transactions, one fsync for many (see [`writer`]).
    writer: Writer,
    /// [`Store::lock_connection`]'s locks, one per connection name. In-process only: one
    /// SQLite file serves one `tandem serve` (several instances need PostgreSQL).
    connection_locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// When this process claimed the events it holds (how long each attempt took).
    clock: AttemptClock,
}

/// How a timestamp is stored: fixed-width UTC text, so string order is time order.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(what: &str, s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("{what}: bad timestamp `{s}`: {e}")))
}

/// SQLite's columns: times are RFC 3339 text, every integer has 64 bits.
impl Columns for SqliteRow {
    fn text(&self, name: &str, what: What) -> StoreResult<String> {
        col(self, name, what)
    }
    fn opt_text(&self, name: &str, what: What) -> StoreResult<Option<String>> {
        col(self, name, what)
    }
    fn bigint(&self, name: &str, what: What) -> StoreResult<i64> {
        col(self, name, what)
    }
    fn opt_bigint(&self, name: &str, what: What) -> StoreResult<Option<i64>> {
        col(self, name, what)
    }
    fn integer(&self, name: &str, what: What) -> StoreResult<i64> {
        col(self, name, what)
    }
    fn time(&self, name: &str, what: What) -> StoreResult<DateTime<Utc>> {
        parse_ts(&what(), &col::<_, String>(self, name, what)?)
    }
    fn opt_time(&self, name: &str, what: What) -> StoreResult<Option<DateTime<Utc>>> {
        col::<_, Option<String>>(self, name, what)?
            .map(|s| parse_ts(&what(), &s))
            .transpose()
    }
}

/// Turns the accepted URL forms into connection options (see [`super::open`]).
fn connect_options(url: &str) -> StoreResult<(SqliteConnectOptions, bool)> {
    let invalid = |e: sqlx::Error| StoreError::InvalidUrl(format!("`{url}`: {e}"));
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"));
    let opts = match rest {
        Some(":memory:") => SqliteConnectOptions::from_str("sqlite::memory:").map_err(invalid)?,
        Some(rest) => {
            let path = rest.split('?').next().unwrap_or(rest);
            if path.is_empty() {
                return Err(StoreError::InvalidUrl(format!(
                    "`{url}`: no file name (use sqlite://PATH or sqlite::memory:)"
                )));
            }
            // Let sqlx read the query parameters (mode, cache, …); we only add what we need.
            SqliteConnectOptions::from_str(&format!("sqlite://{rest}")).map_err(invalid)?
        }
        None => SqliteConnectOptions::new().filename(url),
    };
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    Ok((opts, in_memory))
}

impl SqliteStore {
    pub(crate) async fn open(url: &str) -> StoreResult<SqliteStore> {
        let (opts, in_memory) = connect_options(url)?;
        if !in_memory {
            // A fresh install points at `data/tandem.db`; make the directory rather than fail.
            if let Some(dir) = opts.get_filename().parent()
                && !dir.as_os_str().is_empty()
                && !Path::new(dir).exists()
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Db(format!("cannot create directory {}: {e}", dir.display()))
                })?;
            }
        }
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let failures = WriteFailures::new();
        let pool = if in_memory {
            // Each connection to `:memory:` would otherwise risk being its own database once
            // idle connections are closed; one connection that never closes keeps it alive.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(opts)
                .await?
        } else {
            // Reads run in parallel under WAL; writes are one at a time anyway, so a few
            // connections are all that helps.
            let retire = failures.clone();
            SqlitePoolOptions::new()
                .max_connections(4)
                // A local file has no connection to lose between uses; the check would
                // only cost every statement a round trip to the connection's thread.
                .test_before_acquire(false)
                // Checked without a round trip: a connection left inside a transaction (its
                // COMMIT failed) or opened before a failed write is closed, not reused.
                .before_acquire(move |conn, meta| {
                    let keep = !sqlx::Connection::is_in_transaction(conn)
                        && !retire.predates_failure(meta.age);
                    Box::pin(async move { Ok(keep) })
                })
                .connect_with(opts)
                .await?
        };
        let write = Arc::new(Mutex::new(()));
        let store = SqliteStore {
            writer: Writer::start(pool.clone(), write.clone(), failures),
            pool,
            write,
            connection_locks: std::sync::Mutex::new(HashMap::new()),
            clock: AttemptClock::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut m = SqliteMigrator {
            conn: &mut tx,
            applied_at: ts(Utc::now()),
        };
        migrate::migrate(&mut m, migrate::SQLITE).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes a claimed event that cannot be read out of the queue (status dead, the reason in
    /// `last_error`), so it cannot wedge every worker that claims it. No dead-letter row: its
    /// payload could not be shown there either. `retry_dead` brings it back, e.g. after an
    /// upgrade that reads it.
    async fn quarantine(&self, id: i64, owner: &str, why: &str, now: &str) -> StoreResult<()> {
        tracing::error!(
            event_id = id,
            error = why,
            "unreadable event taken out of the queue"
        );
        let _w = self.write.lock().await;
        sqlx::query(sql::QUARANTINE)
            .bind(format!("unreadable: {why}"))
            .bind(now)
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn link_by_jira_id(
        conn: &mut SqliteConnection,
        connection: &str,
        jira_id: &str,
    ) -> StoreResult<Option<Link>> {
        sqlx::query(sql::LINK_BY_JIRA_ID)
            .bind(connection)
            .bind(jira_id)
            .fetch_optional(conn)
            .await?
            .as_ref()
            .map(decode::link)
            .transpose()
    }

    /// Replaces the link's Jira key, shadow, pending writes and version if the stored
    /// version is `link.version - 1`; says whether it did.
    async fn update_link(
        conn: &mut SqliteConnection,
        link: &Link,
        shadow: &str,
        now: &str,
    ) -> StoreResult<bool> {
        let pending = to_json("pending", &link.pending)?;
        let updated = sqlx::query(sql::UPDATE_LINK)
            .bind(&link.jira_key)
            .bind(shadow)
            .bind(link.version)
            .bind(now)
            .bind(&link.connection)
            .bind(&link.jira_id)
            .bind(&link.external_id)
            .bind(link.version.saturating_sub(1))
            .bind(&pending)
            .execute(conn)
            .await?
            .rows_affected();
        Ok(updated == 1)
    }

    /// Updates the link if the stored version is the one the caller read, inserts it if
    /// there is none; anything else is a conflict.
    async fn upsert_link(conn: &mut SqliteConnection, link: &Link, now: &str) -> StoreResult<()> {
        let shadow = to_json("shadow", &link.shadow)?;
        if Self::update_link(&mut *conn, link, &shadow, now).await? {
            return Ok(());
        }
        if let Some(stored) = Self::link_by_jira_id(conn, &link.connection, &link.jira_id).await? {
            return Err(link_conflict(link, Some(&stored)));
        }
        let inserted = Self::insert_link_row(conn, link, &shadow, now).await?;
        if inserted {
            Ok(())
        } else {
            Err(link_conflict(link, None))
        }
    }

    /// Inserts unless the Jira id or the external id is already linked; says which happened.
    async fn insert_link_row(
        conn: &mut SqliteConnection,
        link: &Link,
        shadow: &str,
        now: &str,
    ) -> StoreResult<bool> {
        let pending = to_json("pending", &link.pending)?;
        let n = sqlx::query(sql::INSERT_LINK)
            .bind(&link.connection)
            .bind(&link.jira_id)
            .bind(&link.jira_key)
            .bind(&link.external_id)
            .bind(shadow)
            .bind(link.version)
            .bind(now)
            .bind(&pending)
            .execute(conn)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Records an attempt at `event_id` and keeps only the newest ones, in the caller's
    /// transaction (the one recording the outcome).
    async fn record_attempt(
        conn: &mut SqliteConnection,
        event_id: i64,
        now: &str,
        error: Option<&str>,
        duration_ms: Option<i64>,
        outcome: &str,
    ) -> StoreResult<()> {
        sqlx::query(sql::INSERT_ATTEMPT)
            .bind(event_id)
            .bind(now)
            .bind(error)
            .bind(duration_ms)
            .bind(outcome)
            .execute(&mut *conn)
            .await?;
        sqlx::query(sql::TRIM_ATTEMPTS)
            .bind(event_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn insert_conflict(
        conn: &mut SqliteConnection,
        c: &ConflictEntry,
        default_event: i64,
    ) -> StoreResult<()> {
        sqlx::query(sql::INSERT_CONFLICT)
            .bind(ts(c.at))
            .bind(&c.connection)
            .bind(c.event_id.unwrap_or(default_event))
            .bind(&c.jira_id)
            .bind(&c.jira_key)
            .bind(&c.external_id)
            .bind(&c.mapping_key)
            .bind(c.policy.as_str())
            .bind(c.winner.as_str())
            .bind(to_json("conflict value", &c.jira_value)?)
            .bind(to_json("conflict value", &c.external_value)?)
            .bind(c.jira_edited_at.map(ts))
            .bind(c.external_edited_at.map(ts))
            .bind(&c.detail)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn insert_audit(
        conn: &mut SqliteConnection,
        a: &AuditEntry,
        default_event: i64,
    ) -> StoreResult<()> {
        let from = a
            .from
            .as_ref()
            .map(|v| to_json("audit value", v))
            .transpose()?;
        let to = to_json("audit value", &a.to)?;
        sqlx::query(sql::INSERT_AUDIT)
            .bind(ts(a.at))
            .bind(&a.connection)
            .bind(a.event_id.unwrap_or(default_event))
            .bind(&a.jira_id)
            .bind(&a.external_id)
            .bind(a.target.as_str())
            .bind(&a.field)
            .bind(&a.mapping_key)
            .bind(from)
            .bind(to)
            .bind(&a.actor)
            .execute(conn)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query(sql::PING).execute(&self.pool).await?;
        Ok(())
    }

    async fn enqueue_with_key(
        &self,
        ev: &ChangeEvent,
        ordering_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Enqueued> {
        let payload = to_json("change event", ev)?;
        let now = ts(now);
        let connection = ev.connection.clone();
        let idempotency_key = ev.idempotency_key.clone();
        let ordering_key = ordering_key.to_string();
        let source = ev.source.as_str();
        let item_id = ev.item_id.clone();
        self.writer
            .write(false, move |conn| {
                Box::pin(async move {
                    let inserted: Option<i64> = sqlx::query_scalar(sql::ENQUEUE)
                        .bind(&connection)
                        .bind(&idempotency_key)
                        .bind(&ordering_key)
                        .bind(source)
                        .bind(&item_id)
                        .bind(&payload)
                        .bind(&now)
                        .fetch_optional(&mut *conn)
                        .await?;
                    if let Some(id) = inserted {
                        return Ok(Enqueued::New(id));
                    }
                    // Rows are never deleted, so the row that made the insert a no-op is
                    // still there (perhaps written earlier in this same batch).
                    let id: i64 = sqlx::query_scalar(sql::EVENT_BY_IDEMPOTENCY_KEY)
                        .bind(&connection)
                        .bind(&idempotency_key)
                        .fetch_one(&mut *conn)
                        .await?;
                    Ok(Enqueued::Duplicate(id))
                })
            })
            .await
    }

    async fn claim_due_except(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
        except: &[String],
    ) -> StoreResult<Vec<QueuedEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let except = super::except_list(except);
        let expires = ts(lease_expiry(now, lease)?);
        let claimed_at = now;
        let now = ts(now);
        let lease_owner = owner.to_string();
        let claim_now = now.clone();
        // One statement, so it holds the write lock from its first read to its last write.
        let claimed = self
            .writer
            .write(false, move |conn| {
                Box::pin(async move {
                    let rows = sqlx::query(CLAIM)
                        .bind(&lease_owner)
                        .bind(&expires)
                        .bind(&claim_now)
                        .bind(i64::from(limit))
                        .bind(&except)
                        .fetch_all(&mut *conn)
                        .await?;
                    // Decoded here: rows borrow the connection; unreadable ones are set aside.
                    let mut claimed = Vec::with_capacity(rows.len());
                    for row in &rows {
                        match decode::event(row) {
                            Ok(ev) => claimed.push(Ok(ev)),
                            Err(StoreError::Corrupt(why)) => {
                                let id: i64 = row.try_get("id")?;
                                claimed.push(Err((id, why)));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(claimed)
                })
            })
            .await?;
        let mut out = Vec::with_capacity(claimed.len());
        for ev in claimed {
            match ev {
                Ok(ev) => out.push(ev),
                Err((id, why)) => self.quarantine(id, owner, &why, &now).await?,
            }
        }
        // RETURNING gives no order guarantee; callers expect arrival order.
        out.sort_by_key(|e| e.id);
        self.clock.started(out.iter().map(|e| e.id), claimed_at);
        Ok(out)
    }

    async fn complete(
        &self,
        event_id: i64,
        owner: &str,
        c: Completion,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        check_completion(&c)?;
        let took = self.clock.took(event_id, now);
        let now = ts(now);
        let owner = owner.to_string();
        // Several statements: the writer runs them in a savepoint, undone together on error.
        self.writer
            .write(true, move |conn| {
                Box::pin(async move {
                    let owned = sqlx::query(sql::COMPLETE)
                        .bind(c.status.as_str())
                        .bind(&c.note)
                        .bind(&now)
                        .bind(event_id)
                        .bind(&owner)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    if owned != 1 {
                        return Err(StoreError::LeaseLost { event_id });
                    }
                    let error = (c.status == EventStatus::Ignored)
                        .then_some(c.note.as_deref())
                        .flatten();
                    let outcome = c.status.as_str();
                    Self::record_attempt(&mut *conn, event_id, &now, error, took, outcome).await?;
                    if let Some(through) = c.covers_through {
                        sqlx::query(SETTLE_CARRIED)
                            .bind(covered_note(event_id))
                            .bind(&now)
                            .bind(event_id)
                            .bind(through)
                            .execute(&mut *conn)
                            .await?;
                    }
                    if let Some(link) = &c.link {
                        Self::upsert_link(&mut *conn, link, &now).await?;
                    }
                    for a in &c.audit {
                        Self::insert_audit(&mut *conn, a, event_id).await?;
                    }
                    for k in &c.conflicts {
                        Self::insert_conflict(&mut *conn, k, event_id).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn settle_comment_reconciles(
        &self,
        event_id: i64,
        through: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let (note, now) = (covered_note(event_id), ts(now));
        self.writer
            .write(false, move |conn| {
                Box::pin(async move {
                    Ok(sqlx::query(SETTLE_COMMENT_RECONCILES)
                        .bind(&note)
                        .bind(&now)
                        .bind(event_id)
                        .bind(through)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected())
                })
            })
            .await
    }

    async fn newest_event_id(&self) -> StoreResult<i64> {
        let newest: Option<i64> = sqlx::query_scalar(sql::NEWEST_EVENT_ID)
            .fetch_one(&self.pool)
            .await?;
        Ok(newest.unwrap_or(0))
    }

    async fn retry_later(
        &self,
        event_id: i64,
        owner: &str,
        next_at: DateTime<Utc>,
        error: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u32> {
        let took = self.clock.took(event_id, now);
        let (next_at, now) = (ts(next_at), ts(now));
        let (error, owner) = (error.to_string(), owner.to_string());
        // Several statements: the writer runs them in a savepoint, undone together on error.
        let attempts: Option<i64> = self
            .writer
            .write(true, move |conn| {
                Box::pin(async move {
                    let attempts: Option<i64> = sqlx::query_scalar(sql::RETRY_LATER)
                        .bind(&next_at)
                        .bind(&error)
                        .bind(&now)
                        .bind(event_id)
                        .bind(&owner)
                        .fetch_optional(&mut *conn)
                        .await?;
                    if attempts.is_some() {
                        Self::record_attempt(
                            &mut *conn,
                            event_id,
                            &now,
                            Some(&error),
                            took,
                            "retry",
                        )
                        .await?;
                    }
                    Ok(attempts)
                })
            })
            .await?;
        let attempts = attempts.ok_or(StoreError::LeaseLost { event_id })?;
        u32::try_from(attempts).map_err(|_| {
            StoreError::Corrupt(format!(
                "event {event_id}: attempts {attempts} out of range"
            ))
        })
    }

    async fn extend_lease(
        &self,
        event_id: i64,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<bool> {
        let expires = ts(lease_expiry(now, lease)?);
        let (now, owner) = (ts(now), owner.to_string());
        self.writer
            .write(false, move |conn| {
                Box::pin(async move {
                    let extended = sqlx::query(sql::EXTEND_LEASE)
                        .bind(&expires)
                        .bind(&now)
                        .bind(event_id)
                        .bind(&owner)
                        .execute(conn)
                        .await?;
                    Ok(extended.rows_affected() > 0)
                })
            })
            .await
    }

    async fn move_to_key(
        &self,
        event_id: i64,
        owner: &str,
        ordering_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (now, owner, ordering_key) = (ts(now), owner.to_string(), ordering_key.to_string());
        self.writer
            .write(false, move |conn| {
                Box::pin(async move {
                    let moved = sqlx::query(sql::MOVE_TO_KEY)
                        .bind(&ordering_key)
                        .bind(&now)
                        .bind(event_id)
                        .bind(&owner)
                        .execute(conn)
                        .await?;
                    Ok(moved.rows_affected() > 0)
                })
            })
            .await
    }

    async fn dead_letter(
        &self,
        event_id: i64,
        owner: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let took = self.clock.took(event_id, now);
        let now = ts(now);
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let connection: Option<String> = sqlx::query_scalar(sql::DEAD_EVENT)
            .bind(reason)
            .bind(&now)
            .bind(event_id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
        let connection = connection.ok_or(StoreError::LeaseLost { event_id })?;
        sqlx::query(sql::INSERT_DEAD_LETTER)
            .bind(event_id)
            .bind(&connection)
            .bind(reason)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        Self::record_attempt(&mut tx, event_id, &now, Some(reason), took, "dead").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        let now = ts(Utc::now());
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query(sql::RELEASE_LEASES)
            .bind(now)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(sql::FORGET_OWNER)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn shift_schedule(
        &self,
        owner: &str,
        by: chrono::TimeDelta,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let plan = super::ShiftPlan::new(by, now);
        let seconds = format!("{:.3}", by.num_milliseconds() as f64 / 1000.0);
        let (due_after, written_by) = (ts(plan.due_after), ts(plan.written_by));
        let (now, owner) = (ts(now), owner.to_string());
        self.writer
            .write(true, move |conn| {
                Box::pin(async move {
                    let mut moved = sqlx::query(SHIFT_PENDING)
                        .bind(&seconds)
                        .bind(&now)
                        .bind(&due_after)
                        .bind(&written_by)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    if plan.move_leases {
                        moved += sqlx::query(SHIFT_LEASES)
                            .bind(&seconds)
                            .bind(&owner)
                            .bind(&written_by)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                    }
                    Ok(moved)
                })
            })
            .await
    }

    async fn heartbeat(&self, owner: &str) -> StoreResult<()> {
        let owner = owner.to_string();
        let now = ts(Utc::now());
        self.writer
            .write(false, move |conn| {
                Box::pin(async move {
                    sqlx::query(HEARTBEAT)
                        .bind(&owner)
                        .bind(&now)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn release_dead_owners(&self, silent_for: Duration) -> StoreResult<u64> {
        let now = Utc::now();
        // Silent for longer than time can count: nobody is that dead.
        let Some(dead_before) = TimeDelta::from_std(silent_for)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
        else {
            return Ok(0);
        };
        let dead_before = ts(dead_before);
        let now = ts(now);
        self.writer
            .write(true, move |conn| {
                Box::pin(async move {
                    let n = sqlx::query(RELEASE_DEAD_OWNERS)
                        .bind(&dead_before)
                        .bind(&now)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    sqlx::query(FORGET_DEAD_OWNERS)
                        .bind(&dead_before)
                        .execute(&mut *conn)
                        .await?;
                    Ok(n)
                })
            })
            .await
    }

    async fn get_event(&self, id: i64) -> StoreResult<Option<QueuedEvent>> {
        sqlx::query(sql::GET_EVENT)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(decode::event)
            .transpose()
    }

    async fn list_events(&self, f: &EventFilter) -> StoreResult<Vec<QueuedEvent>> {
        let (since, until) = time_bounds(f.since, f.until);
        let rows = sqlx::query(sql::LIST_EVENTS)
            .bind(&f.connection)
            .bind(f.status.map(EventStatus::as_str))
            .bind(i64::from(f.limit))
            .bind(f.side.map(Side::as_str))
            .bind(ts(since))
            .bind(ts(until))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::event).collect()
    }

    async fn list_dead_letters(
        &self,
        connection: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeadLetter>> {
        let rows = sqlx::query(sql::LIST_DEAD_LETTERS)
            .bind(connection)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::dead_letter).collect()
    }

    async fn retry_dead(&self, event_id: Option<i64>, now: DateTime<Utc>) -> StoreResult<u64> {
        let now = ts(now);
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(sql::RETRY_DEAD_LETTERS)
            .bind(&now)
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(sql::RETRY_DEAD_EVENTS)
            .bind(&now)
            .bind(event_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn resolve_dead(&self, r: &DeadResolution, now: DateTime<Utc>) -> StoreResult<u64> {
        let now = ts(now);
        let side = r.side.map(Side::as_str);
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (since, until) = time_bounds(r.since, r.until);
        let (since, until) = (ts(since), ts(until));
        sqlx::query(sql::RESOLVE_DEAD_LETTERS)
            .bind(&now)
            .bind(r.event_id)
            .bind(&r.connection)
            .bind(side)
            .bind(&since)
            .bind(&until)
            .execute(&mut *tx)
            .await?;
        let (status, note) = resolution_outcome(r);
        let n = sqlx::query(sql::RESOLVE_DEAD_EVENTS)
            .bind(&now)
            .bind(r.event_id)
            .bind(&r.connection)
            .bind(side)
            .bind(status)
            .bind(note)
            .bind(&since)
            .bind(&until)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            sqlx::query(sql::RECORD_ACTION)
                .bind(&now)
                .bind(&r.actor)
                .bind(r.action.as_str())
                .bind(&r.connection)
                .bind(side)
                .bind(r.event_id)
                .bind(i64::try_from(n).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn list_attempts(&self, id: i64) -> StoreResult<Vec<EventAttempt>> {
        let rows = sqlx::query(sql::LIST_ATTEMPTS)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| decode::attempt(r, id)).collect()
    }

    async fn list_operator_actions(&self, limit: u32) -> StoreResult<Vec<OperatorAction>> {
        let rows = sqlx::query(sql::OPERATOR_ACTIONS)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::operator_action).collect()
    }

    async fn recent_events(&self, limit: u32) -> StoreResult<Vec<RecentEvent>> {
        let rows = sqlx::query(sql::RECENT_EVENTS)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::recent_event).collect()
    }

    async fn list_cursors(&self) -> StoreResult<Vec<CursorState>> {
        let rows = sqlx::query(sql::CURSORS).fetch_all(&self.pool).await?;
        rows.iter().map(decode::cursor).collect()
    }

    async fn search_links(
        &self,
        connection: Option<&str>,
        text: &str,
        limit: u32,
        offset: u32,
    ) -> StoreResult<Vec<Link>> {
        let rows = sqlx::query(SEARCH_LINKS)
            .bind(connection)
            .bind(contains_pattern(text))
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::link).collect()
    }

    async fn link_audit(
        &self,
        connection: &str,
        jira_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(sql::LINK_AUDIT)
            .bind(connection)
            .bind(jira_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::audit).collect()
    }

    async fn queue_depth(&self) -> StoreResult<Vec<(String, EventStatus, i64)>> {
        let rows = sqlx::query(sql::QUEUE_DEPTH).fetch_all(&self.pool).await?;
        rows.iter().map(decode::queue_depth).collect()
    }

    async fn link_by_item(
        &self,
        connection: &str,
        side: Side,
        item_id: &str,
    ) -> StoreResult<Option<Link>> {
        let sql = match side {
            Side::Jira => sql::LINK_BY_JIRA_ID,
            Side::External => sql::LINK_BY_EXTERNAL_ID,
        };
        sqlx::query(sql)
            .bind(connection)
            .bind(item_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(decode::link)
            .transpose()
    }

    async fn lock_connection(&self, connection: &str) -> StoreResult<ConnectionLock> {
        let lock = {
            // A poisoned map only means a panic elsewhere while inserting; the map is intact.
            let mut locks = self
                .connection_locks
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            locks.entry(connection.to_string()).or_default().clone()
        };
        Ok(ConnectionLock::new(lock.lock_owned().await))
    }

    async fn save_link(&self, link: &Link) -> StoreResult<()> {
        let shadow = to_json("shadow", &link.shadow)?;
        let now = ts(Utc::now());
        let link = link.clone();
        // One write; the read after it only explains a refusal.
        self.writer
            .write(false, move |conn| {
                Box::pin(async move {
                    if Self::update_link(&mut *conn, &link, &shadow, &now).await? {
                        return Ok(());
                    }
                    let stored =
                        Self::link_by_jira_id(conn, &link.connection, &link.jira_id).await?;
                    Err(link_not_saved(&link, stored.as_ref()))
                })
            })
            .await
    }

    async fn insert_link(&self, link: &Link) -> StoreResult<Result<(), Link>> {
        let shadow = to_json("shadow", &link.shadow)?;
        let now = ts(Utc::now());
        let _w = self.write.lock().await;
        let mut conn = self.pool.acquire().await?;
        if Self::insert_link_row(&mut conn, link, &shadow, &now).await? {
            forget_recorded_creates(&mut conn, link).await?;
            return Ok(Ok(()));
        }
        let existing = sqlx::query(sql::LINK_IN_THE_WAY)
            .bind(&link.connection)
            .bind(&link.jira_id)
            .bind(&link.external_id)
            .fetch_optional(&mut *conn)
            .await?;
        match existing.as_ref().map(decode::link).transpose()? {
            Some(existing) => Ok(Err(existing)),
            None => Err(link_conflict(link, None)),
        }
    }

    async fn record_create(
        &self,
        connection: &str,
        source: Side,
        item_id: &str,
        values: &Shadow,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let shadow = to_json("recorded create", values)?;
        let _w = self.write.lock().await;
        sqlx::query(sql::RECORD_CREATE)
            .bind(connection)
            .bind(source.as_str())
            .bind(item_id)
            .bind(&shadow)
            .bind(ts(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn forget_create(
        &self,
        connection: &str,
        source: Side,
        item_id: &str,
    ) -> StoreResult<()> {
        let _w = self.write.lock().await;
        sqlx::query(sql::FORGET_CREATE)
            .bind(connection)
            .bind(source.as_str())
            .bind(item_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn recorded_create(
        &self,
        connection: &str,
        source: Side,
        item_id: &str,
    ) -> StoreResult<Option<Shadow>> {
        let shadow: Option<String> = sqlx::query_scalar(sql::RECORDED_CREATE)
            .bind(connection)
            .bind(source.as_str())
            .bind(item_id)
            .fetch_optional(&self.pool)
            .await?;
        shadow
            .map(|s| decode_recorded_create(connection, source, item_id, &s))
            .transpose()
    }

    async fn recorded_creates_into(
        &self,
        connection: &str,
        target: Side,
    ) -> StoreResult<Vec<RecordedCreate>> {
        let source = target.other();
        let rows = sqlx::query(sql::RECORDED_CREATES_FROM)
            .bind(connection)
            .bind(source.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| decode::recorded_create(row, connection, source))
            .collect()
    }

    async fn create_unreadable(
        &self,
        connection: &str,
        source: Side,
        item_id: &str,
        reason: &str,
        config: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(sql::MARK_UNREADABLE)
            .bind(connection)
            .bind(source.as_str())
            .bind(item_id)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::OPEN_CIRCUIT)
            .bind(connection)
            .bind(source.other().as_str())
            .bind(config)
            .bind(reason)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_circuits(&self) -> StoreResult<Vec<CreateCircuit>> {
        let rows = sqlx::query(sql::CREATE_CIRCUITS)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::create_circuit).collect()
    }

    async fn close_create_circuits(
        &self,
        connection: Option<&str>,
        side: Option<Side>,
        unless_config: Option<&str>,
    ) -> StoreResult<u64> {
        let side = side.map(Side::as_str);
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query(sql::CLOSE_CIRCUITS)
            .bind(connection)
            .bind(side)
            .bind(unless_config)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if unless_config.is_none() {
            // The creates into that side are copies of the other side's items.
            sqlx::query(sql::LET_GO_UNREADABLE)
                .bind(connection)
                .bind(side)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn list_links(
        &self,
        connection: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> StoreResult<Vec<Link>> {
        let rows = sqlx::query(sql::LIST_LINKS)
            .bind(connection)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::link).collect()
    }

    async fn comment_thread(
        &self,
        connection: &str,
        jira_id: &str,
        external_id: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<(DateTime<Utc>, Vec<CommentLink>)> {
        let started: Option<String> = sqlx::query_scalar(sql::COMMENT_THREAD_SINCE)
            .bind(connection)
            .bind(jira_id)
            .fetch_optional(&self.pool)
            .await?;
        let since = match started {
            Some(s) => parse_ts("comment thread", &s)?,
            None => {
                let _w = self.write.lock().await;
                sqlx::query(sql::START_COMMENT_THREAD)
                    .bind(connection)
                    .bind(jira_id)
                    .bind(external_id)
                    .bind(ts(since))
                    .execute(&self.pool)
                    .await?;
                since
            }
        };
        let rows = sqlx::query(sql::COMMENT_LINKS)
            .bind(connection)
            .bind(jira_id)
            .fetch_all(&self.pool)
            .await?;
        let links = rows
            .iter()
            .map(decode::comment_link)
            .collect::<StoreResult<_>>()?;
        Ok((since, links))
    }

    async fn save_comment_link(
        &self,
        connection: &str,
        jira_id: &str,
        external_id: &str,
        link: &CommentLink,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let _w = self.write.lock().await;
        if link.id == 0 {
            sqlx::query_scalar(sql::INSERT_COMMENT_LINK)
                .bind(connection)
                .bind(jira_id)
                .bind(external_id)
                .bind(link.origin.as_str())
                .bind(link.jira_id.as_deref())
                .bind(link.external_id.as_deref())
                .bind(&link.shadow)
                .bind(link.state.as_str())
                .bind(ts(now))
                .fetch_one(&self.pool)
                .await
                .map_err(|e| comment_link_error(e, link))
        } else {
            sqlx::query(sql::UPDATE_COMMENT_LINK)
                .bind(link.id)
                .bind(link.jira_id.as_deref())
                .bind(link.external_id.as_deref())
                .bind(&link.shadow)
                .bind(link.state.as_str())
                .bind(ts(now))
                .execute(&self.pool)
                .await
                .map_err(|e| comment_link_error(e, link))?;
            Ok(link.id)
        }
    }

    async fn delete_comment_link(&self, id: i64) -> StoreResult<()> {
        let _w = self.write.lock().await;
        sqlx::query(sql::DELETE_COMMENT_LINK)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn attachment_links(
        &self,
        connection: &str,
        jira_id: &str,
    ) -> StoreResult<Vec<AttachmentLink>> {
        let rows = sqlx::query(sql::ATTACHMENT_LINKS)
            .bind(connection)
            .bind(jira_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::attachment_link).collect()
    }

    async fn save_attachment_link(
        &self,
        connection: &str,
        jira_id: &str,
        external_id: &str,
        link: &AttachmentLink,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let _w = self.write.lock().await;
        let size = i64::try_from(link.size)
            .map_err(|_| StoreError::Db(format!("attachment size {} is too large", link.size)))?;
        if link.id == 0 {
            sqlx::query_scalar(sql::INSERT_ATTACHMENT_LINK)
                .bind(connection)
                .bind(jira_id)
                .bind(external_id)
                .bind(link.origin.as_str())
                .bind(link.jira_id.as_deref())
                .bind(link.external_id.as_deref())
                .bind(&link.sha256)
                .bind(&link.filename)
                .bind(size)
                .bind(link.state.as_str())
                .bind(ts(now))
                .fetch_one(&self.pool)
                .await
                .map_err(|e| attachment_link_error(e, link))
        } else {
            sqlx::query(sql::UPDATE_ATTACHMENT_LINK)
                .bind(link.id)
                .bind(link.jira_id.as_deref())
                .bind(link.external_id.as_deref())
                .bind(&link.sha256)
                .bind(link.state.as_str())
                .bind(ts(now))
                .execute(&self.pool)
                .await
                .map_err(|e| attachment_link_error(e, link))?;
            Ok(link.id)
        }
    }

    async fn delete_attachment_link(&self, id: i64) -> StoreResult<()> {
        let _w = self.write.lock().await;
        sqlx::query(sql::DELETE_ATTACHMENT_LINK)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn count_links(&self, connection: Option<&str>) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(sql::COUNT_LINKS)
            .bind(connection)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn list_conflicts(
        &self,
        connection: Option<&str>,
        jira_id: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> StoreResult<Vec<ConflictEntry>> {
        let rows = sqlx::query(sql::LIST_CONFLICTS)
            .bind(connection)
            .bind(jira_id)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::conflict).collect()
    }

    async fn list_audit(
        &self,
        connection: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(sql::LIST_AUDIT)
            .bind(connection)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::audit).collect()
    }

    async fn get_cursor(&self, connection: &str, side: Side) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(sql::GET_CURSOR)
            .bind(connection)
            .bind(side.as_str())
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_cursor(
        &self,
        connection: &str,
        side: Side,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let _w = self.write.lock().await;
        sqlx::query(sql::SET_CURSOR)
            .bind(connection)
            .bind(side.as_str())
            .bind(cursor)
            .bind(ts(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Forgets the recorded creates of both items of a link that has just been stored: the link
/// now holds what they were kept for.
async fn forget_recorded_creates(conn: &mut SqliteConnection, link: &Link) -> StoreResult<()> {
    sqlx::query(sql::FORGET_LINKED_CREATES)
        .bind(&link.connection)
        .bind(&link.jira_id)
        .bind(&link.external_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The migration runner's statements in SQLite's types: times as text, one `applied_at` for
/// the whole run.
struct SqliteMigrator<'c> {
    conn: &'c mut SqliteConnection,
    applied_at: String,
}

impl Migrator for SqliteMigrator<'_> {
    async fn ensure_table(&mut self) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(CREATE_MIGRATIONS_TABLE)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn current_version(&mut self) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(migrate::CURRENT_VERSION)
            .fetch_one(&mut *self.conn)
            .await
    }

    async fn run_script(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sql).execute(&mut *self.conn).await?;
        Ok(())
    }

    async fn record(&mut self, step: &Step) -> Result<(), sqlx::Error> {
        sqlx::query(RECORD_MIGRATION)
            .bind(step.version)
            .bind(step.name)
            .bind(&self.applied_at)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
