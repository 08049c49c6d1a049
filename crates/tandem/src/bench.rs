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

use crate::{app, demo};
use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_sandbox::{
    ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig, RecordedRequest,
};

mod engine_memory;
mod seed;

pub use engine_memory::EngineMemory;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tandem,
    Seed,
}

/// What propagates changes in a run.
enum Engine {
    // Boxed: `Running` is several times the size of the baseline's handle.
    Tandem(Box<app::Running>),
    Seed(seed::SeedBaseline),
}

impl Engine {
    /// Work the engine has in hand (queued events, requests being handled) and how much it
    /// has seen so far (events queued, webhooks received): quiet is nothing in hand and
    /// nothing new seen.
    async fn activity(&self) -> (i64, i64) {
        match self {
            Engine::Tandem(running) => match running.engine.store.queue_depth().await {
                Ok(depth) => {
                    let busy = depth
                        .iter()
                        .filter(|(_, s, _)| {
                            matches!(
                                s,
                                crate::store::EventStatus::Pending
                                    | crate::store::EventStatus::Leased
                            )
                        })
                        .map(|(_, _, n)| *n)
                        .sum();
                    (busy, depth.iter().map(|(_, _, n)| *n).sum())
                }
                // An unreadable queue is not quiet; the caller's deadline ends the wait.
                Err(_) => (1, 0),
            },
            Engine::Seed(seed) => (seed.busy(), seed.received()),
        }
    }

    async fn shutdown(self) {
        match self {
            Engine::Tandem(running) => (*running).shutdown().await,
            Engine::Seed(seed) => seed.shutdown().await,
        }
    }
}

/// One linked pair and the values its last edit set.
struct Pair {
    key: String,
    ext_id: String,
    values: [String; 2],
}

/// Sandboxes, engine and links of one strategy's run.
struct World {
    /// Shared with the seed baseline, which reads issues in-process like a SIL script.
    jira: Arc<JiraSandbox>,
    external: ExternalSandbox,
    engine: Engine,
    pairs: Vec<Pair>,
    dir: PathBuf,
    quiesced: bool,
}

/// Where an edit is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    Jira,
    External,
}

fn progress(opts: &BenchOptions, what: &str) {
    if opts.progress {
        eprintln!("bench: {what}");
    }
}

async fn run_strategy(
    kind: Kind,
    opts: &BenchOptions,
    store_url: Option<&str>,
) -> anyhow::Result<StrategyReport> {
    let name = match kind {
        Kind::Tandem => "tandem",
        Kind::Seed => "seed",
    };
    let peak_reset = reset_peak_rss();
    let rss_before_kb = proc_status_kb("VmRSS");
    progress(
        opts,
        &format!("{name}: creating {} linked pairs", opts.links),
    );
    let started = Instant::now();
    let mut world = match kind {
        Kind::Tandem => tandem_world(opts.links, store_url).await?,
        Kind::Seed => seed_world(opts.links).await?,
    };
    world.quiet().await;
    let setup_seconds = started.elapsed().as_secs_f64();
    let calls_per_create = matches!(kind, Kind::Tandem).then(|| {
        let mut setup = world.jira.requests_since(0);
        setup.extend(world.external.requests_since(0));
        Calls::count(&setup, world.pairs.len())
    });

    let mut result = measure(&mut world, opts, name).await;
    // Last, so its events (all echoes of the items' current state) cannot disturb the
    // measured phases.
    let ingest = match (&result, &world.engine) {
        (Ok(_), Engine::Tandem(running)) => {
            progress(
                opts,
                &format!(
                    "{name}: ingest, {} webhooks from {} senders",
                    opts.ingest_deliveries, opts.ingest_senders
                ),
            );
            match ingest(running, &world.pairs, opts).await {
                Ok(i) => {
                    world.quiet().await;
                    Some(i)
                }
                Err(e) => {
                    result = Err(e);
                    None
                }
            }
        }
        _ => None,
    };
    let ping_pong_stopped = match &world.engine {
        Engine::Seed(seed) => seed.stop(),
        Engine::Tandem(_) => 0,
    };
    let peak_kb = proc_status_kb("VmHWM");
    let dir = world.dir.clone();
    world.engine.shutdown().await;
    shutdown_jira(world.jira).await;
    world.external.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let (j2e, e2j, throughput, steady, lost_edits, quiesced, failed_calls) = result?;
    Ok(StrategyReport {
        name,
        setup_seconds,
        calls_per_create,
        jira_to_external: j2e,
        external_to_jira: e2j,
        throughput,
        steady,
        ingest,
        lost_edits,
        quiesced,
        ping_pong_stopped,
        failed_calls,
        memory: Memory {
            rss_before_kb,
            peak_kb,
            peak_reset,
        },
    })
}

type Measured = (Direction, Direction, Throughput, Steady, usize, bool, usize);

async fn measure(world: &mut World, opts: &BenchOptions, name: &str) -> anyhow::Result<Measured> {
    let jira_start = world.jira.request_count();
    let ext_start = world.external.request_count();
    progress(
        opts,
        &format!(
            "{name}: latency, {} edits Jira → external",
            opts.latency_edits
        ),
    );
    let j2e = world.latency(From::Jira, opts.latency_edits).await;
    progress(
        opts,
        &format!(
            "{name}: latency, {} edits external → Jira",
            opts.latency_edits
        ),
    );
    let e2j = world.latency(From::External, opts.latency_edits).await;
    progress(
        opts,
        &format!(
            "{name}: throughput, {} edits at once",
            opts.throughput_edits
        ),
    );
    let throughput = world.throughput(opts.throughput_edits).await;
    progress(
        opts,
        &format!(
            "{name}: steady, {} edits at {} per second",
            opts.steady_edits, opts.steady_rate
        ),
    );
    let steady = world.steady(opts.steady_rate, opts.steady_edits).await;
    let lost = world.lost_edits();
    let failed = world
        .jira
        .requests_since(jira_start)
        .iter()
        .chain(&world.external.requests_since(ext_start))
        .filter(|r| !(200..300).contains(&r.status))
        .count();
    Ok((j2e, e2j, throughput, steady, lost, world.quiesced, failed))
}

/// Sends `opts.ingest_deliveries` external-system webhooks at Tandem from
/// `opts.ingest_senders` concurrent senders, each naming a linked item with a summary it does
/// not hold (as a late delivery would: Tandem queues it, re-reads the item, finds its
/// current state already synced and writes nothing, so the pairs stay as the measured
/// phases left them).
async fn ingest(
    running: &app::Running,
    pairs: &[Pair],
    opts: &BenchOptions,
) -> anyhow::Result<Ingest> {
    let conn = running
        .config
        .connections
        .first()
        .context("the example defines no connection")?;
    let token = demo::external_webhook_token(conn);
    let url = format!("http://{}/webhooks/{}/external", running.addr, conn.name);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.ingest_senders)
        .build()?;
    let ext_ids: Arc<Vec<String>> = Arc::new(pairs.iter().map(|p| p.ext_id.clone()).collect());
    let senders = opts.ingest_senders.max(1);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for sender in 0..senders {
        let (client, url, token, ext_ids) =
            (client.clone(), url.clone(), token.clone(), ext_ids.clone());
        let deliveries = opts.ingest_deliveries;
        tasks.spawn(async move {
            let mut answers = Vec::new();
            for n in (sender..deliveries).step_by(senders) {
                let Some(ext_id) = ext_ids.get(n % ext_ids.len().max(1)) else {
                    break;
                };
                let body = json!({
                    "sourceIssueId": ext_id,
                    "fields": [{"fieldName": "Summary", "fieldId": 1001, "value": format!("late delivery {n}")}],
                });
                let mut req = client
                    .post(&url)
                    .header("X-Delivery-Id", format!("bench-ingest-{n}"))
                    .json(&body);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let sent = Instant::now();
                let status = req.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                answers.push((status, sent.elapsed().as_secs_f64() * 1000.0));
            }
            answers
        });
    }
    let mut answers = Vec::with_capacity(opts.ingest_deliveries);
    while let Some(done) = tasks.join_next().await {
        answers.extend(done?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let accepted = answers.iter().filter(|(status, _)| *status == 202).count();
    let latencies: Vec<f64> = answers.iter().map(|(_, ms)| *ms).collect();
    Ok(Ingest {
        deliveries: answers.len(),
        senders,
        accepted,
        seconds,
        per_sec: if seconds > 0.0 {
            accepted as f64 / seconds
        } else {
            0.0
        },
        latency_ms: Stats::of(&latencies),
    })
}

impl World {
    /// Waits until the engine has nothing in hand and neither it nor the sandboxes have seen
    /// anything new for `polls` polls `every` apart (webhook deliveries are asynchronous, so
    /// an empty queue alone is not quiet). False if that did not happen within `limit`.
    async fn settle(&self, every: Duration, polls: u32, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut last = None;
        let mut stable = 0;
        while Instant::now() < deadline {
            tokio::time::sleep(every).await;
            let (busy, seen) = self.engine.activity().await;
            let now = (
                self.jira.request_count(),
                self.external.request_count(),
                seen,
            );
            if busy == 0 && last == Some(now) {
                stable += 1;
                if stable >= polls {
                    return true;
                }
            } else {
                stable = 0;
            }
            last = Some(now);
        }
        false
    }

    /// The end of a phase: quiet for 300 ms.
    async fn quiet(&mut self) {
        if !self
            .settle(Duration::from_millis(100), 3, QUIET_TIMEOUT)
            .await
        {
            self.quiesced = false;
        }
    }

    /// Gives the seed baseline's ping-pong guard a budget of webhooks.
    fn budget(&self, webhooks: usize) {
        if let Engine::Seed(seed) = &self.engine {
            seed.set_budget(webhooks as i64);
        }
    }

    /// Webhooks the seed baseline's guard dropped so far.
    fn dropped(&self) -> u64 {
        match &self.engine {
            Engine::Seed(seed) => seed.dropped(),
            Engine::Tandem(_) => 0,
        }
    }

    /// Makes the `n`-th edit of a run on pair `i`: two mapped fields get new values.
    fn edit(&mut self, i: usize, from: From, tag: &str) {
        let Some(pair) = self.pairs.get_mut(i) else {
            return;
        };
        pair.values = [format!("{tag} summary"), format!("{tag} ref")];
        match from {
            From::Jira => {
                let mut fields = serde_json::Map::new();
                for ((field, _), value) in EDITED.iter().zip(&pair.values) {
                    fields.insert((*field).to_string(), json!(value));
                }
                self.jira.user_edit_issue(&pair.key, Value::Object(fields));
            }
            From::External => {
                let fields = EDITED
                    .iter()
                    .zip(&pair.values)
                    .map(|((_, id), value)| (*id, value.clone()))
                    .collect();
                self.external.user_edit(&pair.ext_id, fields);
            }
        }
    }

    /// Whether pair `i`'s last edit is visible on `side`.
    fn shows(&self, i: usize, side: From) -> bool {
        let Some(pair) = self.pairs.get(i) else {
            return false;
        };
        match side {
            From::Jira => self.jira.issue(&pair.key).is_some_and(|issue| {
                EDITED
                    .iter()
                    .zip(&pair.values)
                    .all(|((field, _), v)| issue["fields"][*field].as_str() == Some(v.as_str()))
            }),
            From::External => self.external.item(&pair.ext_id).is_some_and(|item| {
                EDITED
                    .iter()
                    .zip(&pair.values)
                    .all(|((_, id), v)| external_value(&item, *id) == Some(v.as_str()))
            }),
        }
    }

    /// Edits one at a time from `from`, each timed until visible on the other side, and each
    /// followed by a short quiet spell so that its echo is over before the next edit (the
    /// latency is that of an otherwise idle system). The requests of the sub-phase are then
    /// counted per edit, by the system they went to.
    async fn latency(&mut self, from: From, edits: usize) -> Direction {
        let to = other(from);
        let mut samples = Vec::with_capacity(edits);
        let (mut other_side, mut edited_side) = (Vec::new(), Vec::new());
        let mut ping_pongs = 0;
        let tag = match from {
            From::Jira => "j2e",
            From::External => "e2j",
        };
        for n in 0..edits {
            // Round-robin over the links.
            let i = n % self.pairs.len();
            let jira_start = self.jira.request_count();
            let ext_start = self.external.request_count();
            let dropped = self.dropped();
            self.budget(PER_EDIT_WEBHOOKS);
            let started = Instant::now();
            self.edit(i, from, &format!("{tag}-{n}"));
            let deadline = started + EDIT_TIMEOUT;
            let mut still = Still::default();
            loop {
                if self.shows(i, to) {
                    samples.push(started.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                // An edit a quiet strategy has not delivered is lost (an echo reverted it):
                // no need to wait out the deadline.
                if Instant::now() > deadline || still.gave_up(self).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if !self
                .settle(Duration::from_millis(5), 3, Duration::from_secs(5))
                .await
            {
                self.quiesced = false;
            }
            if self.dropped() > dropped {
                // The guard cut an endless exchange: its calls say nothing about a change's
                // cost, so the edit is counted apart.
                ping_pongs += 1;
                continue;
            }
            let jira_reqs = self.jira.requests_since(jira_start);
            let ext_reqs = self.external.requests_since(ext_start);
            let (o, e) = match from {
                From::Jira => (ext_reqs, jira_reqs),
                From::External => (jira_reqs, ext_reqs),
            };
            other_side.extend(o);
            edited_side.extend(e);
        }
        self.quiet().await;
        let counted = edits - ping_pongs;
        Direction {
            edits,
            landed: samples.len(),
            latency_ms: Stats::of(&samples),
            ping_pongs,
            other_side: Calls::count(&other_side, counted),
            edited_side: Calls::count(&edited_side, counted),
        }
    }

    /// `edits` edits at `rate` per second over every link (even links in Jira, odd ones
    /// outside), each timed until both its values show on the other side, while later edits
    /// keep coming: latency under a steady load rather than on an idle system.
    async fn steady(&mut self, rate: u32, edits: usize) -> Steady {
        self.budget(PER_EDIT_WEBHOOKS * edits);
        let n = self.pairs.len();
        let rate = rate.max(1);
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
        // Edits issued and not yet seen: (link, side edited, when).
        let mut outstanding: Vec<(usize, From, Instant)> = Vec::new();
        let mut samples = Vec::with_capacity(edits);
        let mut superseded = 0;
        let started = Instant::now();
        let mut issued = 0;
        let mut last_issued = started;
        let deadline = started + interval * edits as u32 + EDIT_TIMEOUT;
        while (issued < edits || !outstanding.is_empty()) && Instant::now() < deadline {
            // Every edit whose time has come (several when the driver fell behind).
            while issued < edits && started + interval * issued as u32 <= Instant::now() {
                let i = issued % n;
                let from = if i.is_multiple_of(2) {
                    From::Jira
                } else {
                    From::External
                };
                let before = outstanding.len();
                outstanding.retain(|(link, _, _)| *link != i);
                superseded += before - outstanding.len();
                self.edit(i, from, &format!("st-{issued}"));
                last_issued = Instant::now();
                outstanding.push((i, from, last_issued));
                issued += 1;
            }
            let now = Instant::now();
            outstanding.retain(|(i, from, at)| {
                if self.shows(*i, other(*from)) {
                    samples.push((now - *at).as_secs_f64() * 1000.0);
                    false
                } else {
                    true
                }
            });
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The first edit goes out at `started`.
        let issue_time = (last_issued - started).as_secs_f64();
        self.quiet().await;
        Steady {
            rate,
            edits: issued,
            landed: samples.len(),
            superseded,
            achieved_rate: if issue_time > 0.0 {
                issued.saturating_sub(1) as f64 / issue_time
            } else {
                0.0
            },
            latency_ms: Stats::of(&samples),
        }
    }

    /// `edits` edits at once over every link (even links in Jira, odd ones outside), then the
    /// time until each link shows its last value on the other side.
    async fn throughput(&mut self, edits: usize) -> Throughput {
        self.budget(PER_EDIT_WEBHOOKS * edits);
        let jira_start = self.jira.request_count();
        let ext_start = self.external.request_count();
        let n = self.pairs.len();
        let from = |i: usize| {
            if i.is_multiple_of(2) {
                From::Jira
            } else {
                From::External
            }
        };
        let started = Instant::now();
        for k in 0..edits {
            let i = k % n;
            self.edit(i, from(i), &format!("tp-{k}"));
        }
        let mut pending: Vec<usize> = (0..n.min(edits)).collect();
        let links = pending.len();
        let deadline = started + THROUGHPUT_TIMEOUT;
        let mut finished = started.elapsed();
        let mut still = Still::default();
        while !pending.is_empty() && Instant::now() < deadline {
            let before = pending.len();
            pending.retain(|&i| !self.shows(i, other(from(i))));
            if pending.len() < before {
                finished = started.elapsed();
            }
            // Links a quiet strategy has not delivered are lost; the clock stopped at the
            // last link that did land.
            if pending.is_empty() || still.gave_up(self).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let seconds = finished.as_secs_f64();
        self.quiet().await;
        let mut requests = self.jira.requests_since(jira_start);
        requests.extend(self.external.requests_since(ext_start));
        Throughput {
            edits,
            links,
            links_landed: links - pending.len(),
            seconds,
            edits_per_sec: if seconds > 0.0 {
                edits as f64 / seconds
            } else {
                0.0
            },
            calls_per_edit: Calls::count(&requests, edits),
        }
    }

    /// Links whose two sides do not both hold their last edit.
    fn lost_edits(&self) -> usize {
        (0..self.pairs.len())
            .filter(|&i| !(self.shows(i, From::Jira) && self.shows(i, From::External)))
            .count()
    }
}

/// Notices that nothing has moved for a while: no work in hand, no request, no webhook.
#[derive(Default)]
struct Still {
    polls: u32,
    last: Option<(usize, usize, i64)>,
    since: Option<Instant>,
}

impl Still {
    /// Looked at every 50th poll; true once all was still for 300 ms.
    async fn gave_up(&mut self, world: &World) -> bool {
        self.polls += 1;
        if !self.polls.is_multiple_of(50) {
            return false;
        }
        let (busy, seen) = world.engine.activity().await;
        let now = (
            world.jira.request_count(),
            world.external.request_count(),
            seen,
        );
        if busy != 0 || self.last != Some(now) {
            self.last = Some(now);
            self.since = Some(Instant::now());
            return false;
        }
        self.since
            .is_some_and(|t| t.elapsed() >= Duration::from_millis(300))
    }
}

fn other(side: From) -> From {
    match side {
        From::Jira => From::External,
        From::External => From::Jira,
    }
}

/// A field's value in an external item (`fieldId` may be a number or a string).
fn external_value(item: &Value, field_id: u64) -> Option<&str> {
    item["fields"]
        .as_array()?
        .iter()
        .find(|f| f["fieldId"] == json!(field_id) || f["fieldId"] == json!(field_id.to_string()))
        .and_then(|f| f["value"].as_str())
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

/// Tandem with `links` pairs made the way users get them: issues created in Jira, twins
/// created outside by Tandem, which writes the twin's id into Jira's "External ID".
async fn tandem_world(links: usize, store_url: Option<&str>) -> anyhow::Result<World> {
    let jira = JiraSandbox::start(JiraSandboxConfig::default()).await?;
    let external = ExternalSandbox::start(ExternalSandboxConfig::default()).await?;
    let dir = scratch_dir()?;
    // The bundled example; polling is pushed out to an hour so that the request counts are
    // those of webhook-driven propagation alone.
    let config_path = demo::write_seed_config(&dir, &jira, &external, Some("1h"))?;
    if let Some(url) = store_url {
        let text = std::fs::read_to_string(&config_path)?;
        let sqlite = "url = \"sqlite://tandem.db\"";
        if !text.contains(sqlite) {
            bail!("the bundled example config no longer names its SQLite store as {sqlite}");
        }
        let toml_url = toml_string(url);
        std::fs::write(
            &config_path,
            text.replace(sqlite, &format!("url = {toml_url}")),
        )?;
    }
    let (running, _) = demo::start_seed_tandem(&config_path, &jira, &external).await?;
    let link_field = jira.external_id_field().to_string();
    let mut keys = Vec::with_capacity(links);
    for i in 0..links {
        let mut fields = serde_json::Map::new();
        for (field, _, value) in initial_values(i) {
            fields.insert(field.to_string(), json!(value));
        }
        keys.push(jira.user_create_issue("TEST", Value::Object(fields)));
    }
    let mut world = World {
        jira: Arc::new(jira),
        external,
        engine: Engine::Tandem(Box::new(running)),
        pairs: Vec::with_capacity(links),
        dir,
        quiesced: true,
    };
    let deadline = Instant::now() + Duration::from_secs(60 + links as u64 / 2);
    for (i, key) in keys.into_iter().enumerate() {
        let ext_id = loop {
            let id = world.jira.issue(&key).and_then(|issue| {
                issue["fields"][&link_field]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            });
            if let Some(id) = id {
                break id;
            }
            if Instant::now() > deadline {
                let World {
                    engine,
                    jira,
                    external,
                    dir,
                    ..
                } = world;
                engine.shutdown().await;
                shutdown_jira(jira).await;
                external.shutdown().await;
                let _ = std::fs::remove_dir_all(&dir);
                bail!("Tandem did not link {key} to a twin within the setup time");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let [summary, _, _, reference] = initial_values(i);
        world.pairs.push(Pair {
            key,
            ext_id,
            values: [summary.2, reference.2],
        });
    }
    Ok(world)
}

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A fresh schema in the user's PostgreSQL database for one run, reached through the URL's
/// startup options (`options=-c search_path=…`, which sqlx passes to the server), so Tandem
/// needs no setting of its own for it.
struct BenchSchema {
    pool: sqlx::PgPool,
    name: String,
    url: String,
}

impl BenchSchema {
    async fn create(url: &str) -> anyhow::Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!(
                "--store takes a PostgreSQL URL (postgres://user@host/db), got {}",
                crate::store::redact_url(url)
            );
        }
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to {}", crate::store::redact_url(url)))?;
        let name = format!(
            "tandem_bench_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&pool)
            .await
            .with_context(|| format!("cannot create schema {name}"))?;
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}options=-c%20search_path%3D{name}");
        Ok(BenchSchema { pool, name, url })
    }

    async fn drop(self) {
        if let Err(e) = sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&self.pool)
            .await
        {
            tracing::warn!(schema = %self.name, error = %e, "could not drop the bench schema");
        }
        self.pool.close().await;
    }
}

/// The seed baseline with `links` pairs made as the guide assumes they exist: an item in the
/// external system and an issue in Jira whose "External ID" holds the item's id, with the
/// same values. Webhooks are pointed at the baseline only afterwards.
async fn seed_world(links: usize) -> anyhow::Result<World> {
    let jira_cfg = JiraSandboxConfig::default();
    let ext_cfg = ExternalSandboxConfig::default();
    let jira = JiraSandbox::start(jira_cfg.clone()).await?;
    let external = ExternalSandbox::start(ext_cfg.clone()).await?;
    let link_field = jira.external_id_field().to_string();
    let mut pairs = Vec::with_capacity(links);
    for i in 0..links {
        let values = initial_values(i);
        let ext_id = external.user_create(
            values
                .iter()
                .map(|(_, id, value)| (*id, value.clone()))
                .collect(),
        );
        let mut fields = serde_json::Map::new();
        for (field, _, value) in &values {
            fields.insert((*field).to_string(), json!(value));
        }
        fields.insert(link_field.clone(), json!(ext_id));
        let key = jira.user_create_issue("TEST", Value::Object(fields));
        let [summary, _, _, reference] = values;
        pairs.push(Pair {
            key,
            ext_id,
            values: [summary.2, reference.2],
        });
    }
    let jira = Arc::new(jira);
    let sandbox = jira.clone();
    let read_issue: seed::ReadIssue = Arc::new(move |key: &str| {
        let mut fields = sandbox.issue(key)?["fields"].as_object()?.clone();
        // SIL reads a rich-text field as its wiki markup, as REST v2 returns it.
        if let Some(doc) = fields.get("description").filter(|d| d.is_object()) {
            let wiki = tandem_core::richtext::Doc::from_adf(doc)
                .map(|d| d.to_wiki())
                .unwrap_or_default();
            fields.insert("description".into(), json!(wiki));
        }
        Some(fields)
    });
    let baseline = seed::SeedBaseline::start(seed::SeedSettings {
        jira_url: jira.url(),
        jira_email: jira_cfg.email,
        jira_token: jira_cfg.api_token,
        project: "TEST".into(),
        link_field,
        external_url: external.url(),
        external_user: ext_cfg.username,
        external_password: ext_cfg.password,
        read_issue,
    })
    .await?;
    jira.register_webhook(&baseline.outgoing_url(), None);
    external.set_webhook(&baseline.incoming_url(), None);
    Ok(World {
        jira,
        external,
        engine: Engine::Seed(baseline),
        pairs,
        dir: scratch_dir()?,
        quiesced: true,
    })
}

/// Stops the Jira sandbox once the seed baseline's reader has let go of it; if it has not,
/// the sandbox stops with the process instead.
async fn shutdown_jira(jira: Arc<JiraSandbox>) {
    match Arc::try_unwrap(jira) {
        Ok(jira) => jira.shutdown().await,
        Err(_) => tracing::warn!("the Jira sandbox is still shared; leaving it to process exit"),
    }
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

/// The report as the table `tandem bench` prints.
pub fn render(report: &Report) -> String {
    use std::fmt::Write;
    let (t, s) = (&report.tandem, &report.seed);
    let o = &report.options;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tandem bench — {}, {} build, {} CPU{}, Tandem's store: {}",
        report.date,
        report.build,
        report.cpus,
        if report.cpus == 1 { "" } else { "s" },
        report.store
    );
    let _ = writeln!(
        out,
        "{} linked pairs; latency: {} edits each way, one at a time; throughput: {} edits at once; \
         every edit changes 2 mapped fields; steady: {} edits at {}/s; ingest: {} webhooks from {} senders",
        o.links,
        o.latency_edits,
        o.throughput_edits,
        o.steady_edits,
        o.steady_rate,
        o.ingest_deliveries,
        o.ingest_senders
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14} {:>14}",
        "", "Tandem", "seed scripts", "seed ÷ Tandem"
    );
    let ms = |d: &Direction, f: fn(&Stats) -> f64| {
        d.latency_ms
            .map(|st| format!("{:.1} ms", f(&st)))
            .unwrap_or_else(|| "-".into())
    };
    let ratio = |a: Option<f64>| a.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "-".into());
    let div = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    type Pick = fn(&Stats) -> f64;
    let picks: [(&str, Pick); 4] = [
        ("median", |s| s.median),
        ("p90", |s| s.p90),
        ("p99", |s| s.p99),
        ("max", |s| s.max),
    ];
    for (title, td, sd) in [
        (
            "latency Jira → external",
            &t.jira_to_external,
            &s.jira_to_external,
        ),
        (
            "latency external → Jira",
            &t.external_to_jira,
            &s.external_to_jira,
        ),
    ] {
        for (name, pick) in picks {
            let r = match (td.latency_ms, sd.latency_ms) {
                (Some(a), Some(b)) => div(pick(&b), pick(&a)),
                _ => None,
            };
            let _ = writeln!(
                out,
                "{:<50} {:>14} {:>14} {:>14}",
                format!("{title}, {name}"),
                ms(td, pick),
                ms(sd, pick),
                if name == "median" {
                    ratio(r)
                } else {
                    String::new()
                }
            );
        }
        if sd.ping_pongs > 0 || td.ping_pongs > 0 {
            let _ = writeln!(
                out,
                "{:<50} {:>14} {:>14}",
                format!("{title}, edits that ping-ponged"),
                td.ping_pongs,
                sd.ping_pongs
            );
        }
        let _ = writeln!(
            out,
            "{:<50} {:>14} {:>14}",
            format!("{title}, landed"),
            format!("{}/{}", td.landed, td.edits),
            format!("{}/{}", sd.landed, sd.edits)
        );
    }
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14} {:>14}",
        "throughput (edits/s)",
        format!("{:.0}", t.throughput.edits_per_sec),
        format!("{:.0}", s.throughput.edits_per_sec),
        ratio(report.ratios.throughput)
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "throughput, time until the last link landed",
        format!("{:.2} s", t.throughput.seconds),
        format!("{:.2} s", s.throughput.seconds),
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "throughput, links landed",
        format!("{}/{}", t.throughput.links_landed, t.throughput.links),
        format!("{}/{}", s.throughput.links_landed, s.throughput.links),
    );
    let steady = |r: &StrategyReport| {
        let st = &r.steady;
        let l = st.latency_ms;
        let f = |pick: fn(&Stats) -> f64| {
            l.map(|l| format!("{:.1} ms", pick(&l)))
                .unwrap_or_else(|| "-".into())
        };
        [
            format!("{:.0}/s", st.achieved_rate),
            f(|l| l.median),
            f(|l| l.p95),
            f(|l| l.p99),
            f(|l| l.max),
            format!("{}/{} ({} superseded)", st.landed, st.edits, st.superseded),
        ]
    };
    let (ts, ss) = (steady(t), steady(s));
    for (k, title) in [
        format!("steady {}/s: rate achieved", t.steady.rate),
        "steady: latency median".to_string(),
        "steady: latency p95".to_string(),
        "steady: latency p99".to_string(),
        "steady: latency max".to_string(),
        "steady: landed".to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        let r = if k == 1 {
            match (t.steady.latency_ms, s.steady.latency_ms) {
                (Some(a), Some(b)) => ratio(div(b.median, a.median)),
                _ => "-".into(),
            }
        } else {
            String::new()
        };
        let _ = writeln!(out, "{:<50} {:>14} {:>14} {:>14}", title, ts[k], ss[k], r);
    }
    let ingest = |r: &StrategyReport| match &r.ingest {
        Some(i) => [
            format!("{:.0}", i.per_sec),
            i.latency_ms
                .map(|l| format!("{:.1} / {:.1} ms", l.median, l.p99))
                .unwrap_or_else(|| "-".into()),
            format!("{}/{}", i.accepted, i.deliveries),
        ],
        None => ["-".into(), "-".into(), "-".into()],
    };
    let (ti, si) = (ingest(t), ingest(s));
    for (k, title) in [
        "webhook ingest (202 per second)",
        "webhook ingest, answer median / p99",
        "webhook ingest, accepted",
    ]
    .into_iter()
    .enumerate()
    {
        let _ = writeln!(out, "{:<50} {:>14} {:>14}", title, ti[k], si[k]);
    }
    let rw = |c: &Calls| format!("{:.2} / {:.2}", c.reads, c.writes);
    for (title, td, sd) in [
        ("Jira → external", &t.jira_to_external, &s.jira_to_external),
        ("external → Jira", &t.external_to_jira, &s.external_to_jira),
    ] {
        let _ = writeln!(
            out,
            "{:<50} {:>14} {:>14}",
            format!("{title}: calls to the other side (r / w)"),
            rw(&td.other_side),
            rw(&sd.other_side)
        );
        let _ = writeln!(
            out,
            "{:<50} {:>14} {:>14}",
            format!("{title}: calls back to the edited side"),
            rw(&td.edited_side),
            rw(&sd.edited_side)
        );
    }
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14} {:>14}",
        "calls per change, all (both ways)",
        format!("{:.2}", t.calls_per_change()),
        format!("{:.2}", s.calls_per_change()),
        ratio(report.ratios.calls_per_change)
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14} {:>14}",
        "writes per change (both ways)",
        format!("{:.2}", t.writes_per_change()),
        format!("{:.2}", s.writes_per_change()),
        ratio(report.ratios.writes_per_change)
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "throughput phase, calls per edit (r / w)",
        rw(&t.throughput.calls_per_edit),
        rw(&s.throughput.calls_per_edit)
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "links not holding their last edit at the end", t.lost_edits, s.lost_edits
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "failed remote calls", t.failed_calls, s.failed_calls
    );
    if s.ping_pong_stopped > 0 || t.ping_pong_stopped > 0 {
        let _ = writeln!(
            out,
            "{:<50} {:>14} {:>14}",
            "webhooks dropped to stop a ping-pong", t.ping_pong_stopped, s.ping_pong_stopped
        );
    }
    let kb = |m: &Memory, v: Option<u64>| match v {
        Some(kb) => format!(
            "{:.1} MiB{}",
            kb as f64 / 1024.0,
            if m.peak_reset { "" } else { "*" }
        ),
        None => "-".into(),
    };
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "RSS before start (whole process)",
        kb(&t.memory, t.memory.rss_before_kb),
        kb(&s.memory, s.memory.rss_before_kb)
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "peak RSS during the run (whole process)",
        kb(&t.memory, t.memory.peak_kb),
        kb(&s.memory, s.memory.peak_kb)
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "calls per twin created (r / w)",
        t.calls_per_create
            .as_ref()
            .map(rw)
            .unwrap_or_else(|| "-".into()),
        s.calls_per_create
            .as_ref()
            .map(rw)
            .unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "setup (linking the pairs)",
        format!("{:.2} s", t.setup_seconds),
        format!("{:.2} s", s.setup_seconds)
    );
    if let Some(m) = &report.engine_memory {
        let mib =
            |v: Option<u64>| v.map_or("-".into(), |kb| format!("{:.1} MiB", kb as f64 / 1024.0));
        let _ = writeln!(
            out,
            "\nengine alone (tandem serve, its own process), {} links in its store:",
            m.links_in_store
        );
        let _ = writeln!(out, "{:<50} {:>14}", "RSS, ready and idle", mib(m.idle_kb));
        let _ = writeln!(
            out,
            "{:<50} {:>14}",
            format!(
                "peak RSS, {} creates + {} edits at once",
                m.creates, m.edits
            ),
            mib(m.peak_kb)
        );
        let _ = writeln!(
            out,
            "{:<50} {:>14}",
            "links holding their last edit, load time",
            format!("{}/{}, {:.2} s", m.links_landed, m.creates, m.load_seconds)
        );
    }
    if !t.quiesced || !s.quiesced {
        let _ = writeln!(
            out,
            "note: a phase did not become quiet within {} s (Tandem: {}, seed: {})",
            QUIET_TIMEOUT.as_secs(),
            t.quiesced,
            s.quiesced
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
