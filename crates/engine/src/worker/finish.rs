//! How an event ends: its outcome logged and counted, its completion recorded in the store
//! (with the link and audit rows it changed), or its retry scheduled, or a dead letter with a
//! comment on the Jira issue.

use super::{Engine, Failure, Outcome};
use crate::store::{AuditEntry, Completion, ConflictEntry, EventStatus, QueuedEvent};
use chrono::Utc;
use std::time::{Duration, Instant};
use tandem_core::{Link, Side};
use tracing::{debug, info, warn};

impl Engine {
    /// Logs and counts how an event ended; a failure is scheduled for retry or parked as a
    /// dead letter.
    pub(super) async fn record(
        &self,
        queued: &QueuedEvent,
        result: Result<Outcome, Failure>,
        started: Instant,
    ) {
        let id = queued.id;
        let event = &queued.event;
        let labels = [
            ("connection", event.connection.clone()),
            ("side", event.source.to_string()),
        ];
        match result {
            Ok(Outcome::Applied { writes }) => {
                metrics::counter!("tandem_events_applied_total", &labels).increment(1);
                let latency = (Utc::now() - event.source_ts).num_milliseconds().max(0) as f64;
                metrics::histogram!("tandem_end_to_end_latency_seconds", &labels)
                    .record(latency / 1000.0);
                debug!(
                    event = id,
                    writes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "event applied"
                );
            }
            Ok(Outcome::Ignored(reason)) => {
                metrics::counter!("tandem_events_ignored_total", &labels).increment(1);
                info!(event = id, connection = %event.connection, side = %event.source, item = %event.item_id, %reason, "event ignored");
            }
            Ok(Outcome::Requeued) => {
                debug!(event = id, "event moved under its link's ordering key");
            }
            Err(Failure::LeaseLost) => {
                warn!(
                    event = id,
                    "lease lost while processing; another worker owns the event now"
                );
            }
            Err(Failure::Transient {
                message,
                retry_after,
            }) => {
                metrics::counter!("tandem_events_failed_total", &labels).increment(1);
                self.retry_or_give_up(queued, &message, retry_after).await;
            }
            Err(Failure::Permanent(reason)) => {
                metrics::counter!("tandem_events_failed_total", &labels).increment(1);
                self.dead_letter(queued, &reason).await;
            }
        }
    }

    /// Schedules a transient failure's retry on the backoff schedule (honouring
    /// `Retry-After`), or parks the event as a dead letter once its attempts are used up.
    async fn retry_or_give_up(
        &self,
        queued: &QueuedEvent,
        message: &str,
        retry_after: Option<Duration>,
    ) {
        let id = queued.id;
        let attempts = queued.attempts + 1;
        let jitter: f64 = rand::random();
        match self
            .settings
            .retry
            .next_delay(attempts, jitter, retry_after)
        {
            Some(delay) => {
                let next = Utc::now()
                    + chrono::Duration::from_std(delay)
                        .unwrap_or_else(|_| chrono::Duration::seconds(60));
                warn!(event = id, attempts, retry_in_ms = delay.as_millis() as u64, error = %message, "transient failure; will retry");
                if let Err(e) = self
                    .store
                    .retry_later(id, &self.settings.owner, next, message, Utc::now())
                    .await
                {
                    warn!(event = id, error = %e, "could not schedule retry");
                }
            }
            None => {
                let reason = format!("gave up after {attempts} attempts: {message}");
                self.dead_letter(queued, &reason).await;
            }
        }
    }

    /// Parks an event as a dead letter and tells people on the Jira issue.
    async fn dead_letter(&self, queued: &QueuedEvent, reason: &str) {
        let event = &queued.event;
        warn!(event = queued.id, connection = %event.connection, side = %event.source, item = %event.item_id, %reason, "dead letter");
        metrics::counter!("tandem_events_dead_total", "connection" => event.connection.clone(), "side" => event.source.to_string()).increment(1);
        if let Err(e) = self
            .store
            .dead_letter(queued.id, &self.settings.owner, reason, Utc::now())
            .await
        {
            warn!(event = queued.id, error = %e, "could not record dead letter");
            return;
        }
        let Some(conn) = self.connections.get(&event.connection) else {
            return;
        };
        // The Jira issue concerned: the event's own item, or the linked twin of an external item.
        let jira_id = match event.source {
            Side::Jira => Some(event.item_id.clone()),
            Side::External => self
                .store
                .link_by_item(&event.connection, Side::External, &event.item_id)
                .await
                .ok()
                .flatten()
                .map(|l| l.jira_id),
        };
        if let Some(jira_id) = jira_id {
            let item = event.item_key.as_deref().unwrap_or(&event.item_id);
            let text = format!(
                "Tandem could not sync this issue ({} change to {item}, event {}): {reason}. \
                 Run `tandem events list --status dead` to inspect and `tandem events retry --id {}` to replay it.",
                event.source, queued.id, queued.id
            );
            if let Err(e) = conn.jira.comment(&jira_id, &text).await {
                warn!(event = queued.id, error = %e, "could not add the dead-letter comment to Jira");
            }
        }
    }

    /// Ignores the event, for `reason` (kept with the event for people to read).
    pub(super) async fn ignore(
        &self,
        queued: &QueuedEvent,
        reason: &str,
    ) -> Result<Outcome, Failure> {
        self.finish(queued, EventStatus::Ignored, None, Vec::new(), reason, None)
            .await
    }

    /// Records the event's outcome in one store transaction with the link and audit rows it
    /// changed, also settling the item's later events that a fresh read of it carried
    /// (`covers_through`: the newest event id before that read).
    pub(super) async fn finish(
        &self,
        queued: &QueuedEvent,
        status: EventStatus,
        link: Option<Link>,
        audit: Vec<AuditEntry>,
        note: &str,
        covers_through: Option<i64>,
    ) -> Result<Outcome, Failure> {
        self.finish_with_conflicts(
            queued,
            status,
            link,
            (audit, Vec::new()),
            note,
            covers_through,
        )
        .await
    }

    /// [`Self::finish`], also recording the conflicts the policy settled for the event.
    pub(super) async fn finish_with_conflicts(
        &self,
        queued: &QueuedEvent,
        status: EventStatus,
        link: Option<Link>,
        (audit, conflicts): (Vec<AuditEntry>, Vec<ConflictEntry>),
        note: &str,
        covers_through: Option<i64>,
    ) -> Result<Outcome, Failure> {
        let writes = audit.len();
        self.store
            .complete(
                queued.id,
                &self.settings.owner,
                Completion {
                    status,
                    link,
                    audit,
                    conflicts,
                    // The note is kept in the event's `last_error` column: only reasons for
                    // ignoring belong there, not "applied".
                    note: (status == EventStatus::Ignored).then(|| note.to_string()),
                    covers_through,
                },
                Utc::now(),
            )
            .await?;
        Ok(match status {
            EventStatus::Ignored => Outcome::Ignored(note.to_string()),
            _ => Outcome::Applied { writes },
        })
    }
}
