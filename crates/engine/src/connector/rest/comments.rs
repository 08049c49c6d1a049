//! Comments of a REST system: the seed's comment routes, the configured comment operations
//! of a custom system, and comment webhooks.
//!
//! The seed (`format = "seed"`): `GET/POST {base}/API/issue/{id}/comments`, `PUT/DELETE
//! {base}/API/issue/{id}/comments/{cid}`, plain-text bodies, an `internal` flag; its
//! webhooks `{"event": "comment_created"|"comment_updated"|"comment_deleted",
//! "sourceIssueId", "comment": {…}}`.
//!
//! A custom system: `operations.list_comments` / `create_comment` / `update_comment` /
//! `delete_comment` with `{id}` and `{comment_id}` in their paths and `{{body}}` /
//! `{{internal}}` in their body templates, and `[comment]`'s pointers into each listed
//! comment. Bodies are plain text, read into and written from [`Doc`] with
//! `Doc::from_plain` / `to_plain`.
//!
//! A listed comment with no text is skipped: it is nothing a person could read (Redmine lists
//! every field change as a journal with empty notes).

use super::client::encode_component;
use super::{RestConnector, id_text, method, parse_time};
use crate::config::{RestComment, RestOperation};
use crate::connector::{ConnectorError, ConnectorResult, WebhookError};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use tandem_core::comment::{Comment, NewComment, content_key};
use tandem_core::richtext::Doc;
use tandem_core::{ChangeEvent, ChangeKind, CommentChange, CommentRef, EventOrigin};

/// Where a listed comment's parts are: the seed's names, or a custom `[comment]` table.
#[derive(Debug, Clone)]
pub(super) struct CommentPlaces {
    id: String,
    body: String,
    created: String,
    updated: Option<String>,
    author: Option<String>,
    author_id: Option<String>,
    internal: Option<String>,
}

impl CommentPlaces {
    pub(super) fn seed() -> Self {
        CommentPlaces {
            id: "/id".into(),
            body: "/body".into(),
            created: "/created".into(),
            updated: Some("/updated".into()),
            author: Some("/author".into()),
            author_id: Some("/authorId".into()),
            internal: Some("/internal".into()),
        }
    }

    pub(super) fn custom(list: Option<&RestOperation>, c: &RestComment) -> Self {
        CommentPlaces {
            id: list
                .and_then(|l| l.id_pointer.clone())
                .unwrap_or_else(|| "/id".into()),
            body: c.body_pointer.clone(),
            created: c.created_pointer.clone(),
            updated: c.updated_pointer.clone(),
            author: c.author_pointer.clone(),
            author_id: c.author_id_pointer.clone(),
            internal: c.internal_pointer.clone(),
        }
    }

    pub(super) fn has_internal(&self) -> bool {
        self.internal.is_some()
    }

    /// One listed comment; `None` for one without text.
    fn read(&self, item: &str, v: &Value) -> ConnectorResult<Option<Comment>> {
        let id = id_text(v.pointer(&self.id)).ok_or_else(|| {
            ConnectorError::permanent(format!(
                "rest: a comment of item {item} has no id at `{}`",
                self.id
            ))
        })?;
        let body = match v.pointer(&self.body) {
            Some(Value::String(s)) => s.as_str(),
            None | Some(Value::Null) => "",
            Some(_) => {
                return Err(ConnectorError::permanent(format!(
                    "rest: comment {id} of item {item}: the text at `{}` is not a string",
                    self.body
                )));
            }
        };
        if body.trim().is_empty() {
            return Ok(None);
        }
        let created = v
            .pointer(&self.created)
            .and_then(parse_time)
            .ok_or_else(|| {
                ConnectorError::permanent(format!(
                    "rest: comment {id} of item {item} has no time at `{}`",
                    self.created
                ))
            })?;
        let updated = self
            .updated
            .as_deref()
            .and_then(|p| v.pointer(p))
            .and_then(parse_time)
            .unwrap_or(created);
        let author = self
            .author
            .as_deref()
            .and_then(|p| v.pointer(p))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // A string or a number (Redmine's user ids), as item ids are read.
        let author_id = self
            .author_id
            .as_deref()
            .and_then(|p| id_text(v.pointer(p)));
        let internal = self
            .internal
            .as_deref()
            .and_then(|p| v.pointer(p))
            .is_some_and(truthy);
        Ok(Some(Comment {
            id,
            author,
            author_id,
            author_email: None,
            body: Doc::from_plain(body),
            created,
            updated,
            internal,
            mark: None,
        }))
    }
}

/// A flag as systems write it: `true`, `1`, `"1"`, `"true"`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
        _ => false,
    }
}

/// Fills a comment body template: `{{body}}` becomes the text as a JSON string,
/// `{{internal}}` a boolean and `{{id}}` the item id. Substitution happens on parsed JSON, as
/// for items, so a comment's text can never change the template's structure.
fn render_comment_body(
    template: &str,
    body: &str,
    internal: bool,
    id: &str,
) -> ConnectorResult<Value> {
    let values = [
        ("body", json!(body)),
        ("internal", json!(internal)),
        ("id", json!(id)),
    ];
    super::render_template(template, &values)
}

impl RestConnector {
    fn comment_path(op: &RestOperation, id: &str, comment_id: Option<&str>) -> String {
        let mut path = op.path.replace("{id}", &encode_component(id));
        if let Some(c) = comment_id {
            path = path.replace("{comment_id}", &encode_component(c));
        }
        path
    }

    fn check_comment_id(id: &str) -> ConnectorResult<&str> {
        if id.trim().is_empty() || id == "." || id == ".." {
            Err(ConnectorError::permanent(format!(
                "rest: `{id}` is not a comment id"
            )))
        } else {
            Ok(id)
        }
    }

    /// The listing of item `id`'s comments, oldest first.
    pub(super) async fn list_comments_impl(&self, id: &str) -> ConnectorResult<Vec<Comment>> {
        let id = Self::check_id(id)?;
        let (answer, pointer) = match self.ops() {
            None => {
                let path = format!("/API/issue/{}/comments", encode_component(id));
                (self.client.call(Method::GET, &path, None).await?, "")
            }
            Some(ops) => {
                let op = ops
                    .list_comments
                    .as_ref()
                    .ok_or_else(|| Self::missing_op("list_comments"))?;
                let path = Self::comment_path(op, id, None);
                let answer = self.client.call(method(op.method), &path, None).await?;
                (answer, op.items_pointer.as_deref().unwrap_or(""))
            }
        };
        let v = answer.json("rest: comments")?;
        let list = match v.pointer(pointer) {
            Some(Value::Array(list)) => list,
            _ => {
                return Err(ConnectorError::permanent(format!(
                    "rest: the comments of item {id} are not an array at `{pointer}`"
                )));
            }
        };
        let mut out = Vec::with_capacity(list.len());
        for c in list {
            if let Some(c) = self.comment_places.read(id, c)? {
                out.push(c);
            }
        }
        // Oldest first, whatever order the system lists them in; equal times keep its order.
        out.sort_by_key(|c| c.created);
        Ok(out)
    }

    pub(super) async fn create_comment_impl(
        &self,
        id: &str,
        comment: &NewComment,
    ) -> ConnectorResult<String> {
        let id = Self::check_id(id)?;
        let text = comment.body.to_plain();
        let internal = comment.internal && self.comment_places.has_internal();
        let (answered, pointer) = match self.ops() {
            None => {
                let path = format!("/API/issue/{}/comments", encode_component(id));
                let body = json!({ "body": text, "internal": internal });
                let a = self.client.call(Method::POST, &path, Some(&body)).await?;
                (a, Some("/id"))
            }
            Some(ops) => {
                let op = ops
                    .create_comment
                    .as_ref()
                    .ok_or_else(|| Self::missing_op("create_comment"))?;
                let body = render_comment_body(
                    op.body.as_deref().unwrap_or(r#"{"body": {{body}}}"#),
                    &text,
                    internal,
                    id,
                )?;
                let path = Self::comment_path(op, id, None);
                let a = self
                    .client
                    .call(method(op.method), &path, Some(&body))
                    .await?;
                (a, op.id_pointer.as_deref())
            }
        };
        if let Some(pointer) = pointer {
            let answer = answered.json("rest: created comment")?;
            // The comment was made (a success status): the status goes with the error.
            return id_text(answer.pointer(pointer)).ok_or_else(|| ConnectorError::Permanent {
                message: format!(
                    "rest: the comment was created but the answer has no id at `{pointer}`: {}",
                    crate::connector::http::quote(&answer.to_string())
                ),
                status: Some(answered.status.as_u16()),
            });
        }
        // No id in the answer (Redmine answers a note with 204): the newest comment holding
        // this text is the one just made.
        let key = content_key(&comment.body);
        let listed = self.list_comments_impl(id).await?;
        listed
            .iter()
            .rev()
            .find(|c| content_key(&c.body) == key)
            .map(|c| c.id.clone())
            .ok_or_else(|| ConnectorError::Permanent {
                message: format!(
                    "rest: the comment was created but is not among item {id}'s comments"
                ),
                status: Some(answered.status.as_u16()),
            })
    }

    pub(super) async fn update_comment_impl(
        &self,
        id: &str,
        comment_id: &str,
        comment: &NewComment,
    ) -> ConnectorResult<()> {
        let id = Self::check_id(id)?;
        let comment_id = Self::check_comment_id(comment_id)?;
        let text = comment.body.to_plain();
        match self.ops() {
            None => {
                let path = format!(
                    "/API/issue/{}/comments/{}",
                    encode_component(id),
                    encode_component(comment_id)
                );
                self.client
                    .call(Method::PUT, &path, Some(&json!({ "body": text })))
                    .await?;
            }
            Some(ops) => {
                let op = ops
                    .update_comment
                    .as_ref()
                    .ok_or_else(|| Self::missing_op("update_comment"))?;
                let internal = comment.internal && self.comment_places.has_internal();
                let body = render_comment_body(
                    op.body.as_deref().unwrap_or(r#"{"body": {{body}}}"#),
                    &text,
                    internal,
                    id,
                )?;
                let path = Self::comment_path(op, id, Some(comment_id));
                self.client
                    .call(method(op.method), &path, Some(&body))
                    .await?;
            }
        }
        Ok(())
    }

    pub(super) async fn delete_comment_impl(
        &self,
        id: &str,
        comment_id: &str,
    ) -> ConnectorResult<()> {
        let id = Self::check_id(id)?;
        let comment_id = Self::check_comment_id(comment_id)?;
        let answer = match self.ops() {
            None => {
                let path = format!(
                    "/API/issue/{}/comments/{}",
                    encode_component(id),
                    encode_component(comment_id)
                );
                self.client.call(Method::DELETE, &path, None).await
            }
            Some(ops) => {
                let op = ops
                    .delete_comment
                    .as_ref()
                    .ok_or_else(|| Self::missing_op("delete_comment"))?;
                let body = match &op.body {
                    Some(t) => Some(render_comment_body(t, "", false, id)?),
                    None => None,
                };
                let path = Self::comment_path(op, id, Some(comment_id));
                self.client
                    .call(method(op.method), &path, body.as_ref())
                    .await
            }
        };
        match answer {
            Ok(_) => Ok(()),
            // Already gone: what was asked for is so.
            Err(ConnectorError::Permanent {
                status: Some(404), ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The event of a comment delivery: the item, the comment and what happened to it. The
    /// key names the comment, the change and the delivery (its id, else the comment's
    /// `updated`, else the body's hash), so a redelivery is a duplicate.
    fn comment_event(
        &self,
        d: &Delivery<'_>,
        item_id: String,
        comment: CommentRef,
        source_ts: DateTime<Utc>,
        updated: Option<&str>,
    ) -> ChangeEvent {
        let change = match comment.change {
            CommentChange::Created => "created",
            CommentChange::Updated => "updated",
            CommentChange::Deleted => "deleted",
        };
        let delivery = super::webhook::delivery_id(d.headers)
            .or_else(|| updated.map(str::to_string))
            .unwrap_or_else(|| hex::encode(Sha256::digest(d.body)));
        ChangeEvent {
            connection: d.connection.to_string(),
            source: self.side,
            item_key: None,
            kind: ChangeKind::Commented,
            fields: BTreeMap::new(),
            needs_fetch: false,
            source_ts,
            idempotency_key: format!("{}:comment:{}:{change}:{delivery}", self.side, comment.id),
            origin: EventOrigin::Webhook,
            item_id,
            comment: Some(comment),
        }
    }

    /// A seed delivery with `event: "comment_…"`: its one event. `None` when the delivery is
    /// not a comment event (an item's `_externalData`).
    pub(super) fn parse_seed_comment(
        &self,
        connection: &str,
        headers: &HeaderMap,
        body: &[u8],
        v: &Value,
        now: DateTime<Utc>,
    ) -> Result<Option<ChangeEvent>, WebhookError> {
        let Some(event) = v.get("event") else {
            return Ok(None);
        };
        let change = match event.as_str() {
            Some("comment_created") => CommentChange::Created,
            Some("comment_updated") => CommentChange::Updated,
            Some("comment_deleted") => CommentChange::Deleted,
            // An item delivery that names its own event (`webhook.event_pointer = "/event"`).
            Some(other) if !other.starts_with("comment") => return Ok(None),
            _ => {
                return Err(shape(
                    "/event",
                    "event must be \"comment_created\", \"comment_updated\" or \"comment_deleted\"",
                ));
            }
        };
        let item_id = match v.get("sourceIssueId") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(shape(
                    "/sourceIssueId",
                    "sourceIssueId must be a non-empty string or a number",
                ));
            }
            None => return Err(shape("/sourceIssueId", "missing sourceIssueId")),
        };
        super::webhook::check_item_id(&item_id, "/sourceIssueId", "sourceIssueId")?;
        let Some(c) = v.get("comment").filter(|c| c.is_object()) else {
            return Err(shape("/comment", "missing comment object"));
        };
        let comment_id = match c.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(shape(
                    "/comment/id",
                    "the comment id must be a non-empty string or a number",
                ));
            }
        };
        super::webhook::check_item_id(&comment_id, "/comment/id", "the comment id")?;
        let updated_text = c.get("updated").and_then(Value::as_str);
        let updated = match c.get("updated") {
            None | Some(Value::Null) => None,
            Some(t) => Some(
                parse_time(t)
                    .ok_or_else(|| shape("/comment/updated", "updated must be an RFC 3339 time"))?,
            ),
        };
        let source_ts = match change {
            CommentChange::Deleted => now,
            _ => updated.unwrap_or(now),
        };
        let d = Delivery {
            connection,
            headers,
            body,
        };
        Ok(Some(self.comment_event(
            &d,
            item_id,
            CommentRef {
                id: comment_id,
                change,
            },
            source_ts,
            updated_text,
        )))
    }

    /// A custom delivery with a value at `webhook.comment_id_pointer`: its one event. `None`
    /// when the pointer is not configured or the delivery has nothing there.
    pub(super) fn parse_custom_comment(
        &self,
        connection: &str,
        headers: &HeaderMap,
        body: &[u8],
        v: &Value,
        now: DateTime<Utc>,
    ) -> Result<Option<ChangeEvent>, WebhookError> {
        let Some(ptr) = self.webhook_comment_pointer.as_deref() else {
            return Ok(None);
        };
        let comment_id = match v.pointer(ptr) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(shape(
                    ptr,
                    "the comment id must be a non-empty string or a number",
                ));
            }
        };
        super::webhook::check_item_id(&comment_id, ptr, "the comment id")?;
        let (item_id, name) = super::webhook::parse_id_only(
            v,
            &self.webhook_id_pointer,
            self.webhook_event_pointer.as_deref(),
        )?;
        let name = name.unwrap_or_default().to_ascii_lowercase();
        let change = if name.contains("delet") || name.contains("remov") {
            CommentChange::Deleted
        } else if name.contains("creat") || name.contains("add") {
            CommentChange::Created
        } else {
            CommentChange::Updated
        };
        let d = Delivery {
            connection,
            headers,
            body,
        };
        Ok(Some(self.comment_event(
            &d,
            item_id,
            CommentRef {
                id: comment_id,
                change,
            },
            now,
            None,
        )))
    }
}

/// What a delivery came with, for its event's key.
struct Delivery<'a> {
    connection: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

fn shape(path: &str, message: &str) -> WebhookError {
    WebhookError::Shape {
        path: path.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_bodies_are_filled_structurally() {
        let v = render_comment_body(
            r#"{"issue": {"notes": {{body}}, "private_notes": {{internal}}}}"#,
            "a \"quoted\" }, {",
            true,
            "7",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"issue": {"notes": "a \"quoted\" }, {", "private_notes": true}})
        );
        let v = render_comment_body(r#"{"text": "{{body}}", "on": "{{id}}"}"#, "x", false, "7")
            .unwrap();
        assert_eq!(v, json!({"text": "x", "on": "7"}));
    }

    #[test]
    fn listed_comments_are_read_at_their_places() {
        let places = CommentPlaces {
            id: "/id".into(),
            body: "/notes".into(),
            created: "/created_on".into(),
            updated: None,
            author: Some("/user/name".into()),
            author_id: Some("/user/id".into()),
            internal: Some("/private_notes".into()),
        };
        let c = places
            .read(
                "1",
                &json!({"id": 5, "notes": "Hello\n\nthere", "created_on": "2026-01-02T03:04:05Z",
                    "user": {"id": 3, "name": "Ann"}, "private_notes": "1"}),
            )
            .unwrap()
            .unwrap();
        assert_eq!(c.id, "5");
        assert_eq!(c.author, "Ann");
        // Redmine's numeric user id, as text.
        assert_eq!(c.author_id.as_deref(), Some("3"));
        assert_eq!(c.body, Doc::paragraphs(["Hello", "there"]));
        assert_eq!(c.updated, c.created);
        assert!(c.internal);
        // A journal without notes is a field change, not a comment.
        assert!(
            places
                .read("1", &json!({"id": 6, "notes": "", "created_on": 1}))
                .unwrap()
                .is_none()
        );
        let e = places
            .read("1", &json!({"id": 7, "notes": "x"}))
            .unwrap_err();
        assert!(e.to_string().contains("`/created_on`"), "{e}");
        let e = places.read("1", &json!({"notes": "x"})).unwrap_err();
        assert!(e.to_string().contains("no id at `/id`"), "{e}");
    }
}
