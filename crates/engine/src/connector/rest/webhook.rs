//! Deliveries from a REST system: the bearer token check and the two payload shapes.
//!
//! `full` is the seed's `_externalData` (`{"sourceIssueId", "fields":[{"fieldId","value"}]}`),
//! read strictly so a sender learns exactly which path is wrong (`/fields/2/fieldId`).
//! `id_only` names an item (and perhaps an event) and leaves the values to a fetch.

use crate::connector::WebhookError;
use crate::secret::Secret;
use axum::http::HeaderMap;
use serde_json::Value;

/// Headers a sender may use to name a delivery; the first present wins. Each stays the same
/// when the sender redelivers: `Idempotency-Key` (GitLab, and the IETF draft),
/// `X-GitHub-Delivery` (GitHub's redeliver keeps it), `X-Zendesk-Webhook-Invocation-Id`
/// (Zendesk's retries of one invocation).
pub const DELIVERY_ID_HEADERS: [&str; 4] = [
    "x-delivery-id",
    "idempotency-key",
    "x-github-delivery",
    "x-zendesk-webhook-invocation-id",
];

/// Checks `Authorization: Bearer <token>` in constant time.
pub fn verify_bearer(token: &Secret, headers: &HeaderMap) -> Result<(), WebhookError> {
    let Some(raw) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(WebhookError::Unauthorized(
            "missing Authorization: Bearer token".into(),
        ));
    };
    let v = raw.as_bytes();
    // The scheme is case-insensitive (RFC 9110 §11.1). A header that is there but is not a
    // bearer token gets its own message: the sender's setup is wrong, not the token.
    let presented = (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer "))
        .then(|| v[7..].trim_ascii())
        .filter(|p| !p.is_empty());
    match presented {
        None => Err(WebhookError::Unauthorized(
            "Authorization must be `Bearer <token>`".into(),
        )),
        Some(p) if token.matches(p) => Ok(()),
        Some(_) => Err(WebhookError::Unauthorized("bad bearer token".into())),
    }
}

/// The delivery id a sender gave, if any.
pub fn delivery_id(headers: &HeaderMap) -> Option<String> {
    DELIVERY_ID_HEADERS.iter().find_map(|h| {
        headers
            .get(*h)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    })
}

fn shape(path: impl Into<String>, message: impl Into<String>) -> WebhookError {
    WebhookError::Shape {
        path: path.into(),
        message: message.into(),
    }
}

pub fn parse_json(body: &[u8]) -> Result<Value, WebhookError> {
    crate::connector::parse_json_body(body)
}

/// Longest item id accepted from a delivery. Real ids (numbers, UUIDs, `CASE-00123`,
/// Salesforce's 18 characters) are far shorter; a longer one is a mistake or an attack, and
/// would otherwise travel into URLs, JQL and every queue row.
pub const MAX_ID_CHARS: usize = 255;

/// Refuses ids that could not be a real item's: control characters (NUL is also refused by
/// PostgreSQL text columns, which would turn the delivery into a 503 retried forever) and
/// overlong ones. Quotes, spaces and JQL syntax are legal: ids are quoted wherever they go.
pub(super) fn check_item_id(id: &str, path: &str, what: &str) -> Result<(), WebhookError> {
    if id.chars().any(char::is_control) {
        return Err(shape(
            path,
            format!("{what} must not contain control characters"),
        ));
    }
    if id.chars().count() > MAX_ID_CHARS {
        return Err(shape(
            path,
            format!("{what} is longer than {MAX_ID_CHARS} characters"),
        ));
    }
    Ok(())
}

/// One field of an `_externalData` delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedField {
    /// The id as text (`123` and `"123"` are the same field).
    pub field_id: String,
    /// The value as sent: a string, a number, a boolean or null.
    pub value: Value,
}

/// An `_externalData` delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedDelivery {
    pub source_issue_id: String,
    pub fields: Vec<SeedField>,
}

/// Reads the seed's `_externalData`.
pub fn parse_seed(v: &Value) -> Result<SeedDelivery, WebhookError> {
    let obj = v
        .as_object()
        .ok_or_else(|| shape("", "the body must be a JSON object (_externalData)"))?;
    let source_issue_id = match obj.get("sourceIssueId") {
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
    check_item_id(&source_issue_id, "/sourceIssueId", "sourceIssueId")?;
    let list = match obj.get("fields") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(shape("/fields", "fields must be an array")),
        None => return Err(shape("/fields", "missing fields")),
    };
    let mut fields = Vec::with_capacity(list.len());
    for (i, f) in list.iter().enumerate() {
        let Some(o) = f.as_object() else {
            return Err(shape(
                format!("/fields/{i}"),
                "each field must be an object",
            ));
        };
        let field_id = match o.get("fieldId") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(_) => {
                return Err(shape(
                    format!("/fields/{i}/fieldId"),
                    "fieldId must be a number or a non-empty string",
                ));
            }
            None => return Err(shape(format!("/fields/{i}/fieldId"), "missing fieldId")),
        };
        let value = match o.get("value") {
            None => Value::Null,
            Some(v @ (Value::String(_) | Value::Null | Value::Number(_) | Value::Bool(_))) => {
                v.clone()
            }
            Some(_) => {
                return Err(shape(
                    format!("/fields/{i}/value"),
                    "value must be a string, number, boolean or null",
                ));
            }
        };
        fields.push(SeedField { field_id, value });
    }
    Ok(SeedDelivery {
        source_issue_id,
        fields,
    })
}

/// Reads an id-only delivery: the id at `id_pointer`, the event name at `event_pointer`.
pub fn parse_id_only(
    v: &Value,
    id_pointer: &str,
    event_pointer: Option<&str>,
) -> Result<(String, Option<String>), WebhookError> {
    let id = match v.pointer(id_pointer) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(shape(
                id_pointer,
                "the item id must be a non-empty string or a number",
            ));
        }
        None => return Err(shape(id_pointer, "missing item id")),
    };
    check_item_id(&id, id_pointer, "the item id")?;
    let event = event_pointer
        .and_then(|p| v.pointer(p))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((id, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    #[test]
    fn bearer_tokens() {
        let t = Secret::new("tok-123");
        let mut h = HeaderMap::new();
        assert_eq!(
            verify_bearer(&t, &h).unwrap_err().to_string(),
            "missing Authorization: Bearer token"
        );
        h.insert("authorization", HeaderValue::from_static("Bearer nope"));
        assert_eq!(
            verify_bearer(&t, &h).unwrap_err().to_string(),
            "bad bearer token"
        );
        h.insert("authorization", HeaderValue::from_static("bearer tok-123"));
        verify_bearer(&t, &h).unwrap();
        h.insert("authorization", HeaderValue::from_static("Basic tok-123"));
        assert_eq!(
            verify_bearer(&t, &h).unwrap_err().to_string(),
            "Authorization must be `Bearer <token>`"
        );
    }

    #[test]
    fn a_vendor_delivery_header_names_the_delivery() {
        let mut h = HeaderMap::new();
        assert_eq!(delivery_id(&h), None);
        h.insert(
            "x-github-delivery",
            HeaderValue::from_static("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        );
        assert_eq!(
            delivery_id(&h).as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        h.insert(
            "x-zendesk-webhook-invocation-id",
            HeaderValue::from_static("z-1"),
        );
        h.insert("idempotency-key", HeaderValue::from_static("  "));
        assert_eq!(
            delivery_id(&h).as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            "an empty header is passed over; the first present one wins"
        );
        h.insert("x-delivery-id", HeaderValue::from_static("d-9"));
        assert_eq!(delivery_id(&h).as_deref(), Some("d-9"));
    }

    #[test]
    fn seed_shapes_name_paths() {
        let path = |v: Value| match parse_seed(&v) {
            Err(WebhookError::Shape { path, .. }) => path,
            other => panic!("{other:?}"),
        };
        assert_eq!(path(json!([])), "");
        assert_eq!(path(json!({"fields": []})), "/sourceIssueId");
        assert_eq!(
            path(json!({"sourceIssueId": true, "fields": []})),
            "/sourceIssueId"
        );
        assert_eq!(path(json!({"sourceIssueId": "E-1"})), "/fields");
        assert_eq!(
            path(json!({"sourceIssueId": "E-1", "fields": [
                {"fieldId": 1, "value": "a"}, {"fieldId": 2, "value": "b"}, {"fieldId": [], "value": "c"}
            ]})),
            "/fields/2/fieldId"
        );
        assert_eq!(
            path(json!({"sourceIssueId": "E-1", "fields": [{"fieldId": 1, "value": {}}]})),
            "/fields/0/value"
        );
        let d =
            parse_seed(&json!({"sourceIssueId": 7, "fields": [{"fieldId": "12", "value": null}]}))
                .unwrap();
        assert_eq!(d.source_issue_id, "7");
        assert_eq!(d.fields[0].field_id, "12");
    }
}
