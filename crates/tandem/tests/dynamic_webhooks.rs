//! Dynamic webhooks for OAuth apps, end to end against the Jira sandbox: `tandem serve`
//! registers one hook, a restart reuses it, it is refreshed before its 30-day expiry, it is
//! registered again once expired, and edits delivered through it (unsigned) reach the other
//! side. Polling is off, and no admin webhook exists, so only the dynamic hook can deliver.

mod common;

use common::{MAPPING, eventually, ext_field};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tandem::app::{self, Running};
use tandem::connector::jira::dynamic::{HookState, Outcome};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig};

fn config_text(jira: &str, external: &str, listen: SocketAddr) -> String {
    format!(
        r#"
[server]
listen = "{listen}"
[storage]
url = "sqlite://tandem.db"
[worker]
backoff_base_ms = 50
backoff_cap_ms = 400
[[connection]]
name = "seed"
mapping = "fieldMappings.csv"
poll_interval = "0"
[connection.filter]
projects = ["TEST"]
[connection.jira]
base_url = "{jira}"
api = "cloud"
oauth_token = "sandbox-oauth-token"
dynamic_webhook_url = "http://{listen}"
project = "TEST"
[connection.external]
type = "rest"
base_url = "{external}"
auth = {{ type = "basic", username = "external", password = "external-secret" }}
"#
    )
}

/// A loopback address nobody listens on right now: the webhook URL must be known before
/// Tandem starts, and must stay the same across its restart.
fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// The app's dynamic webhooks, as Jira lists them to the OAuth app.
async fn listed_hooks(jira: &JiraSandbox) -> Vec<Value> {
    let v: Value = reqwest::Client::new()
        .get(format!("{}/rest/api/3/webhook", jira.url()))
        .bearer_auth(&jira.config().oauth_token)
        .send()
        .await
        .expect("list hooks")
        .json()
        .await
        .expect("json");
    v["values"].as_array().cloned().unwrap_or_default()
}

/// Waits for the start-up check of the (single) dynamic webhook to finish.
async fn registered(running: &Running) -> HookState {
    let hook = running.dynamic_webhooks.first().expect("a dynamic webhook");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(state) = hook.state().await {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "dynamic webhook never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start(path: &std::path::Path, listen: SocketAddr) -> Running {
    let config = tandem::config::load(path).expect("config loads");
    app::start(config, listen, app::metrics_handle())
        .await
        .expect("tandem starts")
}

fn twin_summary(external: &ExternalSandbox, key: &str) -> Option<String> {
    external
        .items()
        .into_iter()
        .find(|i| i["sourceIssueId"] == json!(key))
        .and_then(|i| ext_field(&i, 1001))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_apps_keep_one_dynamic_webhook_alive_and_sync_through_it() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let jira = JiraSandbox::start(JiraSandboxConfig {
        projects: vec![("TEST".into(), "Test".into())],
        ..JiraSandboxConfig::default()
    })
    .await
    .expect("jira sandbox");
    let external = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .expect("external sandbox");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fieldMappings.csv"), MAPPING).unwrap();
    let listen = free_addr();
    let path = dir.path().join("tandem.toml");
    std::fs::write(&path, config_text(&jira.url(), &external.url(), listen)).unwrap();
    let our_url = format!("http://{listen}/webhooks/seed/jira");

    // `serve` registers exactly one hook, at our URL, with the subset filter and the mapped
    // fields.
    let running = start(&path, listen).await;
    let first = registered(&running).await;
    let hooks = listed_hooks(&jira).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let hook = &hooks[0];
    assert_eq!(hook["url"], json!(our_url));
    assert_eq!(hook["id"], json!(first.ids[0]));
    assert_eq!(hook["jqlFilter"], json!(r#"project IN ("TEST")"#));
    let mut field_ids: Vec<&str> = hook["fieldIdsFilter"]
        .as_array()
        .expect("fieldIdsFilter")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    field_ids.sort();
    assert_eq!(
        field_ids,
        ["customfield_123456", "description", "duedate", "summary"]
    );

    // Jira edits arrive through the hook, unsigned, and reach the other side.
    let key = jira.user_create_issue("TEST", json!({"summary": "Via dynamic hook"}));
    eventually("twin created", || {
        twin_summary(&external, &key).filter(|s| s == "Via dynamic hook")
    })
    .await;
    jira.user_edit_issue(&key, json!({"summary": "Edited in Jira"}));
    eventually("edit synced", || {
        twin_summary(&external, &key).filter(|s| s == "Edited in Jira")
    })
    .await;

    // A restart reuses the hook rather than registering a second one.
    running.shutdown().await;
    let running = start(&path, listen).await;
    let again = registered(&running).await;
    assert_eq!(again.ids, first.ids);
    let hooks = listed_hooks(&jira).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["id"], json!(first.ids[0]));

    // 25 days on, 5 remain: the check refreshes it and Jira's expiry moves forward.
    let hook = running.dynamic_webhooks[0].clone();
    let before = hooks[0]["expirationDate"].as_i64().expect("expiry");
    jira.advance_clock(Duration::from_secs(25 * 24 * 3600));
    assert_eq!(
        hook.refresh_once(jira.now()).await.expect("refresh"),
        Outcome::Refreshed
    );
    let hooks = listed_hooks(&jira).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let after = hooks[0]["expirationDate"].as_i64().expect("expiry");
    assert!(after > before, "expiry did not move: {before} -> {after}");
    assert_eq!(
        hook.state().await.map(|s| s.expires.timestamp_millis()),
        Some(after)
    );
    // Right after a refresh there is nothing to do.
    assert_eq!(
        hook.refresh_once(jira.now()).await.expect("check"),
        Outcome::NotDue
    );

    // Past expiry without a refresh, Jira drops the hook: the check registers a new one.
    jira.advance_clock(Duration::from_secs(31 * 24 * 3600));
    assert!(listed_hooks(&jira).await.is_empty());
    assert_eq!(
        hook.refresh_once(jira.now()).await.expect("re-register"),
        Outcome::Reregistered
    );
    let hooks = listed_hooks(&jira).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["url"], json!(our_url));
    assert_ne!(hooks[0]["id"], json!(first.ids[0]));
    assert!(hooks[0]["expirationDate"].as_i64().unwrap() > jira.now().timestamp_millis());

    // And the new hook delivers too.
    jira.user_edit_issue(&key, json!({"summary": "After re-registration"}));
    eventually("edit synced through the new hook", || {
        twin_summary(&external, &key).filter(|s| s == "After re-registration")
    })
    .await;

    // The refreshes are counted.
    if let Some(metrics) = app::metrics_handle() {
        let text = metrics.render();
        for outcome in ["registered", "reused", "refreshed", "reregistered"] {
            let series = format!(
                "tandem_dynamic_webhook_refresh_total{{connection=\"seed\",outcome=\"{outcome}\"}}"
            );
            assert!(text.contains(&series), "no {series} in:\n{text}");
        }
    }
    running.shutdown().await;
}

#[test]
fn a_dynamic_webhook_url_without_an_oauth_token_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fieldMappings.csv"), MAPPING).unwrap();
    let text = config_text("https://x.atlassian.net", "https://ext", free_addr()).replace(
        "oauth_token = \"sandbox-oauth-token\"",
        "email = \"me@example.com\"\napi_token = \"t\"",
    );
    let path = dir.path().join("tandem.toml");
    std::fs::write(&path, &text).unwrap();
    let err = tandem::config::load(&path)
        .expect_err("refused")
        .to_string();
    let line = text[..text.find("dynamic_webhook_url").unwrap()]
        .matches('\n')
        .count()
        + 1;
    assert_eq!(
        err.lines().next().unwrap_or_default(),
        format!(
            "{}:{line}: connection[0].jira.dynamic_webhook_url: needs `oauth_token`: only OAuth 2.0 apps may register dynamic webhooks (with an API token, use `tandem jira webhook register` for an admin webhook)",
            path.display()
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_is_retried_with_backoff_not_after_the_full_interval() {
    use tandem::connector::jira::dynamic::{self, DynamicWebhook, Settings};
    let jira = JiraSandbox::start(JiraSandboxConfig {
        projects: vec![("TEST".into(), "Test".into())],
        ..JiraSandboxConfig::default()
    })
    .await
    .expect("jira sandbox");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fieldMappings.csv"), MAPPING).unwrap();
    let path = dir.path().join("tandem.toml");
    let listen = free_addr();
    std::fs::write(
        &path,
        config_text(&jira.url(), "http://127.0.0.1:9", listen),
    )
    .unwrap();
    let config = tandem::config::load(&path).expect("config loads");
    let hook = DynamicWebhook::for_connection(&config.connections[0], reqwest::Client::new())
        .expect("builds")
        .expect("configured");
    let hook = std::sync::Arc::new(hook);
    let metrics = app::metrics_handle();

    // Jira fails every call at first; the hour-long interval means only the retry backoff
    // can bring the next attempt.
    jira.faults().set_error_rate(1.0);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = dynamic::spawn(
        vec![hook.clone()],
        Settings {
            interval: Duration::from_secs(3600),
            retry_base: Duration::from_millis(20),
            clock: std::sync::Arc::new(chrono::Utc::now),
        },
        stopped,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !jira
        .request_log()
        .iter()
        .any(|r| r.path.starts_with("/rest/api/3/"))
    {
        assert!(Instant::now() < deadline, "no check was attempted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Nothing was registered by the failed attempt.
    assert!(hook.state().await.is_none());

    jira.faults().clear();
    let deadline = Instant::now() + Duration::from_secs(15);
    let state = loop {
        if let Some(s) = hook.state().await {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the failed check was never retried"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let hooks = listed_hooks(&jira).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["id"], json!(state.ids[0]));
    if let Some(m) = metrics {
        let series = "tandem_dynamic_webhook_refresh_total{connection=\"seed\",outcome=\"failed\"}";
        assert!(m.render().contains(series), "no {series}");
    }
    let _ = stop.send(true);
    task.await.expect("task stops");
}
