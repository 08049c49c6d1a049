//! Scale-out on PostgreSQL (DESIGN §2 invariants 1, 2 and 4 across processes): three
//! `tandem serve` processes share one database; webhooks are spread over them by a proxy; one
//! is killed with SIGKILL in the middle of the stream. Afterwards nothing is lost, nothing was
//! created or written twice, and every link's writes went out in order.
//!
//! Runs only when `TANDEM_TEST_POSTGRES_URL` is set (each run gets its own schema).
//! `TANDEM_SOAK=1` (or `TANDEM_SCALEOUT_EDITS=N`) makes the stream longer.

mod reliability;

use reliability::*;
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_postgres_and_survive_losing_one() {
    let Ok(pg) = std::env::var("TANDEM_TEST_POSTGRES_URL") else {
        eprintln!("skipped: set TANDEM_TEST_POSTGRES_URL to run the scale-out test");
        return;
    };
    init_logging();
    let schema = format!(
        "tandem_scaleout_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    // Creates and migrates the schema; the instances then find their tables through the
    // connection's search_path, given as a startup option on the storage URL.
    let store = tandem::store::open_postgres_in_schema(&pg, &schema)
        .await
        .expect("schema for this run");
    let sep = if pg.contains('?') { '&' } else { '?' };
    let storage = format!("{pg}{sep}options=-c%20search_path%3D{schema}");

    let (jira, external) = sandboxes().await;
    let proxy = Proxy::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    // TANDEM_TEST_KEEP=1 keeps the config and the instances' logs for a post-mortem.
    if std::env::var("TANDEM_TEST_KEEP").is_ok() {
        eprintln!("instance logs in {}", dir.path().display());
    }
    let dir = keep_if_asked(dir);
    let config = write_config(
        dir.path(),
        &storage,
        &jira,
        &external,
        // A short lease so the killed instance's events are taken over quickly.
        "concurrency = 4\nlease_seconds = 3\nbackoff_base_ms = 50\nbackoff_cap_ms = 1000\nmax_attempts = 30",
        "poll_interval = \"2s\"",
    );
    let mut instances: Vec<Instance> = (0..3)
        .map(|i| Instance::start(&config, dir.path().join(format!("tandem-{i}.log"))))
        .collect();
    for (i, inst) in instances.iter().enumerate() {
        proxy.set(i, Some(inst.url.clone()));
    }
    jira.register_webhook(
        &format!("{}/webhooks/seed/jira", proxy.url),
        Some(JIRA_SECRET),
    );
    external.set_webhook(
        &format!("{}/webhooks/seed/external", proxy.url),
        Some(EXT_TOKEN),
    );

    let total_edits = env_num("TANDEM_SCALEOUT_EDITS", if soak() { 3000 } else { 300 });
    let mut load = Load::new();
    for i in 0..16usize {
        load.create(&jira, &external, i.is_multiple_of(2));
    }
    let mut killed = false;
    let mut attempts = 0;
    while load.edits < total_edits && attempts < total_edits * 20 {
        attempts += 1;
        if load.edit(&jira, &external) {
            if load.edits.is_multiple_of(25) {
                load.create(&jira, &external, load.edits.is_multiple_of(50));
            }
            if !killed && load.edits >= total_edits / 2 {
                // Mid-stream, mid-work: whatever instance 1 holds (leases, the link lock,
                // a write whose answer it has not recorded) is abandoned.
                instances[1].kill();
                proxy.set(1, None);
                killed = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
    assert!(
        killed,
        "the stream ended before the kill ({} edits)",
        load.edits
    );
    assert_eq!(load.edits, total_edits, "the load generator could not edit");

    let w = assert_converged_and_clean(&jira, &external, &load, store.as_ref()).await;
    assert!(
        w.total <= load.edits + load.creates * 2,
        "{} writes for {} edits and {} creates",
        w.total,
        load.edits,
        load.creates
    );
    assert!(
        instances[0].alive() && instances[2].alive(),
        "a survivor crashed"
    );
    eprintln!(
        "{}",
        summary(
            "scaleout",
            &load,
            &w,
            &HashMap::from([("instances", 3), ("killed", 1)])
        )
    );
    drop(instances);
    drop(store);
    tandem::store::drop_postgres_schema(&pg, &schema)
        .await
        .expect("drop the run's schema");
}
