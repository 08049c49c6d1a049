//! The in-process phases of `tandem bench`: the sandboxes, the driver and the engine (Tandem
//! through [`app::start`], or the seed baseline) share the bench's process, so the figures
//! compare the two strategies on equal terms. Their world (sandboxes, engine, linked pairs),
//! the latency, throughput, steady and ingest phases, and the PostgreSQL scratch schema.

use super::{
    BenchOptions, Calls, Direction, EDIT_TIMEOUT, Ingest, Memory, PER_EDIT_WEBHOOKS, QUIET_TIMEOUT,
    Stats, Steady, StrategyReport, THROUGHPUT_TIMEOUT, Throughput, edit_shows, initial_values,
    proc_status_kb, progress, reset_peak_rss, scratch_dir, seed, send_edit,
};
use crate::{app, demo};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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

// Where an edit is made, as the other phases say it.
use super::EditSide as From;

pub(super) async fn run_strategy(
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
        send_edit(
            &self.jira,
            &self.external,
            (&pair.key, &pair.ext_id),
            &pair.values,
            from,
        );
    }

    /// Whether pair `i`'s last edit is visible on `side`.
    fn shows(&self, i: usize, side: From) -> bool {
        let Some(pair) = self.pairs.get(i) else {
            return false;
        };
        edit_shows(
            &self.jira,
            &self.external,
            (&pair.key, &pair.ext_id),
            &pair.values,
            side,
        )
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
pub(super) fn external_value(item: &Value, field_id: u64) -> Option<&str> {
    item["fields"]
        .as_array()?
        .iter()
        .find(|f| f["fieldId"] == json!(field_id) || f["fieldId"] == json!(field_id.to_string()))
        .and_then(|f| f["value"].as_str())
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
pub(super) struct BenchSchema {
    pool: sqlx::PgPool,
    name: String,
    pub(super) url: String,
}

impl BenchSchema {
    pub(super) async fn create(url: &str) -> anyhow::Result<Self> {
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

    pub(super) async fn drop(self) {
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
