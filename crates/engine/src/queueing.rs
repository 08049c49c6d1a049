//! The queueing policy: which ordering key an event is queued under, and the one enqueue path
//! shared by the webhook route, the poller and bulk sync, so that they dedupe and order alike.
//!
//! The worker relies on the same key when it moves an event queued before its item was
//! linked under the link's key (see `worker::Engine::moved_to_link_key`).

use crate::store::{Enqueued, Store, StoreError};
use chrono::{DateTime, Utc};
use tandem_core::{ChangeEvent, Link};

/// The ordering key an event is queued under: the link's key once its item is linked, so
/// events from both sides of one link are applied in order (and a poll or sync event that
/// fetches the item reads it after Tandem's own writes to it), else the item's own key.
pub fn ordering_key(event: &ChangeEvent, link: Option<&Link>) -> String {
    match link {
        Some(link) => format!("{}:link:{}", event.connection, link.jira_id),
        None => event.ordering_key(),
    }
}

/// Queues `event` durably under [`ordering_key`], looking up its link first. The one enqueue
/// path shared by webhooks, the poller and bulk sync, so they dedupe and order alike.
pub async fn enqueue(
    store: &dyn Store,
    event: &ChangeEvent,
    now: DateTime<Utc>,
) -> Result<Enqueued, StoreError> {
    let link = store
        .link_by_item(&event.connection, event.source, &event.item_id)
        .await?;
    enqueue_linked(store, event, link.as_ref(), now).await
}

/// As [`enqueue`], for a caller that has already read the item's link.
pub async fn enqueue_linked(
    store: &dyn Store,
    event: &ChangeEvent,
    link: Option<&Link>,
    now: DateTime<Utc>,
) -> Result<Enqueued, StoreError> {
    store
        .enqueue_with_key(event, &ordering_key(event, link), now)
        .await
}
