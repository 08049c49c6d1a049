//! The worker's comment step: an event saying a comment changed reconciles the comments of
//! the item's pair (see `tandem_core::comment` for the rules).
//!
//! The step lists both items' comments, plans against the store's comment links, and carries
//! the plan out one action at a time, each recorded as it goes: a twin's link is stored as
//! pending *before* its create call and completed after it, so a crash or a lost answer
//! anywhere leaves a state the next reconcile of the pair finishes instead of repeating.
//! A failed call fails the event (retried on the schedule like any other); what was done
//! before it stays done, and the retry plans only what is left.
//!
//! With `[connection.users]`, a twin's header names the origin's author as the twin's side
//! knows them (a mention of the matched Jira account, the matched login outside): the plan
//! is made once to learn which origins get a header written, their authors are matched
//! through the [`UserResolver`](crate::users::UserResolver), and the plan is made again
//! with those names. An author with no match is named by their display name, never fails
//! the comment, and is counted like an unmatched user field (`tandem_user_unmatched_total`
//! and an audit row `user:unmatched (…)`).

use super::{ConnectionRuntime, Engine, Failure, Outcome};
use crate::connector::ConnectorError;
use crate::store::{AuditEntry, EventStatus, QueuedEvent, StoreError};
use chrono::{Duration as TimeDelta, Utc};
use std::collections::BTreeMap;
use tandem_core::comment::{
    Authors, Comment, CommentAction, CommentInput, CommentLink, CommentLinkState, CommentSync,
    content_key, plan_comments,
};
use tandem_core::richtext::Inline;
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
        let no_authors = Authors::new();
        let input = CommentInput {
            jira: &jira,
            external: &external,
            links: &links,
            settings: &conn.comments,
            since,
            authors: &no_authors,
        };
        let mut actions = plan_comments(&input);
        let (authors, unmatched_authors) = self.comment_authors(conn, &input, &actions).await?;
        if !authors.is_empty() {
            actions = plan_comments(&CommentInput {
                authors: &authors,
                ..input
            });
        }
        let mut done = Reconcile {
            audit: Vec::new(),
            skipped: Vec::new(),
            unmatched_authors,
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
                let origin = link.id_on(link.origin).unwrap_or_default().to_string();
                self.unmatched_author(conn, queued, pair, (link.origin, &origin), &id, done);
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
                // The twin's header was written again: its author's match counts again.
                if on != l.origin {
                    let origin = l.id_on(l.origin).unwrap_or_default().to_string();
                    self.unmatched_author(
                        conn,
                        queued,
                        pair,
                        (l.origin, &origin),
                        &comment_id,
                        done,
                    );
                }
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

    /// How the twins' headers `actions` write name their origins' authors on the twins'
    /// side, and the origins whose author has no match there (with the person, for the
    /// audit). Empty without `[connection.users]`: the display names stand.
    async fn comment_authors(
        &self,
        conn: &ConnectionRuntime,
        input: &CommentInput<'_>,
        actions: &[CommentAction],
    ) -> Result<(Authors, BTreeMap<(Side, String), UnmatchedAuthor>), Failure> {
        let mut authors = Authors::new();
        let mut unmatched = BTreeMap::new();
        let Some(users) = &conn.users else {
            return Ok((authors, unmatched));
        };
        // The origins whose twin gets a header: each create, and each edit of a twin.
        let mut origins: Vec<(Side, &str)> = Vec::new();
        for a in actions {
            match a {
                CommentAction::Create { link, .. } => {
                    if let Some(id) = link.id_on(link.origin) {
                        origins.push((link.origin, id));
                    }
                }
                CommentAction::Update { link_id, on, .. } => {
                    if let Some(l) = input.links.iter().find(|l| l.id == *link_id)
                        && *on != l.origin
                        && let Some(id) = l.id_on(l.origin)
                    {
                        origins.push((l.origin, id));
                    }
                }
                _ => {}
            }
        }
        for (side, id) in origins {
            let list = match side {
                Side::Jira => input.jira,
                Side::External => input.external,
            };
            let Some(c) = list.iter().find(|c| c.id == id) else {
                continue;
            };
            // A system that says nothing of who wrote it leaves no one to match.
            if c.author_id.is_none() && c.author_email.is_none() {
                continue;
            }
            let found = users
                .person_to_other(side, c.author_id.as_deref(), c.author_email.as_deref())
                .await?;
            let key = (side, c.id.clone());
            match found {
                Some(user) => {
                    authors.insert(key, author_inline(side.other(), &user, c));
                }
                None => {
                    let person = c
                        .author_id
                        .clone()
                        .or_else(|| c.author_email.clone())
                        .unwrap_or_default();
                    unmatched.insert(
                        key,
                        UnmatchedAuthor {
                            person,
                            name: c.author.clone(),
                        },
                    );
                }
            }
        }
        Ok((authors, unmatched))
    }

    /// Counts and audits the author of origin `origin` when they had no match, for the
    /// twin `twin_id` whose header was just written with their display name.
    fn unmatched_author(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        pair: &Link,
        (side, origin): (Side, &str),
        twin_id: &str,
        done: &mut Reconcile,
    ) {
        let (Some(users), Some(miss)) = (
            &conn.users,
            done.unmatched_authors.get(&(side, origin.to_string())),
        ) else {
            return;
        };
        users.count_unmatched(side);
        let target = side.other();
        let name = if miss.name.trim().is_empty() {
            "Someone"
        } else {
            miss.name.trim()
        };
        let entry = AuditEntry {
            at: Utc::now(),
            connection: conn.name.clone(),
            event_id: Some(queued.id),
            jira_id: pair.jira_id.clone(),
            external_id: pair.external_id.clone(),
            target,
            field: format!("comment {twin_id}"),
            mapping_key: "comment:author".into(),
            from: Some(FieldValue::User(miss.person.clone())),
            to: FieldValue::Text(name.to_string()),
            actor: format!(
                "user:unmatched (comment author: `{}` of the {side} side has no match on the                  {target} side; the header names them `{name}`)",
                miss.person
            ),
        };
        done.audit.push(entry);
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
    /// The origins whose author has no match on the other side (see `comment_authors`).
    unmatched_authors: BTreeMap<(Side, String), UnmatchedAuthor>,
}

/// An origin's author that the user map and the e-mail match did not find.
struct UnmatchedAuthor {
    /// As their side knows them (id, login or e-mail).
    person: String,
    /// Their display name, which the header names instead.
    name: String,
}

/// How the header of a twin on `on` names `user` (the matched user, as a user field there
/// holds them), the author of `origin`: a mention in Jira (an ADF `mention` on Cloud,
/// `[~name]` on Data Center, which people are notified by), the login as text outside.
fn author_inline(on: Side, user: &str, origin: &Comment) -> Inline {
    match on {
        Side::Jira => {
            let shown = origin.author.trim();
            Inline::Mention {
                id: user.to_string(),
                text: format!("@{}", if shown.is_empty() { user } else { shown }),
            }
        }
        Side::External => Inline::text(user),
    }
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
