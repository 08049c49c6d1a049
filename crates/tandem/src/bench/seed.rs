//! The seed guide's strategy, translated call for call, as the benchmark's baseline.
//!
//! The guide runs two Power Scripts inside Jira. Here they are a small HTTP receiver that
//! makes, over REST, the calls those scripts make:
//!
//! - **Incoming** (`POST /incoming`, the guide's "custom REST endpoint"): parse the
//!   `_externalData` body, run one JQL search for the issue whose "External ID" is the
//!   payload's `sourceIssueId`, then assign each field of the payload to its mapped Jira field
//!   — one `PUT /rest/api/2/issue/{key}` per field, as `%jiraKey%.%jiraField% = f.value` does
//!   per loop iteration. Answers 200, or 500 when the body does not parse, like the script.
//! - **Outgoing** (`POST /outgoing`, the SIL listener on "Issue Updated"): build
//!   `_externalData` from every mapped field of the issue and `POST` it to
//!   `/API/issue/{externalId}` with Basic auth. The script reads the issue's values
//!   (`key.%jiraField%`) inside Jira when it runs, without a remote call; here they are read
//!   from the sandbox's state in-process at that moment, for the same reason: a snapshot
//!   taken when the event fired would, between two of the incoming script's assignments,
//!   hold the half-applied issue and post it back — an endless ping-pong the real script
//!   does not have.
//!
//! Like the scripts, it has no echo suppression: its own writes come back as webhooks and are
//! handled like any other. Two departures, neither of which changes the number of calls: the
//! External ID is searched with a quoted phrase (`~ "\"EXT-1\""`, as a text field requires; the
//! guide's unquoted `= EXT-1` is refused by Jira) and the exact match is picked among the hits;
//! and a webhook budget, set by the benchmark for each edit (or phase), stops an endless
//! ping-pong — each webhook dropped for it is counted and reported.

use super::SEED_FIELDS;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Reads an issue's mapped fields as strings, in-process (what a SIL script sees).
pub type ReadIssue = Arc<dyn Fn(&str) -> Option<serde_json::Map<String, Value>> + Send + Sync>;

/// Where the two systems are and how to log in to them.
pub struct SeedSettings {
    pub jira_url: String,
    pub jira_email: String,
    pub jira_token: String,
    pub project: String,
    /// The id of Jira's "External ID" field.
    pub link_field: String,
    pub external_url: String,
    pub external_user: String,
    pub external_password: String,
    pub read_issue: ReadIssue,
}

struct Shared {
    settings: SeedSettings,
    http: reqwest::Client,
    /// Requests being handled right now (the benchmark waits for 0 before counting).
    in_flight: AtomicI64,
    /// Webhooks received, handled or not (the benchmark waits for this to stop moving).
    received: AtomicI64,
    /// False once the run is over: webhooks are acknowledged and ignored.
    active: AtomicBool,
    /// Webhooks left before the ping-pong guard drops them.
    budget: AtomicI64,
    dropped: AtomicU64,
}

/// Counts a request as in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicI64);

impl<'a> InFlight<'a> {
    fn new(counter: &'a AtomicI64) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The running baseline receiver.
pub struct SeedBaseline {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl SeedBaseline {
    pub async fn start(settings: SeedSettings) -> anyhow::Result<SeedBaseline> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let shared = Arc::new(Shared {
            settings,
            http,
            in_flight: AtomicI64::new(0),
            received: AtomicI64::new(0),
            active: AtomicBool::new(true),
            budget: AtomicI64::new(i64::MAX),
            dropped: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/incoming", post(incoming))
            .route("/outgoing", post(outgoing))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "seed baseline receiver stopped with an error");
            }
        });
        Ok(SeedBaseline {
            shared,
            addr,
            stop,
            server,
        })
    }

    /// Where the external system sends its webhooks.
    pub fn incoming_url(&self) -> String {
        format!("http://{}/incoming", self.addr)
    }

    /// Where Jira sends its webhooks.
    pub fn outgoing_url(&self) -> String {
        format!("http://{}/outgoing", self.addr)
    }

    /// Sets how many more webhooks are handled before the ping-pong guard drops the rest.
    pub fn set_budget(&self, webhooks: i64) {
        self.shared.budget.store(webhooks, Ordering::SeqCst);
    }

    /// Requests being handled.
    pub fn busy(&self) -> i64 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Webhooks the guard dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// Webhooks received so far.
    pub fn received(&self) -> i64 {
        self.shared.received.load(Ordering::SeqCst)
    }

    /// Ends the run: from now on webhooks are acknowledged and ignored, so no ping-pong can
    /// outlive it. Returns how many webhooks the guard dropped.
    pub fn stop(&self) -> u64 {
        self.shared.active.store(false, Ordering::SeqCst);
        self.shared.dropped.load(Ordering::SeqCst)
    }

    pub async fn shutdown(self) {
        self.stop();
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(5), self.server)
            .await
            .is_err()
        {
            tracing::warn!("seed baseline receiver did not stop in time");
        }
    }
}

impl Shared {
    /// Whether this webhook is handled (the run is on and the guard has budget left).
    fn admit(&self) -> bool {
        self.received.fetch_add(1, Ordering::SeqCst);
        if !self.active.load(Ordering::SeqCst) {
            return false;
        }
        if self.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
            self.dropped.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    fn jira(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.basic_auth(&self.settings.jira_email, Some(&self.settings.jira_token))
    }
}

/// The incoming script: one JQL search, then one field assignment (one PUT) per field.
async fn incoming(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    if !shared.admit() {
        return StatusCode::OK;
    }
    let _busy = InFlight::new(&shared.in_flight);
    let Ok(data) = serde_json::from_slice::<Value>(&body) else {
        // "Error parsing payload data!", 500.
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    let Some(source_id) = data["sourceIssueId"].as_str().map(str::to_string) else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    let s = &shared.settings;
    let phrase = source_id.replace('\\', "\\\\").replace('"', "\\\"");
    let jql = format!(
        "project = {} AND \"External ID\" ~ \"\\\"{phrase}\\\"\"",
        s.project
    );
    let search = shared
        .jira(
            shared
                .http
                .post(format!("{}/rest/api/3/search/jql", s.jira_url)),
        )
        .json(&json!({ "jql": jql, "fields": [s.link_field], "maxResults": 50 }))
        .send()
        .await;
    let issues: Value = match search {
        Ok(resp) if resp.status().is_success() => resp.json().await.unwrap_or(Value::Null),
        _ => return StatusCode::OK,
    };
    let hits = issues["issues"].as_array().cloned().unwrap_or_default();
    let issue = hits
        .iter()
        .find(|i| i["fields"][&s.link_field].as_str() == Some(source_id.as_str()))
        .or_else(|| hits.first());
    let Some(key) = issue.and_then(|i| i["key"].as_str()) else {
        // "error could be sent to external system if needed"
        return StatusCode::OK;
    };
    for field in data["fields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let id = match &field["fieldId"] {
            Value::Number(n) => n.as_u64(),
            Value::String(t) => t.trim().parse().ok(),
            _ => None,
        };
        let Some(jira_field) = id.and_then(|id| {
            SEED_FIELDS
                .iter()
                .find(|(ext, _)| *ext == id)
                .map(|(_, jira)| *jira)
        }) else {
            continue;
        };
        let value = field["value"].as_str().unwrap_or_default();
        // REST v2 takes every mapped field as a plain string, as SIL assignments do.
        let _ = shared
            .jira(
                shared
                    .http
                    .put(format!("{}/rest/api/2/issue/{key}", s.jira_url)),
            )
            .json(&json!({ "fields": { jira_field: value } }))
            .send()
            .await;
    }
    StatusCode::OK
}

/// The outgoing script (listener on "Issue Updated"): one POST of every mapped field.
async fn outgoing(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::OK;
    };
    if event["webhookEvent"] != "jira:issue_updated" || !shared.admit() {
        return StatusCode::OK;
    }
    let _busy = InFlight::new(&shared.in_flight);
    let s = &shared.settings;
    let Some(key) = event["issue"]["key"].as_str() else {
        return StatusCode::OK;
    };
    let Some(fields) = (s.read_issue)(key) else {
        return StatusCode::OK;
    };
    let Some(external_id) = fields
        .get(&s.link_field)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
    else {
        return StatusCode::OK;
    };
    let data = json!({
        "sourceIssueId": external_id,
        "fields": SEED_FIELDS.iter().map(|(ext, jira)| json!({
            "fieldName": jira,
            "fieldId": ext,
            "value": match fields.get(*jira) {
                Some(Value::String(v)) => v.clone(),
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            },
        })).collect::<Vec<_>>(),
    });
    let _ = shared
        .http
        .post(format!("{}/API/issue/{external_id}", s.external_url))
        .basic_auth(&s.external_user, Some(&s.external_password))
        .json(&data)
        .send()
        .await;
    StatusCode::OK
}
