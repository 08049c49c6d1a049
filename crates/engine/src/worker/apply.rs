//! Step 2 and 3 of a linked event: read the source as it is, plan against the shadow (an
//! echo or an old state costs no remote call) and then against the twin, store the planned
//! values as pending, write them in one call, and record what was written.
//!
//! Also the pieces a create shares with an update: the event's source values, settling fields
//! a target refused, and the audit rows of a write.

use super::script::{item_view, transform_writes};
use super::{ConnectionRuntime, Engine, Failure, Outcome};
use crate::connector::{Connector, ConnectorError, Fields, Item};
use crate::store::{AuditEntry, ConflictEntry, EventStatus, QueuedEvent};
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use tandem_core::plan::{Plan, keep_written, plan_update, restore_written};
use tandem_core::{ChangeEvent, Link, Shadow, Side};
use tracing::debug;

/// The source as an event is planned with: its values and their time, the plan against the
/// shadow alone, and the newest event id taken before the item was read (if it was).
struct SourceState {
    values: Fields,
    ts: DateTime<Utc>,
    against_shadow: Plan,
    covers_through: Option<i64>,
}

impl Engine {
    /// A linked event: compare with the shadow and the twin, write what changed, once.
    pub(super) async fn apply_to_link(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        mut link: Link,
        fetched_source: Option<&Item>,
    ) -> Result<Outcome, Failure> {
        let event = &queued.event;
        let target_side = event.source.other();
        let target_id = link.id_on(target_side).to_string();
        let source = self
            .read_source(conn, queued, &link, fetched_source)
            .await?;
        if writes_nothing(&source.against_shadow) {
            return self
                .finish_unwritten(queued, link, source.against_shadow, source.covers_through)
                .await;
        }
        // The twin's current state tells a real conflict (both sides changed since the last
        // sync) from a plain update.
        let mut twin = conn.side(target_side).fetch(&target_id).await?;
        if target_side == Side::Jira {
            self.fill_link_field(conn, &link, &twin).await?;
        } else {
            twin.fields = self.users_in(conn, target_side, twin.fields).await?;
        }
        // Values a script wrote are read as the mapped values they stand for, on both sides
        // (see `restore_written`): an echo stays an echo, a twin holding one is unchanged.
        let source_values = restored(conn, event.source, &source.values, &link);
        let twin_as_synced = match restored(conn, target_side, &twin.fields, &link) {
            Cow::Borrowed(_) => Cow::Borrowed(&twin),
            Cow::Owned(fields) => Cow::Owned(Item {
                fields,
                ..twin.clone()
            }),
        };
        let mut plan = plan_update(&conn.plan_input(
            event.source,
            source.ts,
            &source_values,
            Some(&twin_as_synced),
            &link.shadow,
            &link.pending,
        ));
        keep_written(&mut plan, &link.shadow, &link.pending);
        // Decisions name fields and outcomes, never values: enough to trace an event's path
        // (RUST_LOG=tandem=debug) without putting issue content in the logs.
        debug!(event = queued.id, attempts = queued.attempts, link = %link.jira_id, decisions = ?plan.decisions, "planned");
        if let Some(err) = plan.errors.first() {
            return Err(Failure::Permanent(err.to_string()));
        }
        // People get the target's own user values (or the unmatched rule) first.
        let user_audit = self
            .users_out(
                conn,
                target_side,
                &mut plan,
                (&link.jira_id, &link.external_id),
                queued.id,
            )
            .await?;
        // The script's hook shapes what is written; the shadow keeps the mapped values.
        let view = item_view(event.source, &link, event.item_key.clone(), &source.values);
        transform_writes(conn, &mut plan, target_side, &view)?;
        if !plan.writes.is_empty() {
            self.write_planned(conn, &mut link, &plan, target_side, &twin)
                .await?;
        }
        let mut audit = audit_rows(
            conn,
            Some(queued.id),
            &link,
            target_side,
            &plan.writes,
            &twin.fields,
        );
        note_how(&mut audit, conn.side(target_side).as_ref(), &target_id);
        audit.extend(user_audit);
        self.finish_applied(conn, queued, link, &plan, audit, source.covers_through)
            .await
    }

    /// The source item's values to plan with, judged against the shadow alone; a delivered
    /// snapshot that would write, looks stale, or would settle a pending write as landed is
    /// replaced by the item read as it is now.
    async fn read_source(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        link: &Link,
        fetched_source: Option<&Item>,
    ) -> Result<SourceState, Failure> {
        let event = &queued.event;
        // Taken before the item is read: the later events of this item queued by then are
        // carried by that read and settled with this one (see `Completion::covers_through`).
        let mut covers_through = None;
        if fetched_source.is_none() && event.needs_fetch {
            covers_through = Some(self.store.newest_event_id().await?);
        }
        let (values, ts) = self.source_values(conn, event, fetched_source).await?;
        if event.source == Side::Jira
            && let Some(item) = fetched_source
        {
            self.fill_link_field(conn, link, item).await?;
        }
        let against_shadow = plan_against_shadow(conn, event.source, link, &values, ts);
        let read_source = fetched_source.is_none() && !event.needs_fetch;
        // A delivery judged older than the synced edit is read again too: its time may come
        // from another clock than the shadow's (the seed's webhooks carry none, so it is the
        // arrival time here), and a later edit must not be dropped on a clock difference.
        // Echoes (equal to the shadow) still cost nothing.
        let looks_stale = against_shadow
            .with_outcome(tandem_core::plan::Outcome::Stale)
            .next()
            .is_some();
        // And so is one that would settle a pending write as landed (the shadow-only plan
        // can only find one written to the event's own side): the snapshot may be an old
        // state that happens to hold the written value, and the shadow would then record a
        // value the side no longer holds. Only the item as it is now says the write stands.
        let settles_pending = !against_shadow.landed.is_empty();
        if read_source && (looks_stale || settles_pending || !writes_nothing(&against_shadow)) {
            return self.source_as_now(conn, event, link, ts).await;
        }
        Ok(SourceState {
            values,
            ts,
            against_shadow,
            covers_through,
        })
    }

    /// The source item read as it is now, in place of a delivered snapshot (`delivered_ts`:
    /// the snapshot's time, kept when the item has none), judged against the shadow alone.
    ///
    /// A delivered snapshot is not enough to write on: it may be an old state arriving late
    /// or out of order (an earlier edit, or the echo of an earlier write of ours, which the
    /// shadow no longer recognises), and its time may be only the arrival time (the seed's
    /// webhook carries none), which would make an old value look new and bounce it back and
    /// forth. The item as it is now, with its own `updated`, is what gets planned; an old
    /// snapshot then turns out an echo or stale.
    async fn source_as_now(
        &self,
        conn: &ConnectionRuntime,
        event: &ChangeEvent,
        link: &Link,
        delivered_ts: DateTime<Utc>,
    ) -> Result<SourceState, Failure> {
        let covers_through = Some(self.store.newest_event_id().await?);
        let item = conn
            .side(event.source)
            .fetch(link.id_on(event.source))
            .await?;
        if event.source == Side::Jira {
            self.fill_link_field(conn, link, &item).await?;
        }
        let ts = item.updated.unwrap_or(delivered_ts);
        let values = self.users_in(conn, event.source, item.fields).await?;
        let against_shadow = plan_against_shadow(conn, event.source, link, &values, ts);
        Ok(SourceState {
            values,
            ts,
            against_shadow,
            covers_through,
        })
    }

    /// Completes an event that needs no write, judged against the shadow alone.
    async fn finish_unwritten(
        &self,
        queued: &QueuedEvent,
        mut link: Link,
        against_shadow: Plan,
        covers_through: Option<i64>,
    ) -> Result<Outcome, Failure> {
        // The echo of a pending write (its answer was lost) shows that it landed: it
        // becomes the synced state.
        let landed = against_shadow.landed;
        let link = (!landed.is_empty()).then(|| {
            for (key, entry) in landed {
                link.pending.0.remove(&key);
                link.shadow.set(key, entry);
            }
            link.version += 1;
            link
        });
        self.finish(
            queued,
            EventStatus::Done,
            link,
            Vec::new(),
            "nothing to write (echo or stale)",
            covers_through,
        )
        .await?;
        Ok(Outcome::Applied { writes: 0 })
    }

    /// Writes the plan to the twin (`twin`: as read before), write-ahead: the planned values
    /// are in the link as pending before the call. A write the target took only in part
    /// records what landed and fails the event for the rest.
    async fn write_planned(
        &self,
        conn: &ConnectionRuntime,
        link: &mut Link,
        plan: &Plan,
        target_side: Side,
        twin: &Item,
    ) -> Result<(), Failure> {
        let target = conn.side(target_side);
        let target_id = link.id_on(target_side).to_string();
        // Write-ahead: the planned values are stored as pending first. If the write goes
        // through but its answer is lost, the retry finds them on the twin and knows them
        // for its own, instead of taking them for an edit made there (at the twin's
        // `updated`, which a later edit may have moved) and letting them win a conflict.
        for (key, entry) in &plan.landed {
            link.shadow.set(key.clone(), entry.clone());
        }
        link.pending = plan.pending_writes();
        link.version += 1;
        self.store.save_link(link).await?;
        let Err(e) = target.update(&target_id, &plan.writes).await else {
            return Ok(());
        };
        let ConnectorError::PartlyApplied {
            message, refused, ..
        } = e
        else {
            return Err(e.into());
        };
        // The other fields landed: they become the synced state before the event
        // fails for the refused ones alone.
        plan.apply_shadow(&mut link.shadow);
        // Read again: a walk that failed midway left the twin somewhere new.
        let now = match target.fetch(&target_id).await {
            Ok(item) => item.fields,
            Err(_) => twin.fields.clone(),
        };
        settle_refused(conn, &mut link.shadow, &refused, target_side, &now);
        link.pending = Default::default();
        link.version += 1;
        self.store.save_link(link).await?;
        Err(refused_failure(&message, &refused, plan.writes.len()))
    }

    /// Completes an event whose plan was written (or needed no write once the twin was
    /// read): its audit rows, and the link with everything learnt, nothing left pending.
    async fn finish_applied(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        mut link: Link,
        plan: &Plan,
        audit: Vec<AuditEntry>,
        covers_through: Option<i64>,
    ) -> Result<Outcome, Failure> {
        let event = &queued.event;
        let writes = plan.writes.len();
        // The twin was read, so every pending write has been judged (landed or not): the
        // answered writes and what was learnt go into the shadow, and nothing stays pending.
        let changed =
            !plan.shadow_updates.is_empty() || !plan.landed.is_empty() || !link.pending.is_empty();
        plan.apply_shadow(&mut link.shadow);
        link.pending = Default::default();
        if link.jira_key.is_none() && event.source == Side::Jira {
            link.jira_key = event.item_key.clone();
        }
        let conflicts = conflict_rows(conn, &link, queued.id, plan);
        let link = if changed {
            link.version += 1;
            Some(link)
        } else {
            None
        };
        let note = if writes == 0 {
            "nothing to write (echo, unchanged or stale)"
        } else {
            "applied"
        };
        self.finish_with_conflicts(
            queued,
            EventStatus::Done,
            link,
            (audit, conflicts),
            note,
            covers_through,
        )
        .await?;
        Ok(Outcome::Applied { writes })
    }

    /// The event's own values, fetching the item when the delivery did not carry them.
    pub(super) async fn source_values(
        &self,
        conn: &ConnectionRuntime,
        event: &ChangeEvent,
        fetched: Option<&Item>,
    ) -> Result<(Fields, DateTime<Utc>), Failure> {
        let (fields, ts) = if let Some(item) = fetched {
            (item.fields.clone(), item.updated.unwrap_or(event.source_ts))
        } else if event.needs_fetch {
            let item = conn.side(event.source).fetch(&event.item_id).await?;
            (item.fields, item.updated.unwrap_or(event.source_ts))
        } else {
            (event.fields.clone(), event.source_ts)
        };
        Ok((self.users_in(conn, event.source, fields).await?, ts))
    }
}

/// The plan of an update from `source` against the link's shadow alone, the twin unread:
/// an echo of Tandem's own write, or an old state, needs no write, so it costs no remote call
/// at all.
fn plan_against_shadow(
    conn: &ConnectionRuntime,
    source: Side,
    link: &Link,
    values: &Fields,
    ts: DateTime<Utc>,
) -> Plan {
    let values = restored(conn, source, values, link);
    let mut plan =
        plan_update(&conn.plan_input(source, ts, &values, None, &link.shadow, &link.pending));
    keep_written(&mut plan, &link.shadow, &link.pending);
    plan
}

/// `values` read from `side` with the values a script wrote there taken back to the mapped
/// values they stand for (see [`restore_written`]).
pub(crate) fn restored<'a>(
    conn: &ConnectionRuntime,
    side: Side,
    values: &'a Fields,
    link: &Link,
) -> Cow<'a, Fields> {
    restore_written(values, side, &link.shadow, &link.pending, &conn.mapping)
}

/// Whether a plan has nothing to write and nothing it failed on.
fn writes_nothing(plan: &Plan) -> bool {
    plan.writes.is_empty() && plan.errors.is_empty()
}

/// Records fields the target refused (Jira: a status no transition reaches) at the value
/// the target still holds, as if synced long ago: the target's echo of the rest of the
/// write then is an echo, not an edit to copy back over the source, while the source's
/// value still differs and is written again when the event is replayed.
pub(super) fn settle_refused(
    conn: &ConnectionRuntime,
    shadow: &mut Shadow,
    refused: &[String],
    target: Side,
    target_values: &Fields,
) {
    for field in refused {
        for m in conn.mapping.by_field(target, field) {
            let value = target_values
                .get(field)
                .filter(|v| !v.is_empty())
                .and_then(|v| tandem_core::convert::to_canonical(v, m, target).ok())
                .unwrap_or(tandem_core::FieldValue::Empty);
            let entry = tandem_core::link::ShadowEntry {
                value,
                source_ts: DateTime::UNIX_EPOCH,
                source: target,
                written: None,
            };
            shadow.set(m.key(), entry);
        }
    }
}

/// The dead letter of an event whose write of `written` fields landed except for `refused`.
pub(super) fn refused_failure(message: &str, refused: &[String], written: usize) -> Failure {
    if written <= refused.len() {
        return Failure::Permanent(message.to_string());
    }
    Failure::Permanent(format!(
        "{message} (only {} failed; the event's other fields were written)",
        refused.join(", ")
    ))
}

/// Says in the audit how a field was written when it took more than its value (the
/// transitions walked to reach a Jira status): the row's actor reads `tandem (…)`.
pub(super) fn note_how(audit: &mut [AuditEntry], target: &dyn Connector, id: &str) {
    if let Some((field, how)) = target.take_write_note(id)
        && let Some(row) = audit.iter_mut().find(|a| a.field == field)
    {
        row.actor = format!("{} ({how})", row.actor);
    }
}

/// One audit row per field written.
pub(super) fn audit_rows(
    conn: &ConnectionRuntime,
    event_id: Option<i64>,
    link: &Link,
    target: Side,
    writes: &Fields,
    before: &Fields,
) -> Vec<AuditEntry> {
    let now = Utc::now();
    writes
        .iter()
        .map(|(field, value)| {
            let mapping_key = conn
                .mapping
                .fields
                .iter()
                .find(|m| match target {
                    Side::Jira => m.jira_field == *field,
                    Side::External => m.external_field == *field,
                })
                .map(|m| m.key())
                .unwrap_or_else(|| field.clone());
            AuditEntry {
                at: now,
                connection: conn.name.clone(),
                event_id,
                jira_id: link.jira_id.clone(),
                external_id: link.external_id.clone(),
                target,
                field: field.clone(),
                mapping_key,
                from: before.get(field).cloned(),
                to: value.clone(),
                actor: "tandem".to_string(),
            }
        })
        .collect()
}

/// One conflict-log row per conflict the plan settled, so people can review both values and
/// the side kept.
fn conflict_rows(
    conn: &ConnectionRuntime,
    link: &Link,
    event_id: i64,
    plan: &Plan,
) -> Vec<ConflictEntry> {
    let now = Utc::now();
    plan.conflicts
        .iter()
        .map(|c| ConflictEntry {
            id: 0,
            at: now,
            connection: conn.name.clone(),
            event_id: Some(event_id),
            jira_id: link.jira_id.clone(),
            jira_key: link.jira_key.clone(),
            external_id: link.external_id.clone(),
            mapping_key: c.mapping_key.clone(),
            policy: c.policy,
            winner: c.winner,
            jira_value: c.jira_value.clone(),
            external_value: c.external_value.clone(),
            jira_edited_at: c.jira_ts,
            external_edited_at: c.external_ts,
            detail: c.detail.clone(),
        })
        .collect()
}
