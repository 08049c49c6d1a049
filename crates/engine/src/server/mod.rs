//! The HTTP side of `tandem serve`: webhook receivers, health, metrics, admin API, console.
//!
//! [`router`] builds the whole axum application from shared state, so tests can drive it
//! over a real socket or call it directly. Receivers answer as soon as an event is durably
//! queued (`202`); all remote work happens later in the workers. [`connections`] serves it
//! over TCP with the timeouts and the connection cap of `[server]`.

pub mod api;
pub mod connections;
mod console;
mod webhooks;

pub use console::{SIGNIN_LINK_MINUTES, SigninLinks};

use crate::secret::Secret;
use crate::worker::Engine;
use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// State shared by every handler.
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Largest accepted webhook body, in bytes (`server.max_body_bytes`).
    pub max_body_bytes: usize,
    /// Longest wait for a body once its header has arrived (`server.body_read_timeout`).
    pub body_read_timeout: Duration,
    /// Bearer token for `/api/v1` and the console's sign-in; without one those stay closed.
    pub admin_token: Option<Secret>,
    /// People who sign in to the console with tokens of their own (`server.console_users`).
    pub console_users: Vec<crate::config::ConsoleUser>,
    /// Renders `/metrics`; `None` when no recorder is installed (tests).
    pub metrics: Option<PrometheusHandle>,
    /// The console's one-time sign-in links (`/signin?once=…`, what `tandem demo` prints).
    pub signin_links: Arc<SigninLinks>,
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
        .route("/api/v1/conflicts", get(api::conflicts))
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

/// Reads a request body whole, within `server.max_body_bytes` and `server.body_read_timeout`.
/// Every handler that reads a body goes through here, so no client can hold a connection by
/// promising a body it never sends. On `Err` the answer is ready to return.
pub(crate) async fn read_body(state: &AppState, body: Body) -> Result<Bytes, Response> {
    let limit = state.max_body_bytes;
    match tokio::time::timeout(state.body_read_timeout, to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(too_large(limit)),
        Err(_) => {
            metrics::counter!("tandem_http_timeouts_total", "phase" => "body").increment(1);
            let mut answer = error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive in full within {:?} (server.body_read_timeout)",
                    state.body_read_timeout
                ),
            );
            // The rest of the body may still come; the connection cannot be reused.
            answer
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(answer)
        }
    }
}

pub(crate) fn too_large(limit: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than the limit of {limit} bytes (server.max_body_bytes)"),
    )
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
    // So is whether creating is stopped on each side (a create's answer could not be read).
    if let Ok(open) = state.engine.store.create_circuits().await {
        for name in state.engine.connections.keys() {
            for side in [tandem_core::Side::Jira, tandem_core::Side::External] {
                let is_open = open.iter().any(|c| &c.connection == name && c.side == side);
                metrics::gauge!("tandem_create_circuit_open", "connection" => name.clone(), "side" => side.to_string())
                    .set(if is_open { 1.0 } else { 0.0 });
            }
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
