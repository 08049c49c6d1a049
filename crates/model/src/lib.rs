//! An exhaustive model of Tandem's sync protocol, checked with `stateright`.
//!
//! The model is the engine's worker loop (`crates/engine/src/worker/`) cut at every call
//! that leaves the process — a store read or write, a remote read or write — around the
//! *real* planning functions of `tandem-core` ([`plan_update`], [`plan_create`]): nothing
//! about echoes, stale states, conflicts or pending writes is re-implemented here. The
//! checker then tries every interleaving of, within the [`Bounds`]:
//!
//! - one Jira issue (created before the run, its webhook in flight) and the external
//!   system, where Tandem creates its twin; people editing either side;
//! - webhooks for every change (people's and Tandem's own), delivered in any order, lost,
//!   or delivered twice under distinct delivery ids (so deduplication cannot help);
//! - a poller that lists each side's changes since its cursor;
//! - two workers (two instances on one store) claiming events one per ordering key, with
//!   the connection lock around discovery and creation;
//! - a crash of either worker between any two steps (its memory is gone, its lease expires,
//!   the event is claimed again), a lease that expires while its worker still runs, a
//!   remote write that fails, and one that lands while the worker sees an error.
//!
//! Properties (see [`SyncModel::properties`]) are checked in every state, the quiescent ones
//! — nothing queued, in flight, in progress, or left for the poller to find — where the
//! engine has gone quiet. [`Variant`] switches off one safeguard at a time, to show that the
//! checker finds the bug that safeguard prevents.

pub mod comments;

use chrono::{DateTime, Utc};
use stateright::{Model, Property};
use std::collections::BTreeMap;
use tandem_core::mapping::{ConflictPolicy, FieldMapping, Mapping};
use tandem_core::plan::{Outcome, Plan, PlanInput, plan_create, plan_update};
use tandem_core::{FieldValue, Shadow, ShadowEntry, Side};

/// The one mapped field: Jira's `summary`, the external system's `title`, both ways.
const JIRA_FIELD: &str = "summary";
const EXTERNAL_FIELD: &str = "title";

/// How much of each thing may happen in one history. Every bound is a budget spent by the
/// action it names, so every history is finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bounds {
    /// People's edits on the Jira side and on the external side.
    pub jira_edits: u8,
    pub external_edits: u8,
    /// Worker crashes (between any two steps).
    pub crashes: u8,
    /// Leases that expire while their worker still runs (a stall longer than the lease).
    pub lease_expiries: u8,
    /// Remote writes that land while the worker sees an error (the answer is lost).
    pub lost_answers: u8,
    /// Remote writes that fail and do not land.
    pub failed_writes: u8,
    /// Webhooks delivered a second time, later, under a new delivery id.
    pub duplicates: u8,
    /// Webhooks held back, to arrive after later changes and events (reordering).
    pub delays: u8,
    /// Webhooks never delivered (the poller must find the change).
    pub losses: u8,
}

impl Bounds {
    /// No fault: only people's edits (set the faults to add with struct update syntax).
    pub fn edits(jira_edits: u8, external_edits: u8) -> Self {
        Bounds {
            jira_edits,
            external_edits,
            crashes: 0,
            lease_expiries: 0,
            lost_answers: 0,
            failed_writes: 0,
            duplicates: 0,
            delays: 0,
            losses: 0,
        }
    }

    /// The larger run (`larger_run`, ignored by default), documented in docs/RELIABILITY.md.
    pub fn large() -> Self {
        Bounds {
            failed_writes: 1,
            delays: 1,
            losses: 1,
            ..Bounds::edits(1, 1)
        }
    }
}

/// One safeguard of the engine switched off, to prove the checker can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Variant {
    /// The engine as it is.
    #[default]
    Faithful,
    /// The planner is not shown the link's pending writes: a write whose answer was lost is
    /// not recognised as Tandem's own when the retry finds it on the twin.
    IgnorePending,
    /// Discovery and creation run without the connection lock. With twins created on the
    /// external side only, the events of one Jira issue share an ordering key, so in this
    /// model the lock is not what keeps a second twin away: the checker finds none without
    /// it either (the lock matters when both sides may create).
    NoConnectionLock,
    /// Remote writes are not preceded by storing them as pending (no write-ahead).
    NoWriteAhead,
    /// A delivered snapshot is planned as it is, never read again from its side: an old
    /// state arriving late is taken for the current one.
    TrustSnapshots,
}

/// The model: bounds, the conflict policy, and which variant of the engine runs.
#[derive(Debug, Clone)]
pub struct SyncModel {
    pub bounds: Bounds,
    pub policy: ConflictPolicy,
    pub variant: Variant,
    mapping: Mapping,
}

impl SyncModel {
    pub fn new(bounds: Bounds, policy: ConflictPolicy, variant: Variant) -> Self {
        SyncModel {
            bounds,
            policy,
            variant,
            mapping: Mapping {
                fields: vec![FieldMapping::new(JIRA_FIELD, EXTERNAL_FIELD)],
            },
        }
    }
}

// ---- state -------------------------------------------------------------------------------

/// A side, small enough to hash; converted to [`Side`] for the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum S {
    J,
    E,
}

impl S {
    fn side(self) -> Side {
        match self {
            S::J => Side::Jira,
            S::E => Side::External,
        }
    }
    fn of(side: Side) -> S {
        match side {
            Side::Jira => S::J,
            Side::External => S::E,
        }
    }
    fn other(self) -> S {
        match self {
            S::J => S::E,
            S::E => S::J,
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// A value of the mapped field: `v{n}`. `v0` is the value before the run; every
/// edit writes a fresh one, so a value tells which edit made it.
pub type Val = u8;
/// A point on the one clock both sides share (seconds since the epoch, for the planner).
pub type Time = u8;

/// An item on either side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Item {
    pub value: Val,
    pub updated: Time,
    /// The last change to `value` was Tandem's write.
    pub by_tandem: bool,
    /// Jira: the link field (the twin's id). External: whether it names the Jira issue
    /// (the seed's `sourceIssueId`), which every twin Tandem creates does.
    pub link: Option<u8>,
}

/// A webhook on its way: which item, and the state it carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Delivery {
    /// Held back by the network: it arrives at any later point. Others arrive before
    /// anything else happens (sorted first).
    pub delayed: bool,
    pub source: S,
    pub item: u8,
    pub value: Val,
    pub ts: Time,
}

/// The ordering key an event is queued under (see `queueing::ordering_key` in the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Item(S, u8),
    Link,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Pending,
    Leased { owner: u8, expired: bool },
}

/// A queued event; finished events leave the queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Event {
    pub id: u8,
    pub source: S,
    pub item: u8,
    pub value: Val,
    pub ts: Time,
    pub key: Key,
    pub status: Status,
    pub attempts: u8,
    /// Older than a lease (its first worker may have died): discovery looks for a twin an
    /// earlier attempt created.
    pub aged: bool,
}

/// A shadow or pending entry, small enough to hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    pub value: Val,
    pub ts: Time,
    pub source: S,
}

/// The stored link between the Jira issue and external item `ext`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoredLink {
    pub ext: u8,
    pub shadow: Option<Entry>,
    pub pending: Option<Entry>,
    pub version: u8,
}

/// What a worker holds in memory between two steps; lost on a crash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Idle,
    /// Claimed: next, read the item's link.
    Claimed,
    /// No link: next, take the connection lock.
    WantLock,
    /// Holding the lock: next, read the link again, then the source and discovery reads.
    Locked,
    /// A twin was discovered: next, write Jira's link field when it was read without it
    /// (`write_link`), then insert the link (shadow from a recorded create).
    Discovered {
        ext: u8,
        value: Val,
        ts: Time,
        write_link: bool,
    },
    /// Next, record the create (write-ahead of the twin's values).
    RecordCreate {
        value: Val,
        ts: Time,
    },
    /// Next, create the twin.
    Create {
        value: Val,
        ts: Time,
    },
    /// The twin exists: next, write its id into Jira's link field.
    SetLink {
        ext: u8,
        value: Val,
        ts: Time,
    },
    /// Next, store the link.
    InsertCreated {
        ext: u8,
        value: Val,
        ts: Time,
    },
    /// A linked event: next, plan against the shadow, reading the source when needed.
    Linked {
        link: StoredLink,
        fetched: Option<(Val, Time)>,
    },
    /// The source was read and needs a write: next, read the twin and plan.
    SourceRead {
        link: StoredLink,
        value: Val,
        ts: Time,
    },
    /// Next, store the planned write as pending (`saved`).
    SavePending {
        saved: StoredLink,
        write: WriteArgs,
        done: StoredLink,
    },
    /// Next, write to the twin; then `done` is the link to record.
    Write {
        write: WriteArgs,
        done: StoredLink,
    },
    /// Next, record the outcome (and the link) with the event's completion.
    Complete {
        link: Option<StoredLink>,
    },
}

/// A planned write to the twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriteArgs {
    pub value: Val,
    /// When the twin was read: a person's edit on it after this is overwritten blindly.
    pub read_at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Worker {
    pub phase: Phase,
    /// The event being worked on (a copy, as read at claim time).
    pub event: Option<Event>,
    pub holds_lock: bool,
}

/// Everything in the world at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State {
    pub jira: Item,
    /// External items, by id; Tandem should create exactly one.
    pub external: Vec<Item>,
    /// Webhooks in flight, sorted (a multiset: any may be delivered next).
    pub net: Vec<Delivery>,
    pub link: Option<StoredLink>,
    pub recorded_create: Option<Entry>,
    pub queue: Vec<Event>,
    pub next_event: u8,
    pub lock: Option<u8>,
    pub workers: [Worker; 2],
    /// The poller's cursor per side: changes after it are still to be listed.
    pub cursor: [Time; 2],
    pub clock: Time,
    pub next_value: Val,
    /// The latest edit a person made: (value, time). `v0` at time 1 before any.
    pub latest_edit: (Val, Time),
    /// The time of each side's latest edit by a person.
    pub last_user_edit: [Time; 2],
    /// The value of each side's latest edit by a person (`v0` before any).
    pub last_edit_value: [Val; 2],
    /// A person edited one side while the two disagreed (a change not yet synced): the
    /// edits conflict.
    pub concurrent: bool,
    pub spent: Bounds,
    /// A write of Tandem's that carried the value the target already held from Tandem.
    pub echo_write: bool,
    /// A write of Tandem's landed over a person's edit made after the twin was read (no
    /// remote API here offers a conditional write, so this window cannot be closed).
    pub blind_overwrite: bool,
}

/// Everything that can happen next.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Edit(S),
    Deliver(usize),
    Duplicate(usize),
    Delay(usize),
    Lose(usize),
    Poll(S),
    Claim(u8, usize),
    Step(u8),
    /// The worker's next remote write lands but its answer is lost.
    StepLostAnswer(u8),
    /// The worker's next remote write fails without landing.
    StepFailedWrite(u8),
    Crash(u8),
    ExpireLease(usize),
}

// ---- conversions to and from the planner's types ------------------------------------------

fn text(v: Val) -> FieldValue {
    FieldValue::Text(format!("v{v}"))
}

fn val(fv: &FieldValue) -> Val {
    match fv {
        FieldValue::Text(s) => s[1..].parse().expect("model values are v{n}"),
        other => panic!("unexpected value {other:?}"),
    }
}

fn at(t: Time) -> DateTime<Utc> {
    DateTime::UNIX_EPOCH + chrono::Duration::seconds(i64::from(t))
}

fn time(d: &DateTime<Utc>) -> Time {
    u8::try_from(d.timestamp()).expect("model times fit in u8")
}

fn field(side: S) -> &'static str {
    match side {
        S::J => JIRA_FIELD,
        S::E => EXTERNAL_FIELD,
    }
}

fn values(side: S, v: Val) -> BTreeMap<String, FieldValue> {
    [(field(side).to_string(), text(v))].into_iter().collect()
}

fn shadow_of(e: Option<Entry>) -> Shadow {
    let mut s = Shadow::default();
    if let Some(e) = e {
        s.set(
            format!("{JIRA_FIELD}|{EXTERNAL_FIELD}"),
            ShadowEntry {
                value: text(e.value),
                source_ts: at(e.ts),
                source: e.source.side(),
                written: None,
            },
        );
    }
    s
}

fn entry_of(s: &Shadow) -> Option<Entry> {
    s.0.values().next().map(|e| Entry {
        value: val(&e.value),
        ts: time(&e.source_ts),
        source: S::of(e.source),
    })
}

impl SyncModel {
    /// The real planner on the model's state.
    fn plan(
        &self,
        source: S,
        value: Val,
        ts: Time,
        twin: Option<(Val, Time)>,
        link: &StoredLink,
    ) -> Plan {
        let source_values = values(source, value);
        let twin_values = twin.map(|(v, _)| values(source.other(), v));
        let shadow = shadow_of(link.shadow);
        let pending = match self.variant {
            Variant::IgnorePending => Shadow::default(),
            _ => shadow_of(link.pending),
        };
        plan_update(&PlanInput {
            source: source.side(),
            source_ts: at(ts),
            source_values: &source_values,
            target_values: twin_values.as_ref(),
            target_ts: twin.map(|(_, t)| at(t)),
            shadow: &shadow,
            pending: &pending,
            mapping: &self.mapping,
            policy: self.policy,
        })
    }
}

// ---- the world's moves ---------------------------------------------------------------------

impl State {
    fn item(&self, side: S, id: u8) -> &Item {
        match side {
            S::J => &self.jira,
            S::E => &self.external[id as usize],
        }
    }

    fn item_mut(&mut self, side: S, id: u8) -> &mut Item {
        match side {
            S::J => &mut self.jira,
            S::E => &mut self.external[id as usize],
        }
    }

    fn tick(&mut self) -> Time {
        self.clock += 1;
        self.clock
    }

    /// The side fires a webhook for its item's current state.
    fn webhook(&mut self, side: S, id: u8) {
        let it = self.item(side, id);
        let d = Delivery {
            delayed: false,
            source: side,
            item: id,
            value: it.value,
            ts: it.updated,
        };
        self.net.push(d);
        self.net.sort();
    }

    /// A change to the item that is not its mapped value (Jira's link field).
    fn touch(&mut self, side: S, id: u8) {
        let t = self.tick();
        self.item_mut(side, id).updated = t;
        self.webhook(side, id);
    }

    /// Tandem's write of `v` to `side` lands.
    fn tandem_write(&mut self, side: S, id: u8, v: Val, read_at: Time) {
        let t = self.tick();
        if self.last_user_edit[side.index()] > read_at {
            self.blind_overwrite = true;
        }
        let it = self.item(side, id);
        if it.by_tandem && it.value == v {
            self.echo_write = true;
        }
        let it = self.item_mut(side, id);
        it.value = v;
        it.updated = t;
        it.by_tandem = true;
        self.webhook(side, id);
    }

    /// The key an event about this item is queued under (`worker::enqueue`).
    fn key_for(&self, side: S, id: u8) -> Key {
        match &self.link {
            Some(l) if side == S::J || l.ext == id => Key::Link,
            _ => Key::Item(side, id),
        }
    }

    fn enqueue(&mut self, source: S, item: u8, value: Val, ts: Time) {
        let id = self.next_event;
        self.next_event += 1;
        let key = self.key_for(source, item);
        self.queue.push(Event {
            id,
            source,
            item,
            value,
            ts,
            key,
            status: Status::Pending,
            attempts: 0,
            aged: false,
        });
    }

    fn leased_by(&self, ev: u8, w: u8) -> Option<usize> {
        self.queue.iter().position(|e| {
            e.id == ev && matches!(e.status, Status::Leased { owner, .. } if owner == w)
        })
    }

    /// The worker's attempt ends; it is idle again.
    fn idle(&mut self, w: u8) {
        let wk = &mut self.workers[w as usize];
        wk.phase = Phase::Idle;
        wk.event = None;
        if wk.holds_lock {
            wk.holds_lock = false;
            self.lock = None;
        }
    }

    /// A transient failure: `retry_later` gives the event back (if the lease is still held).
    fn retry(&mut self, w: u8) {
        let ev = self.workers[w as usize].event.as_ref().map(|e| e.id);
        if let Some(i) = ev.and_then(|ev| self.leased_by(ev, w)) {
            self.queue[i].status = Status::Pending;
            // Only whether there was an attempt matters (`twin_made_earlier`).
            self.queue[i].attempts = 1;
        }
        self.idle(w);
    }

    /// `Store::complete`: only under a held lease, and the link only over the version read.
    fn complete(&mut self, w: u8, link: Option<StoredLink>) {
        let ev = self.workers[w as usize].event.as_ref().map(|e| e.id);
        let Some(i) = ev.and_then(|ev| self.leased_by(ev, w)) else {
            // Lease lost: another worker owns the event; nothing recorded.
            self.idle(w);
            return;
        };
        if let Some(new) = link {
            let ok = match &self.link {
                Some(old) => old.ext == new.ext && old.version + 1 == new.version,
                None => true,
            };
            if !ok {
                self.retry(w);
                return;
            }
            self.link = Some(new);
            self.recorded_create = None;
        }
        self.queue.remove(i);
        self.idle(w);
    }

    /// Event ids counted from the oldest queued event, so histories that differ only in how
    /// many events have come and gone meet in one state.
    fn renumber(&mut self) {
        let base = self
            .queue
            .iter()
            .map(|e| e.id)
            .min()
            .unwrap_or(self.next_event);
        if base == 0 {
            return;
        }
        for e in &mut self.queue {
            e.id -= base;
        }
        for w in &mut self.workers {
            if let Some(e) = &mut w.event {
                // An event that has left the queue: its worker will find its lease lost.
                e.id = e.id.checked_sub(base).unwrap_or(u8::MAX);
            }
        }
        self.next_event -= base;
    }

    /// The two workers are alike: of a state and the one with their roles swapped, the
    /// smaller stands for both (symmetry reduction).
    fn representative(self) -> State {
        let mut swapped = self.clone();
        swapped.workers.swap(0, 1);
        let flip = |o: u8| 1 - o;
        for e in &mut swapped.queue {
            if let Status::Leased { owner, expired } = e.status {
                e.status = Status::Leased {
                    owner: flip(owner),
                    expired,
                };
            }
        }
        swapped.lock = swapped.lock.map(flip);
        self.min(swapped)
    }

    /// Nothing left to happen but people's edits and faults.
    pub fn quiescent(&self) -> bool {
        self.net.is_empty()
            && self.queue.is_empty()
            && self.workers.iter().all(|w| w.phase == Phase::Idle)
            && self.cursor[S::J.index()] >= self.jira.updated
            && self
                .external
                .iter()
                .all(|i| self.cursor[S::E.index()] >= i.updated)
    }
}

impl SyncModel {
    fn budget_left(&self, s: &State, f: fn(&Bounds) -> u8) -> bool {
        f(&s.spent) < f(&self.bounds)
    }

    /// The head of every ordering key that may be claimed (`Store::claim_due`).
    fn claimable(&self, s: &State) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, e) in s.queue.iter().enumerate() {
            let head = s
                .queue
                .iter()
                .filter(|o| o.key == e.key)
                .all(|o| o.id >= e.id);
            let free = match e.status {
                Status::Pending => true,
                Status::Leased { expired, .. } => expired,
            };
            // An event moved under a key can be older than one leased there: the key stays
            // busy until that one finishes.
            let busy = s.queue.iter().any(|o| {
                o.key == e.key
                    && o.id != e.id
                    && matches!(o.status, Status::Leased { expired: false, .. })
            });
            if head && free && !busy {
                out.push(i);
            }
        }
        out
    }

    /// The worker's next step has a remote write that may land with its answer lost, or fail.
    fn writes_remotely(phase: &Phase) -> bool {
        matches!(phase, Phase::Create { .. } | Phase::Write { .. })
    }

    /// One step of worker `w`. `fault`: how its remote write (if any) goes.
    fn step(&self, s: &mut State, w: u8, fault: WriteFault) {
        let wk = &s.workers[w as usize];
        let ev = wk.event.clone().expect("a busy worker has an event");
        let phase = wk.phase.clone();
        let set = |s: &mut State, p: Phase| s.workers[w as usize].phase = p;
        match phase {
            Phase::Idle => unreachable!("idle workers do not step"),
            Phase::Claimed | Phase::Locked => {
                if phase == Phase::Locked || s.link.is_some() {
                    // The link, read (again, under the lock).
                } else if self.variant == Variant::NoConnectionLock {
                    return set(s, Phase::Locked);
                } else {
                    return set(s, Phase::WantLock);
                }
                if let Some(link) = s
                    .link
                    .clone()
                    .filter(|l| ev.source == S::J || l.ext == ev.item)
                {
                    if ev.key != Key::Link {
                        // `moved_to_link_key`: requeued under the link's key.
                        if let Some(i) = s.leased_by(ev.id, w) {
                            s.queue[i].key = Key::Link;
                            s.queue[i].status = Status::Pending;
                        }
                        return s.idle(w);
                    }
                    return set(
                        s,
                        Phase::Linked {
                            link,
                            fetched: None,
                        },
                    );
                }
                if s.link.is_some() {
                    // An external item other than the linked one: it names the issue, which
                    // is linked elsewhere — ignored ("not creating a third").
                    return s.complete(w, None);
                }
                self.discover(s, w, &ev)
            }
            Phase::WantLock => {
                s.lock = Some(w);
                s.workers[w as usize].holds_lock = true;
                set(s, Phase::Locked)
            }
            Phase::Discovered {
                ext,
                value,
                ts,
                write_link: true,
            } => {
                // `link_discovered`: not over a pair linked otherwise; then Jira's link
                // field, before the link is stored.
                if s.link.as_ref().is_some_and(|l| l.ext != ext) {
                    return s.complete(w, None);
                }
                s.jira.link = Some(ext);
                s.touch(S::J, 0);
                set(
                    s,
                    Phase::Discovered {
                        ext,
                        value,
                        ts,
                        write_link: false,
                    },
                )
            }
            Phase::Discovered {
                ext,
                value,
                ts,
                write_link: false,
            } => {
                let link = StoredLink {
                    ext,
                    shadow: s.recorded_create,
                    pending: None,
                    version: 0,
                };
                match &s.link {
                    None => {
                        s.link = Some(link.clone());
                        s.recorded_create = None;
                    }
                    Some(existing) if existing.ext == ext => {}
                    Some(_) => return s.complete(w, None),
                }
                let link = s.link.clone().expect("just stored");
                if ev.key != Key::Link {
                    // `moved_to_link_key`: the pair's later events run under the link's key;
                    // this one goes there too instead of planning under its item's key.
                    if let Some(i) = s.leased_by(ev.id, w) {
                        s.queue[i].key = Key::Link;
                        s.queue[i].status = Status::Pending;
                    }
                    return s.idle(w);
                }
                set(
                    s,
                    Phase::Linked {
                        link,
                        fetched: Some((value, ts)),
                    },
                )
            }
            Phase::RecordCreate { value, ts } => {
                let plan = plan_create(Side::Jira, at(ts), &values(S::J, value), &self.mapping);
                s.recorded_create = entry_of(&Shadow(plan.shadow_updates));
                set(s, Phase::Create { value, ts })
            }
            Phase::Create { value, ts } => {
                if fault == WriteFault::Fails {
                    return s.retry(w);
                }
                let plan = plan_create(Side::Jira, at(ts), &values(S::J, value), &self.mapping);
                let v = val(&plan.writes[EXTERNAL_FIELD]);
                let t = s.tick();
                s.external.push(Item {
                    value: v,
                    updated: t,
                    by_tandem: true,
                    link: Some(0),
                });
                let ext = (s.external.len() - 1) as u8;
                s.webhook(S::E, ext);
                if fault == WriteFault::AnswerLost {
                    return s.retry(w);
                }
                set(s, Phase::SetLink { ext, value, ts })
            }
            Phase::SetLink { ext, value, ts } => {
                // `ensure_link_field`, before the link is stored.
                s.jira.link = Some(ext);
                s.touch(S::J, 0);
                set(s, Phase::InsertCreated { ext, value, ts })
            }
            Phase::InsertCreated { ext, value, ts } => {
                let plan = plan_create(Side::Jira, at(ts), &values(S::J, value), &self.mapping);
                let link = StoredLink {
                    ext,
                    shadow: entry_of(&Shadow(plan.shadow_updates)),
                    pending: None,
                    version: 0,
                };
                let mut link = match &s.link {
                    None => {
                        s.link = Some(link.clone());
                        s.recorded_create = None;
                        link
                    }
                    Some(existing) => existing.clone(),
                };
                link.version += 1;
                set(s, Phase::Complete { link: Some(link) })
            }
            Phase::Linked { mut link, fetched } => {
                let (mut value, mut ts) = fetched.unwrap_or((ev.value, ev.ts));
                let mut plan = self.plan(ev.source, value, ts, None, &link);
                let stale = plan.with_outcome(Outcome::Stale).next().is_some();
                let reread = self.variant != Variant::TrustSnapshots;
                // A pending write judged landed on the snapshot alone is read again too.
                let settles_pending = !plan.landed.is_empty();
                if reread
                    && fetched.is_none()
                    && (stale || settles_pending || !plan.writes.is_empty())
                {
                    // Not enough to write on: the item as it is now is planned.
                    let it = s.item(ev.source, ev.item).clone();
                    (value, ts) = (it.value, it.updated);
                    self.fill_link_field(s, ev.source, &link);
                    plan = self.plan(ev.source, value, ts, None, &link);
                } else if fetched.is_some() {
                    self.fill_link_field(s, ev.source, &link);
                }
                if plan.writes.is_empty() {
                    let changed = !plan.landed.is_empty();
                    let link = changed.then(|| {
                        let mut sh = shadow_of(link.shadow);
                        for (k, e) in plan.landed {
                            sh.set(k, e);
                        }
                        link.shadow = entry_of(&sh);
                        link.pending = None;
                        link.version += 1;
                        link
                    });
                    return set(s, Phase::Complete { link });
                }
                set(s, Phase::SourceRead { link, value, ts })
            }
            Phase::SourceRead {
                mut link,
                value,
                ts,
            } => {
                let target = ev.source.other();
                let twin = s.item(target, link.ext_on(target)).clone();
                self.fill_link_field(s, target, &link);
                let plan = self.plan(
                    ev.source,
                    value,
                    ts,
                    Some((twin.value, twin.updated)),
                    &link,
                );
                if plan.writes.is_empty() {
                    let changed = !plan.shadow_updates.is_empty()
                        || !plan.landed.is_empty()
                        || link.pending.is_some();
                    let mut sh = shadow_of(link.shadow);
                    plan.apply_shadow(&mut sh);
                    link.shadow = entry_of(&sh);
                    link.pending = None;
                    let link = changed.then(|| {
                        link.version += 1;
                        link
                    });
                    return set(s, Phase::Complete { link });
                }
                let target = ev.source.other();
                let write = WriteArgs {
                    value: val(&plan.writes[field(target)]),
                    read_at: s.clock,
                };
                // What is stored before the write (write-ahead): the landed entries and the
                // planned write as pending. And what is recorded after it: the plan's shadow
                // updates, which supersede both, with nothing left pending.
                let mut saved = link.clone();
                let mut sh = shadow_of(link.shadow);
                for (k, e) in &plan.landed {
                    sh.set(k.clone(), e.clone());
                }
                saved.shadow = entry_of(&sh);
                saved.pending = entry_of(&plan.pending_writes());
                saved.version += 1;
                let mut done = saved.clone();
                plan.apply_shadow(&mut sh);
                done.shadow = entry_of(&sh);
                done.pending = None;
                done.version += 1;
                let next = if self.variant == Variant::NoWriteAhead {
                    done.version -= 1;
                    Phase::Write { write, done }
                } else {
                    Phase::SavePending { saved, write, done }
                };
                set(s, next)
            }
            Phase::SavePending { saved, write, done } => {
                // `save_link`: only over the version read.
                match &s.link {
                    Some(stored) if stored.version + 1 == saved.version => {
                        s.link = Some(saved);
                        set(s, Phase::Write { write, done })
                    }
                    _ => s.retry(w),
                }
            }
            Phase::Write { write, done } => {
                if fault == WriteFault::Fails {
                    return s.retry(w);
                }
                let target = ev.source.other();
                s.tandem_write(target, done.ext_on(target), write.value, write.read_at);
                if fault == WriteFault::AnswerLost {
                    return s.retry(w);
                }
                set(s, Phase::Complete { link: Some(done) })
            }
            Phase::Complete { link } => s.complete(w, link),
        }
    }

    /// `fill_link_field`: a Jira issue read without the link field gets it written.
    fn fill_link_field(&self, s: &mut State, read: S, link: &StoredLink) {
        if read == S::J && s.jira.link.is_none() {
            s.jira.link = Some(link.ext);
            s.touch(S::J, 0);
        }
    }

    /// `link_or_create` up to the first write: the source item and the discovery reads.
    fn discover(&self, s: &mut State, w: u8, ev: &Event) {
        let it = s.item(ev.source, ev.item).clone();
        let set = |s: &mut State, p: Phase| s.workers[w as usize].phase = p;
        // With whether Jira's link field, as read, names the twin already.
        let found = match ev.source {
            S::J => it.link.map(|l| (l, true)).or_else(|| {
                // `twin_made_earlier`: only when an earlier attempt may have made one (a
                // failed one, an event older than a lease, or a create recorded for it).
                (ev.attempts > 0 || ev.aged || s.recorded_create.is_some())
                    .then(|| s.external.iter().position(|e| e.link == Some(0)))
                    .flatten()
                    .map(|i| (i as u8, false))
            }),
            // `find_by_link`, else the issue the item names (`jira_named_by`).
            S::E => match s.jira.link {
                Some(x) if x == ev.item => Some((ev.item, true)),
                Some(_) => return s.complete(w, None),
                None if it.link.is_some() => Some((ev.item, false)),
                None => None,
            },
        };
        match (found, ev.source) {
            (Some((other, field_set)), S::J) => set(
                s,
                Phase::Discovered {
                    ext: other,
                    value: it.value,
                    ts: it.updated,
                    write_link: !field_set,
                },
            ),
            (Some((_, field_set)), S::E) => set(
                s,
                Phase::Discovered {
                    ext: ev.item,
                    value: it.value,
                    ts: it.updated,
                    write_link: !field_set,
                },
            ),
            // Creating on the Jira side is not allowed in this connection: ignored.
            (None, S::E) => s.complete(w, None),
            (None, S::J) => set(
                s,
                Phase::RecordCreate {
                    value: it.value,
                    ts: it.updated,
                },
            ),
        }
    }
}

impl SyncModel {
    /// Runs the worker's read-only steps at once, with the step before them. A read
    /// commutes with every other actor's action on other data, and each action that could
    /// change what it reads (an edit, a delivery, another worker's write) commutes with the
    /// worker's previous step, so every history with something between the two is the same
    /// as one with that something before them: fusing loses no outcome, and saves states.
    /// The read of the twin is the last read before a write, so the window in which a
    /// person's edit on the twin is overwritten stays open (see `blind_overwrite`).
    ///
    /// Recording an outcome that changes no link is fused too: it can only free the
    /// ordering key sooner, which the engine may do as well.
    fn fuse_reads(&self, s: &mut State, w: u8) {
        while matches!(
            s.workers[w as usize].phase,
            Phase::Claimed
                | Phase::Locked
                | Phase::Linked { .. }
                | Phase::SourceRead { .. }
                | Phase::Complete { link: None }
        ) {
            self.step(s, w, WriteFault::None);
        }
    }
}

impl StoredLink {
    fn ext_on(&self, side: S) -> u8 {
        match side {
            S::J => 0,
            S::E => self.ext,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteFault {
    None,
    AnswerLost,
    Fails,
}

/// The most changes (people's and Tandem's) a history may make before it counts as
/// ping-pong: a few per edit and fault is plenty.
fn clock_cap(b: &Bounds) -> Time {
    6 + 4 * (b.jira_edits + b.external_edits + b.lost_answers + b.crashes + b.duplicates)
}

impl Model for SyncModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let idle = Worker {
            phase: Phase::Idle,
            event: None,
            holds_lock: false,
        };
        let mut s = State {
            jira: Item {
                value: 0,
                updated: 1,
                by_tandem: false,
                link: None,
            },
            external: Vec::new(),
            net: Vec::new(),
            link: None,
            recorded_create: None,
            queue: Vec::new(),
            next_event: 0,
            lock: None,
            workers: [idle.clone(), idle],
            cursor: [0, 0],
            clock: 1,
            next_value: 1,
            latest_edit: (0, 1),
            last_user_edit: [0, 0],
            last_edit_value: [0, 0],
            concurrent: false,
            spent: Bounds::edits(0, 0),
            echo_write: false,
            blind_overwrite: false,
        };
        s.webhook(S::J, 0);
        vec![s]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        if self.budget_left(s, |b| b.jira_edits) {
            actions.push(Action::Edit(S::J));
        }
        if !s.external.is_empty() && self.budget_left(s, |b| b.external_edits) {
            actions.push(Action::Edit(S::E));
        }
        // A webhook the network does not hold back arrives before anything else happens:
        // delivered, lost, duplicated or held back. Faults aside, delivery is prompt, which
        // keeps the interleavings to those that matter.
        if s.net.first().is_some_and(|d| !d.delayed) {
            actions.push(Action::Deliver(0));
            if self.budget_left(s, |b| b.duplicates) {
                actions.push(Action::Duplicate(0));
            }
            if self.budget_left(s, |b| b.losses) {
                actions.push(Action::Lose(0));
            }
            if self.budget_left(s, |b| b.delays) {
                actions.push(Action::Delay(0));
            }
            return;
        }
        for i in 0..s.net.len() {
            if i == 0 || s.net[i] != s.net[i - 1] {
                actions.push(Action::Deliver(i));
            }
        }
        // The poller lists the changes once the engine has caught up with the webhooks: it
        // is there for the lost ones (a poll racing a webhook only makes a duplicate, which
        // `Duplicate` covers).
        let busy = s.workers.iter().any(|w| w.phase != Phase::Idle);
        if s.queue.is_empty() && !busy {
            if s.jira.updated > s.cursor[0] {
                actions.push(Action::Poll(S::J));
            }
            if s.external.iter().any(|i| i.updated > s.cursor[1]) {
                actions.push(Action::Poll(S::E));
            }
        }
        let claimable = self.claimable(s);
        for w in 0..2u8 {
            let wk = &s.workers[w as usize];
            match wk.phase {
                Phase::Idle => {
                    for &i in &claimable {
                        actions.push(Action::Claim(w, i));
                    }
                    continue;
                }
                Phase::WantLock if s.lock.is_some() => {}
                _ => {
                    actions.push(Action::Step(w));
                    if Self::writes_remotely(&wk.phase) {
                        if self.budget_left(s, |b| b.lost_answers) {
                            actions.push(Action::StepLostAnswer(w));
                        }
                        if self.budget_left(s, |b| b.failed_writes) {
                            actions.push(Action::StepFailedWrite(w));
                        }
                    }
                }
            }
            if self.budget_left(s, |b| b.crashes) {
                actions.push(Action::Crash(w));
            }
        }
        if self.budget_left(s, |b| b.lease_expiries) {
            for (i, e) in s.queue.iter().enumerate() {
                if matches!(e.status, Status::Leased { expired: false, .. }) {
                    actions.push(Action::ExpireLease(i));
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Edit(side) => {
                let v = s.next_value;
                s.next_value += 1;
                let t = s.tick();
                s.latest_edit = (v, t);
                s.last_user_edit[side.index()] = t;
                s.last_edit_value[side.index()] = v;
                if s.external.first().is_some_and(|e| e.value != s.jira.value) {
                    s.concurrent = true;
                }
                match side {
                    S::J => s.spent.jira_edits += 1,
                    S::E => s.spent.external_edits += 1,
                }
                let it = s.item_mut(side, 0);
                it.value = v;
                it.updated = t;
                it.by_tandem = false;
                s.webhook(side, 0);
            }
            Action::Deliver(i) => {
                let d = s.net.remove(i);
                s.enqueue(d.source, d.item, d.value, d.ts);
            }
            Action::Duplicate(i) => {
                s.spent.duplicates += 1;
                let d = s.net.remove(i);
                s.enqueue(d.source, d.item, d.value, d.ts);
                s.net.push(Delivery { delayed: true, ..d });
                s.net.sort();
            }
            Action::Delay(i) => {
                s.spent.delays += 1;
                s.net[i].delayed = true;
                s.net.sort();
            }
            Action::Lose(i) => {
                s.spent.losses += 1;
                s.net.remove(i);
            }
            Action::Poll(side) => {
                let cursor = s.cursor[side.index()];
                let changed: Vec<(u8, Val, Time)> = match side {
                    S::J => vec![(0, s.jira.value, s.jira.updated)],
                    S::E => s
                        .external
                        .iter()
                        .enumerate()
                        .map(|(i, it)| (i as u8, it.value, it.updated))
                        .collect(),
                };
                for (id, v, t) in changed.into_iter().filter(|c| c.2 > cursor) {
                    s.enqueue(side, id, v, t);
                    s.cursor[side.index()] = s.cursor[side.index()].max(t);
                }
            }
            Action::Claim(w, i) => {
                let e = &mut s.queue[i];
                if matches!(e.status, Status::Leased { .. }) {
                    e.aged = true;
                }
                e.status = Status::Leased {
                    owner: w,
                    expired: false,
                };
                let mut copy = e.clone();
                copy.status = Status::Pending;
                let wk = &mut s.workers[w as usize];
                wk.event = Some(copy);
                wk.phase = Phase::Claimed;
                self.fuse_reads(&mut s, w);
            }
            Action::Step(w) => {
                self.step(&mut s, w, WriteFault::None);
                self.fuse_reads(&mut s, w);
            }
            Action::StepLostAnswer(w) => {
                s.spent.lost_answers += 1;
                self.step(&mut s, w, WriteFault::AnswerLost);
                self.fuse_reads(&mut s, w);
            }
            Action::StepFailedWrite(w) => {
                s.spent.failed_writes += 1;
                self.step(&mut s, w, WriteFault::Fails);
                self.fuse_reads(&mut s, w);
            }
            Action::Crash(w) => {
                s.spent.crashes += 1;
                // Its memory is gone; the lease runs out, so the event can be claimed again.
                for e in &mut s.queue {
                    if matches!(e.status, Status::Leased { owner, .. } if owner == w) {
                        e.status = Status::Leased {
                            owner: w,
                            expired: true,
                        };
                        e.aged = true;
                    }
                }
                s.idle(w);
            }
            Action::ExpireLease(i) => {
                s.spent.lease_expiries += 1;
                if let Status::Leased { owner, .. } = s.queue[i].status {
                    s.queue[i].status = Status::Leased {
                        owner,
                        expired: true,
                    };
                    s.queue[i].aged = true;
                }
            }
        }
        s.renumber();
        Some(s.representative())
    }

    fn within_boundary(&self, s: &State) -> bool {
        s.clock <= clock_cap(&self.bounds)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("no second twin", |_: &SyncModel, s: &State| {
                s.external.len() <= 1
            }),
            Property::always("no write caused by an echo", |_: &SyncModel, s: &State| {
                !s.echo_write
            }),
            Property::always("no ping-pong", |m: &SyncModel, s: &State| {
                s.clock < clock_cap(&m.bounds)
            }),
            Property::always("converges once quiet", |_: &SyncModel, s: &State| {
                !s.quiescent()
                    || (s.link.is_some()
                        && s.external.len() == 1
                        && s.external[0].value == s.jira.value)
            }),
            Property::always(
                "Jira's link field names the twin once quiet",
                |_: &SyncModel, s: &State| !s.quiescent() || s.jira.link == Some(0),
            ),
            Property::always("no lost change once quiet", |m: &SyncModel, s: &State| {
                !s.quiescent() || s.blind_overwrite || m.policy_holds(s)
            }),
            Property::always("no step left undone", |m: &SyncModel, s: &State| {
                let mut next = Vec::new();
                m.actions(s, &mut next);
                !next.is_empty() || s.quiescent()
            }),
            // Reachable, so the properties above are not vacuous.
            Property::sometimes(
                "quiet after edits on both sides",
                |_: &SyncModel, s: &State| {
                    s.quiescent() && s.spent.jira_edits > 0 && s.spent.external_edits > 0
                },
            ),
            Property::sometimes(
                "a write overwrites a later edit blindly",
                |_: &SyncModel, s: &State| s.blind_overwrite,
            ),
            Property::sometimes(
                "a conflict settled for the earlier edit",
                |_: &SyncModel, s: &State| {
                    s.quiescent()
                        && s.concurrent
                        && !s.blind_overwrite
                        && s.jira.value != s.latest_edit.0
                },
            ),
        ]
    }
}

impl SyncModel {
    /// Once quiet, both sides hold the value the conflict policy picks from the edits made.
    ///
    /// When every edit was made with the two sides in agreement (each change synced before
    /// the next), that is the latest edit, whatever the policy and whatever the order the
    /// events were delivered or processed in. When a person edited one side while a change
    /// of the other was not yet synced, the edits conflict: the policy picks one side's
    /// latest edit, never an older value. (Which side `later_wins` picks is by the items'
    /// `updated` times, which unmapped changes move too — Tandem's own write of Jira's link
    /// field after a create among them; see docs/RELIABILITY.md.)
    fn policy_holds(&self, s: &State) -> bool {
        if s.concurrent {
            s.last_edit_value.contains(&s.jira.value)
        } else {
            s.jira.value == s.latest_edit.0
        }
    }
}

impl State {
    /// One line a person can follow in a counterexample.
    pub fn summary(&self) -> String {
        let item = |i: &Item| {
            format!(
                "v{}@{}{}{}",
                i.value,
                i.updated,
                if i.by_tandem { "(T)" } else { "" },
                i.link.map_or(String::new(), |l| format!(" link={l}"))
            )
        };
        let entry = |e: &Option<Entry>| {
            e.map_or("-".to_string(), |e| {
                format!("v{}@{}/{:?}", e.value, e.ts, e.source)
            })
        };
        let ext: Vec<String> = self.external.iter().map(item).collect();
        let link = self.link.as_ref().map_or("none".to_string(), |l| {
            format!(
                "ext={} shadow={} pending={} ver={}",
                l.ext,
                entry(&l.shadow),
                entry(&l.pending),
                l.version
            )
        });
        let queue: Vec<String> = self
            .queue
            .iter()
            .map(|e| {
                format!(
                    "#{} {:?}{} v{}@{} {:?} {:?}",
                    e.id, e.source, e.item, e.value, e.ts, e.key, e.status
                )
            })
            .collect();
        let workers: Vec<String> = self
            .workers
            .iter()
            .map(|w| {
                let phase = format!("{:?}", w.phase);
                let phase = phase.split([' ', '{']).next().unwrap_or("").to_string();
                match &w.event {
                    Some(e) => format!("{phase}(#{})", e.id),
                    None => phase,
                }
            })
            .collect();
        format!(
            "J={} E={ext:?} link[{link}] net={} queue={queue:?} workers={workers:?} clock={}",
            item(&self.jira),
            self.net.len(),
            self.clock
        )
    }
}
