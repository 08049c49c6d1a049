//! The PostgreSQL backend: one database shared by several `tandem serve` instances.
//!
//! Claims use `SELECT … FOR UPDATE SKIP LOCKED` inside the claiming statement, so instances
//! never wait on each other's rows and never take the same event; a completion re-checks the
//! lease under the row lock in the same transaction as the link and audit writes. Tables live
//! in the connection's current schema; tests give each run its own schema
//! ([`open_postgres_in_schema`]) so parallel runs do not collide.

use super::rows::{self as decode, Columns, What, col, decode_recorded_create};
use super::{
    AuditEntry, Completion, ConflictEntry, ConnectionLock, CreateCircuit, CursorState, DeadLetter,
    DeadResolution, Enqueued, EventFilter, EventStatus, OperatorAction, QueuedEvent, RecentEvent,
    RecordedCreate, Store, StoreError, StoreResult, attachment_link_error, check_completion,
    comment_link_error, contains_pattern, covered_note, lease_expiry, link_conflict,
    link_not_saved, redact_url, resolution_outcome, sql, to_json,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tandem_core::attachment::AttachmentLink;
use tandem_core::{ChangeEvent, CommentLink, Link, Shadow, Side};

use super::migrate::{self, Migrator, Step};
use super::{AttemptClock, EventAttempt, time_bounds};

// Statements only PostgreSQL runs; the rest are in `sql.rs`.

/// Claims due events. Several instances claim at once, so the pick locks the rows it takes
/// and skips (`SKIP LOCKED`) those another instance is claiming or completing right now: they
/// are simply not ours this round. A row that changed after our snapshot is re-checked against
/// the due condition under its lock, so a fresh lease taken elsewhere is never stolen.
const CLAIM: &str = concat!(
    "WITH picked AS (",
    sql::claim_pick!("events e", "strpos"),
    " FOR UPDATE OF e SKIP LOCKED) ",
    sql::claim_lease!(),
    " WHERE id IN (SELECT id FROM picked) RETURNING ",
    sql::event_cols!()
);

/// Settles the events a fresh read carried; the payload is JSON text, read as `jsonb`.
/// Settles the later comment events of a reconciled pair ([`sql::settle_comment_reconciles`]).
const SETTLE_COMMENT_RECONCILES: &str =
    sql::settle_comment_reconciles!("(payload::jsonb ->> 'kind')");

const SETTLE_CARRIED: &str = sql::settle_carried!("(payload::jsonb ->> 'kind')");

/// Notes that lease owner `$1` is alive, by the server's clock: the one clock every instance
/// shares (see [`Store::heartbeat`]).
/// Moves pending events due after `$3` and last written at or before `$4` by `$1`
/// milliseconds, never to before `$2` (now).
const SHIFT_PENDING: &str = "UPDATE events
     SET next_attempt_at = GREATEST(next_attempt_at + $1::bigint * interval '1 millisecond', $2),
         updated_at = $2
     WHERE status = 'pending' AND next_attempt_at > $3 AND updated_at <= $4";

/// Moves the leases owner `$2` holds, last written at or before `$3`, by `$1` milliseconds.
const SHIFT_LEASES: &str = "UPDATE events
     SET lease_expires_at = lease_expires_at + $1::bigint * interval '1 millisecond'
     WHERE status = 'leased' AND lease_owner = $2 AND updated_at <= $3";

const HEARTBEAT: &str = "INSERT INTO lease_owners (owner, heartbeat_at) VALUES ($1, now())
     ON CONFLICT (owner) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";

/// The owners silent for more than `$1` seconds by the server's clock, locked. Several
/// instances may look at once: each owner's row is taken by one of them, which releases and
/// forgets it, and the others skip it.
const DEAD_OWNERS: &str = "SELECT owner FROM lease_owners
     WHERE heartbeat_at < now() - make_interval(secs => $1)
     FOR UPDATE SKIP LOCKED";

/// Gives back, due at once (`$2`), the leases held by the owners in array `$1`.
const RELEASE_OWNERS: &str = "UPDATE events
     SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = $2
     WHERE status = 'leased' AND lease_owner = ANY($1)";

/// Forgets the owners in array `$1`.
const FORGET_OWNERS: &str = "DELETE FROM lease_owners WHERE owner = ANY($1)";

/// Links matching a search; `ILIKE` makes the same case-insensitive match SQLite's `LIKE`
/// makes.
const SEARCH_LINKS: &str = sql::search_links!("ILIKE");

/// Waits for the link lock of connection `$2` (class `$1`), held by this session.
const LOCK_CONNECTION: &str = "SELECT pg_advisory_lock($1, hashtext($2))";

/// Lets go the link lock of connection `$2` (class `$1`).
const UNLOCK_CONNECTION: &str = "SELECT pg_advisory_unlock($1, hashtext($2))";

/// Waits for migration lock `$1`, held until the transaction ends.
const LOCK_MIGRATIONS: &str = "SELECT pg_advisory_xact_lock($1)";

/// The migrations table in PostgreSQL's types.
const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
         version    BIGINT PRIMARY KEY,
         name       TEXT NOT NULL,
         applied_at TIMESTAMPTZ NOT NULL
     )";

/// Records migration `$1` named `$2`, applied now by the server's clock.
const RECORD_MIGRATION: &str =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())";

/// Advisory lock held while migrating, so instances starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x7a6e_6465_6d00_0001;

/// First key of the two-key advisory locks taken by [`Store::lock_connection`] (the second is
/// `hashtext(connection name)`). Two-key and one-key advisory locks live in separate spaces,
/// so these can never collide with [`MIGRATION_LOCK`].
const CONNECTION_LOCK_CLASS: i32 = 0x5444_4d31;

/// How long [`Store::lock_connection`] waits before giving up with a (transient) error, so a
/// wedged holder delays events instead of stalling a worker forever.
const CONNECTION_LOCK_WAIT: Duration = Duration::from_secs(30);

/// A session advisory lock and the pooled connection whose session holds it.
struct PgAdvisoryLock {
    conn: Option<PoolConnection<Postgres>>,
    connection: String,
}

impl Drop for PgAdvisoryLock {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let connection = std::mem::take(&mut self.connection);
        match tokio::runtime::Handle::try_current() {
            // Unlock, then the connection goes back to the pool for other work.
            Ok(rt) => {
                rt.spawn(async move {
                    let unlocked = sqlx::query(UNLOCK_CONNECTION)
                        .bind(CONNECTION_LOCK_CLASS)
                        .bind(&connection)
                        .execute(&mut *conn)
                        .await;
                    if unlocked.is_err() {
                        // Ending the session is the other way to release a session lock.
                        conn.close_on_drop();
                    }
                });
            }
            Err(_) => conn.close_on_drop(),
        }
    }
}

pub(crate) struct PgStore {
    pool: PgPool,
    /// When this process claimed the events it holds (how long each attempt took).
    clock: AttemptClock,
}

/// Opens a store whose tables live in `schema` (created if missing). For tests, and for
/// running several independent Tandem deployments in one database.
pub async fn open_postgres_in_schema(
    url: &str,
    schema: &str,
) -> StoreResult<Arc<dyn super::Store>> {
    Ok(Arc::new(PgStore::open(url, Some(schema)).await?))
}

/// Drops `schema` and everything in it (the end of a test run).
pub async fn drop_postgres_schema(url: &str, schema: &str) -> StoreResult<()> {
    check_schema_name(schema)?;
    let mut conn = PgConnection::connect_with(&connect_options(url)?).await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Schema names are spliced into SQL (identifiers cannot be bound), so only plain ones pass.
fn check_schema_name(schema: &str) -> StoreResult<()> {
    let plain = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(format!(
            "schema name `{schema}`: use 1 to 63 ASCII letters, digits or underscores"
        )))
    }
}

fn connect_options(url: &str) -> StoreResult<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidUrl(format!("`{}`: {e}", redact_url(url))))
}

/// PostgreSQL's columns: `TIMESTAMPTZ` times, `INTEGER` in 32 bits.
impl Columns for PgRow {
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
        col::<_, i32>(self, name, what).map(i64::from)
    }
    fn time(&self, name: &str, what: What) -> StoreResult<DateTime<Utc>> {
        col(self, name, what)
    }
    fn opt_time(&self, name: &str, what: What) -> StoreResult<Option<DateTime<Utc>>> {
        col(self, name, what)
    }
}

impl PgStore {
    /// Records an attempt at `event_id` and keeps only the newest ones, in the caller's
    /// transaction (the one recording the outcome).
    async fn record_attempt(
        conn: &mut PgConnection,
        event_id: i64,
        now: DateTime<Utc>,
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

    pub(crate) async fn open(url: &str, schema: Option<&str>) -> StoreResult<PgStore> {
        let mut opts = connect_options(url)?;
        if let Some(schema) = schema {
            check_schema_name(schema)?;
            let mut conn = PgConnection::connect_with(&opts).await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            // A startup parameter, so every pooled connection (including reconnects) has it.
            opts = opts.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        let store = PgStore {
            pool,
            clock: AttemptClock::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_MIGRATIONS)
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        migrate::migrate(&mut PgMigrator { conn: &mut tx }, migrate::POSTGRES).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes a claimed event that cannot be read out of the queue (status dead, the reason in
    /// `last_error`), so it cannot wedge every worker that claims it. No dead-letter row: its
    /// payload could not be shown there either. `retry_dead` brings it back, e.g. after an
    /// upgrade that reads it.
    async fn quarantine(
        &self,
        id: i64,
        owner: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        tracing::error!(
            event_id = id,
            error = why,
            "unreadable event taken out of the queue"
        );
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
        conn: &mut PgConnection,
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
        conn: &mut PgConnection,
        link: &Link,
        shadow: &str,
        now: DateTime<Utc>,
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
    async fn upsert_link(
        conn: &mut PgConnection,
        link: &Link,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let shadow = to_json("shadow", &link.shadow)?;
        if Self::update_link(&mut *conn, link, &shadow, now).await? {
            return Ok(());
        }
        if let Some(stored) = Self::link_by_jira_id(conn, &link.connection, &link.jira_id).await? {
            return Err(link_conflict(link, Some(&stored)));
        }
        if Self::insert_link_row(conn, link, &shadow, now).await? {
            Ok(())
        } else {
            Err(link_conflict(link, None))
        }
    }

    /// Inserts unless the Jira id or the external id is already linked; says which happened.
    /// `ON CONFLICT DO NOTHING` rather than catching the unique violation, because an error
    /// would abort the surrounding transaction.
    async fn insert_link_row(
        conn: &mut PgConnection,
        link: &Link,
        shadow: &str,
        now: DateTime<Utc>,
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

    async fn insert_conflict(
        conn: &mut PgConnection,
        c: &ConflictEntry,
        default_event: i64,
    ) -> StoreResult<()> {
        sqlx::query(sql::INSERT_CONFLICT)
            .bind(c.at)
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
            .bind(c.jira_edited_at)
            .bind(c.external_edited_at)
            .bind(&c.detail)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn insert_audit(
        conn: &mut PgConnection,
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
            .bind(a.at)
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
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        // On a concurrent insert of the same key, PostgreSQL waits for it to commit and then
        // does nothing, so the lookup below always finds the winner.
        let inserted: Option<i64> = sqlx::query_scalar(sql::ENQUEUE)
            .bind(&ev.connection)
            .bind(&ev.idempotency_key)
            .bind(ordering_key)
            .bind(ev.source.as_str())
            .bind(&ev.item_id)
            .bind(&payload)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(id) = inserted {
            return Ok(Enqueued::New(id));
        }
        let id: i64 = sqlx::query_scalar(sql::EVENT_BY_IDEMPOTENCY_KEY)
            .bind(&ev.connection)
            .bind(&ev.idempotency_key)
            .fetch_one(&self.pool)
            .await?;
        Ok(Enqueued::Duplicate(id))
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
        let expires = lease_expiry(now, lease)?;
        let rows = sqlx::query(CLAIM)
            .bind(owner)
            .bind(expires)
            .bind(now)
            .bind(i64::from(limit))
            .bind(&except)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            match decode::event(row) {
                Ok(ev) => out.push(ev),
                Err(StoreError::Corrupt(why)) => {
                    let id: i64 = row.try_get("id")?;
                    self.quarantine(id, owner, &why, now).await?;
                }
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|e| e.id);
        self.clock.started(out.iter().map(|e| e.id), now);
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
        let mut tx = self.pool.begin().await?;
        // Takes the row lock first: a concurrent reclaim either already committed (we see its
        // owner and stop) or waits for us.
        let owned = sqlx::query(sql::COMPLETE)
            .bind(c.status.as_str())
            .bind(&c.note)
            .bind(now)
            .bind(event_id)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if owned != 1 {
            return Err(StoreError::LeaseLost { event_id });
        }
        let error = (c.status == EventStatus::Ignored)
            .then_some(c.note.as_deref())
            .flatten();
        let took = self.clock.took(event_id, now);
        Self::record_attempt(&mut tx, event_id, now, error, took, c.status.as_str()).await?;
        if let Some(through) = c.covers_through {
            sqlx::query(SETTLE_CARRIED)
                .bind(covered_note(event_id))
                .bind(now)
                .bind(event_id)
                .bind(through)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(link) = &c.link {
            Self::upsert_link(&mut tx, link, now).await?;
        }
        for a in &c.audit {
            Self::insert_audit(&mut tx, a, event_id).await?;
        }
        for k in &c.conflicts {
            Self::insert_conflict(&mut tx, k, event_id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn settle_comment_reconciles(
        &self,
        event_id: i64,
        through: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        Ok(sqlx::query(SETTLE_COMMENT_RECONCILES)
            .bind(covered_note(event_id))
            .bind(now)
            .bind(event_id)
            .bind(through)
            .execute(&self.pool)
            .await?
            .rows_affected())
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
        let mut tx = self.pool.begin().await?;
        let attempts: Option<i32> = sqlx::query_scalar(sql::RETRY_LATER)
            .bind(next_at)
            .bind(error)
            .bind(now)
            .bind(event_id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
        let attempts = attempts.ok_or(StoreError::LeaseLost { event_id })?;
        let took = self.clock.took(event_id, now);
        Self::record_attempt(&mut tx, event_id, now, Some(error), took, "retry").await?;
        tx.commit().await?;
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
        let expires = lease_expiry(now, lease)?;
        let extended = sqlx::query(sql::EXTEND_LEASE)
            .bind(expires)
            .bind(now)
            .bind(event_id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(extended.rows_affected() > 0)
    }

    async fn move_to_key(
        &self,
        event_id: i64,
        owner: &str,
        ordering_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let moved = sqlx::query(sql::MOVE_TO_KEY)
            .bind(ordering_key)
            .bind(now)
            .bind(event_id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(moved.rows_affected() > 0)
    }

    async fn dead_letter(
        &self,
        event_id: i64,
        owner: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let connection: Option<String> = sqlx::query_scalar(sql::DEAD_EVENT)
            .bind(reason)
            .bind(now)
            .bind(event_id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
        let connection = connection.ok_or(StoreError::LeaseLost { event_id })?;
        sqlx::query(sql::INSERT_DEAD_LETTER)
            .bind(event_id)
            .bind(&connection)
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let took = self.clock.took(event_id, now);
        Self::record_attempt(&mut tx, event_id, now, Some(reason), took, "dead").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn shift_schedule(
        &self,
        owner: &str,
        by: chrono::TimeDelta,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let plan = super::ShiftPlan::new(by, now);
        let millis = by.num_milliseconds();
        let mut tx = self.pool.begin().await?;
        let mut moved = sqlx::query(SHIFT_PENDING)
            .bind(millis)
            .bind(now)
            .bind(plan.due_after)
            .bind(plan.written_by)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if plan.move_leases {
            moved += sqlx::query(SHIFT_LEASES)
                .bind(millis)
                .bind(owner)
                .bind(plan.written_by)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(sql::RELEASE_LEASES)
            .bind(Utc::now())
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

    async fn heartbeat(&self, owner: &str) -> StoreResult<()> {
        sqlx::query(HEARTBEAT)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release_dead_owners(&self, silent_for: Duration) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let dead: Vec<String> = sqlx::query_scalar(DEAD_OWNERS)
            .bind(silent_for.as_secs_f64())
            .fetch_all(&mut *tx)
            .await?;
        if dead.is_empty() {
            return Ok(0);
        }
        let n = sqlx::query(RELEASE_OWNERS)
            .bind(&dead)
            .bind(Utc::now())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(FORGET_OWNERS)
            .bind(&dead)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
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
            .bind(since)
            .bind(until)
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::RETRY_DEAD_LETTERS)
            .bind(now)
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(sql::RETRY_DEAD_EVENTS)
            .bind(now)
            .bind(event_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn resolve_dead(&self, r: &DeadResolution, now: DateTime<Utc>) -> StoreResult<u64> {
        let side = r.side.map(Side::as_str);
        let mut tx = self.pool.begin().await?;
        let (since, until) = time_bounds(r.since, r.until);
        sqlx::query(sql::RESOLVE_DEAD_LETTERS)
            .bind(now)
            .bind(r.event_id)
            .bind(&r.connection)
            .bind(side)
            .bind(since)
            .bind(until)
            .execute(&mut *tx)
            .await?;
        let (status, note) = resolution_outcome(r);
        let n = sqlx::query(sql::RESOLVE_DEAD_EVENTS)
            .bind(now)
            .bind(r.event_id)
            .bind(&r.connection)
            .bind(side)
            .bind(status)
            .bind(note)
            .bind(since)
            .bind(until)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            sqlx::query(sql::RECORD_ACTION)
                .bind(now)
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
        let mut conn = self.pool.acquire().await?;
        let locked = tokio::time::timeout(
            CONNECTION_LOCK_WAIT,
            sqlx::query(LOCK_CONNECTION)
                .bind(CONNECTION_LOCK_CLASS)
                .bind(connection)
                .execute(&mut *conn),
        )
        .await;
        match locked {
            Ok(Ok(_)) => Ok(ConnectionLock::new(PgAdvisoryLock {
                conn: Some(conn),
                connection: connection.to_string(),
            })),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                // The lock may be granted after we stop waiting: ending the session drops it.
                conn.close_on_drop();
                Err(StoreError::Db(format!(
                    "timed out after {}s waiting for the link lock of connection `{connection}`",
                    CONNECTION_LOCK_WAIT.as_secs()
                )))
            }
        }
    }

    async fn save_link(&self, link: &Link) -> StoreResult<()> {
        let shadow = to_json("shadow", &link.shadow)?;
        let mut conn = self.pool.acquire().await?;
        if Self::update_link(&mut conn, link, &shadow, Utc::now()).await? {
            return Ok(());
        }
        let stored = Self::link_by_jira_id(&mut conn, &link.connection, &link.jira_id).await?;
        Err(link_not_saved(link, stored.as_ref()))
    }

    async fn insert_link(&self, link: &Link) -> StoreResult<Result<(), Link>> {
        let shadow = to_json("shadow", &link.shadow)?;
        let mut conn = self.pool.acquire().await?;
        if Self::insert_link_row(&mut conn, link, &shadow, Utc::now()).await? {
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
        sqlx::query(sql::RECORD_CREATE)
            .bind(connection)
            .bind(source.as_str())
            .bind(item_id)
            .bind(&shadow)
            .bind(now)
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
        let mut tx = self.pool.begin().await?;
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
            .bind(now)
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
        let mut tx = self.pool.begin().await?;
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
        let started: Option<DateTime<Utc>> = sqlx::query_scalar(sql::COMMENT_THREAD_SINCE)
            .bind(connection)
            .bind(jira_id)
            .fetch_optional(&self.pool)
            .await?;
        let since = match started {
            Some(s) => s,
            None => {
                sqlx::query(sql::START_COMMENT_THREAD)
                    .bind(connection)
                    .bind(jira_id)
                    .bind(external_id)
                    .bind(since)
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
                .bind(now)
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
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(|e| comment_link_error(e, link))?;
            Ok(link.id)
        }
    }

    async fn delete_comment_link(&self, id: i64) -> StoreResult<()> {
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
                .bind(now)
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
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(|e| attachment_link_error(e, link))?;
            Ok(link.id)
        }
    }

    async fn delete_attachment_link(&self, id: i64) -> StoreResult<()> {
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
        sqlx::query(sql::SET_CURSOR)
            .bind(connection)
            .bind(side.as_str())
            .bind(cursor)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Forgets the recorded creates of both items of a link that has just been stored: the link
/// now holds what they were kept for.
async fn forget_recorded_creates(conn: &mut PgConnection, link: &Link) -> StoreResult<()> {
    sqlx::query(sql::FORGET_LINKED_CREATES)
        .bind(&link.connection)
        .bind(&link.jira_id)
        .bind(&link.external_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The migration runner's statements in PostgreSQL's types, timed by the server's clock.
struct PgMigrator<'c> {
    conn: &'c mut PgConnection,
}

impl Migrator for PgMigrator<'_> {
    async fn ensure_table(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query(CREATE_MIGRATIONS_TABLE)
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
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(check_schema_name("tandem_test_01").is_ok());
        assert!(check_schema_name("").is_err());
        assert!(check_schema_name("x\"; DROP TABLE y; --").is_err());
    }
}
