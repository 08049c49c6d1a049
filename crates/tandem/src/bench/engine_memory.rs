//! The engine's own memory with a large store: `tandem serve` runs as a child process, so its
//! resident set is Tandem's alone (not the sandboxes', the driver's or the seed baseline's,
//! which share the bench's process), with its SQLite store holding `links` links before it
//! starts. Read from `/proc/<pid>/status`: `VmRSS` once it is ready and idle, `VmHWM` (its
//! peak) after it created twins for new issues and carried a burst of edits to them.
//!
//! The links are written straight into the store file (one statement) rather than made
//! through the sandboxes: a hundred thousand pairs made one by one would take minutes, and
//! what matters here is what the engine keeps in memory when its store holds them.

use super::engine_process::EngineProcess;
use super::{initial_values, scratch_dir};
use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig};

/// What the memory phase measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineMemory {
    /// Links in the store when the engine started.
    pub links_in_store: usize,
    /// `VmRSS` of `tandem serve`, ready and idle.
    pub idle_kb: Option<u64>,
    /// `VmHWM` of `tandem serve` after the load below.
    pub peak_kb: Option<u64>,
    /// Issues created in Jira during the load (Tandem creates their twins).
    pub creates: usize,
    /// Edits made in Jira during the load, all at once.
    pub edits: usize,
    /// Of those edits, how many links held their last value outside at the end.
    pub links_landed: usize,
    /// How long the load took, from the first create until every twin held its last edit.
    pub load_seconds: f64,
}

/// Runs the phase with the `tandem` binary at `binary`.
pub(crate) async fn measure(
    binary: &Path,
    links: usize,
    creates: usize,
    edits_per_issue: usize,
) -> anyhow::Result<EngineMemory> {
    let jira = JiraSandbox::start(JiraSandboxConfig::default()).await?;
    let external = ExternalSandbox::start(ExternalSandboxConfig::default()).await?;
    let dir = scratch_dir()?;
    let result = run(
        binary,
        &dir,
        &jira,
        &external,
        links,
        creates,
        edits_per_issue,
    )
    .await;
    jira.shutdown().await;
    external.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(
    binary: &Path,
    dir: &Path,
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    links: usize,
    creates: usize,
    edits_per_issue: usize,
) -> anyhow::Result<EngineMemory> {
    let engine = EngineProcess::start(binary, dir, jira, external, async |db| {
        fill_store(db, links).await
    })
    .await?;

    // Idle: ready, nothing to do, the store holding every link.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kb = engine.status_kb("VmRSS");

    let started = Instant::now();
    let link_field = jira.external_id_field().to_string();
    let mut keys = Vec::with_capacity(creates);
    for i in 0..creates {
        let mut fields = serde_json::Map::new();
        for (field, _, value) in initial_values(links + i) {
            fields.insert(field.to_string(), json!(value));
        }
        keys.push(jira.user_create_issue("TEST", Value::Object(fields)));
    }
    let deadline = Instant::now() + Duration::from_secs(60 + creates as u64 / 2);
    let mut twins = Vec::with_capacity(creates);
    for key in &keys {
        loop {
            let twin = jira.issue(key).and_then(|issue| {
                issue["fields"][&link_field]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            });
            if let Some(twin) = twin {
                twins.push(twin);
                break;
            }
            if Instant::now() > deadline {
                bail!("tandem serve did not create a twin for {key} in time");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for round in 0..edits_per_issue {
        for key in &keys {
            jira.user_edit_issue(key, json!({ "summary": format!("{key} edit {round}") }));
        }
    }
    let last = edits_per_issue.checked_sub(1);
    let holds_last = |i: usize| -> bool {
        let Some(round) = last else { return true };
        let want = format!("{} edit {round}", keys[i]);
        external.item(&twins[i]).is_some_and(|item| {
            item["fields"].as_array().is_some_and(|fields| {
                fields
                    .iter()
                    .any(|f| f["value"].as_str() == Some(want.as_str()))
            })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut links_landed = 0;
    while Instant::now() < deadline {
        links_landed = (0..keys.len()).filter(|&i| holds_last(i)).count();
        if links_landed == keys.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let load_seconds = started.elapsed().as_secs_f64();
    let peak_kb = engine.status_kb("VmHWM");
    engine.stop().await;
    Ok(EngineMemory {
        links_in_store: links,
        idle_kb,
        peak_kb,
        creates,
        edits: creates * edits_per_issue,
        links_landed,
        load_seconds,
    })
}

/// Creates the store (through Tandem, so its schema is current) and adds `links` links of the
/// example's connection in one statement.
pub(crate) async fn fill_store(path: &Path, links: usize) -> anyhow::Result<()> {
    let url = format!("sqlite://{}", path.display());
    drop(crate::store::open(&url).await?);
    let pool = sqlx::SqlitePool::connect(&url).await?;
    let now = chrono::Utc::now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .to_string();
    // A shadow like a synced pair's: four fields with their values and times.
    let shadow = json!({
        "summary<->1001": {"value": {"type": "text", "value": "Synced summary"}, "source_ts": now, "source": "jira"},
        "description<->1002": {"value": {"type": "text", "value": "Synced description of the item"}, "source_ts": now, "source": "jira"},
        "duedate<->1003": {"value": {"type": "text", "value": "2026-12-31"}, "source_ts": now, "source": "jira"},
        "customfield_123456<->1004": {"value": {"type": "text", "value": "ACME-0"}, "source_ts": now, "source": "jira"}
    })
    .to_string();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
         INSERT INTO links (connection, jira_id, jira_key, external_id, shadow, version,
                            created_at, updated_at, pending)
         SELECT 'seed', 'stored-' || i, 'STORED-' || i, 'stored-ext-' || i, $2, 1, $3, $3, '{}'
         FROM n",
    )
    .bind(links as i64)
    .bind(&shadow)
    .bind(&now)
    .execute(&pool)
    .await
    .context("cannot fill the store with links")?;
    pool.close().await;
    Ok(())
}
