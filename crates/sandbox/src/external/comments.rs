//! Comments of the external sandbox's items, in the seed's style and as Redmine's journals.
//!
//! The seed's API: `GET /API/issue/{id}/comments` lists an item's comments oldest first
//! (`{"id","author","authorId","body","created","updated","internal"}`, plain-text bodies,
//! RFC 3339 times in milliseconds; `authorId` is the author's user id — the login a user
//! field holds — or null when not known); `POST` there adds one (`{"body", "internal"?,
//! "author"?, "authorId"?}` → `201 {"id"}`; without either, the author is the API user,
//! named and identified by its user name); `PUT …/comments/{cid}` (`{"body"}`) edits
//! and `DELETE` removes one (`204`, `404` when unknown). Every change sends a webhook
//! `{"event": "comment_created"|"comment_updated"|"comment_deleted", "sourceIssueId": <item
//! id>, "comment": {…}}` with the item webhooks' headers and retries, in order with them.
//!
//! The same comments are Redmine's journals: `GET /issues/{id}.json?include=journals` lists
//! them, `PUT /issues/{id}.json` with `{"issue": {"notes", "private_notes"}}` adds one, and
//! `PUT /journals/{id}.json` with `{"journal": {"notes"}}` edits one (Redmine 5.0) — or
//! removes it when the notes become empty, as Redmine destroys a journal left with neither
//! notes nor details. Redmine has no call that deletes a note.
//!
//! A comment change moves the item's `updated`, as in Jira and Redmine, so a poller that
//! lists changed items sees it.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{ExtError, ExternalSandbox, Inner, S, bad, item_number, not_found, redmine_error};

/// All comments, by item number.
#[derive(Debug, Default)]
pub(super) struct Comments {
    by_item: BTreeMap<u64, Vec<StoredComment>>,
    /// The last comment id given (ids are unique across items, as Redmine's journal ids).
    next: u64,
}

#[derive(Debug, Clone)]
struct StoredComment {
    id: u64,
    author: String,
    /// The author's user id (login), when known.
    author_id: Option<String>,
    body: String,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    internal: bool,
}

fn millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn seconds(t: DateTime<Utc>) -> String {
    chrono::SubsecRound::trunc_subsecs(t, 0).to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl StoredComment {
    fn json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "author": self.author,
            "authorId": self.author_id,
            "body": self.body,
            "created": millis(self.created),
            "updated": millis(self.updated),
            "internal": self.internal,
        })
    }

    /// As a journal of Redmine 5.0's `GET /issues/{id}.json?include=journals`.
    fn journal(&self) -> Value {
        json!({
            "id": self.id,
            "user": {"id": 1, "name": self.author},
            "notes": self.body,
            "created_on": seconds(self.created),
            "updated_on": seconds(self.updated),
            "private_notes": self.internal,
            "details": [],
        })
    }
}

impl Comments {
    pub(super) fn redmine_journals(&self, item: u64) -> Value {
        Value::Array(
            self.by_item
                .get(&item)
                .into_iter()
                .flatten()
                .map(StoredComment::journal)
                .collect(),
        )
    }

    /// The item number holding comment `cid`.
    fn item_of(&self, cid: u64) -> Option<u64> {
        self.by_item
            .iter()
            .find(|(_, list)| list.iter().any(|c| c.id == cid))
            .map(|(n, _)| *n)
    }
}

/// What a change did, for its webhook's `event`.
#[derive(Clone, Copy)]
enum Change {
    Created,
    Updated,
    Deleted,
}

impl Change {
    fn event(self) -> &'static str {
        match self {
            Change::Created => "comment_created",
            Change::Updated => "comment_updated",
            Change::Deleted => "comment_deleted",
        }
    }
}

/// Why a comment call found nothing to change.
#[derive(Debug, PartialEq)]
enum Missing {
    Item,
    Comment,
}

impl Inner {
    /// Moves the item's `updated` to `at` and sends the change's webhook.
    fn comment_changed(
        &self,
        st: &mut super::ExtState,
        n: u64,
        at: DateTime<Utc>,
        change: Change,
        c: &StoredComment,
    ) {
        let Some(item) = st.items.get_mut(&n) else {
            return;
        };
        item.updated = at;
        let item_id = item.id.clone();
        let body = json!({
            "event": change.event(),
            "sourceIssueId": item_id,
            "comment": c.json(),
        });
        self.send_hook(st, &item_id, &body);
    }

    /// Adds a comment to item `item_id`; its id, or `None` when there is no such item.
    pub(super) fn add_comment(
        &self,
        item_id: &str,
        author: &str,
        author_id: Option<&str>,
        body: &str,
        internal: bool,
    ) -> Option<String> {
        let mut st = self.lock();
        let n = item_number(item_id).filter(|n| st.items.contains_key(n))?;
        let at = st.tick();
        st.comments.next += 1;
        let c = StoredComment {
            id: st.comments.next,
            author: author.to_string(),
            author_id: author_id.map(str::to_string),
            body: body.to_string(),
            created: at,
            updated: at,
            internal,
        };
        st.comments.by_item.entry(n).or_default().push(c.clone());
        self.comment_changed(&mut st, n, at, Change::Created, &c);
        Some(c.id.to_string())
    }

    /// Rewrites comment `cid` of item `n` (any item when `None`); an unchanged body changes
    /// nothing and sends no webhook. `internal: Some(_)` also sets the visibility.
    fn edit_comment(
        &self,
        n: Option<u64>,
        cid: u64,
        body: &str,
        internal: Option<bool>,
    ) -> Result<Value, Missing> {
        let mut st = self.lock();
        let n = match n {
            Some(n) if st.items.contains_key(&n) => n,
            Some(_) => return Err(Missing::Item),
            None => st.comments.item_of(cid).ok_or(Missing::Comment)?,
        };
        let current = st
            .comments
            .by_item
            .get(&n)
            .and_then(|l| l.iter().find(|c| c.id == cid))
            .cloned()
            .ok_or(Missing::Comment)?;
        if current.body == body && internal.is_none_or(|i| i == current.internal) {
            return Ok(current.json());
        }
        let at = st.tick();
        let mut edited = current;
        edited.body = body.to_string();
        edited.updated = at;
        if let Some(i) = internal {
            edited.internal = i;
        }
        if let Some(c) = st
            .comments
            .by_item
            .get_mut(&n)
            .and_then(|l| l.iter_mut().find(|c| c.id == cid))
        {
            *c = edited.clone();
        }
        self.comment_changed(&mut st, n, at, Change::Updated, &edited);
        Ok(edited.json())
    }

    /// Removes comment `cid` of item `n` (any item when `None`).
    fn remove_comment(&self, n: Option<u64>, cid: u64) -> Result<(), Missing> {
        let mut st = self.lock();
        let n = match n {
            Some(n) if st.items.contains_key(&n) => n,
            Some(_) => return Err(Missing::Item),
            None => st.comments.item_of(cid).ok_or(Missing::Comment)?,
        };
        let list = st.comments.by_item.get_mut(&n).ok_or(Missing::Comment)?;
        let at = list
            .iter()
            .position(|c| c.id == cid)
            .ok_or(Missing::Comment)?;
        let gone = list.remove(at);
        let now = st.tick();
        self.comment_changed(&mut st, n, now, Change::Deleted, &gone);
        Ok(())
    }
}

// ---- the seed's routes ----------------------------------------------------------------------

fn comment_not_found(cid: &str) -> ExtError {
    ExtError(StatusCode::NOT_FOUND, format!("comment {cid} not found"))
}

fn missing(m: Missing, id: &str, cid: &str) -> ExtError {
    match m {
        Missing::Item => not_found(id),
        Missing::Comment => comment_not_found(cid),
    }
}

/// The known item number of `id`, else 404.
fn known_item(inner: &Inner, id: &str) -> Result<u64, ExtError> {
    let st = inner.lock();
    item_number(id)
        .filter(|n| st.items.contains_key(n))
        .ok_or_else(|| not_found(id))
}

/// A comment body as `POST`/`PUT` take it: `body` a non-empty string (a comment without
/// text is refused, as Jira and Redmine refuse one), optional `internal` (a boolean),
/// `author` and `authorId` (non-empty strings).
struct CommentIn {
    body: String,
    internal: Option<bool>,
    author: Option<String>,
    author_id: Option<String>,
}

fn parse_comment(bytes: &Bytes) -> Result<CommentIn, ExtError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("malformed JSON body: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("body must be a JSON object"))?;
    let body = match obj.get("body") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return Err(bad("'body' must not be empty")),
        None => return Err(bad("missing 'body' (the comment's text)")),
        Some(_) => return Err(bad("'body' must be a string")),
    };
    let internal = match obj.get("internal") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(bad("'internal' must be true or false")),
    };
    let author = match obj.get("author") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(_) => return Err(bad("'author' must be a non-empty string")),
    };
    let author_id = match obj.get("authorId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(_) => return Err(bad("'authorId' must be a non-empty string")),
    };
    Ok(CommentIn {
        body,
        internal,
        author,
        author_id,
    })
}

pub(super) async fn list(
    State(inner): State<S>,
    Path(id): Path<String>,
) -> Result<Response, ExtError> {
    let n = known_item(&inner, &id)?;
    let st = inner.lock();
    let list: Vec<Value> = st
        .comments
        .by_item
        .get(&n)
        .into_iter()
        .flatten()
        .map(StoredComment::json)
        .collect();
    Ok(axum::Json(Value::Array(list)).into_response())
}

pub(super) async fn create(
    State(inner): State<S>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ExtError> {
    known_item(&inner, &id)?;
    let c = parse_comment(&body)?;
    // Neither given: the API user wrote it, and is known by its user name.
    let (author, author_id) = match (c.author, c.author_id) {
        (None, None) => (inner.cfg.username.clone(), Some(inner.cfg.username.clone())),
        (author, id) => (author.unwrap_or_default(), id),
    };
    let cid = inner
        .add_comment(
            &id,
            &author,
            author_id.as_deref(),
            &c.body,
            c.internal.unwrap_or(false),
        )
        .ok_or_else(|| not_found(&id))?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": cid }))).into_response())
}

pub(super) async fn update(
    State(inner): State<S>,
    Path((id, cid)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ExtError> {
    let n = known_item(&inner, &id)?;
    let c = parse_comment(&body)?;
    let number = cid.parse::<u64>().map_err(|_| comment_not_found(&cid))?;
    let v = inner
        .edit_comment(Some(n), number, &c.body, c.internal)
        .map_err(|m| missing(m, &id, &cid))?;
    Ok(axum::Json(v).into_response())
}

pub(super) async fn delete(
    State(inner): State<S>,
    Path((id, cid)): Path<(String, String)>,
) -> Result<Response, ExtError> {
    let n = known_item(&inner, &id)?;
    let number = cid.parse::<u64>().map_err(|_| comment_not_found(&cid))?;
    inner
        .remove_comment(Some(n), number)
        .map_err(|m| missing(m, &id, &cid))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- Redmine's journals ---------------------------------------------------------------------

/// Redmine's booleans in a JSON body: `true`/`false`, or the form values `"1"`/`"0"`,
/// `"true"`/`"false"`.
fn redmine_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "1" | "true" => Some(true),
            "0" | "false" | "" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_u64().map(|n| n != 0),
        _ => None,
    }
}

/// The note an issue update adds: `issue.notes` (blank: none) and `issue.private_notes`.
pub(super) fn redmine_note(body: &Bytes) -> Result<Option<(String, bool)>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "invalid JSON".to_string())?;
    let Some(issue) = v.get("issue") else {
        return Ok(None);
    };
    let notes = match issue.get("notes") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("Notes is invalid".into()),
    };
    let private = match issue.get("private_notes") {
        None | Some(Value::Null) => false,
        Some(v) => redmine_bool(v).ok_or("Private notes is invalid")?,
    };
    Ok((!notes.trim().is_empty()).then_some((notes, private)))
}

/// `PUT /journals/{id}.json` (Redmine 5.0): edits a note; empty notes remove the journal.
pub(super) async fn redmine_edit(
    State(inner): State<S>,
    Path(file): Path<String>,
    body: Bytes,
) -> Response {
    let Some(cid) = file
        .strip_suffix(".json")
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return redmine_error(StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let Some(journal) = v.get("journal").and_then(Value::as_object) else {
        return redmine_error(StatusCode::UNPROCESSABLE_ENTITY, "journal is missing");
    };
    let notes = match journal.get("notes") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return redmine_error(StatusCode::UNPROCESSABLE_ENTITY, "Notes is invalid"),
    };
    let private = match journal.get("private_notes") {
        None | Some(Value::Null) => None,
        Some(v) => match redmine_bool(v) {
            Some(b) => Some(b),
            None => {
                return redmine_error(StatusCode::UNPROCESSABLE_ENTITY, "Private notes is invalid");
            }
        },
    };
    let done = if notes.trim().is_empty() {
        inner.remove_comment(None, cid).map(|_| ())
    } else {
        inner.edit_comment(None, cid, &notes, private).map(|_| ())
    };
    match done {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

// ---- what tests do as people ----------------------------------------------------------------

impl ExternalSandbox {
    /// Adds a comment to item `item_id` as `author` would in the system's own UI; sends the
    /// webhook. The new comment's id, or `None` when there is no such item. The author has
    /// no user id (see [`ExternalSandbox::user_comment_as`]).
    pub fn user_comment(
        &self,
        item_id: &str,
        author: &str,
        body: &str,
        internal: bool,
    ) -> Option<String> {
        self.inner
            .add_comment(item_id, author, None, body, internal)
    }

    /// [`ExternalSandbox::user_comment`] by the user with id (login) `author_id`, shown as
    /// `author`.
    pub fn user_comment_as(
        &self,
        item_id: &str,
        author_id: &str,
        author: &str,
        body: &str,
    ) -> Option<String> {
        self.inner
            .add_comment(item_id, author, Some(author_id), body, false)
    }

    /// Edits comment `comment_id` of item `item_id` as a person would; sends the webhook when
    /// the text changed. False when there is no such item or comment.
    pub fn user_edit_comment(&self, item_id: &str, comment_id: &str, body: &str) -> bool {
        match (item_number(item_id), comment_id.parse::<u64>()) {
            (Some(n), Ok(cid)) => self.inner.edit_comment(Some(n), cid, body, None).is_ok(),
            _ => false,
        }
    }

    /// Deletes comment `comment_id` of item `item_id` as a person would; sends the webhook.
    /// False when there is no such item or comment.
    pub fn user_delete_comment(&self, item_id: &str, comment_id: &str) -> bool {
        match (item_number(item_id), comment_id.parse::<u64>()) {
            (Some(n), Ok(cid)) => self.inner.remove_comment(Some(n), cid).is_ok(),
            _ => false,
        }
    }

    /// Item `item_id`'s comments as `GET /API/issue/{id}/comments` lists them, oldest first
    /// (empty for an unknown item).
    pub fn comments(&self, item_id: &str) -> Vec<Value> {
        let st = self.inner.lock();
        item_number(item_id)
            .and_then(|n| st.comments.by_item.get(&n))
            .into_iter()
            .flatten()
            .map(StoredComment::json)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_bodies_are_checked() {
        let err = |b: &str| {
            parse_comment(&Bytes::from(b.to_string()))
                .err()
                .map(|e| (e.0.as_u16(), e.1))
        };
        assert_eq!(err("{").map(|e| e.0), Some(400));
        assert_eq!(
            err("{}"),
            Some((400, "missing 'body' (the comment's text)".into()))
        );
        assert_eq!(err(r#"{"body": 3}"#).map(|e| e.0), Some(400));
        assert_eq!(
            err(r#"{"body": "  "}"#),
            Some((400, "'body' must not be empty".into()))
        );
        assert_eq!(
            err(r#"{"body": "x", "internal": "yes"}"#),
            Some((400, "'internal' must be true or false".into()))
        );
        assert_eq!(err(r#"{"body": "x", "author": 7}"#).map(|e| e.0), Some(400));
        let ok = parse_comment(&Bytes::from(r#"{"body": "hi", "internal": true}"#)).unwrap();
        assert_eq!((ok.body.as_str(), ok.internal), ("hi", Some(true)));
    }

    #[test]
    fn redmine_notes_are_read() {
        let note = |b: &str| redmine_note(&Bytes::from(b.to_string()));
        assert_eq!(note(r#"{"issue": {"subject": "x"}}"#), Ok(None));
        assert_eq!(note(r#"{"issue": {"notes": " "}}"#), Ok(None));
        assert_eq!(
            note(r#"{"issue": {"notes": "hi", "private_notes": "1"}}"#),
            Ok(Some(("hi".into(), true)))
        );
        assert!(note(r#"{"issue": {"notes": 5}}"#).is_err());
        assert!(note(r#"{"issue": {"notes": "x", "private_notes": "maybe"}}"#).is_err());
    }
}
