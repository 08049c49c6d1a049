//! Jira attachments: the issue's `attachment` field read into core's [`Attachment`]s, the
//! content streamed from the attachment's `content` URL, uploads as `POST
//! /rest/api/N/issue/{key}/attachments` (multipart field `file`, `X-Atlassian-Token:
//! no-check`) and deletes as `DELETE /rest/api/N/attachment/{id}`.
//!
//! Jira does not say what a file holds (no hash in the listing): the worker hashes the
//! unlinked ones it needs to know (see `tandem_core::attachment::needs_hash`).

use super::client::JiraClient;
use crate::connector::files::{self, Download, MultipartFile, ResponseBody, Upload};
use crate::connector::http::quote;
use crate::connector::{ConnectorError, ConnectorResult};
use serde_json::Value;
use tandem_core::attachment::Attachment;

/// Jira attachment ids are numbers; anything else is refused before it reaches a URL.
pub fn check_attachment_id(id: &str) -> ConnectorResult<&str> {
    if !id.is_empty() && id.len() <= 20 && id.chars().all(|c| c.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(ConnectorError::permanent(format!(
            "jira: `{}` is not an attachment id",
            quote(id)
        )))
    }
}

/// Reads one `Attachment` bean.
pub fn parse(v: &Value) -> Result<Attachment, String> {
    let id = match v.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("an attachment without an id".into()),
    };
    let filename = v
        .get("filename")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty())
        .ok_or_else(|| format!("attachment {id} has no filename"))?
        .to_string();
    let size = v
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("attachment {id} has no size"))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(Attachment {
        id,
        filename,
        size,
        sha256: None,
        content_type: text("mimeType"),
        url: text("content"),
    })
}

/// Every attachment of issue `id`.
pub async fn list(client: &JiraClient, id: &str) -> ConnectorResult<Vec<Attachment>> {
    let issue = client.issue_attachments(id).await?;
    let list = match issue.get("fields").and_then(|f| f.get("attachment")) {
        Some(Value::Array(l)) => l.as_slice(),
        // Attachments turned off on the site: the field is absent.
        None | Some(Value::Null) => &[],
        Some(_) => {
            return Err(ConnectorError::permanent(format!(
                "jira: issue {id}: the attachment field is not a list"
            )));
        }
    };
    list.iter()
        .map(|a| {
            parse(a).map_err(|e| {
                ConnectorError::permanent(format!("jira: issue {id}: unreadable attachment: {e}"))
            })
        })
        .collect()
}

/// The content of `a`, streamed.
pub async fn download(client: &JiraClient, a: &Attachment) -> ConnectorResult<Download> {
    let id = check_attachment_id(&a.id)?;
    let resp = client
        .attachment_content(id, a.url.as_deref(), files::transfer_timeout(a.size))
        .await?;
    Ok(ResponseBody::boxed(resp, format!("jira: attachment {id}")))
}

/// Attaches `file` to issue `id`; answers the new attachment.
pub async fn upload(
    client: &JiraClient,
    id: &str,
    file: &Upload<'_>,
) -> ConnectorResult<Attachment> {
    let (body, content_type) = MultipartFile::open(file, "file", &files::boundary()).await?;
    let length = body.len();
    let answer = client
        .add_attachment(
            id,
            reqwest::Body::wrap(body),
            &content_type,
            length,
            files::transfer_timeout(file.size),
        )
        .await?;
    let first =
        answer
            .as_array()
            .and_then(|l| l.first())
            .ok_or_else(|| ConnectorError::Permanent {
                message: format!("jira: issue {id}: the upload answer lists no attachment"),
                status: Some(200),
            })?;
    parse(first).map_err(|e| ConnectorError::Permanent {
        message: format!("jira: issue {id}: unreadable uploaded attachment: {e}"),
        status: Some(200),
    })
}

/// Deletes attachment `attachment_id`; one already gone is success.
pub async fn delete(client: &JiraClient, attachment_id: &str) -> ConnectorResult<()> {
    match client
        .delete_attachment(check_attachment_id(attachment_id)?)
        .await
    {
        Err(ConnectorError::Permanent {
            status: Some(404), ..
        }) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::webhook::{self, EventType};
    use super::*;
    use serde_json::json;

    #[test]
    fn attachment_beans_and_deliveries_are_read() {
        let a = parse(&json!({
            "id": "10001", "filename": "a.png", "size": 12, "mimeType": "image/png",
            "content": "https://x.atlassian.net/rest/api/3/attachment/content/10001"
        }))
        .unwrap();
        assert_eq!(
            (a.id.as_str(), a.size, a.sha256.as_deref()),
            ("10001", 12, None)
        );
        assert_eq!(a.content_type.as_deref(), Some("image/png"));
        assert!(parse(&json!({"id": "1", "size": 3})).is_err());
        assert!(check_attachment_id("10001").is_ok());
        assert!(check_attachment_id("../1").is_err());

        // `attachment_created` naming its issue in `issueId`.
        let body = json!({"webhookEvent": "attachment_created", "timestamp": 1,
                          "attachment": {"id": "10001", "issueId": "10000"}});
        let d = webhook::parse(body.to_string().as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(d.event, EventType::Attachment(true));
        assert_eq!(
            (d.issue_id.as_str(), d.attachment.as_deref()),
            ("10000", Some("10001"))
        );
        // Naming no issue: acknowledged, dropped (the issue_updated alongside carries it).
        let body = json!({"webhookEvent": "attachment_deleted", "attachment": {"id": 7}});
        assert!(
            webhook::parse(body.to_string().as_bytes())
                .unwrap()
                .is_none()
        );
        // A malformed one is refused with its path.
        let body = json!({"webhookEvent": "attachment_created", "attachment": {"id": "x/y"}});
        match webhook::parse(body.to_string().as_bytes()) {
            Err(crate::connector::WebhookError::Shape { path, .. }) => {
                assert_eq!(path, "/attachment/id")
            }
            other => panic!("{other:?}"),
        }
        // The changelog of an issue update names the file added.
        let body = json!({"webhookEvent": "jira:issue_updated",
            "issue": {"id": "10000", "key": "TEST-1", "fields": {}},
            "changelog": {"items": [{"fieldId": "attachment", "from": null, "to": "10001"}]}});
        let d = webhook::parse(body.to_string().as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(d.changed[0].to.as_deref(), Some("10001"));
    }
}
