//! Attachments of the external sandbox's items, in the seed's style, stored as real bytes.
//!
//! - `GET /API/issue/{id}/attachments` lists an item's files, oldest first:
//!   `[{"id", "filename", "size", "sha256", "url", "contentType"}]` (`url` absolute).
//! - `POST /API/issue/{id}/attachments` with a `multipart/form-data` body whose part `file`
//!   is the file → `201` and the new attachment (as listed).
//! - `GET` of a file's `url` (`/API/issue/{id}/attachments/{attId}/content`) → its bytes.
//! - `DELETE /API/issue/{id}/attachments/{attId}` → `204`, `404` when unknown.
//!
//! The same files in a second, different shape, for `format = "custom"` connections (the
//! Redmine-style items, by number):
//! - `GET /issues/{n}/files` → `{"files": [{"file_id", "name", "bytes", "mime", "links":
//!   {"raw": "/files/{fid}/raw"}}]}` — no hash, a relative link.
//! - `POST /issues/{n}/files` with a `multipart/form-data` body whose part `upload` is the
//!   file, or a JSON body `{"upload": {"name", "mime", "data": <base64>}}` → `201 {"file":
//!   {…}}`.
//! - `GET /files/{fid}/raw` → the bytes; `DELETE /files/{fid}` → `204`, `404` when unknown.
//!
//! Every change moves the item's `updated` and sends a webhook `{"event":
//! "attachment_created"|"attachment_deleted", "sourceIssueId": <item id>, "attachment":
//! {…}}` with the item webhooks' headers and retries, in order with them.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ExtError, ExternalSandbox, Inner, S, bad, item_number, not_found};
use crate::multipart;

/// All files, by item number.
#[derive(Debug, Default)]
pub(super) struct Attachments {
    by_item: BTreeMap<u64, Vec<StoredFile>>,
    /// The last id given (unique across items).
    next: u64,
}

#[derive(Debug, Clone)]
struct StoredFile {
    id: u64,
    filename: String,
    content_type: String,
    sha256: String,
    data: Bytes,
}

impl StoredFile {
    fn custom_json(&self) -> Value {
        json!({
            "file_id": self.id,
            "name": self.filename,
            "bytes": self.data.len(),
            "mime": self.content_type,
            "links": {"raw": format!("/files/{}/raw", self.id)},
        })
    }

    fn json(&self, base: &str, item_id: &str) -> Value {
        json!({
            "id": self.id.to_string(),
            "filename": self.filename,
            "size": self.data.len(),
            "sha256": self.sha256,
            "contentType": self.content_type,
            "url": format!("{base}/API/issue/{item_id}/attachments/{}/content", self.id),
        })
    }
}

impl Inner {
    /// Adds a file to item `item_id`; the new attachment, or `None` when there is no such
    /// item.
    fn add_attachment(
        &self,
        item_id: &str,
        filename: &str,
        content_type: Option<&str>,
        data: Bytes,
    ) -> Option<Value> {
        let mut st = self.lock();
        let n = item_number(item_id).filter(|n| st.items.contains_key(n))?;
        let at = st.tick();
        st.attachments.next += 1;
        let f = StoredFile {
            id: st.attachments.next,
            filename: filename.to_string(),
            content_type: content_type
                .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "application/octet-stream".into()),
            sha256: hex::encode(Sha256::digest(&data)),
            data,
        };
        st.attachments.by_item.entry(n).or_default().push(f.clone());
        let item = st.items.get_mut(&n)?;
        item.updated = at;
        let item_id = item.id.clone();
        let v = f.json(&self.base, &item_id);
        let body =
            json!({"event": "attachment_created", "sourceIssueId": item_id, "attachment": v});
        self.send_hook(&st, &item_id, &body);
        Some(v)
    }

    /// Removes file `att` of item `item_id`; false when either is unknown.
    fn remove_attachment(&self, item_id: &str, att: &str) -> bool {
        let mut st = self.lock();
        let Some(n) = item_number(item_id).filter(|n| st.items.contains_key(n)) else {
            return false;
        };
        let Ok(att) = att.parse::<u64>() else {
            return false;
        };
        let Some(list) = st.attachments.by_item.get_mut(&n) else {
            return false;
        };
        let Some(pos) = list.iter().position(|f| f.id == att) else {
            return false;
        };
        let f = list.remove(pos);
        let at = st.tick();
        let Some(item) = st.items.get_mut(&n) else {
            return false;
        };
        item.updated = at;
        let item_id = item.id.clone();
        let body = json!({
            "event": "attachment_deleted",
            "sourceIssueId": item_id,
            "attachment": f.json(&self.base, &item_id),
        });
        self.send_hook(&st, &item_id, &body);
        true
    }
}

pub(super) async fn list(
    State(inner): State<S>,
    Path(id): Path<String>,
) -> Result<Response, ExtError> {
    let st = inner.lock();
    let n = item_number(&id)
        .filter(|n| st.items.contains_key(n))
        .ok_or_else(|| not_found(&id))?;
    let list: Vec<Value> = st
        .attachments
        .by_item
        .get(&n)
        .into_iter()
        .flatten()
        .map(|f| f.json(&inner.base, &id))
        .collect();
    Ok(axum::Json(list).into_response())
}

pub(super) async fn upload(
    State(inner): State<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ExtError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multipart::boundary(ct)
        .ok_or_else(|| bad("the body must be multipart/form-data with a part `file`"))?;
    let parts = multipart::parse(&body, &boundary).map_err(bad)?;
    let file = parts
        .into_iter()
        .find(|p| p.name == "file")
        .ok_or_else(|| bad("no part named `file`"))?;
    let name = file
        .filename
        .filter(|f| !f.is_empty())
        .ok_or_else(|| bad("the part `file` has no filename"))?;
    let v = inner
        .add_attachment(&id, &name, file.content_type.as_deref(), file.data)
        .ok_or_else(|| not_found(&id))?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

fn find(inner: &Inner, id: &str, att: &str) -> Option<StoredFile> {
    let st = inner.lock();
    let n = item_number(id)?;
    let att: u64 = att.parse().ok()?;
    st.attachments
        .by_item
        .get(&n)?
        .iter()
        .find(|f| f.id == att)
        .cloned()
}

pub(super) async fn content(
    State(inner): State<S>,
    Path((id, att)): Path<(String, String)>,
) -> Result<Response, ExtError> {
    let f = find(&inner, &id, &att)
        .ok_or_else(|| ExtError(StatusCode::NOT_FOUND, format!("attachment {att} not found")))?;
    let mut resp = Response::new(Body::from(f.data));
    if let Ok(v) = f.content_type.parse() {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

pub(super) async fn delete(
    State(inner): State<S>,
    Path((id, att)): Path<(String, String)>,
) -> Result<Response, ExtError> {
    if inner.remove_attachment(&id, &att) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ExtError(
            StatusCode::NOT_FOUND,
            format!("attachment {att} of issue {id} not found"),
        ))
    }
}

/// The item (`EXT-{n}`) holding file `fid`, and the file.
fn by_file_id(inner: &Inner, fid: &str) -> Option<(String, StoredFile)> {
    let fid: u64 = fid.parse().ok()?;
    let st = inner.lock();
    st.attachments.by_item.iter().find_map(|(n, list)| {
        list.iter()
            .find(|f| f.id == fid)
            .map(|f| (format!("EXT-{n}"), f.clone()))
    })
}

pub(super) async fn custom_list(
    State(inner): State<S>,
    Path(n): Path<u64>,
) -> Result<Response, ExtError> {
    let st = inner.lock();
    if !st.items.contains_key(&n) {
        return Err(not_found(&n.to_string()));
    }
    let files: Vec<Value> = st
        .attachments
        .by_item
        .get(&n)
        .into_iter()
        .flatten()
        .map(StoredFile::custom_json)
        .collect();
    Ok(axum::Json(json!({ "files": files })).into_response())
}

pub(super) async fn custom_upload(
    State(inner): State<S>,
    Path(n): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ExtError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (name, mime, data) = if ct.starts_with("application/json") {
        let v: Value = serde_json::from_slice(&body).map_err(|e| bad(format!("not JSON: {e}")))?;
        let u = &v["upload"];
        let name = u["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("upload.name is missing"))?
            .to_string();
        let data = u["data"]
            .as_str()
            .ok_or_else(|| bad("upload.data is missing"))
            .and_then(|d| {
                base64::engine::general_purpose::STANDARD
                    .decode(d)
                    .map_err(|e| bad(format!("upload.data is not base64: {e}")))
            })?;
        (
            name,
            u["mime"].as_str().map(str::to_string),
            Bytes::from(data),
        )
    } else {
        let boundary = multipart::boundary(ct).ok_or_else(|| {
            bad("the body must be JSON or multipart/form-data with a part `upload`")
        })?;
        let parts = multipart::parse(&body, &boundary).map_err(bad)?;
        let file = parts
            .into_iter()
            .find(|p| p.name == "upload")
            .ok_or_else(|| bad("no part named `upload`"))?;
        let name = file
            .filename
            .filter(|f| !f.is_empty())
            .ok_or_else(|| bad("the part `upload` has no filename"))?;
        (name, file.content_type, file.data)
    };
    let item = format!("EXT-{n}");
    let v = inner
        .add_attachment(&item, &name, mime.as_deref(), data)
        .ok_or_else(|| not_found(&item))?;
    let fid = v["id"].as_str().unwrap_or_default().to_string();
    let (_, f) = by_file_id(&inner, &fid).ok_or_else(|| not_found(&fid))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "file": f.custom_json() })),
    )
        .into_response())
}

pub(super) async fn custom_raw(
    State(inner): State<S>,
    Path(fid): Path<String>,
) -> Result<Response, ExtError> {
    let (_, f) = by_file_id(&inner, &fid)
        .ok_or_else(|| ExtError(StatusCode::NOT_FOUND, format!("file {fid} not found")))?;
    Ok(Response::new(Body::from(f.data)))
}

pub(super) async fn custom_delete(
    State(inner): State<S>,
    Path(fid): Path<String>,
) -> Result<Response, ExtError> {
    match by_file_id(&inner, &fid) {
        Some((item, f)) if inner.remove_attachment(&item, &f.id.to_string()) => {
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ExtError(
            StatusCode::NOT_FOUND,
            format!("file {fid} not found"),
        )),
    }
}

impl ExternalSandbox {
    /// Attach a file to item `item_id` as a person would (fires `attachment_created`);
    /// answers the attachment's id.
    ///
    /// # Panics
    /// If the item does not exist.
    pub fn user_attach(
        &self,
        item_id: &str,
        filename: &str,
        content_type: &str,
        data: Vec<u8>,
    ) -> String {
        match self
            .inner
            .add_attachment(item_id, filename, Some(content_type), data.into())
        {
            Some(v) => v["id"].as_str().unwrap_or_default().to_string(),
            None => panic!("user_attach: no item {item_id}"),
        }
    }

    /// Delete a file as a person would (fires `attachment_deleted`); false when unknown.
    pub fn user_delete_attachment(&self, item_id: &str, att: &str) -> bool {
        self.inner.remove_attachment(item_id, att)
    }

    /// The files of an item as (id, file name, content), oldest first.
    pub fn attachments(&self, item_id: &str) -> Vec<(String, String, Vec<u8>)> {
        let st = self.inner.lock();
        item_number(item_id)
            .and_then(|n| st.attachments.by_item.get(&n))
            .into_iter()
            .flatten()
            .map(|f| (f.id.to_string(), f.filename.clone(), f.data.to_vec()))
            .collect()
    }
}
