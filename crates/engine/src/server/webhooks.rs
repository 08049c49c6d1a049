//! `POST /webhooks/{connection}/{side}`: verify, parse, durably enqueue, answer fast.
//!
//! Status codes are the contract of DESIGN §1: `202` once every event is queued, `200` for a
//! delivery already seen (or one that changes nothing we sync), `400` malformed JSON, `401`
//! bad credentials, `404` unknown connection or side, `413` too large, `415` not JSON,
//! `422` wrong shape (naming the JSON path). No remote call happens here.

use super::{AppState, error, read_body, too_large};
use crate::connector::WebhookError;
use crate::store::Enqueued;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tandem_core::Side;
use tracing::{info, warn};

/// Longest wait for the store to take one event before the delivery is answered `503`.
/// A store that is gone does not always fail fast: PostgreSQL's pool keeps trying to connect
/// for its whole acquire timeout (10 s), and a sender that gives up first (Jira's own timeout
/// is about as long) sees no answer at all instead of "retry later". Answering `503` while
/// the write may still land is safe: the retried delivery has the same id and is answered
/// `200` as a duplicate if it did.
const STORE_WAIT: Duration = Duration::from_secs(3);

pub(super) async fn receive(
    State(state): State<Arc<AppState>>,
    Path((connection, side)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(conn) = state.engine.connections.get(&connection) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown connection `{}`", truncate(&connection)),
        );
    };
    let Ok(side) = side.parse::<Side>() else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "unknown side `{}`: expected `jira` or `external`",
                truncate(&side)
            ),
        );
    };
    let labels = [
        ("connection", connection.clone()),
        ("side", side.to_string()),
    ];

    // Declared size first, so an oversized body is refused before it is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes) {
        return too_large(state.max_body_bytes);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json(content_type) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "expected Content-Type: application/json, got `{}`",
                if content_type.is_empty() {
                    "(none)"
                } else {
                    truncate(content_type)
                }
            ),
        );
    }
    let bytes = match read_body(&state, body).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };

    let events = match conn
        .side(side)
        .parse_webhook(&connection, &headers, &bytes, Utc::now())
    {
        Ok(events) => events,
        Err(e) => {
            metrics::counter!("tandem_webhooks_rejected_total", &labels).increment(1);
            warn!(connection = %connection, side = %side, error = %e, "webhook refused");
            return match e {
                WebhookError::Unauthorized(m) => error(StatusCode::UNAUTHORIZED, m),
                WebhookError::Malformed(m) => error(StatusCode::BAD_REQUEST, m),
                WebhookError::Shape { path, message } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({ "error": message, "path": path })),
                )
                    .into_response(),
            };
        }
    };
    if events.is_empty() {
        return (
            StatusCode::OK,
            axum::Json(
                json!({ "status": "ignored", "reason": "the delivery changes no mapped field" }),
            ),
        )
            .into_response();
    }

    let mut queued = Vec::new();
    let mut duplicates = Vec::new();
    for event in &events {
        metrics::counter!("tandem_events_received_total", &labels).increment(1);
        // Events about a linked item share the link's ordering key, so both sides of one
        // link are applied in order; unlinked items are keyed by themselves.
        let enqueued = tokio::time::timeout(
            STORE_WAIT,
            crate::queueing::enqueue(state.engine.store.as_ref(), event, Utc::now()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(crate::store::StoreError::Db(format!(
                "the store did not answer within {}s",
                STORE_WAIT.as_secs()
            )))
        });
        match enqueued {
            Ok(Enqueued::New(id)) => queued.push(id),
            Ok(Enqueued::Duplicate(id)) => duplicates.push(id),
            Err(e) => {
                warn!(error = %e, "could not enqueue a webhook event");
                // Nothing was accepted for this event: the sender must retry.
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store is unavailable; retry later",
                );
            }
        }
    }
    if queued.is_empty() {
        metrics::counter!("tandem_webhooks_duplicate_total", &labels).increment(1);
        return (
            StatusCode::OK,
            axum::Json(json!({ "status": "duplicate", "events": duplicates })),
        )
            .into_response();
    }
    state.engine.wake.notify_one();
    info!(connection = %connection, side = %side, events = ?queued, "webhook accepted");
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "status": "queued", "events": queued, "duplicates": duplicates })),
    )
        .into_response()
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Echoes at most 80 characters of a caller's input back in an error.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
