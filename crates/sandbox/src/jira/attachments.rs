//! Attachments of the Jira sandbox, stored as real bytes and served back.
//!
//! - `POST /rest/api/{2,3}/issue/{key}/attachments`: a `multipart/form-data` body whose
//!   `file` parts are the files; Jira refuses it (403 "XSRF check failed") without
//!   `X-Atlassian-Token: no-check`. Answers `200` with the list of `Attachment` beans added.
//! - `GET /rest/api/{2,3}/attachment/content/{id}`: the bytes, with the file's content type.
//! - `DELETE /rest/api/{2,3}/attachment/{id}`: `204`, `404` when unknown.
//! - The issue's `attachment` field lists them (`fields=attachment`).
//!
//! Each change is recorded in the issue's changelog (field `attachment`, the id in `to` or
//! `from`, as Jira records it) and fires `attachment_created` / `attachment_deleted` (the
//! attachment, naming its issue in `issueId`) and the `jira:issue_updated` with that
//! changelog, so engines that subscribe to either see it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::model::{Api, History, User, jira_time};
use super::{ApiError, Event, Inner};
use crate::multipart;

/// One stored file.
#[derive(Debug, Clone)]
pub struct StoredAttachment {
    pub id: u64,
    pub issue_id: u64,
    pub filename: String,
    pub mime_type: String,
    pub created: DateTime<Utc>,
    pub author: User,
    pub data: Bytes,
}

impl StoredAttachment {
    /// The `Attachment` bean (the issue's `attachment` field, the upload's answer).
    pub fn render(&self, base: &str, api: Api) -> Value {
        let p = api.prefix();
        json!({
            "self": format!("{base}{p}/attachment/{}", self.id),
            "id": self.id.to_string(),
            "filename": self.filename,
            "author": self.author.render(base, api),
            "created": jira_time(&self.created),
            "size": self.data.len(),
            "mimeType": self.mime_type,
            "content": format!("{base}{p}/attachment/content/{}", self.id),
        })
    }
}

/// All attachments, by issue id.
#[derive(Debug, Default)]
pub(crate) struct Attachments {
    by_issue: BTreeMap<u64, Vec<StoredAttachment>>,
    next: u64,
}

impl Attachments {
    pub fn of(&self, issue: u64) -> &[StoredAttachment] {
        self.by_issue.get(&issue).map_or(&[], Vec::as_slice)
    }

    fn find(&self, id: &str) -> Option<&StoredAttachment> {
        let id: u64 = id.parse().ok()?;
        self.by_issue.values().flatten().find(|a| a.id == id)
    }
}

impl Inner {
    /// Attaches `files` (name, content type, bytes) to issue `key` as `actor`; answers the
    /// beans added. One changelog entry and one pair of webhooks per file.
    pub(crate) fn add_attachments(
        &self,
        actor: &User,
        api: Api,
        key: &str,
        files: Vec<(String, Option<String>, Bytes)>,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let issue_id = st.find(key).ok_or_else(ApiError::not_found)?;
        let mut added = Vec::new();
        for (filename, mime, data) in files {
            let now = st.tick();
            if st.attachments.next == 0 {
                st.attachments.next = 10000;
            }
            let id = st.attachments.next;
            st.attachments.next += 1;
            let a = StoredAttachment {
                id,
                issue_id,
                filename,
                mime_type: mime
                    .map(|m| m.split(';').next().unwrap_or("").trim().to_string())
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "application/octet-stream".into()),
                created: now,
                author: actor.clone(),
                data,
            };
            added.push(a.render(&self.base, api));
            st.attachments
                .by_issue
                .entry(issue_id)
                .or_default()
                .push(a.clone());
            self.record_attachment_change(&mut st, actor, &a, true, now);
        }
        Ok(Value::Array(added))
    }

    /// Deletes attachment `id` as `actor`.
    pub(crate) fn delete_attachment(&self, actor: &User, id: &str) -> Result<(), ApiError> {
        let mut st = self.lock();
        let a = st
            .attachments
            .find(id)
            .cloned()
            .ok_or_else(|| ApiError::new(404, "The attachment does not exist."))?;
        if let Some(list) = st.attachments.by_issue.get_mut(&a.issue_id) {
            list.retain(|x| x.id != a.id);
        }
        let now = st.tick();
        self.record_attachment_change(&mut st, actor, &a, false, now);
        Ok(())
    }

    /// The changelog entry and the webhooks of a file added or removed.
    fn record_attachment_change(
        &self,
        st: &mut super::State,
        actor: &User,
        a: &StoredAttachment,
        added: bool,
        now: DateTime<Utc>,
    ) {
        let hid = st.next_history_id;
        st.next_history_id += 1;
        let (id, name) = (a.id.to_string(), a.filename.clone());
        let item = if added {
            json!({"field": "Attachment", "fieldtype": "jira", "fieldId": "attachment",
                   "from": null, "fromString": null, "to": id, "toString": name})
        } else {
            json!({"field": "Attachment", "fieldtype": "jira", "fieldId": "attachment",
                   "from": id, "fromString": name, "to": null, "toString": null})
        };
        let Some(issue) = st.issues.get_mut(&a.issue_id) else {
            return;
        };
        issue.updated = now;
        issue.histories.push(History {
            id: hid,
            author: actor.clone(),
            created: now,
            items: vec![item],
        });
        let st = &*st;
        if let Some(issue) = st.issues.get(&a.issue_id)
            && let Some(history) = issue.histories.last()
        {
            let mut bean = a.render(&self.base, Api::V2);
            bean["issueId"] = json!(issue.id.to_string());
            self.fire(
                st,
                actor,
                issue,
                Event::Attachment {
                    attachment: &bean,
                    added,
                    history,
                },
            );
        }
    }
}

type S = Arc<Inner>;

fn xsrf_checked(headers: &HeaderMap) -> bool {
    headers
        .get("x-atlassian-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("no-check"))
}

/// `POST …/issue/{key}/attachments`.
pub(crate) async fn upload(
    State(inner): State<S>,
    api: Api,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !xsrf_checked(&headers) {
        return Err(ApiError::new(403, "XSRF check failed"));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multipart::boundary(ct).ok_or_else(|| {
        ApiError::new(
            415,
            "Unsupported Media Type: the request must be multipart/form-data",
        )
    })?;
    let parts = multipart::parse(&body, &boundary).map_err(|e| ApiError::new(400, e))?;
    let files: Vec<_> = parts
        .into_iter()
        .filter(|p| p.name == "file")
        .map(|p| {
            let name = p.filename.unwrap_or_else(|| "file".into());
            (name, p.content_type, p.data)
        })
        .collect();
    if files.is_empty() {
        return Err(ApiError::new(
            400,
            "No file part named `file` in the request.",
        ));
    }
    let actor = inner.lock().api_user();
    let added = inner.add_attachments(&actor, api, &key, files)?;
    Ok((StatusCode::OK, axum::Json(added)).into_response())
}

/// `GET …/attachment/content/{id}`: the bytes.
pub(crate) async fn content(
    State(inner): State<S>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let st = inner.lock();
    let a = st
        .attachments
        .find(&id)
        .ok_or_else(|| ApiError::new(404, "The attachment does not exist."))?;
    let mut resp = Response::new(Body::from(a.data.clone()));
    if let Ok(v) = a.mime_type.parse() {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

/// `DELETE …/attachment/{id}`.
pub(crate) async fn delete(
    State(inner): State<S>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = inner.lock().api_user();
    inner.delete_attachment(&actor, &id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
