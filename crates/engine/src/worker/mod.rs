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
//!
//! The files follow those steps: `discover.rs` finds an unlinked item's twin (and writes
//! Jira's link field), `create.rs` creates one when none is found, `apply.rs` plans and
//! writes a linked event, `finish.rs` records how an event ended (completion, retry, dead
//! letter). `comments.rs` reconciles the comments of a pair when an event says one changed,
//! `attachments.rs` its files.
//! `script.rs` runs the connection's rules script: its `filter` before step 1,
//! its hooks on the writes of steps 1 and 3. `connection.rs` holds what the worker knows about a connection, and the planner
//! input built from it. Which ordering key an event is queued under is the queueing policy
//! ([`crate::queueing`]), shared with the webhook route, the poller and bulk sync.

mod apply;
mod attachments;
mod comments;
mod connection;
mod create;
mod discover;
mod finish;
mod script;
mod users;

pub use connection::{ConnectionRuntime, CreateRules, Scope};
// The queueing policy lives in its own module (the webhook route, the poller and bulk sync
// use it too); these paths keep working.
pub use crate::queueing::{enqueue, enqueue_linked, ordering_key};

use crate::clock::ClockWatch;
use crate::connector::ConnectorError;
use crate::store::{QueuedEvent, Store, StoreError};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_core::retry::RetryPolicy;
use tandem_core::{ChangeKind, Link};
use tokio::sync::{Notify, Semaphore};
use tracing::{debug, info, warn};

/// How often a running engine tells the store its lease owner is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// A lease owner whose heartbeat is older than this is taken for a stopped process (killed,
/// or cut off from the store) and its leases are given back. Five beats: a slow store write
/// does not make a live instance look dead, and a killed one's events come back within a
/// few seconds instead of a whole lease.
pub const OWNER_DEAD_AFTER: Duration = Duration::from_secs(5);

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
    /// Tells a jump of the host's clock from time passing (see [`crate::clock`]).
    clock: ClockWatch,
    /// Events in work here, per connection: no connection may hold more than
    /// [`Engine::connection_share`] of the slots, so a slow or failing system leaves slots
    /// for the others.
    in_flight: std::sync::Mutex<HashMap<String, usize>>,
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
            clock: ClockWatch::default(),
            in_flight: Default::default(),
        })
    }

    /// Runs the claim loop until `shutdown` resolves; then waits for events in flight and
    /// releases any lease still held so another instance can take over at once.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let heartbeat = tokio::spawn(self.clone().heartbeat());
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        tokio::pin!(shutdown);
        loop {
            // Before claiming: a jump forward would otherwise make this instance's own leases
            // look expired and claimable.
            if let Some(jump) = self.clock.check() {
                self.clock_jumped(jump).await;
            }
            let free = permits.available_permits() as u32;
            let (except, room) = self.claim_room();
            let limit = free.min(room);
            let claimed = if limit == 0 {
                Vec::new()
            } else {
                match self
                    .store
                    .claim_due_except(
                        &self.settings.owner,
                        Utc::now(),
                        self.settings.lease,
                        limit,
                        &except,
                    )
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
                let connection = queued.event.connection.clone();
                engine.count_in_flight(&connection, true);
                tokio::spawn(async move {
                    engine.process(queued).await;
                    engine.count_in_flight(&connection, false);
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

    /// The most slots one connection may hold: all of them when there is one connection;
    /// otherwise a quarter (at least one) is kept for the others. Without a share, a system
    /// answering every call slowly (or timing out) fills every slot with its own events, and
    /// a healthy connection's edits wait behind them.
    fn connection_share(&self) -> usize {
        let slots = self.settings.concurrency.max(1);
        if self.connections.len() < 2 {
            return slots;
        }
        slots - (slots / 4).max(1).min(slots - 1)
    }

    /// The connections at their share (their events are not claimed now) and how many events
    /// the next claim may take without any other passing its share.
    fn claim_room(&self) -> (Vec<String>, u32) {
        let share = self.connection_share();
        let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let mut full = Vec::new();
        let mut room = share;
        for name in self.connections.keys() {
            let busy = in_flight.get(name).copied().unwrap_or(0);
            if busy >= share {
                full.push(name.clone());
            } else {
                room = room.min(share - busy);
            }
        }
        if full.len() == self.connections.len() && !full.is_empty() {
            return (full, 0);
        }
        (full, u32::try_from(room).unwrap_or(u32::MAX))
    }

    fn count_in_flight(&self, connection: &str, started: bool) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let n = in_flight.entry(connection.to_string()).or_default();
        *n = if started { *n + 1 } else { n.saturating_sub(1) };
    }

    /// Keeps the queue's waits at their real length after the host's clock jumped.
    async fn clock_jumped(&self, jump: chrono::TimeDelta) {
        metrics::counter!("tandem_clock_jumps_total").increment(1);
        let now = Utc::now();
        match self
            .store
            .shift_schedule(&self.settings.owner, jump, now)
            .await
        {
            Ok(moved) => warn!(
                jump_ms = jump.num_milliseconds(),
                moved,
                "the host's clock jumped; moved the queue's retry times and this instance's leases by as much"
            ),
            Err(e) => warn!(
                jump_ms = jump.num_milliseconds(),
                error = %e,
                "the host's clock jumped and the queue's times could not be moved; retries may wait longer than planned"
            ),
        }
    }

    /// Processes one claimed event and records its outcome. Never panics on event content.
    pub async fn process(&self, queued: QueuedEvent) {
        let started = Instant::now();
        let id = queued.id;
        let event = &queued.event;
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
        self.record(&queued, result, started).await;
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

    /// Works one event through its steps: the link, else discovery or a create under the
    /// connection's lock, then applying it (see the module docs).
    async fn handle(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
    ) -> Result<Outcome, Failure> {
        let event = &queued.event;
        if event.kind == ChangeKind::Commented {
            return self.sync_comments(conn, queued).await;
        }
        if event.kind == ChangeKind::Attached {
            return self.sync_attachments(conn, queued).await;
        }
        if let Some(reason) = self.script_filter(conn, queued).await? {
            return self.ignore(queued, &reason).await;
        }
        let link = self
            .store
            .link_by_item(&conn.name, event.source, &event.item_id)
            .await?;
        if let Some(link) = link {
            return self.apply_linked(conn, queued, link).await;
        }
        // Discovery and creation are serialised per connection: in this process by
        // `link_lock` (so waiters do not each hold a database session), across processes
        // sharing the store by its connection lock. The link is re-read under both, so an
        // echo of a twin created meanwhile finds its link.
        let _guard = conn.link_lock.lock().await;
        let _store_guard = self.store.lock_connection(&conn.name).await?;
        match self
            .store
            .link_by_item(&conn.name, event.source, &event.item_id)
            .await?
        {
            Some(link) => self.apply_linked(conn, queued, link).await,
            None => self.link_or_create(conn, queued).await,
        }
    }

    /// An event whose item is linked: run under the link's ordering key, then applied.
    async fn apply_linked(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
        link: Link,
    ) -> Result<Outcome, Failure> {
        if self.moved_to_link_key(queued, &link).await? {
            return Ok(Outcome::Requeued);
        }
        self.apply_to_link(conn, queued, link, None).await
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
}
