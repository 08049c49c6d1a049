//! `tandem sync`: initial / bulk reconciliation of the items that already exist on both sides.
//!
//! Webhooks and the poller only see changes; a new connection starts with thousands of issues
//! that exist on one side, on both sides unlinked, or linked but different. Sync walks every
//! in-scope item on both sides (`changed_since(epoch)`), then:
//!
//! 1. **pairs** items that already know each other: a stored link, Jira's link field holding
//!    the external id, or the external item recording the Jira key (the seed's
//!    `sourceIssueId`, which is how a twin created by an interrupted run is recognised rather
//!    than duplicated);
//! 2. for a **new pair**, stores the link with a *seeded shadow*: per mapped field, the value of
//!    the side the conflict policy says loses (`later_wins`: the item updated earlier), as if
//!    it had been synced at the epoch. The planner then sees only the winning side as changed,
//!    so the outcome does not depend on which side's event runs first;
//! 3. queues a `Sync` event for every side that holds something the link's shadow does not
//!    (an unpaired item always: the worker links it or creates its twin when the connection's
//!    `create` allows it), keyed `sync:{side}:{id}:{updated}` so a re-run after an interruption
//!    queues nothing twice, and runs a local [`Engine`] until they are processed.
//!
//! The work itself is the worker's: the same planning, one write per change, twin creation
//! under the link lock, `Retry-After` and backoff, at most `worker.concurrency` calls at once.
//!
//! `--dry-run` computes the same plans (`plan_create` / `plan_update` over the listed values)
//! and prints them; it writes nothing to either side or to the store (a store file that does
//! not exist yet is not even created).

use crate::app;
use crate::config::{Config, ConnectionConfig};
use crate::connector::{Connector, Item};
use crate::poller::{differs_from_shadow, snapshot_event};
use crate::queueing::enqueue_linked;
use crate::store::{self, EventStatus, Store};
use crate::worker::{ConnectionRuntime, Engine, Scope};
use anyhow::Context;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_core::convert::to_canonical;
use tandem_core::mapping::ConflictPolicy;
use tandem_core::plan::{plan_create, plan_update};
use tandem_core::{EventOrigin, Link, Shadow, ShadowEntry, Side};
use tokio::sync::watch;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// An indicatif bar on stderr (a terminal).
    Bar,
    /// A plain line on stderr every few seconds (logs, CI).
    Lines,
    /// Nothing (tests).
    Quiet,
}

/// What to reconcile and how.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Only this connection (default: all).
    pub connection: Option<String>,
    pub dry_run: bool,
    pub progress: Progress,
}

/// What a sync did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub dry_run: bool,
    /// Items listed on each side.
    pub jira_items: usize,
    pub external_items: usize,
    /// Pairs newly linked.
    pub linked: usize,
    /// Twins created.
    pub created: usize,
    /// Items written to bring a pair to agreement.
    pub updated: usize,
    /// Sides that needed nothing (already equal, or an echo).
    pub in_agreement: usize,
    /// Reason → count.
    pub skipped: BTreeMap<String, usize>,
    /// Reason → count.
    pub failed: BTreeMap<String, usize>,
    /// Events still queued when the run stopped.
    pub unfinished: usize,
    /// The run was cancelled before every event was processed.
    pub interrupted: bool,
    /// Dry run: one line per action.
    pub actions: Vec<String>,
}

impl Summary {
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }
    pub fn failed_total(&self) -> usize {
        self.failed.values().sum()
    }

    fn skip(&mut self, reason: impl Into<String>) {
        *self.skipped.entry(reason.into()).or_default() += 1;
    }

    /// The closing report, several lines.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{}{} Jira issues and {} external items: linked {}, created {}, updated {}, already in agreement {}, skipped {}, failed {}",
            if self.dry_run {
                "dry run (nothing was changed): "
            } else {
                ""
            },
            self.jira_items,
            self.external_items,
            self.linked,
            self.created,
            self.updated,
            self.in_agreement,
            self.skipped_total(),
            self.failed_total()
        );
        if self.interrupted || self.unfinished > 0 {
            out.push_str(&format!(
                "\n  {} events still queued: run `tandem sync` again (or keep `tandem serve` running) to finish",
                self.unfinished
            ));
        }
        for (what, list) in [("skipped", &self.skipped), ("failed", &self.failed)] {
            for (reason, n) in list {
                out.push_str(&format!("\n  {what} {n}: {reason}"));
            }
        }
        out
    }
}

/// One unit of work found by pairing.
#[derive(Debug, Clone)]
enum Work {
    Pair {
        jira: Box<Item>,
        external: Box<Item>,
        /// The stored link; `None` for a pair found now.
        link: Option<Box<Link>>,
    },
    Only(Side, Item),
    Skip(String),
}

/// Runs a bulk sync until every queued event is processed or `cancel` resolves (then the
/// engine stops gracefully and the run can be resumed).
pub async fn run(
    config: &Config,
    opts: &SyncOptions,
    cancel: impl Future<Output = ()> + Send,
) -> anyhow::Result<Summary> {
    let selected: Vec<&ConnectionConfig> = config
        .connections
        .iter()
        .filter(|c| opts.connection.as_deref().is_none_or(|n| n == c.name))
        .collect();
    if selected.is_empty() {
        let names: Vec<&str> = config.connections.iter().map(|c| c.name.as_str()).collect();
        anyhow::bail!(
            "no connection named `{}` (configured: {})",
            opts.connection.as_deref().unwrap_or(""),
            names.join(", ")
        );
    }
    let store = open_store(&config.storage.url, opts.dry_run).await?;
    let http = app::http_client(config)?;
    // The engine gets every configured connection, not only the selected one: it claims any
    // due event in the store, and one of another connection must be processed, not refused.
    let mut runtimes = HashMap::new();
    for conn in &config.connections {
        if opts.dry_run && !selected.iter().any(|c| c.name == conn.name) {
            continue;
        }
        let rt = app::connection_runtime(conn, &http).await?;
        runtimes.insert(conn.name.clone(), Arc::new(rt));
    }
    let mut summary = Summary {
        dry_run: opts.dry_run,
        ..Summary::default()
    };
    let mut queued: Vec<Queued> = Vec::new();
    for conn in &selected {
        let Some(rt) = runtimes.get(&conn.name).cloned() else {
            continue;
        };
        let t = Instant::now();
        let work = discover(&rt, store.as_ref(), &mut summary, opts.progress).await?;
        note(
            opts.progress,
            format!(
                "{}: listed {} Jira issues and {} external items in {:.1}s",
                rt.name,
                summary.jira_items,
                summary.external_items,
                t.elapsed().as_secs_f64()
            ),
        );
        let t = Instant::now();
        if opts.dry_run {
            for w in work {
                dry_run_one(&rt, w, &mut summary);
            }
        } else {
            queued.extend(prepare(&rt, store.as_ref(), work, &mut summary).await?);
            note(
                opts.progress,
                format!(
                    "{}: linked {} pairs and queued {} events in {:.1}s",
                    rt.name,
                    summary.linked,
                    queued.len(),
                    t.elapsed().as_secs_f64()
                ),
            );
        }
    }
    if opts.dry_run || queued.is_empty() {
        return Ok(summary);
    }
    let engine = Engine::new(store.clone(), runtimes, app::worker_settings(config));
    let (stop, stopped) = watch::channel(false);
    let mut worker_stop = stopped;
    let worker = tokio::spawn(engine.clone().run(async move {
        let _ = worker_stop.wait_for(|s| *s).await;
    }));
    let interrupted = tokio::select! {
        r = wait_for(store.as_ref(), &queued, opts.progress) => { r?; false }
        _ = cancel => true,
    };
    let _ = stop.send(true);
    let _ = worker.await;
    tally(store.as_ref(), &queued, &mut summary).await?;
    summary.interrupted = interrupted;
    Ok(summary)
}

/// A progress message on stderr, unless quiet.
fn note(progress: Progress, line: String) {
    if progress != Progress::Quiet {
        eprintln!("{line}");
    }
}

/// The store; for a dry run against an SQLite file that does not exist yet, an empty one in
/// memory, so looking does not create the file.
async fn open_store(url: &str, dry_run: bool) -> anyhow::Result<Arc<dyn Store>> {
    let url = match sqlite_file(url) {
        Some(path) if dry_run && !path.exists() => "sqlite::memory:".to_string(),
        _ => url.to_string(),
    };
    store::open(&url)
        .await
        .with_context(|| format!("cannot open the store at {}", store::redact_url(&url)))
}

fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .or_else(|| url.ends_with(".db").then_some(url))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Every item `connector` lists since the epoch, all pages.
async fn list_all(
    connector: &Arc<dyn Connector>,
    what: &str,
    progress: Progress,
) -> anyhow::Result<Vec<Item>> {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let mut last_note = Instant::now();
    loop {
        let page = connector
            .changed_since(epoch, token.as_deref())
            .await
            .with_context(|| format!("listing {what}"))?;
        let empty = page.items.is_empty();
        items.extend(page.items);
        if progress != Progress::Quiet && last_note.elapsed() > Duration::from_secs(2) {
            eprintln!("listing {what}: {} so far", items.len());
            last_note = Instant::now();
        }
        match page.next {
            Some(next) if !empty => token = Some(next),
            _ => break,
        }
    }
    // A listing ordered by update time can show an item twice if it changed mid-walk.
    let mut seen = HashSet::new();
    items.retain(|i| seen.insert(i.id.clone()));
    Ok(items)
}

/// Lists both sides and pairs what already belongs together.
async fn discover(
    conn: &ConnectionRuntime,
    store: &dyn Store,
    summary: &mut Summary,
    progress: Progress,
) -> anyhow::Result<Vec<Work>> {
    let jira = list_all(&conn.jira, &format!("{} / jira", conn.name), progress).await?;
    let external = list_all(
        &conn.external,
        &format!("{} / external", conn.name),
        progress,
    )
    .await?;
    summary.jira_items += jira.len();
    summary.external_items += external.len();
    let mut links = Vec::new();
    loop {
        let page = store
            .list_links(Some(&conn.name), 1000, links.len() as u32)
            .await?;
        let n = page.len();
        links.extend(page);
        if n < 1000 {
            break;
        }
    }
    Ok(pair(&conn.scope, jira, external, links))
}

/// Pairs listed items (pure, so it is tested directly). Each item ends in exactly one unit.
fn pair(scope: &Scope, jira: Vec<Item>, external: Vec<Item>, links: Vec<Link>) -> Vec<Work> {
    let mut out = Vec::new();
    let link_by_jira: HashMap<&str, &Link> =
        links.iter().map(|l| (l.jira_id.as_str(), l)).collect();
    let link_by_ext: HashMap<&str, &Link> =
        links.iter().map(|l| (l.external_id.as_str(), l)).collect();
    let mut ext_by_id: HashMap<String, Item> =
        external.into_iter().map(|i| (i.id.clone(), i)).collect();
    let mut unpaired_jira = Vec::new();

    for j in jira {
        if let Some(reason) = scope.excludes(&j) {
            out.push(Work::Skip(reason));
            continue;
        }
        if let Some(link) = link_by_jira.get(j.id.as_str()) {
            match ext_by_id.remove(&link.external_id) {
                Some(e) => out.push(Work::Pair {
                    jira: Box::new(j),
                    external: Box::new(e),
                    link: Some(Box::new((*link).clone())),
                }),
                None => out.push(Work::Skip(
                    "linked twin is not listed by the external system (deleted?)".into(),
                )),
            }
            continue;
        }
        match j.link.clone() {
            Some(ext_id) if link_by_ext.contains_key(ext_id.as_str()) => out.push(Work::Skip(
                "its link field names an external item already linked to another issue".into(),
            )),
            Some(ext_id) => match ext_by_id.remove(&ext_id) {
                Some(e) => out.push(Work::Pair {
                    jira: Box::new(j),
                    external: Box::new(e),
                    link: None,
                }),
                None => out.push(Work::Skip(
                    "its link field names an external item that does not exist".into(),
                )),
            },
            None => unpaired_jira.push(j),
        }
    }

    // The external item may record its Jira twin (the seed's `sourceIssueId` holds the key).
    let mut by_ref: HashMap<String, String> = HashMap::new();
    for e in ext_by_id.values() {
        if link_by_ext.contains_key(e.id.as_str()) {
            continue;
        }
        if let Some(r) = e.link.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
            by_ref
                .entry(r.to_ascii_uppercase())
                .or_insert_with(|| e.id.clone());
        }
    }
    for j in unpaired_jira {
        let found = [j.key.as_deref(), Some(j.id.as_str())]
            .into_iter()
            .flatten()
            .find_map(|r| by_ref.remove(&r.to_ascii_uppercase()));
        match found.and_then(|id| ext_by_id.remove(&id)) {
            Some(e) => out.push(Work::Pair {
                jira: Box::new(j),
                external: Box::new(e),
                link: None,
            }),
            None => out.push(Work::Only(Side::Jira, j)),
        }
    }
    let mut rest: Vec<Item> = ext_by_id.into_values().collect();
    rest.sort_by(|a, b| a.id.cmp(&b.id));
    for e in rest {
        if link_by_ext.contains_key(e.id.as_str()) {
            out.push(Work::Skip(
                "linked twin is outside the connection's filter or no longer exists in Jira".into(),
            ));
        } else {
            out.push(Work::Only(Side::External, e));
        }
    }
    out
}

/// Which side's value a new pair keeps for mapping entry `m`.
fn winner(
    m: &tandem_core::FieldMapping,
    policy: ConflictPolicy,
    jira: &Item,
    external: &Item,
) -> Side {
    if !m.flows(Side::Jira) {
        return Side::External;
    }
    if !m.flows(Side::External) {
        return Side::Jira;
    }
    match m.conflict.unwrap_or(policy) {
        ConflictPolicy::JiraWins => Side::Jira,
        ConflictPolicy::ExternalWins => Side::External,
        // Ties and unknown times go to Jira, the usual system of record.
        ConflictPolicy::LaterWins => match (jira.updated, external.updated) {
            (Some(j), Some(e)) if e > j => Side::External,
            (None, Some(_)) => Side::External,
            _ => Side::Jira,
        },
    }
}

/// The shadow of a pair found now: per field, the losing side's value as if synced at the
/// epoch, so the planner treats only the winning side as changed (see the module docs).
fn seeded_shadow(conn: &ConnectionRuntime, jira: &Item, external: &Item) -> Shadow {
    let mut shadow = Shadow::default();
    for m in &conn.mapping.fields {
        let loser = winner(m, conn.policy, jira, external).other();
        let item = match loser {
            Side::Jira => jira,
            Side::External => external,
        };
        let Some(raw) = item.fields.get(m.field_on(loser)) else {
            continue;
        };
        // A value that cannot be converted is left out: the worker reports it.
        if let Ok(value) = to_canonical(raw, m, loser) {
            shadow.set(
                m.key(),
                ShadowEntry {
                    value,
                    source_ts: DateTime::<Utc>::UNIX_EPOCH,
                    source: loser,
                    written: None,
                },
            );
        }
    }
    shadow
}

fn item_on<'a>(side: Side, jira: &'a Item, external: &'a Item) -> &'a Item {
    match side {
        Side::Jira => jira,
        Side::External => external,
    }
}

fn label(side: Side, item: &Item) -> String {
    match &item.key {
        Some(k) => format!("{side} {k}"),
        None => format!("{side} {}", item.id),
    }
}

/// Links new pairs and queues the events; returns the queued event ids.
async fn prepare(
    conn: &ConnectionRuntime,
    store: &dyn Store,
    work: Vec<Work>,
    summary: &mut Summary,
) -> anyhow::Result<Vec<Queued>> {
    let mut ids = Vec::new();
    let now = Utc::now();
    for w in work {
        match w {
            Work::Skip(reason) => summary.skip(reason),
            Work::Only(side, item) => {
                if !conn.create.allows(side.other()) {
                    summary.skip(format!(
                        "only on the {side} side, and creating twins on the {} side is disabled",
                        side.other()
                    ));
                    continue;
                }
                let event = snapshot_event(&conn.name, side, &item, EventOrigin::Sync, now);
                ids.push(Queued {
                    id: enqueue_linked(store, &event, None, now).await?.id(),
                    creates: true,
                });
            }
            Work::Pair {
                jira,
                external,
                link,
            } => {
                let link = match link {
                    Some(l) => *l,
                    None => {
                        let new = Link {
                            connection: conn.name.clone(),
                            jira_id: jira.id.clone(),
                            jira_key: jira.key.clone(),
                            external_id: external.id.clone(),
                            shadow: seeded_shadow(conn, &jira, &external),
                            pending: Default::default(),
                            version: 0,
                        };
                        match store.insert_link(&new).await? {
                            Ok(()) => {
                                summary.linked += 1;
                                new
                            }
                            // Linked meanwhile (a running `tandem serve`): use that link.
                            Err(existing) => existing,
                        }
                    }
                };
                // Record the link in Jira too when only the external item knew it, so other
                // tools (and a later sync without this store) see it.
                if jira.link.as_deref() != Some(external.id.as_str())
                    && let Err(e) = conn.jira.set_link(&jira.id, &external.id).await
                {
                    tracing::warn!(connection = %conn.name, jira = %jira.id, error = %e, "could not write the link field in Jira");
                }
                let mut any = false;
                for side in Side::BOTH {
                    let item = item_on(side, &jira, &external);
                    if differs_from_shadow(conn, side, item, &link) {
                        any = true;
                        let event = snapshot_event(&conn.name, side, item, EventOrigin::Sync, now);
                        ids.push(Queued {
                            id: enqueue_linked(store, &event, Some(&link), now).await?.id(),
                            creates: false,
                        });
                    }
                }
                if !any {
                    summary.in_agreement += 1;
                }
            }
        }
    }
    Ok(ids)
}

/// The dry-run counterpart of [`prepare`] and the worker: plans, prints, writes nothing.
fn dry_run_one(conn: &ConnectionRuntime, w: Work, summary: &mut Summary) {
    match w {
        Work::Skip(reason) => summary.skip(reason),
        Work::Only(side, item) => {
            let target = side.other();
            if !conn.create.allows(target) {
                let reason = format!(
                    "only on the {side} side, and creating twins on the {target} side is disabled"
                );
                summary
                    .actions
                    .push(format!("skip {}: {reason}", label(side, &item)));
                summary.skip(reason);
                return;
            }
            let ts = item.updated.unwrap_or_else(Utc::now);
            let plan = plan_create(side, ts, &item.fields, &conn.mapping);
            if let Some(e) = plan.errors.first() {
                summary
                    .actions
                    .push(format!("fail {}: {e}", label(side, &item)));
                *summary.failed.entry(e.to_string()).or_default() += 1;
                return;
            }
            let fields: Vec<&str> = plan.writes.keys().map(String::as_str).collect();
            summary.actions.push(format!(
                "create on {target} from {}: {}",
                label(side, &item),
                fields.join(", ")
            ));
            summary.created += 1;
        }
        Work::Pair {
            jira,
            external,
            link,
        } => {
            let mut jira = *jira;
            let mut external = *external;
            let (mut shadow, pending, new) = match link {
                Some(l) => (l.shadow, l.pending, false),
                None => (
                    seeded_shadow(conn, &jira, &external),
                    Default::default(),
                    true,
                ),
            };
            if new {
                summary.linked += 1;
                summary.actions.push(format!(
                    "link {} ↔ {}{}",
                    label(Side::Jira, &jira),
                    label(Side::External, &external),
                    if jira.link.as_deref() == Some(external.id.as_str()) {
                        ""
                    } else {
                        " (and record the external id in Jira's link field)"
                    }
                ));
            }
            let mut any = false;
            for side in Side::BOTH {
                let (source, target) = match side {
                    Side::Jira => (&jira, &external),
                    Side::External => (&external, &jira),
                };
                // Values a script wrote are Tandem's own, as the worker reads them.
                let restore = |item: &Item, on: Side| {
                    tandem_core::plan::restore_written(
                        &item.fields,
                        on,
                        &shadow,
                        &pending,
                        &conn.mapping,
                    )
                    .into_owned()
                };
                let source_values = restore(source, side);
                let mut twin = target.clone();
                twin.fields = restore(target, side.other());
                let plan = plan_update(&conn.plan_input(
                    side,
                    source.updated.unwrap_or_else(Utc::now),
                    &source_values,
                    Some(&twin),
                    &shadow,
                    &pending,
                ));
                if let Some(e) = plan.errors.first() {
                    summary
                        .actions
                        .push(format!("fail {}: {e}", label(side, source)));
                    *summary.failed.entry(e.to_string()).or_default() += 1;
                    any = true;
                    continue;
                }
                plan.apply_shadow(&mut shadow);
                if plan.writes.is_empty() {
                    continue;
                }
                any = true;
                summary.updated += 1;
                let fields: Vec<&str> = plan.writes.keys().map(String::as_str).collect();
                summary.actions.push(format!(
                    "update {} from {}: {}",
                    label(side.other(), target),
                    label(side, source),
                    fields.join(", ")
                ));
                // What the other side's event would then read.
                let target = match side {
                    Side::Jira => &mut external,
                    Side::External => &mut jira,
                };
                for (k, v) in plan.writes {
                    target.fields.insert(k, v);
                }
            }
            if !any {
                summary.in_agreement += 1;
            }
        }
    }
}

/// Waits until none of `ids` is pending or leased, showing progress.
async fn wait_for(store: &dyn Store, ids: &[Queued], progress: Progress) -> anyhow::Result<()> {
    let total = ids.len() as u64;
    let bar = (progress == Progress::Bar).then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} items ({per_sec}, ETA {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let started = Instant::now();
    let mut last_line = Instant::now();
    // Checked in order; once an event is finished it stays finished, so only the unfinished
    // tail is looked at again.
    let mut open: Vec<i64> = ids.iter().map(|q| q.id).collect();
    loop {
        let mut still = Vec::with_capacity(open.len());
        for (i, id) in open.iter().enumerate() {
            match store.get_event(*id).await? {
                Some(q) if matches!(q.status, EventStatus::Pending | EventStatus::Leased) => {
                    still.push(*id);
                    // Enough known to be open: the rest is looked at next round.
                    if still.len() >= 64 {
                        still.extend_from_slice(&open[i + 1..]);
                        break;
                    }
                }
                _ => {}
            }
        }
        open = still;
        let done = total - open.len() as u64;
        if let Some(bar) = &bar {
            bar.set_position(done);
        } else if progress == Progress::Lines
            && (last_line.elapsed() > Duration::from_secs(2) || open.is_empty())
        {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let rate = done as f64 / secs;
            let eta = if rate > 0.0 {
                format!("{:.0}s", (total - done) as f64 / rate)
            } else {
                "?".into()
            };
            eprintln!("sync: {done}/{total} items done ({rate:.0}/s, ETA {eta})");
            last_line = Instant::now();
        }
        if open.is_empty() {
            if let Some(bar) = bar {
                bar.finish();
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads each queued event's outcome into the summary: what it wrote comes from the audit
/// log (one row per field written, under the event's id).
async fn tally(store: &dyn Store, queued: &[Queued], summary: &mut Summary) -> anyhow::Result<()> {
    // Our events are the newest, so the newest rows hold theirs; a few fields per event.
    let limit = u32::try_from(queued.len().saturating_mul(16).max(1000)).unwrap_or(u32::MAX);
    let wrote: HashSet<i64> = store
        .list_audit(None, limit)
        .await?
        .into_iter()
        .filter_map(|a| a.event_id)
        .collect();
    let mut seen = HashSet::new();
    for q in queued {
        if !seen.insert(q.id) {
            continue;
        }
        let Some(ev) = store.get_event(q.id).await? else {
            continue;
        };
        let note = ev.last_error.clone().unwrap_or_default();
        match ev.status {
            EventStatus::Done if wrote.contains(&q.id) && q.creates => summary.created += 1,
            EventStatus::Done if wrote.contains(&q.id) => summary.updated += 1,
            EventStatus::Done => summary.in_agreement += 1,
            EventStatus::Ignored => summary.skip(note),
            EventStatus::Dead => *summary.failed.entry(note).or_default() += 1,
            EventStatus::Pending | EventStatus::Leased => summary.unfinished += 1,
        }
    }
    Ok(())
}

/// An event this run queued; `creates` when its item had no twin (the worker creates one).
#[derive(Debug, Clone, Copy)]
struct Queued {
    id: i64,
    creates: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_core::{FieldMapping, FieldValue};

    fn item(id: &str, key: Option<&str>, link: Option<&str>, updated_ms: i64) -> Item {
        Item {
            id: id.into(),
            key: key.map(str::to_string),
            updated: DateTime::from_timestamp_millis(updated_ms),
            fields: [("summary".to_string(), FieldValue::Text(id.into()))].into(),
            link: link.map(str::to_string),
            project: Some("TEST".into()),
            issue_type: Some("Task".into()),
        }
    }

    fn shape(work: &[Work]) -> Vec<String> {
        let mut out: Vec<String> = work
            .iter()
            .map(|w| match w {
                Work::Pair {
                    jira,
                    external,
                    link,
                } => format!(
                    "pair {}-{}{}",
                    jira.id,
                    external.id,
                    if link.is_some() { " (stored)" } else { "" }
                ),
                Work::Only(side, i) => format!("only {side} {}", i.id),
                Work::Skip(r) => format!("skip {r}"),
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn pairs_come_from_the_store_the_link_field_or_the_recorded_key() {
        let stored = Link {
            connection: "c".into(),
            jira_id: "1".into(),
            jira_key: Some("T-1".into()),
            external_id: "E1".into(),
            shadow: Shadow::default(),
            pending: Default::default(),
            version: 1,
        };
        let jira = vec![
            item("1", Some("T-1"), None, 1),         // stored link
            item("2", Some("T-2"), Some("E2"), 1),   // Jira's link field
            item("3", Some("T-3"), None, 1),         // the external item records T-3
            item("4", Some("T-4"), Some("E404"), 1), // names an item that does not exist
            item("5", Some("T-5"), None, 1),         // alone
            item("6", Some("T-6"), Some("E1"), 1),   // names an item linked elsewhere
        ];
        let external = vec![
            item("E1", None, None, 1),
            item("E2", None, None, 1),
            item("E3", None, Some("t-3"), 1),
            item("E9", None, None, 1),
        ];
        let work = pair(&Scope::default(), jira, external, vec![stored]);
        assert_eq!(
            shape(&work),
            [
                "only external E9",
                "only jira 5",
                "pair 1-E1 (stored)",
                "pair 2-E2",
                "pair 3-E3",
                "skip its link field names an external item already linked to another issue",
                "skip its link field names an external item that does not exist",
            ]
        );
        // Out of scope is skipped with the reason.
        let scope = Scope {
            projects: vec!["OTHER".into()],
            issue_types: vec![],
        };
        let work = pair(
            &scope,
            vec![item("7", Some("T-7"), None, 1)],
            vec![],
            vec![],
        );
        assert!(shape(&work)[0].contains("outside the connection's projects"));
    }

    #[test]
    fn the_policy_and_the_direction_pick_the_side_a_new_pair_keeps() {
        let j = item("1", None, None, 2_000);
        let e = item("E1", None, None, 1_000);
        let mut m = FieldMapping::new("summary", "1001");
        assert_eq!(winner(&m, ConflictPolicy::LaterWins, &j, &e), Side::Jira);
        assert_eq!(
            winner(&m, ConflictPolicy::LaterWins, &e, &j),
            Side::External
        );
        assert_eq!(
            winner(&m, ConflictPolicy::ExternalWins, &j, &e),
            Side::External
        );
        m.conflict = Some(ConflictPolicy::JiraWins);
        assert_eq!(winner(&m, ConflictPolicy::ExternalWins, &j, &e), Side::Jira);
        m.direction = tandem_core::Direction::ToJira;
        assert_eq!(winner(&m, ConflictPolicy::JiraWins, &j, &e), Side::External);
    }
}
