//! Harness for the reliability tests (crash, faults, scale-out): `tandem serve` as child
//! processes of the built binary, both sandboxes in the test process, a forwarding proxy in
//! front of the instances, a load generator that edits both sides, and the checks a user
//! would make afterwards by looking at both systems and their request logs.
//!
//! Value scheme: every user edit writes a value nobody wrote before, `j-{item}-{n}` (made in
//! Jira, in `summary`) or `e-{item}-{n}` (made outside, in field 1004 /
//! `customfield_123456`). Each side owns one field, so the expected final value of every field
//! is simply the last edit made to it — no conflict policy is involved — and every write in a
//! request log can be traced back to the one user edit it carries.
#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tandem_sandbox::{
    ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig, RecordedRequest,
    RetryPolicy,
};

pub const MAPPING: &str = "jiraField,externalField,direction,type\n\
summary,1001,both,text\n\
description,1002,both,richtext\n\
dueDate,1003,both,date\n\
customfield_123456,1004,both,text\n";

pub const EXT_TOKEN: &str = "ext-hook-token";
pub const JIRA_SECRET: &str = "jira-hook-secret";

/// `TANDEM_SOAK=1` turns the bounded CI runs into long ones.
pub fn soak() -> bool {
    std::env::var("TANDEM_SOAK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A number from the environment, or `default`.
pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Both sandboxes, with webhook retries long enough (about three minutes in all) to outlast
/// an instance restart: Jira retries for about half an hour in real life.
pub async fn sandboxes() -> (JiraSandbox, ExternalSandbox) {
    let retry = RetryPolicy {
        max_attempts: 12,
        base_delay: Duration::from_millis(100),
        timeout: Duration::from_secs(10),
    };
    let jira = JiraSandbox::start(JiraSandboxConfig {
        webhook_retry: retry.clone(),
        ..JiraSandboxConfig::default()
    })
    .await
    .expect("jira sandbox");
    let external = ExternalSandbox::start(ExternalSandboxConfig {
        webhook_retry: retry,
        ..ExternalSandboxConfig::default()
    })
    .await
    .expect("external sandbox");
    (jira, external)
}

/// Writes `tandem.toml` and the mapping into `dir`. `extra_worker` and `extra_connection`
/// are appended to those tables.
pub fn write_config(
    dir: &Path,
    storage_url: &str,
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    extra_worker: &str,
    extra_connection: &str,
) -> PathBuf {
    write_config_for(
        dir,
        storage_url,
        &[("seed", jira, external)],
        extra_worker,
        extra_connection,
    )
}

/// Writes `tandem.toml` with one `[[connection]]` per `(name, jira, external)`, each synced
/// with the harness's mapping.
pub fn write_config_for(
    dir: &Path,
    storage_url: &str,
    connections: &[(&str, &JiraSandbox, &ExternalSandbox)],
    extra_worker: &str,
    extra_connection: &str,
) -> PathBuf {
    std::fs::write(dir.join("fieldMappings.csv"), MAPPING).unwrap();
    let mut config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_token = "admin-token"
[storage]
url = "{storage_url}"
[worker]
{extra_worker}
"#
    );
    for (name, jira, external) in connections {
        config.push_str(&format!(
            r#"
[[connection]]
name = "{name}"
mapping = "fieldMappings.csv"
{extra_connection}
[connection.filter]
projects = ["TEST"]
[connection.jira]
base_url = "{jira_url}"
api = "cloud"
email = "tandem@example.com"
api_token = "sandbox-api-token"
project = "TEST"
issue_type = "Task"
webhook_secret = "{JIRA_SECRET}"
[connection.external]
type = "rest"
base_url = "{ext_url}"
auth = {{ type = "basic", username = "external", password = "external-secret" }}
webhook_token = "{EXT_TOKEN}"
"#,
            jira_url = jira.url(),
            ext_url = external.url(),
        ));
    }
    let path = dir.join("tandem.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Keeps `dir` after the test when `TANDEM_TEST_KEEP` is set (for reading the logs).
pub fn keep_if_asked(dir: tempfile::TempDir) -> Kept {
    if std::env::var("TANDEM_TEST_KEEP").is_ok() {
        Kept::Path(dir.keep())
    } else {
        Kept::Temp(dir)
    }
}

/// A test directory, removed at the end unless kept.
pub enum Kept {
    Temp(tempfile::TempDir),
    Path(PathBuf),
}

impl Kept {
    pub fn path(&self) -> &Path {
        match self {
            Kept::Temp(d) => d.path(),
            Kept::Path(p) => p,
        }
    }
}

/// One `tandem serve` child process.
pub struct Instance {
    child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Instance {
    /// Starts `tandem serve` and waits for its "listening" line. Logs go to `log` (appended,
    /// so restarts keep the history).
    pub fn start(config: &Path, log: PathBuf) -> Instance {
        Instance::start_with_env(config, log, &[])
    }

    /// [`Instance::start`] with more environment variables for the process.
    pub fn start_with_env(config: &Path, log: PathBuf, env: &[(&str, String)]) -> Instance {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        // `TANDEM_TEST_BIN` runs another build (to measure a change against the one before).
        let bin = std::env::var("TANDEM_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tandem").to_string());
        let mut child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .env(
                "RUST_LOG",
                std::env::var("TANDEM_TEST_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("tandem serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let Some(url) = line.trim().strip_prefix("tandem listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            let logs = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("tandem serve did not start: {line:?}\n{logs}");
        };
        let url = url.to_string();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        Instance { child, url, log }
    }

    /// SIGKILL: no shutdown hook runs, leases stay taken, a write may be half-done.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running (it must not have crashed on its own).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A forwarding proxy in front of the instances: each delivery goes to the next instance in
/// turn, or to the next live one when that one does not answer; `503` when none does (the
/// sandboxes then retry, as Jira does).
pub struct Proxy {
    pub url: String,
    backends: Arc<RwLock<Vec<Option<String>>>>,
    pub forwarded: Arc<AtomicUsize>,
}

struct ProxyState {
    backends: Arc<RwLock<Vec<Option<String>>>>,
    next: AtomicUsize,
    forwarded: Arc<AtomicUsize>,
    client: reqwest::Client,
}

impl Proxy {
    pub async fn start(n: usize) -> Proxy {
        let backends = Arc::new(RwLock::new(vec![None; n]));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(ProxyState {
            backends: backends.clone(),
            next: AtomicUsize::new(0),
            forwarded: forwarded.clone(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        });
        let app = Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy {
            url,
            backends,
            forwarded,
        }
    }

    /// Points slot `i` at an instance (`None`: down).
    pub fn set(&self, i: usize, url: Option<String>) {
        self.backends.write().unwrap()[i] = url;
    }
}

async fn forward(
    State(st): State<Arc<ProxyState>>,
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
        let mut req = st.client.request(method.clone(), format!("{base}{path}"));
        for (name, value) in &headers {
            if name != "host" && name != "content-length" {
                req = req.header(name, value);
            }
        }
        if let Ok(resp) = req.body(body.clone()).send().await {
            st.forwarded.fetch_add(1, Ordering::Relaxed);
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::OK);
            let bytes = resp.bytes().await.unwrap_or_default();
            return (status, bytes).into_response();
        }
    }
    (StatusCode::SERVICE_UNAVAILABLE, "no instance answered").into_response()
}

/// Registers both sandboxes' webhooks on the proxy, once, as a user would.
pub fn point_webhooks_at(proxy: &Proxy, jira: &JiraSandbox, external: &ExternalSandbox) {
    jira.register_webhook(
        &format!("{}/webhooks/seed/jira", proxy.url),
        Some(JIRA_SECRET),
    );
    external.set_webhook(
        &format!("{}/webhooks/seed/external", proxy.url),
        Some(EXT_TOKEN),
    );
}

/// One synced pair as the load generator knows it.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Index used in values (`j-{idx}-{n}`).
    pub idx: usize,
    /// Where the item was created.
    pub born_in_jira: bool,
    /// The Jira key (Jira-born) or the external id (born outside).
    pub origin_id: String,
    pub jira_edits: usize,
    pub ext_edits: usize,
}

impl Pair {
    pub fn last_jira_value(&self) -> String {
        format!("j-{}-{}", self.idx, self.jira_edits)
    }
    pub fn last_ext_value(&self) -> String {
        format!("e-{}-{}", self.idx, self.ext_edits)
    }
}

/// The user side of the test: creates and edits on both sandboxes.
pub struct Load {
    pub pairs: Vec<Pair>,
    pub edits: usize,
    pub creates: usize,
}

impl Load {
    pub fn new() -> Load {
        Load {
            pairs: Vec::new(),
            edits: 0,
            creates: 0,
        }
    }

    /// Creates one item on a side, carrying its first values of both owned fields.
    pub fn create(&mut self, jira: &JiraSandbox, external: &ExternalSandbox, in_jira: bool) {
        let idx = self.pairs.len();
        let (j0, e0) = (format!("j-{idx}-0"), format!("e-{idx}-0"));
        let origin_id = if in_jira {
            jira.user_create_issue(
                "TEST",
                json!({"summary": j0, "customfield_123456": e0, "duedate": "2026-01-01"}),
            )
        } else {
            external.user_create(vec![
                (1001, j0),
                (1004, e0),
                (1003, "2026-01-01".to_string()),
            ])
        };
        self.pairs.push(Pair {
            idx,
            born_in_jira: in_jira,
            origin_id,
            jira_edits: 0,
            ext_edits: 0,
        });
        self.creates += 1;
    }

    /// One user edit on a random pair from a random side. Edits on the side whose twin does
    /// not exist yet are skipped (a person cannot edit what is not there).
    pub fn edit(&mut self, jira: &JiraSandbox, external: &ExternalSandbox) -> bool {
        let mut rng = rand::rng();
        if self.pairs.is_empty() {
            return false;
        }
        let i = rng.random_range(0..self.pairs.len());
        let in_jira = rng.random_bool(0.5);
        let Some(twins) = find_twins(jira, external, &self.pairs[i]) else {
            return false;
        };
        let pair = &mut self.pairs[i];
        if in_jira {
            pair.jira_edits += 1;
            jira.user_edit_issue(&twins.0, json!({"summary": pair.last_jira_value()}));
        } else {
            pair.ext_edits += 1;
            let v = pair.last_ext_value();
            if !external.user_edit(&twins.1, vec![(1004, v)]) {
                pair.ext_edits -= 1;
                return false;
            }
        }
        self.edits += 1;
        true
    }
}

impl Default for Load {
    fn default() -> Self {
        Self::new()
    }
}

/// `(jira key, external id)` of a pair once both exist (the first twin found).
pub fn find_twins(
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    p: &Pair,
) -> Option<(String, String)> {
    if p.born_in_jira {
        let twin = external
            .items()
            .into_iter()
            .find(|i| i["sourceIssueId"] == json!(p.origin_id))?;
        Some((p.origin_id.clone(), twin["id"].as_str()?.to_string()))
    } else {
        let field = jira.external_id_field().to_string();
        let issue = jira
            .issues()
            .into_iter()
            .find(|i| i["fields"][&field] == json!(p.origin_id))?;
        Some((issue["key"].as_str()?.to_string(), p.origin_id.clone()))
    }
}

pub fn ext_field(item: &Value, id: u64) -> Option<String> {
    item["fields"].as_array()?.iter().find_map(|f| {
        if f["fieldId"] == json!(id) || f["fieldId"] == json!(id.to_string()) {
            f["value"].as_str().map(str::to_string)
        } else {
            None
        }
    })
}

/// Everything wrong with the final state, in words; empty when the run is clean.
pub fn problems(jira: &JiraSandbox, external: &ExternalSandbox, load: &Load) -> Vec<String> {
    let mut out = Vec::new();
    let link_field = jira.external_id_field().to_string();
    let issues = jira.issues();
    let items = external.items();
    if issues.len() != load.pairs.len() {
        out.push(format!(
            "{} Jira issues for {} pairs",
            issues.len(),
            load.pairs.len()
        ));
    }
    if items.len() != load.pairs.len() {
        out.push(format!(
            "{} external items for {} pairs",
            items.len(),
            load.pairs.len()
        ));
    }
    for p in &load.pairs {
        let twins: Vec<&Value> = if p.born_in_jira {
            items
                .iter()
                .filter(|i| i["sourceIssueId"] == json!(p.origin_id))
                .collect()
        } else {
            issues
                .iter()
                .filter(|i| i["fields"][&link_field] == json!(p.origin_id))
                .collect()
        };
        if twins.len() != 1 {
            out.push(format!(
                "pair {} ({}) has {} twins",
                p.idx,
                p.origin_id,
                twins.len()
            ));
            continue;
        }
        let Some((key, ext_id)) = find_twins(jira, external, p) else {
            continue;
        };
        let (Some(issue), Some(item)) = (jira.issue(&key), external.item(&ext_id)) else {
            continue;
        };
        let want_j = p.last_jira_value();
        let want_e = p.last_ext_value();
        let got = [
            (
                "jira summary",
                issue["fields"]["summary"].as_str().map(str::to_string),
                &want_j,
            ),
            ("external 1001", ext_field(&item, 1001), &want_j),
            (
                "jira customfield_123456",
                issue["fields"]["customfield_123456"]
                    .as_str()
                    .map(str::to_string),
                &want_e,
            ),
            ("external 1004", ext_field(&item, 1004), &want_e),
        ];
        for (what, value, want) in got {
            if value.as_deref() != Some(want.as_str()) {
                out.push(format!(
                    "pair {} ({key} / {ext_id}): {what} is {value:?}, the last edit was {want}",
                    p.idx
                ));
            }
        }
        if issue["fields"][&link_field] != json!(ext_id) {
            out.push(format!(
                "{key}: External ID is {}, not {ext_id}",
                issue["fields"][&link_field]
            ));
        }
    }
    out
}

/// Values Tandem wrote, per target side: `(side, value) → times written`, and per
/// `(side, pair)` the sequence numbers in the order they were written.
#[derive(Debug, Default)]
pub struct Writes {
    pub count: BTreeMap<(&'static str, String), usize>,
    pub order: BTreeMap<(&'static str, char, usize), Vec<usize>>,
    pub creates_jira: usize,
    pub creates_external: usize,
    pub total: usize,
}

fn note(w: &mut Writes, side: &'static str, v: &str) {
    *w.count.entry((side, v.to_string())).or_default() += 1;
    let mut parts = v.splitn(3, '-');
    let (Some(origin), Some(idx), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let origin = origin.chars().next().unwrap_or('?');
    if let (Ok(idx), Ok(n)) = (idx.parse(), n.parse()) {
        w.order.entry((side, origin, idx)).or_default().push(n);
    }
}

/// Writes that took effect, from the sandboxes' request logs: answered 2xx, or handled with
/// the answer lost. A write answered 5xx/429 or dropped before handling changed nothing.
pub fn writes(jira: &JiraSandbox, external: &ExternalSandbox) -> Writes {
    let mut w = Writes::default();
    let applied = |r: &RecordedRequest| {
        (200..300).contains(&r.status) || r.status == tandem_sandbox::STATUS_LOST_RESPONSE
    };
    for r in jira.request_log() {
        let create = r.method == "POST" && r.path.ends_with("/issue");
        let edit = r.method == "PUT" && r.path.contains("/issue/");
        if !(create || edit) || !applied(&r) {
            continue;
        }
        w.total += 1;
        if create {
            w.creates_jira += 1;
        }
        for field in ["summary", "customfield_123456"] {
            if let Some(v) = r.body["fields"][field].as_str() {
                note(&mut w, "jira", v);
            }
        }
    }
    for r in external.request_log() {
        if !(r.method == "POST" && r.path.starts_with("/API/issue") && applied(&r)) {
            continue;
        }
        w.total += 1;
        if r.path == "/API/issue" {
            w.creates_external += 1;
        }
        for f in r.body["fields"].as_array().into_iter().flatten() {
            let id = f["fieldId"]
                .as_u64()
                .or_else(|| f["fieldId"].as_str()?.parse().ok());
            if matches!(id, Some(1001 | 1004))
                && let Some(v) = f["value"].as_str()
            {
                note(&mut w, "external", v);
            }
        }
    }
    w
}

/// Duplicate and misdirected writes: a value written twice to one side, a value written back
/// to the side it was made on (an echo that was not suppressed), a pair whose writes went
/// backwards (per-link order lost).
pub fn write_problems(w: &Writes, load: &Load) -> Vec<String> {
    let mut out = Vec::new();
    for ((side, v), n) in &w.count {
        // Creates carry both owned fields: the twin of a Jira-born item gets `j-*-0` and
        // `e-*-0` outside (and the reverse), once each, which is the one write of each.
        if *n > 1 {
            out.push(format!("{v} was written {n} times to {side}"));
        }
        let made_in_jira = v.starts_with("j-");
        let back = (*side == "jira" && made_in_jira) || (*side == "external" && !made_in_jira);
        let initial = v.ends_with("-0");
        if back && !initial {
            out.push(format!("{v} was written back to {side}, where it was made"));
        }
    }
    for ((side, origin, idx), seq) in &w.order {
        if seq.windows(2).any(|p| p[1] <= p[0]) {
            out.push(format!(
                "writes to {side} of pair {idx}'s {origin}-values went out of order: {seq:?}"
            ));
        }
    }
    let pairs = load.pairs.len();
    if w.creates_jira + w.creates_external != pairs {
        out.push(format!(
            "{} creates ({} in Jira, {} outside) for {pairs} pairs",
            w.creates_jira + w.creates_external,
            w.creates_jira,
            w.creates_external
        ));
    }
    out
}

/// Waits (up to `limit`) until `problems` comes back empty; returns the last problems.
pub async fn converge(limit: Duration, mut check: impl FnMut() -> Vec<String>) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let p = check();
        if p.is_empty() || Instant::now() > deadline {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
/// The end of every reliability run: wait until both sides hold every last edit and the
/// queue has drained, then check that nothing was written twice or back to its own side and
/// that no event was parked as a dead letter. Returns the writes, for the summary line.
pub async fn assert_converged_and_clean(
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    load: &Load,
    store: &dyn tandem::store::Store,
) -> Writes {
    use tandem::store::EventStatus;
    let left = converge(Duration::from_secs(120), || problems(jira, external, load)).await;
    assert!(left.is_empty(), "not converged:\n{}", left.join("\n"));
    // Quiet: nothing pending or leased, three times in a row (echoes may still be arriving).
    let mut quiet = 0;
    for _ in 0..240 {
        let depth = store.queue_depth().await.unwrap();
        let busy: i64 = depth
            .iter()
            .filter(|(_, s, _)| matches!(s, EventStatus::Pending | EventStatus::Leased))
            .map(|(_, _, n)| *n)
            .sum();
        quiet = if busy == 0 { quiet + 1 } else { 0 };
        if quiet >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(quiet >= 3, "the queue did not drain");
    let left = problems(jira, external, load);
    assert!(left.is_empty(), "after quiet:\n{}", left.join("\n"));
    let w = writes(jira, external);
    let dupes = write_problems(&w, load);
    assert!(dupes.is_empty(), "{}", dupes.join("\n"));
    let dead = store.list_dead_letters(None, 50).await.unwrap();
    assert!(dead.is_empty(), "dead letters: {dead:?}");
    w
}

/// Summary line for the test output (and docs/RELIABILITY.md).
pub fn summary(name: &str, load: &Load, w: &Writes, extra: &HashMap<&str, usize>) -> String {
    let mut extras: Vec<String> = extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
    extras.sort();
    format!(
        "{name}: pairs={} creates={} edits={} writes={} (creates in jira={} outside={}) {} lost=0 duplicated=0",
        load.pairs.len(),
        load.creates,
        load.edits,
        w.total,
        w.creates_jira,
        w.creates_external,
        extras.join(" ")
    )
}

/// A file a test attached: (jira key, external id, file name, SHA-256).
pub type AttachedFile = (String, String, String, String);

/// Attaches a file no other call makes to a random linked pair, on a random side.
pub fn attach_one(
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    load: &Load,
    files: &mut Vec<AttachedFile>,
) {
    let mut rng = rand::rng();
    let pair = &load.pairs[rng.random_range(0..load.pairs.len())];
    let Some((key, ext)) = find_twins(jira, external, pair) else {
        return;
    };
    let n = files.len();
    let name = format!("file-{n}.txt");
    let data: Vec<u8> = (0..1024 + n * 37).map(|i| (i * 31 + n * 7) as u8).collect();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
    if rng.random_bool(0.5) {
        jira.user_attach("alice", &key, &name, "text/plain", data);
    } else {
        external.user_attach(&ext, &name, "text/plain", data);
    }
    files.push((key, ext, name, sha));
}

/// Each attached file that is not exactly once, byte-identical, on both items of its pair.
pub fn file_problems(
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    files: &[AttachedFile],
) -> Vec<String> {
    let count = |list: &[(String, String, Vec<u8>)], name: &str, sha: &str| {
        list.iter()
            .filter(|(_, n, d)| {
                n == name && hex::encode(<sha2::Sha256 as sha2::Digest>::digest(d)) == sha
            })
            .count()
    };
    let mut out = Vec::new();
    for (key, ext, name, sha) in files {
        let (in_jira, outside) = (
            count(&jira.attachments(key), name, sha),
            count(&external.attachments(ext), name, sha),
        );
        if (in_jira, outside) != (1, 1) {
            out.push(format!(
                "{name}: {in_jira} in Jira {key}, {outside} outside on {ext} (want 1 and 1)"
            ));
        }
    }
    out
}
