//! Attachments of a REST system, in the seed's format: `GET {base}/API/issue/{id}/attachments`
//! lists `[{"id", "filename", "size", "sha256", "url", "contentType"?}]`, `POST` there uploads
//! one (multipart field `file`) and answers it, a `GET` of its `url` downloads the content,
//! `DELETE {base}/API/issue/{id}/attachments/{attId}` removes it; webhooks `{"event":
//! "attachment_created"|"attachment_deleted", "sourceIssueId": <item id>, "attachment": {…}}`.
//!
//! A custom system (`format = "custom"`) describes the same four calls in
//! `[connection.external.attachment]`: a listing path and JSON Pointers into each listed
//! file, an upload as `multipart/form-data` or as a JSON body carrying the content in base64
//! (streamed, encoded a buffer at a time), a download URL (listed) or path template, and a
//! delete path; `webhook.attachment_id_pointer` marks its attachment deliveries.
//!
//! The listing's `sha256` spares the worker a download to learn a file's identity; a system
//! whose listing lacks it still works (the worker hashes the file).

use super::client::encode_component;
use super::{RestConnector, id_text, method};
use crate::config::{AttachmentEncoding, AttachmentList, RestAttachment};
use crate::connector::files::{self, Base64File, Download, MultipartFile, ResponseBody, Upload};
use crate::connector::{ConnectorError, ConnectorResult, WebhookError};
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::BTreeMap;
use tandem_core::attachment::Attachment;
use tandem_core::{ChangeEvent, ChangeKind, EventOrigin};

/// A `sha256` as the store keeps it: 64 lower-case hex digits, else unknown.
fn sha256_of(v: Option<&Value>) -> Option<String> {
    let s = v?.as_str()?.trim().to_ascii_lowercase();
    let s = s.strip_prefix("sha256:").map(str::to_string).unwrap_or(s);
    (s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())).then_some(s)
}

/// One listed attachment.
pub(super) fn parse(item: &str, v: &Value) -> ConnectorResult<Attachment> {
    let bad = |what: &str| {
        ConnectorError::permanent(format!("rest: an attachment of item {item} {what}"))
    };
    let id = id_text(v.get("id")).ok_or_else(|| bad("has no id"))?;
    let filename = v
        .get("filename")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty())
        .ok_or_else(|| bad("has no filename"))?
        .to_string();
    let size = v
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("has no size"))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(Attachment {
        id,
        filename,
        size,
        sha256: sha256_of(v.get("sha256")),
        content_type: text("contentType").or_else(|| text("mimeType")),
        url: text("url"),
    })
}

/// One file listed by a custom system, read with the `[attachment.list]` pointers.
fn parse_custom(l: &AttachmentList, item: &str, v: &Value) -> ConnectorResult<Attachment> {
    let bad = |what: String| {
        ConnectorError::permanent(format!("rest: an attachment of item {item} {what}"))
    };
    let id = id_text(v.pointer(&l.id_pointer))
        .ok_or_else(|| bad(format!("has no id at `{}`", l.id_pointer)))?;
    let filename = v
        .pointer(&l.filename_pointer)
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "({id}) has no file name at `{}`",
                l.filename_pointer
            ))
        })?
        .to_string();
    let size = match v.pointer(&l.size_pointer) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        bad(format!(
            "({id}) has no size in bytes at `{}`",
            l.size_pointer
        ))
    })?;
    let text = |p: &Option<String>| {
        p.as_deref()
            .and_then(|p| v.pointer(p))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    Ok(Attachment {
        id,
        filename,
        size,
        sha256: sha256_of(l.sha256_pointer.as_deref().and_then(|p| v.pointer(p))),
        content_type: text(&l.content_type_pointer),
        url: text(&l.url_pointer),
    })
}

/// A custom path template with `{id}` and `{attachment_id}` filled in, URL-encoded.
fn fill(path: &str, id: &str, attachment_id: Option<&str>) -> String {
    let mut p = path.replace("{id}", &encode_component(id));
    if let Some(a) = attachment_id {
        p = p.replace("{attachment_id}", &encode_component(a));
    }
    p
}

/// A base64 upload's body around its content: the template filled with everything but
/// `{{content}}`, split where the content goes. The text before ends with the string's
/// opening quote, the text after starts with its closing quote. Substitution happens on
/// parsed JSON (as for items), so a file name can never change the template's structure.
fn base64_frame(template: &str, id: &str, file: &Upload<'_>) -> ConnectorResult<(String, String)> {
    let sentinel = format!("tandem-content-{:032x}", rand::random::<u128>());
    let values = [
        ("content", json!(sentinel)),
        ("filename", json!(file.filename)),
        (
            "content_type",
            json!(file.content_type.unwrap_or("application/octet-stream")),
        ),
        ("size", json!(file.size)),
        ("id", json!(id)),
    ];
    let body = super::render_template(template, &values)?.to_string();
    let quoted = format!("\"{sentinel}\"");
    match body.match_indices(&quoted).count() {
        1 => {
            let at = body.find(&quoted).unwrap_or_default();
            Ok((
                body[..at + 1].to_string(),
                body[at + quoted.len() - 1..].to_string(),
            ))
        }
        _ => Err(ConnectorError::permanent(
            "rest: attachment.upload.body must hold `{{content}}` once, as a value",
        )),
    }
}

impl RestConnector {
    fn custom_attachments(&self) -> Option<&RestAttachment> {
        self.attachment.as_ref()
    }

    fn attachments_path(id: &str) -> String {
        format!("/API/issue/{}/attachments", encode_component(id))
    }

    pub(super) async fn list_attachments_impl(&self, id: &str) -> ConnectorResult<Vec<Attachment>> {
        let id = Self::check_id(id)?;
        if let Some(c) = self.custom_attachments() {
            let l = &c.list;
            let answer = self
                .client
                .call(method(l.method), &fill(&l.path, id, None), None)
                .await?
                .json("rest: attachment list")?;
            let Some(Value::Array(list)) = answer.pointer(&l.items_pointer) else {
                return Err(ConnectorError::permanent(format!(
                    "rest: the attachments of item {id} are not an array at `{}` \
                     (attachment.list.items_pointer)",
                    l.items_pointer
                )));
            };
            return list.iter().map(|v| parse_custom(l, id, v)).collect();
        }
        let answer = self
            .client
            .call(Method::GET, &Self::attachments_path(id), None)
            .await?
            .json("rest: attachment list")?;
        let list = answer.as_array().ok_or_else(|| {
            ConnectorError::permanent(format!(
                "rest: the attachment list of item {id} is not a JSON array"
            ))
        })?;
        list.iter().map(|v| parse(id, v)).collect()
    }

    pub(super) async fn download_attachment_impl(
        &self,
        id: &str,
        a: &Attachment,
    ) -> ConnectorResult<Download> {
        let id = Self::check_id(id)?;
        let url = match (&a.url, self.custom_attachments()) {
            (Some(u), _) => u.clone(),
            (None, Some(c)) => {
                let path = c
                    .download
                    .as_ref()
                    .and_then(|d| d.path.as_deref())
                    .ok_or_else(|| {
                        ConnectorError::permanent(format!(
                            "rest: attachment {} of item {id} has no URL and no \
                             attachment.download.path is configured",
                            a.id
                        ))
                    })?;
                fill(path, id, Some(&a.id))
            }
            (None, None) => format!(
                "{}/{}/content",
                Self::attachments_path(id),
                encode_component(&a.id)
            ),
        };
        let resp = self
            .client
            .download(&url, &self.trusted_origins, files::transfer_timeout(a.size))
            .await?;
        Ok(ResponseBody::boxed(
            resp,
            format!("rest: attachment {}", a.id),
        ))
    }

    pub(super) async fn upload_attachment_impl(
        &self,
        id: &str,
        file: &Upload<'_>,
    ) -> ConnectorResult<Attachment> {
        let id = Self::check_id(id)?;
        if let Some(c) = self.custom_attachments() {
            return self.upload_custom(c, id, file).await;
        }
        let (body, content_type) = MultipartFile::open(file, "file", &files::boundary()).await?;
        let length = body.len();
        let answer = self
            .client
            .send_body(
                Method::POST,
                &Self::attachments_path(id),
                reqwest::Body::wrap(body),
                &content_type,
                length,
                files::transfer_timeout(file.size),
            )
            .await?;
        let status = answer.status.as_u16();
        let v = answer.json("rest: uploaded attachment")?;
        parse(id, &v).map_err(|e| ConnectorError::Permanent {
            message: e.to_string(),
            status: Some(status),
        })
    }

    async fn upload_custom(
        &self,
        c: &RestAttachment,
        id: &str,
        file: &Upload<'_>,
    ) -> ConnectorResult<Attachment> {
        let u = &c.upload;
        let path = fill(&u.path, id, None);
        let timeout = files::transfer_timeout(files::base64_len(file.size));
        let answer = match u.encoding {
            AttachmentEncoding::Multipart => {
                let field = u.field.as_deref().unwrap_or("file");
                let (body, content_type) =
                    MultipartFile::open(file, field, &files::boundary()).await?;
                let length = body.len();
                self.client
                    .send_body(
                        method(u.method),
                        &path,
                        reqwest::Body::wrap(body),
                        &content_type,
                        length,
                        timeout,
                    )
                    .await?
            }
            AttachmentEncoding::Base64 => {
                let template = u.body.as_deref().ok_or_else(|| {
                    ConnectorError::permanent("rest: attachment.upload.body is not configured")
                })?;
                let (head, tail) = base64_frame(template, id, file)?;
                let body = Base64File::open(file, head, tail).await?;
                let length = body.len();
                self.client
                    .send_body(
                        method(u.method),
                        &path,
                        reqwest::Body::wrap(body),
                        "application/json",
                        length,
                        timeout,
                    )
                    .await?
            }
        };
        let status = answer.status.as_u16();
        let v = answer.json("rest: uploaded attachment")?;
        // The file was stored (a success status): an unreadable answer is permanent, and the
        // pending link lets the next reconcile adopt the file by its identity.
        let at = v.pointer(&u.attachment_pointer).ok_or_else(|| ConnectorError::Permanent {
            message: format!(
                "rest: the upload's answer has nothing at `{}` (attachment.upload.attachment_pointer)",
                u.attachment_pointer
            ),
            status: Some(status),
        })?;
        parse_custom(&c.list, id, at).map_err(|e| ConnectorError::Permanent {
            message: e.to_string(),
            status: Some(status),
        })
    }

    pub(super) async fn delete_attachment_impl(
        &self,
        id: &str,
        attachment_id: &str,
    ) -> ConnectorResult<()> {
        let id = Self::check_id(id)?;
        let att = Self::check_id(attachment_id)?;
        let (verb, path) = match self.custom_attachments() {
            Some(c) => {
                let d = c.delete.as_ref().ok_or_else(|| {
                    ConnectorError::permanent(
                        "rest: this system has no attachment.delete call: set the \
                         connection's attachment_deletes = \"keep\" or configure \
                         [connection.external.attachment.delete]",
                    )
                })?;
                (method(d.method), fill(&d.path, id, Some(att)))
            }
            None => (
                Method::DELETE,
                format!("{}/{}", Self::attachments_path(id), encode_component(att)),
            ),
        };
        match self.client.call(verb, &path, None).await {
            Ok(_)
            | Err(ConnectorError::Permanent {
                status: Some(404), ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A seed delivery with `event: "attachment_…"`: its one `Attached` event, keyed by the
    /// attachment and the change (a redelivery is a duplicate). `None` for any other event.
    pub(super) fn parse_seed_attachment(
        &self,
        connection: &str,
        v: &Value,
        now: DateTime<Utc>,
    ) -> Result<Option<ChangeEvent>, WebhookError> {
        let verb = match v.get("event").and_then(Value::as_str) {
            Some("attachment_created") => "created",
            Some("attachment_deleted") => "deleted",
            _ => return Ok(None),
        };
        let shape = |path: &str, message: &str| WebhookError::Shape {
            path: path.into(),
            message: message.into(),
        };
        let item_id = id_text(v.get("sourceIssueId")).ok_or_else(|| {
            shape(
                "/sourceIssueId",
                "sourceIssueId must be a non-empty string or a number",
            )
        })?;
        super::webhook::check_item_id(&item_id, "/sourceIssueId", "sourceIssueId")?;
        let att = v
            .get("attachment")
            .filter(|a| a.is_object())
            .ok_or_else(|| shape("/attachment", "missing attachment object"))?;
        let att_id = id_text(att.get("id")).ok_or_else(|| {
            shape(
                "/attachment/id",
                "the attachment id must be a non-empty string or a number",
            )
        })?;
        super::webhook::check_item_id(&att_id, "/attachment/id", "the attachment id")?;
        Ok(Some(ChangeEvent {
            connection: connection.to_string(),
            source: self.side,
            item_id,
            item_key: None,
            kind: ChangeKind::Attached,
            fields: BTreeMap::new(),
            needs_fetch: false,
            source_ts: now,
            idempotency_key: format!("{}:attachment:{att_id}:{verb}", self.side),
            origin: EventOrigin::Webhook,
            comment: None,
        }))
    }
}

impl RestConnector {
    /// A custom delivery with an attachment id at `webhook.attachment_id_pointer`: one
    /// `Attached` event for its item (the worker reconciles all the item's files, so the
    /// event name only keys the delivery). `None` for any other delivery.
    pub(super) fn parse_custom_attachment(
        &self,
        connection: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
        v: &Value,
        now: DateTime<Utc>,
    ) -> Result<Option<ChangeEvent>, WebhookError> {
        let Some(ptr) = self.webhook_attachment_pointer.as_deref() else {
            return Ok(None);
        };
        let att_id = match v.pointer(ptr) {
            None | Some(Value::Null) => return Ok(None),
            other => id_text(other).ok_or_else(|| WebhookError::Shape {
                path: ptr.into(),
                message: "the attachment id must be a non-empty string or a number".into(),
            })?,
        };
        super::webhook::check_item_id(&att_id, ptr, "the attachment id")?;
        let (item_id, _) = super::webhook::parse_id_only(
            v,
            &self.webhook_id_pointer,
            self.webhook_event_pointer.as_deref(),
        )?;
        let key = super::webhook::delivery_id(headers)
            .unwrap_or_else(|| hex::encode(sha2::Sha256::digest(body)));
        Ok(Some(ChangeEvent {
            connection: connection.to_string(),
            source: self.side,
            item_id,
            item_key: None,
            kind: ChangeKind::Attached,
            fields: BTreeMap::new(),
            needs_fetch: false,
            source_ts: now,
            idempotency_key: format!("{}:attachment:{att_id}:{key}", self.side),
            origin: EventOrigin::Webhook,
            comment: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_attachments_are_read_and_bad_hashes_are_unknown() {
        let a = parse(
            "EXT-1",
            &json!({"id": 7, "filename": "a.txt", "size": 3, "url": "/f/7",
                    "sha256": "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"}),
        )
        .unwrap();
        assert_eq!(a.id, "7");
        assert_eq!(
            a.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        let b = parse(
            "EXT-1",
            &json!({"id": "8", "filename": "b", "size": 1, "sha256": "nope"}),
        )
        .unwrap();
        assert_eq!(b.sha256, None, "an unreadable hash is unknown, not trusted");
        assert!(parse("EXT-1", &json!({"id": "9", "size": 1})).is_err());
    }

    #[test]
    fn custom_listings_are_read_by_pointer() {
        let l: AttachmentList = toml::from_str(
            "path = \"/t/{id}/files\"\nid_pointer = \"/file_id\"\nfilename_pointer = \"/name\"\n\
             size_pointer = \"/bytes\"\nsha256_pointer = \"/digest\"\n\
             content_type_pointer = \"/mime\"\nurl_pointer = \"/links/raw\"\n",
        )
        .unwrap();
        let a = parse_custom(
            &l,
            "7",
            &json!({"file_id": 12, "name": "a.png", "bytes": "3", "mime": "image/png",
                    "digest": "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
                    "links": {"raw": "/files/12/raw"}}),
        )
        .unwrap();
        assert_eq!(
            (a.id.as_str(), a.filename.as_str(), a.size),
            ("12", "a.png", 3)
        );
        assert_eq!(
            a.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(a.content_type.as_deref(), Some("image/png"));
        assert_eq!(a.url.as_deref(), Some("/files/12/raw"));
        let e = parse_custom(&l, "7", &json!({"file_id": 1, "name": "x"})).unwrap_err();
        assert!(e.to_string().contains("/bytes"), "{e}");
    }

    #[test]
    fn a_base64_frame_splits_at_the_content_and_escapes_the_name() {
        let up = Upload {
            filename: "a \"b\".txt",
            content_type: Some("text/plain"),
            size: 3,
            path: std::path::Path::new("/nonexistent"),
        };
        let (head, tail) = base64_frame(
            r#"{"upload": {"name": {{filename}}, "mime": {{content_type}}, "data": {{content}}, "n": {{size}}}}"#,
            "7",
            &up,
        )
        .unwrap();
        let whole = format!("{head}YWJj{tail}");
        let v: Value = serde_json::from_str(&whole).unwrap();
        assert_eq!(
            v,
            json!({"upload": {"name": "a \"b\".txt", "mime": "text/plain", "data": "YWJj", "n": 3}})
        );
    }
}
