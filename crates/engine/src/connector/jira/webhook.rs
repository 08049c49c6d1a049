//! Jira admin-webhook deliveries: signature check and payload shape (JIRA_FACTS §4).
//!
//! Jira signs a delivery with `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`
//! when the webhook has a secret. We verify over the raw bytes, before parsing, in constant
//! time. The payload is read into a small [`Delivery`] that keeps only what the connector
//! needs; which fields changed is decided later against the resolved mapping.

use crate::connector::WebhookError;
use crate::secret::Secret;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tandem_core::CommentChange;

/// The header carrying Jira's signature.
pub const SIGNATURE_HEADER: &str = "x-hub-signature";
/// Jira's delivery id, stable across retries.
pub const IDENTIFIER_HEADER: &str = "x-atlassian-webhook-identifier";

/// Checks `X-Hub-Signature` against `secret`.
pub fn verify_signature(
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), WebhookError> {
    let Some(raw) = headers.get(SIGNATURE_HEADER) else {
        return Err(WebhookError::Unauthorized(
            "missing X-Hub-Signature header: this webhook has a secret, so Jira must sign deliveries"
                .into(),
        ));
    };
    // A SHA-256 HMAC is 32 bytes; anything else is a malformed header, said as such rather
    // than as a wrong secret, so whoever set the webhook up knows which one to fix.
    let form = || {
        WebhookError::Unauthorized(
            "X-Hub-Signature is not of the form sha256=<64 hex digits>".into(),
        )
    };
    let hex_sig = raw
        .to_str()
        .ok()
        .and_then(|s| s.trim().strip_prefix("sha256="))
        .ok_or_else(form)?;
    let sig = hex::decode(hex_sig).map_err(|_| form())?;
    if sig.len() != 32 {
        return Err(form());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .map_err(|_| WebhookError::Unauthorized("webhook secret is unusable".into()))?;
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&sig).map_err(|_| {
        WebhookError::Unauthorized(
            "bad X-Hub-Signature: the body was not signed with the configured webhook secret"
                .into(),
        )
    })
}

/// The sha256 of a body, hex: the dedupe key when a delivery carries no id.
pub fn body_digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// What kind of delivery this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Created,
    Updated,
    /// `comment_created`, `comment_updated`, `comment_deleted`: the comment is in
    /// [`Delivery::comment`].
    Comment(CommentChange),
    /// `attachment_created` (`true`) or `attachment_deleted` (`false`): the attachment is in
    /// [`Delivery::attachment`].
    Attachment(bool),
    /// Anything we acknowledge but do not sync (deletions, unknown events).
    Ignored,
}

/// The comment a `comment_*` delivery is about.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveredComment {
    /// Jira's comment id (digits).
    pub id: String,
    /// The comment's `updated` (its `created` when never edited), as Jira wrote it.
    pub updated: Option<String>,
}

/// One changelog entry: Jira's `fieldId` (when sent) and `field` (a display name for custom
/// fields).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedField {
    pub field_id: Option<String>,
    pub field: Option<String>,
    /// The item's `from` and `to` (for the `attachment` field: the attachment ids removed and
    /// added).
    pub from: Option<String>,
    pub to: Option<String>,
}

/// The parts of a delivery the connector uses.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: EventType,
    pub issue_id: String,
    pub issue_key: String,
    /// `issue.fields`, in the v2 representation (wiki strings even on Cloud).
    pub fields: Map<String, Value>,
    /// `changelog.items`; empty when there is no changelog.
    pub changed: Vec<ChangedField>,
    /// `timestamp` in milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The comment of a `comment_*` delivery.
    pub comment: Option<DeliveredComment>,
    /// The attachment id of an `attachment_*` delivery.
    pub attachment: Option<String>,
}

fn shape(path: &str, message: impl Into<String>) -> WebhookError {
    WebhookError::Shape {
        path: path.to_string(),
        message: message.into(),
    }
}

/// An id that Jira sends as a string but that some tools send as a number.
fn id_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The characters a Jira issue id or key is made of (the connector's own `check_issue_ref`).
fn is_issue_ref(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Parses a delivery. `Ok(None)` for well-formed events we do not sync.
pub fn parse(body: &[u8]) -> Result<Option<Delivery>, WebhookError> {
    let v: Value = crate::connector::parse_json_body(body)?;
    let root = v
        .as_object()
        .ok_or_else(|| shape("", "the body must be a JSON object"))?;
    let event_name = match root.get("webhookEvent") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(shape("/webhookEvent", "webhookEvent must be a string")),
        None => {
            return Err(shape(
                "/webhookEvent",
                "missing webhookEvent: is this a Jira webhook?",
            ));
        }
    };
    let event = match event_name {
        "jira:issue_created" => EventType::Created,
        "jira:issue_updated" => EventType::Updated,
        "comment_created" => EventType::Comment(CommentChange::Created),
        "comment_updated" => EventType::Comment(CommentChange::Updated),
        "comment_deleted" => EventType::Comment(CommentChange::Deleted),
        "attachment_created" => EventType::Attachment(true),
        "attachment_deleted" => EventType::Attachment(false),
        _ => EventType::Ignored,
    };
    if let EventType::Attachment(_) = event {
        return attachment_delivery(root, event);
    }
    // Jira tells issue webhooks of a comment too: `jira:issue_updated` with
    // `issue_event_type_name` `issue_commented` (or `issue_comment_edited` / `_deleted`),
    // the comment and no changelog. The `comment_*` delivery is the one that counts; this
    // one changes no field, so it is acknowledged and dropped, never a second comment event.
    // One that does carry a changelog is read as an ordinary update.
    let comment_echo = matches!(
        root.get("issue_event_type_name").and_then(Value::as_str),
        Some("issue_commented" | "issue_comment_edited" | "issue_comment_deleted")
    );
    let has_changelog = root
        .get("changelog")
        .and_then(|c| c.get("items"))
        .and_then(Value::as_array)
        .is_some_and(|items| !items.is_empty());
    if event == EventType::Updated && comment_echo && !has_changelog {
        return Ok(None);
    }
    if event == EventType::Ignored {
        return Ok(None);
    }
    let issue = match root.get("issue") {
        Some(Value::Object(o)) => o,
        Some(_) => return Err(shape("/issue", "issue must be an object")),
        None => return Err(shape("/issue", "missing issue")),
    };
    let issue_id = id_string(issue.get("id"))
        .ok_or_else(|| shape("/issue/id", "issue.id must be a non-empty string or number"))?;
    let issue_key = match issue.get("key") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Err(shape("/issue/key", "issue.key must be a non-empty string")),
    };
    // Jira ids are digits and keys `ABC-12`. Anything else (quotes, JQL, NUL, a float) is
    // refused here, with its path, rather than queued to fail later as a dead letter, and
    // never reaches a URL, a JQL query or a store that rejects NUL (PostgreSQL text).
    if !is_issue_ref(&issue_id) {
        return Err(shape(
            "/issue/id",
            "issue.id must be a Jira issue id: letters, digits, `-` or `_`, at most 255 characters",
        ));
    }
    if !is_issue_ref(&issue_key) {
        return Err(shape(
            "/issue/key",
            "issue.key must be a Jira issue key: letters, digits, `-` or `_`, at most 255 characters",
        ));
    }
    let fields = match issue.get("fields") {
        Some(Value::Object(o)) => o.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(shape("/issue/fields", "issue.fields must be an object")),
    };
    let mut changed = Vec::new();
    match root.get("changelog") {
        None | Some(Value::Null) => {}
        Some(Value::Object(cl)) => match cl.get("items") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let Some(o) = item.as_object() else {
                        return Err(shape(
                            &format!("/changelog/items/{i}"),
                            "changelog items must be objects",
                        ));
                    };
                    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
                    let id_text = |k: &str| id_string(o.get(k));
                    changed.push(ChangedField {
                        field_id: text("fieldId"),
                        field: text("field"),
                        from: id_text("from"),
                        to: id_text("to"),
                    });
                }
            }
            Some(_) => {
                return Err(shape(
                    "/changelog/items",
                    "changelog.items must be an array",
                ));
            }
        },
        Some(_) => return Err(shape("/changelog", "changelog must be an object")),
    }
    let timestamp_ms = root.get("timestamp").and_then(Value::as_i64);
    let comment = match event {
        EventType::Comment(_) => Some(delivered_comment(root)?),
        _ => None,
    };
    Ok(Some(Delivery {
        event,
        issue_id,
        issue_key,
        fields,
        changed,
        timestamp_ms,
        comment,
        attachment: None,
    }))
}

/// An `attachment_*` delivery. Jira names the attachment, and the issue either as `issue`
/// or (as Jira Cloud sends it) only as the attachment's `issueId`; one that names no issue
/// is acknowledged and dropped: the `jira:issue_updated` Jira sends alongside (changelog
/// field `attachment`) and the poll both carry the change.
fn attachment_delivery(
    root: &Map<String, Value>,
    event: EventType,
) -> Result<Option<Delivery>, WebhookError> {
    let attachment = match root.get("attachment") {
        Some(Value::Object(o)) => o,
        Some(_) => return Err(shape("/attachment", "attachment must be an object")),
        None => return Err(shape("/attachment", "missing attachment")),
    };
    let id = id_string(attachment.get("id")).ok_or_else(|| {
        shape(
            "/attachment/id",
            "attachment.id must be a non-empty string or number",
        )
    })?;
    if !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(shape(
            "/attachment/id",
            "attachment.id must be a Jira attachment id: digits only",
        ));
    }
    let issue = root.get("issue").and_then(Value::as_object);
    let issue_id = issue
        .and_then(|i| id_string(i.get("id")))
        .or_else(|| id_string(attachment.get("issueId")));
    let Some(issue_id) = issue_id else {
        return Ok(None);
    };
    if !is_issue_ref(&issue_id) {
        return Err(shape(
            "/attachment/issueId",
            "the issue id must be a Jira issue id: letters, digits, `-` or `_`",
        ));
    }
    let issue_key = issue
        .and_then(|i| i.get("key"))
        .and_then(Value::as_str)
        .filter(|k| is_issue_ref(k))
        .unwrap_or_default()
        .to_string();
    let fields = issue
        .and_then(|i| i.get("fields"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok(Some(Delivery {
        event,
        issue_id,
        issue_key,
        fields,
        changed: Vec::new(),
        timestamp_ms: root.get("timestamp").and_then(Value::as_i64),
        comment: None,
        attachment: Some(id),
    }))
}

/// The `comment` of a `comment_*` delivery: its id (digits, as Jira's are) and `updated`.
fn delivered_comment(root: &Map<String, Value>) -> Result<DeliveredComment, WebhookError> {
    let comment = match root.get("comment") {
        Some(Value::Object(o)) => o,
        Some(_) => return Err(shape("/comment", "comment must be an object")),
        None => return Err(shape("/comment", "missing comment")),
    };
    let id = id_string(comment.get("id")).ok_or_else(|| {
        shape(
            "/comment/id",
            "comment.id must be a non-empty string or number",
        )
    })?;
    if id.len() > 20 || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(shape(
            "/comment/id",
            "comment.id must be a Jira comment id: digits only",
        ));
    }
    let updated = comment
        .get("updated")
        .or_else(|| comment.get("created"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(DeliveredComment { id, updated })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures() {
        let secret = Secret::new("wh-secret");
        let body = br#"{"webhookEvent":"x"}"#;
        let mut h = HeaderMap::new();
        let err = verify_signature(&secret, &h, body).unwrap_err();
        assert!(
            err.to_string().starts_with("missing X-Hub-Signature"),
            "{err}"
        );
        h.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&sign("wh-secret", body)).unwrap(),
        );
        verify_signature(&secret, &h, body).unwrap();
        h.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&sign("other", body)).unwrap(),
        );
        let err = verify_signature(&secret, &h, body).unwrap_err();
        assert!(err.to_string().starts_with("bad X-Hub-Signature"), "{err}");
        assert!(!err.to_string().contains("wh-secret"));
        h.insert(SIGNATURE_HEADER, HeaderValue::from_static("md5=abc"));
        assert!(matches!(
            verify_signature(&secret, &h, body),
            Err(WebhookError::Unauthorized(_))
        ));
    }

    #[test]
    fn shapes_name_their_path() {
        let path = |body: &str| match parse(body.as_bytes()) {
            Err(WebhookError::Shape { path, .. }) => path,
            other => panic!("{other:?}"),
        };
        assert!(matches!(parse(b"{nope"), Err(WebhookError::Malformed(_))));
        assert_eq!(path("[]"), "");
        assert_eq!(path("{}"), "/webhookEvent");
        assert_eq!(path(r#"{"webhookEvent":1}"#), "/webhookEvent");
        assert_eq!(path(r#"{"webhookEvent":"jira:issue_updated"}"#), "/issue");
        assert_eq!(
            path(r#"{"webhookEvent":"jira:issue_updated","issue":{"key":"A-1"}}"#),
            "/issue/id"
        );
        assert_eq!(
            path(r#"{"webhookEvent":"jira:issue_updated","issue":{"id":"1","key":7}}"#),
            "/issue/key"
        );
        assert_eq!(
            path(
                r#"{"webhookEvent":"jira:issue_updated","issue":{"id":1,"key":"A-1"},"changelog":{"items":[3]}}"#
            ),
            "/changelog/items/0"
        );
        assert_eq!(path(r#"{"webhookEvent":"comment_created"}"#), "/issue");
        assert_eq!(
            path(r#"{"webhookEvent":"comment_created","issue":{"id":"1","key":"A-1"}}"#),
            "/comment"
        );
        assert_eq!(
            path(
                r#"{"webhookEvent":"comment_updated","issue":{"id":"1","key":"A-1"},"comment":{"id":"1 OR 2"}}"#
            ),
            "/comment/id"
        );
        assert!(
            parse(br#"{"webhookEvent":"worklog_created"}"#)
                .unwrap()
                .is_none()
        );
    }
}
