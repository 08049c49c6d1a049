//! The operator console: pages a person opens in a browser to follow every link, change and
//! failure, and to retry or discard dead letters. Served by `tandem serve` itself; the
//! stylesheet and the small script that keeps the overview live are embedded in the binary.
//!
//! Sign-in takes the admin token and sets a session cookie ([`session`]), or a one-time
//! link does ([`once`], what `tandem demo` prints); every page needs a
//! session (a browser without one is sent to `/login`), every form that changes something
//! carries the session's CSRF token and must come from this origin. The JSON API under
//! `/api/v1` keeps its Bearer token and is not affected.
//!
//! Pages are rendered here as strings through one escaping helper ([`html::esc`]). Secrets
//! never reach them: they show only what the store holds (events carry item fields, never
//! credentials), and the config is not in reach of this module.

mod html;
mod once;
mod overview;
mod session;

pub use once::{LINK_MINUTES as SIGNIN_LINK_MINUTES, SigninLinks};

use super::AppState;
use crate::store::{DeadAction, DeadResolution, EventFilter, EventStatus, QueuedEvent};
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use html::{Viewer, esc, page, row, table, url_part, when};
use serde::Deserialize;
use session::{Session, Sessions};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use tandem_core::{Side, to_text};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// Rows per page of links and events.
const PAGE_SIZE: u32 = 50;

struct Console {
    app: Arc<AppState>,
    sessions: Sessions,
}

/// The console's routes, to merge into the server's router.
pub(super) fn router(app: Arc<AppState>) -> Router {
    let console = Arc::new(Console {
        sessions: Sessions::new(app.admin_token.as_ref(), &app.console_users),
        app,
    });
    Router::new()
        .route("/", get(overview_page))
        .route("/login", get(login_page).post(login))
        .route("/signin", get(signin_once))
        .route("/logout", post(logout))
        .route("/links", get(links_page))
        .route("/links/{connection}/{jira_id}", get(timeline_page))
        .route("/events", get(events_page))
        .route("/events/retry-all", post(retry_all))
        .route("/events/{id}", get(event_page))
        .route("/events/{id}/{action}", post(event_action))
        .route("/conflicts", get(conflicts_page))
        .route("/audit", get(audit_page))
        .route("/console/overview.json", get(overview_json))
        .route("/console/console.css", get(css))
        .route("/console/console.js", get(js))
        .with_state(console)
}

/// Headers every console answer carries: nothing cached, nothing framed, no script or style
/// from anywhere but this server.
fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        (
            "content-security-policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

fn html_response(status: StatusCode, body: String) -> Response {
    harden(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

/// Who is looking: a signed-in session, or (for `/` only, as before the console existed) a
/// Bearer token on a non-browser request.
enum Access {
    Session(Session),
    Bearer,
}

impl Console {
    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        self.sessions.read(headers, Utc::now())
    }

    /// The page's viewer, or the answer to give instead: to `/login` when not signed in.
    fn viewer(&self, headers: &HeaderMap) -> Result<Session, Box<Response>> {
        self.session(headers)
            .ok_or_else(|| Box::new(harden(Redirect::to("/login").into_response())))
    }

    fn render(&self, access: &Access, title: &str, current: &str, body: &str) -> Response {
        let csrf;
        let viewer = match access {
            Access::Session(s) => {
                csrf = self.sessions.csrf(s);
                Viewer {
                    user: &s.user,
                    csrf: Some(&csrf),
                }
            }
            Access::Bearer => Viewer {
                user: "API token",
                csrf: None,
            },
        };
        html_response(StatusCode::OK, page(title, current, Some(&viewer), body))
    }

    /// The checks of every state-changing request: a session, this origin, its CSRF token.
    fn authorize_change(&self, headers: &HeaderMap, csrf: &str) -> Result<Session, Box<Response>> {
        let refuse = |status, why: &str| {
            html_response(
                status,
                page(
                    "Refused",
                    "",
                    None,
                    &format!(
                        "<p role=\"alert\">{}</p><p><a href=\"/\">Back to the console</a></p>",
                        esc(why)
                    ),
                ),
            )
        };
        let Some(s) = self.session(headers) else {
            return Err(Box::new(refuse(
                StatusCode::UNAUTHORIZED,
                "refused: sign in first (no valid session)",
            )));
        };
        if let Err(why) = session::same_origin(headers) {
            return Err(Box::new(refuse(StatusCode::FORBIDDEN, &why)));
        }
        if !self.sessions.csrf_ok(&s, csrf) {
            return Err(Box::new(refuse(
                StatusCode::FORBIDDEN,
                "refused: the form's CSRF token is missing or wrong; reload the page and try again",
            )));
        }
        Ok(s)
    }
}

fn store_failure(e: impl std::fmt::Display) -> Response {
    html_response(
        StatusCode::SERVICE_UNAVAILABLE,
        page(
            "Store unavailable",
            "",
            None,
            &format!(
                "<p role=\"alert\">The store did not answer: {}</p>",
                esc(&e.to_string())
            ),
        ),
    )
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

// --- sign-in --------------------------------------------------------------------------------

fn login_form(message: Option<&str>, open: bool) -> String {
    let mut body = String::new();
    if let Some(m) = message {
        let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(m));
    }
    if !open {
        body.push_str(
            "<p class=\"error\" role=\"alert\">The console is closed: set <code>server.admin_token</code> \
             (or <code>server.console_users</code>) in the config and restart Tandem.</p>",
        );
    }
    body.push_str(
        "<form method=\"post\" action=\"/login\" class=\"login\">\
         <label for=\"token\">Token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
         <p class=\"hint\">Your token from <code>server.console_users</code>, or the \
         <code>server.admin_token</code> of this Tandem's config.</p>\
         <button type=\"submit\">Sign in</button></form>",
    );
    page("Sign in", "", None, &body)
}

async fn login_page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if c.session(&headers).is_some() {
        return harden(Redirect::to("/").into_response());
    }
    html_response(StatusCode::OK, login_form(None, c.sessions.open()))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    // A sign-in posted from another site would log the victim into the attacker's session.
    if let Err(why) = session::same_origin(&headers) {
        return html_response(StatusCode::FORBIDDEN, login_form(Some(&why), true));
    }
    let started = c
        .sessions
        .user_for_token(f.token.trim())
        .and_then(|user| c.sessions.start(user, Utc::now()));
    match started {
        Some((_, value)) => redirect_setting_cookie(
            "/",
            &session::set_cookie(&value, session::over_https(&headers)),
        ),
        None => html_response(
            StatusCode::UNAUTHORIZED,
            login_form(
                Some("That token is not the admin token nor any console user's."),
                c.sessions.open(),
            ),
        ),
    }
}

#[derive(Deserialize)]
struct OnceQuery {
    #[serde(default)]
    once: String,
}

/// A one-time link (see [`once`]): a valid, unused code starts a session and goes on to `/`;
/// any other (used, expired, never issued) is refused alike, saying how to sign in instead.
async fn signin_once(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<OnceQuery>,
) -> Response {
    let now = Utc::now();
    let started = c
        .app
        .signin_links
        .redeem(&q.once, now)
        .and_then(|user| c.sessions.start(&user, now));
    match started {
        Some((_, value)) => redirect_setting_cookie(
            "/",
            &session::set_cookie(&value, session::over_https(&headers)),
        ),
        None => html_response(
            StatusCode::UNAUTHORIZED,
            login_form(
                Some(&format!(
                    "That sign-in link is not valid: each link works once, for {} minutes. \
                     Sign in with your token instead.",
                    once::LINK_MINUTES
                )),
                c.sessions.open(),
            ),
        ),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let s = match c.authorize_change(&headers, &f.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    c.sessions.revoke(&s, Utc::now());
    redirect_setting_cookie(
        "/login",
        &session::clear_cookie(session::over_https(&headers)),
    )
}

/// A `303` to `to` that sets (or clears) the session cookie.
fn redirect_setting_cookie(to: &str, set_cookie: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    if let Ok(v) = HeaderValue::from_str(set_cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    harden(r)
}

// --- overview -------------------------------------------------------------------------------

async fn figures(
    c: &Console,
) -> crate::store::StoreResult<BTreeMap<String, overview::ConnectionFigures>> {
    let store = &c.app.engine.store;
    let mut names: Vec<String> = c.app.engine.connections.keys().cloned().collect();
    names.sort();
    let depth = store.queue_depth().await?;
    let mut links = BTreeMap::new();
    for name in &names {
        links.insert(name.clone(), store.count_links(Some(name)).await?);
    }
    let recent = store.recent_events(overview::SAMPLE).await?;
    let cursors = store.list_cursors().await?;
    Ok(overview::figures(
        &names,
        &depth,
        &links,
        &recent,
        &cursors,
        Utc::now(),
    ))
}

/// An element the live update refreshes.
fn live(values: &BTreeMap<String, String>, key: &str) -> String {
    format!(
        "<span data-live=\"{}\">{}</span>",
        esc(key),
        esc(values.get(key).map(String::as_str).unwrap_or(""))
    )
}

async fn overview_page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    // `/` answered Bearer-token requests before the console existed; it still does.
    let access = if headers.contains_key(header::AUTHORIZATION) {
        if let Some(refused) = super::api::authorize(&c.app, &headers) {
            return refused;
        }
        Access::Bearer
    } else {
        match c.viewer(&headers) {
            Ok(s) => Access::Session(s),
            Err(r) => return *r,
        }
    };
    let figs = match figures(&c).await {
        Ok(f) => f,
        Err(e) => return store_failure(e),
    };
    let values = overview::live_values(&figs);
    let mut body = format!(
        "<p class=\"lede\">Store: {}. Figures cover the last hour and refresh every few seconds \
         (<span data-live-status>live</span>).</p>",
        esc(c.app.engine.store.backend())
    );
    if figs.is_empty() {
        body.push_str("<p class=\"empty\">No connection is configured.</p>");
    }
    // A side whose creates answered unreadably stops creating twins until it is fixed: the
    // most urgent thing an operator can be told, so it stands above the figures.
    for circuit in c
        .app
        .engine
        .store
        .create_circuits()
        .await
        .unwrap_or_default()
    {
        let _ = write!(
            body,
            "<p class=\"alert\" role=\"alert\"><strong>Creating twins on the {side} side of \
             {conn} is stopped</strong> since {at}: {reason}. Fix that side's create operation \
             and restart, or run <code>tandem creates reset --connection {conn} --side {side}</code>.</p>",
            side = circuit.side,
            conn = esc(&circuit.connection),
            at = esc(&circuit.opened_at.to_rfc3339()),
            reason = esc(&circuit.reason),
        );
    }
    for name in figs.keys() {
        let k = |what: &str| format!("{name}.{what}");
        let n = url_part(name);
        let _ = write!(
            body,
            "<section class=\"connection\" aria-labelledby=\"conn-{id}\">\
             <h2 id=\"conn-{id}\">{name}</h2>\
             <dl class=\"figures\">\
             <div><dt>Links</dt><dd><a href=\"/links?connection={n}\">{links}</a></dd></div>\
             <div><dt>Changes per minute</dt><dd>{rate}</dd></div>\
             <div><dt>Latency p50</dt><dd>{p50}</dd></div>\
             <div><dt>Latency p99</dt><dd>{p99}</dd></div>\
             <div><dt>Dead letters</dt><dd><a href=\"/events?connection={n}&amp;status=dead\">{dead}</a></dd></div>\
             <div><dt>Window</dt><dd>{window}</dd></div>\
             </dl>",
            id = esc(&url_part(name)),
            name = esc(name),
            links = live(&values, &k("links")),
            rate = live(&values, &k("rate")),
            p50 = live(&values, &k("p50")),
            p99 = live(&values, &k("p99")),
            dead = live(&values, &k("depth.dead")),
            window = live(&values, &k("window")),
        );
        let mut depth_rows = String::new();
        for st in EventStatus::ALL {
            depth_rows.push_str(&row(&[
                format!("<a href=\"/events?connection={n}&amp;status={st}\">{st}</a>"),
                live(&values, &k(&format!("depth.{st}"))),
            ]));
        }
        body.push_str(&table(
            &format!("Queue of {name} by status"),
            &["Status", "Events"],
            &depth_rows,
            "",
        ));
        let mut side_rows = String::new();
        for side in [Side::Jira, Side::External] {
            side_rows.push_str(&row(&[
                esc(side.as_str()),
                live(&values, &k(&format!("{side}.applied"))),
                live(&values, &k(&format!("{side}.error"))),
                live(&values, &k(&format!("{side}.poll"))),
                format!(
                    "<code>{}</code>",
                    live(&values, &k(&format!("{side}.cursor")))
                ),
            ]));
        }
        body.push_str(&table(
            &format!("Health of each side of {name}"),
            &[
                "Side",
                "Last change applied",
                "Last error",
                "Last poll",
                "Cursor",
            ],
            &side_rows,
            "",
        ));
        body.push_str("</section>");
    }
    c.render(&access, "Overview", "/", &body)
}

/// The overview's figures for the live update (the same keys as the page's `data-live`).
async fn overview_json(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if c.session(&headers).is_none() {
        return super::error(StatusCode::UNAUTHORIZED, "sign in at /login first");
    }
    match figures(&c).await {
        Ok(f) => harden(
            axum::Json(serde_json::json!({
                "at": Utc::now(),
                "values": overview::live_values(&f),
            }))
            .into_response(),
        ),
        Err(e) => super::error(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")),
    }
}

// --- links ----------------------------------------------------------------------------------

#[derive(Deserialize)]
struct LinksQuery {
    #[serde(default)]
    q: String,
    connection: Option<String>,
    page: Option<u32>,
}

fn connection_choices(c: &Console) -> Vec<(String, String)> {
    let mut names: Vec<String> = c.app.engine.connections.keys().cloned().collect();
    names.sort();
    std::iter::once((String::new(), "All connections".to_string()))
        .chain(names.into_iter().map(|n| (n.clone(), n)))
        .collect()
}

/// An empty query parameter means "any".
fn given(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn link_href(connection: &str, jira_id: &str) -> String {
    format!("/links/{}/{}", url_part(connection), url_part(jira_id))
}

async fn links_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<LinksQuery>,
) -> Response {
    let s = match c.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let connection = given(&q.connection);
    let page_no = q.page.unwrap_or(0);
    let text = q.q.trim();
    let store = &c.app.engine.store;
    let found = if text.is_empty() {
        store
            .list_links(connection, PAGE_SIZE, page_no.saturating_mul(PAGE_SIZE))
            .await
    } else {
        store
            .search_links(
                connection,
                text,
                PAGE_SIZE,
                page_no.saturating_mul(PAGE_SIZE),
            )
            .await
    };
    let links = match found {
        Ok(l) => l,
        Err(e) => return store_failure(e),
    };
    let mut body = format!(
        "<form method=\"get\" action=\"/links\" class=\"filters\" role=\"search\">\
         <div><label for=\"q\">Jira key, external id or field value</label>\
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{}\"></div>\
         <div><label for=\"connection\">Connection</label>\
         <select id=\"connection\" name=\"connection\">{}</select></div>\
         <button type=\"submit\">Search</button></form>",
        esc(text),
        html::options(&connection_choices(&c), connection),
    );
    let mut rows = String::new();
    for l in &links {
        let key = l.jira_key.as_deref().unwrap_or(&l.jira_id);
        rows.push_str(&row(&[
            format!(
                "<a href=\"{}\">{}</a>",
                esc(&link_href(&l.connection, &l.jira_id)),
                esc(key)
            ),
            esc(&l.external_id),
            esc(&l.connection),
            l.shadow.0.len().to_string(),
            l.version.to_string(),
        ]));
    }
    body.push_str(&table(
        "Links",
        &[
            "Jira issue",
            "External item",
            "Connection",
            "Fields",
            "Version",
        ],
        &rows,
        if text.is_empty() {
            "No links yet."
        } else {
            "No link matches."
        },
    ));
    body.push_str(&pager(
        "/links",
        &[("q", text), ("connection", connection.unwrap_or(""))],
        page_no,
        links.len() as u32 == PAGE_SIZE,
    ));
    c.render(&Access::Session(s), "Links", "/links", &body)
}

/// Previous / next links that keep the filters.
fn pager(path: &str, params: &[(&str, &str)], page_no: u32, more: bool) -> String {
    let href = |p: u32| {
        let mut h = format!("{path}?page={p}");
        for (k, v) in params {
            if !v.is_empty() {
                let _ = write!(h, "&{k}={}", url_part(v));
            }
        }
        esc(&h)
    };
    let mut out = String::from("<nav class=\"pager\" aria-label=\"Pages\">");
    if page_no > 0 {
        let _ = write!(
            out,
            "<a href=\"{}\" rel=\"prev\">Previous</a>",
            href(page_no - 1)
        );
    }
    let _ = write!(out, "<span>Page {}</span>", u64::from(page_no) + 1);
    if more && page_no < u32::MAX {
        let _ = write!(
            out,
            "<a href=\"{}\" rel=\"next\">Next</a>",
            href(page_no + 1)
        );
    }
    out.push_str("</nav>");
    out
}

async fn timeline_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path((connection, jira_id)): Path<(String, String)>,
) -> Response {
    let s = match c.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let store = &c.app.engine.store;
    let link = match store.link_by_item(&connection, Side::Jira, &jira_id).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return html_response(
                StatusCode::NOT_FOUND,
                page(
                    "No such link",
                    "/links",
                    None,
                    &format!(
                        "<p>No link in {} holds Jira issue {}. <a href=\"/links\">All links</a></p>",
                        esc(&connection),
                        esc(&jira_id)
                    ),
                ),
            );
        }
        Err(e) => return store_failure(e),
    };
    let entries = match store.link_audit(&connection, &jira_id, 1000).await {
        Ok(e) => e,
        Err(e) => return store_failure(e),
    };
    let key = link
        .jira_key
        .clone()
        .unwrap_or_else(|| link.jira_id.clone());
    let mut body = format!(
        "<dl class=\"facts\"><div><dt>Connection</dt><dd>{}</dd></div>\
         <div><dt>Jira issue</dt><dd>{} (id {})</dd></div>\
         <div><dt>External item</dt><dd>{}</dd></div>\
         <div><dt>Version</dt><dd>{}</dd></div></dl>",
        esc(&link.connection),
        esc(&key),
        esc(&link.jira_id),
        esc(&link.external_id),
        link.version
    );
    let mut current = String::new();
    for (mapping, entry) in &link.shadow.0 {
        current.push_str(&row(&[
            format!("<code>{}</code>", esc(mapping)),
            esc(&shown(&entry.value)),
            esc(entry.source.as_str()),
            when(&entry.source_ts),
        ]));
    }
    body.push_str("<h2>Values in sync</h2>");
    body.push_str(&table(
        "The last value each field was synced with",
        &["Field mapping", "Value", "Written on", "As of"],
        &current,
        "No field synced yet.",
    ));
    let mut rows = String::new();
    for a in &entries {
        rows.push_str(&row(&[
            when(&a.at),
            esc(a.target.as_str()),
            audit_field(a),
            change(a),
            a.event_id
                .map(|id| format!("<a href=\"/events/{id}\">{id}</a>"))
                .unwrap_or_else(|| "–".into()),
            esc(&a.actor),
        ]));
    }
    body.push_str("<h2>Timeline</h2>");
    body.push_str(&table(
        "Every field written on either side, oldest first",
        &["When", "Side written", "Field", "Old → new", "Event", "By"],
        &rows,
        "Nothing has been written for this link yet.",
    ));
    let conflicts = match store
        .list_conflicts(Some(&connection), Some(&jira_id), 100, 0)
        .await
    {
        Ok(k) => k,
        Err(e) => return store_failure(e),
    };
    body.push_str("<h2>Conflicts</h2>");
    body.push_str(&table(
        "Conflicts the policy settled for this link, newest first",
        &[
            "When",
            "Field mapping",
            "Jira's value",
            "External value",
            "Decision",
            "Event",
        ],
        &conflict_rows(&conflicts, false),
        "No conflict on this link.",
    ));
    c.render(
        &Access::Session(s),
        &format!("Link {key} ↔ {}", link.external_id),
        "/links",
        &body,
    )
}

/// A field value as people read it; an empty one says so rather than showing nothing.
fn shown(v: &tandem_core::FieldValue) -> String {
    if v.is_empty() {
        "(empty)".into()
    } else {
        to_text(v)
    }
}

/// `old → new` for an audit entry.
fn change(a: &crate::store::AuditEntry) -> String {
    format!(
        "<del>{}</del> → <ins>{}</ins>",
        esc(&a
            .from
            .as_ref()
            .map(shown)
            .unwrap_or_else(|| "(none)".into())),
        esc(&shown(&a.to))
    )
}

/// The field of an audit entry, by its mapping (both sides' field ids).
fn audit_field(a: &crate::store::AuditEntry) -> String {
    format!("<code>{}</code>", esc(&a.mapping_key))
}

// --- events ---------------------------------------------------------------------------------

#[derive(Deserialize)]
struct EventsQuery {
    connection: Option<String>,
    side: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// The events filter from query or form fields; `Err` names the bad value.
fn event_filter(
    connection: &Option<String>,
    side: &Option<String>,
    status: &Option<String>,
    since: &Option<String>,
    until: &Option<String>,
) -> Result<EventFilter, String> {
    let now = Utc::now();
    Ok(EventFilter {
        connection: given(connection).map(str::to_string),
        side: given(side)
            .map(str::parse::<Side>)
            .transpose()
            .map_err(|e| e.to_string())?,
        status: given(status).map(str::parse::<EventStatus>).transpose()?,
        since: given(since)
            .map(|t| parse_instant("since", t, now))
            .transpose()?,
        until: given(until)
            .map(|t| parse_instant("until", t, now))
            .transpose()?,
        limit: PAGE_SIZE * 4,
    })
}

/// A time filter's bound: RFC 3339 (`2026-12-03T10:00:00Z`), what a `datetime-local` input
/// sends (`2026-12-03T10:00`, read as UTC like every time the console shows), or a span back
/// from `now` (`30m`, `1h`, `24h`, `7d`).
fn parse_instant(
    key: &str,
    text: &str,
    now: chrono::DateTime<Utc>,
) -> Result<chrono::DateTime<Utc>, String> {
    use chrono::{NaiveDateTime, TimeDelta};
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for form in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, form) {
            return Ok(t.and_utc());
        }
    }
    let ago = text
        .strip_suffix(['m', 'h', 'd'])
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .and_then(|n| match text.chars().last() {
            Some('m') => TimeDelta::try_minutes(n),
            Some('h') => TimeDelta::try_hours(n),
            _ => TimeDelta::try_days(n),
        })
        .and_then(|d| now.checked_sub_signed(d));
    ago.ok_or_else(|| {
        format!(
            "`{key}={text}` is not a time: use 2026-12-03T10:00 (UTC), RFC 3339 \
             (2026-12-03T10:00:00Z) or a span back from now (30m, 1h, 24h, 7d)"
        )
    })
}

/// A bound as a `datetime-local` input shows it (UTC, to the minute).
fn local_input(t: Option<chrono::DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

fn bad_request(why: &str) -> Response {
    html_response(
        StatusCode::BAD_REQUEST,
        page(
            "Bad request",
            "",
            None,
            &format!("<p role=\"alert\">{}</p>", esc(why)),
        ),
    )
}

fn item_label(q: &QueuedEvent) -> String {
    q.event
        .item_key
        .clone()
        .unwrap_or_else(|| q.event.item_id.clone())
}

async fn events_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Response {
    let s = match c.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let filter = match event_filter(&q.connection, &q.side, &q.status, &q.since, &q.until) {
        Ok(f) => f,
        Err(why) => return bad_request(&why),
    };
    let events = match c.app.engine.store.list_events(&filter).await {
        Ok(e) => e,
        Err(e) => return store_failure(e),
    };
    let sides = [
        (String::new(), "Both sides".to_string()),
        ("jira".to_string(), "jira".to_string()),
        ("external".to_string(), "external".to_string()),
    ];
    let statuses: Vec<(String, String)> = std::iter::once((String::new(), "Any status".into()))
        .chain(
            EventStatus::ALL
                .iter()
                .map(|s| (s.to_string(), s.to_string())),
        )
        .collect();
    let status = filter.status.map(|s| s.as_str());
    let side = filter.side.map(|s| s.as_str());
    let mut body = format!(
        "<form method=\"get\" action=\"/events\" class=\"filters\">\
         <div><label for=\"connection\">Connection</label><select id=\"connection\" name=\"connection\">{}</select></div>\
         <div><label for=\"side\">Side</label><select id=\"side\" name=\"side\">{}</select></div>\
         <div><label for=\"status\">Status</label><select id=\"status\" name=\"status\">{}</select></div>\
         <div><label for=\"since\">Received since (UTC)</label><input id=\"since\" name=\"since\" type=\"datetime-local\" value=\"{}\"></div>\
         <div><label for=\"until\">Received before (UTC)</label><input id=\"until\" name=\"until\" type=\"datetime-local\" value=\"{}\"></div>\
         <button type=\"submit\">Filter</button></form>",
        html::options(&connection_choices(&c), filter.connection.as_deref()),
        html::options(&sides, side),
        html::options(&statuses, status),
        esc(&local_input(filter.since)),
        esc(&local_input(filter.until)),
    );
    // Quick spans back from now, keeping the other filters.
    let mut keep = String::new();
    for (k, v) in [
        ("connection", filter.connection.as_deref()),
        ("side", side),
        ("status", status),
    ] {
        if let Some(v) = v {
            let _ = write!(keep, "&{k}={}", url_part(v));
        }
    }
    body.push_str("<p class=\"spans\">Received in the last: ");
    for (i, span) in ["1h", "24h", "7d"].iter().enumerate() {
        let _ = write!(
            body,
            "{}<a href=\"{}\">{span}</a>",
            if i > 0 { ", " } else { "" },
            esc(&format!("/events?since={span}{keep}"))
        );
    }
    body.push_str("</p>");
    if filter.status == Some(EventStatus::Dead) && !events.is_empty() {
        let csrf = c.sessions.csrf(&s);
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/events/retry-all\" class=\"bulk\">{}\
             <input type=\"hidden\" name=\"connection\" value=\"{}\">\
             <input type=\"hidden\" name=\"side\" value=\"{}\">\
             <input type=\"hidden\" name=\"since\" value=\"{}\">\
             <input type=\"hidden\" name=\"until\" value=\"{}\">\
             <button type=\"submit\">Retry every dead letter matching this filter</button></form>",
            html::csrf_field(&csrf),
            esc(filter.connection.as_deref().unwrap_or("")),
            esc(side.unwrap_or("")),
            // Absolute, so the retry covers what the page showed even if "1h" has moved on.
            esc(&filter.since.map(|t| t.to_rfc3339()).unwrap_or_default()),
            esc(&filter.until.map(|t| t.to_rfc3339()).unwrap_or_default()),
        );
    }
    let mut rows = String::new();
    for e in &events {
        rows.push_str(&row(&[
            format!("<a href=\"/events/{id}\">{id}</a>", id = e.id),
            esc(&e.event.connection),
            esc(e.event.source.as_str()),
            esc(&item_label(e)),
            format!(
                "<span class=\"status status-{st}\">{st}</span>",
                st = e.status
            ),
            e.attempts.to_string(),
            esc(&truncate(e.last_error.as_deref().unwrap_or(""), 120)),
            when(&e.received_at),
        ]));
    }
    let title = if filter.status == Some(EventStatus::Dead) {
        "Dead letters"
    } else {
        "Events"
    };
    body.push_str(&table(
        &format!("{title}, newest first"),
        &[
            "Event",
            "Connection",
            "From",
            "Item",
            "Status",
            "Attempts",
            "Last error",
            "Received",
        ],
        &rows,
        "No event matches.",
    ));
    let current = if title == "Dead letters" {
        "/events?status=dead"
    } else {
        "/events"
    };
    c.render(&Access::Session(s), title, current, &body)
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

async fn event_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let s = match c.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return bad_request(&format!("event id must be a number, got `{id}`"));
    };
    let store = &c.app.engine.store;
    let e = match store.get_event(id).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return html_response(
                StatusCode::NOT_FOUND,
                page(
                    "No such event",
                    "/events",
                    None,
                    &format!("<p>There is no event {id}. <a href=\"/events\">All events</a></p>"),
                ),
            );
        }
        Err(e) => return store_failure(e),
    };
    let link = store
        .link_by_item(&e.event.connection, e.event.source, &e.event.item_id)
        .await
        .ok()
        .flatten();
    let opt_when =
        |t: &Option<chrono::DateTime<Utc>>| t.as_ref().map(when).unwrap_or_else(|| "–".into());
    let mut body = format!(
        "<dl class=\"facts\">\
         <div><dt>Status</dt><dd><span class=\"status status-{st}\" data-status>{st}</span></dd></div>\
         <div><dt>Connection</dt><dd>{conn}</dd></div>\
         <div><dt>From</dt><dd>{side}</dd></div>\
         <div><dt>Item</dt><dd>{item}</dd></div>\
         <div><dt>Link</dt><dd>{link}</dd></div>\
         <div><dt>Kind</dt><dd>{kind:?}</dd></div>\
         <div><dt>Entered by</dt><dd>{origin:?}</dd></div>\
         <div><dt>Failed attempts</dt><dd>{attempts}</dd></div>\
         <div><dt>Next attempt</dt><dd>{next}</dd></div>\
         <div><dt>Lease</dt><dd>{lease}</dd></div>\
         <div><dt>Changed at source</dt><dd>{source_ts}</dd></div>\
         <div><dt>Received</dt><dd>{received}</dd></div>\
         <div><dt>Last update</dt><dd>{updated}</dd></div>\
         </dl>",
        st = e.status,
        conn = esc(&e.event.connection),
        side = esc(e.event.source.as_str()),
        item = esc(&match &e.event.item_key {
            Some(k) => format!("{k} (id {})", e.event.item_id),
            None => e.event.item_id.clone(),
        }),
        link = link
            .map(|l| format!(
                "<a href=\"{}\">{} ↔ {}</a>",
                esc(&link_href(&l.connection, &l.jira_id)),
                esc(l.jira_key.as_deref().unwrap_or(&l.jira_id)),
                esc(&l.external_id)
            ))
            .unwrap_or_else(|| "not linked yet".into()),
        kind = e.event.kind,
        origin = e.event.origin,
        attempts = e.attempts,
        next = if e.status == EventStatus::Pending {
            when(&e.next_attempt_at)
        } else {
            "–".into()
        },
        lease = match (&e.lease_owner, e.status) {
            (Some(owner), EventStatus::Leased) =>
                format!("{} until {}", esc(owner), opt_when(&e.lease_expires_at)),
            _ => "–".into(),
        },
        source_ts = when(&e.event.source_ts),
        received = when(&e.received_at),
        updated = when(&e.updated_at),
    );
    if let Some(err) = &e.last_error {
        let label = match e.status {
            EventStatus::Dead => "Why it is a dead letter",
            EventStatus::Ignored => "Why it was not synced",
            EventStatus::Done => "Note",
            _ => "Last error",
        };
        let _ = write!(
            body,
            "<h2>{label}</h2><pre class=\"error-text\">{}</pre>",
            esc(err)
        );
    }
    let attempts = match store.list_attempts(id).await {
        Ok(a) => a,
        Err(e) => return store_failure(e),
    };
    let mut rows = String::new();
    for a in &attempts {
        rows.push_str(&row(&[
            a.attempt.to_string(),
            when(&a.at),
            format!(
                "<span class=\"status status-{o}\">{o}</span>",
                o = esc(&a.outcome)
            ),
            a.duration_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_else(|| "–".into()),
            esc(a.error.as_deref().unwrap_or("")),
        ]));
    }
    body.push_str("<h2>Attempts</h2>");
    body.push_str(&table(
        "Every attempt, oldest first (the newest 50 are kept)",
        &["Attempt", "When", "Outcome", "Took", "Error"],
        &rows,
        "Not attempted yet.",
    ));
    if e.status == EventStatus::Dead {
        let csrf = html::csrf_field(&c.sessions.csrf(&s));
        let _ = write!(
            body,
            "<div class=\"actions\">\
             <form method=\"post\" action=\"/events/{id}/retry\">{csrf}<button type=\"submit\">Retry</button></form>\
             <form method=\"post\" action=\"/events/{id}/discard\">{csrf}<button type=\"submit\" class=\"danger\">Discard</button></form>\
             </div>"
        );
    }
    let mut fields = String::new();
    for (name, value) in &e.event.fields {
        fields.push_str(&row(&[
            format!("<code>{}</code>", esc(name)),
            esc(&shown(value)),
        ]));
    }
    body.push_str("<h2>Payload</h2>");
    body.push_str(&table(
        "The fields the event carried",
        &["Field", "Value"],
        &fields,
        if e.event.needs_fetch {
            "The event carried no values: the item is read afresh when it is processed."
        } else {
            "The event carried no fields."
        },
    ));
    c.render(
        &Access::Session(s),
        &format!("Event {id}"),
        "/events",
        &body,
    )
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    connection: Option<String>,
    side: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

async fn resolve(
    c: &Console,
    headers: &HeaderMap,
    f: &ActionForm,
    action: DeadAction,
    event_id: Option<i64>,
    back: String,
) -> Response {
    let s = match c.authorize_change(headers, &f.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let filter = match event_filter(&f.connection, &f.side, &None, &f.since, &f.until) {
        Ok(filter) => filter,
        Err(why) => return bad_request(&why),
    };
    let r = DeadResolution {
        action,
        event_id,
        connection: filter.connection,
        side: filter.side,
        since: filter.since,
        until: filter.until,
        actor: format!("console:{}", s.user),
    };
    match c.app.engine.store.resolve_dead(&r, Utc::now()).await {
        Ok(n) => {
            if n > 0 && action == DeadAction::Retry {
                c.app.engine.wake.notify_one();
            }
            harden(Redirect::to(&back).into_response())
        }
        Err(e) => store_failure(e),
    }
}

async fn event_action(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    let action = match action.as_str() {
        "retry" => DeadAction::Retry,
        "discard" => DeadAction::Discard,
        other => return bad_request(&format!("unknown action `{other}`: retry or discard")),
    };
    let Ok(id) = id.parse::<i64>() else {
        return bad_request(&format!("event id must be a number, got `{id}`"));
    };
    resolve(&c, &headers, &f, action, Some(id), format!("/events/{id}")).await
}

async fn retry_all(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> Response {
    let mut back = String::from("/events?status=dead");
    for (k, v) in [
        ("connection", &f.connection),
        ("side", &f.side),
        ("since", &f.since),
        ("until", &f.until),
    ] {
        if let Some(v) = given(v) {
            let _ = write!(back, "&{k}={}", url_part(v));
        }
    }
    resolve(&c, &headers, &f, DeadAction::Retry, None, back).await
}

// --- conflicts ------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ConflictsQuery {
    connection: Option<String>,
    page: Option<u32>,
}

/// A conflict's value on one side, marked when it is the one kept (in words, not only by
/// style), with the time of that side's edit when known.
fn conflict_value(
    value: &tandem_core::FieldValue,
    edited: &Option<chrono::DateTime<Utc>>,
    kept: bool,
) -> String {
    let mut out = if kept {
        format!(
            "<strong class=\"kept\">{}</strong> <span class=\"tag\">kept</span>",
            esc(&shown(value))
        )
    } else {
        format!("<span class=\"lost\">{}</span>", esc(&shown(value)))
    };
    if let Some(t) = edited {
        let _ = write!(out, "<br><small>edited {}</small>", when(t));
    }
    out
}

/// The rows of a conflicts table; `with_link` adds the link's column (the conflicts page;
/// a link's own timeline does without it).
fn conflict_rows(entries: &[crate::store::ConflictEntry], with_link: bool) -> String {
    let mut rows = String::new();
    for k in entries {
        let mut cells = vec![when(&k.at)];
        if with_link {
            cells.push(format!(
                "<a href=\"{}\">{} ↔ {}</a>",
                esc(&link_href(&k.connection, &k.jira_id)),
                esc(k.jira_key.as_deref().unwrap_or(&k.jira_id)),
                esc(&k.external_id)
            ));
        }
        cells.extend([
            format!("<code>{}</code>", esc(&k.mapping_key)),
            conflict_value(&k.jira_value, &k.jira_edited_at, k.winner == Side::Jira),
            conflict_value(
                &k.external_value,
                &k.external_edited_at,
                k.winner == Side::External,
            ),
            format!(
                "<code>{}</code>: {} kept ({})",
                esc(k.policy.as_str()),
                esc(k.winner.as_str()),
                esc(&k.detail)
            ),
            k.event_id
                .map(|id| format!("<a href=\"/events/{id}\">{id}</a>"))
                .unwrap_or_else(|| "–".into()),
        ]);
        rows.push_str(&row(&cells));
    }
    rows
}

async fn conflicts_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<ConflictsQuery>,
) -> Response {
    let s = match c.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let connection = given(&q.connection);
    let page_no = q.page.unwrap_or(0);
    // A page past the end is an empty page, as on the links page.
    let offset = page_no.saturating_mul(PAGE_SIZE);
    let found = c
        .app
        .engine
        .store
        .list_conflicts(connection, None, PAGE_SIZE, offset)
        .await;
    let entries = match found {
        Ok(e) => e,
        Err(e) => return store_failure(e),
    };
    let mut body = format!(
        "<p class=\"lede\">When both sides changed a field since the last sync, the \
         connection's conflict policy (<code>later_wins</code>, <code>jira_wins</code> or \
         <code>external_wins</code>, or the field's own) keeps one side's value; the other \
         side then gets it too. Values are shown in Jira's terms.</p>\
         <form method=\"get\" action=\"/conflicts\" class=\"filters\">\
         <div><label for=\"connection\">Connection</label>\
         <select id=\"connection\" name=\"connection\">{}</select></div>\
         <button type=\"submit\">Filter</button></form>",
        html::options(&connection_choices(&c), connection),
    );
    body.push_str(&table(
        "Conflicts settled by the policy, newest first",
        &[
            "When",
            "Link (Jira ↔ external)",
            "Field mapping",
            "Jira's value",
            "External value",
            "Decision",
            "Event",
        ],
        &conflict_rows(&entries, true),
        if page_no > 0 {
            "No more conflicts."
        } else {
            "No conflict yet: no field has been changed on both sides between two syncs."
        },
    ));
    body.push_str(&pager(
        "/conflicts",
        &[("connection", connection.unwrap_or(""))],
        page_no,
        entries.len() as u32 == PAGE_SIZE,
    ));
    c.render(&Access::Session(s), "Conflicts", "/conflicts", &body)
}

// --- audit ----------------------------------------------------------------------------------

async fn audit_page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let s = match c.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let store = &c.app.engine.store;
    let (actions, writes) = match (
        store.list_operator_actions(100).await,
        store.list_audit(None, 200).await,
    ) {
        (Ok(a), Ok(w)) => (a, w),
        (Err(e), _) | (_, Err(e)) => return store_failure(e),
    };
    let mut rows = String::new();
    for a in &actions {
        let scope = match a.event_id {
            Some(id) => format!("<a href=\"/events/{id}\">event {id}</a>"),
            None => esc(&format!(
                "every dead letter of {} from {}",
                a.connection.as_deref().unwrap_or("every connection"),
                a.side.map(|s| s.as_str()).unwrap_or("either side")
            )),
        };
        rows.push_str(&row(&[
            when(&a.at),
            esc(&a.actor),
            esc(a.action.as_str()),
            scope,
            a.events.to_string(),
        ]));
    }
    let mut body = String::from("<h2>Operator actions</h2>");
    body.push_str(&table(
        "Retries and discards, newest first",
        &["When", "Who", "Action", "On", "Events changed"],
        &rows,
        "No operator action yet.",
    ));
    let mut rows = String::new();
    for a in &writes {
        rows.push_str(&row(&[
            when(&a.at),
            format!(
                "<a href=\"{}\">{} ↔ {}</a>",
                esc(&link_href(&a.connection, &a.jira_id)),
                esc(&a.jira_id),
                esc(&a.external_id)
            ),
            esc(a.target.as_str()),
            audit_field(a),
            change(a),
            a.event_id
                .map(|id| format!("<a href=\"/events/{id}\">{id}</a>"))
                .unwrap_or_else(|| "–".into()),
        ]));
    }
    body.push_str("<h2>Field writes</h2>");
    body.push_str(&table(
        "The newest writes on either side",
        &[
            "When",
            "Link (Jira id ↔ external id)",
            "Side written",
            "Field",
            "Old → new",
            "Event",
        ],
        &rows,
        "Nothing written yet.",
    ));
    c.render(&Access::Session(s), "Audit", "/audit", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds_read_every_accepted_form_and_name_a_bad_one() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| parse_instant("since", s, now).map(|t| t.to_rfc3339());
        let ok = |s: &str| Ok(s.to_string());
        assert_eq!(
            at("2026-12-03T10:00:00+01:00"),
            ok("2026-12-03T09:00:00+00:00")
        );
        assert_eq!(at("2026-12-03T10:00"), ok("2026-12-03T10:00:00+00:00"));
        assert_eq!(at("2026-12-03T10:00:30"), ok("2026-12-03T10:00:30+00:00"));
        assert_eq!(at("1h"), ok("2026-12-03T11:00:00+00:00"));
        assert_eq!(at("24h"), ok("2026-12-02T12:00:00+00:00"));
        assert_eq!(at("30m"), ok("2026-12-03T11:30:00+00:00"));
        assert_eq!(at("7d"), ok("2026-11-26T12:00:00+00:00"));
        for bad in [
            "yesterday",
            "-1h",
            "1w",
            "h",
            "2026-13-03T10:00",
            "99999999999999d",
        ] {
            let err = at(bad).unwrap_err();
            assert!(err.contains(&format!("`since={bad}`")), "{err}");
        }
    }
}
