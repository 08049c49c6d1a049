//! The store's story: one walk through everything the worker, server and CLI rely on (dedupe,
//! per-key ordering, leases, the one-transaction outcome, retries, dead letters, cursors),
//! run against SQLite and, when `TANDEM_TEST_POSTGRES_URL` is set, against PostgreSQL in a
//! schema of its own. Plus a concurrency check: several claimers, every event processed
//! exactly once and in order per key.
//!
//! Times are whole seconds from a fixed instant so that both backends return exactly what
//! was stored (SQLite keeps milliseconds, PostgreSQL microseconds).

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem::store::{
    self, AuditEntry, Completion, ConflictEntry, DeadAction, DeadResolution, Enqueued, EventFilter,
    EventStatus, Store, StoreError, drop_postgres_schema, open_postgres_in_schema,
};
use tandem_core::mapping::ConflictPolicy;
use tandem_core::{
    ChangeEvent, ChangeKind, EventOrigin, FieldValue, Link, Shadow, ShadowEntry, Side,
};

const LEASE: Duration = Duration::from_secs(30);

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 31, 9, 0, 0).unwrap() + TimeDelta::seconds(secs)
}

fn event(connection: &str, source: Side, item: &str, key: &str) -> ChangeEvent {
    let mut fields = BTreeMap::new();
    fields.insert(
        "summary".to_string(),
        FieldValue::Text(format!("{item} via {key}")),
    );
    ChangeEvent {
        connection: connection.to_string(),
        source,
        item_id: item.to_string(),
        item_key: (source == Side::Jira).then(|| format!("TEST-{item}")),
        kind: ChangeKind::Updated,
        fields,
        needs_fetch: false,
        source_ts: t(-60),
        idempotency_key: key.to_string(),
        origin: EventOrigin::Webhook,
        comment: None,
    }
}

fn ids(events: &[store::QueuedEvent]) -> Vec<i64> {
    events.iter().map(|e| e.id).collect()
}

async fn all_events(store: &dyn Store) -> Vec<store::QueuedEvent> {
    store
        .list_events(&EventFilter {
            limit: 1000,
            ..EventFilter::default()
        })
        .await
        .unwrap()
}

fn audit(event_id: i64, field: &str, from: Option<&str>, to: &str) -> AuditEntry {
    AuditEntry {
        at: t(32),
        connection: "c1".into(),
        event_id: Some(event_id),
        jira_id: "10001".into(),
        external_id: "ext-1".into(),
        target: Side::External,
        field: field.into(),
        mapping_key: format!("{field}<->{field}"),
        from: from.map(|s| FieldValue::Text(s.into())),
        to: FieldValue::Text(to.into()),
        actor: "worker:w2".into(),
    }
}

/// The whole story, against any backend. Starts from an empty store.
async fn story(store: Arc<dyn Store>) {
    let s = store.as_ref();
    s.ping().await.unwrap();
    assert!(["sqlite", "postgres"].contains(&s.backend()));

    // --- enqueue, and a redelivery is recognised -------------------------------------------
    let a1_ev = event("c1", Side::Jira, "10001", "jira:10001:1");
    let a1 = s.enqueue(&a1_ev, t(0)).await.unwrap();
    assert!(a1.is_new());
    let mut redelivered = a1_ev.clone();
    redelivered.fields.clear(); // whatever the body, the key decides
    assert_eq!(
        s.enqueue(&redelivered, t(1)).await.unwrap(),
        Enqueued::Duplicate(a1.id())
    );
    assert_eq!(all_events(s).await.len(), 1, "a duplicate adds no row");
    // Idempotency keys are per connection.
    let other_conn = s
        .enqueue(&event("c2", Side::Jira, "10001", "jira:10001:1"), t(0))
        .await
        .unwrap();
    assert!(other_conn.is_new());

    let stored = s.get_event(a1.id()).await.unwrap().unwrap();
    assert_eq!(stored.event, a1_ev);
    assert_eq!(stored.status, EventStatus::Pending);
    assert_eq!(stored.attempts, 0);
    assert_eq!(stored.next_attempt_at, t(0));
    assert_eq!(stored.received_at, t(0));
    assert!(s.get_event(999_999).await.unwrap().is_none());

    // --- claims: one per key, oldest first; other keys in parallel --------------------------
    let a2 = s
        .enqueue(&event("c1", Side::Jira, "10001", "jira:10001:2"), t(2))
        .await
        .unwrap();
    let b1 = s
        .enqueue(&event("c1", Side::External, "ext-9", "ext:9:1"), t(2))
        .await
        .unwrap();
    // Not due yet at t(1): b1 and a2 were enqueued for t(2).
    let first = s.claim_due("w1", t(1), LEASE, 10).await.unwrap();
    assert_eq!(ids(&first), vec![a1.id(), other_conn.id()]);
    let claimed = &first[0];
    assert_eq!(claimed.status, EventStatus::Leased);
    assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
    assert_eq!(claimed.lease_expires_at, Some(t(31)));
    assert_eq!(claimed.attempts, 0, "a claim is not an attempt");
    assert_eq!(claimed.event, a1_ev);

    let second = s.claim_due("w1b", t(2), LEASE, 10).await.unwrap();
    assert_eq!(
        ids(&second),
        vec![b1.id()],
        "a2 waits behind a1 (same key); b1 has its own key"
    );
    assert!(s.claim_due("w2", t(3), LEASE, 10).await.unwrap().is_empty());
    s.complete(b1.id(), "w1b", Completion::done(), t(3))
        .await
        .unwrap();
    s.complete(
        other_conn.id(),
        "w1",
        Completion::ignored("filtered out"),
        t(3),
    )
    .await
    .unwrap();
    assert!(
        s.claim_due("w2", t(4), LEASE, 10).await.unwrap().is_empty(),
        "a2 still waits: a1's lease is live"
    );
    let ignored = s.get_event(other_conn.id()).await.unwrap().unwrap();
    assert_eq!(ignored.status, EventStatus::Ignored);
    assert_eq!(ignored.last_error.as_deref(), Some("filtered out"));
    assert_eq!(ignored.lease_owner, None);

    // --- the lease expires; another worker takes over; the old one can record nothing ------
    let reclaimed = s.claim_due("w2", t(31), LEASE, 10).await.unwrap();
    assert_eq!(
        ids(&reclaimed),
        vec![a1.id()],
        "only the expired a1, not a2"
    );
    assert_eq!(reclaimed[0].lease_owner.as_deref(), Some("w2"));

    let mut link = Link {
        connection: "c1".into(),
        jira_id: "10001".into(),
        jira_key: Some("TEST-1".into()),
        external_id: "ext-1".into(),
        shadow: Default::default(),
        pending: Default::default(),
        version: 1,
    };
    link.shadow.set(
        "summary<->summary",
        ShadowEntry {
            value: FieldValue::Text("hello".into()),
            source_ts: t(-60),
            source: Side::Jira,
            written: None,
        },
    );
    let outcome = Completion {
        status: EventStatus::Done,
        link: Some(link.clone()),
        audit: vec![
            audit(a1.id(), "summary", None, "hello"),
            audit(a1.id(), "priority", Some("Low"), "High"),
        ],
        conflicts: Vec::new(),
        note: None,
        covers_through: None,
    };
    assert_eq!(
        s.complete(a1.id(), "w1", outcome.clone(), t(32)).await,
        Err(StoreError::LeaseLost { event_id: a1.id() })
    );
    assert_eq!(
        s.retry_later(a1.id(), "w1", t(40), "late", t(32)).await,
        Err(StoreError::LeaseLost { event_id: a1.id() })
    );
    assert_eq!(
        s.dead_letter(a1.id(), "w1", "late", t(32)).await,
        Err(StoreError::LeaseLost { event_id: a1.id() })
    );
    assert_eq!(s.count_links(None).await.unwrap(), 0, "nothing written");
    assert!(s.list_audit(None, 10).await.unwrap().is_empty());
    let still = s.get_event(a1.id()).await.unwrap().unwrap();
    assert_eq!(
        (still.status, still.lease_owner.as_deref(), still.attempts),
        (EventStatus::Leased, Some("w2"), 0)
    );
    let wrong = Completion {
        status: EventStatus::Pending,
        ..Completion::done()
    };
    assert!(matches!(
        s.complete(a1.id(), "w2", wrong, t(32)).await,
        Err(StoreError::InvalidArgument(_))
    ));

    // --- the outcome: status, link with shadow, audit, in one transaction -------------------
    s.complete(a1.id(), "w2", outcome, t(32)).await.unwrap();
    let done = s.get_event(a1.id()).await.unwrap().unwrap();
    assert_eq!(done.status, EventStatus::Done);
    assert_eq!(done.lease_owner, None);
    assert_eq!(done.lease_expires_at, None);
    assert_eq!(done.updated_at, t(32));
    assert_eq!(
        s.link_by_item("c1", Side::Jira, "10001").await.unwrap(),
        Some(link.clone())
    );
    assert_eq!(
        s.link_by_item("c1", Side::External, "ext-1").await.unwrap(),
        Some(link.clone())
    );
    assert_eq!(
        s.link_by_item("c1", Side::External, "10001").await.unwrap(),
        None
    );
    assert_eq!(
        s.link_by_item("c2", Side::Jira, "10001").await.unwrap(),
        None
    );
    let trail = s.list_audit(Some("c1"), 10).await.unwrap();
    assert_eq!(
        trail,
        vec![
            audit(a1.id(), "priority", Some("Low"), "High"),
            audit(a1.id(), "summary", None, "hello"),
        ],
        "newest first"
    );
    assert!(s.list_audit(Some("c2"), 10).await.unwrap().is_empty());

    // --- a2 is next for its key; a stale link version is refused and nothing is written ----
    let next = s.claim_due("w2", t(33), LEASE, 10).await.unwrap();
    assert_eq!(ids(&next), vec![a2.id()]);
    let mut stale = link.clone(); // still version 1: expects the stored version to be 0
    stale.shadow.set(
        "summary<->summary",
        ShadowEntry {
            value: FieldValue::Text("stale".into()),
            source_ts: t(-30),
            source: Side::Jira,
            written: None,
        },
    );
    let stale_outcome = Completion {
        status: EventStatus::Done,
        link: Some(stale),
        audit: vec![audit(a2.id(), "summary", Some("hello"), "stale")],
        conflicts: Vec::new(),
        note: None,
        covers_through: None,
    };
    assert!(matches!(
        s.complete(a2.id(), "w2", stale_outcome, t(34)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.link_by_item("c1", Side::Jira, "10001").await.unwrap(),
        Some(link.clone())
    );
    assert_eq!(s.list_audit(None, 10).await.unwrap().len(), 2);
    assert_eq!(
        s.get_event(a2.id()).await.unwrap().unwrap().status,
        EventStatus::Leased,
        "the claim survives a conflict so the worker can re-plan"
    );
    // A link claiming an external id that is already linked elsewhere conflicts as well.
    let mut hijack = link.clone();
    hijack.jira_id = "10099".into();
    assert!(matches!(
        s.complete(
            a2.id(),
            "w2",
            Completion {
                link: Some(hijack),
                ..Completion::done()
            },
            t(34)
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    let mut fresh = link.clone();
    fresh.version = 2;
    fresh.jira_key = Some("TEST-1-moved".into());
    fresh.shadow.set(
        "summary<->summary",
        ShadowEntry {
            value: FieldValue::Text("fresh".into()),
            source_ts: t(-10),
            source: Side::Jira,
            written: None,
        },
    );
    s.complete(
        a2.id(),
        "w2",
        Completion {
            link: Some(fresh.clone()),
            ..Completion::done()
        },
        t(35),
    )
    .await
    .unwrap();
    assert_eq!(
        s.link_by_item("c1", Side::External, "ext-1").await.unwrap(),
        Some(fresh.clone())
    );

    // --- save_link: pending writes stored between remote calls, version-checked ------------
    let stored_before = fresh.clone();
    fresh.version = 3;
    fresh.pending.set(
        "summary<->summary",
        ShadowEntry {
            value: FieldValue::Text("on its way".into()),
            source_ts: t(20),
            source: Side::Jira,
            written: None,
        },
    );
    let mut stale = fresh.clone();
    stale.version = 2; // expects version 1: someone else moved the link on
    assert!(matches!(
        s.save_link(&stale).await,
        Err(StoreError::Conflict(_))
    ));
    let mut unknown = fresh.clone();
    unknown.jira_id = "10099".into();
    assert!(matches!(
        s.save_link(&unknown).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.link_by_item("c1", Side::Jira, "10001").await.unwrap(),
        Some(stored_before),
        "a refused save writes nothing"
    );
    s.save_link(&fresh).await.unwrap();
    assert_eq!(
        s.link_by_item("c1", Side::External, "ext-1").await.unwrap(),
        Some(fresh.clone()),
        "the pending write is stored and read back"
    );
    // Saving the same version again is a conflict: each save moves the version on once.
    assert!(matches!(
        s.save_link(&fresh).await,
        Err(StoreError::Conflict(_))
    ));
    // The write was answered: its value joins the shadow and nothing is pending.
    let landed = fresh.pending.get("summary<->summary").cloned().unwrap();
    fresh.pending = Default::default();
    fresh.shadow.set("summary<->summary", landed);
    fresh.version = 4;
    s.save_link(&fresh).await.unwrap();
    assert_eq!(
        s.link_by_item("c1", Side::Jira, "10001").await.unwrap(),
        Some(fresh.clone())
    );

    // --- insert_link: both ids are unique per connection ------------------------------------
    let mut dup_ext = fresh.clone();
    dup_ext.jira_id = "10050".into();
    assert_eq!(s.insert_link(&dup_ext).await.unwrap(), Err(fresh.clone()));
    let mut dup_jira = fresh.clone();
    dup_jira.external_id = "ext-50".into();
    assert_eq!(s.insert_link(&dup_jira).await.unwrap(), Err(fresh.clone()));
    // --- recorded creates: kept until a link holds the item -----------------------------------
    let mut created = Shadow::default();
    created.set(
        "summary|1001",
        ShadowEntry {
            value: FieldValue::Text("as created".into()),
            source_ts: t(60),
            source: Side::Jira,
            written: None,
        },
    );
    assert_eq!(s.recorded_create("c1", Side::Jira, "10002").await, Ok(None));
    s.record_create("c1", Side::Jira, "10002", &Shadow::default(), t(60))
        .await
        .unwrap();
    s.record_create("c1", Side::Jira, "10002", &created, t(61))
        .await
        .unwrap();
    s.record_create("c2", Side::Jira, "10002", &created, t(61))
        .await
        .unwrap();
    assert_eq!(
        s.recorded_create("c1", Side::Jira, "10002").await,
        Ok(Some(created.clone())),
        "a second record replaces the first"
    );
    assert_eq!(
        s.recorded_create("c1", Side::External, "10002").await,
        Ok(None),
        "records are per side"
    );
    let second_link = Link {
        connection: "c1".into(),
        jira_id: "10002".into(),
        jira_key: None,
        external_id: "ext-2".into(),
        shadow: Default::default(),
        pending: Default::default(),
        version: 0,
    };
    assert_eq!(s.insert_link(&second_link).await.unwrap(), Ok(()));
    assert_eq!(
        s.recorded_create("c1", Side::Jira, "10002").await,
        Ok(None),
        "the stored link holds what the record was kept for"
    );
    assert_eq!(
        s.recorded_create("c2", Side::Jira, "10002").await,
        Ok(Some(created)),
        "another connection's record stays"
    );
    let other_conn_link = Link {
        connection: "c2".into(),
        ..fresh.clone()
    };
    assert_eq!(s.insert_link(&other_conn_link).await.unwrap(), Ok(()));
    assert_eq!(s.count_links(None).await.unwrap(), 3);
    assert_eq!(s.count_links(Some("c1")).await.unwrap(), 2);
    assert_eq!(
        s.list_links(Some("c1"), 10, 0).await.unwrap(),
        vec![fresh.clone(), second_link.clone()]
    );
    assert_eq!(
        s.list_links(None, 1, 1).await.unwrap(),
        vec![second_link.clone()]
    );

    // --- retry later: counted, not due before its time, due after ---------------------------
    let r = s
        .enqueue(&event("c1", Side::Jira, "10002", "jira:10002:1"), t(40))
        .await
        .unwrap();
    assert_eq!(
        ids(&s.claim_due("w3", t(40), LEASE, 10).await.unwrap()),
        vec![r.id()]
    );
    assert_eq!(
        s.retry_later(r.id(), "w3", t(100), "HTTP 503", t(41)).await,
        Ok(1)
    );
    let waiting = s.get_event(r.id()).await.unwrap().unwrap();
    assert_eq!(waiting.status, EventStatus::Pending);
    assert_eq!(waiting.attempts, 1);
    assert_eq!(waiting.next_attempt_at, t(100));
    assert_eq!(waiting.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(waiting.lease_owner, None);
    assert!(
        s.claim_due("w3", t(99), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = s.claim_due("w3", t(100), LEASE, 10).await.unwrap();
    assert_eq!(ids(&again), vec![r.id()]);
    assert_eq!(again[0].attempts, 1);

    // --- dead letter: listed, out of the queue, and back on request -------------------------
    s.dead_letter(r.id(), "w3", "HTTP 400: field is required", t(101))
        .await
        .unwrap();
    let dead = s.get_event(r.id()).await.unwrap().unwrap();
    assert_eq!((dead.status, dead.attempts), (EventStatus::Dead, 2));
    let letters = s.list_dead_letters(None, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event_id, r.id());
    assert_eq!(letters[0].connection, "c1");
    assert_eq!(letters[0].reason, "HTTP 400: field is required");
    assert_eq!(letters[0].at, t(101));
    assert_eq!(letters[0].event.item_id, "10002");
    assert!(
        s.list_dead_letters(Some("c2"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.claim_due("w3", t(10_000), LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "dead events are never claimed"
    );
    // A dead event does not block later events of its key.
    let after_dead = s
        .enqueue(&event("c1", Side::Jira, "10002", "jira:10002:2"), t(102))
        .await
        .unwrap();
    assert_eq!(
        ids(&s.claim_due("w3", t(102), LEASE, 10).await.unwrap()),
        vec![after_dead.id()]
    );
    s.complete(after_dead.id(), "w3", Completion::done(), t(103))
        .await
        .unwrap();

    assert_eq!(s.retry_dead(Some(r.id()), t(110)).await, Ok(1));
    assert_eq!(
        s.retry_dead(None, t(110)).await,
        Ok(0),
        "nothing else is dead"
    );
    assert!(s.list_dead_letters(None, 10).await.unwrap().is_empty());
    let revived = s.get_event(r.id()).await.unwrap().unwrap();
    assert_eq!(
        (revived.status, revived.attempts, revived.next_attempt_at),
        (EventStatus::Pending, 0, t(110))
    );

    // --- release_leases: a graceful shutdown hands the work back at once --------------------
    let held = s.claim_due("w4", t(110), LEASE, 10).await.unwrap();
    assert_eq!(ids(&held), vec![r.id()]);
    assert_eq!(s.release_leases("nobody").await, Ok(0));
    assert_eq!(s.release_leases("w4").await, Ok(1));
    let released = s.get_event(r.id()).await.unwrap().unwrap();
    assert_eq!(
        (released.status, released.lease_owner),
        (EventStatus::Pending, None)
    );
    let taken = s.claim_due("w5", t(111), LEASE, 10).await.unwrap();
    assert_eq!(
        ids(&taken),
        vec![r.id()],
        "due at once, long before w4's lease would end"
    );
    s.dead_letter(r.id(), "w5", "still broken", t(112))
        .await
        .unwrap();
    assert_eq!(s.retry_dead(None, t(113)).await, Ok(1));
    assert_eq!(
        ids(&s.claim_due("w5", t(113), LEASE, 10).await.unwrap()),
        vec![r.id()]
    );

    // --- cursors ------------------------------------------------------------------------------
    assert_eq!(s.get_cursor("c1", Side::Jira).await.unwrap(), None);
    s.set_cursor("c1", Side::Jira, "2025-01-31T09:00:00Z", t(120))
        .await
        .unwrap();
    s.set_cursor("c1", Side::External, "page-7", t(120))
        .await
        .unwrap();
    s.set_cursor("c1", Side::Jira, "2025-01-31T09:05:00Z", t(121))
        .await
        .unwrap();
    assert_eq!(
        s.get_cursor("c1", Side::Jira).await.unwrap().as_deref(),
        Some("2025-01-31T09:05:00Z")
    );
    assert_eq!(
        s.get_cursor("c1", Side::External).await.unwrap().as_deref(),
        Some("page-7")
    );
    assert_eq!(s.get_cursor("c2", Side::Jira).await.unwrap(), None);

    // --- queue depth and listings -----------------------------------------------------------
    let depth = s.queue_depth().await.unwrap();
    assert_eq!(
        depth,
        vec![
            ("c1".to_string(), EventStatus::Done, 4),
            ("c1".to_string(), EventStatus::Leased, 1),
            ("c2".to_string(), EventStatus::Ignored, 1),
        ]
    );
    let listed = all_events(s).await;
    assert_eq!(listed.len(), 6);
    assert!(listed.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let c1_done = s
        .list_events(&EventFilter {
            connection: Some("c1".into()),
            status: Some(EventStatus::Done),
            limit: 2,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&c1_done), vec![after_dead.id(), b1.id()]);

    // --- extend_lease: a worker still busy keeps its event --------------------------------
    let slow = s
        .enqueue(&event("c3", Side::Jira, "30001", "jira:30001:1"), t(200))
        .await
        .unwrap();
    // (An earlier c1 event whose lease ran out is claimed alongside; only `slow` matters.)
    let claimed_ids = |q: Vec<store::QueuedEvent>| ids(&q);
    assert!(claimed_ids(s.claim_due("w6", t(200), LEASE, 10).await.unwrap()).contains(&slow.id()));
    assert_eq!(
        s.extend_lease(slow.id(), "w6", t(220), LEASE).await,
        Ok(true)
    );
    assert_eq!(
        s.extend_lease(slow.id(), "w7", t(220), LEASE).await,
        Ok(false),
        "only the holder renews"
    );
    assert!(
        !claimed_ids(s.claim_due("w7", t(240), LEASE, 10).await.unwrap()).contains(&slow.id()),
        "renewed until t(250)"
    );
    assert!(claimed_ids(s.claim_due("w7", t(251), LEASE, 10).await.unwrap()).contains(&slow.id()));
    assert_eq!(
        s.extend_lease(slow.id(), "w6", t(252), LEASE).await,
        Ok(false),
        "taken over: the old holder cannot renew"
    );
    s.complete(slow.id(), "w7", Completion::done(), t(253))
        .await
        .unwrap();
    assert_eq!(
        s.extend_lease(slow.id(), "w7", t(254), LEASE).await,
        Ok(false),
        "a finished event has no lease"
    );
}

fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("TANDEM_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            println!("{test}: skipped (set TANDEM_TEST_POSTGRES_URL to run it on PostgreSQL)");
            None
        }
    }
}

/// A schema no other test run uses.
fn fresh_schema(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "tandem_test_{tag}_{}_{nanos}_{}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Runs `body` against stores in a fresh PostgreSQL schema and drops the schema afterwards,
/// also when `body` fails.
async fn in_postgres<F, Fut>(url: &str, tag: &str, handles: usize, body: F)
where
    F: FnOnce(Vec<Arc<dyn Store>>, String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let schema = fresh_schema(tag);
    let mut stores = Vec::new();
    for _ in 0..handles {
        stores.push(open_postgres_in_schema(url, &schema).await.unwrap());
    }
    let outcome = tokio::spawn(body(stores, schema.clone())).await;
    drop_postgres_schema(url, &schema).await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// What the operator console reads and does, against any backend: events filtered by side,
/// dead letters retried or discarded by filter with who did it recorded, the newest events
/// without payloads, cursors, link search (literal, case-insensitive, by field value, paged)
/// and one link's timeline. Starts from an empty store.
async fn console_story(s: Arc<dyn Store>) {
    let s = &*s;
    let a = s
        .enqueue(&event("c1", Side::Jira, "1", "k-a"), t(0))
        .await
        .unwrap();
    let b = s
        .enqueue(&event("c1", Side::External, "2", "k-b"), t(1))
        .await
        .unwrap();
    let c = s
        .enqueue(&event("c2", Side::Jira, "3", "k-c"), t(2))
        .await
        .unwrap();
    let claimed = s.claim_due("w", t(3), LEASE, 10).await.unwrap();
    assert_eq!(ids(&claimed), vec![a.id(), b.id(), c.id()]);
    for id in [a.id(), b.id(), c.id()] {
        s.dead_letter(id, "w", &format!("HTTP 400 on {id}"), t(4))
            .await
            .unwrap();
    }
    // Each outcome is an attempt, with its error and how long it took from the claim (t(3)).
    let attempts = s.list_attempts(a.id()).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (
            attempts[0].attempt,
            attempts[0].outcome.as_str(),
            attempts[0].error.clone(),
            attempts[0].duration_ms,
            attempts[0].at,
        ),
        (
            1,
            "dead",
            Some(format!("HTTP 400 on {}", a.id())),
            Some(1000),
            t(4)
        )
    );
    let external = s
        .list_events(&EventFilter {
            side: Some(Side::External),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        ids(&external),
        vec![b.id()],
        "filtered by the side it came from"
    );

    // A time filter on when events were received: `since` included, `until` not.
    let received = |since: Option<i64>, until: Option<i64>| async move {
        ids(&s
            .list_events(&EventFilter {
                since: since.map(t),
                until: until.map(t),
                ..EventFilter::default()
            })
            .await
            .unwrap())
    };
    assert_eq!(received(Some(1), None).await, vec![c.id(), b.id()]);
    assert_eq!(received(None, Some(1)).await, vec![a.id()]);
    assert_eq!(received(Some(1), Some(2)).await, vec![b.id()]);
    assert_eq!(received(Some(3), None).await, Vec::<i64>::new());

    // Retry-all for a filter: only c1's Jira-side dead letter comes back, and only within
    // the filter's time bounds (it was received at t(0)).
    let mut retry_c1_jira = DeadResolution {
        action: DeadAction::Retry,
        event_id: None,
        connection: Some("c1".into()),
        side: Some(Side::Jira),
        since: Some(t(1)),
        until: None,
        actor: "console:admin".into(),
    };
    assert_eq!(s.resolve_dead(&retry_c1_jira, t(10)).await, Ok(0));
    assert_eq!(
        s.get_event(a.id()).await.unwrap().unwrap().status,
        EventStatus::Dead
    );
    (retry_c1_jira.since, retry_c1_jira.until) = (None, Some(t(1)));
    assert_eq!(s.resolve_dead(&retry_c1_jira, t(10)).await, Ok(1));
    let back = s.get_event(a.id()).await.unwrap().unwrap();
    assert_eq!(
        (back.status, back.attempts, back.next_attempt_at),
        (EventStatus::Pending, 0, t(10))
    );
    assert_eq!(
        back.last_error.as_deref(),
        Some(format!("HTTP 400 on {}", a.id()).as_str())
    );
    let open: Vec<i64> = s
        .list_dead_letters(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(open, vec![c.id(), b.id()]);

    // Discard one: ignored for good, with who did it as the reason.
    let discard_b = DeadResolution {
        action: DeadAction::Discard,
        event_id: Some(b.id()),
        connection: None,
        side: None,
        since: None,
        until: None,
        actor: "console:ops".into(),
    };
    assert_eq!(s.resolve_dead(&discard_b, t(11)).await, Ok(1));
    let gone = s.get_event(b.id()).await.unwrap().unwrap();
    assert_eq!(gone.status, EventStatus::Ignored);
    assert_eq!(gone.last_error.as_deref(), Some("discarded by console:ops"));
    assert_eq!(s.list_dead_letters(None, 10).await.unwrap().len(), 1);
    assert!(
        s.claim_due("w", t(1000), LEASE, 10)
            .await
            .unwrap()
            .iter()
            .all(|e| e.id != b.id()),
        "a discarded event is never claimed"
    );
    // Nothing dead matches any more: nothing changes and no action is recorded.
    assert_eq!(s.resolve_dead(&discard_b, t(12)).await, Ok(0));
    let actions = s.list_operator_actions(10).await.unwrap();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(
        (
            actions[0].actor.as_str(),
            actions[0].action,
            actions[0].event_id,
            actions[0].events,
            actions[0].at
        ),
        ("console:ops", DeadAction::Discard, Some(b.id()), 1, t(11))
    );
    assert_eq!(
        (
            actions[1].action,
            actions[1].connection.as_deref(),
            actions[1].side,
            actions[1].event_id
        ),
        (DeadAction::Retry, Some("c1"), Some(Side::Jira), None)
    );

    // The newest events without payloads.
    let recent = s.recent_events(2).await.unwrap();
    assert_eq!(
        recent.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![c.id(), b.id()]
    );
    assert_eq!(
        (
            recent[0].connection.as_str(),
            recent[0].source,
            recent[0].status
        ),
        ("c2", Side::Jira, EventStatus::Dead)
    );
    assert_eq!((recent[0].received_at, recent[0].updated_at), (t(2), t(4)));

    // Cursors with when they moved.
    s.set_cursor("c1", Side::External, "page-3", t(20))
        .await
        .unwrap();
    let cursors = s.list_cursors().await.unwrap();
    assert_eq!(cursors.len(), 1);
    assert_eq!(
        (
            cursors[0].side,
            cursors[0].cursor.as_str(),
            cursors[0].updated_at
        ),
        (Side::External, "page-3", t(20))
    );

    // Link search: key (any case), external id taken literally, a field's value; paged.
    for (n, (key, ext, summary)) in [
        ("TEST-12", "ext-50%", "Quarterly report"),
        ("TEST-120", "ext-5000", "Budget"),
        ("OPS-7", "ticket_9", "quarterly review"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut link = Link {
            connection: "c1".into(),
            jira_id: format!("2000{n}"),
            jira_key: Some(key.into()),
            external_id: ext.into(),
            shadow: Default::default(),
            pending: Default::default(),
            version: 1,
        };
        link.shadow.set(
            "summary<->summary",
            ShadowEntry {
                value: FieldValue::Text(summary.into()),
                source_ts: t(-60),
                source: Side::Jira,
                written: None,
            },
        );
        s.insert_link(&link).await.unwrap().unwrap();
    }
    let keys = |links: Vec<Link>| -> Vec<String> {
        links.into_iter().filter_map(|l| l.jira_key).collect()
    };
    assert_eq!(
        keys(s.search_links(None, "test-12", 10, 0).await.unwrap()),
        ["TEST-12", "TEST-120"]
    );
    assert_eq!(
        keys(s.search_links(None, "test-12", 1, 1).await.unwrap()),
        ["TEST-120"],
        "paged"
    );
    assert_eq!(
        keys(s.search_links(None, "50%", 10, 0).await.unwrap()),
        ["TEST-12"],
        "% is literal"
    );
    assert_eq!(
        keys(s.search_links(None, "t_9", 10, 0).await.unwrap()),
        ["OPS-7"]
    );
    assert!(
        s.search_links(None, "t_5", 10, 0).await.unwrap().is_empty(),
        "_ is literal"
    );
    assert_eq!(
        keys(s.search_links(None, "QUARTERLY", 10, 0).await.unwrap()),
        ["TEST-12", "OPS-7"],
        "by a field's value"
    );
    assert!(
        s.search_links(Some("c2"), "TEST", 10, 0)
            .await
            .unwrap()
            .is_empty()
    );

    // One link's timeline: its audit rows only, oldest first.
    let e = s
        .enqueue(&event("c1", Side::Jira, "20000", "k-e"), t(30))
        .await
        .unwrap();
    assert_eq!(
        ids(&s.claim_due("w", t(30), LEASE, 10).await.unwrap()),
        vec![e.id()],
        "a is still leased since the check above"
    );
    let entry = |jira_id: &str, field: &str, to: &str| AuditEntry {
        jira_id: jira_id.into(),
        ..audit(e.id(), field, Some("before"), to)
    };
    let outcome = Completion {
        audit: vec![
            entry("20000", "summary", "first"),
            entry("20001", "summary", "elsewhere"),
            entry("20000", "priority", "second"),
        ],
        ..Completion::done()
    };
    s.complete(e.id(), "w", outcome, t(31)).await.unwrap();
    let timeline = s.link_audit("c1", "20000", 10).await.unwrap();
    assert_eq!(
        timeline
            .iter()
            .map(|a| a.field.as_str())
            .collect::<Vec<_>>(),
        ["summary", "priority"]
    );
    assert!(s.link_audit("c2", "20000", 10).await.unwrap().is_empty());

    // The conflicts an event settled, with both values, written with its outcome and read
    // back newest first, by connection and link, a page at a time.
    let f = s
        .enqueue(&event("c1", Side::External, "ext-9", "k-f"), t(40))
        .await
        .unwrap();
    assert_eq!(
        ids(&s.claim_due("w", t(40), LEASE, 10).await.unwrap()),
        vec![f.id()]
    );
    let conflict = |connection: &str, jira_id: &str, field: &str| ConflictEntry {
        id: 0,
        at: t(41),
        connection: connection.into(),
        event_id: None,
        jira_id: jira_id.into(),
        jira_key: Some(format!("TEST-{jira_id}")),
        external_id: "ext-9".into(),
        mapping_key: field.into(),
        policy: ConflictPolicy::LaterWins,
        winner: Side::External,
        jira_value: FieldValue::Text("from Jira".into()),
        external_value: FieldValue::Text("from outside".into()),
        jira_edited_at: Some(t(38)),
        external_edited_at: None,
        detail: "this edit is later".into(),
    };
    let outcome = Completion {
        conflicts: vec![
            conflict("c1", "20000", "summary"),
            conflict("c2", "20000", "summary"),
            conflict("c1", "20001", "priority"),
        ],
        ..Completion::done()
    };
    s.complete(f.id(), "w", outcome, t(41)).await.unwrap();
    let all = s.list_conflicts(None, None, 10, 0).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|c| (c.connection.as_str(), c.jira_id.as_str()))
            .collect::<Vec<_>>(),
        [("c1", "20001"), ("c2", "20000"), ("c1", "20000")],
        "newest first"
    );
    let first = &all[2];
    assert!(first.id > 0);
    assert_eq!(
        ConflictEntry {
            id: 0,
            ..first.clone()
        },
        ConflictEntry {
            event_id: Some(f.id()),
            ..conflict("c1", "20000", "summary")
        },
        "every value read back as written; the event is the completed one"
    );
    let of_c1 = s.list_conflicts(Some("c1"), None, 10, 0).await.unwrap();
    assert_eq!(of_c1.len(), 2);
    let page_two = s.list_conflicts(Some("c1"), None, 1, 1).await.unwrap();
    assert_eq!(page_two, [of_c1[1].clone()]);
    let of_link = s
        .list_conflicts(Some("c1"), Some("20001"), 10, 0)
        .await
        .unwrap();
    assert_eq!(of_link.len(), 1);
    assert_eq!(of_link[0].mapping_key, "priority");
}

#[tokio::test]
async fn console_story_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("console.db").display());
    console_story(store::open(&url).await.unwrap()).await;
}

/// Every outcome of an event is an attempt, numbered on across retries, written with the
/// outcome; only the newest 50 are kept.
async fn attempts_story(s: Arc<dyn Store>) {
    let s = &*s;
    let e = s
        .enqueue(&event("c1", Side::Jira, "1", "k-a"), t(0))
        .await
        .unwrap();
    for i in 0..55 {
        let claimed = s.claim_due("w", t(i * 10 + 1), LEASE, 1).await.unwrap();
        assert_eq!(ids(&claimed), vec![e.id()], "claim {i}");
        let error = format!("HTTP 503 #{i}");
        s.retry_later(e.id(), "w", t(i * 10 + 5), &error, t(i * 10 + 3))
            .await
            .unwrap();
    }
    s.claim_due("w", t(1000), LEASE, 1).await.unwrap();
    s.complete(e.id(), "w", Completion::done(), t(1000))
        .await
        .unwrap();
    let attempts = s.list_attempts(e.id()).await.unwrap();
    assert_eq!(attempts.len(), 50);
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        (7..=56).collect::<Vec<_>>()
    );
    let first = &attempts[0];
    assert_eq!(
        (
            first.outcome.as_str(),
            first.error.as_deref(),
            first.duration_ms
        ),
        ("retry", Some("HTTP 503 #6"), Some(2000))
    );
    let last = &attempts[49];
    assert_eq!(
        (
            last.outcome.as_str(),
            last.error.as_deref(),
            last.duration_ms
        ),
        ("done", None, Some(0))
    );
    assert!(s.list_attempts(e.id() + 1).await.unwrap().is_empty());
}

#[tokio::test]
async fn attempts_story_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("attempts.db").display());
    attempts_story(store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn attempts_story_postgres() {
    let Some(url) = postgres_url("attempts_story_postgres") else {
        return;
    };
    in_postgres(&url, "attempts", 1, |mut stores, _| async move {
        attempts_story(stores.remove(0)).await;
    })
    .await;
}

#[tokio::test]
async fn console_story_postgres() {
    let Some(url) = postgres_url("console_story_postgres") else {
        return;
    };
    in_postgres(&url, "console", 1, |mut stores, _| async move {
        console_story(stores.remove(0)).await;
    })
    .await;
}

#[tokio::test]
async fn story_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("tandem.db");
    let url = format!("sqlite://{}", path.display());
    let store = store::open(&url).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    story(store.clone()).await;
    drop(store);

    // Reopening runs no migration twice and keeps everything.
    let reopened = store::open(&url).await.unwrap();
    assert_eq!(reopened.count_links(None).await.unwrap(), 3);
    drop(reopened);

    // A database migrated by a newer tandem is refused rather than misread.
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', '')",
    )
    .execute(&raw)
    .await
    .unwrap();
    match store::open(&url).await {
        Err(StoreError::Db(msg)) => assert!(msg.contains("version 999"), "{msg}"),
        Err(e) => panic!("expected a schema version error, got {e}"),
        Ok(_) => panic!("expected a schema version error"),
    }
}

/// A link stored before links had pending writes (schema step 1) reads with none after the
/// upgrade, and can then be saved with some.
#[tokio::test]
async fn links_stored_before_pending_writes_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let raw = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    sqlx::raw_sql(include_str!(
        "../../engine/migrations/sqlite/0001_initial.sql"
    ))
    .execute(&raw)
    .await
    .unwrap();
    sqlx::raw_sql(
        r#"CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                         applied_at TEXT NOT NULL);
         INSERT INTO schema_migrations VALUES (1, 'initial', '2026-01-01T00:00:00.000Z');
         INSERT INTO links (connection, jira_id, jira_key, external_id, shadow, version,
                            created_at, updated_at)
         VALUES ('c1', '10001', 'TEST-1', 'ext-1',
                 '{"summary|1":{"value":{"type":"text","value":"synced"},"source_ts":"2026-01-01T00:00:00Z","source":"jira"}}',
                 7, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');"#,
    )
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;

    let s = store::open(&url).await.unwrap();
    let mut link = s
        .link_by_item("c1", Side::Jira, "10001")
        .await
        .unwrap()
        .expect("the old link");
    assert_eq!(link.version, 7);
    assert!(link.pending.is_empty());
    let synced = link.shadow.get("summary|1").cloned().expect("its shadow");
    link.pending.set("summary|1", synced);
    link.version = 8;
    s.save_link(&link).await.unwrap();
    assert_eq!(
        s.link_by_item("c1", Side::External, "ext-1").await.unwrap(),
        Some(link)
    );
}

#[tokio::test]
async fn story_sqlite_in_memory() {
    story(store::open("sqlite::memory:").await.unwrap()).await;
}

#[tokio::test]
async fn story_postgres() {
    let Some(url) = postgres_url("story_postgres") else {
        return;
    };
    in_postgres(&url, "story", 1, |mut stores, _| async move {
        let store = stores.remove(0);
        assert_eq!(store.backend(), "postgres");
        story(store).await;
    })
    .await;
}

/// Direct access to the tables, to damage a row the way a bug or a hand edit might.
enum RawDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl RawDb {
    async fn set_payload(&self, id: i64, payload: &str) {
        let sql = "UPDATE events SET payload = $1 WHERE id = $2";
        let changed = match self {
            RawDb::Sqlite(pool) => sqlx::query(sql)
                .bind(payload)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            RawDb::Postgres(pool) => sqlx::query(sql)
                .bind(payload)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        };
        assert_eq!(changed.unwrap(), 1);
    }
}

/// A row that cannot be read is an error naming the event where it is read, and is taken
/// out of the queue where it is claimed, so it cannot stall the workers.
async fn poison_pill(store: Arc<dyn Store>, raw: RawDb) {
    let s = store.as_ref();
    let bad = s
        .enqueue(&event("pp", Side::Jira, "1", "pp-1"), t(0))
        .await
        .unwrap()
        .id();
    let good = s
        .enqueue(&event("pp", Side::Jira, "2", "pp-2"), t(0))
        .await
        .unwrap()
        .id();
    raw.set_payload(bad, "{\"broken\":").await;
    match s.get_event(bad).await {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains(&format!("event {bad}")), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        s.list_events(&EventFilter::default()).await,
        Err(StoreError::Corrupt(_))
    ));
    let claimed = s.claim_due("w", t(0), LEASE, 10).await.unwrap();
    assert_eq!(ids(&claimed), vec![good], "the readable event still flows");
    assert_eq!(
        s.queue_depth().await.unwrap(),
        vec![
            ("pp".to_string(), EventStatus::Dead, 1),
            ("pp".to_string(), EventStatus::Leased, 1),
        ]
    );
    assert!(s.claim_due("w", t(10), LEASE, 10).await.unwrap().is_empty());
    assert!(s.list_dead_letters(None, 10).await.unwrap().is_empty());
    // Once readable again (say, after an upgrade), an operator can bring it back.
    raw.set_payload(
        bad,
        &serde_json::to_string(&event("pp", Side::Jira, "1", "pp-1")).unwrap(),
    )
    .await;
    let quarantined = s.get_event(bad).await.unwrap().unwrap();
    assert_eq!(quarantined.status, EventStatus::Dead);
    assert!(
        quarantined
            .last_error
            .as_deref()
            .unwrap_or("")
            .starts_with("unreadable: event "),
        "{:?}",
        quarantined.last_error
    );
    assert_eq!(s.retry_dead(None, t(11)).await, Ok(1));
    assert_eq!(
        ids(&s.claim_due("w", t(11), LEASE, 10).await.unwrap()),
        vec![bad]
    );
}

#[tokio::test]
async fn poison_pill_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pp.db").display());
    let store = store::open(&url).await.unwrap();
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    poison_pill(store, RawDb::Sqlite(raw)).await;
}

#[tokio::test]
async fn poison_pill_postgres() {
    let Some(url) = postgres_url("poison_pill_postgres") else {
        return;
    };
    let raw_url = url.clone();
    in_postgres(&url, "pp", 1, |mut stores, schema| async move {
        let opts = raw_url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .unwrap()
            .options([("search_path", schema)]);
        let raw = sqlx::PgPool::connect_with(opts).await.unwrap();
        poison_pill(stores.remove(0), RawDb::Postgres(raw)).await;
    })
    .await;
}

#[tokio::test]
async fn open_refuses_unknown_urls() {
    for url in ["mysql://localhost/x", "tandem.sqlite3", ""] {
        assert!(
            matches!(store::open(url).await, Err(StoreError::InvalidUrl(_))),
            "{url}"
        );
    }
    match store::open("redis://user:hunter2@host/0").await {
        Err(StoreError::InvalidUrl(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
        _ => panic!("expected InvalidUrl"),
    }
}

/// Several claimers drain 200 events over 20 keys: each event is processed exactly once, no
/// two events of a key are ever in flight together, and each key's events run in order.
async fn concurrent_claims(stores: Vec<Arc<dyn Store>>) {
    const EVENTS: usize = 200;
    const KEYS: usize = 20;
    const WORKERS: usize = 4;
    let now = Utc::now();
    let mut id_to_seq = HashMap::new();
    for seq in 0..EVENTS {
        let item = format!("item-{}", seq % KEYS);
        let ev = event("conc", Side::External, &item, &format!("ev-{seq}"));
        let id = stores[0].enqueue(&ev, now).await.unwrap().id();
        id_to_seq.insert(id, seq);
    }
    let id_to_seq = Arc::new(id_to_seq);
    let processed: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let finished = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let store = stores[w % stores.len()].clone();
        let (id_to_seq, processed, in_flight, finished) = (
            id_to_seq.clone(),
            processed.clone(),
            in_flight.clone(),
            finished.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            while finished.load(Ordering::SeqCst) < EVENTS {
                let batch = store.claim_due(&owner, Utc::now(), LEASE, 5).await.unwrap();
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                for qe in batch {
                    let key = qe.event.item_id.clone();
                    assert!(
                        in_flight.lock().unwrap().insert(key.clone()),
                        "two events of {key} in flight at once"
                    );
                    processed
                        .lock()
                        .unwrap()
                        .push((key.clone(), id_to_seq[&qe.id]));
                    tokio::task::yield_now().await;
                    // Leave the in-flight set before completing: until the completion
                    // commits, the key stays blocked in the store anyway.
                    in_flight.lock().unwrap().remove(&key);
                    store
                        .complete(qe.id, &owner, Completion::done(), Utc::now())
                        .await
                        .unwrap();
                    finished.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let all = async {
        for task in tasks {
            task.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("claimers did not drain the queue in time");

    let processed = processed.lock().unwrap().clone();
    assert_eq!(
        processed.len(),
        EVENTS,
        "every event processed exactly once"
    );
    let unique: HashSet<usize> = processed.iter().map(|(_, seq)| *seq).collect();
    assert_eq!(unique.len(), EVENTS);
    let mut per_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for (key, seq) in &processed {
        per_key.entry(key).or_default().push(*seq);
    }
    assert_eq!(per_key.len(), KEYS);
    for (key, seqs) in per_key {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{key} processed out of order: {seqs:?}"
        );
    }
    let depth = stores[0].queue_depth().await.unwrap();
    assert_eq!(
        depth,
        vec![("conc".to_string(), EventStatus::Done, EVENTS as i64)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    concurrent_claims(vec![store::open(&url).await.unwrap()]).await;
}

/// Two handles on one file behave like two processes: only SQLite's own locking
/// (`BEGIN IMMEDIATE`, busy timeout) keeps them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_sqlite_two_handles() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c2.db").display());
    let a = store::open(&url).await.unwrap();
    let b = store::open(&url).await.unwrap();
    concurrent_claims(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_postgres() {
    let Some(url) = postgres_url("concurrent_claims_postgres") else {
        return;
    };
    // Two pools, as two `tandem serve` instances would have.
    in_postgres(&url, "conc", 2, |stores, _| concurrent_claims(stores)).await;
}

/// Many outcomes recorded at once, some refused: each refused one leaves nothing behind (its
/// event stays leased, no audit row), and the accepted ones are all kept. On SQLite the
/// writes of concurrent callers share transactions (group commit), so this is what shows
/// that one caller's failure midway is undone alone.
async fn concurrent_outcomes_fail_alone(store: Arc<dyn Store>) {
    const EVENTS: usize = 120;
    let now = Utc::now();
    let stored = Link {
        connection: "gc".into(),
        jira_id: "20001".into(),
        jira_key: Some("TEST-20001".into()),
        external_id: "ext-20001".into(),
        shadow: Default::default(),
        pending: Default::default(),
        version: 3,
    };
    assert_eq!(store.insert_link(&stored).await.unwrap(), Ok(()));
    let mut ids = Vec::new();
    for n in 0..EVENTS {
        let ev = event("gc", Side::Jira, &format!("item-{n}"), &format!("gc-{n}"));
        ids.push(store.enqueue(&ev, now).await.unwrap().id());
    }
    let claimed = store
        .claim_due("gc-worker", now, LEASE, EVENTS as u32)
        .await
        .unwrap();
    assert_eq!(claimed.len(), EVENTS);

    let mut answers = Vec::new();
    for (n, id) in ids.iter().copied().enumerate() {
        let store = store.clone();
        let mut completion = Completion::done();
        let mut row = audit(id, &format!("f{n}"), None, "written");
        row.connection = "gc".into();
        completion.audit.push(row);
        if n % 2 == 1 {
            // A stale version: refused after the event's own row was already updated.
            let mut stale = stored.clone();
            stale.version = 2;
            completion.link = Some(stale);
        }
        answers.push(tokio::spawn(async move {
            store.complete(id, "gc-worker", completion, now).await
        }));
    }
    for (n, answer) in answers.into_iter().enumerate() {
        let answer = answer.await.unwrap();
        if n % 2 == 1 {
            assert!(
                matches!(answer, Err(StoreError::Conflict(_))),
                "event {n}: {answer:?}"
            );
        } else {
            assert_eq!(answer, Ok(()), "event {n}");
        }
    }
    for (n, id) in ids.iter().enumerate() {
        let ev = store.get_event(*id).await.unwrap().unwrap();
        let expected = if n % 2 == 1 {
            EventStatus::Leased
        } else {
            EventStatus::Done
        };
        assert_eq!(ev.status, expected, "event {n}");
    }
    let audit_rows = store.list_audit(Some("gc"), 1000).await.unwrap();
    let mut fields: Vec<String> = audit_rows.into_iter().map(|a| a.field).collect();
    fields.sort();
    let mut expected: Vec<String> = (0..EVENTS).step_by(2).map(|n| format!("f{n}")).collect();
    expected.sort();
    assert_eq!(fields, expected, "audit rows of accepted outcomes only");
    let link = store.link_by_item("gc", Side::Jira, "20001").await.unwrap();
    assert_eq!(link, Some(stored), "the link is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_outcomes_fail_alone_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gc.db").display());
    concurrent_outcomes_fail_alone(store::open(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_outcomes_fail_alone_postgres() {
    let Some(url) = postgres_url("concurrent_outcomes_fail_alone_postgres") else {
        return;
    };
    in_postgres(&url, "gcfail", 1, |stores, _| {
        concurrent_outcomes_fail_alone(stores[0].clone())
    })
    .await;
}

/// An outcome that covers the item's later events (its worker read the item after they were
/// queued) settles exactly those: same item, side and ordering key, queued no later than the
/// read, not comments.
async fn a_fresh_read_settles_the_events_it_carried(store: Arc<dyn Store>) {
    let now = Utc::now();
    let key = "cov:link:30001";
    let queue = |item: &str, side: Side, idem: &str, kind: ChangeKind| {
        let mut ev = event("cov", side, item, idem);
        ev.kind = kind;
        ev
    };
    let mut queued = Vec::new();
    for ev in [
        queue("30001", Side::Jira, "cov-1", ChangeKind::Updated),
        queue("30001", Side::Jira, "cov-2", ChangeKind::Updated),
        queue("30001", Side::Jira, "cov-3", ChangeKind::Commented),
        queue("ext-30001", Side::External, "cov-4", ChangeKind::Updated),
        queue("30001", Side::Jira, "cov-5", ChangeKind::Updated),
    ] {
        queued.push(store.enqueue_with_key(&ev, key, now).await.unwrap().id());
    }
    // The worker's read happened after the first four were queued, before the fifth.
    let horizon = queued[3];
    let claimed = store.claim_due("cov-w", now, LEASE, 10).await.unwrap();
    assert_eq!(
        ids(&claimed),
        vec![queued[0]],
        "one event of the key at a time"
    );
    let late = queue("30001", Side::Jira, "cov-6", ChangeKind::Updated);
    let late = store.enqueue_with_key(&late, key, now).await.unwrap().id();
    assert_eq!(store.newest_event_id().await.unwrap(), late);
    store
        .complete(
            queued[0],
            "cov-w",
            Completion {
                covers_through: Some(horizon),
                ..Completion::done()
            },
            now,
        )
        .await
        .unwrap();
    let status = |id: i64| {
        let store = store.clone();
        async move { store.get_event(id).await.unwrap().unwrap() }
    };
    let carried = status(queued[1]).await;
    assert_eq!(carried.status, EventStatus::Done);
    assert!(
        carried
            .last_error
            .as_deref()
            .is_some_and(|n| n.contains(&format!("event {}", queued[0]))),
        "{:?}",
        carried.last_error
    );
    assert_eq!(
        status(queued[2]).await.status,
        EventStatus::Pending,
        "a comment"
    );
    assert_eq!(
        status(queued[3]).await.status,
        EventStatus::Pending,
        "the other side"
    );
    assert_eq!(
        status(queued[4]).await.status,
        EventStatus::Pending,
        "after the read"
    );
    assert_eq!(
        status(late).await.status,
        EventStatus::Pending,
        "after the read"
    );
    // What is left is claimed in order as usual.
    let next = store.claim_due("cov-w", now, LEASE, 10).await.unwrap();
    assert_eq!(ids(&next), vec![queued[2]]);
}

#[tokio::test]
async fn a_fresh_read_settles_the_events_it_carried_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cov.db").display());
    a_fresh_read_settles_the_events_it_carried(store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn a_fresh_read_settles_the_events_it_carried_postgres() {
    let Some(url) = postgres_url("a_fresh_read_settles_the_events_it_carried_postgres") else {
        return;
    };
    in_postgres(&url, "cov", 1, |stores, _| {
        a_fresh_read_settles_the_events_it_carried(stores[0].clone())
    })
    .await;
}

/// The leases of an owner whose heartbeat stopped (a killed process) come back at once; those
/// of a live owner, and of an owner that never wrote a heartbeat (an older version), stay.
async fn dead_owners_leases_come_back(store: Arc<dyn Store>) {
    let long = Duration::from_secs(600);
    for (item, owner) in [("1", "dead"), ("2", "alive"), ("3", "old-version")] {
        store
            .enqueue(&event("c1", Side::Jira, item, &format!("own-{item}")), t(0))
            .await
            .unwrap();
        let claimed = store.claim_due(owner, t(1), long, 1).await.unwrap();
        assert_eq!(claimed.len(), 1, "{owner} claims one event");
    }
    // Heartbeats are timed by the store's clock, so this part runs in real time: `dead`
    // beats once, `alive` keeps beating, and owners silent for a second count as dead.
    store.heartbeat("dead").await.unwrap();
    store.heartbeat("alive").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.heartbeat("alive").await.unwrap();
    let silent = Duration::from_secs(1);
    assert_eq!(store.release_dead_owners(silent).await.unwrap(), 1);
    let taken = store.claim_due("new", t(10), LEASE, 10).await.unwrap();
    assert_eq!(
        taken
            .iter()
            .map(|e| e.event.item_id.as_str())
            .collect::<Vec<_>>(),
        vec!["1"],
        "only the dead owner's event is free again, long before its lease ends"
    );
    // Forgotten once released; a graceful stop forgets its own heartbeat too.
    assert_eq!(store.release_dead_owners(silent).await.unwrap(), 0);
    assert_eq!(store.release_leases("alive").await.unwrap(), 1);
    store.heartbeat("new").await.unwrap();
    assert_eq!(
        store
            .release_dead_owners(Duration::from_secs(3600))
            .await
            .unwrap(),
        0,
        "nobody is silent for an hour"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        store.release_dead_owners(silent).await.unwrap(),
        1,
        "new's lease"
    );
}

#[tokio::test]
async fn dead_owners_leases_come_back_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("owners.db").display());
    dead_owners_leases_come_back(store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn dead_owners_leases_come_back_postgres() {
    let Some(url) = postgres_url("dead_owners_leases_come_back_postgres") else {
        return;
    };
    in_postgres(&url, "own", 1, |stores, _| {
        dead_owners_leases_come_back(stores[0].clone())
    })
    .await;
}

/// An unreadable create: its record says so and is listed for the target side, the side's
/// circuit opens (shared by every instance on the store), a changed configuration closes it,
/// an operator's reset also lets go of the held items, and linking the twin forgets it.
async fn unreadable_creates_open_a_circuit(store: Arc<dyn Store>) {
    let mut values = Shadow::default();
    values.set(
        "summary<->1001",
        ShadowEntry {
            value: FieldValue::Text("Printer".into()),
            source_ts: t(0),
            source: Side::Jira,
            written: None,
        },
    );
    for item in ["10001", "10002"] {
        store
            .record_create("c1", Side::Jira, item, &values, t(1))
            .await
            .unwrap();
    }
    store
        .create_unreadable("c1", Side::Jira, "10001", "no id at /idd", "cfg-a", t(2))
        .await
        .unwrap();
    store
        .create_unreadable("c1", Side::Jira, "10002", "later reason", "cfg-a", t(3))
        .await
        .unwrap();
    let into = store
        .recorded_creates_into("c1", Side::External)
        .await
        .unwrap();
    assert_eq!(into.len(), 2);
    assert_eq!(into[0].values, values);
    assert_eq!(into[0].unreadable.as_deref(), Some("no id at /idd"));
    assert!(
        store
            .recorded_creates_into("c1", Side::Jira)
            .await
            .unwrap()
            .is_empty()
    );
    let open = store.create_circuits().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].side, open[0].reason.as_str(), open[0].opened_at),
        (Side::External, "no id at /idd", t(2)),
        "the first reason stays"
    );
    // The same configuration keeps it open; another one closes it, keeping the marks.
    assert_eq!(
        store
            .close_create_circuits(Some("c1"), Some(Side::External), Some("cfg-a"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .close_create_circuits(Some("c1"), Some(Side::External), Some("cfg-b"))
            .await
            .unwrap(),
        1
    );
    let into = store
        .recorded_creates_into("c1", Side::External)
        .await
        .unwrap();
    assert!(into.iter().all(|r| r.unreadable.is_some()));
    // An operator's reset lets the held items go.
    store
        .create_unreadable("c1", Side::Jira, "10001", "again", "cfg-b", t(4))
        .await
        .unwrap();
    assert_eq!(
        store.close_create_circuits(None, None, None).await.unwrap(),
        1
    );
    let into = store
        .recorded_creates_into("c1", Side::External)
        .await
        .unwrap();
    assert!(into.iter().all(|r| r.unreadable.is_none()), "{into:?}");
    // Linking the twin forgets the record.
    let link = Link {
        connection: "c1".into(),
        jira_id: "10001".into(),
        jira_key: None,
        external_id: "41".into(),
        shadow: values.clone(),
        pending: Shadow::default(),
        version: 0,
    };
    store.insert_link(&link).await.unwrap().unwrap();
    let into = store
        .recorded_creates_into("c1", Side::External)
        .await
        .unwrap();
    assert_eq!(
        into.iter().map(|r| r.item_id.as_str()).collect::<Vec<_>>(),
        vec!["10002"]
    );
}

#[tokio::test]
async fn unreadable_creates_open_a_circuit_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("circuits.db").display());
    unreadable_creates_open_a_circuit(store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn unreadable_creates_open_a_circuit_postgres() {
    let Some(url) = postgres_url("unreadable_creates_open_a_circuit_postgres") else {
        return;
    };
    in_postgres(&url, "circ", 1, |stores, _| {
        unreadable_creates_open_a_circuit(stores[0].clone())
    })
    .await;
}

/// Comment threads and comment links, against any backend: the thread's baseline is set by
/// the first look and kept after; a pending link is stored before its twin exists, completed
/// with the twin's id, refused when it would link a comment twice, and forgotten.
async fn comment_story(s: Arc<dyn Store>) {
    use tandem_core::comment::{CommentLink, CommentLinkState};
    let (since, links) = s
        .comment_thread("c", "10001", "EXT-1", t(100))
        .await
        .unwrap();
    assert_eq!((since, links.len()), (t(100), 0));
    let (since, _) = s
        .comment_thread("c", "10001", "EXT-1", t(500))
        .await
        .unwrap();
    assert_eq!(since, t(100), "the first look sets the baseline for good");

    let mut pending = CommentLink {
        id: 0,
        origin: Side::Jira,
        jira_id: Some("30001".into()),
        external_id: None,
        shadow: "Can you reproduce?".into(),
        state: CommentLinkState::Pending,
    };
    pending.id = s
        .save_comment_link("c", "10001", "EXT-1", &pending, t(101))
        .await
        .unwrap();
    assert!(pending.id > 0);
    let (_, links) = s
        .comment_thread("c", "10001", "EXT-1", t(102))
        .await
        .unwrap();
    assert_eq!(links, vec![pending.clone()]);

    let mut linked = pending.clone();
    linked.external_id = Some("c-7".into());
    linked.state = CommentLinkState::Linked;
    assert_eq!(
        s.save_comment_link("c", "10001", "EXT-1", &linked, t(103))
            .await
            .unwrap(),
        pending.id
    );
    // The same Jira comment linked a second time: refused, nothing written.
    let twice = CommentLink {
        id: 0,
        external_id: Some("c-8".into()),
        ..linked.clone()
    };
    assert!(matches!(
        s.save_comment_link("c", "10001", "EXT-1", &twice, t(104))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Another pair's thread is its own; another connection may use the same comment ids.
    assert!(
        s.comment_thread("c", "10002", "EXT-2", t(105))
            .await
            .unwrap()
            .1
            .is_empty()
    );
    s.save_comment_link("other", "10001", "EXT-1", &twice, t(105))
        .await
        .unwrap();
    let (_, links) = s
        .comment_thread("c", "10001", "EXT-1", t(106))
        .await
        .unwrap();
    assert_eq!(links, vec![linked]);
    s.delete_comment_link(pending.id).await.unwrap();
    assert!(
        s.comment_thread("c", "10001", "EXT-1", t(107))
            .await
            .unwrap()
            .1
            .is_empty()
    );
}

#[tokio::test]
async fn comment_story_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("comments.db").display());
    comment_story(store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn comment_story_postgres() {
    let Some(url) = postgres_url("comment_story_postgres") else {
        return;
    };
    in_postgres(&url, "comments", 1, |mut stores, _| async move {
        comment_story(stores.remove(0)).await;
    })
    .await;
}

/// The host's clock set back an hour, then forward two: every wait the queue holds lasts as
/// long in real time as it was meant to; a write made on the new clock before the jump was
/// noticed is not moved again; another instance's lease is left alone.
async fn clock_jump_story(s: Arc<dyn Store>) {
    let s = &*s;
    let mut id = Vec::new();
    for item in ["1", "2", "3", "4"] {
        let e = s
            .enqueue(&event("c1", Side::Jira, item, &format!("k-{item}")), t(0))
            .await
            .unwrap();
        id.push(e.id());
    }
    let (e1, e2, e3, e4) = (id[0], id[1], id[2], id[3]);
    let claimed = s.claim_due("w", t(1), LEASE, 3).await.unwrap();
    assert_eq!(ids(&claimed), vec![e1, e2, e3]);
    assert_eq!(
        ids(&s.claim_due("v", t(1), LEASE, 1).await.unwrap()),
        vec![e4]
    );
    // e1 waits five minutes, e2 ten seconds; e3 stays leased by w (until 31), e4 by v.
    s.retry_later(e1, "w", t(301), "HTTP 429", t(1))
        .await
        .unwrap();
    s.retry_later(e2, "w", t(11), "HTTP 503", t(1))
        .await
        .unwrap();

    // At real second 2 the clock is set back an hour.
    let back = TimeDelta::hours(-1);
    let h = |secs: i64| t(secs) + back;
    let moved = s.shift_schedule("w", back, h(2)).await.unwrap();
    assert_eq!(
        moved, 2,
        "the two retries; leases are renewed on the new clock instead"
    );
    assert!(s.claim_due("x", h(10), LEASE, 4).await.unwrap().is_empty());
    assert_eq!(
        ids(&s.claim_due("x", h(11), LEASE, 4).await.unwrap()),
        vec![e2],
        "the ten-second retry is due ten seconds after it was scheduled, not an hour later"
    );
    s.retry_later(e2, "x", h(410), "HTTP 503", h(11))
        .await
        .unwrap();
    // w renews its lease on the new clock, as its worker does every third of the lease.
    assert!(s.extend_lease(e3, "w", h(20), LEASE).await.unwrap());
    assert!(s.claim_due("x", h(49), LEASE, 4).await.unwrap().is_empty());
    assert_eq!(
        ids(&s.claim_due("x", h(50), LEASE, 4).await.unwrap()),
        vec![e3]
    );
    s.complete(e3, "x", Completion::done(), h(50))
        .await
        .unwrap();
    s.complete(e4, "v", Completion::done(), h(50))
        .await
        .unwrap();
    let e5 = s
        .enqueue(&event("c1", Side::Jira, "5", "k-5"), h(300))
        .await
        .unwrap()
        .id();
    assert_eq!(
        ids(&s.claim_due("x", h(301), LEASE, 4).await.unwrap()),
        vec![e1, e5],
        "the five-minute retry keeps its five minutes"
    );

    // At (new) 319 the clock jumps two hours forward, and x retries e5 by the new clock
    // before the jump is noticed at 320. x's lease on e1 (to 331) and e2's retry (at 410)
    // keep their real length; e5's retry, already on the new clock, stays as written.
    let fwd = TimeDelta::hours(2);
    let f = |secs: i64| h(secs) + fwd;
    s.retry_later(e5, "x", f(325), "HTTP 503", f(319))
        .await
        .unwrap();
    assert_eq!(s.shift_schedule("x", fwd, f(320)).await.unwrap(), 2);
    assert!(
        s.claim_due("z", f(324), LEASE, 4).await.unwrap().is_empty(),
        "x's lease is not taken from it by the jump"
    );
    assert_eq!(
        ids(&s.claim_due("z", f(325), LEASE, 4).await.unwrap()),
        vec![e5]
    );
    assert_eq!(
        ids(&s.claim_due("z", f(331), LEASE, 4).await.unwrap()),
        vec![e1]
    );
    for e in [e5, e1] {
        s.complete(e, "z", Completion::done(), f(331))
            .await
            .unwrap();
    }
    assert!(s.claim_due("z", f(409), LEASE, 4).await.unwrap().is_empty());
    assert_eq!(
        ids(&s.claim_due("z", f(410), LEASE, 4).await.unwrap()),
        vec![e2]
    );
}

#[tokio::test]
async fn clock_jump_story_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("clock.db").display());
    clock_jump_story(store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn clock_jump_story_postgres() {
    let Some(url) = postgres_url("clock_jump_story_postgres") else {
        return;
    };
    in_postgres(&url, "clock", 1, |mut stores, _| async move {
        clock_jump_story(stores.remove(0)).await;
    })
    .await;
}

/// A comment reconcile carries the comment events of its pair queued before its listing
/// (from either side, under the pair's key), and nothing else: not an edit of the item, not
/// another pair's comments, not one queued after the listing began.
async fn comment_reconcile_story(s: Arc<dyn Store>) {
    let s = &*s;
    let commented = |source: Side, item: &str, key: &str| {
        let mut e = event("c1", source, item, key);
        e.kind = ChangeKind::Commented;
        e.fields.clear();
        e
    };
    let pair = "link:c1:10001";
    let first = s
        .enqueue_with_key(&commented(Side::Jira, "10001", "c-1"), pair, t(0))
        .await
        .unwrap()
        .id();
    assert_eq!(
        ids(&s.claim_due("w", t(1), LEASE, 1).await.unwrap()),
        vec![first]
    );
    let later_jira = s
        .enqueue_with_key(&commented(Side::Jira, "10001", "c-2"), pair, t(2))
        .await
        .unwrap()
        .id();
    let edit = s
        .enqueue_with_key(&event("c1", Side::Jira, "10001", "u-3"), pair, t(2))
        .await
        .unwrap()
        .id();
    let later_external = s
        .enqueue_with_key(&commented(Side::External, "7", "c-4"), pair, t(2))
        .await
        .unwrap()
        .id();
    let other_pair = s
        .enqueue_with_key(
            &commented(Side::Jira, "10002", "c-5"),
            "link:c1:10002",
            t(2),
        )
        .await
        .unwrap()
        .id();
    // The listing starts here.
    let through = s.newest_event_id().await.unwrap();
    let after_listing = s
        .enqueue_with_key(&commented(Side::Jira, "10001", "c-6"), pair, t(3))
        .await
        .unwrap()
        .id();
    s.complete(first, "w", Completion::done(), t(4))
        .await
        .unwrap();
    assert_eq!(
        s.settle_comment_reconciles(first, through, t(4))
            .await
            .unwrap(),
        2
    );
    let status = |id: i64| async move { s.get_event(id).await.unwrap().unwrap().status };
    for (id, want) in [
        (later_jira, EventStatus::Done),
        (later_external, EventStatus::Done),
        (edit, EventStatus::Pending),
        (other_pair, EventStatus::Pending),
        (after_listing, EventStatus::Pending),
    ] {
        assert_eq!(status(id).await, want, "event {id}");
    }
}

#[tokio::test]
async fn comment_reconcile_story_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("comments.db").display());
    comment_reconcile_story(store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn comment_reconcile_story_postgres() {
    let Some(url) = postgres_url("comment_reconcile_story_postgres") else {
        return;
    };
    in_postgres(&url, "creconcile", 1, |mut stores, _| async move {
        comment_reconcile_story(stores.remove(0)).await;
    })
    .await;
}

/// A claim passes over the connections named as holding their share of the slots.
async fn claim_except_story(s: Arc<dyn Store>) {
    let s = &*s;
    let a1 = s
        .enqueue(&event("a", Side::Jira, "1", "a-1"), t(0))
        .await
        .unwrap()
        .id();
    let b1 = s
        .enqueue(&event("b", Side::Jira, "1", "b-1"), t(0))
        .await
        .unwrap()
        .id();
    let a2 = s
        .enqueue(&event("a", Side::Jira, "2", "a-2"), t(0))
        .await
        .unwrap()
        .id();
    let b_dash = s
        .enqueue(&event("b-a", Side::Jira, "1", "ba-1"), t(0))
        .await
        .unwrap()
        .id();
    let except = ["a".to_string()];
    assert_eq!(
        ids(&s
            .claim_due_except("w", t(1), LEASE, 10, &except)
            .await
            .unwrap()),
        vec![b1, b_dash],
        "a's events wait; a name containing `a` is not `a`"
    );
    assert_eq!(
        ids(&s.claim_due_except("w", t(1), LEASE, 10, &[]).await.unwrap()),
        vec![a1, a2]
    );
}

#[tokio::test]
async fn claim_except_story_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("except.db").display());
    claim_except_story(store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn claim_except_story_postgres() {
    let Some(url) = postgres_url("claim_except_story_postgres") else {
        return;
    };
    in_postgres(&url, "except", 1, |mut stores, _| async move {
        claim_except_story(stores.remove(0)).await;
    })
    .await;
}

/// Attachment links, against any backend: a pending link is stored before the upload,
/// completed with the twin's id, refused when it would link a file twice, kept per pair and
/// connection, turned into a skip, and forgotten.
async fn attachment_story(s: Arc<dyn Store>) {
    use tandem_core::attachment::{AttachmentLink, AttachmentLinkState};
    assert!(s.attachment_links("c", "10001").await.unwrap().is_empty());
    let mut pending = AttachmentLink {
        id: 0,
        origin: Side::Jira,
        jira_id: Some("40001".into()),
        external_id: None,
        sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        filename: "screenshot.png".into(),
        // Over 4 GiB: sizes are 64-bit on both backends.
        size: 5_000_000_000,
        state: AttachmentLinkState::Pending,
    };
    pending.id = s
        .save_attachment_link("c", "10001", "EXT-1", &pending, t(101))
        .await
        .unwrap();
    assert!(pending.id > 0);
    assert_eq!(
        s.attachment_links("c", "10001").await.unwrap(),
        vec![pending.clone()]
    );
    let mut linked = pending.clone();
    linked.external_id = Some("a-7".into());
    linked.state = AttachmentLinkState::Linked;
    assert_eq!(
        s.save_attachment_link("c", "10001", "EXT-1", &linked, t(102))
            .await
            .unwrap(),
        pending.id
    );
    // The same Jira attachment linked a second time: refused.
    let twice = AttachmentLink {
        id: 0,
        external_id: Some("a-8".into()),
        ..linked.clone()
    };
    assert!(matches!(
        s.save_attachment_link("c", "10001", "EXT-1", &twice, t(103))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Another connection may use the same ids; another pair has its own links.
    s.save_attachment_link("other", "10001", "EXT-1", &twice, t(104))
        .await
        .unwrap();
    assert!(s.attachment_links("c", "10002").await.unwrap().is_empty());
    // A skip is remembered with no hash.
    let skipped = AttachmentLink {
        id: 0,
        origin: Side::External,
        jira_id: None,
        external_id: Some("a-9".into()),
        sha256: String::new(),
        filename: "huge.iso".into(),
        size: 1 << 40,
        state: AttachmentLinkState::Skipped,
    };
    let skipped_id = s
        .save_attachment_link("c", "10001", "EXT-1", &skipped, t(105))
        .await
        .unwrap();
    let links = s.attachment_links("c", "10001").await.unwrap();
    assert_eq!(
        links,
        vec![
            linked,
            AttachmentLink {
                id: skipped_id,
                ..skipped
            }
        ]
    );
    s.delete_attachment_link(pending.id).await.unwrap();
    s.delete_attachment_link(skipped_id).await.unwrap();
    assert!(s.attachment_links("c", "10001").await.unwrap().is_empty());
}

#[tokio::test]
async fn attachment_story_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("attachments.db").display());
    attachment_story(store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn attachment_story_postgres() {
    let Some(url) = postgres_url("attachment_story_postgres") else {
        return;
    };
    in_postgres(&url, "attachments", 1, |mut stores, _| async move {
        attachment_story(stores.remove(0)).await;
    })
    .await;
}
