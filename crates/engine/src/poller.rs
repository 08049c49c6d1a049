//! The poller: the safety net under webhooks.
//!
//! Webhooks get lost, arrive late (Jira retries for up to ~30 minutes), twice or out of order,
//! and some users cannot register one at all. So every `poll_interval` each side of each
//! connection is asked for the items changed since a cursor (`Connector::changed_since`, Jira:
//! `search/jql` on `updated` within the connection's filter), page by page. Each listed item
//! becomes a [`ChangeEvent`] that goes through the same queue, dedupe and planning as a
//! webhook, so a change seen both ways is written once:
//!
//! - the idempotency key is `poll:{side}:{item}:{updated millis}`: the same state listed twice
//!   (overlapping windows) is queued once;
//! - an item that is linked and whose every value equals the link's shadow (the echo of
//!   Tandem's own write, or a change a webhook already delivered) is not queued at all, which
//!   keeps polling at zero extra calls when webhooks work;
//! - the event asks the worker to re-read the item (`needs_fetch`): a listed snapshot may be
//!   older than a write Tandem makes to the item before the event is processed, and planning
//!   such a snapshot against the newer shadow could write an old value back. Events of one
//!   link are processed in order, so the re-read sees every earlier write.
//!
//! The cursor is the latest `updated` seen (the remote system's clock, so clock skew between
//! hosts cannot open a gap), minus a small overlap on each poll, and it is stored only after
//! the page's events are durably queued: a crash re-lists, it never skips.

use crate::connector::{ConnectorError, Item};
use crate::queueing::enqueue_linked;
use crate::store::{Enqueued, StoreError};
use crate::worker::{ConnectionRuntime, Engine};
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tandem_core::plan::plan_update;
use tandem_core::{ChangeEvent, ChangeKind, EventOrigin, Link, Side};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// Each poll re-reads this much before the cursor: items committed with a time just before the
/// last one seen, but visible only after that listing, are still caught.
const OVERLAP: Duration = Duration::from_secs(2);

/// Why one poll stopped early. The cursor stays where it was, so the next poll retries.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("listing changed items: {0}")]
    Connector(#[from] ConnectorError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// What one poll of one side did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollStats {
    pub pages: usize,
    /// Items the listing returned.
    pub listed: usize,
    /// Events newly queued.
    pub queued: usize,
    /// Listed items already queued with the same state, or holding exactly the synced values.
    pub unchanged: usize,
}

/// Starts one polling task per connection side whose `poll_interval` is not zero; the returned
/// task ends once `stop` turns true and every poller has stopped.
pub fn spawn(
    engine: Arc<Engine>,
    intervals: Vec<(String, Duration)>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut tasks = Vec::new();
    for (connection, interval) in intervals {
        if interval.is_zero() || !engine.connections.contains_key(&connection) {
            continue;
        }
        for side in Side::BOTH {
            let engine = engine.clone();
            let connection = connection.clone();
            let mut stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                info!(%connection, %side, interval_ms = interval.as_millis() as u64, "poller started");
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => break,
                        _ = tokio::time::sleep(interval) => {}
                    }
                    let Some(conn) = engine.connections.get(&connection) else {
                        break;
                    };
                    // Dropping a poll half-way is safe: the cursor only moves after a page
                    // is queued, so the next run lists the rest again.
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => break,
                        result = poll_once(&engine, conn, side, interval) => match result {
                            Ok(stats) => debug!(%connection, %side, ?stats, "poll done"),
                            Err(e) => warn!(%connection, %side, error = %e, "poll failed; will retry at the next interval"),
                        },
                    }
                }
            }));
        }
    }
    tokio::spawn(async move {
        for t in tasks {
            let _ = t.await;
        }
    })
}

/// Polls one side of one connection once, through every page.
pub async fn poll_once(
    engine: &Engine,
    conn: &ConnectionRuntime,
    side: Side,
    interval: Duration,
) -> Result<PollStats, PollError> {
    let labels = [
        ("connection", conn.name.clone()),
        ("side", side.to_string()),
    ];
    metrics::counter!("tandem_poll_runs_total", &labels).increment(1);
    let store = engine.store.as_ref();
    let started = Utc::now();
    // No cursor yet: start one interval back. History is `tandem sync`'s job, not the poller's.
    // That starting point is stored before the first listing: if the listing fails, the next
    // poll must start from it again, not from one interval before *its* own start, or the
    // items changed while the remote system was failing would never be listed.
    let mut cursor = match store.get_cursor(&conn.name, side).await? {
        Some(text) => match parse_cursor(&text) {
            Some(cursor) => cursor,
            None => {
                warn!(connection = %conn.name, %side, cursor = %text, "unreadable poll cursor; starting one interval back");
                start_cursor(store, conn, side, started, interval).await?
            }
        },
        None => start_cursor(store, conn, side, started, interval).await?,
    };
    let since = cursor - chrono_duration(OVERLAP);
    let connector = conn.side(side);
    let mut stats = PollStats::default();
    let mut page_token: Option<String> = None;
    loop {
        let page = connector
            .changed_since(since, page_token.as_deref())
            .await?;
        stats.pages += 1;
        let now = Utc::now();
        for item in &page.items {
            stats.listed += 1;
            metrics::counter!("tandem_poll_items_total", &labels).increment(1);
            if let Some(updated) = item.updated {
                cursor = cursor.max(updated);
            }
            // The JQL already applies the filter; this guards a connector that cannot.
            if side == Side::Jira && conn.scope.excludes(item).is_some() {
                stats.unchanged += 1;
                continue;
            }
            let link = store.link_by_item(&conn.name, side, &item.id).await?;
            // A linked item that changed may have new comments (adding one moves the item's
            // update time on the systems Tandem knows): its pair's comments are reconciled,
            // once per listed state. That costs a read of each side's comments per changed
            // item, and no write when they are in step.
            if let Some(link) = &link
                && let Some(event) = comments_event(conn, side, item, now)
            {
                match enqueue_linked(store, &event, Some(link), now).await? {
                    Enqueued::New(_) => stats.queued += 1,
                    Enqueued::Duplicate(_) => {}
                }
            }
            // Likewise its files (adding one moves the item's update time too).
            if let Some(link) = &link
                && let Some(event) = attachments_event(conn, side, item, now)
            {
                match enqueue_linked(store, &event, Some(link), now).await? {
                    Enqueued::New(_) => stats.queued += 1,
                    Enqueued::Duplicate(_) => {}
                }
            }
            if let Some(link) = &link
                && !differs_from_shadow(conn, side, item, link)
            {
                stats.unchanged += 1;
                continue;
            }
            let event = snapshot_event(&conn.name, side, item, EventOrigin::Poll, now);
            match enqueue_linked(store, &event, link.as_ref(), now).await? {
                Enqueued::New(_) => stats.queued += 1,
                Enqueued::Duplicate(_) => stats.unchanged += 1,
            }
        }
        // Durable before the cursor moves past them.
        store
            .set_cursor(&conn.name, side, &format_cursor(cursor), now)
            .await?;
        if stats.queued > 0 {
            engine.wake.notify_one();
        }
        match page.next {
            Some(next) if !page.items.is_empty() => page_token = Some(next),
            _ => break,
        }
    }
    if stats.queued > 0 {
        info!(connection = %conn.name, %side, listed = stats.listed, queued = stats.queued, "poll found changes");
    }
    Ok(stats)
}

/// The event asking for the comments of a listed, linked item to be reconciled, when the
/// connection syncs comments and the system says when the item changed (without that time,
/// every poll would queue one).
fn comments_event(
    conn: &ConnectionRuntime,
    side: Side,
    item: &Item,
    now: DateTime<Utc>,
) -> Option<ChangeEvent> {
    if conn.comments.sync == tandem_core::comment::CommentSync::Off {
        return None;
    }
    let updated = item.updated?;
    Some(ChangeEvent {
        connection: conn.name.clone(),
        source: side,
        item_id: item.id.clone(),
        item_key: item.key.clone(),
        kind: ChangeKind::Commented,
        fields: Default::default(),
        needs_fetch: false,
        source_ts: updated.min(now),
        idempotency_key: format!(
            "poll-comments:{side}:{}:{}",
            item.id,
            updated.timestamp_millis()
        ),
        origin: EventOrigin::Poll,
        comment: None,
    })
}

/// The event asking for the attachments of a listed, linked item to be reconciled, when the
/// connection syncs attachments and the system says when the item changed.
fn attachments_event(
    conn: &ConnectionRuntime,
    side: Side,
    item: &Item,
    now: DateTime<Utc>,
) -> Option<ChangeEvent> {
    if conn.attachments.sync == tandem_core::attachment::AttachmentSync::Off {
        return None;
    }
    let updated = item.updated?;
    Some(ChangeEvent {
        connection: conn.name.clone(),
        source: side,
        item_id: item.id.clone(),
        item_key: item.key.clone(),
        kind: ChangeKind::Attached,
        fields: Default::default(),
        needs_fetch: false,
        source_ts: updated.min(now),
        idempotency_key: format!(
            "poll-attachments:{side}:{}:{}",
            item.id,
            updated.timestamp_millis()
        ),
        origin: EventOrigin::Poll,
        comment: None,
    })
}

/// Stores and returns the cursor a side starts from when it has none: one interval back.
async fn start_cursor(
    store: &dyn crate::store::Store,
    conn: &ConnectionRuntime,
    side: Side,
    started: DateTime<Utc>,
    interval: Duration,
) -> Result<DateTime<Utc>, PollError> {
    let cursor = started - chrono_duration(interval);
    store
        .set_cursor(&conn.name, side, &format_cursor(cursor), started)
        .await?;
    Ok(cursor)
}

/// True when `item` holds a value that differs from what the link last synced, i.e. the
/// planner would write something (or report a value it cannot convert). False for the echo
/// of Tandem's own write and for a state older than the last synced edit.
pub fn differs_from_shadow(conn: &ConnectionRuntime, side: Side, item: &Item, link: &Link) -> bool {
    // A value a script wrote is Tandem's own too (see `restore_written`).
    let values = tandem_core::plan::restore_written(
        &item.fields,
        side,
        &link.shadow,
        &link.pending,
        &conn.mapping,
    );
    let plan = plan_update(&conn.plan_input(
        side,
        item.updated.unwrap_or_else(Utc::now),
        &values,
        None,
        &link.shadow,
        &link.pending,
    ));
    !plan.writes.is_empty() || !plan.errors.is_empty()
}

/// The change event for a listed item (poll or bulk sync).
///
/// The idempotency key names the item's state (`{origin}:{side}:{id}:{updated millis}`, or a
/// digest of its values when the system gives no update time), so listing the same state twice
/// queues it once. The worker re-reads the item (`needs_fetch`; see the module docs); the
/// listed values ride along for people inspecting the queue.
pub fn snapshot_event(
    connection: &str,
    side: Side,
    item: &Item,
    origin: EventOrigin,
    now: DateTime<Utc>,
) -> ChangeEvent {
    let prefix = match origin {
        EventOrigin::Poll => "poll",
        EventOrigin::Sync => "sync",
        EventOrigin::Webhook => "webhook",
        EventOrigin::Replay => "replay",
    };
    let state = match item.updated {
        Some(t) => t.timestamp_millis().to_string(),
        None => {
            let values = serde_json::to_vec(&item.fields).unwrap_or_default();
            hex::encode(&Sha256::digest(&values)[..12])
        }
    };
    ChangeEvent {
        connection: connection.to_string(),
        source: side,
        item_id: item.id.clone(),
        item_key: item.key.clone(),
        kind: ChangeKind::Updated,
        fields: item.fields.clone(),
        needs_fetch: true,
        source_ts: item.updated.unwrap_or(now),
        idempotency_key: format!("{prefix}:{side}:{}:{state}", item.id),
        origin,
        comment: None,
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::days(365))
}

fn format_cursor(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_cursor(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tandem_core::FieldValue;

    fn item(updated: Option<i64>, summary: &str) -> Item {
        Item {
            id: "10001".into(),
            key: Some("TEST-1".into()),
            updated: updated.and_then(DateTime::from_timestamp_millis),
            fields: BTreeMap::from([("summary".to_string(), FieldValue::Text(summary.into()))]),
            link: None,
            project: None,
            issue_type: None,
        }
    }

    #[test]
    fn the_same_state_gets_the_same_key_and_a_new_state_a_new_one() {
        let now = Utc::now();
        let a = snapshot_event(
            "seed",
            Side::Jira,
            &item(Some(1_700_000_000_123), "a"),
            EventOrigin::Poll,
            now,
        );
        assert_eq!(a.idempotency_key, "poll:jira:10001:1700000000123");
        assert_eq!(a.source_ts.timestamp_millis(), 1_700_000_000_123);
        assert!(a.needs_fetch);
        let b = snapshot_event(
            "seed",
            Side::Jira,
            &item(Some(1_700_000_000_124), "a"),
            EventOrigin::Sync,
            now,
        );
        assert_eq!(b.idempotency_key, "sync:jira:10001:1700000000124");
        // Without an update time the values name the state.
        let c1 = snapshot_event(
            "seed",
            Side::External,
            &item(None, "a"),
            EventOrigin::Poll,
            now,
        );
        let c2 = snapshot_event(
            "seed",
            Side::External,
            &item(None, "a"),
            EventOrigin::Poll,
            now,
        );
        let c3 = snapshot_event(
            "seed",
            Side::External,
            &item(None, "b"),
            EventOrigin::Poll,
            now,
        );
        assert_eq!(c1.idempotency_key, c2.idempotency_key);
        assert_ne!(c1.idempotency_key, c3.idempotency_key);
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let t = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        assert_eq!(parse_cursor(&format_cursor(t)), Some(t));
        assert_eq!(parse_cursor("yesterday"), None);
        assert_eq!(parse_cursor(""), None);
    }
}
