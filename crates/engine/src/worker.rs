//! Workers: claim due events from the store, plan, write to the other side, record the outcome.
//!
//! One [`Engine`] runs a claim loop and processes claimed events concurrently (bounded by
//! `worker.concurrency`). The store hands out at most one event per ordering key at a time,
//! so events about one item are applied in order while different links proceed in parallel.
//!
//! For each event the worker:
//! 1. finds the link (store), else discovers it (Jira's link field), else creates the twin
//!    when the connection allows it — under a per-connection lock, held across processes
//!    through the store ([`Store::lock_connection`]), so that the echo of a twin being
//!    created cannot race into creating a second twin, even on another instance;
//! 2. reads the twin's current values and runs the pure planning step (echo suppression,
//!    stale-state protection, conflict policy);
//! 3. stores the planned values in the link as *pending* ([`Store::save_link`]), applies all
//!    changed fields in one write, then records shadow, audit rows and the event's outcome in
//!    one store transaction (which clears the pending values). A write whose answer was lost
//!    is thus recognised on the twin by the retry as Tandem's own.
//!
//! Transient failures are retried on the backoff schedule (honouring `Retry-After`);
//! permanent ones and exhausted retries become dead letters with a comment on the Jira issue.
//! A failing link never blocks others: its events wait, everything else keeps flowing.

use crate::connector::{Connector, ConnectorError, Fields, Item};
use crate::store::{AuditEntry, Completion, EventStatus, QueuedEvent, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_core::mapping::{ConflictPolicy, Mapping};
use tandem_core::plan::{PlanInput, holds_created, plan_create, plan_update};
use tandem_core::retry::RetryPolicy;
use tandem_core::{ChangeEvent, ChangeKind, Link, Shadow, Side};
use tokio::sync::{Mutex, Notify, Semaphore};
use tracing::{debug, info, warn};

// The queueing policy moved to its own module; these paths keep working.
pub use crate::queueing::{enqueue, enqueue_linked, ordering_key};

/// How often a running engine tells the store its lease owner is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// A lease owner whose heartbeat is older than this is taken for a stopped process (killed,
/// or cut off from the store) and its leases are given back. Five beats: a slow store write
/// does not make a live instance look dead, and a killed one's events come back within a
/// few seconds instead of a whole lease.
pub const OWNER_DEAD_AFTER: Duration = Duration::from_secs(5);

/// Which sides may receive newly created twins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateRules {
    pub to_jira: bool,
    pub to_external: bool,
}

impl CreateRules {
    /// Whether a twin may be created on `target`.
    pub fn allows(&self, target: Side) -> bool {
        match target {
            Side::Jira => self.to_jira,
            Side::External => self.to_external,
        }
    }
}

/// Which Jira issues a connection covers. Empty lists mean "all".
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub projects: Vec<String>,
    pub issue_types: Vec<String>,
}

/// Whether `value` passes a scope list: an empty list admits everything, else a
/// case-insensitive match.
fn admits(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|v| v.eq_ignore_ascii_case(value))
}

impl Scope {
    /// `None` when the Jira item is in scope, else the reason it is not.
    pub fn excludes(&self, item: &Item) -> Option<String> {
        if let Some(project) = &item.project
            && !admits(&self.projects, project)
        {
            return Some(format!(
                "project {project} is outside the connection's projects"
            ));
        }
        if let Some(issue_type) = &item.issue_type
            && !admits(&self.issue_types, issue_type)
        {
            return Some(format!(
                "issue type {issue_type} is outside the connection's issue types"
            ));
        }
        None
    }
}

/// Everything the worker needs to know about one connection.
pub struct ConnectionRuntime {
    pub name: String,
    pub jira: Arc<dyn Connector>,
    pub external: Arc<dyn Connector>,
    pub mapping: Mapping,
    pub policy: ConflictPolicy,
    pub create: CreateRules,
    pub scope: Scope,
    /// Serialises link discovery and twin creation: the echo of a twin being created waits
    /// here and then finds the new link instead of creating a second twin.
    link_lock: Mutex<()>,
    /// Fingerprints of each side's configuration: a create circuit opened under one is
    /// closed when the process starts with another (the configuration was fixed).
    jira_fingerprint: String,
    external_fingerprint: String,
}

impl ConnectionRuntime {
    pub fn new(
        name: String,
        jira: Arc<dyn Connector>,
        external: Arc<dyn Connector>,
        mapping: Mapping,
        policy: ConflictPolicy,
        create: CreateRules,
        scope: Scope,
    ) -> Self {
        ConnectionRuntime {
            name,
            jira,
            external,
            mapping,
            policy,
            create,
            scope,
            link_lock: Mutex::new(()),
            jira_fingerprint: String::new(),
            external_fingerprint: String::new(),
        }
    }

    /// The same runtime, knowing each side's configuration fingerprint (see
    /// [`Store::create_unreadable`]).
    pub fn with_fingerprints(mut self, jira: String, external: String) -> Self {
        self.jira_fingerprint = jira;
        self.external_fingerprint = external;
        self
    }

    pub fn fingerprint(&self, side: Side) -> &str {
        match side {
            Side::Jira => &self.jira_fingerprint,
            Side::External => &self.external_fingerprint,
        }
    }

    pub fn side(&self, side: Side) -> &Arc<dyn Connector> {
        match side {
            Side::Jira => &self.jira,
            Side::External => &self.external,
        }
    }

    /// What the planner is given for an update from `source` carrying `source_values` as of
    /// `source_ts`: the twin as read (`None` when it was not read, as when an event is first
    /// judged against the shadow alone), the pair's synced state (`shadow`, `pending`), and
    /// this connection's mapping and conflict policy. The one place the worker, the poller
    /// and bulk sync build it, so that they judge a change alike.
    pub fn plan_input<'a>(
        &'a self,
        source: Side,
        source_ts: DateTime<Utc>,
        source_values: &'a Fields,
        twin: Option<&'a Item>,
        shadow: &'a Shadow,
        pending: &'a Shadow,
    ) -> PlanInput<'a> {
        PlanInput {
            source,
            source_ts,
            source_values,
            target_values: twin.map(|t| &t.fields),
            target_ts: twin.and_then(|t| t.updated),
            shadow,
            pending,
            mapping: &self.mapping,
            policy: self.policy,
        }
    }
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub lease: Duration,
    pub retry: RetryPolicy,
    /// Identifies this process's leases in the store.
    pub owner: String,
    /// How long an idle claim loop sleeps when nothing woke it.
    pub idle_poll: Duration,
}

/// The processing engine shared by the server (to wake it) and the worker loop.
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub connections: HashMap<String, Arc<ConnectionRuntime>>,
    pub settings: WorkerSettings,
    /// Woken by the server after an enqueue so new work starts without waiting a poll tick.
    pub wake: Notify,
}

/// How one event ended, for logs and metrics.
#[derive(Debug)]
enum Outcome {
    Applied {
        writes: usize,
    },
    Ignored(String),
    /// Given back to the queue under its link's ordering key (see `moved_to_link_key`).
    Requeued,
}

/// What an unlinked external item's recorded source names in Jira.
enum Named {
    Nothing,
    /// A Jira issue free to be linked with it.
    Issue(String),
    /// A Jira issue (by key) linked to another item already.
    LinkedElsewhere(String),
}

/// Why processing stopped, classified for the retry schedule.
#[derive(Debug)]
enum Failure {
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    Permanent(String),
    /// The lease was lost (another worker took over); nothing to record.
    LeaseLost,
}

impl From<ConnectorError> for Failure {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::Transient {
                message,
                retry_after,
                ..
            } => Failure::Transient {
                message,
                retry_after,
            },
            ConnectorError::Permanent { message, .. } => Failure::Permanent(message),
            ConnectorError::PartlyApplied { message, .. } => Failure::Permanent(message),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LeaseLost { .. } => Failure::LeaseLost,
            // A concurrent shadow update or a database hiccup: try again shortly.
            other => Failure::Transient {
                message: format!("store: {other}"),
                retry_after: None,
            },
        }
    }
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        connections: HashMap<String, Arc<ConnectionRuntime>>,
        settings: WorkerSettings,
    ) -> Arc<Self> {
        Arc::new(Engine {
            store,
            connections,
            settings,
            wake: Notify::new(),
        })
    }

    /// Runs the claim loop until `shutdown` resolves; then waits for events in flight and
    /// releases any lease still held so another instance can take over at once.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let heartbeat = tokio::spawn(self.clone().heartbeat());
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        tokio::pin!(shutdown);
        loop {
            let free = permits.available_permits() as u32;
            let claimed = if free == 0 {
                Vec::new()
            } else {
                match self
                    .store
                    .claim_due(&self.settings.owner, Utc::now(), self.settings.lease, free)
                    .await
                {
                    Ok(events) => events,
                    Err(e) => {
                        warn!(error = %e, "could not claim events");
                        Vec::new()
                    }
                }
            };
            let idle = claimed.is_empty();
            for queued in claimed {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let engine = self.clone();
                tokio::spawn(async move {
                    engine.process(queued).await;
                    drop(permit);
                    // A free slot (and the next event of this ordering key, now due) should
                    // be claimed at once, not after the idle poll.
                    engine.wake.notify_one();
                });
            }
            if idle {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.settings.idle_poll) => {}
                }
            } else {
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break,
                    _ = tokio::task::yield_now() => {}
                }
            }
        }
        // Wait for in-flight events: acquiring every permit means all tasks are done.
        let all = self.settings.concurrency.max(1) as u32;
        let _ = tokio::time::timeout(self.settings.lease, permits.acquire_many(all)).await;
        heartbeat.abort();
        let _ = heartbeat.await;
        match self.store.release_leases(&self.settings.owner).await {
            Ok(0) => {}
            Ok(n) => info!(released = n, "released leases on shutdown"),
            Err(e) => warn!(error = %e, "could not release leases on shutdown"),
        }
    }

    /// Processes one claimed event and records its outcome. Never panics on event content.
    pub async fn process(&self, queued: QueuedEvent) {
        let started = Instant::now();
        let id = queued.id;
        let event = &queued.event;
        let labels = [
            ("connection", event.connection.clone()),
            ("side", event.source.to_string()),
        ];
        let result = match self.connections.get(&event.connection) {
            // The lease is renewed while the event is worked on, so slow remote calls do not
            // let another worker take it over midway (the heartbeat never finishes first).
            Some(conn) => tokio::select! {
                result = self.handle(conn, &queued) => result,
                () = self.keep_lease(id) => Err(Failure::LeaseLost),
            },
            None => Err(Failure::Permanent(format!(
                "connection `{}` is not configured",
                event.connection
            ))),
        };
        match result {
            Ok(Outcome::Applied { writes }) => {
                metrics::counter!("tandem_events_applied_total", &labels).increment(1);
                let latency = (Utc::now() - event.source_ts).num_milliseconds().max(0) as f64;
                metrics::histogram!("tandem_end_to_end_latency_seconds", &labels)
                    .record(latency / 1000.0);
                debug!(
                    event = id,
                    writes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "event applied"
                );
            }
            Ok(Outcome::Ignored(reason)) => {
                metrics::counter!("tandem_events_ignored_total", &labels).increment(1);
                info!(event = id, connection = %event.connection, side = %event.source, item = %event.item_id, %reason, "event ignored");
            }
            Ok(Outcome::Requeued) => {
                debug!(event = id, "event moved under its link's ordering key");
            }
            Err(Failure::LeaseLost) => {
                warn!(
                    event = id,
                    "lease lost while processing; another worker owns the event now"
                );
            }
            Err(Failure::Transient {
                message,
                retry_after,
            }) => {
                metrics::counter!("tandem_events_failed_total", &labels).increment(1);
                let attempts = queued.attempts + 1;
                let jitter: f64 = rand::random();
                match self
                    .settings
                    .retry
                    .next_delay(attempts, jitter, retry_after)
                {
                    Some(delay) => {
                        let next = Utc::now()
                            + chrono::Duration::from_std(delay)
                                .unwrap_or_else(|_| chrono::Duration::seconds(60));
                        warn!(event = id, attempts, retry_in_ms = delay.as_millis() as u64, error = %message, "transient failure; will retry");
                        if let Err(e) = self
                            .store
                            .retry_later(id, &self.settings.owner, next, &message, Utc::now())
                            .await
                        {
                            warn!(event = id, error = %e, "could not schedule retry");
                        }
                    }
                    None => {
                        let reason = format!("gave up after {attempts} attempts: {message}");
                        self.dead_letter(&queued, &reason).await;
                    }
                }
            }
            Err(Failure::Permanent(reason)) => {
                metrics::counter!("tandem_events_failed_total", &labels).increment(1);
                self.dead_letter(&queued, &reason).await;
            }
        }
    }

    /// Tells the store every [`HEARTBEAT`] that this engine's lease owner is alive, and gives
    /// back the leases of owners silent for [`OWNER_DEAD_AFTER`]: a killed process cannot
    /// release its leases, and without this the events it held (and every later event of
    /// their links) would wait for the whole lease (`worker.lease_seconds`, a minute by
    /// default) after a restart. Runs until aborted at shutdown.
    async fn heartbeat(self: Arc<Self>) {
        loop {
            if let Err(e) = self.store.heartbeat(&self.settings.owner).await {
                warn!(error = %e, "could not write the lease owner's heartbeat");
            }
            match self.store.release_dead_owners(OWNER_DEAD_AFTER).await {
                Ok(0) => {}
                Ok(n) => {
                    info!(released = n, "gave back the leases of a stopped instance");
                    self.wake.notify_one();
                }
                Err(e) => warn!(error = %e, "could not release the leases of stopped instances"),
            }
            tokio::time::sleep(HEARTBEAT).await;
        }
    }

    /// Renews the lease on event `id` every third of the lease for as long as it is polled.
    /// Once the lease turns out lost it stops renewing and waits forever: the work finds out
    /// itself when it records its outcome (`StoreError::LeaseLost`).
    async fn keep_lease(&self, id: i64) {
        let every = (self.settings.lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            match self
                .store
                .extend_lease(id, &self.settings.owner, Utc::now(), self.settings.lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    debug!(event = id, "lease no longer held; not renewing it");
                    std::future::pending::<()>().await;
                }
                // A store hiccup: the next beat tries again, well within the lease.
                Err(e) => warn!(event = id, error = %e, "could not renew the lease"),
            }
        }
    }

    /// Parks an event as a dead letter and tells people on the Jira issue.
    async fn dead_letter(&self, queued: &QueuedEvent, reason: &str) {
        let event = &queued.event;
        warn!(event = queued.id, connection = %event.connection, side = %event.source, item = %event.item_id, %reason, "dead letter");
        metrics::counter!("tandem_events_dead_total", "connection" => event.connection.clone(), "side" => event.source.to_string()).increment(1);
        if let Err(e) = self
            .store
            .dead_letter(queued.id, &self.settings.owner, reason, Utc::now())
            .await
        {
            warn!(event = queued.id, error = %e, "could not record dead letter");
            return;
        }
        let Some(conn) = self.connections.get(&event.connection) else {
            return;
        };
        // The Jira issue concerned: the event's own item, or the linked twin of an external item.
        let jira_id = match event.source {
            Side::Jira => Some(event.item_id.clone()),
            Side::External => self
                .store
                .link_by_item(&event.connection, Side::External, &event.item_id)
                .await
                .ok()
                .flatten()
                .map(|l| l.jira_id),
        };
        if let Some(jira_id) = jira_id {
            let item = event.item_key.as_deref().unwrap_or(&event.item_id);
            let text = format!(
                "Tandem could not sync this issue ({} change to {item}, event {}): {reason}. \
                 Run `tandem events list --status dead` to inspect and `tandem events retry --id {}` to replay it.",
                event.source, queued.id, queued.id
            );
            if let Err(e) = conn.jira.comment(&jira_id, &text).await {
                warn!(event = queued.id, error = %e, "could not add the dead-letter comment to Jira");
            }
        }
    }

    async fn handle(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
    ) -> Result<Outcome, Failure> {
        let event = &queued.event;
        if event.kind == ChangeKind::Commented {
            return self
                .finish(
                    queued,
                    EventStatus::Ignored,
                    None,
                    Vec::new(),
                    "comments are not synced",
                )
                .await;
        }
        let link = self
            .store
            .link_by_item(&conn.name, event.source, &event.item_id)
            .await?;
        match link {
            Some(link) => {
                if self.moved_to_link_key(queued, &link).await? {
                    return Ok(Outcome::Requeued);
                }
                self.apply_to_link(conn, queued, link, None).await
            }
            None => {
                // Discovery and creation are serialised per connection: in this process by
                // `link_lock` (so waiters do not each hold a database session), across
                // processes sharing the store by its connection lock. The link is re-read
                // under both, so an echo of a twin created meanwhile finds its link.
                let _guard = conn.link_lock.lock().await;
                let _store_guard = self.store.lock_connection(&conn.name).await?;
                match self
                    .store
                    .link_by_item(&conn.name, event.source, &event.item_id)
                    .await?
                {
                    Some(link) => {
                        if self.moved_to_link_key(queued, &link).await? {
                            return Ok(Outcome::Requeued);
                        }
                        self.apply_to_link(conn, queued, link, None).await
                    }
                    None => self.link_or_create(conn, queued).await,
                }
            }
        }
    }

    /// An event queued before its item was linked is under the item's own key, so it could
    /// run alongside the link's events and plan against a shadow another worker is about to
    /// change (writing an older value back over a newer one). Such an event is moved under
    /// the link's key and given back to the queue, to run in order with the link's events.
    async fn moved_to_link_key(&self, queued: &QueuedEvent, link: &Link) -> Result<bool, Failure> {
        let key = ordering_key(&queued.event, Some(link));
        if key == queued.ordering_key {
            // Already under the link's key (the usual case): no write needed to find out.
            return Ok(false);
        }
        let moved = self
            .store
            .move_to_key(queued.id, &self.settings.owner, &key, Utc::now())
            .await?;
        if moved {
            self.wake.notify_one();
        }
        Ok(moved)
    }

    /// The shadow a pair found by discovery starts with: the values of a create Tandem
    /// recorded for either item (see `Store::record_create`), else nothing.
    async fn recorded_creates(
        &self,
        conn: &ConnectionRuntime,
        jira_id: &str,
        external_id: &str,
    ) -> Result<Shadow, Failure> {
        let mut shadow = Shadow::default();
        for (side, id) in [(Side::Jira, jira_id), (Side::External, external_id)] {
            if let Some(recorded) = self.store.recorded_create(&conn.name, side, id).await? {
                debug!(connection = %conn.name, side = %side, item = %id, "linked pair starts from a recorded create");
                shadow.0.extend(recorded.0);
            }
        }
        Ok(shadow)
    }

    /// An external twin that an earlier attempt at this event created, found by the Jira key
    /// it records (the seed's `sourceIssueId`). Creates are not idempotent: an attempt whose
    /// answer was lost, or whose worker was killed before the link was stored, has made a twin
    /// already. Only looked for when there may have been such an attempt (a failed one, or an
    /// event older than a lease, whose first worker may have died), and only among items
    /// changed since the event arrived, so the common path costs no call.
    async fn twin_made_earlier(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        item: &Item,
    ) -> Result<Option<String>, Failure> {
        let lease = chrono::Duration::from_std(self.settings.lease)
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        // A recorded create is the surest sign: any event of the item may follow it (the
        // item's next edit, not only a retry of the event that created).
        let recorded = self
            .store
            .recorded_create(&conn.name, Side::Jira, &item.id)
            .await?;
        let maybe_attempted =
            queued.attempts > 0 || Utc::now() - queued.received_at > lease || recorded.is_some();
        if !maybe_attempted || !conn.create.allows(Side::External) {
            return Ok(None);
        }
        let key = item.key.clone().unwrap_or_else(|| item.id.clone());
        let since = queued.received_at - chrono::Duration::minutes(1);
        let mut page_token: Option<String> = None;
        for _ in 0..100 {
            let page = match conn
                .external
                .changed_since(since, page_token.as_deref())
                .await
            {
                Ok(page) => page,
                // No listing configured (or one that cannot be read): nothing to look in.
                Err(ConnectorError::Permanent { message, .. }) => {
                    debug!(connection = %conn.name, error = %message, "cannot list changed items to look for an earlier twin");
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            // The twin records the Jira key (the seed's `sourceIssueId`), or, where the system
            // keeps no such reference, holds exactly the values the create sent.
            if let Some(found) = page.items.iter().find(|i| {
                i.link.as_deref().map(str::trim) == Some(key.as_str())
                    || recorded
                        .as_ref()
                        .is_some_and(|r| holds_created(&i.fields, Side::External, r, &conn.mapping))
            }) {
                info!(connection = %conn.name, jira = %key, external = %found.id, "found the twin an earlier attempt created");
                return Ok(Some(found.id.clone()));
            }
            match page.next {
                Some(next) if !page.items.is_empty() => page_token = Some(next),
                _ => break,
            }
        }
        Ok(None)
    }

    /// The Jira issue an unlinked external item names as its source (the seed's
    /// `sourceIssueId`): after a create whose answer was lost, the twin's own webhook arrives
    /// before the link is stored, and without this it would get a Jira twin of its own.
    async fn jira_named_by(&self, conn: &ConnectionRuntime, item: &Item) -> Result<Named, Failure> {
        let Some(key) = item
            .link
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty() && *k != item.id)
        else {
            return Ok(Named::Nothing);
        };
        let issue = match conn.jira.fetch(key).await {
            Ok(issue) => issue,
            // No such issue (deleted, or not a key at all): nothing to link to.
            Err(ConnectorError::Permanent { .. }) => return Ok(Named::Nothing),
            Err(e) => return Err(e.into()),
        };
        if conn.scope.excludes(&issue).is_some() {
            return Ok(Named::Nothing);
        }
        let linked = self
            .store
            .link_by_item(&conn.name, Side::Jira, &issue.id)
            .await?;
        let recorded = issue.link.as_deref().map(str::trim).unwrap_or("");
        match linked {
            Some(l) if l.external_id != item.id => Ok(Named::LinkedElsewhere(key.to_string())),
            _ if !recorded.is_empty() && recorded != item.id => {
                Ok(Named::LinkedElsewhere(key.to_string()))
            }
            _ => Ok(Named::Issue(issue.id)),
        }
    }

    /// The event's own values, fetching the item when the delivery did not carry them.
    async fn source_values(
        &self,
        conn: &ConnectionRuntime,
        event: &ChangeEvent,
        fetched: Option<&Item>,
    ) -> Result<(Fields, DateTime<Utc>), Failure> {
        if let Some(item) = fetched {
            return Ok((item.fields.clone(), item.updated.unwrap_or(event.source_ts)));
        }
        if event.needs_fetch {
            let item = conn.side(event.source).fetch(&event.item_id).await?;
            return Ok((item.fields.clone(), item.updated.unwrap_or(event.source_ts)));
        }
        Ok((event.fields.clone(), event.source_ts))
    }

    /// No link yet: find the twin through Jira's link field, else create it.
    async fn link_or_create(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
    ) -> Result<Outcome, Failure> {
        let event = &queued.event;
        let source = conn.side(event.source);
        let target_side = event.source.other();

        // The source item in full: creation needs every mapped field, and Jira items carry
        // their project, type and link field, which decide scope and discovery.
        let item = source.fetch(&event.item_id).await?;
        if event.source == Side::Jira
            && let Some(reason) = conn.scope.excludes(&item)
        {
            return self
                .finish(queued, EventStatus::Ignored, None, Vec::new(), &reason)
                .await;
        }

        // Discovery: the pair may already know each other.
        let discovered = match event.source {
            Side::Jira => match item.link.clone().filter(|l| !l.trim().is_empty()) {
                Some(l) => Some(l),
                None => self.twin_made_earlier(conn, queued, &item).await?,
            },
            Side::External => match conn.jira.find_by_link(&event.item_id).await? {
                Some(jira_item) => Some(jira_item.id),
                None => match self.jira_named_by(conn, &item).await? {
                    Named::Issue(id) => Some(id),
                    Named::Nothing => None,
                    Named::LinkedElsewhere(key) => {
                        let reason = format!(
                            "the item names Jira issue {key}, which is linked to another item \
                             (a second twin left by an earlier attempt?); not creating a third"
                        );
                        return self
                            .finish(queued, EventStatus::Ignored, None, Vec::new(), &reason)
                            .await;
                    }
                },
            },
        };
        // A create Tandem made whose answer was lost or unreadable: its twin comes back as an
        // unknown item holding the values the create sent. It is that twin, not a new item.
        let (discovered, recognised) = match discovered {
            Some(id) => (Some(id), false),
            None => match self.recognised_twin(conn, event.source, &item).await? {
                Some(id) => (Some(id), true),
                None => (None, false),
            },
        };
        if let Some(other_id) = discovered {
            let (jira_id, jira_key, external_id) = match event.source {
                Side::Jira => (item.id.clone(), item.key.clone(), other_id),
                Side::External => (other_id, None, item.id.clone()),
            };
            // If Tandem created one of the two (its answer lost, or the process killed before
            // the link was stored), the values it created it with are the pair's last synced
            // state: a later edit on the twin then reads as an edit, not as a disagreement
            // for the conflict policy to settle by the items' `updated` times (which
            // unrelated edits and Tandem's own link-field write move).
            let shadow = self.recorded_creates(conn, &jira_id, &external_id).await?;
            let link = Link {
                connection: conn.name.clone(),
                jira_id,
                jira_key,
                external_id,
                shadow,
                pending: Default::default(),
                version: 0,
            };
            let link = match self.store.insert_link(&link).await? {
                Ok(()) => link,
                Err(existing)
                    if existing.jira_id == link.jira_id
                        && existing.external_id == link.external_id =>
                {
                    existing
                }
                Err(existing) => {
                    let reason = format!(
                        "found twin {} / {}, but {} / {} are already linked",
                        link.jira_id, link.external_id, existing.jira_id, existing.external_id
                    );
                    return self
                        .finish(queued, EventStatus::Ignored, None, Vec::new(), &reason)
                        .await;
                }
            };
            info!(connection = %conn.name, jira = %link.jira_id, external = %link.external_id, recognised, "linked existing twins");
            if recognised && event.source == Side::External {
                // The Jira issue was the copied one; nothing else reads it on this path.
                self.write_link_field(conn, &link.jira_id, &link.external_id)
                    .await;
            }
            // A twin found through its own record of the Jira key (an earlier attempt made
            // it) has not had its id written into Jira's link field yet: `apply_to_link`
            // writes it when it reads the Jira issue (see `fill_link_field`).
            return self.apply_to_link(conn, queued, link, Some(&item)).await;
        }

        if !conn.create.allows(target_side) {
            return self
                .finish(
                    queued,
                    EventStatus::Ignored,
                    None,
                    Vec::new(),
                    &format!(
                        "no twin on the {target_side} side and creating one there is disabled"
                    ),
                )
                .await;
        }

        self.may_create(conn, queued, target_side).await?;
        let (values, ts) = self.source_values(conn, event, Some(&item)).await?;
        let plan = plan_create(event.source, ts, &values, &conn.mapping);
        if let Some(err) = plan.errors.first() {
            return Err(Failure::Permanent(err.to_string()));
        }
        let target = conn.side(target_side);
        // Jira's link field holds the external id; the external system is told the Jira key,
        // which people recognise (the seed's `sourceIssueId`).
        let source_ref = match event.source {
            Side::Jira => item.key.clone().unwrap_or_else(|| item.id.clone()),
            Side::External => item.id.clone(),
        };
        let created_shadow = Shadow(plan.shadow_updates.clone());
        // Recorded before the call: if its answer is lost, the twin found later by discovery
        // starts from these values (see `recorded_creates`).
        self.store
            .record_create(
                &conn.name,
                event.source,
                &item.id,
                &created_shadow,
                Utc::now(),
            )
            .await?;
        let (created, refused) = match target.create(&plan.writes, Some(&source_ref)).await {
            Ok(created) => (created, None),
            // The twin exists without some of its fields: it is linked like any other, and
            // the event fails for those fields alone (see `settle_refused`).
            Err(ConnectorError::PartlyApplied {
                message,
                refused,
                created: Some(created),
            }) => (*created, Some((message, refused))),
            Err(e) if e.took_effect() => {
                return Err(self.unreadable_create(conn, event, &item, e).await);
            }
            Err(e @ ConnectorError::Permanent { .. }) => {
                // Refused: no twin was made, so none may be recognised later as this one.
                self.store
                    .forget_create(&conn.name, event.source, &item.id)
                    .await?;
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        let mut created_shadow = created_shadow;
        if let Some((_, fields)) = &refused {
            settle_refused(
                conn,
                &mut created_shadow,
                fields,
                target_side,
                &created.fields,
            );
        }
        metrics::counter!("tandem_twins_created_total", "connection" => conn.name.clone(), "side" => target_side.to_string()).increment(1);
        let (jira_id, jira_key, external_id) = match event.source {
            Side::Jira => (item.id.clone(), item.key.clone(), created.id.clone()),
            Side::External => (created.id.clone(), created.key.clone(), item.id.clone()),
        };
        let mut link = Link {
            connection: conn.name.clone(),
            jira_id: jira_id.clone(),
            jira_key,
            external_id: external_id.clone(),
            shadow: created_shadow,
            pending: Default::default(),
            version: 0,
        };
        // Store the link, with the created values as its shadow, before anything else can
        // fail, so a retry or an echo finds it (and what was created) and never creates a
        // second twin.
        if let Err(existing) = self.store.insert_link(&link).await? {
            warn!(connection = %conn.name, jira = %existing.jira_id, external = %existing.external_id, "link appeared concurrently");
            link = existing;
        }
        info!(connection = %conn.name, jira = %jira_id, external = %external_id, created_on = %target_side, "created twin");
        if event.source == Side::Jira {
            self.write_link_field(conn, &jira_id, &external_id).await;
        }
        if let Some((message, fields)) = refused {
            return Err(refused_failure(&message, &fields, plan.writes.len()));
        }
        let mut audit = audit_rows(
            conn,
            Some(queued.id),
            &link,
            target_side,
            &plan.writes,
            &BTreeMap::new(),
        );
        note_how(&mut audit, target.as_ref(), &created.id);
        for (key, entry) in plan.shadow_updates {
            link.shadow.set(key, entry);
        }
        link.version += 1;
        let writes = plan.writes.len();
        self.finish(queued, EventStatus::Done, Some(link), audit, "created twin")
            .await?;
        Ok(Outcome::Applied { writes })
    }

    /// Writes the external id into the Jira issue's link field right after the pair was
    /// linked. The link is stored, so nothing retries this write later: it is tried a few
    /// times now (people and other tools read the field to find the twin), and a pair whose
    /// field stayed empty gets it when the issue is next read (`fill_link_field`).
    async fn write_link_field(&self, conn: &ConnectionRuntime, jira_id: &str, external_id: &str) {
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=5 {
            match conn.jira.set_link(jira_id, external_id).await {
                Ok(()) => break,
                Err(e) if attempt == 5 || matches!(e, ConnectorError::Permanent { .. }) => {
                    warn!(connection = %conn.name, jira = %jira_id, error = %e, "could not write the link field in Jira");
                    break;
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }

    /// The item of the other side that an unlinked `item` (read from `side`) is the twin of:
    /// the oldest recorded create into `side` whose values it holds. Such a create's answer
    /// was lost, unreadable, or its process was killed before the link was stored, so the
    /// twin arrives (webhook or poll) as an unknown item; twinning it again would make a
    /// second copy of the first item, and the copy's copy would come back in turn.
    ///
    /// While a create into `side` took effect unreadably and its twin has not been
    /// recognised yet, an unknown item there is held (a transient failure naming the
    /// create): it may be that twin with values changed since, and twinning it would copy
    /// the first item twice. It goes on once the twin is recognised or an operator resets
    /// the side (`tandem creates reset`).
    async fn recognised_twin(
        &self,
        conn: &ConnectionRuntime,
        side: Side,
        item: &Item,
    ) -> Result<Option<String>, Failure> {
        let records = self.store.recorded_creates_into(&conn.name, side).await?;
        if let Some(r) = records
            .iter()
            .find(|r| holds_created(&item.fields, side, &r.values, &conn.mapping))
        {
            info!(connection = %conn.name, %side, item = %item.id, twin_of = %r.item_id, "recognised the twin of an earlier create");
            return Ok(Some(r.item_id.clone()));
        }
        if let Some(r) = records.iter().find(|r| r.unreadable.is_some()) {
            return Err(Failure::Transient {
                message: format!(
                    "not twinned yet: this {side} item may be the twin that Tandem created \
                     for {} item {} at {}, whose answer could not be read ({}); it waits \
                     until that twin is recognised, or `tandem creates reset --connection {}` \
                     lets it go",
                    r.source,
                    r.item_id,
                    r.recorded_at.to_rfc3339(),
                    r.unreadable.as_deref().unwrap_or_default(),
                    conn.name
                ),
                retry_after: None,
            });
        }
        Ok(None)
    }

    /// Refuses to create on `target` while its create circuit is open (a create there took
    /// effect but its answer could not be read): every further create would leave another
    /// twin nobody can name. The event waits on the retry schedule, saying why.
    async fn may_create(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        target: Side,
    ) -> Result<(), Failure> {
        let circuits = self.store.create_circuits().await?;
        let Some(open) = circuits
            .iter()
            .find(|c| c.connection == conn.name && c.side == target)
        else {
            return Ok(());
        };
        debug!(event = queued.id, connection = %conn.name, %target, "create circuit open");
        Err(Failure::Transient {
            message: format!(
                "creating on the {target} side of `{}` is stopped since {}: {}. Fix the \
                 {target} side's create operation and restart, or run `tandem creates reset \
                 --connection {} --side {target}`",
                conn.name,
                open.opened_at.to_rfc3339(),
                open.reason,
                conn.name
            ),
            retry_after: None,
        })
    }

    /// A create that took effect but whose answer could not be read: the twin exists and
    /// nobody knows its id. The recorded create is marked so (its twin is recognised when it
    /// comes back, see `recognised_twin`), the target side's create circuit opens, and the
    /// event waits for the twin to be recognised.
    async fn unreadable_create(
        &self,
        conn: &ConnectionRuntime,
        event: &ChangeEvent,
        item: &Item,
        error: ConnectorError,
    ) -> Failure {
        let target = event.source.other();
        let reason = format!("a create's answer could not be read: {error}");
        metrics::counter!("tandem_creates_unreadable_total", "connection" => conn.name.clone(), "side" => target.to_string()).increment(1);
        warn!(connection = %conn.name, side = %target, item = %item.id, %reason, "create took effect but its answer could not be read; creating there is stopped");
        if let Err(e) = self
            .store
            .create_unreadable(
                &conn.name,
                event.source,
                &item.id,
                &reason,
                conn.fingerprint(target),
                Utc::now(),
            )
            .await
        {
            return e.into();
        }
        Failure::Transient {
            message: format!(
                "the twin was created on the {target} side but {reason}; waiting for it to \
                 be recognised when it comes back"
            ),
            retry_after: None,
        }
    }

    /// A linked event: compare with the shadow and the twin, write what changed, once.
    async fn apply_to_link(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        mut link: Link,
        fetched_source: Option<&Item>,
    ) -> Result<Outcome, Failure> {
        let event = &queued.event;
        let target_side = event.source.other();
        let target = conn.side(target_side);
        let target_id = link.id_on(target_side).to_string();

        // Taken before the item is read: the later events of this item queued by then are
        // carried by that read and settled with this one (see `Completion::covers_through`).
        let mut covers_through = None;
        if fetched_source.is_none() && event.needs_fetch {
            covers_through = Some(self.store.newest_event_id().await?);
        }
        let (mut values, mut ts) = self.source_values(conn, event, fetched_source).await?;
        // First against the shadow alone: an echo of Tandem's own write, or an old state,
        // needs no write, so it costs no remote call at all.
        let shadow_plan = |values: &Fields, ts| {
            plan_update(&conn.plan_input(
                event.source,
                ts,
                values,
                None,
                &link.shadow,
                &link.pending,
            ))
        };
        if event.source == Side::Jira
            && let Some(item) = fetched_source
        {
            self.fill_link_field(conn, &link, item).await?;
        }
        let mut against_shadow = shadow_plan(&values, ts);
        let read_source = fetched_source.is_none() && !event.needs_fetch;
        // A delivery judged older than the synced edit is read again too: its time may come
        // from another clock than the shadow's (the seed's webhooks carry none, so it is the
        // arrival time here), and a later edit must not be dropped on a clock difference.
        // Echoes (equal to the shadow) still cost nothing.
        let looks_stale = against_shadow
            .with_outcome(tandem_core::plan::Outcome::Stale)
            .next()
            .is_some();
        if read_source
            && (looks_stale
                || !(against_shadow.writes.is_empty() && against_shadow.errors.is_empty()))
        {
            // A delivered snapshot is not enough to write on: it may be an old state arriving
            // late or out of order (an earlier edit, or the echo of an earlier write of ours,
            // which the shadow no longer recognises), and its time may be only the arrival
            // time (the seed's webhook carries none), which would make an old value look new
            // and bounce it back and forth. The item as it is now, with its own `updated`,
            // is what gets planned; an old snapshot then turns out an echo or stale.
            covers_through = Some(self.store.newest_event_id().await?);
            let item = conn
                .side(event.source)
                .fetch(link.id_on(event.source))
                .await?;
            if event.source == Side::Jira {
                self.fill_link_field(conn, &link, &item).await?;
            }
            ts = item.updated.unwrap_or(ts);
            values = item.fields;
            against_shadow = shadow_plan(&values, ts);
        }
        if against_shadow.writes.is_empty() && against_shadow.errors.is_empty() {
            // The echo of a pending write (its answer was lost) shows that it landed: it
            // becomes the synced state.
            let landed = against_shadow.landed;
            let link = (!landed.is_empty()).then(|| {
                for (key, entry) in landed {
                    link.pending.0.remove(&key);
                    link.shadow.set(key, entry);
                }
                link.version += 1;
                link
            });
            self.finish_covering(
                queued,
                EventStatus::Done,
                link,
                Vec::new(),
                "nothing to write (echo or stale)",
                covers_through,
            )
            .await?;
            return Ok(Outcome::Applied { writes: 0 });
        }
        // The twin's current state tells a real conflict (both sides changed since the last
        // sync) from a plain update.
        let twin = target.fetch(&target_id).await?;
        if target_side == Side::Jira {
            self.fill_link_field(conn, &link, &twin).await?;
        }
        let plan = plan_update(&conn.plan_input(
            event.source,
            ts,
            &values,
            Some(&twin),
            &link.shadow,
            &link.pending,
        ));
        // Decisions name fields and outcomes, never values: enough to trace an event's path
        // (RUST_LOG=tandem=debug) without putting issue content in the logs.
        debug!(event = queued.id, attempts = queued.attempts, link = %link.jira_id, decisions = ?plan.decisions, "planned");
        if let Some(err) = plan.errors.first() {
            return Err(Failure::Permanent(err.to_string()));
        }
        if !plan.writes.is_empty() {
            // Write-ahead: the planned values are stored as pending first. If the write goes
            // through but its answer is lost, the retry finds them on the twin and knows them
            // for its own, instead of taking them for an edit made there (at the twin's
            // `updated`, which a later edit may have moved) and letting them win a conflict.
            for (key, entry) in &plan.landed {
                link.shadow.set(key.clone(), entry.clone());
            }
            link.pending = plan.pending_writes();
            link.version += 1;
            self.store.save_link(&link).await?;
            if let Err(e) = target.update(&target_id, &plan.writes).await {
                let ConnectorError::PartlyApplied {
                    message, refused, ..
                } = e
                else {
                    return Err(e.into());
                };
                // The other fields landed: they become the synced state before the event
                // fails for the refused ones alone.
                plan.apply_shadow(&mut link.shadow);
                // Read again: a walk that failed midway left the twin somewhere new.
                let now = match target.fetch(&target_id).await {
                    Ok(item) => item.fields,
                    Err(_) => twin.fields.clone(),
                };
                settle_refused(conn, &mut link.shadow, &refused, target_side, &now);
                link.pending = Default::default();
                link.version += 1;
                self.store.save_link(&link).await?;
                return Err(refused_failure(&message, &refused, plan.writes.len()));
            }
        }
        let mut audit = audit_rows(
            conn,
            Some(queued.id),
            &link,
            target_side,
            &plan.writes,
            &twin.fields,
        );
        note_how(&mut audit, target.as_ref(), &target_id);
        let writes = plan.writes.len();
        // The twin was read, so every pending write has been judged (landed or not): the
        // answered writes and what was learnt go into the shadow, and nothing stays pending.
        let changed =
            !plan.shadow_updates.is_empty() || !plan.landed.is_empty() || !link.pending.is_empty();
        plan.apply_shadow(&mut link.shadow);
        link.pending = Default::default();
        if link.jira_key.is_none() && event.source == Side::Jira {
            link.jira_key = event.item_key.clone();
        }
        let link = if changed {
            link.version += 1;
            Some(link)
        } else {
            None
        };
        let note = if writes == 0 {
            "nothing to write (echo, unchanged or stale)"
        } else {
            "applied"
        };
        self.finish_covering(queued, EventStatus::Done, link, audit, note, covers_through)
            .await?;
        Ok(Outcome::Applied { writes })
    }

    /// Writes the external id into the linked Jira issue's link field when the issue was
    /// read without it. A pair linked by discovery (a create whose answer was lost, found
    /// through the twin's `sourceIssueId`, from either side's event) or a link-field write
    /// that failed after a create would otherwise leave the field empty for good: nothing
    /// else writes it. Doing it whenever the issue is read anyway costs no extra read, and a
    /// failure is transient like any other, so the event is retried until it is written.
    async fn fill_link_field(
        &self,
        conn: &ConnectionRuntime,
        link: &Link,
        jira_item: &Item,
    ) -> Result<(), Failure> {
        if jira_item
            .link
            .as_deref()
            .is_some_and(|l| !l.trim().is_empty())
        {
            return Ok(());
        }
        conn.jira.set_link(&link.jira_id, &link.external_id).await?;
        info!(connection = %conn.name, jira = %link.jira_id, external = %link.external_id, "wrote the link field in Jira");
        Ok(())
    }

    async fn finish(
        &self,
        queued: &QueuedEvent,
        status: EventStatus,
        link: Option<Link>,
        audit: Vec<AuditEntry>,
        note: &str,
    ) -> Result<Outcome, Failure> {
        self.finish_covering(queued, status, link, audit, note, None)
            .await
    }

    /// [`Self::finish`], also settling the item's later events that a fresh read of it
    /// carried (`covers_through`: the newest event id before that read).
    async fn finish_covering(
        &self,
        queued: &QueuedEvent,
        status: EventStatus,
        link: Option<Link>,
        audit: Vec<AuditEntry>,
        note: &str,
        covers_through: Option<i64>,
    ) -> Result<Outcome, Failure> {
        let writes = audit.len();
        self.store
            .complete(
                queued.id,
                &self.settings.owner,
                Completion {
                    status,
                    link,
                    audit,
                    // The note is kept in the event's `last_error` column: only reasons for
                    // ignoring belong there, not "applied".
                    note: (status == EventStatus::Ignored).then(|| note.to_string()),
                    covers_through,
                },
                Utc::now(),
            )
            .await?;
        Ok(match status {
            EventStatus::Ignored => Outcome::Ignored(note.to_string()),
            _ => Outcome::Applied { writes },
        })
    }
}

/// Records fields the target refused (Jira: a status no transition reaches) at the value
/// the target still holds, as if synced long ago: the target's echo of the rest of the
/// write then is an echo, not an edit to copy back over the source, while the source's
/// value still differs and is written again when the event is replayed.
fn settle_refused(
    conn: &ConnectionRuntime,
    shadow: &mut Shadow,
    refused: &[String],
    target: Side,
    target_values: &Fields,
) {
    for field in refused {
        for m in conn.mapping.by_field(target, field) {
            let value = target_values
                .get(field)
                .filter(|v| !v.is_empty())
                .and_then(|v| tandem_core::convert::to_canonical(v, m, target).ok())
                .unwrap_or(tandem_core::FieldValue::Empty);
            let entry = tandem_core::link::ShadowEntry {
                value,
                source_ts: DateTime::UNIX_EPOCH,
                source: target,
            };
            shadow.set(m.key(), entry);
        }
    }
}

/// The dead letter of an event whose write of `written` fields landed except for `refused`.
fn refused_failure(message: &str, refused: &[String], written: usize) -> Failure {
    if written <= refused.len() {
        return Failure::Permanent(message.to_string());
    }
    Failure::Permanent(format!(
        "{message} (only {} failed; the event's other fields were written)",
        refused.join(", ")
    ))
}

/// Says in the audit how a field was written when it took more than its value (the
/// transitions walked to reach a Jira status): the row's actor reads `tandem (…)`.
fn note_how(audit: &mut [AuditEntry], target: &dyn Connector, id: &str) {
    if let Some((field, how)) = target.take_write_note(id)
        && let Some(row) = audit.iter_mut().find(|a| a.field == field)
    {
        row.actor = format!("{} ({how})", row.actor);
    }
}

/// One audit row per field written.
fn audit_rows(
    conn: &ConnectionRuntime,
    event_id: Option<i64>,
    link: &Link,
    target: Side,
    writes: &Fields,
    before: &Fields,
) -> Vec<AuditEntry> {
    let now = Utc::now();
    writes
        .iter()
        .map(|(field, value)| {
            let mapping_key = conn
                .mapping
                .fields
                .iter()
                .find(|m| match target {
                    Side::Jira => m.jira_field == *field,
                    Side::External => m.external_field == *field,
                })
                .map(|m| m.key())
                .unwrap_or_else(|| field.clone());
            AuditEntry {
                at: now,
                connection: conn.name.clone(),
                event_id,
                jira_id: link.jira_id.clone(),
                external_id: link.external_id.clone(),
                target,
                field: field.clone(),
                mapping_key,
                from: before.get(field).cloned(),
                to: value.clone(),
                actor: "tandem".to_string(),
            }
        })
        .collect()
}
