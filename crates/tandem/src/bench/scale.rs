//! `tandem bench --scale`: what a large store and a large initial import cost.
//!
//! Two measurements, each with `tandem serve` or `tandem sync` as its own child process so
//! that the resident set and the time are Tandem's alone:
//!
//! 1. **Latency against the store's size.** The engine starts on a store that already holds
//!    1,000 links, then again on one holding `links` (1,000,000 by default); each time it
//!    creates twins for a few new Jira issues and then carries edits made one at a time,
//!    alternately in Jira and outside, each timed from the edit until the other side shows
//!    it. Reported: idle RSS, the latency percentiles, and the ratio of the two medians (the
//!    store's size should not show in the time of a change: every lookup is by index).
//! 2. **An initial import.** `items` issues in Jira and `items` items outside, already paired
//!    (Jira's link field names the external id, as after a migration or an earlier tool), one
//!    in a hundred edited in Jira since; then `tandem sync` runs to its end. Reported: its wall
//!    time, the calls it made to each side per item, its writes, and its peak RSS (`VmHWM`,
//!    read from `/proc` while it runs).
//!
//! The stored links are written straight into the store file (see
//! [`engine_memory::fill_store`]); the paired items are made in the sandboxes' memory.

use super::engine_memory::fill_store;
use super::engine_process::EngineProcess;
use super::{EDITED, EditSide, Stats, edit_shows, initial_values, is_read, scratch_dir, send_edit};
use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig};

/// The size of a scale run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScaleOptions {
    /// Links in the large store (the small one holds [`SMALL_STORE`]).
    pub links: usize,
    /// Edits timed one at a time on each store.
    pub latency_edits: usize,
    /// Items on each side of the initial import.
    pub sync_items: usize,
    /// Progress lines on stderr.
    #[serde(skip)]
    pub progress: bool,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        ScaleOptions {
            links: 1_000_000,
            latency_edits: 300,
            sync_items: 100_000,
            progress: false,
        }
    }
}

/// The store size the large one is compared with.
pub const SMALL_STORE: usize = 1_000;
/// New issues whose twins carry the timed edits.
const LATENCY_PAIRS: usize = 20;
/// One paired item in this many was edited in Jira after the pairing (the import writes it).
const DIFFERING_EVERY: usize = 100;

/// One store size of the latency measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreLatency {
    pub links_in_store: usize,
    /// Seconds to write the links into the store file before the engine started.
    pub fill_seconds: f64,
    /// Size of the store file then, MiB.
    pub store_mib: f64,
    /// `VmRSS` of `tandem serve`, ready and idle.
    pub idle_kb: Option<u64>,
    /// `VmHWM` after the timed edits.
    pub peak_kb: Option<u64>,
    pub edits: usize,
    /// Edits shown on the other side within the timeout.
    pub landed: usize,
    /// From the edit to the other side showing it, ms.
    pub latency_ms: Option<Stats>,
}

/// The initial import.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportRun {
    pub items_per_side: usize,
    /// Pairs whose Jira side was edited since (each needs one write outside).
    pub differing: usize,
    /// Wall time of `tandem sync`, from start to exit.
    pub seconds: f64,
    /// Whether it exited with success.
    pub succeeded: bool,
    /// Its closing line (linked, created, updated, …).
    pub summary: String,
    /// Requests to each side, and per item (both sides' items counted).
    pub jira_requests: usize,
    pub external_requests: usize,
    pub calls_per_item: f64,
    /// Of those, writes (anything but reads and searches).
    pub writes: usize,
    /// Pairs whose external side holds Jira's edit at the end.
    pub differing_landed: usize,
    /// `VmHWM` of `tandem sync`, last read before it exited.
    pub peak_kb: Option<u64>,
    /// Its user + system CPU time, last read before it exited (the sandboxes it talks to
    /// run in the bench's process and are not counted).
    pub cpu_seconds: Option<f64>,
}

/// What a scale run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleReport {
    pub date: String,
    pub build: &'static str,
    pub options: ScaleOptions,
    pub small_store: StoreLatency,
    pub large_store: StoreLatency,
    /// Large store's median latency over the small one's.
    pub median_ratio: Option<f64>,
    pub import: ImportRun,
}

/// Runs both measurements with the `tandem` binary at `binary`.
pub async fn run(binary: &Path, opts: ScaleOptions) -> anyhow::Result<ScaleReport> {
    if opts.links < SMALL_STORE || opts.latency_edits == 0 || opts.sync_items == 0 {
        bail!(
            "a scale run needs at least {SMALL_STORE} links, one latency edit and one item to import"
        );
    }
    let progress = |what: &str| {
        if opts.progress {
            eprintln!("bench: {what}");
        }
    };
    progress(&format!(
        "scale: latency with {SMALL_STORE} links in the store"
    ));
    let small_store = store_latency(binary, SMALL_STORE, opts.latency_edits).await?;
    progress(&format!(
        "scale: latency with {} links in the store",
        opts.links
    ));
    let large_store = store_latency(binary, opts.links, opts.latency_edits).await?;
    progress(&format!(
        "scale: tandem sync of {} paired items per side",
        opts.sync_items
    ));
    let import = import(binary, opts.sync_items).await?;
    let median_ratio = match (&small_store.latency_ms, &large_store.latency_ms) {
        (Some(small), Some(large)) if small.median > 0.0 => Some(large.median / small.median),
        _ => None,
    };
    Ok(ScaleReport {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        options: opts,
        small_store,
        large_store,
        median_ratio,
        import,
    })
}

async fn store_latency(binary: &Path, links: usize, edits: usize) -> anyhow::Result<StoreLatency> {
    let jira = JiraSandbox::start(JiraSandboxConfig::default()).await?;
    let external = ExternalSandbox::start(ExternalSandboxConfig::default()).await?;
    let dir = scratch_dir()?;
    let result = store_latency_on(binary, &dir, &jira, &external, links, edits).await;
    jira.shutdown().await;
    external.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn store_latency_on(
    binary: &Path,
    dir: &Path,
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    links: usize,
    edits: usize,
) -> anyhow::Result<StoreLatency> {
    let mut fill_seconds = 0.0;
    let mut store_mib = 0.0;
    let engine = EngineProcess::start(binary, dir, jira, external, async |db| {
        let started = Instant::now();
        fill_store(db, links).await?;
        fill_seconds = started.elapsed().as_secs_f64();
        store_mib = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
        Ok(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kb = engine.status_kb("VmRSS");

    // New pairs made through the engine, so the timed edits run the whole path.
    let link_field = jira.external_id_field().to_string();
    let mut pairs = Vec::with_capacity(LATENCY_PAIRS);
    for i in 0..LATENCY_PAIRS {
        let mut fields = serde_json::Map::new();
        for (field, _, value) in initial_values(links + i) {
            fields.insert(field.to_string(), json!(value));
        }
        let key = jira.user_create_issue("TEST", Value::Object(fields));
        let deadline = Instant::now() + Duration::from_secs(60);
        let twin = loop {
            let twin = jira.issue(&key).and_then(|issue| {
                issue["fields"][&link_field]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            });
            if let Some(twin) = twin {
                break twin;
            }
            if Instant::now() > deadline {
                bail!("tandem serve did not create a twin for {key} in time");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        pairs.push((key, twin));
    }
    // Let the creates' echoes pass before timing anything.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut samples = Vec::with_capacity(edits);
    for n in 0..edits {
        let (key, twin) = &pairs[n % pairs.len()];
        let from = if n % 2 == 0 {
            EditSide::Jira
        } else {
            EditSide::External
        };
        let to = match from {
            EditSide::Jira => EditSide::External,
            EditSide::External => EditSide::Jira,
        };
        let values: [String; 2] =
            std::array::from_fn(|f| format!("scale {links} edit {n} field {}", EDITED[f].0));
        let started = Instant::now();
        send_edit(jira, external, (key, twin), &values, from);
        let deadline = started + Duration::from_secs(3);
        loop {
            if edit_shows(jira, external, (key, twin), &values, to) {
                samples.push(started.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    let peak_kb = engine.status_kb("VmHWM");
    engine.stop().await;
    Ok(StoreLatency {
        links_in_store: links,
        fill_seconds,
        store_mib,
        idle_kb,
        peak_kb,
        edits,
        landed: samples.len(),
        latency_ms: Stats::of(&samples),
    })
}

async fn import(binary: &Path, items: usize) -> anyhow::Result<ImportRun> {
    let jira = JiraSandbox::start(JiraSandboxConfig::default()).await?;
    let external = ExternalSandbox::start(ExternalSandboxConfig::default()).await?;
    let dir = scratch_dir()?;
    let result = import_on(binary, &dir, &jira, &external, items).await;
    jira.shutdown().await;
    external.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn import_on(
    binary: &Path,
    dir: &Path,
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    items: usize,
) -> anyhow::Result<ImportRun> {
    let link_field = jira.external_id_field().to_string();
    // Outside first, so that the Jira edits below are the later side of each differing pair.
    let twins: Vec<String> = (0..items)
        .map(|i| {
            external.user_create(
                initial_values(i)
                    .into_iter()
                    .map(|(_, id, value)| (id, value))
                    .collect(),
            )
        })
        .collect();
    let mut differing = Vec::new();
    for (i, twin) in twins.iter().enumerate() {
        let mut fields = serde_json::Map::new();
        for (field, _, value) in initial_values(i) {
            fields.insert(field.to_string(), json!(value));
        }
        fields.insert(link_field.clone(), json!(twin));
        let key = jira.user_create_issue("TEST", Value::Object(fields));
        if i % DIFFERING_EVERY == 0 {
            let summary = format!("Benchmark issue {i}, edited in Jira");
            jira.user_edit_issue(&key, json!({ "summary": summary }));
            differing.push((twin.clone(), summary));
        }
    }
    let config = super::super::demo::write_seed_config(dir, jira, external, Some("1h"))?;
    let jira_before = jira.requests_since(0).len();
    let external_before = external.requests_since(0).len();

    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .arg("sync")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} sync", binary.display()))?;
    let pid = child.id().context("tandem sync exited at once")?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut text).await;
        text
    });
    // `VmHWM` only grows; the last reading before the process is reaped is its peak.
    let mut peak_kb = None;
    let mut cpu_ticks = None;
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kb) = super::status_kb(&status, "VmHWM")
        {
            peak_kb = Some(kb);
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(ticks) = super::engine_process::cpu_ticks(&stat)
        {
            cpu_ticks = Some(ticks);
        }
        tokio::select! {
            status = child.wait() => break status?,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let output = reader.await.unwrap_or_default();
    let summary = output
        .lines()
        .find(|l| l.contains("Jira issues and"))
        .unwrap_or("")
        .trim()
        .to_string();

    let jira_requests = jira.requests_since(jira_before);
    let external_requests = external.requests_since(external_before);
    let writes = jira_requests
        .iter()
        .chain(&external_requests)
        .filter(|r| !is_read(r))
        .count();
    let differing_landed = differing
        .iter()
        .filter(|(twin, summary)| {
            external.item(twin).is_some_and(|item| {
                super::in_process::external_value(&item, 1001) == Some(summary.as_str())
            })
        })
        .count();
    Ok(ImportRun {
        items_per_side: items,
        differing: differing.len(),
        seconds,
        succeeded: status.success(),
        summary,
        jira_requests: jira_requests.len(),
        external_requests: external_requests.len(),
        calls_per_item: (jira_requests.len() + external_requests.len()) as f64 / (2 * items) as f64,
        writes,
        differing_landed,
        peak_kb,
        cpu_seconds: cpu_ticks
            .map(|t| t as f64 / super::engine_process::clock_ticks_per_sec() as f64),
    })
}

/// The report as text.
pub fn render(r: &ScaleReport) -> String {
    let mib = |kb: Option<u64>| {
        kb.map_or("-".to_string(), |kb| {
            format!("{:.1} MiB", kb as f64 / 1024.0)
        })
    };
    let ms = |s: &Option<Stats>, f: fn(&Stats) -> f64| {
        s.as_ref()
            .map_or("-".to_string(), |s| format!("{:.2} ms", f(s)))
    };
    let mut out = format!("Tandem at scale ({} build, {})\n\n", r.build, r.date);
    out.push_str("links in store | store file | idle RSS | peak RSS | edits landed | p50 | p99\n");
    for s in [&r.small_store, &r.large_store] {
        out.push_str(&format!(
            "{} | {:.0} MiB (filled in {:.1} s) | {} | {} | {}/{} | {} | {}\n",
            s.links_in_store,
            s.store_mib,
            s.fill_seconds,
            mib(s.idle_kb),
            mib(s.peak_kb),
            s.landed,
            s.edits,
            ms(&s.latency_ms, |s| s.median),
            ms(&s.latency_ms, |s| s.p99),
        ));
    }
    if let Some(ratio) = r.median_ratio {
        out.push_str(&format!(
            "median latency, large store / small store: {ratio:.2}\n"
        ));
    }
    let i = &r.import;
    out.push_str(&format!(
        "\ntandem sync, {} paired items per side ({} edited in Jira since): {:.1} s, {}\n  {}\n  requests: Jira {}, outside {}, {:.3} per item, {} writes; edits landed {}/{}; peak RSS {}; CPU {}\n",
        i.items_per_side,
        i.differing,
        i.seconds,
        if i.succeeded { "succeeded" } else { "FAILED" },
        i.summary,
        i.jira_requests,
        i.external_requests,
        i.calls_per_item,
        i.writes,
        i.differing_landed,
        i.differing,
        mib(i.peak_kb),
        i.cpu_seconds
            .map_or("-".to_string(), |s| format!("{s:.1} s")),
    ));
    out
}
