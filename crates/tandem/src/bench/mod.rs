//! `tandem bench`: latency, throughput, remote calls per change and memory, measured against
//! the seed's own strategy on the same sandboxes and the same edits.
//!
//! Each strategy gets fresh in-process sandboxes (Jira and the seed's external system) on
//! loopback and `links` linked pairs, then runs one workload:
//!
//! 1. **Latency**: `latency_edits` edits in Jira, one at a time, each timed from the user's
//!    edit until the value is visible in the external system (the sandbox's state is polled
//!    every millisecond), and each followed by a short quiet spell so its echo is over before
//!    the next; then the same from the external system into Jira. The requests the strategy
//!    made to each sandbox during a direction are counted from the sandboxes' request logs
//!    (user edits are made in-process, so every logged request is the strategy's): calls to
//!    the other side are the propagation; writes back to the edited side can only be the
//!    echo's.
//! 2. **Throughput**: `throughput_edits` edits issued at once across every link (even links
//!    edited in Jira, odd ones outside); the time until every link shows its last value on the
//!    other side.
//! 3. **Convergence**: once quiet, every link must hold its last edit on both sides; links
//!    that do not are edits lost (e.g. reverted by an echo).
//!
//! The two strategies are Tandem itself (started through [`app::start`] with the bundled seed
//! example, exactly as `tandem demo` runs it) and [`seed`]: the seed guide's two scripts
//! translated call for call into a small HTTP receiver. Every edit changes two mapped fields
//! (summary and the custom text field), which is what an edit form that saves several fields
//! at once sends; the seed's cost grows with the number of fields, Tandem's does not.
//!
//! Nothing here asserts on time: the figures are printed, and only structural facts (edits
//! landed, calls counted) are checked by the tests.

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tandem_sandbox::{ExternalSandbox, JiraSandbox, RecordedRequest};

mod engine_memory;
pub mod engine_process;
mod in_process;
mod render;
pub mod scale;
pub mod script_overhead;
mod seed;

pub use engine_memory::EngineMemory;
pub use engine_process::{EngineOptions, EngineReport};
use in_process::{BenchSchema, Kind, run_strategy};
pub use render::{render, render_engine};

/// The bundled mapping as (external field id, Jira field id), for the seed baseline, which
/// reads its mapping as a plain table like the guide's `mappingScript.incl`.
pub(crate) const SEED_FIELDS: [(u64, &str); 4] = [
    (1001, "summary"),
    (1002, "description"),
    (1003, "duedate"),
    (1004, "customfield_123456"),
];

/// The two fields every benchmark edit changes: (Jira field, external field id).
const EDITED: [(&str, u64); 2] = [("summary", 1001), ("customfield_123456", 1004)];

/// Where an edit is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EditSide {
    Jira,
    External,
}

/// Makes an edit of a linked pair on `from`: the two [`EDITED`] fields get `values`, on the
/// Jira issue `key` or on its twin `twin` outside.
fn send_edit(
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    (key, twin): (&str, &str),
    values: &[String; 2],
    from: EditSide,
) {
    match from {
        EditSide::Jira => {
            let mut fields = serde_json::Map::new();
            for ((field, _), value) in EDITED.iter().zip(values) {
                fields.insert((*field).to_string(), json!(value));
            }
            jira.user_edit_issue(key, Value::Object(fields));
        }
        EditSide::External => {
            let fields = EDITED
                .iter()
                .zip(values)
                .map(|((_, id), value)| (*id, value.clone()))
                .collect();
            external.user_edit(twin, fields);
        }
    }
}

/// Whether a pair's side `side` holds `values` in the two [`EDITED`] fields.
fn edit_shows(
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    (key, twin): (&str, &str),
    values: &[String; 2],
    side: EditSide,
) -> bool {
    match side {
        EditSide::Jira => jira.issue(key).is_some_and(|issue| {
            EDITED
                .iter()
                .zip(values)
                .all(|((field, _), v)| issue["fields"][*field].as_str() == Some(v.as_str()))
        }),
        EditSide::External => external.item(twin).is_some_and(|item| {
            EDITED
                .iter()
                .zip(values)
                .all(|((_, id), v)| in_process::external_value(&item, *id) == Some(v.as_str()))
        }),
    }
}

/// How long one latency edit may take before it counts as not landed (on loopback a change
/// takes milliseconds; an edit still missing after this was lost, e.g. reverted by an echo).
const EDIT_TIMEOUT: Duration = Duration::from_secs(3);
/// Webhooks the seed baseline may handle per edit before its guard stops a ping-pong: an
/// edit of two fields and its echo need at most three (one, then one per field written).
const PER_EDIT_WEBHOOKS: usize = 10;
/// How long the throughput phase may take before the edits still missing count as not landed.
const THROUGHPUT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for things to become quiet after a phase.
const QUIET_TIMEOUT: Duration = Duration::from_secs(30);

/// The size of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BenchOptions {
    /// Linked pairs created before measuring.
    pub links: usize,
    /// Edits timed one at a time, in each direction.
    pub latency_edits: usize,
    /// Edits issued at once for the throughput phase (both directions).
    pub throughput_edits: usize,
    /// Offered rate of the steady phase, edits per second.
    pub steady_rate: u32,
    /// Edits made at that rate.
    pub steady_edits: usize,
    /// Webhook deliveries sent straight at Tandem for the ingest phase.
    pub ingest_deliveries: usize,
    /// Senders making those deliveries at the same time.
    pub ingest_senders: usize,
    /// Links in the store of the engine-memory phase (run only when the bench is given the
    /// `tandem` binary to start, see [`run_with`]).
    pub memory_links: usize,
    /// Issues created in Jira during that phase's load.
    pub memory_creates: usize,
    /// Edits to each of those issues, made at once.
    pub memory_edits_per_issue: usize,
    /// The separate-process phases ([`engine_process`]), run first when the bench is given
    /// the `tandem` binary to start.
    pub engine_process: Option<EngineOptions>,
    /// Progress lines on stderr.
    #[serde(skip)]
    pub progress: bool,
}

impl BenchOptions {
    /// `tandem bench --quick`: seconds, even in a debug build.
    pub fn quick() -> Self {
        BenchOptions {
            links: 10,
            latency_edits: 20,
            throughput_edits: 40,
            steady_rate: 100,
            steady_edits: 40,
            ingest_deliveries: 200,
            ingest_senders: 8,
            memory_links: 1000,
            memory_creates: 10,
            memory_edits_per_issue: 3,
            engine_process: None,
            progress: false,
        }
    }

    /// `tandem bench`: about a minute in a release build.
    pub fn full() -> Self {
        BenchOptions {
            links: 200,
            latency_edits: 250,
            throughput_edits: 1000,
            steady_rate: 200,
            steady_edits: 2000,
            ingest_deliveries: 5000,
            ingest_senders: 32,
            memory_links: 100_000,
            memory_creates: 200,
            memory_edits_per_issue: 10,
            engine_process: Some(EngineOptions::default()),
            progress: false,
        }
    }
}

/// Latency percentiles in milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub median: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Stats {
    fn of(samples: &[f64]) -> Option<Stats> {
        let mut s: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
            s[i]
        };
        Some(Stats {
            median: rank(0.5),
            p90: rank(0.9),
            p95: rank(0.95),
            p99: rank(0.99),
            max: rank(1.0),
        })
    }
}

/// Remote requests per change, split into reads (GET, searches) and writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Calls {
    pub reads: f64,
    pub writes: f64,
}

impl Calls {
    pub fn total(&self) -> f64 {
        self.reads + self.writes
    }

    fn count(requests: &[RecordedRequest], per: usize) -> Calls {
        let reads = requests.iter().filter(|r| is_read(r)).count();
        let writes = requests.len() - reads;
        let per = per.max(1) as f64;
        Calls {
            reads: reads as f64 / per,
            writes: writes as f64 / per,
        }
    }
}

/// A search is a read even when it is a POST (Jira's `/search/jql`).
fn is_read(r: &RecordedRequest) -> bool {
    r.method == "GET" || r.path.contains("/search")
}

/// One direction of the latency phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Direction {
    pub edits: usize,
    /// Edits whose values became visible on the other side within 3 s.
    pub landed: usize,
    /// From the user's edit to the value being visible on the other side.
    pub latency_ms: Option<Stats>,
    /// Edits that set off an endless exchange of writes, which the seed baseline's guard cut
    /// (always 0 for Tandem). The calls below are averaged over the other edits.
    pub ping_pongs: usize,
    /// Requests to the system that was not edited, per edit: the propagation's reads of the
    /// twin and its writes.
    pub other_side: Calls,
    /// Requests back to the system that was edited, per edit. Its writes can only come from
    /// the echo (propagating never writes where the edit was made); its reads are re-reads
    /// of the edited item or an echo's searches.
    pub edited_side: Calls,
}

impl Direction {
    /// Every request the change caused, both sides.
    pub fn calls_per_change(&self) -> f64 {
        self.other_side.total() + self.edited_side.total()
    }
    pub fn writes_per_change(&self) -> f64 {
        self.other_side.writes + self.edited_side.writes
    }
    /// Writes the echo of the change caused.
    pub fn echo_writes(&self) -> f64 {
        self.edited_side.writes
    }
}

/// The throughput phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    pub edits: usize,
    /// Links edited (each holds its last edit's value on the other side when it landed).
    pub links: usize,
    pub links_landed: usize,
    /// From the first edit until the last link showed its last value on the other side (of
    /// the links that did: see `links_landed`).
    pub seconds: f64,
    pub edits_per_sec: f64,
    /// Requests to both sandboxes until quiet, per edit.
    pub calls_per_edit: Calls,
}

/// Edits made at a steady offered rate over every link (even links edited in Jira, odd ones
/// outside), each timed until both its values are visible on the other side.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Steady {
    /// Offered rate, edits per second.
    pub rate: u32,
    pub edits: usize,
    /// Edits seen on the other side.
    pub landed: usize,
    /// Edits overwritten by the next edit of the same link before they were seen (not timed).
    pub superseded: usize,
    /// The rate actually achieved by the edit loop (below `rate` when the driver fell behind).
    pub achieved_rate: f64,
    pub latency_ms: Option<Stats>,
}

/// Webhook ingest: deliveries sent straight at Tandem's webhook route by concurrent senders.
/// Each is answered `202` only once its event is durably queued (SQLite, fsync on), so this is
/// the rate at which Tandem can take changes in, while its worker processes them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ingest {
    pub deliveries: usize,
    pub senders: usize,
    /// Answered `202 Accepted`.
    pub accepted: usize,
    pub seconds: f64,
    /// Accepted deliveries per second.
    pub per_sec: f64,
    /// Time from sending a delivery to its answer.
    pub latency_ms: Option<Stats>,
}

/// Peak resident memory of the whole process (sandboxes and driver included) during a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Memory {
    /// `VmRSS` before the strategy's sandboxes and engine started.
    pub rss_before_kb: Option<u64>,
    /// `VmHWM` at the end of the strategy's run.
    pub peak_kb: Option<u64>,
    /// Whether the peak was reset at the start (so it is this run's peak, not the process's).
    pub peak_reset: bool,
}

/// Everything measured for one strategy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyReport {
    pub name: &'static str,
    pub setup_seconds: f64,
    /// Tandem only: requests per linked pair while creating the twins in the setup (the
    /// seed's pairs are made by hand, as the guide assumes).
    pub calls_per_create: Option<Calls>,
    pub jira_to_external: Direction,
    pub external_to_jira: Direction,
    pub throughput: Throughput,
    pub steady: Steady,
    /// Tandem only: the seed's scripts have no durable queue to measure.
    pub ingest: Option<Ingest>,
    /// Links whose two sides do not both hold the last edit once everything is quiet.
    pub lost_edits: usize,
    /// Whether every phase ended quiet (no queued work, no request for 300 ms).
    pub quiesced: bool,
    /// Webhooks the seed baseline dropped to stop an endless ping-pong (always 0 for Tandem).
    pub ping_pong_stopped: u64,
    /// Remote calls that failed (non-2xx) during the measured phases.
    pub failed_calls: usize,
    pub memory: Memory,
}

impl StrategyReport {
    /// Calls per change averaged over both directions.
    pub fn calls_per_change(&self) -> f64 {
        (self.jira_to_external.calls_per_change() + self.external_to_jira.calls_per_change()) / 2.0
    }
    pub fn writes_per_change(&self) -> f64 {
        (self.jira_to_external.writes_per_change() + self.external_to_jira.writes_per_change())
            / 2.0
    }
}

/// Seed ÷ Tandem, each one: above 1 the seed spends more calls or time, or (throughput) does
/// more edits per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratios {
    pub calls_per_change: Option<f64>,
    pub writes_per_change: Option<f64>,
    pub median_latency_jira_to_external: Option<f64>,
    pub median_latency_external_to_jira: Option<f64>,
    pub throughput: Option<f64>,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Tandem's store: `sqlite`, or the PostgreSQL URL without its password.
    pub store: String,
    pub date: String,
    pub build: &'static str,
    pub cpus: usize,
    pub options: BenchOptions,
    pub tandem: StrategyReport,
    pub seed: StrategyReport,
    pub ratios: Ratios,
    /// `tandem serve` on its own, with a large store (SQLite runs given the binary only).
    pub engine_memory: Option<EngineMemory>,
    /// `tandem serve` on its own under load on distinct items (runs given the binary and
    /// [`BenchOptions::engine_process`] only).
    pub engine_process: Option<EngineReport>,
    /// What a typical rules script costs per event (`to_jira` of the shipped example).
    pub script: script_overhead::ScriptOverhead,
}

/// Runs the benchmark: Tandem first (on SQLite in a scratch folder), then the seed baseline,
/// each on fresh sandboxes.
pub async fn run(opts: BenchOptions) -> anyhow::Result<Report> {
    run_on(opts, None).await
}

/// [`run`], with Tandem's store on the PostgreSQL database at `postgres_url` when given
/// (`tandem bench --store URL`). The run gets a fresh schema there, dropped afterwards.
pub async fn run_on(opts: BenchOptions, postgres_url: Option<&str>) -> anyhow::Result<Report> {
    run_with(opts, postgres_url, None).await
}

/// [`run_on`], plus the engine-memory phase when `engine` names the `tandem` binary to start
/// as `tandem serve` (`tandem bench` passes itself). Skipped with `--store`: its store is
/// filled with SQL written for SQLite.
pub async fn run_with(
    opts: BenchOptions,
    postgres_url: Option<&str>,
    engine: Option<&std::path::Path>,
) -> anyhow::Result<Report> {
    if opts.links == 0 {
        bail!("the benchmark needs at least one link");
    }
    // First, on a machine nothing else of the bench has warmed or loaded yet.
    let engine_process = match (engine, opts.engine_process) {
        (Some(binary), Some(engine_opts)) => Some(
            engine_process::run(
                binary,
                EngineOptions {
                    progress: opts.progress,
                    ..engine_opts
                },
            )
            .await?,
        ),
        _ => None,
    };
    let (tandem, store) = match postgres_url {
        None => (
            run_strategy(Kind::Tandem, &opts, None).await?,
            "sqlite".to_string(),
        ),
        Some(url) => {
            let schema = BenchSchema::create(url).await?;
            let result = run_strategy(Kind::Tandem, &opts, Some(&schema.url)).await;
            schema.drop().await;
            (result?, crate::store::redact_url(url))
        }
    };
    let seed = run_strategy(Kind::Seed, &opts, None).await?;
    let engine_memory = match (engine, postgres_url) {
        (Some(binary), None) => {
            progress(
                &opts,
                &format!(
                    "engine memory: tandem serve with {} links in its store, {} creates, {} edits",
                    opts.memory_links,
                    opts.memory_creates,
                    opts.memory_creates * opts.memory_edits_per_issue
                ),
            );
            Some(
                engine_memory::measure(
                    binary,
                    opts.memory_links,
                    opts.memory_creates,
                    opts.memory_edits_per_issue,
                )
                .await?,
            )
        }
        _ => None,
    };
    let ratio = |a: f64, b: f64| (b > 0.0 && a.is_finite()).then(|| a / b);
    let median = |d: &Direction| d.latency_ms.map(|s| s.median).unwrap_or(f64::NAN);
    let ratios = Ratios {
        calls_per_change: ratio(seed.calls_per_change(), tandem.calls_per_change()),
        writes_per_change: ratio(seed.writes_per_change(), tandem.writes_per_change()),
        median_latency_jira_to_external: ratio(
            median(&seed.jira_to_external),
            median(&tandem.jira_to_external),
        ),
        median_latency_external_to_jira: ratio(
            median(&seed.external_to_jira),
            median(&tandem.external_to_jira),
        ),
        throughput: ratio(
            seed.throughput.edits_per_sec,
            tandem.throughput.edits_per_sec,
        ),
    };
    progress(&opts, "script: a typical to_jira hook, timed per call");
    let mut script = script_overhead::measure()?;
    script.share_of_engine_cpu_pct = engine_process
        .as_ref()
        .and_then(|e| e.external_to_jira.cpu.us_per_change)
        .map(|cpu| 100.0 * script.hook_us / cpu);
    Ok(Report {
        store,
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        options: opts,
        tandem,
        seed,
        ratios,
        engine_memory,
        engine_process,
        script,
    })
}

fn progress(opts: &BenchOptions, what: &str) {
    if opts.progress {
        eprintln!("bench: {what}");
    }
}

/// The starting values of pair `i`, as (Jira field, external field id, value).
fn initial_values(i: usize) -> [(&'static str, u64, String); 4] {
    [
        ("summary", 1001, format!("Benchmark issue {i}")),
        (
            "description",
            1002,
            format!("Reported by customer {i} through the support desk."),
        ),
        ("duedate", 1003, "2026-12-31".to_string()),
        ("customfield_123456", 1004, format!("ACME-{i}")),
    ]
}

fn scratch_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "tandem-bench-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS, so that a strategy's peak is
/// its own and not the previous one's. Linux ≥ 4.0; false where unsupported.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `kB` line of `/proc/self/status` (Linux only; `None` elsewhere).
fn proc_status_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_kb(&status, key)
}

/// A `kB` line of a `/proc/<pid>/status` text.
fn status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Stats::of(&samples).expect("samples");
        assert_eq!((s.median, s.p90, s.p99, s.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Stats::of(&[]), None);
        let one = Stats::of(&[7.0]).expect("one sample");
        assert_eq!((one.median, one.max), (7.0, 7.0));
    }

    #[test]
    fn searches_are_reads() {
        let req = |method: &str, path: &str| RecordedRequest {
            method: method.into(),
            path: path.into(),
            query: None,
            body: Value::Null,
            status: 200,
            slow: false,
        };
        let log = [
            req("POST", "/rest/api/3/search/jql"),
            req("GET", "/API/issue/EXT-1"),
            req("PUT", "/rest/api/2/issue/TEST-1"),
            req("POST", "/API/issue/EXT-1"),
        ];
        assert_eq!(
            Calls::count(&log, 2),
            Calls {
                reads: 1.0,
                writes: 1.0
            }
        );
    }

    #[test]
    fn status_lines_parse() {
        // Present on Linux; elsewhere the figure is simply absent.
        if cfg!(target_os = "linux") {
            assert!(proc_status_kb("VmRSS").is_some_and(|kb| kb > 0));
        }
        assert_eq!(proc_status_kb("NoSuchKey"), None);
    }
}
