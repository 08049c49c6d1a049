//! Change events: what one side says happened to one item.
//!
//! Webhooks, polls and bulk syncs all produce the same [`ChangeEvent`], so they share one
//! queue, one dedupe key space and one planning step. Field values are keyed by the field id
//! *of the side the event came from* (`summary`, `customfield_10050`, `"1001"`), exactly as
//! the mapping names them.

use crate::ids::Side;
use crate::value::FieldValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Created,
    Updated,
    /// A comment of the item was added, edited or deleted (which one: [`ChangeEvent::comment`]).
    /// The worker reconciles the item's comments with its twin's (`comment::plan_comments`).
    Commented,
    /// A file of the item was attached or deleted. Like comments, the worker reconciles the
    /// item's attachments with its twin's by state (`attachment::plan_attachments`), so the
    /// event names no file.
    Attached,
}

/// Where the event entered Tandem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOrigin {
    Webhook,
    Poll,
    Sync,
    /// Replayed by an operator (`tandem events retry`).
    Replay,
}

/// One change to one item on one side of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub connection: String,
    /// The side the change happened on.
    pub source: Side,
    /// The item's stable id on its side (Jira's numeric issue id, the external system's id).
    pub item_id: String,
    /// A human-friendly key when the side has one (Jira's `TEST-12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_key: Option<String>,
    pub kind: ChangeKind,
    /// Changed fields and their new values, keyed by the source side's field id.
    pub fields: BTreeMap<String, FieldValue>,
    /// True when `fields` was not carried by the delivery and must be fetched before planning
    /// (webhooks that only name the item).
    #[serde(default)]
    pub needs_fetch: bool,
    /// When the change happened at the source (its `updated` time), used to order edits.
    pub source_ts: DateTime<Utc>,
    /// Unique per connection; a second delivery with the same key is a duplicate.
    pub idempotency_key: String,
    pub origin: EventOrigin,
    /// For a `Commented` event: the comment the delivery named and what happened to it (a
    /// poll names none: it only knows the item changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<CommentRef>,
}

/// What happened to a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommentChange {
    Created,
    Updated,
    Deleted,
}

/// The comment a delivery is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentRef {
    /// The comment's id on the event's side.
    pub id: String,
    pub change: CommentChange,
}

impl ChangeEvent {
    /// The key that serialises processing: events about the same item are applied in order.
    pub fn ordering_key(&self) -> String {
        format!("{}:{}:{}", self.connection, self.source, self.item_id)
    }
}
