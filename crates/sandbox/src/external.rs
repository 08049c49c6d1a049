//! The external-system sandbox: the seed's example API (`/API/issue`, `_externalData`
//! bodies, Basic auth) with an item store, an `updatedSince` listing for pollers, and
//! outgoing webhooks (Bearer token, stable `X-Delivery-Id`) for every change.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::RecordedRequest;
use crate::faults::Faults;
use crate::net::{
    HttpLayer, RateWindow, RequestLog, Running, ct_eq, log_and_faults, rate_limited_response,
};
use crate::webhook::{Delivery, Dispatcher, RetryPolicy, new_delivery_id};

/// Settings of an external sandbox.
#[derive(Debug, Clone)]
pub struct ExternalSandboxConfig {
    /// Basic auth credentials the API accepts.
    pub username: String,
    pub password: String,
    /// Where change webhooks go (none: no webhooks).
    pub webhook_url: Option<String>,
    /// Sent as `Authorization: Bearer <token>` on webhooks.
    pub webhook_token: Option<String>,
    pub webhook_retry: RetryPolicy,
    /// Requests per second before answering 429 (None: unlimited).
    pub rate_limit_per_sec: Option<u32>,
}

impl Default for ExternalSandboxConfig {
    fn default() -> Self {
        Self {
            username: "external".into(),
            password: "external-secret".into(),
            webhook_url: None,
            webhook_token: None,
            webhook_retry: RetryPolicy::default(),
            rate_limit_per_sec: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Item {
    id: String,
    source_issue_id: String,
    updated: DateTime<Utc>,
    /// fieldId → (fieldName, value)
    fields: BTreeMap<u64, (String, String)>,
}

impl Item {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "sourceIssueId": self.source_issue_id,
            "updated": self.updated.to_rfc3339_opts(SecondsFormat::Millis, true),
            "fields": self.fields.iter().map(|(id, (name, value))| json!({
                "fieldId": id, "fieldName": name, "value": value,
            })).collect::<Vec<_>>(),
        })
    }
}

struct ExtState {
    items: BTreeMap<u64, Item>,
    next: u64,
    last_time: DateTime<Utc>,
    /// How far this system's clock runs ahead of the wall clock (see `advance_clock`).
    clock_offset: chrono::Duration,
    webhook_url: Option<String>,
    webhook_token: Option<String>,
    rate: RateWindow,
}

struct Inner {
    cfg: ExternalSandboxConfig,
    base: String,
    state: Mutex<ExtState>,
    dispatcher: Dispatcher,
    faults: Faults,
    log: RequestLog,
}

/// A field as parsed from an `_externalData` body.
struct FieldIn {
    id: u64,
    name: Option<String>,
    value: String,
}

/// Errors in the external system's own style: `{"error": "..."}`.
struct ExtError(StatusCode, String);

impl IntoResponse for ExtError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ExtError {
    ExtError(StatusCode::BAD_REQUEST, msg.into())
}
fn unprocessable(msg: impl Into<String>) -> ExtError {
    ExtError(StatusCode::UNPROCESSABLE_ENTITY, msg.into())
}

/// Parse an `_externalData` body: 400 for what is not that shape at all, 422 for a field
/// whose id is not numeric or whose value is not a string.
/// `(field id, value)` pairs as a person's edit sends them: by id, without names.
fn user_fields(fields: Vec<(u64, String)>) -> Vec<FieldIn> {
    fields
        .into_iter()
        .map(|(id, value)| FieldIn {
            id,
            name: None,
            value,
        })
        .collect()
}

fn parse_body(bytes: &Bytes) -> Result<(Option<String>, Vec<FieldIn>), ExtError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("malformed JSON body: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("body must be a JSON object"))?;
    let source = match obj.get("sourceIssueId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(bad("sourceIssueId must be a string")),
    };
    let list = match obj.get("fields") {
        Some(Value::Array(a)) => a,
        None => return Err(bad("missing 'fields' array")),
        Some(_) => return Err(bad("'fields' must be an array")),
    };
    let mut out = Vec::new();
    for (i, f) in list.iter().enumerate() {
        let f = f
            .as_object()
            .ok_or_else(|| bad(format!("fields[{i}] must be an object")))?;
        let id = match f.get("fieldId") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| unprocessable(format!("fields[{i}].fieldId must be numeric")))?;
        let value = match f.get("value") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(_) => {
                return Err(unprocessable(format!("fields[{i}].value must be a string")));
            }
        };
        let name = f
            .get("fieldName")
            .and_then(Value::as_str)
            .map(str::to_string);
        out.push(FieldIn { id, name, value });
    }
    Ok((source, out))
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, ExtState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Create or update; returns the item id. Only fields whose value changed go into the
    /// webhook, and an update that changes nothing sends none.
    fn upsert(
        &self,
        id: Option<&str>,
        source: Option<String>,
        fields: Vec<FieldIn>,
    ) -> Option<String> {
        let mut st = self.lock();
        let n = match id {
            Some(id) => {
                let n = id.strip_prefix("EXT-")?.parse::<u64>().ok()?;
                st.items.contains_key(&n).then_some(n)?
            }
            None => {
                st.next += 1;
                let n = st.next;
                let at = st.last_time;
                st.items.insert(
                    n,
                    Item {
                        id: format!("EXT-{n}"),
                        source_issue_id: source.clone().unwrap_or_default(),
                        updated: at,
                        fields: BTreeMap::new(),
                    },
                );
                n
            }
        };
        let creating = id.is_none();
        let now = {
            let now = chrono::SubsecRound::trunc_subsecs(Utc::now() + st.clock_offset, 3);
            let t = if now > st.last_time {
                now
            } else {
                st.last_time + chrono::Duration::milliseconds(1)
            };
            st.last_time = t;
            t
        };
        let item = st.items.get_mut(&n)?;
        let mut changed = Vec::new();
        for f in fields {
            let name = f
                .name
                .or_else(|| item.fields.get(&f.id).map(|(n, _)| n.clone()))
                .unwrap_or_else(|| format!("field{}", f.id));
            let old = item.fields.get(&f.id).map(|(_, v)| v.as_str());
            if old != Some(f.value.as_str()) {
                item.fields.insert(f.id, (name.clone(), f.value.clone()));
                changed.push(json!({ "fieldName": name, "fieldId": f.id, "value": f.value }));
            }
        }
        if let Some(s) = source {
            item.source_issue_id = s;
        }
        if creating || !changed.is_empty() {
            item.updated = now;
        }
        let item_id = item.id.clone();
        if (creating || !changed.is_empty())
            && let Some(url) = st.webhook_url.clone()
        {
            let body = json!({ "sourceIssueId": item_id, "fields": changed });
            let mut headers = vec![("X-Delivery-Id".to_string(), new_delivery_id())];
            if let Some(t) = &st.webhook_token {
                headers.push(("Authorization".to_string(), format!("Bearer {t}")));
            }
            self.dispatcher.send(Delivery {
                key: item_id.clone(),
                url,
                headers,
                retry_header: None,
                body: serde_json::to_vec(&body).unwrap_or_default(),
            });
        }
        Some(item_id)
    }
}

type S = Arc<Inner>;

fn router(inner: S) -> Router {
    Router::new()
        .route("/API/issue", post(create))
        .route("/API/issue/{id}", post(update).get(fetch))
        .route("/API/issues", get(list))
        .fallback(|| async { ExtError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(inner.clone(), auth_and_rate))
        .layer(middleware::from_fn_with_state(
            HttpLayer {
                log: inner.log.clone(),
                faults: inner.faults.clone(),
            },
            log_and_faults,
        ))
        .with_state(inner)
}

async fn auth_and_rate(State(inner): State<S>, req: Request, next: Next) -> Response {
    if !authorized(&inner.cfg, req.headers()) {
        let mut resp = ExtError(
            StatusCode::UNAUTHORIZED,
            "missing or invalid credentials".into(),
        )
        .into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"external\""),
        );
        return resp;
    }
    if let Some(limit) = inner.cfg.rate_limit_per_sec {
        let admitted = inner.lock().rate.admit(limit);
        if !admitted {
            return rate_limited_response();
        }
    }
    next.run(req).await
}

fn authorized(cfg: &ExternalSandboxConfig, headers: &HeaderMap) -> bool {
    let Some(b64) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    ct_eq(
        &decoded,
        format!("{}:{}", cfg.username, cfg.password).as_bytes(),
    )
}

fn not_found(id: &str) -> ExtError {
    ExtError(StatusCode::NOT_FOUND, format!("issue {id} not found"))
}

async fn create(State(inner): State<S>, body: Bytes) -> Result<Response, ExtError> {
    let (source, fields) = parse_body(&body)?;
    let id = inner
        .upsert(None, source, fields)
        .ok_or_else(|| ExtError(StatusCode::INTERNAL_SERVER_ERROR, "create failed".into()))?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response())
}

async fn update(
    State(inner): State<S>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ExtError> {
    let (source, fields) = parse_body(&body)?;
    let id = inner
        .upsert(Some(&id), source, fields)
        .ok_or_else(|| not_found(&id))?;
    Ok((StatusCode::OK, axum::Json(json!({ "id": id }))).into_response())
}

fn item_number(id: &str) -> Option<u64> {
    id.strip_prefix("EXT-")?.parse().ok()
}

async fn fetch(State(inner): State<S>, Path(id): Path<String>) -> Result<Response, ExtError> {
    let st = inner.lock();
    let item = item_number(&id)
        .and_then(|n| st.items.get(&n))
        .ok_or_else(|| not_found(&id))?;
    Ok(axum::Json(item.json()).into_response())
}

async fn list(
    State(inner): State<S>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ExtError> {
    let since = match q.iter().find(|(k, _)| k == "updatedSince") {
        Some((_, v)) => Some(
            DateTime::parse_from_rfc3339(v)
                .map_err(|_| {
                    bad(format!(
                        "updatedSince must be an RFC 3339 timestamp, got {v:?}"
                    ))
                })?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let st = inner.lock();
    let mut items: Vec<&Item> = st
        .items
        .values()
        .filter(|i| since.is_none_or(|s| i.updated >= s))
        .collect();
    items.sort_by(|a, b| a.updated.cmp(&b.updated).then(a.id.cmp(&b.id)));
    let list: Vec<Value> = items.iter().map(|i| i.json()).collect();
    Ok(axum::Json(json!({ "issues": list })).into_response())
}

/// A running external-system sandbox.
pub struct ExternalSandbox {
    inner: Arc<Inner>,
    server: Running,
}

impl ExternalSandbox {
    /// Start on a free loopback port.
    pub async fn start(cfg: ExternalSandboxConfig) -> anyhow::Result<ExternalSandbox> {
        Self::start_on(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Start on `addr`.
    pub async fn start_on(
        cfg: ExternalSandboxConfig,
        addr: SocketAddr,
    ) -> anyhow::Result<ExternalSandbox> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let faults = Faults::new();
        let inner = Arc::new(Inner {
            state: Mutex::new(ExtState {
                items: BTreeMap::new(),
                next: 0,
                last_time: chrono::SubsecRound::trunc_subsecs(Utc::now(), 3),
                clock_offset: chrono::Duration::zero(),
                webhook_url: cfg.webhook_url.clone(),
                webhook_token: cfg.webhook_token.clone(),
                rate: RateWindow::default(),
            }),
            dispatcher: Dispatcher::start(cfg.webhook_retry.clone(), faults.clone()),
            cfg,
            base,
            faults,
            log: RequestLog::default(),
        });
        let server = crate::net::serve(router(inner.clone()), listener)?;
        Ok(ExternalSandbox { inner, server })
    }

    pub fn url(&self) -> String {
        self.inner.base.clone()
    }

    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    pub fn config(&self) -> &ExternalSandboxConfig {
        &self.inner.cfg
    }

    /// An item as `GET /API/issue/{id}` returns it.
    pub fn item(&self, id: &str) -> Option<Value> {
        let st = self.inner.lock();
        item_number(id)
            .and_then(|n| st.items.get(&n))
            .map(Item::json)
    }

    /// All items, oldest first.
    pub fn items(&self) -> Vec<Value> {
        self.inner.lock().items.values().map(Item::json).collect()
    }

    pub fn request_log(&self) -> Vec<RecordedRequest> {
        self.inner.log.snapshot()
    }

    /// The requests received from the `start`-th on (see [`Self::request_count`]).
    pub fn requests_since(&self, start: usize) -> Vec<RecordedRequest> {
        self.inner.log.since(start)
    }

    /// How many requests were received so far, without copying the log.
    pub fn request_count(&self) -> usize {
        self.inner.log.len()
    }

    /// Moves this system's clock ahead of the wall clock by `by` (on top of earlier moves):
    /// the `updated` times it gives from now on are that much later, as on a host whose
    /// clock runs ahead of Tandem's.
    pub fn advance_clock(&self, by: std::time::Duration) {
        let mut st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero());
        st.clock_offset = st.clock_offset.checked_add(&by).unwrap_or(st.clock_offset);
    }

    /// Create an item as a person using the external system would; sends the webhook.
    pub fn user_create(&self, fields: Vec<(u64, String)>) -> String {
        self.inner
            .upsert(None, None, user_fields(fields))
            .unwrap_or_default()
    }

    /// Edit an item as a person would; sends the webhook if anything changed. Returns false
    /// if there is no such item.
    pub fn user_edit(&self, id: &str, fields: Vec<(u64, String)>) -> bool {
        self.inner
            .upsert(Some(id), None, user_fields(fields))
            .is_some()
    }

    /// Point webhooks somewhere else (or set the token) at runtime.
    pub fn set_webhook(&self, url: &str, token: Option<&str>) {
        let mut st = self.inner.lock();
        st.webhook_url = Some(url.to_string());
        st.webhook_token = token.map(str::to_string);
    }

    pub async fn shutdown(self) {
        self.server.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_are_400_or_422() {
        let status = |b: &str| {
            parse_body(&Bytes::from(b.to_string()))
                .err()
                .map(|e| e.0.as_u16())
        };
        assert_eq!(status("{"), Some(400));
        assert_eq!(status("[]"), Some(400));
        assert_eq!(status(r#"{"fields":3}"#), Some(400));
        assert_eq!(
            status(r#"{"fields":[{"fieldId":"abc","value":"x"}]}"#),
            Some(422)
        );
        assert_eq!(status(r#"{"fields":[{"fieldId":1,"value":5}]}"#), Some(422));
        assert_eq!(status(r#"{"fields":[{"fieldId":"12","value":"x"}]}"#), None);
    }
}
