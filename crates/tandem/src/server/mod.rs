//! The HTTP side of `tandem serve`: webhook receivers, health, metrics, admin API, console.
//!
//! [`router`] builds the whole axum application from shared state, so tests can drive it
//! over a real socket or call it directly. Receivers answer as soon as an event is durably
//! queued (`202`); all remote work happens later in the workers.

pub mod api;
mod console;
mod webhooks;

use crate::secret::Secret;
use crate::worker::Engine;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::Arc;

/// State shared by every handler.
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Largest accepted webhook body, in bytes (`server.max_body_bytes`).
    pub max_body_bytes: usize,
    /// Bearer token for `/api/v1` and the console's sign-in; without one those stay closed.
    pub admin_token: Option<Secret>,
    /// Renders `/metrics`; `None` when no recorder is installed (tests).
    pub metrics: Option<PrometheusHandle>,
}

/// The whole HTTP application.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhooks/{connection}/{side}", post(webhooks::receive))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/links", get(api::links))
        .route("/api/v1/events", get(api::events))
        .route("/api/v1/events/{id}/retry", post(api::retry_event))
        .route("/api/v1/dead-letters", get(api::dead_letters))
        .route("/api/v1/audit", get(api::audit))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        // The operator console: `/`, `/login`, `/links`, `/events`, `/audit`, `/console/…`.
        .merge(console::router(state))
}

/// A JSON error body `{"error": ...}` with the given status.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such route; webhooks go to POST /webhooks/{connection}/{side}",
    )
}

/// axum's own 405 has an empty body; every error here is JSON that says what to do.
async fn method_not_allowed(method: axum::http::Method) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not allowed on this route: webhooks take POST, health, metrics and the admin API take GET (retry takes POST)"
        ),
    )
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// Ready when the store answers: without it no webhook could be accepted.
async fn readyz(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Response {
    match state.engine.store.ping().await {
        Ok(()) => axum::Json(json!({ "status": "ready", "store": state.engine.store.backend() }))
            .into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unreachable: {e}"),
        ),
    }
}

async fn metrics(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Response {
    // Queue depth is read at scrape time so the gauge is never stale.
    if let Ok(depths) = state.engine.store.queue_depth().await {
        for (connection, status, count) in depths {
            metrics::gauge!("tandem_queue_depth", "connection" => connection, "status" => format!("{status:?}").to_lowercase())
                .set(count as f64);
        }
    }
    match &state.metrics {
        Some(handle) => (
            [("content-type", "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process",
        ),
    }
}
