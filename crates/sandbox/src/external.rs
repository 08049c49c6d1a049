//! The external-system sandbox: the seed's example API (`/API/issue`, `_externalData`
//! bodies, Basic auth) with an item store, an `updatedSince` listing for pollers, and
//! outgoing webhooks (Bearer token, stable `X-Delivery-Id`) for every change.
//!
//! The same items are also served the way Redmine's REST API serves issues (`/issues.json`,
//! `/issues/{id}.json`, each field a custom field, `updated_on` in whole seconds), for the
//! generic connector's `format = "custom"`. Like Redmine, its listing filter
//! `updated_on=>=…` refuses a time with fractional seconds: `422 {"errors":["Updated is
//! invalid"]}`.
//!
//! Items have comments (`/API/issue/{id}/comments`, Redmine's journals); see [`comments`].
//! And files (`/API/issue/{id}/attachments`); see [`attachments`].

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

mod attachments;
mod comments;

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
    comments: comments::Comments,
    attachments: attachments::Attachments,
}

impl ExtState {
    /// The next change time: now on this system's clock, in milliseconds, and always later
    /// than the previous one, so every change has its own `updated`.
    fn tick(&mut self) -> DateTime<Utc> {
        let now = chrono::SubsecRound::trunc_subsecs(Utc::now() + self.clock_offset, 3);
        let t = if now > self.last_time {
            now
        } else {
            self.last_time + chrono::Duration::milliseconds(1)
        };
        self.last_time = t;
        t
    }
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
#[derive(Debug)]
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
        let now = st.tick();
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
        if creating || !changed.is_empty() {
            let body = json!({ "sourceIssueId": item_id, "fields": changed });
            self.send_hook(&st, &item_id, &body);
        }
        Some(item_id)
    }

    /// Sends `body` to the webhook URL, if there is one, in order with the item's other
    /// deliveries (same key), with a fresh `X-Delivery-Id` kept over its retries.
    fn send_hook(&self, st: &ExtState, item_id: &str, body: &Value) {
        let Some(url) = st.webhook_url.clone() else {
            return;
        };
        let mut headers = vec![("X-Delivery-Id".to_string(), new_delivery_id())];
        if let Some(t) = &st.webhook_token {
            headers.push(("Authorization".to_string(), format!("Bearer {t}")));
        }
        self.dispatcher.send(Delivery {
            key: item_id.to_string(),
            url,
            headers,
            retry_header: None,
            body: serde_json::to_vec(body).unwrap_or_default(),
        });
    }
}

type S = Arc<Inner>;

fn router(inner: S) -> Router {
    Router::new()
        .route("/API/issue", post(create))
        .route("/API/issue/{id}", post(update).get(fetch))
        .route("/API/issues", get(list))
        .route(
            "/API/issue/{id}/comments",
            get(comments::list).post(comments::create),
        )
        .route(
            "/API/issue/{id}/attachments",
            get(attachments::list).post(attachments::upload).layer(
                // Files are larger than JSON bodies.
                axum::extract::DefaultBodyLimit::max(crate::net::MAX_UPLOAD),
            ),
        )
        .route(
            "/API/issue/{id}/attachments/{att}",
            axum::routing::delete(attachments::delete),
        )
        .route(
            "/API/issue/{id}/attachments/{att}/content",
            get(attachments::content),
        )
        .route(
            "/API/issue/{id}/comments/{cid}",
            axum::routing::put(comments::update).delete(comments::delete),
        )
        .route(
            "/issues/{n}/files",
            get(attachments::custom_list)
                .post(attachments::custom_upload)
                .layer(axum::extract::DefaultBodyLimit::max(
                    // Base64 is a third larger than the file.
                    crate::net::MAX_UPLOAD / 3 * 4 + 4096,
                )),
        )
        .route("/files/{fid}/raw", get(attachments::custom_raw))
        .route(
            "/files/{fid}",
            axum::routing::delete(attachments::custom_delete),
        )
        .route("/issues.json", get(redmine_list).post(redmine_create))
        .route("/issues/{file}", get(redmine_fetch).put(redmine_update))
        .route(
            "/journals/{file}",
            axum::routing::put(comments::redmine_edit),
        )
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

// ---- the Redmine-style view ------------------------------------------------------------------

/// Redmine keeps `updated_on` in whole seconds.
fn redmine_time(t: DateTime<Utc>) -> DateTime<Utc> {
    chrono::SubsecRound::trunc_subsecs(t, 0)
}

impl Item {
    /// The item as Redmine's `GET /issues/{id}.json` shows an issue.
    fn redmine_json(&self, n: u64) -> Value {
        json!({
            "id": n,
            "project": {"id": 1, "name": "Sandbox"},
            "tracker": {"id": 1, "name": "Task"},
            "custom_fields": self.fields.iter().map(|(id, (name, value))| json!({
                "id": id, "name": name, "value": value,
            })).collect::<Vec<_>>(),
            "updated_on": redmine_time(self.updated).to_rfc3339_opts(SecondsFormat::Secs, true),
        })
    }
}

/// Redmine's error shape: `{"errors": ["..."]}`.
fn redmine_error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "errors": [msg] }))).into_response()
}

/// `/issues/{id}.json` → the item number.
fn redmine_number(file: &str) -> Option<u64> {
    file.strip_suffix(".json")?.parse().ok()
}

/// The filter of `updated_on=>=…`: a date, or a date and time in whole seconds with `Z` or an
/// offset, as Redmine's query validation accepts.
fn redmine_since(value: &str) -> Option<DateTime<Utc>> {
    let v = value.strip_prefix(">=")?;
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        && v.len() == 10
    {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc());
    }
    // Redmine's pattern has no fraction: `\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:?\d{2})`.
    if v.contains('.') {
        return None;
    }
    DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `custom_field_values: {"id": "value"}` or `custom_fields: [{"id", "value"}]` of an issue
/// body, as Redmine takes them.
/// Errors are `(status, message)` for [`redmine_error`].
fn redmine_fields(body: &Bytes) -> Result<Vec<FieldIn>, (StatusCode, String)> {
    let invalid = |m: &str| (StatusCode::UNPROCESSABLE_ENTITY, m.to_string());
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| (StatusCode::BAD_REQUEST, "invalid JSON".to_string()))?;
    let issue = v
        .get("issue")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("issue is missing"))?;
    let mut pairs: Vec<(String, &Value)> = Vec::new();
    if let Some(map) = issue.get("custom_field_values").and_then(Value::as_object) {
        pairs.extend(map.iter().map(|(k, v)| (k.clone(), v)));
    }
    if let Some(list) = issue.get("custom_fields").and_then(Value::as_array) {
        for f in list {
            let id = f
                .get("id")
                .map(|i| i.to_string().trim_matches('"').to_string());
            pairs.push((
                id.unwrap_or_default(),
                f.get("value").unwrap_or(&Value::Null),
            ));
        }
    }
    let mut out = Vec::new();
    for (id, value) in pairs {
        let id: u64 = id
            .parse()
            .map_err(|_| invalid(&format!("Custom field {id} is invalid")))?;
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            Value::Number(n) => n.to_string(),
            _ => return Err(invalid(&format!("Custom field {id} is invalid"))),
        };
        out.push(FieldIn {
            id,
            name: None,
            value,
        });
    }
    Ok(out)
}

async fn redmine_list(State(inner): State<S>, Query(q): Query<Vec<(String, String)>>) -> Response {
    let param = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let since = match param("updated_on") {
        None => None,
        Some(v) => match redmine_since(v) {
            Some(t) => Some(t),
            None => return redmine_error(StatusCode::UNPROCESSABLE_ENTITY, "Updated is invalid"),
        },
    };
    let limit = param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 100);
    let offset = param("offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let st = inner.lock();
    let mut items: Vec<(u64, &Item)> = st
        .items
        .iter()
        .map(|(n, i)| (*n, i))
        .filter(|(_, i)| since.is_none_or(|s| redmine_time(i.updated) >= s))
        .collect();
    // Redmine sorts by id, newest first, unless told `sort=updated_on[:desc]`.
    match param("sort") {
        Some("updated_on") => items.sort_by_key(|(n, i)| (redmine_time(i.updated), *n)),
        Some("updated_on:desc") => {
            items.sort_by_key(|(n, i)| std::cmp::Reverse((redmine_time(i.updated), *n)))
        }
        _ => items.sort_by_key(|(n, _)| std::cmp::Reverse(*n)),
    }
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(n, i)| i.redmine_json(n))
        .collect();
    axum::Json(json!({"issues": page, "total_count": total, "offset": offset, "limit": limit}))
        .into_response()
}

/// `?include=journals` (or a list naming it) adds the issue's notes, as Redmine does.
async fn redmine_fetch(
    State(inner): State<S>,
    Path(file): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let journals = q
        .iter()
        .any(|(k, v)| k == "include" && v.split(',').any(|i| i.trim() == "journals"));
    let st = inner.lock();
    match redmine_number(&file).and_then(|n| Some((n, st.items.get(&n)?))) {
        Some((n, item)) => {
            let mut issue = item.redmine_json(n);
            if journals {
                issue["journals"] = st.comments.redmine_journals(n);
            }
            axum::Json(json!({ "issue": issue })).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn redmine_create(State(inner): State<S>, body: Bytes) -> Response {
    let fields = match redmine_fields(&body) {
        Ok(f) => f,
        Err((status, msg)) => return redmine_error(status, &msg),
    };
    let Some(n) = inner
        .upsert(None, None, fields)
        .as_deref()
        .and_then(item_number)
    else {
        return redmine_error(StatusCode::INTERNAL_SERVER_ERROR, "create failed");
    };
    let st = inner.lock();
    match st.items.get(&n) {
        Some(item) => (
            StatusCode::CREATED,
            axum::Json(json!({ "issue": item.redmine_json(n) })),
        )
            .into_response(),
        None => redmine_error(StatusCode::INTERNAL_SERVER_ERROR, "create failed"),
    }
}

/// Redmine answers an update with `204 No Content`.
async fn redmine_update(State(inner): State<S>, Path(file): Path<String>, body: Bytes) -> Response {
    let Some(n) = redmine_number(&file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let fields = match redmine_fields(&body) {
        Ok(f) => f,
        Err((status, msg)) => return redmine_error(status, &msg),
    };
    // `notes` (and `private_notes`) add a journal, as Redmine does with an update.
    let note = match comments::redmine_note(&body) {
        Ok(n) => n,
        Err(msg) => return redmine_error(StatusCode::UNPROCESSABLE_ENTITY, &msg),
    };
    let id = format!("EXT-{n}");
    if inner.upsert(Some(&id), None, fields).is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Some((notes, private)) = note {
        let author = inner.cfg.username.clone();
        inner.add_comment(&id, &author, Some(&author), &notes, private);
    }
    StatusCode::NO_CONTENT.into_response()
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
                comments: comments::Comments::default(),
                attachments: attachments::Attachments::default(),
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
