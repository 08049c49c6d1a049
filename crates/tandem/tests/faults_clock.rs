//! The engine host's clock jumps (DESIGN §2 invariants 1–4): `tandem serve` runs with its
//! wall clock under libfaketime's control (the test rewrites the offset file while it runs;
//! the monotonic clock is left alone, as a real `date -s` or an NTP step leaves it), while
//! users edit both sides.
//!
//! 1. The external system fails every call for a while, so the edits bound for it wait in the
//!    queue for their retries (seconds apart).
//! 2. The clock is set **back an hour** and the external system heals. The retries must come
//!    when they were meant to in real time: were their times left as stored, each would wait
//!    an extra hour, and every later event of its link behind it.
//! 3. The clock jumps **two hours forward** while edits go on. This instance's leases must
//!    not end early (another claim of an event still being worked on), nor any retry be
//!    rushed.
//!
//! At the end the usual checks: every last edit on both sides, one twin per item, nothing
//! written twice or back, no dead letter, every event a `202` named in the store; and the
//! engine counted both jumps (`tandem_clock_jumps_total`).
//!
//! Needs libfaketime (Debian's `libfaketime`, installed by `.ci/run`); without it the test
//! says so and passes without running.

mod faultkit;
mod reliability;

use faultkit::*;
use reliability::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tandem_sandbox::{ExternalSandbox, JiraSandbox};

/// Edits per second while the test runs.
const EDITS_PER_SEC: u64 = 10;
/// How long the external system fails every call before the clock is set back.
const SICK_FOR: Duration = Duration::from_secs(6);

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The engine's wall clock offset, rewritten while it runs.
struct FakeClock {
    file: std::path::PathBuf,
}

impl FakeClock {
    fn new(dir: &Path) -> FakeClock {
        let file = dir.join("faketime");
        std::fs::write(&file, "+0").unwrap();
        FakeClock { file }
    }

    /// Environment that puts the process's wall clock (only) under this file.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LD_PRELOAD", LIBFAKETIME.to_string()),
            ("FAKETIME_TIMESTAMP_FILE", self.file.display().to_string()),
            // Read the file on every call, so a rewrite is a jump at once.
            ("FAKETIME_NO_CACHE", "1".to_string()),
            // A real jump moves CLOCK_REALTIME only; tokio's timers run on the monotonic one.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
        ]
    }

    /// Sets the offset from the real clock, e.g. `-1h`.
    fn set(&self, offset: &str) {
        // Written whole and renamed, so the reader never sees half a line.
        let tmp = self.file.with_extension("new");
        std::fs::write(&tmp, offset).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_jumps_back_and_forward_lose_nothing_and_delay_nothing() {
    if !Path::new(LIBFAKETIME).exists() {
        eprintln!("skipped: {LIBFAKETIME} is missing (apt-get install libfaketime)");
        return;
    }
    init_logging();
    let dir = keep_if_asked(tempfile::tempdir().unwrap());
    if std::env::var("TANDEM_TEST_KEEP").is_ok() {
        eprintln!("instance logs in {}", dir.path().display());
    }
    let (jira, external) = sandboxes().await;
    let proxy = RecordingProxy::start(1).await;
    let url = format!("sqlite://{}", dir.path().join("tandem.db").display());
    let config = write_config(
        dir.path(),
        &url,
        &jira,
        &external,
        // Retries seconds apart, so the test sees whether they come on time; a lease short
        // enough that a jump forward would end it mid-work if nothing moved it.
        "lease_seconds = 10\nbackoff_base_ms = 1000\nbackoff_cap_ms = 8000\nmax_attempts = 60",
        "poll_interval = \"2s\"",
    );
    let clock = FakeClock::new(dir.path());
    let mut instance =
        Instance::start_with_env(&config, dir.path().join("tandem.log"), &clock.env());
    proxy.set(0, Some(instance.url.clone()));
    proxy.point("seed", &jira, &external);

    let mut load = Load::new();
    for i in 0..8usize {
        load.create(&jira, &external, i.is_multiple_of(2));
    }
    steps(&mut load, &jira, &external, Duration::from_secs(3)).await;

    // 1. The external system fails every call: edits bound for it wait for their retries.
    external.faults().set_error_rate(1.0);
    steps(&mut load, &jira, &external, SICK_FOR).await;

    // 2. Back an hour; the external system heals a moment later.
    clock.set("-1h");
    steps(&mut load, &jira, &external, Duration::from_secs(1)).await;
    external.faults().set_error_rate(0.0);
    let healed = Instant::now();
    steps(&mut load, &jira, &external, Duration::from_secs(3)).await;
    // Everything waiting was due within the backoff cap (8 s): the last edits must cross
    // well within the convergence limit, not an hour later.
    let left = converge(Duration::from_secs(60), || {
        problems(&jira, &external, &load)
    })
    .await;
    assert!(
        left.is_empty(),
        "{} s after the clock went back an hour and the external side healed, not converged:\n{}",
        healed.elapsed().as_secs(),
        left.join("\n")
    );
    let caught_up = healed.elapsed();

    // 3. Two hours forward (an hour ahead of real time) while users edit, with faults on
    // both sides so retries and leases are in flight across the jump.
    jira.faults().set_error_rate(0.3);
    external.faults().set_error_rate(0.3);
    steps(&mut load, &jira, &external, Duration::from_secs(2)).await;
    clock.set("+1h");
    steps(&mut load, &jira, &external, Duration::from_secs(3)).await;
    jira.faults().set_error_rate(0.0);
    external.faults().set_error_rate(0.0);
    steps(&mut load, &jira, &external, Duration::from_secs(2)).await;

    let store = tandem::store::open(&url)
        .await
        .expect("open the store read-side");
    let w = assert_converged_and_clean(&jira, &external, &load, store.as_ref()).await;
    let accepted: Vec<i64> = proxy
        .answers()
        .iter()
        .flat_map(|a| a.events.clone())
        .collect();
    for id in &accepted {
        assert!(
            store.get_event(*id).await.unwrap().is_some(),
            "event {id} was answered 202 but is not in the store"
        );
    }
    let metrics = reqwest::get(format!("{}/metrics", instance.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jumps = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tandem_clock_jumps_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        jumps >= 2.0,
        "the engine did not notice both jumps (tandem_clock_jumps_total = {jumps})"
    );
    assert!(instance.alive(), "tandem serve died");
    eprintln!(
        "faults_clock: back 1 h then forward 2 h; caught up {:.1} s after healing",
        caught_up.as_secs_f64()
    );
    eprintln!(
        "{}",
        summary(
            "faults_clock",
            &load,
            &w,
            &HashMap::from([
                ("accepted_events", accepted.len()),
                ("clock_jumps", jumps as usize)
            ])
        )
    );
}

/// User edits at [`EDITS_PER_SEC`] for `how_long`.
async fn steps(
    load: &mut Load,
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    how_long: Duration,
) {
    let until = Instant::now() + how_long;
    while Instant::now() < until {
        load.edit(jira, external);
        tokio::time::sleep(Duration::from_millis(1000 / EDITS_PER_SEC)).await;
    }
}
