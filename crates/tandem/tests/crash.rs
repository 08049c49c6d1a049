//! Crash safety (DESIGN §2 invariants 1, 2 and 4): `tandem serve` as a child process with an
//! SQLite store, a stream of edits on both sides, and SIGKILL at random moments, each followed
//! by a restart on the same store. The sandboxes keep retrying webhooks that got no answer
//! (as Jira does) and the poller catches the rest. At the end every edit is on the other side,
//! no twin was created twice, no value was written twice, and both sides are equal.
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
    jira.register_webhook(
        &format!("{}/webhooks/seed/jira", proxy.url),
        Some(JIRA_SECRET),
    );
    external.set_webhook(
        &format!("{}/webhooks/seed/external", proxy.url),
        Some(EXT_TOKEN),
    );

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
    while load.edits < total_edits && attempts < total_edits * 20 {
        attempts += 1;
        if load.edit(&jira, &external) {
            if load.edits.is_multiple_of(40) {
                load.create(&jira, &external, load.edits.is_multiple_of(80));
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
    assert!(instance.alive(), "tandem serve died on its own");
    eprintln!(
        "{}",
        summary("crash", &load, &w, &HashMap::from([("sigkills", crashes)]))
    );
}
