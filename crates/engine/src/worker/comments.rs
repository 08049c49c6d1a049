//! The worker's comment step: an event saying a comment changed reconciles the comments of
//! the item's pair (see `tandem_core::comment` for the rules).
//!
//! The step lists both items' comments, plans against the store's comment links, and carries
//! the plan out one action at a time, each recorded as it goes: a twin's link is stored as
//! pending *before* its create call and completed after it, so a crash or a lost answer
//! anywhere leaves a state the next reconcile of the pair finishes instead of repeating.
//! A failed call fails the event (retried on the schedule like any other); what was done
//! before it stays done, and the retry plans only what is left.

use super::{ConnectionRuntime, Engine, Failure, Outcome};
use crate::connector::ConnectorError;
use crate::store::{AuditEntry, EventStatus, QueuedEvent, StoreError};
use chrono::{Duration as TimeDelta, Utc};
use tandem_core::comment::{
    CommentAction, CommentInput, CommentLink, CommentLinkState, CommentSync, content_key,
    plan_comments,
};
use tandem_core::{CommentChange, FieldValue, Link, Side};
use tracing::{debug, info};

/// A pair's first reconcile takes the comments written this long before the event that
/// started it as new, not history: the clocks of the two systems and Tandem's differ a
/// little, and a comment written just before the twin was created must still travel.
const THREAD_SLACK: TimeDelta = TimeDelta::seconds(30);

impl Engine {
    /// Handles a `Commented` event: reconciles the comments of the item's pair.
    pub(super) async fn sync_comments(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
    ) -> Result<Outcome, Failure> {
        let event = &queued.event;
        if conn.comments.sync == CommentSync::Off {
            return self.ignore(queued, "comments are not synced").await;
        }
        if !conn.comments.sync.sends_from(event.source)
            && !conn.comments.sync.writes_to(event.source)
        {
            return self
                .ignore(queued, "comments do not travel from or to this side")
                .await;
        }
        let Some(link) = self
            .store
            .link_by_item(&conn.name, event.source, &event.item_id)
            .await?
        else {
            // A comment of an item that is not linked: nothing to copy it to. If the item is
            // linked later, its next comment event (or poll) brings its comments across.
            return self.ignore(queued, "the item is not linked").await;
        };
        if self.moved_to_link_key(queued, &link).await? {
            return Ok(Outcome::Requeued);
        }
        let since = event.source_ts - THREAD_SLACK;
        let (since, links) = self
            .store
            .comment_thread(&conn.name, &link.jira_id, &link.external_id, since)
            .await?;

        // A delivery naming a comment created that is linked already is the echo of
        // Tandem's own twin, or a redelivery: nothing can have changed, no call is needed.
        if let Some(c) = &event.comment
            && c.change == CommentChange::Created
            && links.iter().any(|l| {
                l.state == CommentLinkState::Linked && l.id_on(event.source) == Some(c.id.as_str())
            })
        {
            return self
                .ignore(
                    queued,
                    "the comment is linked already (an echo or a redelivery)",
                )
                .await;
        }

        // Every comment event of this pair queued up to here is carried by the listing below.
        let through = self.store.newest_event_id().await?;
        let jira = conn.jira.list_comments(&link.jira_id).await?;
        let external = conn.external.list_comments(&link.external_id).await?;
        let actions = plan_comments(&CommentInput {
            jira: &jira,
            external: &external,
            links: &links,
            settings: &conn.comments,
            since,
        });
        let mut done = Reconcile {
            audit: Vec::new(),
            skipped: Vec::new(),
        };
        for action in actions {
            self.carry_out(conn, queued, &link, &links, action, &mut done)
                .await?;
        }
        let outcome = if done.audit.is_empty() {
            let note = if done.skipped.is_empty() {
                "comments are in step".to_string()
            } else {
                format!(
                    "comments are in step; not copied: {}",
                    done.skipped.join("; ")
                )
            };
            self.ignore(queued, &note).await?
        } else {
            let note = done.skipped.join("; ");
            self.finish(queued, EventStatus::Done, None, done.audit, &note, None)
                .await?
        };
        self.settle_carried_reconciles(queued, through).await;
        Ok(outcome)
    }

    /// Settles the pair's comment events that the listing just made carried (each would
    /// list and reconcile the same pair again). Best effort: one left unsettled only costs
    /// its own listing later.
    async fn settle_carried_reconciles(&self, queued: &QueuedEvent, through: i64) {
        // Nothing was queued after this event before its listing: no write needed.
        if through <= queued.id {
            return;
        }
        match self
            .store
            .settle_comment_reconciles(queued.id, through, Utc::now())
            .await
        {
            Ok(0) => {}
            Ok(n) => debug!(
                event = queued.id,
                settled = n,
                "later comment events carried"
            ),
            Err(e) => debug!(event = queued.id, error = %e, "later comment events not settled"),
        }
    }

    /// Carries out one planned action, recording it in the store as it goes.
    async fn carry_out(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        pair: &Link,
        links: &[CommentLink],
        action: CommentAction,
        done: &mut Reconcile,
    ) -> Result<(), Failure> {
        let store = &self.store;
        let (jira_item, external_item) = (pair.jira_id.as_str(), pair.external_id.as_str());
        let stored = |id: i64| links.iter().find(|l| l.id == id).cloned();
        match action {
            CommentAction::Create {
                mut link,
                on,
                comment,
            } => {
                // Recorded first: whatever happens after the call, the retry finds the twin.
                link.id = store
                    .save_comment_link(&conn.name, jira_item, external_item, &link, Utc::now())
                    .await
                    .map_err(already_linked)?;
                let id = conn
                    .side(on)
                    .create_comment(link_item(on, jira_item, external_item), &comment)
                    .await?;
                info!(connection = %conn.name, %on, comment = %id, "comment copied");
                link.set_id_on(on, Some(id.clone()));
                link.state = CommentLinkState::Linked;
                store
                    .save_comment_link(&conn.name, jira_item, external_item, &link, Utc::now())
                    .await?;
                done.audit.push(self.comment_audit(
                    conn,
                    queued,
                    pair,
                    on,
                    &id,
                    None,
                    &content_key(&comment.body),
                    "created",
                ));
            }
            CommentAction::Adopt {
                link_id,
                on,
                comment_id,
            } => {
                let Some(mut l) = stored(link_id) else {
                    return Ok(());
                };
                debug!(connection = %conn.name, %on, comment = %comment_id, "found the twin of a pending comment");
                l.set_id_on(on, Some(comment_id));
                l.state = CommentLinkState::Linked;
                store
                    .save_comment_link(&conn.name, jira_item, external_item, &l, Utc::now())
                    .await
                    .map_err(already_linked)?;
            }
            CommentAction::Update {
                link_id,
                on,
                comment_id,
                comment,
                shadow,
            } => {
                let Some(mut l) = stored(link_id) else {
                    return Ok(());
                };
                conn.side(on)
                    .update_comment(
                        link_item(on, jira_item, external_item),
                        &comment_id,
                        &comment,
                    )
                    .await
                    .map_err(deleted_meanwhile)?;
                let old = std::mem::replace(&mut l.shadow, shadow.clone());
                store
                    .save_comment_link(&conn.name, jira_item, external_item, &l, Utc::now())
                    .await?;
                done.audit.push(self.comment_audit(
                    conn,
                    queued,
                    pair,
                    on,
                    &comment_id,
                    Some(old),
                    &shadow,
                    "edited",
                ));
            }
            CommentAction::Reshadow { link_id, shadow } => {
                if let Some(mut l) = stored(link_id) {
                    l.shadow = shadow;
                    store
                        .save_comment_link(&conn.name, jira_item, external_item, &l, Utc::now())
                        .await?;
                }
            }
            CommentAction::Delete {
                link_id,
                on,
                comment_id,
            } => {
                conn.side(on)
                    .delete_comment(link_item(on, jira_item, external_item), &comment_id)
                    .await?;
                store.delete_comment_link(link_id).await?;
                let old = stored(link_id).map(|l| l.shadow);
                done.audit.push(self.comment_audit(
                    conn,
                    queued,
                    pair,
                    on,
                    &comment_id,
                    old,
                    "",
                    "deleted",
                ));
            }
            CommentAction::Keep {
                link_id,
                deleted_on,
            } => {
                if let Some(mut l) = stored(link_id) {
                    l.state = CommentLinkState::Kept;
                    store
                        .save_comment_link(&conn.name, jira_item, external_item, &l, Utc::now())
                        .await?;
                    done.skipped.push(format!(
                        "a comment deleted on the {deleted_on} side was kept on the other \
                         (comment_deletes = \"keep\")"
                    ));
                }
            }
            CommentAction::Forget { link_id } => store.delete_comment_link(link_id).await?,
            CommentAction::Skip {
                side,
                comment_id,
                reason,
            } => done
                .skipped
                .push(format!("{side} comment {comment_id}: {reason}")),
        }
        Ok(())
    }

    /// An audit row for a comment written on `target`: its content before and after.
    #[allow(clippy::too_many_arguments)]
    fn comment_audit(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        link: &Link,
        target: Side,
        comment_id: &str,
        from: Option<String>,
        to: &str,
        what: &str,
    ) -> AuditEntry {
        AuditEntry {
            at: Utc::now(),
            connection: conn.name.clone(),
            event_id: Some(queued.id),
            jira_id: link.jira_id.clone(),
            external_id: link.external_id.clone(),
            target,
            field: format!("comment {comment_id}"),
            mapping_key: format!("comment:{what}"),
            from: from.map(FieldValue::Text),
            to: FieldValue::Text(to.to_string()),
            actor: format!("worker:{}", self.settings.owner),
        }
    }
}

/// What a reconcile did, for the event's outcome.
struct Reconcile {
    audit: Vec<AuditEntry>,
    skipped: Vec<String>,
}

/// The item of the pair on `side`.
fn link_item<'a>(side: Side, jira: &'a str, external: &'a str) -> &'a str {
    match side {
        Side::Jira => jira,
        Side::External => external,
    }
}

/// An edit of a comment that was deleted since the listing (404): retried, and the retry's
/// plan sees the deletion (the model check's "no step left undone" relies on it).
fn deleted_meanwhile(e: ConnectorError) -> Failure {
    match e {
        ConnectorError::Permanent {
            status: Some(404),
            message,
        } => Failure::Transient {
            message: format!("the comment was deleted meanwhile ({message}); reconciling again"),
            retry_after: None,
        },
        other => other.into(),
    }
}

/// A comment that another reconcile linked meanwhile (two instances on one pair, which the
/// ordering key should prevent): retried, and the retry plans against the links as they are.
fn already_linked(e: StoreError) -> Failure {
    Failure::Transient {
        message: format!("store: {e}"),
        retry_after: None,
    }
}
