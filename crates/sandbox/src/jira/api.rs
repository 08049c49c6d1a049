//! HTTP routes of the Jira sandbox: REST v3 and v2 issue, search, field, project, comment,
//! transition and myself endpoints, the admin and dynamic (app) webhook APIs, and the auth /
//! rate-limit layers (with Jira's `X-RateLimit-*` headers).
//!
//! Handlers parse bodies themselves (from bytes) so that any malformed input becomes a
//! Jira-shaped 400 rather than axum's plain-text rejection.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use serde_json::{Value, json};

use super::model::{self, Api};
use super::{ApiError, Inner, jql};
use crate::net::{HttpLayer, ct_eq, log_and_faults, rate_limited_response};

type S = Arc<Inner>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, axum::Json(self.body())).into_response()
    }
}

type R = Result<Response, ApiError>;

fn ok(status: StatusCode, v: Value) -> R {
    Ok((status, axum::Json(v)).into_response())
}

/// Parse a JSON body; empty or malformed bodies get Jira's 400.
fn json_body(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(400, "No content to map due to end-of-input"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(400, format!("Unexpected character in request body: {e}")))
}

pub(crate) fn router(inner: S) -> Router {
    let mut api = Router::new();
    for (prefix, v) in [("/rest/api/2", Api::V2), ("/rest/api/3", Api::V3)] {
        api = api
            .route(
                &format!("{prefix}/issue"),
                post(move |s: State<S>, b: Bytes| create(s, v, b)),
            )
            .route(
                &format!("{prefix}/issue/{{key}}"),
                get(
                    move |s: State<S>, p: Path<String>, q: Query<Vec<(String, String)>>| {
                        get_issue(s, v, p, q)
                    },
                )
                .put(
                    move |s: State<S>,
                          p: Path<String>,
                          q: Query<Vec<(String, String)>>,
                          b: Bytes| { edit(s, v, p, q, b) },
                ),
            )
            .route(
                &format!("{prefix}/issue/{{key}}/comment"),
                get(
                    move |s: State<S>, p: Path<String>, q: Query<Vec<(String, String)>>| {
                        list_comments(s, v, p, q)
                    },
                )
                .post(
                    move |s: State<S>,
                          p: Path<String>,
                          q: Query<Vec<(String, String)>>,
                          b: Bytes| { add_comment(s, v, p, q, b) },
                ),
            )
            .route(
                &format!("{prefix}/issue/{{key}}/comment/{{id}}"),
                get(
                    move |s: State<S>,
                          p: Path<(String, String)>,
                          q: Query<Vec<(String, String)>>| {
                        get_comment(s, v, p, q)
                    },
                )
                .put(
                    move |s: State<S>,
                          p: Path<(String, String)>,
                          q: Query<Vec<(String, String)>>,
                          b: Bytes| { edit_comment(s, v, p, q, b) },
                )
                .delete(move |s: State<S>, p: Path<(String, String)>| delete_comment(s, p)),
            )
            .route(
                &format!("{prefix}/issue/{{key}}/transitions"),
                get(
                    move |s: State<S>, p: Path<String>, q: Query<Vec<(String, String)>>| {
                        list_transitions(s, v, p, q)
                    },
                )
                .post(move |s: State<S>, p: Path<String>, b: Bytes| transition(s, v, p, b)),
            )
            .route(
                &format!("{prefix}/status/{{id_or_name}}"),
                get(move |s: State<S>, p: Path<String>| status(s, v, p)),
            )
            .route(&format!("{prefix}/field"), get(fields))
            .route(
                &format!("{prefix}/project/{{project_id_or_key}}"),
                get(move |s: State<S>, p: Path<String>| project(s, v, p)),
            )
            .route(
                &format!("{prefix}/myself"),
                get(move |s: State<S>| myself(s, v)),
            )
            .route(
                &format!("{prefix}/user/search"),
                get(move |s: State<S>, q: Query<Vec<(String, String)>>| user_search(s, v, q)),
            )
            .route(
                &format!("{prefix}/issue/{{key}}/attachments"),
                post(
                    move |s: State<S>, p: Path<String>, h: HeaderMap, b: Bytes| {
                        super::attachments::upload(s, v, p, h, b)
                    },
                )
                // Files are larger than JSON bodies: the upload route reads up to the
                // sandbox's upload limit (`net::MAX_UPLOAD`).
                .layer(axum::extract::DefaultBodyLimit::max(crate::net::MAX_UPLOAD)),
            )
            .route(
                &format!("{prefix}/attachment/content/{{id}}"),
                get(super::attachments::content),
            )
            .route(
                &format!("{prefix}/attachment/{{id}}"),
                axum::routing::delete(super::attachments::delete),
            );
    }
    api = api
        .route(
            "/rest/api/3/search/jql",
            get(|s: State<S>, q: Query<Vec<(String, String)>>| search_jql_get(s, q))
                .post(|s: State<S>, b: Bytes| search_jql_post(s, b)),
        )
        .route(
            "/rest/api/3/search/approximate-count",
            post(approximate_count),
        )
        .route(
            "/rest/api/3/search",
            get(search_removed).post(search_removed),
        )
        .route(
            "/rest/api/2/search",
            get(|s: State<S>, q: Query<Vec<(String, String)>>| search_v2_get(s, q))
                .post(|s: State<S>, b: Bytes| search_v2_post(s, b)),
        )
        .route(
            "/rest/webhooks/1.0/webhook",
            get(list_hooks).post(create_hook),
        )
        .route(
            "/rest/webhooks/1.0/webhook/{id}",
            get(get_hook).delete(delete_hook),
        )
        .route(
            "/rest/api/3/webhook",
            get(list_dyn_hooks)
                .post(register_dyn_hooks)
                .delete(delete_dyn_hooks),
        )
        .route("/rest/api/3/webhook/refresh", put(refresh_dyn_hooks))
        .fallback(|| async {
            ApiError::new(404, "Not found (no such endpoint in the Jira sandbox).")
        })
        .layer(middleware::from_fn_with_state(inner.clone(), auth_and_rate))
        .layer(middleware::from_fn_with_state(
            HttpLayer {
                log: inner.log.clone(),
                faults: inner.faults.clone(),
            },
            log_and_faults,
        ))
        .layer(middleware::map_response_with_state(
            inner.clone(),
            rate_limit_headers,
        ));
    api.with_state(inner)
}

/// Who is calling, by credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Cloud: Basic email + API token.
    ApiToken,
    /// Data Center: Bearer personal access token.
    Pat,
    /// An OAuth 2.0 (3LO) app: Bearer access token.
    OAuthApp,
}

/// Used when no burst limit is configured but a fault injects a 429.
const DEFAULT_BURST: u32 = 100;

/// Basic (Cloud API token) or Bearer (DC PAT or OAuth token), then the per-second rate
/// limit. The caller kind is left in the request extensions for app-only endpoints.
async fn auth_and_rate(State(inner): State<S>, mut req: Request, next: Next) -> Response {
    let Some(caller) = authorized(&inner, req.headers()) else {
        let mut resp = ApiError::new(
            401,
            "You are not authenticated. Authentication required to perform this operation.",
        )
        .into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"protected-area\""),
        );
        return resp;
    };
    req.extensions_mut().insert(caller);
    let Some(limit) = inner.cfg.rate_limit_per_sec else {
        return next.run(req).await;
    };
    let admitted = inner.lock().rate.admit(limit);
    let Some(remaining) = admitted else {
        return rate_limited_response();
    };
    let mut resp = next.run(req).await;
    // Under 20% of the budget left: Jira warns before it limits.
    if u64::from(remaining) * 5 < u64::from(limit) {
        resp.headers_mut().insert(
            "x-ratelimit-nearlimit",
            header::HeaderValue::from_static("true"),
        );
    }
    resp
}

/// Every 429 (from the limiter or from an injected fault) carries Jira's rate-limit headers:
/// `X-RateLimit-Limit`, `X-RateLimit-Remaining: 0`, `X-RateLimit-Reset` (ISO 8601 to the
/// minute, rounded up so a client waiting for it never comes back early) and
/// `RateLimit-Reason`, next to `Retry-After`.
async fn rate_limit_headers(State(inner): State<S>, mut resp: Response) -> Response {
    if resp.status() != StatusCode::TOO_MANY_REQUESTS {
        return resp;
    }
    let limit = inner.cfg.rate_limit_per_sec.unwrap_or(DEFAULT_BURST);
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(0, 86_400);
    let at = inner.lock().now() + chrono::Duration::seconds(retry_after);
    let reset = reset_minute(at);
    let h = resp.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set("x-ratelimit-limit", limit.to_string());
    set("x-ratelimit-remaining", "0".to_string());
    set("x-ratelimit-reset", reset);
    set("ratelimit-reason", "jira-burst-based".to_string());
    if !h.contains_key(header::RETRY_AFTER) {
        h.insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
    }
    resp
}

/// `yyyy-MM-ddTHH:mmZ` for the first whole minute at or after `at`.
fn reset_minute(at: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{DurationRound, Timelike};
    let minute = chrono::Duration::minutes(1);
    let floor = at.duration_trunc(minute).unwrap_or(at);
    let up = if floor == at && at.second() == 0 && at.nanosecond() == 0 {
        floor
    } else {
        floor + minute
    };
    up.format("%Y-%m-%dT%H:%MZ").to_string()
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> Option<Caller> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let cfg = &inner.cfg;
    if let Some(token) = value.strip_prefix("Bearer ") {
        let token = token.trim().as_bytes();
        if ct_eq(token, cfg.oauth_token.as_bytes()) {
            return Some(Caller::OAuthApp);
        }
        return ct_eq(token, cfg.pat.as_bytes()).then_some(Caller::Pat);
    }
    if let Some(b64) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let expected = format!("{}:{}", cfg.email, cfg.api_token);
        return ct_eq(&decoded, expected.as_bytes()).then_some(Caller::ApiToken);
    }
    None
}

/// Query parameter lookup; repeated parameters are joined with commas (Jira accepts both).
fn param(q: &[(String, String)], name: &str) -> Option<String> {
    let vals: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    if vals.is_empty() {
        None
    } else {
        Some(vals.join(","))
    }
}

/// A comma-separated list parameter (`fields`, `expand`); empty when absent.
fn list_param(q: &[(String, String)], name: &str) -> Vec<String> {
    param(q, name).map(|v| split_list(&v)).unwrap_or_default()
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// A list given as an array (POST bodies) or as a comma-separated string.
fn list_value(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .flat_map(split_list)
            .collect(),
        Some(Value::String(s)) => split_list(s),
        _ => vec![],
    }
}

/// The `fields` selection of a request.
#[derive(Debug, Clone)]
enum Select {
    /// search/jql's default: the bean carries only the id.
    IdOnly,
    List {
        all: bool,
        include: Vec<String>,
        exclude: Vec<String>,
    },
}

impl Select {
    fn parse(items: &[String], default_all: bool) -> Select {
        if items.is_empty() {
            return if default_all {
                Select::List {
                    all: true,
                    include: vec![],
                    exclude: vec![],
                }
            } else {
                Select::IdOnly
            };
        }
        let mut all = false;
        let mut include = vec![];
        let mut exclude = vec![];
        for i in items {
            match i.as_str() {
                "*all" | "*navigable" => all = true,
                x if x.starts_with('-') => exclude.push(x[1..].to_string()),
                x => include.push(x.to_string()),
            }
        }
        Select::List {
            all,
            include,
            exclude,
        }
    }
    fn wants(&self, id: &str) -> bool {
        match self {
            Select::IdOnly => false,
            Select::List {
                all,
                include,
                exclude,
            } => !exclude.iter().any(|e| e == id) && (*all || include.iter().any(|i| i == id)),
        }
    }
    /// Only id/key requested: Jira then allows the biggest pages.
    fn light(&self) -> bool {
        match self {
            Select::IdOnly => true,
            Select::List { all, include, .. } => {
                !*all && include.iter().all(|i| i == "id" || i == "key")
            }
        }
    }
}

async fn create(State(inner): State<S>, api: Api, body: Bytes) -> R {
    let body = json_body(&body)?;
    let actor = inner.lock().api_user();
    let (id, key) = inner.create_issue(&actor, api, &body)?;
    ok(
        StatusCode::CREATED,
        json!({
            "id": id.to_string(),
            "key": key,
            "self": format!("{}{}/issue/{id}", inner.base, api.prefix()),
        }),
    )
}

async fn get_issue(
    State(inner): State<S>,
    api: Api,
    Path(key): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> R {
    let fields = list_param(&q, "fields");
    let expand = list_param(&q, "expand");
    let select = Select::parse(&fields, true);
    let st = inner.lock();
    let id = st.find(&key).ok_or_else(ApiError::not_found)?;
    let issue = st.issues.get(&id).ok_or_else(ApiError::not_found)?;
    let bean = inner.bean(&st, issue, api, &|f| select.wants(f), &expand);
    ok(StatusCode::OK, bean)
}

async fn edit(
    State(inner): State<S>,
    api: Api,
    Path(key): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    body: Bytes,
) -> R {
    let body = json_body(&body)?;
    let actor = inner.lock().api_user();
    inner.edit_issue(&actor, api, &key, &body)?;
    if param(&q, "returnIssue").as_deref() == Some("true") {
        let st = inner.lock();
        let id = st.find(&key).ok_or_else(ApiError::not_found)?;
        let issue = st.issues.get(&id).ok_or_else(ApiError::not_found)?;
        return ok(StatusCode::OK, inner.bean(&st, issue, api, &|_| true, &[]));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Whether `expand` asks for the comments' `properties`.
fn expands_properties(q: &[(String, String)]) -> bool {
    list_param(q, "expand")
        .iter()
        .any(|e| e.eq_ignore_ascii_case("properties"))
}

/// `GET …/issue/{key}/comment`: a `PageOfComments`, oldest first unless `orderBy=-created`
/// (Jira orders by `created` only), with properties on `expand=properties`.
async fn list_comments(
    State(inner): State<S>,
    api: Api,
    Path(key): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> R {
    let num = |name: &str, default: usize| -> Result<usize, ApiError> {
        match param(&q, name) {
            Some(v) => v.trim().parse().map_err(|_| {
                ApiError::new(400, format!("The value '{v}' is not valid for {name}."))
            }),
            None => Ok(default),
        }
    };
    let start = num("startAt", 0)?;
    let max = num("maxResults", 100)?.min(5000);
    let newest_first = match param(&q, "orderBy").as_deref().map(str::trim) {
        None | Some("created" | "+created") => false,
        Some("-created") => true,
        Some(other) => {
            return Err(ApiError::new(
                400,
                format!(
                    "The value '{other}' is not valid for orderBy: use created, +created or -created."
                ),
            ));
        }
    };
    let props = expands_properties(&q);
    let st = inner.lock();
    let id = st.find(&key).ok_or_else(ApiError::not_found)?;
    let issue = st.issues.get(&id).ok_or_else(ApiError::not_found)?;
    let mut ordered: Vec<&model::Comment> = issue.comments.iter().collect();
    if newest_first {
        ordered.reverse();
    }
    let page: Vec<Value> = ordered
        .into_iter()
        .skip(start)
        .take(max)
        .map(|c| c.render_with(&inner.base, api, id, props))
        .collect();
    ok(
        StatusCode::OK,
        json!({
            "comments": page,
            "startAt": start,
            "maxResults": max,
            "total": issue.comments.len(),
        }),
    )
}

async fn add_comment(
    State(inner): State<S>,
    api: Api,
    Path(key): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    body: Bytes,
) -> R {
    let body = json_body(&body)?;
    let actor = inner.lock().api_user();
    let comment = inner.add_comment(&actor, api, &key, &body, expands_properties(&q))?;
    ok(StatusCode::CREATED, comment)
}

async fn get_comment(
    State(inner): State<S>,
    api: Api,
    Path((key, cid)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> R {
    let comment = inner.get_comment(api, &key, &cid, expands_properties(&q))?;
    ok(StatusCode::OK, comment)
}

async fn edit_comment(
    State(inner): State<S>,
    api: Api,
    Path((key, cid)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
    body: Bytes,
) -> R {
    let body = json_body(&body)?;
    let actor = inner.lock().api_user();
    let comment = inner.edit_comment(&actor, api, &key, &cid, &body, expands_properties(&q))?;
    ok(StatusCode::OK, comment)
}

async fn delete_comment(State(inner): State<S>, Path((key, cid)): Path<(String, String)>) -> R {
    let actor = inner.lock().api_user();
    inner.delete_comment(&actor, &key, &cid)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_transitions(
    State(inner): State<S>,
    api: Api,
    Path(key): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> R {
    // `expand=transitions.fields` adds each transition's screen fields; `transitionId`
    // narrows the list to one.
    let with_fields = q
        .iter()
        .any(|(k, v)| k == "expand" && v.split(',').any(|e| e.trim() == "transitions.fields"));
    let only = q
        .iter()
        .find(|(k, _)| k == "transitionId")
        .map(|(_, v)| v.clone());
    let st = inner.lock();
    let id = st.find(&key).ok_or_else(ApiError::not_found)?;
    let issue = st.issues.get(&id).ok_or_else(ApiError::not_found)?;
    let mut list = inner.transitions(issue, api, with_fields);
    if let Some(only) = only {
        list.retain(|t| t["id"] == json!(only));
    }
    ok(
        StatusCode::OK,
        json!({ "expand": "transitions", "transitions": list }),
    )
}

async fn transition(State(inner): State<S>, api: Api, Path(key): Path<String>, body: Bytes) -> R {
    let body = json_body(&body)?;
    let actor = inner.lock().api_user();
    inner.do_transition(&actor, api, &key, &body)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn fields() -> R {
    let list: Vec<Value> = model::FIELDS.iter().map(model::FieldDef::details).collect();
    ok(StatusCode::OK, json!(list))
}

/// `GET /status/{idOrName}`: a `StatusDetails`, or 404 with Jira's message.
async fn status(State(inner): State<S>, api: Api, Path(id_or_name): Path<String>) -> R {
    match model::status(id_or_name.trim()) {
        Some(st) => ok(
            StatusCode::OK,
            model::render_status(st, &inner.base, api.prefix()),
        ),
        None => Err(ApiError::new(
            404,
            format!("The status with id or name '{id_or_name}' does not exist."),
        )),
    }
}

/// `GET /project/{projectIdOrKey}`: the project with its issue types and lead (included by
/// default, as in Jira), or 404 with Jira's message. Keys are matched case-sensitively, as
/// the spec says; ids too.
async fn project(State(inner): State<S>, api: Api, Path(id_or_key): Path<String>) -> R {
    let st = inner.lock();
    let Some(p) = st
        .projects
        .iter()
        .find(|p| p.key == id_or_key || p.id == id_or_key)
    else {
        return Err(ApiError::new(
            404,
            format!("No project could be found with key '{id_or_key}'."),
        ));
    };
    let mut v = p.render(&inner.base, api);
    v["description"] = json!("");
    v["assigneeType"] = json!("UNASSIGNED");
    v["style"] = json!("classic");
    v["isPrivate"] = json!(false);
    v["lead"] = st.api_user().render(&inner.base, api);
    v["issueTypes"] = json!(
        model::ISSUE_TYPES
            .iter()
            .enumerate()
            .map(|(i, (id, name))| json!({
                "self": format!("{}{}/issuetype/{id}", inner.base, api.prefix()),
                "id": id,
                "name": name,
                "description": format!("A {} in {}.", name.to_lowercase(), p.name),
                "subtask": false,
                "avatarId": 10300 + i as i64,
                "hierarchyLevel": 0,
            }))
            .collect::<Vec<_>>()
    );
    ok(StatusCode::OK, v)
}

async fn myself(State(inner): State<S>, api: Api) -> R {
    let user = inner.lock().api_user();
    let mut v = user.render(&inner.base, api);
    v["locale"] = json!("en_US");
    ok(StatusCode::OK, v)
}

/// `GET /user/search`. Cloud (v3): `query` matches the start of the display name or the
/// e-mail, any case; `accountId` matches exactly. Data Center (v2): `username` matches the
/// start of the name, display name or e-mail. One of them is required, as in Jira; results
/// page with `startAt` / `maxResults`.
async fn user_search(
    State(inner): State<S>,
    api: Api,
    Query(q): Query<Vec<(String, String)>>,
) -> R {
    let param = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
    };
    let number = |k: &str, default: usize| -> Result<usize, ApiError> {
        match param(k) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ApiError::new(400, format!("The '{k}' parameter must be a number."))),
        }
    };
    let start = number("startAt", 0)?;
    let max = number("maxResults", 50)?.min(1000);
    let starts = |hay: &str, needle: &str| hay.to_lowercase().starts_with(&needle.to_lowercase());
    let st = inner.lock();
    let hits: Vec<&model::User> = match api {
        Api::V3 => match (param("query"), param("accountId")) {
            (_, Some(id)) if !id.is_empty() => {
                st.users.iter().filter(|u| u.account_id == id).collect()
            }
            (Some(text), _) if !text.is_empty() => st
                .users
                .iter()
                .filter(|u| starts(&u.display_name, &text) || starts(&u.email, &text))
                .collect(),
            _ => {
                return Err(ApiError::new(
                    400,
                    "The query parameter 'query' or 'accountId' or 'property' is required.",
                ));
            }
        },
        Api::V2 => match param("username") {
            Some(text) if !text.is_empty() => st
                .users
                .iter()
                .filter(|u| {
                    starts(&u.name, &text)
                        || starts(&u.display_name, &text)
                        || starts(&u.email, &text)
                })
                .collect(),
            _ => {
                return Err(ApiError::new(
                    400,
                    "The username query parameter was not provided",
                ));
            }
        },
    };
    let page: Vec<Value> = hits
        .into_iter()
        .skip(start)
        .take(max)
        .map(|u| u.render(&inner.base, api))
        .collect();
    ok(StatusCode::OK, Value::Array(page))
}

/// Run a query: parse, validate, filter, sort. Returns the ids in order.
fn run_query(inner: &Inner, jql_text: &str, bounded: bool) -> Result<Vec<u64>, ApiError> {
    let q = jql::parse(jql_text).map_err(|e| ApiError::new(400, e))?;
    if bounded && q.filter.is_none() {
        return Err(ApiError::new(
            400,
            "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
        ));
    }
    let st = inner.lock();
    let keys = |k: &str| st.keys.contains_key(&k.to_ascii_uppercase());
    let actor = st.api_user();
    let ctx = st.jql_ctx(&keys, &actor.account_id);
    jql::validate(&q, &ctx).map_err(|errs| ApiError {
        status: 400,
        messages: errs,
        errors: Default::default(),
    })?;
    let mut hits: Vec<&model::Issue> = st
        .issues
        .values()
        .filter(|i| q.filter.as_ref().is_none_or(|f| jql::matches(f, i, &ctx)))
        .collect();
    jql::sort(&mut hits, &q.order, &st.users);
    Ok(hits.iter().map(|i| i.id).collect())
}

/// Page tokens are opaque to clients; here they encode the offset of the next page.
fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_token(t: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

struct SearchArgs {
    jql: String,
    token: Option<String>,
    max: Option<i64>,
    fields: Vec<String>,
    expand: Vec<String>,
}

async fn search_jql_get(State(inner): State<S>, Query(q): Query<Vec<(String, String)>>) -> R {
    let args = SearchArgs {
        jql: param(&q, "jql").unwrap_or_default(),
        token: param(&q, "nextPageToken"),
        max: match param(&q, "maxResults") {
            Some(m) => Some(m.parse().map_err(|_| {
                ApiError::new(400, format!("The value '{m}' is not valid for maxResults."))
            })?),
            None => None,
        },
        fields: list_param(&q, "fields"),
        expand: list_param(&q, "expand"),
    };
    search_jql(&inner, args)
}

async fn search_jql_post(State(inner): State<S>, body: Bytes) -> R {
    let body = json_body(&body)?;
    let max = match body.get("maxResults") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| ApiError::new(400, "maxResults must be an integer."))?,
        ),
    };
    let args = SearchArgs {
        jql: body
            .get("jql")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        token: body
            .get("nextPageToken")
            .and_then(Value::as_str)
            .map(str::to_string),
        max,
        fields: list_value(body.get("fields")),
        expand: list_value(body.get("expand")),
    };
    search_jql(&inner, args)
}

fn search_jql(inner: &Inner, args: SearchArgs) -> R {
    let ids = run_query(inner, &args.jql, true)?;
    let select = Select::parse(&args.fields, false);
    let cap = if select.light() { 5000 } else { 100 };
    let max = args.max.unwrap_or(50).clamp(1, cap) as usize;
    let offset = match &args.token {
        Some(t) => decode_token(t).ok_or_else(|| {
            ApiError::new(400, "The provided next page token is invalid or expired.")
        })?,
        None => 0,
    };
    let st = inner.lock();
    let page: Vec<Value> = ids
        .iter()
        .skip(offset)
        .take(max)
        .filter_map(|id| st.issues.get(id))
        .map(|issue| match select {
            Select::IdOnly => json!({ "id": issue.id.to_string() }),
            _ => inner.bean(&st, issue, Api::V3, &|f| select.wants(f), &[]),
        })
        .collect();
    let next = offset + page.len();
    let is_last = next >= ids.len();
    let mut out = json!({ "issues": page, "isLast": is_last });
    if !is_last {
        out["nextPageToken"] = json!(encode_token(next));
    }
    add_names_schema(&mut out, &args.expand, &select);
    ok(StatusCode::OK, out)
}

fn add_names_schema(out: &mut Value, expand: &[String], select: &Select) {
    let has = |x: &str| expand.iter().any(|e| e.eq_ignore_ascii_case(x));
    let chosen: Vec<&model::FieldDef> = model::FIELDS
        .iter()
        .filter(|f| select.wants(f.id))
        .collect();
    if has("names") {
        out["names"] = json!(
            chosen
                .iter()
                .map(|f| (f.id.to_string(), json!(f.name)))
                .collect::<serde_json::Map<_, _>>()
        );
    }
    if has("schema") {
        out["schema"] = json!(
            chosen
                .iter()
                .map(|f| (f.id.to_string(), f.schema()))
                .collect::<serde_json::Map<_, _>>()
        );
    }
}

async fn approximate_count(State(inner): State<S>, body: Bytes) -> R {
    let body = json_body(&body)?;
    let jql_text = body.get("jql").and_then(Value::as_str).unwrap_or_default();
    let ids = run_query(&inner, jql_text, true)?;
    ok(StatusCode::OK, json!({ "count": ids.len() }))
}

async fn search_removed() -> R {
    Err(ApiError::new(
        410,
        "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046",
    ))
}

struct V2Args {
    jql: String,
    start: i64,
    max: i64,
    fields: Vec<String>,
    expand: Vec<String>,
}

async fn search_v2_get(State(inner): State<S>, Query(q): Query<Vec<(String, String)>>) -> R {
    let num = |name: &str, default: i64| -> Result<i64, ApiError> {
        match param(&q, name) {
            Some(v) => v.parse().map_err(|_| {
                ApiError::new(400, format!("The value '{v}' is not valid for {name}."))
            }),
            None => Ok(default),
        }
    };
    let args = V2Args {
        jql: param(&q, "jql").unwrap_or_default(),
        start: num("startAt", 0)?,
        max: num("maxResults", 50)?,
        fields: list_param(&q, "fields"),
        expand: list_param(&q, "expand"),
    };
    search_v2(&inner, args)
}

async fn search_v2_post(State(inner): State<S>, body: Bytes) -> R {
    let body = json_body(&body)?;
    let num = |name: &str, default: i64| -> Result<i64, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| ApiError::new(400, format!("{name} must be an integer."))),
        }
    };
    let args = V2Args {
        jql: body
            .get("jql")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        start: num("startAt", 0)?,
        max: num("maxResults", 50)?,
        fields: list_value(body.get("fields")),
        expand: list_value(body.get("expand")),
    };
    search_v2(&inner, args)
}

fn search_v2(inner: &Inner, args: V2Args) -> R {
    let ids = run_query(inner, &args.jql, false)?;
    let select = Select::parse(&args.fields, true);
    let start = args.start.max(0) as usize;
    let max = args.max.clamp(0, 1000) as usize;
    // names/schema belong to the page, not to each issue; other expansions are per issue.
    let per_issue: Vec<String> = args
        .expand
        .iter()
        .filter(|e| !e.eq_ignore_ascii_case("names") && !e.eq_ignore_ascii_case("schema"))
        .cloned()
        .collect();
    let st = inner.lock();
    let page: Vec<Value> = ids
        .iter()
        .skip(start)
        .take(max)
        .filter_map(|id| st.issues.get(id))
        .map(|issue| inner.bean(&st, issue, Api::V2, &|f| select.wants(f), &per_issue))
        .collect();
    let mut out = json!({
        "expand": "schema,names",
        "startAt": start,
        "maxResults": max,
        "total": ids.len(),
        "issues": page,
    });
    add_names_schema(&mut out, &args.expand, &select);
    ok(StatusCode::OK, out)
}

async fn list_hooks(State(inner): State<S>) -> R {
    let st = inner.lock();
    let list: Vec<Value> = st.hooks.iter().map(|h| inner.hook_json(h)).collect();
    ok(StatusCode::OK, json!(list))
}

async fn create_hook(State(inner): State<S>, body: Bytes) -> R {
    let body = json_body(&body)?;
    let hook = inner.register_hook(&body)?;
    ok(StatusCode::CREATED, hook)
}

fn hook_not_found() -> ApiError {
    ApiError::new(404, "Webhook not found.")
}

async fn get_hook(State(inner): State<S>, Path(id): Path<String>) -> R {
    let id: u64 = id.parse().map_err(|_| hook_not_found())?;
    let st = inner.lock();
    let hook = st
        .hooks
        .iter()
        .find(|h| h.id == id)
        .ok_or_else(hook_not_found)?;
    ok(StatusCode::OK, inner.hook_json(hook))
}

async fn delete_hook(State(inner): State<S>, Path(id): Path<String>) -> R {
    let id: u64 = id.parse().map_err(|_| hook_not_found())?;
    let mut st = inner.lock();
    let before = st.hooks.len();
    st.hooks.retain(|h| h.id != id);
    if st.hooks.len() == before {
        return Err(hook_not_found());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The dynamic webhook API is for apps only; Jira answers 403 to API tokens and PATs.
fn app_only(caller: Caller) -> Result<(), ApiError> {
    if caller == Caller::OAuthApp {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            "Only Connect and OAuth 2.0 apps can use this operation.",
        ))
    }
}

async fn register_dyn_hooks(
    State(inner): State<S>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> R {
    app_only(caller)?;
    let body = json_body(&body)?;
    ok(StatusCode::OK, inner.register_dyn_hooks(&body)?)
}

async fn list_dyn_hooks(
    State(inner): State<S>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<Vec<(String, String)>>,
) -> R {
    app_only(caller)?;
    let num = |name: &str, default: i64| -> Result<i64, ApiError> {
        match param(&q, name) {
            Some(v) => v.parse().map_err(|_| {
                ApiError::new(400, format!("The value '{v}' is not valid for {name}."))
            }),
            None => Ok(default),
        }
    };
    let start = num("startAt", 0)?.max(0) as usize;
    let max = num("maxResults", 100)?.clamp(1, 100) as usize;
    ok(StatusCode::OK, inner.list_dyn_hooks(start, max))
}

async fn delete_dyn_hooks(
    State(inner): State<S>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> R {
    app_only(caller)?;
    let body = json_body(&body)?;
    inner.delete_dyn_hooks(&body)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn refresh_dyn_hooks(
    State(inner): State<S>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> R {
    app_only(caller)?;
    let body = json_body(&body)?;
    ok(StatusCode::OK, inner.refresh_dyn_hooks(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_token(&encode_token(150)), Some(150));
        assert_eq!(decode_token("not a token"), None);
        assert_eq!(decode_token(""), None);
    }

    #[test]
    fn reset_is_rounded_up_to_the_minute() {
        use chrono::TimeZone;
        let at = chrono::Utc
            .with_ymd_and_hms(2025, 1, 31, 10, 15, 30)
            .unwrap();
        assert_eq!(reset_minute(at), "2025-01-31T10:16Z");
        let exact = chrono::Utc
            .with_ymd_and_hms(2025, 12, 31, 23, 59, 0)
            .unwrap();
        assert_eq!(reset_minute(exact), "2025-12-31T23:59Z");
        let late = chrono::Utc
            .with_ymd_and_hms(2025, 12, 31, 23, 59, 1)
            .unwrap();
        assert_eq!(reset_minute(late), "2026-01-01T00:00Z");
    }

    #[test]
    fn field_selection() {
        let s = Select::parse(&["*all".into(), "-description".into()], false);
        assert!(s.wants("summary") && !s.wants("description"));
        assert!(Select::parse(&[], false).light());
        assert!(!Select::parse(&["summary".into()], false).wants("labels"));
    }
}
