//! Faults (DESIGN §2 invariants 1–4): both sandboxes answer 5xx, 429 with `Retry-After`, drop
//! connections, lose responses after applying a write (the dangerous case for creates) and
//! answer slowly, on about 30% of calls; their webhooks are dropped, duplicated and
//! reordered. Once the faults stop, everything converges, with no second twin, no value
//! written twice, per-link order kept, and no dead letter (none of these errors is permanent).
//!
//! Timeouts: Tandem runs with `request_timeout_ms = 1000`, and a share of answers is held back
//! for 1.5 s after the request was handled, so timed-out writes that landed are part of the
//! mix; a timeout is classified like a dropped connection (transient).
//! `TANDEM_SOAK=1` (or `TANDEM_FAULTS_EDITS=N`) makes the stream longer.
//!
//! Files too: every 12th edit also attaches a small file of its own to a random pair, on a
//! random side, through the same faults (lost answers of uploads included). At the end each
//! file is on both items of its pair exactly once, byte-identical (SHA-256 compared).

mod reliability;

use reliability::*;
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_faults_on_both_sides_converge_without_duplicates() {
    init_logging();
    let total_edits = env_num("TANDEM_FAULTS_EDITS", if soak() { 3000 } else { 300 });
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
        "concurrency = 4\nlease_seconds = 30\nbackoff_base_ms = 50\nbackoff_cap_ms = 2000\nmax_attempts = 40\nrequest_timeout_ms = 1000",
        "poll_interval = \"1s\"",
    );
    let instance = Instance::start(&config, dir.path().join("tandem.log"));
    proxy.set(0, Some(instance.url.clone()));
    jira.register_webhook(
        &format!("{}/webhooks/seed/jira", proxy.url),
        Some(JIRA_SECRET),
    );
    external.set_webhook(
        &format!("{}/webhooks/seed/external", proxy.url),
        Some(EXT_TOKEN),
    );

    let mut load = Load::new();
    for i in 0..10usize {
        load.create(&jira, &external, i.is_multiple_of(2));
    }
    for side in [jira.faults(), external.faults()] {
        side.set_error_rate(0.08);
        side.set_rate_limit_rate(0.05);
        side.set_drop_rate(0.04);
        side.set_lost_response_rate(0.08);
        // Answers held back past Tandem's 1 s request timeout: timed-out calls whose writes
        // landed.
        side.set_slow_answers(0.05, Duration::from_millis(1500));
        side.set_latency(Duration::from_millis(20));
        side.set_webhook_drop_rate(0.10);
        side.set_webhook_duplicate_rate(0.15);
        side.set_webhook_reorder(true);
    }
    let mut attempts = 0;
    // (jira key, external id, file name, SHA-256) of every file attached.
    let mut files: Vec<AttachedFile> = Vec::new();
    while load.edits < total_edits && attempts < total_edits * 50 {
        attempts += 1;
        if load.edit(&jira, &external) {
            if load.edits.is_multiple_of(20) {
                load.create(&jira, &external, load.edits.is_multiple_of(40));
            }
            if load.edits.is_multiple_of(12) {
                attach_one(&jira, &external, &load, &mut files);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(load.edits, total_edits, "the load generator could not edit");
    let injected: usize = [jira.request_log(), external.request_log()]
        .iter()
        .flatten()
        .filter(|r| r.slow || !(200..300).contains(&r.status) && r.status != 404)
        .count();
    jira.faults().clear();
    external.faults().clear();

    let store = tandem::store::open(&format!("sqlite://{}", db.display()))
        .await
        .expect("open the store read-side");
    let w = assert_converged_and_clean(&jira, &external, &load, store.as_ref()).await;
    let left = converge(Duration::from_secs(60), || {
        file_problems(&jira, &external, &files)
    })
    .await;
    assert!(left.is_empty(), "files not in step:\n{}", left.join("\n"));
    eprintln!(
        "{}",
        summary(
            "faults",
            &load,
            &w,
            &HashMap::from([("faulty_answers", injected), ("files", files.len())])
        )
    );
}
