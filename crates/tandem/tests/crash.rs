//! Crash safety (DESIGN §2 invariants 1, 2 and 4): `tandem serve` as a child process with an
//! SQLite store, a stream of edits on both sides, and SIGKILL at random moments, each followed
//! by a restart on the same store. The sandboxes keep retrying webhooks that got no answer
//! (as Jira does) and the poller catches the rest. At the end every edit is on the other side,
//! no twin was created twice, no value was written twice, and both sides are equal. Every
//! 50th edit also attaches a small file to a random pair on a random side: each is on both
//! items of its pair exactly once at the end, byte-identical (SHA-256 compared).
//!
//! CI runs 1,000 edits and 3 kills; `TANDEM_SOAK=1` runs 10,000 and 10 kills
//! (`TANDEM_CRASH_EDITS` / `TANDEM_CRASH_KILLS` set them exactly).

mod reliability;

use rand::Rng;
use reliability::*;
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    init_logging();
    let total_edits = env_num("TANDEM_CRASH_EDITS", if soak() { 10_000 } else { 1_000 });
    let kills = env_num("TANDEM_CRASH_KILLS", if soak() { 10 } else { 3 });
    let (jira, external) = sandboxes().await;
    let proxy = Proxy::start(1).await;
    let dir = keep_if_asked(tempfile::tempdir().unwrap());
    if std::env::var("TANDEM_TEST_KEEP").is_ok() {
        eprintln!("instance logs in {}", dir.path().display());
    }
    let db = dir.path().join("tandem.db");
    let config = write_config(
        dir.path(),
        &format!("sqlite://{}", db.display()),
        &jira,
        &external,
        // A short lease: the events a killed instance held come back soon after a restart.
        "concurrency = 4\nlease_seconds = 2\nbackoff_base_ms = 50\nbackoff_cap_ms = 1000\nmax_attempts = 30",
        "poll_interval = \"2s\"",
    );
    let log = dir.path().join("tandem.log");
    let mut instance = Instance::start(&config, log.clone());
    proxy.set(0, Some(instance.url.clone()));
    point_webhooks_at(&proxy, &jira, &external);

    // Kill points spread at random over the stream (never the same one twice).
    let mut kill_at: Vec<usize> = {
        let mut rng = rand::rng();
        let mut points: Vec<usize> = (0..kills)
            .map(|_| rng.random_range(1..total_edits.max(2)))
            .collect();
        points.sort_unstable();
        points.dedup();
        points
    };
    let mut crashes = 0;
    let mut load = Load::new();
    for i in 0..12usize {
        load.create(&jira, &external, i.is_multiple_of(2));
    }
    let mut attempts = 0;
    let mut files: Vec<AttachedFile> = Vec::new();
    while load.edits < total_edits && attempts < total_edits * 20 {
        attempts += 1;
        if load.edit(&jira, &external) {
            if load.edits.is_multiple_of(40) {
                load.create(&jira, &external, load.edits.is_multiple_of(80));
            }
            if load.edits.is_multiple_of(50) {
                attach_one(&jira, &external, &load, &mut files);
            }
            if kill_at.first().is_some_and(|k| load.edits >= *k) {
                kill_at.remove(0);
                assert!(instance.alive(), "tandem serve died on its own");
                instance.kill();
                proxy.set(0, None);
                crashes += 1;
                // Users keep working while it is down; deliveries fail and are retried.
                let down = rand::rng().random_range(50..400);
                for _ in 0..down / 10 {
                    load.edit(&jira, &external);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                instance = Instance::start(&config, log.clone());
                proxy.set(0, Some(instance.url.clone()));
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(
        crashes,
        kills.min(total_edits),
        "every planned kill happened"
    );

    let store = tandem::store::open(&format!("sqlite://{}", db.display()))
        .await
        .expect("open the store read-side");
    let w = assert_converged_and_clean(&jira, &external, &load, store.as_ref()).await;
    let left = converge(Duration::from_secs(60), || {
        file_problems(&jira, &external, &files)
    })
    .await;
    assert!(left.is_empty(), "files not in step:\n{}", left.join("\n"));
    assert!(instance.alive(), "tandem serve died on its own");
    eprintln!(
        "{}",
        summary(
            "crash",
            &load,
            &w,
            &HashMap::from([("sigkills", crashes), ("files", files.len())])
        )
    );
}

/// A killed instance cannot give its leases back; the restarted one must not wait for them to
/// expire (`lease_seconds` is a minute by default, ten here). The instance is killed while an
/// event is leased and stuck in a slow Jira read; after the restart the event is taken over
/// once the dead instance's heartbeat is old, and the twin appears, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instances_leases_come_back_without_waiting_for_them() {
    init_logging();
    let (jira, external) = sandboxes().await;
    let proxy = Proxy::start(1).await;
    let dir = keep_if_asked(tempfile::tempdir().unwrap());
    let url = format!("sqlite://{}", dir.path().join("tandem.db").display());
    let config = write_config(
        dir.path(),
        &url,
        &jira,
        &external,
        "lease_seconds = 600\nrequest_timeout_ms = 20000",
        "",
    );
    let log = dir.path().join("tandem.log");
    let mut instance = Instance::start(&config, log.clone());
    proxy.set(0, Some(instance.url.clone()));
    point_webhooks_at(&proxy, &jira, &external);
    // Every Jira call now takes long: the worker reading the new issue holds its lease.
    jira.faults().set_latency(Duration::from_secs(4));
    let mut load = Load::new();
    load.create(&jira, &external, true);
    // The delivery is claimed at once and the worker's read of the issue takes 4 s: at
    // 1.5 s the event is leased and in flight. (The store is not opened here to look: that
    // would migrate it, and the same test must run against an older build.)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    instance.kill();
    jira.faults().set_latency(Duration::ZERO);
    let restarted = Instance::start(&config, log.clone());
    proxy.set(0, Some(restarted.url.clone()));
    // Far less than the ten-minute lease, far more than the few seconds the takeover takes.
    let left = converge(Duration::from_secs(60), || {
        problems(&jira, &external, &load)
    })
    .await;
    assert!(
        left.is_empty(),
        "the killed instance's event was not taken over:\n{}",
        left.join("\n")
    );
    let w = writes(&jira, &external);
    assert_eq!(w.creates_external, 1, "one twin created");
}

/// How long the last pairs take to converge after the load ends, with SIGKILLs during the load
/// and the default `[worker]` settings (lease, backoff): 20 pairs, 400 edits at 10 a second,
/// 8 SIGKILLs each followed by a restart, `poll_interval = "2s"`. Prints the time from the
/// last edit to the moment every field on both sides holds its last edit; it asserts only
/// what the crash test asserts (nothing lost or duplicated), never a time.
///
/// `cargo test -p tandem --test crash -- --ignored --nocapture convergence_after_sigkills`
/// (`TANDEM_CONVERGE_PAIRS`, `TANDEM_CONVERGE_EDITS`, `TANDEM_CONVERGE_KILLS` change the sizes,
/// `TANDEM_CONVERGE_LATENCY_MS` the sandboxes' answer time, 100 ms by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it on its own with --ignored --nocapture"]
async fn convergence_after_sigkills_is_measured() {
    init_logging();
    let pairs = env_num("TANDEM_CONVERGE_PAIRS", 20);
    let total_edits = env_num("TANDEM_CONVERGE_EDITS", 400);
    let kills = env_num("TANDEM_CONVERGE_KILLS", 8);
    // Real systems answer in tens to hundreds of milliseconds (the tracker this was first seen
    // on took 0.1–0.4 s per edit), so a kill finds events in flight.
    let latency = Duration::from_millis(env_num("TANDEM_CONVERGE_LATENCY_MS", 100) as u64);
    let (jira, external) = sandboxes().await;
    jira.faults().set_latency(latency);
    external.faults().set_latency(latency);
    let proxy = Proxy::start(1).await;
    let dir = keep_if_asked(tempfile::tempdir().unwrap());
    let db = dir.path().join("tandem.db");
    // The default worker settings: what a user runs.
    let config = write_config(
        dir.path(),
        &format!("sqlite://{}", db.display()),
        &jira,
        &external,
        "",
        "poll_interval = \"2s\"",
    );
    let log = dir.path().join("tandem.log");
    let mut instance = Instance::start(&config, log.clone());
    proxy.set(0, Some(instance.url.clone()));
    point_webhooks_at(&proxy, &jira, &external);
    let mut load = Load::new();
    for i in 0..pairs {
        load.create(&jira, &external, i.is_multiple_of(2));
    }
    // Kills spread evenly over the stream of edits.
    let every = (total_edits / kills.max(1)).max(1);
    let mut kill_at: Vec<usize> = (0..kills).map(|k| every / 2 + k * every).collect();
    let mut crashes = 0;
    let mut attempts = 0;
    while load.edits < total_edits && attempts < total_edits * 50 {
        attempts += 1;
        if !load.edit(&jira, &external) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        if kill_at.first().is_some_and(|k| load.edits >= *k) {
            kill_at.remove(0);
            assert!(instance.alive(), "tandem serve died on its own");
            instance.kill();
            proxy.set(0, None);
            crashes += 1;
            let down = rand::rng().random_range(50..400);
            tokio::time::sleep(Duration::from_millis(down)).await;
            instance = Instance::start(&config, log.clone());
            proxy.set(0, Some(instance.url.clone()));
        }
        // 10 edits a second.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let load_ended = std::time::Instant::now();
    let left = converge(Duration::from_secs(180), || {
        problems(&jira, &external, &load)
    })
    .await;
    let took = load_ended.elapsed();
    assert!(left.is_empty(), "not converged:\n{}", left.join("\n"));
    let store = tandem::store::open(&format!("sqlite://{}", db.display()))
        .await
        .expect("open the store read-side");
    let w = assert_converged_and_clean(&jira, &external, &load, store.as_ref()).await;
    eprintln!(
        "convergence after sigkills: {:.1} s from the last edit to every pair holding its last values ({} pairs, {} edits, {} sigkills, poll_interval 2s, {} ms per call, default [worker])",
        took.as_secs_f64(),
        load.pairs.len(),
        load.edits,
        crashes,
        latency.as_millis()
    );
    eprintln!(
        "{}",
        summary(
            "converge",
            &load,
            &w,
            &HashMap::from([("sigkills", crashes)])
        )
    );
}
