//! `tandem demo`: the whole product on one machine, in a minute.
//!
//! Starts the Jira sandbox, the external-system sandbox and the engine on loopback with the
//! bundled seed example (its mapping and `tandem.toml`, rewritten to point at the sandboxes),
//! then plays the round trip a newcomer wants to see: an issue created in Jira gets a twin
//! outside; an edit outside lands in Jira; an edit in Jira lands outside. Each step prints
//! its measured latency, and prints the operator console's one-time sign-in link (and the
//! token to sign in with once that is spent). `--once` exits afterwards (0 only if every step succeeded).

use crate::app;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig};

/// The bundled example, shipped inside the binary so the demo runs from any folder.
const SEED_CONFIG: &str = include_str!("../../../examples/seed/tandem.toml");
const SEED_MAPPING: &str = include_str!("../../../examples/seed/fieldMappings.csv");

/// How long one step may take before the demo calls it failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

pub async fn run(once: bool) -> anyhow::Result<()> {
    let jira = JiraSandbox::start(JiraSandboxConfig::default()).await?;
    let external = ExternalSandbox::start(ExternalSandboxConfig::default()).await?;
    let dir = tempfile_dir()?;
    let config_path = write_seed_config(&dir, &jira, &external, None)?;
    let (running, base) = start_seed_tandem(&config_path, &jira, &external).await?;

    println!("Tandem demo");
    println!("  Jira sandbox:     {}", jira.url());
    println!("  External sandbox: {}", external.url());
    println!("  Tandem:           {base}  (metrics: {base}/metrics, health: {base}/healthz)");
    println!("  Store:            {}", running.config.storage.url);
    // A token in a sign-in URL would end up in the browser's history and in any proxy's
    // logs, so the link carries a one-time code instead (used once, within ten minutes); the
    // token still signs in at /login. The demo's token is the bundled example's throwaway
    // value for the sandboxes, so printing it costs nothing.
    if let Some(link) = running.console_signin_link() {
        println!("  Console:          {link}");
        println!(
            "                    (open it in a browser within {} minutes: it signs you in once)",
            crate::server::SIGNIN_LINK_MINUTES
        );
    }
    if let Some(token) = &running.config.server.admin_token {
        println!(
            "                    or open {base}/login and sign in with the demo's admin token: {}",
            token.expose()
        );
    }
    println!();

    let result = play(&jira, &external).await;
    match &result {
        Ok(()) => println!("\nAll steps passed."),
        Err(e) => println!("\nDemo failed: {e:#}"),
    }
    if !once && result.is_ok() {
        println!("\nTandem keeps running; edit either sandbox and watch it sync. Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
    }
    running.shutdown().await;
    jira.shutdown().await;
    external.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn play(jira: &JiraSandbox, external: &ExternalSandbox) -> anyhow::Result<()> {
    // 1. Create in Jira → twin appears outside, and its id is written back to Jira.
    let started = Instant::now();
    let key = jira.user_create_issue(
        "TEST",
        json!({
            "summary": "Customer cannot log in",
            "description": "Reported by *ACME* via the support desk.",
            "duedate": "2026-12-31",
            "customfield_123456": "ACME-42",
        }),
    );
    let ext_id = wait_for(|| {
        external
            .items()
            .into_iter()
            .find(|item| item["sourceIssueId"] == json!(key))
            .and_then(|item| item["id"].as_str().map(str::to_string))
    })
    .await
    .with_context(|| format!("no twin of {key} appeared in the external system"))?;
    step(
        1,
        &format!("created {key} in Jira → twin {ext_id} created outside"),
        started,
    );
    let link_field = jira.external_id_field().to_string();
    wait_for(|| {
        jira.issue(&key)
            .filter(|i| i["fields"][&link_field] == json!(ext_id))
            .map(|_| ())
    })
    .await
    .with_context(|| format!("{key}'s External ID was not set to {ext_id}"))?;

    // 2. Edit outside → lands in Jira.
    let started = Instant::now();
    let new_summary = "Customer cannot log in (SSO only)";
    if !external.user_edit(&ext_id, vec![(1001, new_summary.to_string())]) {
        bail!("the external sandbox refused to edit {ext_id}");
    }
    wait_for(|| {
        jira.issue(&key)
            .filter(|i| i["fields"]["summary"] == json!(new_summary))
            .map(|_| ())
    })
    .await
    .with_context(|| format!("the external edit of {ext_id} did not reach {key}"))?;
    step(
        2,
        &format!("edited summary of {ext_id} outside → {key} updated in Jira"),
        started,
    );

    // 3. Edit in Jira → lands outside.
    let started = Instant::now();
    jira.user_edit_issue(&key, json!({ "duedate": "2027-01-15" }));
    wait_for(|| {
        external
            .item(&ext_id)
            .filter(|item| field_value(item, 1003) == Some("2027-01-15"))
            .map(|_| ())
    })
    .await
    .with_context(|| format!("the Jira edit of {key} did not reach {ext_id}"))?;
    step(
        3,
        &format!("edited due date of {key} in Jira → {ext_id} updated outside"),
        started,
    );
    Ok(())
}

fn field_value(item: &Value, field_id: u64) -> Option<&str> {
    item["fields"]
        .as_array()?
        .iter()
        .find(|f| f["fieldId"] == json!(field_id) || f["fieldId"] == json!(field_id.to_string()))
        .and_then(|f| f["value"].as_str())
}

fn step(n: u32, what: &str, started: Instant) {
    println!("  step {n}: {what}  [{} ms]", started.elapsed().as_millis());
}

/// Polls `probe` every 10 ms until it yields a value or the step times out.
async fn wait_for<T>(mut probe: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {} s", STEP_TIMEOUT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("tandem-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Writes the bundled example into `dir` with its URLs pointed at the running sandboxes and
/// returns the config's path. `poll_interval` (e.g. `"1h"`) replaces the example's `"60s"`.
pub(crate) fn write_seed_config(
    dir: &Path,
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    poll_interval: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let mut text = SEED_CONFIG
        .replace("http://127.0.0.1:8081", &jira.url())
        .replace("http://127.0.0.1:8082", &external.url());
    if let Some(interval) = poll_interval {
        text = text.replace(
            "poll_interval = \"60s\"",
            &format!("poll_interval = \"{interval}\""),
        );
    }
    let path = dir.join("tandem.toml");
    std::fs::write(&path, text)?;
    std::fs::write(dir.join("fieldMappings.csv"), SEED_MAPPING)?;
    Ok(path)
}

/// The token the connection's external system sends on its webhooks, if it has one.
pub(crate) fn external_webhook_token(conn: &crate::config::ConnectionConfig) -> Option<String> {
    match &conn.external {
        crate::config::ExternalConfig::Rest(rest) => {
            rest.webhook_token.as_ref().map(|s| s.expose().to_string())
        }
        crate::config::ExternalConfig::Jira(_) => None,
    }
}

/// Loads the seed config written by [`write_seed_config`], starts Tandem on loopback, and
/// points both sandboxes' webhooks at it. Returns Tandem and its base URL.
pub(crate) async fn start_seed_tandem(
    config_path: &Path,
    jira: &JiraSandbox,
    external: &ExternalSandbox,
) -> anyhow::Result<(app::Running, String)> {
    let config = crate::config::load(config_path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the bundled example config does not load")?;
    let running = app::start(config, "127.0.0.1:0".parse()?, None).await?;
    let base = format!("http://{}", running.addr);
    let conn = running
        .config
        .connections
        .first()
        .context("the example defines no connection")?;
    point_sandbox_webhooks(conn, &base, jira, external);
    Ok((running, base))
}

/// Points both sandboxes' webhooks at the Tandem listening at `base`, with the connection's
/// Jira secret and external token.
pub(crate) fn point_sandbox_webhooks(
    conn: &crate::config::ConnectionConfig,
    base: &str,
    jira: &JiraSandbox,
    external: &ExternalSandbox,
) {
    let jira_secret = conn
        .jira
        .webhook_secret
        .as_ref()
        .map(|s| s.expose().to_string());
    jira.register_webhook(
        &format!("{base}/webhooks/{}/jira", conn.name),
        jira_secret.as_deref(),
    );
    let ext_token = external_webhook_token(conn);
    external.set_webhook(
        &format!("{base}/webhooks/{}/external", conn.name),
        ext_token.as_deref(),
    );
}
