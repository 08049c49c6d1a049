//! Step 1, when discovery found no twin: create it on the other side, under the connection's
//! lock. The create is recorded before the call (a twin whose answer is lost is recognised
//! later by the values it was sent, see `discover.rs`); Jira's link field is written right
//! after it, then the link is stored. A create that took effect unreadably opens the side's
//! create circuit: no further twin is made there until it is recognised or reset.

use super::apply::{audit_rows, note_how, refused_failure, settle_refused};
use super::script::{apply_exprs, created_from, run_towards, script_failure};
use super::{ConnectionRuntime, Engine, Failure, Outcome};
use crate::connector::{ConnectorError, Fields, Item};
use crate::store::{EventStatus, QueuedEvent};
use chrono::Utc;
use std::collections::BTreeMap;
use tandem_core::plan::{plan_create, record_script_writes};
use tandem_core::{ChangeEvent, Link, Shadow, Side};
use tracing::{debug, info, warn};

/// A twin just made: the item, and the message and fields of a create that left some of them
/// out (see `settle_refused`).
type Created = (Item, Option<(String, Vec<String>)>);

impl Engine {
    /// Creates the twin of the unlinked `item` (the event's source item, read in full) when
    /// the connection allows it, links the pair and records the event's outcome.
    pub(super) async fn create_twin(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        item: &Item,
    ) -> Result<Outcome, Failure> {
        let event = &queued.event;
        let target_side = event.source.other();
        if !conn.create.allows(target_side) {
            return self
                .ignore(
                    queued,
                    &format!(
                        "no twin on the {target_side} side and creating one there is disabled"
                    ),
                )
                .await;
        }

        self.may_create(conn, queued, target_side).await?;
        let (values, ts) = self.source_values(conn, event, Some(item)).await?;
        let mut plan = plan_create(event.source, ts, &values, &conn.mapping);
        if let Some(err) = plan.errors.first() {
            return Err(Failure::Permanent(err.to_string()));
        }
        // People get the target's own user values (or the unmatched rule) first; the link
        // does not exist yet, so the rows get its ids once it does.
        let mut user_audit = self
            .users_out(conn, target_side, &mut plan, ("", ""), queued.id)
            .await?;
        let view = created_from(item, event.source, &values);
        // The mapping entries' `expr`s first, as on an update.
        apply_exprs(conn, &mut plan, target_side, &view)?;
        if let Some(script) = &conn.script {
            // The twin's fields as the script shapes them: what it writes towards that side
            // (`to_jira`/`to_external`), then what it adds or changes for a new item
            // (`on_create`). Values it changed are recorded (see `record_script_writes`), so
            // the twin is recognised by them and their echo is an echo.
            let towards =
                run_towards(script, target_side, &plan.writes, &view).map_err(script_failure)?;
            let fields = script
                .on_create(target_side, &towards, &view)
                .map_err(script_failure)?;
            record_script_writes(&mut plan, &fields, target_side, &conn.mapping);
        }
        let mut created_shadow = Shadow(plan.shadow_updates.clone());
        let (created, refused) = self
            .create_recorded(conn, event, item, &plan.writes, &mut created_shadow)
            .await?;
        metrics::counter!("tandem_twins_created_total", "connection" => conn.name.clone(), "side" => target_side.to_string()).increment(1);
        let mut link = self
            .link_created(conn, event, item, &created, created_shadow)
            .await?;
        if let Some((message, fields)) = refused {
            return Err(refused_failure(&message, &fields, plan.writes.len()));
        }
        let mut audit = audit_rows(
            conn,
            Some(queued.id),
            &link,
            target_side,
            &plan.writes,
            &BTreeMap::new(),
        );
        note_how(&mut audit, conn.side(target_side).as_ref(), &created.id);
        for row in &mut user_audit {
            row.jira_id = link.jira_id.clone();
            row.external_id = link.external_id.clone();
        }
        audit.extend(user_audit);
        for (key, entry) in plan.shadow_updates {
            link.shadow.set(key, entry);
        }
        link.version += 1;
        let writes = plan.writes.len();
        self.finish(
            queued,
            EventStatus::Done,
            Some(link),
            audit,
            "created twin",
            None,
        )
        .await?;
        Ok(Outcome::Applied { writes })
    }

    /// Records the create of `item`'s twin (`shadow`: the values the pair's shadow starts
    /// with), then makes the twin with `writes` on the other side. Fields the twin was made
    /// without are settled in `shadow` at the twin's values (see `settle_refused`).
    async fn create_recorded(
        &self,
        conn: &ConnectionRuntime,
        event: &ChangeEvent,
        item: &Item,
        writes: &Fields,
        shadow: &mut Shadow,
    ) -> Result<Created, Failure> {
        let target_side = event.source.other();
        let target = conn.side(target_side);
        // Jira's link field holds the external id; the external system is told the Jira key,
        // which people recognise (the seed's `sourceIssueId`).
        let source_ref = match event.source {
            Side::Jira => item.key.clone().unwrap_or_else(|| item.id.clone()),
            Side::External => item.id.clone(),
        };
        // Recorded before the call: if its answer is lost, the twin found later by discovery
        // starts from these values (see `recorded_creates`).
        self.store
            .record_create(&conn.name, event.source, &item.id, shadow, Utc::now())
            .await?;
        let (created, refused) = match target.create(writes, Some(&source_ref)).await {
            Ok(created) => (created, None),
            // The twin exists without some of its fields: it is linked like any other, and
            // the event fails for those fields alone (see `settle_refused`).
            Err(ConnectorError::PartlyApplied {
                message,
                refused,
                created: Some(created),
            }) => (*created, Some((message, refused))),
            Err(e) if e.took_effect() => {
                return Err(self.unreadable_create(conn, event, item, e).await);
            }
            Err(e @ ConnectorError::Permanent { .. }) => {
                // Refused: no twin was made, so none may be recognised later as this one.
                self.store
                    .forget_create(&conn.name, event.source, &item.id)
                    .await?;
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        if let Some((_, fields)) = &refused {
            settle_refused(conn, shadow, fields, target_side, &created.fields);
        }
        Ok((created, refused))
    }

    /// Writes the twin's id into Jira's link field when the twin is external, then stores
    /// the link of `item` and its just `created` twin, with the created values as its shadow.
    async fn link_created(
        &self,
        conn: &ConnectionRuntime,
        event: &ChangeEvent,
        item: &Item,
        created: &Item,
        shadow: Shadow,
    ) -> Result<Link, Failure> {
        let target_side = event.source.other();
        let (jira_id, jira_key, external_id) = match event.source {
            Side::Jira => (item.id.clone(), item.key.clone(), created.id.clone()),
            Side::External => (created.id.clone(), created.key.clone(), item.id.clone()),
        };
        let mut link = Link {
            connection: conn.name.clone(),
            jira_id: jira_id.clone(),
            jira_key,
            external_id: external_id.clone(),
            shadow,
            pending: Default::default(),
            version: 0,
        };
        // Jira's link field first: once the link is stored, the pair's events (this one's
        // retry too) find it and, their snapshots being echoes, never read the issue, so a
        // field left empty by a crash or a failure here would stay empty. Written first, a
        // retry finds no link and discovers the pair (the twin names the issue, the create
        // is recorded), writing the field then.
        if event.source == Side::Jira {
            self.ensure_link_field(conn, &jira_id, &external_id).await?;
        }
        // Then the link, with the created values as its shadow, so a retry or an echo finds
        // it (and what was created) and never creates a second twin.
        if let Err(existing) = self.store.insert_link(&link).await? {
            warn!(connection = %conn.name, jira = %existing.jira_id, external = %existing.external_id, "link appeared concurrently");
            link = existing;
        }
        info!(connection = %conn.name, jira = %jira_id, external = %external_id, created_on = %target_side, "created twin");
        Ok(link)
    }

    /// Refuses to create on `target` while its create circuit is open (a create there took
    /// effect but its answer could not be read): every further create would leave another
    /// twin nobody can name. The event waits on the retry schedule, saying why.
    async fn may_create(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        target: Side,
    ) -> Result<(), Failure> {
        let circuits = self.store.create_circuits().await?;
        let Some(open) = circuits
            .iter()
            .find(|c| c.connection == conn.name && c.side == target)
        else {
            return Ok(());
        };
        debug!(event = queued.id, connection = %conn.name, %target, "create circuit open");
        Err(Failure::Transient {
            message: format!(
                "creating on the {target} side of `{}` is stopped since {}: {}. Fix the \
                 {target} side's create operation and restart, or run `tandem creates reset \
                 --connection {} --side {target}`",
                conn.name,
                open.opened_at.to_rfc3339(),
                open.reason,
                conn.name
            ),
            retry_after: None,
        })
    }

    /// A create that took effect but whose answer could not be read: the twin exists and
    /// nobody knows its id. The recorded create is marked so (its twin is recognised when it
    /// comes back, see `recognised_twin`), the target side's create circuit opens, and the
    /// event waits for the twin to be recognised.
    async fn unreadable_create(
        &self,
        conn: &ConnectionRuntime,
        event: &ChangeEvent,
        item: &Item,
        error: ConnectorError,
    ) -> Failure {
        let target = event.source.other();
        let reason = format!("a create's answer could not be read: {error}");
        metrics::counter!("tandem_creates_unreadable_total", "connection" => conn.name.clone(), "side" => target.to_string()).increment(1);
        warn!(connection = %conn.name, side = %target, item = %item.id, %reason, "create took effect but its answer could not be read; creating there is stopped");
        if let Err(e) = self
            .store
            .create_unreadable(
                &conn.name,
                event.source,
                &item.id,
                &reason,
                conn.fingerprint(target),
                Utc::now(),
            )
            .await
        {
            return e.into();
        }
        Failure::Transient {
            message: format!(
                "the twin was created on the {target} side but {reason}; waiting for it to \
                 be recognised when it comes back"
            ),
            retry_after: None,
        }
    }
}
