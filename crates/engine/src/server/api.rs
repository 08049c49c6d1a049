//! `/api/v1/…`: links, events, dead letters, audit, conflicts, replay (the console at `/` is in `console`).
//!
//! Every route here needs `Authorization: Bearer <server.admin_token>`; without a configured
//! token they answer 401 and say how to set one, so a fresh install exposes nothing.

use super::{AppState, error};
use crate::store::{EventFilter, EventStatus, StoreResult};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    connection: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// `Some(rejection)` unless the request carries the admin token.
pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &state.admin_token else {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "the admin API is closed: set server.admin_token in the config and send it as a Bearer token",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if token.matches(p.as_bytes()) => None,
        Some(_) => Some(error(StatusCode::UNAUTHORIZED, "bad admin token")),
        None => Some(error(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <admin token>",
        )),
    }
}

fn parse_status(s: Option<&str>) -> Result<Option<EventStatus>, String> {
    match s {
        None => Ok(None),
        Some(s) => serde_json::from_value::<EventStatus>(json!(s))
            .map(Some)
            .map_err(|_| {
                format!("unknown status `{s}`: expected pending, leased, done, dead or ignored")
            }),
    }
}

fn store_error(e: impl std::fmt::Display) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}"))
}

impl ListQuery {
    /// The page size asked for: 100 unless given, 1000 at the most.
    fn limit(&self) -> u32 {
        self.limit.unwrap_or(100).min(1000)
    }
}

/// `{ "<key>": rows }` as JSON, or the store's error as 503.
fn store_json<T: Serialize>(key: &str, result: StoreResult<T>) -> Response {
    match result {
        Ok(rows) => axum::Json(json!({ key: rows })).into_response(),
        Err(e) => store_error(e),
    }
}

/// A list route: the admin token is checked first; only then does `query` run, and its rows go
/// out under `key`.
async fn authorized_list<T: Serialize, F: Future<Output = StoreResult<T>>>(
    state: &AppState,
    headers: &HeaderMap,
    key: &str,
    query: impl FnOnce() -> F,
) -> Response {
    if let Some(r) = authorize(state, headers) {
        return r;
    }
    store_json(key, query().await)
}

pub(super) async fn links(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let store = &state.engine.store;
    authorized_list(&state, &headers, "links", || {
        store.list_links(q.connection.as_deref(), q.limit(), q.offset.unwrap_or(0))
    })
    .await
}

pub(super) async fn events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Some(r) = authorize(&state, &headers) {
        return r;
    }
    let status = match parse_status(q.status.as_deref()) {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let filter = EventFilter {
        limit: q.limit(),
        connection: q.connection,
        status,
        ..EventFilter::default()
    };
    let events = state.engine.store.list_events(&filter).await;
    store_json(
        "events",
        events.map(|events| events.iter().map(event_json).collect::<Vec<_>>()),
    )
}

pub(super) async fn dead_letters(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let store = &state.engine.store;
    authorized_list(&state, &headers, "dead_letters", || {
        store.list_dead_letters(q.connection.as_deref(), q.limit())
    })
    .await
}

pub(super) async fn audit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let store = &state.engine.store;
    authorized_list(&state, &headers, "audit", || {
        store.list_audit(q.connection.as_deref(), q.limit())
    })
    .await
}

/// The conflicts the policy settled, newest first, with both values and the side kept.
pub(super) async fn conflicts(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let store = &state.engine.store;
    authorized_list(&state, &headers, "conflicts", || {
        store.list_conflicts(
            q.connection.as_deref(),
            None,
            q.limit(),
            q.offset.unwrap_or(0),
        )
    })
    .await
}

pub(super) async fn retry_event(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = authorize(&state, &headers) {
        return r;
    }
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("event id must be a number, got `{id}`"),
        );
    };
    match state.engine.store.retry_dead(Some(id), Utc::now()).await {
        Ok(0) => error(
            StatusCode::NOT_FOUND,
            format!("event {id} is not a dead letter"),
        ),
        Ok(n) => {
            state.engine.wake.notify_one();
            axum::Json(json!({ "status": "requeued", "events": n })).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// The JSON form of a queued event for the admin API and `tandem events list`.
pub fn event_json(q: &crate::store::QueuedEvent) -> serde_json::Value {
    json!({
        "id": q.id,
        "status": q.status,
        "connection": q.event.connection,
        "side": q.event.source,
        "item_id": q.event.item_id,
        "item_key": q.event.item_key,
        "kind": q.event.kind,
        "origin": q.event.origin,
        "fields": q.event.fields.keys().collect::<Vec<_>>(),
        "attempts": q.attempts,
        "next_attempt_at": q.next_attempt_at,
        "last_error": q.last_error,
        "received_at": q.received_at,
        "source_ts": q.event.source_ts,
    })
}
