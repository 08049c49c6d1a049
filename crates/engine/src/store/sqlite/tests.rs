//! Tests of the SQLite store alone: timestamps as text, numbered parameters, opening a
//! database made by an earlier schema, and an ignored measurement of its cost per event.

use super::*;

#[test]
fn timestamps_sort_as_text() {
    let a = DateTime::parse_from_rfc3339("2025-01-31T09:00:00.5Z")
        .unwrap()
        .with_timezone(&Utc);
    let b = a + chrono::TimeDelta::milliseconds(600);
    assert_eq!(ts(a), "2025-01-31T09:00:00.500Z");
    assert!(ts(a) < ts(b));
    assert_eq!(parse_ts("t", &ts(a)).unwrap(), a);
    assert!(matches!(
        parse_ts("t", "yesterday"),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn url_forms() {
    assert!(connect_options("sqlite::memory:").unwrap().1);
    let (o, mem) = connect_options("sqlite://data/x.db").unwrap();
    assert!(!mem);
    assert_eq!(o.get_filename(), Path::new("data/x.db"));
    let (o, _) = connect_options("sqlite:/tmp/y.db").unwrap();
    assert_eq!(o.get_filename(), Path::new("/tmp/y.db"));
    let (o, _) = connect_options("z.db").unwrap();
    assert_eq!(o.get_filename(), Path::new("z.db"));
    assert!(matches!(
        connect_options("sqlite://"),
        Err(StoreError::InvalidUrl(_))
    ));
}

/// A database made before `events_open` existed (schema 6, with events queued on it)
/// opens, gains the index and hands out the same heads: per key the oldest unfinished event,
/// in id order, the next one only once it finishes.
#[tokio::test]
async fn a_schema_6_database_opens_and_claims_as_before() {
    use sqlx::Connection;
    use tandem_core::{ChangeKind, EventOrigin};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let url = format!("sqlite://{}", path.display());
    let now = Utc::now();
    {
        let mut conn = SqliteConnection::connect_with(
            &SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        let mut tx = conn.begin().await.unwrap();
        let mut m = SqliteMigrator {
            conn: &mut tx,
            applied_at: ts(now),
        };
        let before_index = &migrate::SQLITE[..6];
        assert_eq!(before_index.last().unwrap().version, 6);
        migrate::migrate(&mut m, before_index).await.unwrap();
        // Queued as that version queued them: a backlog of two on item 1, one on item 2.
        for (n, item) in [(1, "1"), (2, "2"), (3, "1")] {
            let ev = ChangeEvent {
                connection: "c".into(),
                source: Side::Jira,
                item_id: item.into(),
                item_key: None,
                kind: ChangeKind::Updated,
                fields: Default::default(),
                needs_fetch: false,
                source_ts: now,
                idempotency_key: format!("k{n}"),
                origin: EventOrigin::Webhook,
                comment: None,
            };
            sqlx::query(sql::ENQUEUE)
                .bind("c")
                .bind(&ev.idempotency_key)
                .bind(ev.ordering_key())
                .bind("jira")
                .bind(item)
                .bind(to_json("change event", &ev).unwrap())
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }

    let store = SqliteStore::open(&url).await.unwrap();
    let version: i64 = sqlx::query_scalar(migrate::CURRENT_VERSION)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(version, migrate::SQLITE.last().unwrap().version);
    let lease = Duration::from_secs(60);
    let ids = |evs: Vec<QueuedEvent>| evs.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let first = store.claim_due("w", now, lease, 10).await.unwrap();
    assert_eq!(ids(first), vec![1, 2]);
    assert!(
        store
            .claim_due("w", now, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .complete(1, "w", Completion::done(), now)
        .await
        .unwrap();
    assert_eq!(
        ids(store.claim_due("w", now, lease, 10).await.unwrap()),
        vec![3]
    );
}

/// What the store alone costs per event, on a file with fsync on: enqueue N distinct items,
/// then claim and complete all of them, then the same again with every completion settling
/// the events a fresh read carried (the worker's path for webhooks that only name the
/// item). Prints µs per event, median of 3. A measurement, not a test: run with
/// `cargo test --release -p tandem-engine store_cost -- --ignored --nocapture`
/// (`TANDEM_STORE_COST_N` sets N, 20,000 by default; `TANDEM_STORE_COST_CARRIED_N` the
/// carried round's, 2,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn store_cost() {
    use std::time::Instant;
    use tandem_core::{ChangeKind, EventOrigin, FieldValue};

    let n: usize = std::env::var("TANDEM_STORE_COST_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    // The carried round is smaller: each of its completions settles over the id range of
    // everything queued after it, which here is the whole rest of the round, where in
    // service it is what arrived during one read.
    let carried_n: usize = std::env::var("TANDEM_STORE_COST_CARRIED_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let event = |round: usize, i: usize| ChangeEvent {
        connection: "c".to_string(),
        source: Side::Jira,
        item_id: format!("{i}"),
        item_key: Some(format!("TEST-{i}")),
        kind: ChangeKind::Updated,
        fields: [("summary".to_string(), FieldValue::Text(format!("item {i}")))]
            .into_iter()
            .collect(),
        needs_fetch: true,
        source_ts: Utc::now(),
        idempotency_key: format!("{round}-{i}"),
        origin: EventOrigin::Webhook,
        comment: None,
    };
    let mut enqueue = Vec::new();
    let mut plain = Vec::new();
    let mut carried = Vec::new();
    for run in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("cost.db").display());
        let store = Arc::new(SqliteStore::open(&url).await.unwrap());
        for (round, settle, n) in [(0, false, n), (1, true, carried_n)] {
            let started = Instant::now();
            // Several at once, as receivers do, so group commit is measured as it runs.
            let mut tasks = tokio::task::JoinSet::new();
            for chunk in 0..8 {
                let evs: Vec<ChangeEvent> =
                    (chunk..n).step_by(8).map(|i| event(round, i)).collect();
                let s = Arc::clone(&store);
                tasks.spawn(async move {
                    for ev in &evs {
                        s.enqueue(ev, Utc::now()).await.unwrap();
                    }
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.unwrap();
            }
            if !settle {
                enqueue.push(started.elapsed().as_secs_f64() * 1e6 / n as f64);
            }
            let started = Instant::now();
            let mut finished = 0;
            while finished < n {
                let claimed = store
                    .claim_due("cost", Utc::now(), Duration::from_secs(60), 32)
                    .await
                    .unwrap();
                assert!(
                    !claimed.is_empty(),
                    "the queue ran dry at {finished} of {n}"
                );
                for ev in claimed {
                    let mut c = Completion::done();
                    if settle {
                        c.covers_through = Some(store.newest_event_id().await.unwrap());
                    }
                    store.complete(ev.id, "cost", c, Utc::now()).await.unwrap();
                    finished += 1;
                }
            }
            let per = started.elapsed().as_secs_f64() * 1e6 / n as f64;
            if settle {
                carried.push(per)
            } else {
                plain.push(per)
            }
        }
        eprintln!(
            "run {run}: enqueue {:.0} µs, claim+complete {:.0} µs, with carried {:.0} µs",
            enqueue[run], plain[run], carried[run]
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    eprintln!(
        "store cost, N={n} (carried {carried_n}), median of 3, µs per event: enqueue {:.0}, \
         claim+complete {:.0}, claim+complete settling carried {:.0}",
        median(&mut enqueue),
        median(&mut plain),
        median(&mut carried)
    );
}
