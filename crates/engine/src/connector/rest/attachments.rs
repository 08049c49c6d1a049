//! Attachments of a REST system, in the seed's format: `GET {base}/API/issue/{id}/attachments`
//! lists `[{"id", "filename", "size", "sha256", "url", "contentType"?}]`, `POST` there uploads
//! one (multipart field `file`) and answers it, a `GET` of its `url` downloads the content,
//! `DELETE {base}/API/issue/{id}/attachments/{attId}` removes it; webhooks `{"event":
//! "attachment_created"|"attachment_deleted", "sourceIssueId": <item id>, "attachment": {…}}`.
//!
//! The listing's `sha256` spares the worker a download to learn a file's identity; a system
//! whose listing lacks it still works (the worker hashes the file).

use super::client::encode_component;
use super::{RestConnector, id_text};
use crate::connector::files::{self, Download, MultipartFile, ResponseBody, Upload};
use crate::connector::{ConnectorError, ConnectorResult, WebhookError};
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use tandem_core::attachment::Attachment;
use tandem_core::{ChangeEvent, ChangeKind, EventOrigin};

/// A `sha256` as the store keeps it: 64 lower-case hex digits, else unknown.
fn sha256_of(v: Option<&Value>) -> Option<String> {
    let s = v?.as_str()?.trim().to_ascii_lowercase();
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

impl RestConnector {
    fn attachments_path(id: &str) -> String {
        format!("/API/issue/{}/attachments", encode_component(id))
    }

    pub(super) async fn list_attachments_impl(&self, id: &str) -> ConnectorResult<Vec<Attachment>> {
        let id = Self::check_id(id)?;
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
        let url = match &a.url {
            Some(u) => u.clone(),
            None => format!(
                "{}/{}/content",
                Self::attachments_path(id),
                encode_component(&a.id)
            ),
        };
        let resp = self
            .client
            .download(&url, files::transfer_timeout(a.size))
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

    pub(super) async fn delete_attachment_impl(
        &self,
        id: &str,
        attachment_id: &str,
    ) -> ConnectorResult<()> {
        let id = Self::check_id(id)?;
        let att = Self::check_id(attachment_id)?;
        let path = format!("{}/{}", Self::attachments_path(id), encode_component(att));
        match self.client.call(Method::DELETE, &path, None).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
