//! Secrets and auth (issue 6, part 6).
//!
//! A full round trip runs with distinctive secret values while every log line at TRACE level
//! is captured; then no secret may appear in the logs, in any HTTP answer (errors included),
//! in the admin API, in `/metrics`, in `tandem events list` or `tandem check --offline`, or in
//! the `Debug` form of the configuration. Every route but `/healthz`, `/readyz` and
//! `/metrics` must refuse a request without valid credentials, and the checks that compare
//! credentials must be the constant-time ones.
//!
//! This test binary is its own process, so it installs the global tracing subscriber.

use base64::Engine as _;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem::app::{self, Running};
use tandem::secret::Secret;
use tandem::store::EventStatus;
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig};
use tracing_subscriber::fmt::MakeWriter;

const API_TOKEN: &str = "SECRET-api-7f3a9";
const WEBHOOK_SECRET: &str = "SECRET-whs-51c2e";
const WEBHOOK_TOKEN: &str = "SECRET-wht-a8d04";
const ADMIN_TOKEN: &str = "SECRET-adm-33b7f";
const EXT_PASSWORD: &str = "SECRET-pwd-9e6c1";
const USER_TOKEN: &str = "SECRET-usr-c0ffee-4d2a";
const EMAIL: &str = "tandem@example.com";

/// Every secret in each form it travels in (Basic auth sends base64 of `user:secret`).
fn forbidden() -> Vec<String> {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        API_TOKEN.into(),
        WEBHOOK_SECRET.into(),
        WEBHOOK_TOKEN.into(),
        ADMIN_TOKEN.into(),
        EXT_PASSWORD.into(),
        USER_TOKEN.into(),
        b64(format!("{EMAIL}:{API_TOKEN}")),
        b64(format!("external:{EXT_PASSWORD}")),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for s in forbidden() {
        assert!(
            !text.contains(&s),
            "{what} contains the secret `{s}`:\n{}",
            text.chars().take(2000).collect::<String>()
        );
    }
}

/// The captured log output of the whole process.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).to_string()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

fn capture_logs() -> LogBuffer {
    static BUFFER: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buf = LogBuffer::default();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(buf.clone())
                .init();
            buf
        })
        .clone()
}

const MAPPING: &str = "jiraField,externalField,direction,type\n\
summary,1001,both,text\n\
description,1002,both,richtext\n\
dueDate,1003,both,date\n";

struct World {
    jira: JiraSandbox,
    external: ExternalSandbox,
    tandem: Option<Running>,
    dir: tempfile::TempDir,
    base: String,
}

impl World {
    fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("tandem.toml")
    }
    fn twin_of(&self, key: &str) -> Option<Value> {
        self.external
            .items()
            .into_iter()
            .find(|i| i["sourceIssueId"] == json!(key))
    }
    fn running(&self) -> &Running {
        self.tandem.as_ref().expect("running")
    }
}

async fn world() -> World {
    let jira = JiraSandbox::start(JiraSandboxConfig {
        email: EMAIL.into(),
        api_token: API_TOKEN.into(),
        ..JiraSandboxConfig::default()
    })
    .await
    .unwrap();
    let external = ExternalSandbox::start(ExternalSandboxConfig {
        password: EXT_PASSWORD.into(),
        ..ExternalSandboxConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fieldMappings.csv"), MAPPING).unwrap();
    let config = format!(
        r#"
[server]
admin_token = "{ADMIN_TOKEN}"
console_users = [{{ name = "alice", token = "{USER_TOKEN}" }}]
[storage]
url = "sqlite://tandem.db"
[worker]
backoff_base_ms = 50
backoff_cap_ms = 200
[[connection]]
name = "seed"
mapping = "fieldMappings.csv"
[connection.jira]
base_url = "{jira}"
api = "cloud"
email = "{EMAIL}"
api_token = "{API_TOKEN}"
webhook_secret = "{WEBHOOK_SECRET}"
project = "TEST"
issue_type = "Task"
[connection.external]
type = "rest"
base_url = "{ext}"
auth = {{ type = "basic", username = "external", password = "{EXT_PASSWORD}" }}
webhook_token = "{WEBHOOK_TOKEN}"
"#,
        jira = jira.url(),
        ext = external.url(),
    );
    std::fs::write(dir.path().join("tandem.toml"), config).unwrap();
    let config = tandem::config::load(&dir.path().join("tandem.toml")).expect("config loads");
    let running = app::start(
        config,
        "127.0.0.1:0".parse().unwrap(),
        app::metrics_handle(),
    )
    .await
    .expect("tandem starts");
    let base = format!("http://{}", running.addr);
    jira.register_webhook(&format!("{base}/webhooks/seed/jira"), Some(WEBHOOK_SECRET));
    external.set_webhook(
        &format!("{base}/webhooks/seed/external"),
        Some(WEBHOOK_TOKEN),
    );
    World {
        jira,
        external,
        tandem: Some(running),
        dir,
        base,
    }
}

async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn quiesce(t: &Running) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let depth = t.engine.store.queue_depth().await.unwrap();
        if depth
            .iter()
            .all(|(_, s, _)| !matches!(s, EventStatus::Pending | EventStatus::Leased))
        {
            return;
        }
        assert!(Instant::now() < deadline, "queue did not drain: {depth:?}");
    }
}

/// A request and its answer as text.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    auth: Option<&str>,
) -> (u16, String) {
    let mut req = http
        .request(method, url)
        .header("content-type", "application/json")
        .body("{}");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_answers_admin_api_metrics_or_cli() {
    let logs = capture_logs();
    let w = world().await;

    // The round trip, as a user would see it.
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Secret-free sync"}));
    let twin = eventually("twin outside", || w.twin_of(&key)).await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    w.external
        .user_edit(&ext_id, vec![(1001, "Edited outside".into())]);
    eventually("edit lands in Jira", || {
        w.jira
            .issue(&key)
            .filter(|i| i["fields"]["summary"] == json!("Edited outside"))
    })
    .await;
    w.jira
        .user_edit_issue(&key, json!({"duedate": "2027-01-15"}));
    eventually("edit lands outside", || {
        w.external.item(&ext_id).filter(|i| {
            i["fields"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["value"] == json!("2027-01-15")))
        })
    })
    .await;
    // A permanent failure too, so a dead letter with an error message exists.
    w.external.user_edit(&ext_id, vec![(1001, "x".repeat(300))]);
    quiesce(w.running()).await;

    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", w.base);
    let admin = format!("Bearer {ADMIN_TOKEN}");

    // The admin API and the dashboard, with the right token: everything it shows is clean.
    let mut seen_dead_letter = false;
    for route in [
        "/",
        "/api/v1/links",
        "/api/v1/events",
        "/api/v1/dead-letters",
        "/api/v1/audit",
        "/api/v1/conflicts",
    ] {
        let (status, body) = call(&http, reqwest::Method::GET, &url(route), Some(&admin)).await;
        assert_eq!(status, 200, "{route}: {body}");
        assert_clean(route, &body);
        seen_dead_letter |= route == "/api/v1/dead-letters" && body.contains("255");
    }
    assert!(
        seen_dead_letter,
        "the dead letter is listed with its reason"
    );

    // Every page of the console, signed in, shows the same data and none of the secrets.
    let jar = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = jar
        .post(url("/login"))
        .form(&[("token", USER_TOKEN)])
        .send()
        .await
        .unwrap();
    // Signed in with a console user's token: its pages are walked as that user sees them.
    assert_eq!(signed_in.status().as_u16(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let json = |body: String| serde_json::from_str::<Value>(&body).unwrap();
    let dead = json(
        call(
            &http,
            reqwest::Method::GET,
            &url("/api/v1/dead-letters"),
            Some(&admin),
        )
        .await
        .1,
    );
    let dead_id = dead["dead_letters"][0]["event_id"]
        .as_i64()
        .expect("a dead letter");
    let links = json(
        call(
            &http,
            reqwest::Method::GET,
            &url("/api/v1/links"),
            Some(&admin),
        )
        .await
        .1,
    );
    let jira_id = links["links"][0]["jira_id"]
        .as_str()
        .expect("a link")
        .to_string();
    let mut seen_reason = false;
    for page in [
        "/".to_string(),
        "/console/overview.json".into(),
        "/links".into(),
        format!("/links?q={key}"),
        format!("/links/seed/{jira_id}"),
        "/events".into(),
        "/events?status=dead".into(),
        format!("/events/{dead_id}"),
        "/conflicts".into(),
        "/audit".into(),
    ] {
        let resp = jar
            .get(url(&page))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "{page}: {body}");
        assert_clean(&page, &body);
        seen_reason |= page.starts_with("/events/") && body.contains("255");
    }
    assert!(seen_reason, "the dead letter's page shows why it failed");

    // Wrong credentials everywhere, including one secret presented where another belongs:
    // refused, and the answer does not quote either.
    for (method, route, auth) in [
        ("GET", "/api/v1/events", format!("Bearer {WEBHOOK_TOKEN}")),
        ("GET", "/", format!("Bearer {API_TOKEN}")),
        ("POST", "/api/v1/events/1/retry", "Bearer nope".into()),
        (
            "POST",
            "/webhooks/seed/external",
            format!("Bearer {ADMIN_TOKEN}"),
        ),
        (
            "POST",
            "/webhooks/seed/external",
            format!("Basic {EXT_PASSWORD}"),
        ),
        (
            "POST",
            "/webhooks/seed/jira",
            format!("Bearer {WEBHOOK_SECRET}"),
        ),
    ] {
        let (status, body) = call(&http, method.parse().unwrap(), &url(route), Some(&auth)).await;
        assert_eq!(status, 401, "{method} {route}: {body}");
        assert!(body.contains("\"error\""), "{route}: {body}");
        assert_clean(&format!("401 from {route}"), &body);
    }

    // Metrics.
    let (status, metrics) = call(&http, reqwest::Method::GET, &url("/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("tandem_"),
        "metrics are rendered: {metrics}"
    );
    assert_clean("/metrics", &metrics);

    // The CLI against the same config and store.
    let bin = env!("CARGO_BIN_EXE_tandem");
    let config = w.config_path();
    for args in [
        vec!["events", "list", "--config"],
        vec!["events", "list", "--status", "dead", "--config"],
        vec!["check", "--offline", "--config"],
    ] {
        let out = std::process::Command::new(bin)
            .args(&args)
            .arg(&config)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "tandem {args:?}: {stdout}{stderr}");
        assert_clean(&format!("tandem {args:?} stdout"), &stdout);
        assert_clean(&format!("tandem {args:?} stderr"), &stderr);
        if args[0] == "events" && args.len() == 3 {
            assert!(stdout.contains("done"), "events are listed: {stdout}");
        }
        if args[0] == "check" {
            assert!(
                !stdout.contains("WARNING"),
                "both webhooks authenticate: {stdout}"
            );
        }
    }

    // Without a Jira webhook secret the route takes unsigned deliveries (by design, for Jira
    // webhooks without a secret); `check` says so.
    let text = std::fs::read_to_string(&config).unwrap();
    let unsigned = w.dir.path().join("unsigned.toml");
    std::fs::write(
        &unsigned,
        text.replace(&format!("webhook_secret = \"{WEBHOOK_SECRET}\"\n"), ""),
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["check", "--offline", "--config"])
        .arg(&unsigned)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "a warning is not an error: {stdout}");
    assert!(
        stdout.contains("WARNING connection `seed`: no jira.webhook_secret, so POST /webhooks/seed/jira accepts unauthenticated deliveries"),
        "{stdout}"
    );
    assert!(!stdout.contains("/webhooks/seed/external"), "{stdout}");
    assert_clean("check without a webhook secret", &stdout);

    // Debug of the configuration (what an `{:?}` in a log or panic would print).
    let config = tandem::config::load(&config).unwrap();
    assert_clean("Debug of Config", &format!("{config:?} {config:#?}"));

    w.tandem.unwrap().shutdown().await;
    let text = logs.text();
    assert!(
        text.contains("webhook accepted") && text.contains("TRACE"),
        "logs were captured at TRACE level ({} bytes)",
        text.len()
    );
    assert_clean("the TRACE log", &text);
}

/// The router's routes, read from its source so a new route cannot skip this table.
fn routes_in_source() -> Vec<String> {
    [
        include_str!("../../engine/src/server/mod.rs"),
        include_str!("../../engine/src/server/console/mod.rs"),
    ]
    .iter()
    .flat_map(|src| {
        src.split(".route(\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
    })
    .map(str::to_string)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_health_and_metrics_refuses_requests_without_credentials() {
    capture_logs();
    let w = world().await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", w.base);
    // (route as declared, method, concrete path, open without credentials?)
    let table = [
        (
            "/webhooks/{connection}/{side}",
            "POST",
            "/webhooks/seed/jira",
            false,
        ),
        (
            "/webhooks/{connection}/{side}",
            "POST",
            "/webhooks/seed/external",
            false,
        ),
        ("/healthz", "GET", "/healthz", true),
        ("/readyz", "GET", "/readyz", true),
        ("/metrics", "GET", "/metrics", true),
        ("/api/v1/links", "GET", "/api/v1/links", false),
        ("/api/v1/events", "GET", "/api/v1/events", false),
        (
            "/api/v1/events/{id}/retry",
            "POST",
            "/api/v1/events/1/retry",
            false,
        ),
        ("/api/v1/dead-letters", "GET", "/api/v1/dead-letters", false),
        ("/api/v1/audit", "GET", "/api/v1/audit", false),
        ("/api/v1/conflicts", "GET", "/api/v1/conflicts", false),
    ];
    let mut declared = routes_in_source();
    declared.sort();
    declared.dedup();
    // The console: pages send a browser without a session to the sign-in page, actions and
    // the live JSON answer 401; only the sign-in page and the embedded assets are open.
    // (route as declared, method, concrete path, status without credentials)
    let console = [
        ("/", "GET", "/", 303),
        ("/login", "GET", "/login", 200),
        ("/login", "POST", "/login", 401),
        ("/logout", "POST", "/logout", 401),
        ("/signin", "GET", "/signin?once=0123abcd", 401),
        ("/conflicts", "GET", "/conflicts", 303),
        ("/links", "GET", "/links?q=TEST", 303),
        (
            "/links/{connection}/{jira_id}",
            "GET",
            "/links/seed/10000",
            303,
        ),
        ("/events", "GET", "/events?status=dead", 303),
        ("/events/retry-all", "POST", "/events/retry-all", 401),
        ("/events/{id}", "GET", "/events/1", 303),
        ("/events/{id}/{action}", "POST", "/events/1/retry", 401),
        ("/events/{id}/{action}", "POST", "/events/1/discard", 401),
        ("/audit", "GET", "/audit", 303),
        (
            "/console/overview.json",
            "GET",
            "/console/overview.json",
            401,
        ),
        ("/console/console.css", "GET", "/console/console.css", 200),
        ("/console/console.js", "GET", "/console/console.js", 200),
    ];
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (_, method, path, want) in console {
        for auth in [None, Some(format!("Bearer {WEBHOOK_TOKEN}"))] {
            let mut req = no_redirects.request(method.parse().unwrap(), url(path));
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            if method == "POST" {
                req = req
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("csrf=x&token=nope");
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string());
            let body = resp.text().await.unwrap();
            if auth.is_some() && path == "/" {
                // `/` still answers Bearer requests: a wrong token is refused.
                assert_eq!(
                    status, 401,
                    "{method} {path} with a wrong Bearer token: {body}"
                );
                continue;
            }
            assert_eq!(status, want, "{method} {path} ({auth:?}): {body}");
            if want == 303 {
                assert_eq!(location.as_deref(), Some("/login"), "{path}");
            }
            assert_clean(path, &body);
        }
    }
    let (status, body) = call(
        &http,
        reqwest::Method::GET,
        &url("/"),
        Some(&format!("Bearer {ADMIN_TOKEN}")),
    )
    .await;
    assert_eq!(status, 200, "/ with the admin token: {body}");
    assert!(body.contains("Overview"), "{body}");

    let mut covered: Vec<String> = table
        .iter()
        .map(|r| r.0)
        .chain(console.iter().map(|r| r.0))
        .map(str::to_string)
        .collect();
    covered.sort();
    covered.dedup();
    assert_eq!(
        declared, covered,
        "every route of server::router is in this table"
    );

    for (_, method, path, open) in table {
        let method: reqwest::Method = method.parse().unwrap();
        let (status, body) = call(&http, method.clone(), &url(path), None).await;
        if open {
            assert_eq!(status, 200, "{path} is open: {body}");
            continue;
        }
        assert_eq!(status, 401, "{method} {path} without credentials: {body}");
        let error = serde_json::from_str::<Value>(&body).unwrap()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!error.is_empty(), "{path}: a JSON error says why");
        // The admin token opens the admin routes and nothing else.
        let (status, body) = call(
            &http,
            method.clone(),
            &url(path),
            Some(&format!("Bearer {ADMIN_TOKEN}")),
        )
        .await;
        if path.starts_with("/webhooks/") {
            assert_eq!(
                status, 401,
                "the admin token is not a webhook credential: {body}"
            );
        } else if path.ends_with("/retry") {
            assert_eq!(status, 404, "{path} with the admin token: {body}");
        } else {
            assert_eq!(status, 200, "{path} with the admin token: {body}");
        }
    }
    w.tandem.unwrap().shutdown().await;
}

/// Credentials are compared in constant time: behaviour of `Secret::matches`, and a review
/// of the source that every credential check goes through it (or through the HMAC's own
/// constant-time `verify_slice`), never through `==`.
#[test]
fn credential_checks_are_constant_time() {
    let s = Secret::new(WEBHOOK_TOKEN);
    assert!(s.matches(WEBHOOK_TOKEN.as_bytes()));
    for wrong in [
        "",
        "S",
        &WEBHOOK_TOKEN[..WEBHOOK_TOKEN.len() - 1],
        "SECRET-wht-a8d05",
    ] {
        assert!(!s.matches(wrong.as_bytes()), "{wrong}");
    }
    assert!(!s.matches(format!("{WEBHOOK_TOKEN}0").as_bytes()));

    let code = |src: &'static str| src.split("#[cfg(test)]").next().unwrap_or(src);
    let secret_rs = code(include_str!("../../engine/src/secret.rs"));
    assert!(
        secret_rs.contains("ct_eq"),
        "Secret::matches uses subtle's ct_eq"
    );
    let admin = code(include_str!("../../engine/src/server/api.rs"));
    assert!(
        admin.contains("token.matches("),
        "the admin token check uses Secret::matches"
    );
    let console = code(include_str!("../../engine/src/server/console/session.rs"));
    for check in ["token.matches(", ".verify_slice(", ".ct_eq("] {
        assert!(
            console.contains(check),
            "the console's sign-in, session and CSRF checks use {check}"
        );
    }
    let bearer = code(include_str!("../../engine/src/connector/rest/webhook.rs"));
    assert!(
        bearer.contains("token.matches("),
        "the webhook bearer check uses Secret::matches"
    );
    let hmac = code(include_str!("../../engine/src/connector/jira/webhook.rs"));
    assert!(
        hmac.contains(".verify_slice("),
        "the HMAC is checked with verify_slice"
    );
    // No credential is compared with `==` anywhere outside tests.
    for (name, src) in [
        ("secret.rs", secret_rs),
        ("server/api.rs", admin),
        ("server/console/session.rs", console),
        (
            "server/console/mod.rs",
            code(include_str!("../../engine/src/server/console/mod.rs")),
        ),
        (
            "server/webhooks.rs",
            code(include_str!("../../engine/src/server/webhooks.rs")),
        ),
        ("rest/webhook.rs", bearer),
        ("jira/webhook.rs", hmac),
        (
            "jira/mod.rs",
            code(include_str!("../../engine/src/connector/jira/mod.rs")),
        ),
        (
            "rest/mod.rs",
            code(include_str!("../../engine/src/connector/rest/mod.rs")),
        ),
    ] {
        for line in src.lines() {
            let compares = line.contains("==") || line.contains("!=") || line.contains(".eq(");
            assert!(
                !(compares && (line.contains("expose()") || line.contains("sig "))),
                "{name}: a credential compared without constant time: {line}"
            );
        }
    }
}
