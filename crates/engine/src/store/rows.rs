//! Reading rows into the store's types, written once for both backends.
//!
//! A backend says only how it reads each kind of column ([`Columns`]): SQLite keeps times as
//! RFC 3339 text and every integer in 64 bits, PostgreSQL has `TIMESTAMPTZ` and 32-bit
//! `INTEGER` columns. What each column means, and every check on it, is here, so a row
//! decodes to the same value (or the same [`StoreError::Corrupt`]) on either.

use super::{
    AuditEntry, ConflictEntry, CreateCircuit, CursorState, DeadAction, DeadLetter, EventAttempt,
    EventStatus, OperatorAction, QueuedEvent, RecentEvent, RecordedCreate, StoreError, StoreResult,
};
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};
use tandem_core::{ChangeEvent, FieldValue, Link, Shadow, Side};

/// Names the row in an error ("event 7"); called only when something is wrong.
pub(crate) type What<'a> = &'a dyn Fn() -> String;

/// Reads one column, calling a type mismatch what it is: data this version cannot read.
pub(crate) fn col<'r, R, T>(row: &'r R, name: &str, what: What) -> StoreResult<T>
where
    R: Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("{}: column {name}: {e}", what())))
}

/// How a backend reads the kinds of column the tables have, by column name.
pub(crate) trait Columns {
    fn text(&self, name: &str, what: What) -> StoreResult<String>;
    fn opt_text(&self, name: &str, what: What) -> StoreResult<Option<String>>;
    /// A `BIGINT` column (`INTEGER` in SQLite, whose integers all have 64 bits).
    fn bigint(&self, name: &str, what: What) -> StoreResult<i64>;
    fn opt_bigint(&self, name: &str, what: What) -> StoreResult<Option<i64>>;
    /// An `INTEGER` column: 32 bits in PostgreSQL, 64 in SQLite.
    fn integer(&self, name: &str, what: What) -> StoreResult<i64>;
    fn time(&self, name: &str, what: What) -> StoreResult<DateTime<Utc>>;
    fn opt_time(&self, name: &str, what: What) -> StoreResult<Option<DateTime<Utc>>>;
}

/// An `events` row ([`super::sql::event_cols`]) as a queued event.
pub(crate) fn event(row: &impl Columns) -> StoreResult<QueuedEvent> {
    let id = row.bigint("id", &|| "event row".to_string())?;
    let what = || format!("event {id}");
    EventRow {
        id,
        payload: row.text("payload", &what)?,
        ordering_key: row.text("ordering_key", &what)?,
        status: row.text("status", &what)?,
        attempts: row.integer("attempts", &what)?,
        next_attempt_at: row.time("next_attempt_at", &what)?,
        lease_owner: row.opt_text("lease_owner", &what)?,
        lease_expires_at: row.opt_time("lease_expires_at", &what)?,
        last_error: row.opt_text("last_error", &what)?,
        received_at: row.time("received_at", &what)?,
        updated_at: row.time("updated_at", &what)?,
    }
    .decode()
}

/// A `links` row ([`super::sql::link_cols`]) as a link.
pub(crate) fn link(row: &impl Columns) -> StoreResult<Link> {
    let what = || "link row".to_string();
    LinkRow {
        connection: row.text("connection", &what)?,
        jira_id: row.text("jira_id", &what)?,
        jira_key: row.opt_text("jira_key", &what)?,
        external_id: row.text("external_id", &what)?,
        shadow: row.text("shadow", &what)?,
        pending: row.text("pending", &what)?,
        version: row.bigint("version", &what)?,
    }
    .decode()
}

/// A `comment_links` row ([`super::sql::COMMENT_LINKS`]) as a comment link.
pub(crate) fn comment_link(row: &impl Columns) -> StoreResult<tandem_core::CommentLink> {
    use tandem_core::comment::CommentLinkState;
    let id = row.bigint("id", &|| "comment link row".to_string())?;
    let what = || format!("comment link {id}");
    let origin = row.text("origin", &what)?;
    let origin = match origin.as_str() {
        "jira" => Side::Jira,
        "external" => Side::External,
        other => {
            return Err(StoreError::Corrupt(format!(
                "{}: origin `{other}` is not a side",
                what()
            )));
        }
    };
    let state = row.text("state", &what)?;
    let state = CommentLinkState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("{}: state `{state}` is not known", what())))?;
    Ok(tandem_core::CommentLink {
        id,
        origin,
        jira_id: row.opt_text("jira_comment", &what)?,
        external_id: row.opt_text("external_comment", &what)?,
        shadow: row.text("shadow", &what)?,
        state,
    })
}

/// An `attachment_links` row ([`super::sql::ATTACHMENT_LINKS`]) as an attachment link.
pub(crate) fn attachment_link(
    row: &impl Columns,
) -> StoreResult<tandem_core::attachment::AttachmentLink> {
    use tandem_core::attachment::AttachmentLinkState;
    let id = row.bigint("id", &|| "attachment link row".to_string())?;
    let what = || format!("attachment link {id}");
    let origin = row.text("origin", &what)?;
    let origin = match origin.as_str() {
        "jira" => Side::Jira,
        "external" => Side::External,
        other => {
            return Err(StoreError::Corrupt(format!(
                "{}: origin `{other}` is not a side",
                what()
            )));
        }
    };
    let state = row.text("state", &what)?;
    let state = AttachmentLinkState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("{}: state `{state}` is not known", what())))?;
    let size = row.bigint("size", &what)?;
    Ok(tandem_core::attachment::AttachmentLink {
        id,
        origin,
        jira_id: row.opt_text("jira_attachment", &what)?,
        external_id: row.opt_text("external_attachment", &what)?,
        sha256: row.text("sha256", &what)?,
        filename: row.text("filename", &what)?,
        size: u64::try_from(size)
            .map_err(|_| StoreError::Corrupt(format!("{}: size {size} is negative", what())))?,
        state,
    })
}

/// An `audit_log` row as an audit entry.
pub(crate) fn audit(row: &impl Columns) -> StoreResult<AuditEntry> {
    let id = row.bigint("id", &|| "audit row".to_string())?;
    let what = || format!("audit entry {id}");
    AuditRow {
        id,
        at: row.time("at", &what)?,
        connection: row.text("connection", &what)?,
        event_id: row.opt_bigint("event_id", &what)?,
        jira_id: row.text("jira_id", &what)?,
        external_id: row.text("external_id", &what)?,
        target: row.text("target", &what)?,
        field: row.text("field", &what)?,
        mapping_key: row.text("mapping_key", &what)?,
        from_value: row.opt_text("from_value", &what)?,
        to_value: row.text("to_value", &what)?,
        actor: row.text("actor", &what)?,
    }
    .decode()
}

/// A row of [`super::sql::LIST_CONFLICTS`].
pub(crate) fn conflict(row: &impl Columns) -> StoreResult<ConflictEntry> {
    let id = row.bigint("id", &|| "conflict row".to_string())?;
    let what = || format!("conflict {id}");
    let value = |name: &str| -> StoreResult<FieldValue> {
        serde_json::from_str(&row.text(name, &what)?)
            .map_err(|e| StoreError::Corrupt(format!("{}: bad {name}: {e}", what())))
    };
    let policy = row.text("policy", &what)?;
    Ok(ConflictEntry {
        id,
        at: row.time("at", &what)?,
        connection: row.text("connection", &what)?,
        event_id: row.opt_bigint("event_id", &what)?,
        jira_id: row.text("jira_id", &what)?,
        jira_key: row.opt_text("jira_key", &what)?,
        external_id: row.text("external_id", &what)?,
        mapping_key: row.text("mapping_key", &what)?,
        policy: policy
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("{}: policy: {e}", what())))?,
        winner: decode_side(&what(), &row.text("winner", &what)?)?,
        jira_value: value("jira_value")?,
        external_value: value("external_value")?,
        jira_edited_at: row.opt_time("jira_edited_at", &what)?,
        external_edited_at: row.opt_time("external_edited_at", &what)?,
        detail: row.text("detail", &what)?,
    })
}

/// A row of [`super::sql::LIST_DEAD_LETTERS`].
pub(crate) fn dead_letter(row: &impl Columns) -> StoreResult<DeadLetter> {
    let event_id = row.bigint("event_id", &|| "dead letter".to_string())?;
    let what = || format!("dead letter for event {event_id}");
    Ok(DeadLetter {
        event_id,
        connection: row.text("connection", &what)?,
        reason: row.text("reason", &what)?,
        at: row.time("at", &what)?,
        event: decode_event(event_id, &row.text("payload", &what)?)?,
    })
}

/// A row of [`super::sql::OPERATOR_ACTIONS`].
pub(crate) fn operator_action(row: &impl Columns) -> StoreResult<OperatorAction> {
    let id = row.bigint("id", &|| "operator action".to_string())?;
    let what = || format!("operator action {id}");
    Ok(OperatorAction {
        at: row.time("at", &what)?,
        actor: row.text("actor", &what)?,
        action: decode_action(&what(), &row.text("action", &what)?)?,
        connection: row.opt_text("connection", &what)?,
        side: row
            .opt_text("side", &what)?
            .map(|s| decode_side(&what(), &s))
            .transpose()?,
        event_id: row.opt_bigint("event_id", &what)?,
        events: row.bigint("events", &what)?,
    })
}

/// A row of [`super::sql::LIST_ATTEMPTS`] for event `event_id`.
pub(crate) fn attempt(row: &impl Columns, event_id: i64) -> StoreResult<EventAttempt> {
    let what = || format!("attempt at event {event_id}");
    Ok(EventAttempt {
        attempt: row.bigint("attempt", &what)?,
        at: row.time("at", &what)?,
        error: row.opt_text("error", &what)?,
        duration_ms: row.opt_bigint("duration_ms", &what)?,
        outcome: row.text("outcome", &what)?,
    })
}

/// A row of [`super::sql::RECENT_EVENTS`].
pub(crate) fn recent_event(row: &impl Columns) -> StoreResult<RecentEvent> {
    let id = row.bigint("id", &|| "event row".to_string())?;
    let what = || format!("event {id}");
    Ok(RecentEvent {
        id,
        connection: row.text("connection", &what)?,
        source: decode_side(&what(), &row.text("source", &what)?)?,
        status: decode_status(id, &row.text("status", &what)?)?,
        last_error: row.opt_text("last_error", &what)?,
        received_at: row.time("received_at", &what)?,
        updated_at: row.time("updated_at", &what)?,
    })
}

/// A row of [`super::sql::CURSORS`].
pub(crate) fn cursor(row: &impl Columns) -> StoreResult<CursorState> {
    let what = || "cursor".to_string();
    Ok(CursorState {
        connection: row.text("connection", &what)?,
        side: decode_side(&what(), &row.text("side", &what)?)?,
        cursor: row.text("cursor", &what)?,
        updated_at: row.time("updated_at", &what)?,
    })
}

/// A row of [`super::sql::QUEUE_DEPTH`]: connection, status and how many events.
pub(crate) fn queue_depth(row: &impl Columns) -> StoreResult<(String, EventStatus, i64)> {
    let what = || "queue depth".to_string();
    let status = row.text("status", &what)?;
    Ok((
        row.text("connection", &what)?,
        decode_status(0, &status)?,
        row.bigint("n", &what)?,
    ))
}

/// A row of [`super::sql::RECORDED_CREATES_FROM`], a create recorded in `connection` from
/// side `source`.
pub(crate) fn recorded_create(
    row: &impl Columns,
    connection: &str,
    source: Side,
) -> StoreResult<RecordedCreate> {
    let what = || format!("recorded create in {connection}");
    let item_id = row.text("item_id", &what)?;
    let shadow = row.text("shadow", &what)?;
    Ok(RecordedCreate {
        values: decode_recorded_create(connection, source, &item_id, &shadow)?,
        unreadable: row.opt_text("unreadable", &what)?,
        recorded_at: row.time("recorded_at", &what)?,
        source,
        item_id,
    })
}

/// A row of [`super::sql::CREATE_CIRCUITS`].
pub(crate) fn create_circuit(row: &impl Columns) -> StoreResult<CreateCircuit> {
    let what = || "create circuit".to_string();
    Ok(CreateCircuit {
        connection: row.text("connection", &what)?,
        side: decode_side(&what(), &row.text("side", &what)?)?,
        reason: row.text("reason", &what)?,
        opened_at: row.time("opened_at", &what)?,
    })
}

/// An `events` row as plain values, timestamps already decoded by the backend.
pub(crate) struct EventRow {
    pub id: i64,
    pub payload: String,
    pub ordering_key: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EventRow {
    pub fn decode(self) -> StoreResult<QueuedEvent> {
        let id = self.id;
        Ok(QueuedEvent {
            id,
            event: decode_event(id, &self.payload)?,
            ordering_key: self.ordering_key,
            status: decode_status(id, &self.status)?,
            attempts: u32::try_from(self.attempts).map_err(|_| {
                StoreError::Corrupt(format!(
                    "event {id}: attempts {} out of range",
                    self.attempts
                ))
            })?,
            next_attempt_at: self.next_attempt_at,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at,
            last_error: self.last_error,
            received_at: self.received_at,
            updated_at: self.updated_at,
        })
    }
}

pub(crate) fn decode_event(id: i64, payload: &str) -> StoreResult<ChangeEvent> {
    serde_json::from_str(payload)
        .map_err(|e| StoreError::Corrupt(format!("event {id}: payload is not a change event: {e}")))
}

pub(crate) fn decode_recorded_create(
    connection: &str,
    source: Side,
    item_id: &str,
    shadow: &str,
) -> StoreResult<Shadow> {
    serde_json::from_str(shadow).map_err(|e| {
        StoreError::Corrupt(format!(
            "recorded create of {source} item {item_id:?} in {connection}: not valid: {e}"
        ))
    })
}

pub(crate) fn decode_status(id: i64, status: &str) -> StoreResult<EventStatus> {
    status
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))
}

/// A `links` row.
pub(crate) struct LinkRow {
    pub connection: String,
    pub jira_id: String,
    pub jira_key: Option<String>,
    pub external_id: String,
    pub shadow: String,
    pub pending: String,
    pub version: i64,
}

impl LinkRow {
    pub fn decode(self) -> StoreResult<Link> {
        let shadow: Shadow = serde_json::from_str(&self.shadow).map_err(|e| {
            StoreError::Corrupt(format!(
                "link {}/{}: shadow is not valid: {e}",
                self.connection, self.jira_id
            ))
        })?;
        let pending: Shadow = serde_json::from_str(&self.pending).map_err(|e| {
            StoreError::Corrupt(format!(
                "link {}/{}: pending writes are not valid: {e}",
                self.connection, self.jira_id
            ))
        })?;
        Ok(Link {
            pending,
            connection: self.connection,
            jira_id: self.jira_id,
            jira_key: self.jira_key,
            external_id: self.external_id,
            shadow,
            version: self.version,
        })
    }
}

/// An `audit_log` row.
pub(crate) struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub connection: String,
    pub event_id: Option<i64>,
    pub jira_id: String,
    pub external_id: String,
    pub target: String,
    pub field: String,
    pub mapping_key: String,
    pub from_value: Option<String>,
    pub to_value: String,
    pub actor: String,
}

impl AuditRow {
    pub fn decode(self) -> StoreResult<AuditEntry> {
        let id = self.id;
        let value = |s: &str| -> StoreResult<FieldValue> {
            serde_json::from_str(s)
                .map_err(|e| StoreError::Corrupt(format!("audit entry {id}: bad value: {e}")))
        };
        Ok(AuditEntry {
            at: self.at,
            connection: self.connection,
            event_id: self.event_id,
            jira_id: self.jira_id,
            external_id: self.external_id,
            target: decode_side(&format!("audit entry {id}"), &self.target)?,
            field: self.field,
            mapping_key: self.mapping_key,
            from: self.from_value.as_deref().map(value).transpose()?,
            to: value(&self.to_value)?,
            actor: self.actor,
        })
    }
}

pub(crate) fn decode_side(what: &str, s: &str) -> StoreResult<Side> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn decode_action(what: &str, s: &str) -> StoreResult<DeadAction> {
    match s {
        "retry" => Ok(DeadAction::Retry),
        "discard" => Ok(DeadAction::Discard),
        other => Err(StoreError::Corrupt(format!(
            "{what}: unknown action `{other}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_payload_names_the_event() {
        let row = EventRow {
            id: 42,
            payload: "{not json".into(),
            ordering_key: "c:jira:1".into(),
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: Utc::now(),
            lease_owner: None,
            lease_expires_at: None,
            last_error: None,
            received_at: Utc::now(),
            updated_at: Utc::now(),
        };
        match row.decode() {
            Err(StoreError::Corrupt(msg)) => assert!(msg.contains("event 42"), "{msg}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
