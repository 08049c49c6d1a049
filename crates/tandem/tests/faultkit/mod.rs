//! What the disk, remote and PostgreSQL fault tests add to the reliability harness
//! (`reliability/mod.rs`): a forwarding proxy that records every answer the instances gave
//! (status, time taken, the event ids of a `202`)
//! and a clock on the writes that reach the sandboxes, to measure how long an edit took to
//! cross while another connection was sick.
//!
//! The recorded answers are what make "the webhook route answers 503 while the store is
//! gone" and "a 202 names only stored events" checkable: the sandboxes only retry, they do
//! not say what they were told.
#![allow(dead_code)]

use crate::reliability::{EXT_TOKEN, JIRA_SECRET, Load, find_twins};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tandem_sandbox::{ExternalSandbox, JiraSandbox, RecordedRequest};

/// One answer an instance gave to a forwarded webhook delivery.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When the delivery reached the proxy.
    pub at: Instant,
    /// How long the instance took to answer (or to fail).
    pub took: Duration,
    /// The instance's status; `None` when it gave none (connection refused or reset, or no
    /// answer within the proxy's 30 s).
    pub status: Option<u16>,
    /// The event ids a `202` named as queued.
    pub events: Vec<i64>,
}

/// A forwarding proxy like the harness's `Proxy`, which also records every answer.
pub struct RecordingProxy {
    pub url: String,
    backends: Arc<RwLock<Vec<Option<String>>>>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

struct ProxyState {
    backends: Arc<RwLock<Vec<Option<String>>>>,
    next: AtomicUsize,
    answers: Arc<Mutex<Vec<Answer>>>,
    client: reqwest::Client,
}

impl RecordingProxy {
    pub async fn start(n: usize) -> RecordingProxy {
        let backends = Arc::new(RwLock::new(vec![None; n]));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(ProxyState {
            backends: backends.clone(),
            next: AtomicUsize::new(0),
            answers: answers.clone(),
            // Longer than any wait inside an instance, so the instance's own answer is what
            // gets recorded, however late it comes.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        });
        let app = Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RecordingProxy {
            url,
            backends,
            answers,
        }
    }

    /// Points slot `i` at an instance (`None`: down).
    pub fn set(&self, i: usize, url: Option<String>) {
        self.backends.write().unwrap()[i] = url;
    }

    /// Every answer so far, oldest first.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    /// The answers to deliveries that arrived in `[from, to)`.
    pub fn answers_between(&self, from: Instant, to: Instant) -> Vec<Answer> {
        self.answers()
            .into_iter()
            .filter(|a| a.at >= from && a.at < to)
            .collect()
    }

    /// Registers both sandboxes' webhooks for connection `name` on this proxy.
    pub fn point(&self, name: &str, jira: &JiraSandbox, external: &ExternalSandbox) {
        jira.register_webhook(
            &format!("{}/webhooks/{name}/jira", self.url),
            Some(JIRA_SECRET),
        );
        external.set_webhook(
            &format!("{}/webhooks/{name}/external", self.url),
            Some(EXT_TOKEN),
        );
    }
}

async fn forward(
    State(st): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Run to the end even if the sender gives up waiting: the answer is still recorded.
    tokio::spawn(forward_and_record(st, method, uri, headers, body))
        .await
        .unwrap_or_else(|_| (StatusCode::BAD_GATEWAY, "proxy task failed").into_response())
}

async fn forward_and_record(
    st: Arc<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let backends = st.backends.read().unwrap().clone();
    let n = backends.len().max(1);
    let start = st.next.fetch_add(1, Ordering::Relaxed);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    for k in 0..n {
        let Some(Some(base)) = backends.get((start + k) % n) else {
            continue;
        };
        let at = Instant::now();
        let mut req = st.client.request(method.clone(), format!("{base}{path}"));
        for (name, value) in &headers {
            if name != "host" && name != "content-length" {
                req = req.header(name, value);
            }
        }
        match req.body(body.clone()).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.unwrap_or_default();
                let events = if status == 202 {
                    serde_json::from_slice::<Value>(&bytes)
                        .ok()
                        .and_then(|v| {
                            v["events"]
                                .as_array()
                                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                        })
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                st.answers.lock().unwrap().push(Answer {
                    at,
                    took: at.elapsed(),
                    status: Some(status),
                    events,
                });
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                return (status, bytes).into_response();
            }
            Err(_) => st.answers.lock().unwrap().push(Answer {
                at,
                took: at.elapsed(),
                status: None,
                events: Vec::new(),
            }),
        }
    }
    (StatusCode::SERVICE_UNAVAILABLE, "no instance answered").into_response()
}

/// Statuses of `answers`, counted: `status → n` (`0` stands for "no answer").
pub fn status_counts(answers: &[Answer]) -> std::collections::BTreeMap<u16, usize> {
    let mut out = std::collections::BTreeMap::new();
    for a in answers {
        *out.entry(a.status.unwrap_or(0)).or_default() += 1;
    }
    out
}

/// One user edit of pair `i` on the side chosen, like `Load::edit` but on a pair and side
/// the caller picks. Returns the value written, or `None` when the twin does not exist yet.
pub fn edit_pair(
    load: &mut Load,
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    i: usize,
    in_jira: bool,
) -> Option<String> {
    let twins = find_twins(jira, external, &load.pairs[i])?;
    let pair = &mut load.pairs[i];
    if in_jira {
        pair.jira_edits += 1;
        let v = pair.last_jira_value();
        jira.user_edit_issue(&twins.0, json!({"summary": v}));
        load.edits += 1;
        Some(v)
    } else {
        pair.ext_edits += 1;
        let v = pair.last_ext_value();
        if !external.user_edit(&twins.1, vec![(1004, v.clone())]) {
            pair.ext_edits -= 1;
            return None;
        }
        load.edits += 1;
        Some(v)
    }
}

/// The values carried by a write that took effect (`j-…`/`e-…` in the owned fields).
fn written_values(r: &RecordedRequest, jira_side: bool) -> Vec<String> {
    let applied =
        (200..300).contains(&r.status) || r.status == tandem_sandbox::STATUS_LOST_RESPONSE;
    if !applied {
        return Vec::new();
    }
    let mut out = Vec::new();
    if jira_side {
        if (r.method == "POST" && r.path.ends_with("/issue"))
            || (r.method == "PUT" && r.path.contains("/issue/"))
        {
            for field in ["summary", "customfield_123456"] {
                if let Some(v) = r.body["fields"][field].as_str() {
                    out.push(v.to_string());
                }
            }
        }
    } else if r.method == "POST" && r.path.starts_with("/API/issue") {
        for f in r.body["fields"].as_array().into_iter().flatten() {
            if let Some(v) = f["value"].as_str()
                && (v.starts_with("j-") || v.starts_with("e-"))
            {
                out.push(v.to_string());
            }
        }
    }
    out
}

/// When each value first reached the other side: a task reads both sandboxes' request logs
/// every 20 ms and notes the first time a write carrying a value shows up. An edit's lag is
/// the time from the edit to the first write of it, or of a later edit of the same field (a
/// fresh read may carry several edits in one write).
pub struct WriteClock {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WriteClock {
    pub fn start(jira: Arc<JiraSandbox>, external: Arc<ExternalSandbox>) -> WriteClock {
        let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            let (mut nj, mut ne) = (0, 0);
            loop {
                let now = Instant::now();
                let j = jira.requests_since(nj);
                let e = external.requests_since(ne);
                nj += j.len();
                ne += e.len();
                {
                    let mut seen = s.lock().unwrap();
                    for r in &j {
                        for v in written_values(r, true) {
                            seen.entry(v).or_insert(now);
                        }
                    }
                    for r in &e {
                        for v in written_values(r, false) {
                            seen.entry(v).or_insert(now);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        WriteClock { seen, task }
    }

    /// The lag of each edit in `edits` (`value, when it was made`) that has crossed, and how
    /// many have not crossed yet.
    pub fn lags(&self, edits: &[(String, Instant)]) -> (Vec<Duration>, usize) {
        let seen = self.seen.lock().unwrap();
        // Per field (`j-3` / `e-3`), the sequence numbers written and when.
        let mut by_field: HashMap<String, Vec<(usize, Instant)>> = HashMap::new();
        for (v, at) in seen.iter() {
            if let Some((field, n)) = split_value(v) {
                by_field.entry(field).or_default().push((n, *at));
            }
        }
        let mut lags = Vec::new();
        let mut waiting = 0;
        for (v, made) in edits {
            let Some((field, n)) = split_value(v) else {
                continue;
            };
            let crossed = by_field
                .get(&field)
                .into_iter()
                .flatten()
                .filter(|(m, _)| *m >= n)
                .map(|(_, at)| *at)
                .min();
            match crossed {
                Some(at) => lags.push(at.saturating_duration_since(*made)),
                None => waiting += 1,
            }
        }
        lags.sort();
        (lags, waiting)
    }
}

impl Drop for WriteClock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `j-3-7` → (`j-3`, 7).
fn split_value(v: &str) -> Option<(String, usize)> {
    let (field, n) = v.rsplit_once('-')?;
    Some((field.to_string(), n.parse().ok()?))
}

/// The `q`-quantile of sorted durations (zero when empty).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Events of `connection` in status done, from the store's queue depth.
pub async fn done_events(store: &dyn tandem::store::Store, connection: &str) -> i64 {
    store
        .queue_depth()
        .await
        .unwrap()
        .into_iter()
        .filter(|(c, s, _)| c == connection && matches!(s, tandem::store::EventStatus::Done))
        .map(|(_, _, n)| n)
        .sum()
}
