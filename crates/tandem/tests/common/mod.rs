//! Shared harness for engine tests: both sandboxes plus a real Tandem on loopback ports; and
//! the small field and server helpers the connector tests share.
#![allow(dead_code)]

use chrono::NaiveDate;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tandem::app::{self, Running};
use tandem::connector::Fields;
use tandem::store::EventStatus;
use tandem_core::FieldValue;
use tandem_core::mapping::{FieldMapping, FieldType};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig};

pub const MAPPING: &str = "jiraField,externalField,direction,type\n\
summary,1001,both,text\n\
description,1002,both,richtext\n\
dueDate,1003,both,date\n\
customfield_123456,1004,both,text\n";

pub struct World {
    pub jira: JiraSandbox,
    pub external: ExternalSandbox,
    pub tandem: Option<Running>,
    pub dir: tempfile::TempDir,
    pub base: String,
}

/// Extra TOML for the connection table (conflict, create, filter) and worker settings.
pub struct Options {
    pub connection_extra: String,
    pub filter: String,
    pub jira_secret: Option<&'static str>,
    /// `poll_interval` of the connection (`None`: the default, 60 s).
    pub poll_interval: Option<&'static str>,
    /// Start Tandem and point the sandboxes' webhooks at it (`false`: sandboxes and config
    /// only, e.g. for `tandem sync`).
    pub serve: bool,
    /// `[worker] lease_seconds`.
    pub lease_seconds: u64,
    /// `[worker] max_attempts`.
    pub max_attempts: u32,
    /// Extra lines for the `[server]` table.
    pub server_extra: String,
    /// Replaces the `[connection.external]` table (`EXT_URL` stands for the sandbox's URL);
    /// the sandbox's seed-format webhooks are then not pointed at Tandem. See [`REDMINE`].
    pub external: Option<String>,
    /// The connection's mapping file, name and text (`None`: [`MAPPING`] as
    /// `fieldMappings.csv`).
    pub mapping: Option<(&'static str, String)>,
    /// More files next to the config (name, text), written before it is loaded (a user map).
    pub files: Vec<(&'static str, String)>,
    /// Speak to the Jira sandbox as Data Center (`api = "datacenter"`, a PAT) instead of
    /// Cloud.
    pub datacenter: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connection_extra: String::new(),
            filter: "projects = [\"TEST\"]".into(),
            jira_secret: Some("jira-hook-secret"),
            poll_interval: None,
            serve: true,
            lease_seconds: 30,
            max_attempts: 4,
            server_extra: String::new(),
            external: None,
            mapping: None,
            files: Vec::new(),
            datacenter: false,
        }
    }
}

/// The external system in the seed's format.
const SEED_EXTERNAL: &str = r#"
[connection.external]
type = "rest"
base_url = "EXT_URL"
auth = { type = "basic", username = "external", password = "external-secret" }
webhook_token = "ext-hook-token"
"#;

/// The external sandbox's Redmine-style API through `format = "custom"`, as a Redmine user
/// configures it: whole-second `{since}` (Redmine refuses fractions), each field a custom
/// field. Redmine sends no webhooks, so changes there arrive by polling.
pub const REDMINE: &str = r#"
[connection.external]
type = "rest"
base_url = "EXT_URL"
format = "custom"
auth = { type = "basic", username = "external", password = "external-secret" }

[connection.external.operations.create]
method = "POST"
path = "/issues.json"
body = '{"issue": {{fields}}}'
id_pointer = "/issue/id"

[connection.external.operations.update]
method = "PUT"
path = "/issues/{id}.json"
body = '{"issue": {{fields}}}'

[connection.external.operations.fetch]
method = "GET"
path = "/issues/{id}.json"
item_pointer = "/issue"
updated_pointer = "/updated_on"

[connection.external.operations.list_changed]
method = "GET"
path = "/issues.json?status_id=*&sort=updated_on&limit=100&updated_on=%3E%3D{since}"
items_pointer = "/issues"
id_pointer = "/id"
updated_pointer = "/updated_on"
since_format = "rfc3339"
since_overlap = "5s"

[[connection.external.fields]]
id = "1001"
read = "$.custom_fields[?(@.id==1001)].value"
write = "/custom_field_values/1001"

[[connection.external.fields]]
id = "1002"
read = "$.custom_fields[?(@.id==1002)].value"
write = "/custom_field_values/1002"

[[connection.external.fields]]
id = "1003"
read = "$.custom_fields[?(@.id==1003)].value"
write = "/custom_field_values/1003"

[[connection.external.fields]]
id = "1004"
read = "$.custom_fields[?(@.id==1004)].value"
write = "/custom_field_values/1004"
"#;

pub async fn world(opts: Options) -> World {
    // RUST_LOG=tandem=debug shows the engine's decisions when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let jira_cfg = JiraSandboxConfig {
        projects: vec![
            ("TEST".into(), "Test".into()),
            ("OTHER".into(), "Other".into()),
        ],
        ..JiraSandboxConfig::default()
    };
    let jira = JiraSandbox::start(jira_cfg).await.expect("jira sandbox");
    let external = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .expect("external sandbox");
    let dir = tempfile::tempdir().expect("tempdir");
    let (mapping_file, mapping) = opts
        .mapping
        .clone()
        .unwrap_or(("fieldMappings.csv", MAPPING.to_string()));
    std::fs::write(dir.path().join(mapping_file), mapping).unwrap();
    for (name, text) in &opts.files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let jira_auth = if opts.datacenter {
        "api = \"datacenter\"\npat = \"sandbox-pat\""
    } else {
        "api = \"cloud\"\nemail = \"tandem@example.com\"\napi_token = \"sandbox-api-token\""
    };
    let secret_line = opts
        .jira_secret
        .map(|s| format!("webhook_secret = \"{s}\"\n"))
        .unwrap_or_default();
    let config = format!(
        r#"
[server]
admin_token = "admin-token"
{server_extra}
[storage]
url = "sqlite://tandem.db"
[worker]
concurrency = 4
max_attempts = {max_attempts}
backoff_base_ms = 50
backoff_cap_ms = 400
lease_seconds = {lease}
[[connection]]
name = "seed"
mapping = "{mapping_file}"
{poll}
{extra}
[connection.filter]
{filter}
[connection.jira]
base_url = "{jira_url}"
{jira_auth}
project = "TEST"
issue_type = "Task"
{secret_line}
{external}
"#,
        extra = opts.connection_extra,
        server_extra = opts.server_extra,
        lease = opts.lease_seconds,
        max_attempts = opts.max_attempts,
        poll = opts
            .poll_interval
            .map(|p| format!("poll_interval = \"{p}\""))
            .unwrap_or_default(),
        filter = opts.filter,
        jira_url = jira.url(),
        external = opts
            .external
            .as_deref()
            .unwrap_or(SEED_EXTERNAL)
            .replace("EXT_URL", &external.url()),
    );
    let path = dir.path().join("tandem.toml");
    std::fs::write(&path, config).unwrap();
    let config = tandem::config::load(&path).expect("config loads");
    if !opts.serve {
        return World {
            jira,
            external,
            tandem: None,
            dir,
            base: String::new(),
        };
    }
    let running = app::start(
        config,
        "127.0.0.1:0".parse().unwrap(),
        app::metrics_handle(),
    )
    .await
    .expect("tandem starts");
    let base = format!("http://{}", running.addr);
    jira.register_webhook(&format!("{base}/webhooks/seed/jira"), opts.jira_secret);
    if opts.external.is_none() {
        external.set_webhook(
            &format!("{base}/webhooks/seed/external"),
            Some("ext-hook-token"),
        );
    }
    World {
        jira,
        external,
        tandem: Some(running),
        dir,
        base,
    }
}

impl World {
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("tandem.toml")
    }

    /// External items whose sourceIssueId is `key`.
    pub fn twins_of(&self, key: &str) -> Vec<Value> {
        self.external
            .items()
            .into_iter()
            .filter(|i| i["sourceIssueId"] == json!(key))
            .collect()
    }

    /// Requests Tandem sent to the external sandbox that write (POST /API/issue...).
    pub fn external_writes(&self) -> Vec<tandem_sandbox::RecordedRequest> {
        self.external
            .request_log()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.starts_with("/API/issue"))
            .collect()
    }

    /// Issue writes Tandem sent to Jira (create and edit; not comments or searches).
    pub fn jira_writes(&self) -> Vec<tandem_sandbox::RecordedRequest> {
        self.jira
            .request_log()
            .into_iter()
            .filter(|r| {
                (r.method == "PUT" && r.path.contains("/issue/"))
                    || (r.method == "POST" && r.path.ends_with("/issue"))
            })
            .collect()
    }

    /// Transitions Tandem made in Jira (`POST …/issue/{key}/transitions`).
    pub fn jira_transitions(&self) -> Vec<tandem_sandbox::RecordedRequest> {
        self.jira
            .request_log()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/transitions"))
            .collect()
    }

    pub async fn stop(mut self) {
        if let Some(t) = self.tandem.take() {
            t.shutdown().await;
        }
    }

    pub fn engine(&self) -> &std::sync::Arc<tandem::worker::Engine> {
        &self.tandem.as_ref().expect("running").engine
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

/// Polls until `probe` returns Some or 15 s pass.
pub async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many events of a `queue_depth` are still pending or leased.
pub fn busy(depth: &[(String, EventStatus, i64)]) -> i64 {
    depth
        .iter()
        .filter(|(_, s, _)| matches!(s, EventStatus::Pending | EventStatus::Leased))
        .map(|(_, _, n)| *n)
        .sum()
}

/// Waits until the queue has no pending or leased events (things are quiet).
pub async fn quiesce(world: &World) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let depth = world.engine().store.queue_depth().await.unwrap();
        if busy(&depth) == 0 {
            // Webhook echoes may still be in flight from the sandboxes: look once more.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let depth = world.engine().store.queue_depth().await.unwrap();
            if busy(&depth) == 0 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "queue did not drain: {depth:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Connector tests
// ---------------------------------------------------------------------------------------------

/// A mapping row `jira` ↔ `external` of type `ty`.
pub fn fm(jira: &str, external: &str, ty: FieldType) -> FieldMapping {
    let mut m = FieldMapping::new(jira, external);
    m.field_type = ty;
    m
}

pub fn fields(pairs: &[(&str, FieldValue)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

pub fn text(s: &str) -> FieldValue {
    FieldValue::Text(s.to_string())
}

pub fn date(y: i32, m: u32, d: u32) -> FieldValue {
    FieldValue::Date(NaiveDate::from_ymd_opt(y, m, d).expect("date"))
}

/// Serves `app` on a loopback port; returns its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// Webhook deliveries a [`receiver`] recorded: headers and raw body, in arrival order.
pub type Deliveries = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Vec<u8>)>>>;

/// A receiver on a loopback port that records every delivery and answers `status`; returns
/// its `/hook` URL.
pub async fn receiver(status: axum::http::StatusCode) -> (String, Deliveries) {
    let got: Deliveries = Default::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    if let Ok(mut g) = store.lock() {
                        g.push((headers, body.to_vec()));
                    }
                    status
                }
            },
        ),
    );
    (format!("{}/hook", serve(app).await), got)
}

/// Waits (4 s at the most) until `got` holds `n` deliveries; returns them.
pub async fn wait_for(got: &Deliveries, n: usize) -> Vec<(axum::http::HeaderMap, Vec<u8>)> {
    for _ in 0..200 {
        let g = got.lock().map(|g| g.clone()).unwrap_or_default();
        if g.len() >= n {
            return g;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("expected {n} deliveries");
}
