//! `tandem bench --quick` through the library: the structural facts a user reads off the
//! table. No figure about time is checked — only that edits landed and calls were counted.

use tandem::bench::{BenchOptions, run_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_bench_lands_every_edit_with_one_write_and_silent_echoes() {
    let opts = BenchOptions {
        progress: true,
        ..BenchOptions::quick()
    };
    // Given the binary, the bench also starts `tandem serve` on its own to measure its memory.
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_tandem"));
    let report = run_with(opts, None, Some(binary))
        .await
        .expect("the bench runs");
    let t = &report.tandem;
    let table = tandem::bench::render(&report);
    // The script phase ran the shipped example and says so in the table.
    assert!(report.script.hook_us > 0.0, "{table}");
    assert!(
        table.contains("script (customer_prefix.rhai to_jira"),
        "{table}"
    );

    for d in [&t.jira_to_external, &t.external_to_jira] {
        assert_eq!(d.edits, opts.latency_edits);
        assert_eq!(d.landed, d.edits, "every timed edit lands\n{table}");
        assert!(d.latency_ms.is_some());
        // One write per propagated change, to the other side; none back (the echo).
        assert_eq!(d.other_side.writes, 1.0, "{table}");
        assert_eq!(d.echo_writes(), 0.0, "{table}");
    }
    assert_eq!(t.throughput.edits, opts.throughput_edits);
    assert_eq!(
        t.throughput.links_landed, t.throughput.links,
        "every throughput edit lands\n{table}"
    );
    assert_eq!(t.lost_edits, 0, "both sides hold every last edit\n{table}");
    assert_eq!(t.failed_calls, 0, "{table}");
    // A twin costs one create outside and the External ID written into Jira.
    let create = t.calls_per_create.expect("Tandem's creates are counted");
    assert_eq!(create.writes, 2.0, "{table}");
    assert!(
        create.reads >= 1.0,
        "the issue is read before its twin is made\n{table}"
    );
    // Under a steady rate every edit lands, unless the next edit of its link overwrote it
    // first.
    assert_eq!(t.steady.edits, opts.steady_edits);
    assert_eq!(
        t.steady.landed + t.steady.superseded,
        t.steady.edits,
        "{table}"
    );
    assert!(t.steady.latency_ms.is_some(), "{table}");
    // Every webhook sent straight at Tandem is durably queued and answered 202; they name
    // items' current state late, so nothing is lost or written by them either.
    let ingest = t.ingest.expect("Tandem's ingest is measured");
    assert_eq!(ingest.deliveries, opts.ingest_deliveries);
    assert_eq!(ingest.accepted, ingest.deliveries, "{table}");
    assert!(table.contains("webhook ingest (202 per second)"), "{table}");

    // The seed's scripts search and write once per field, and write back on every echo.
    let s = &report.seed;
    assert!(
        s.ingest.is_none(),
        "the seed's scripts have no queue to measure"
    );
    assert!(s.calls_per_change() > t.calls_per_change(), "{table}");
    assert!(s.writes_per_change() > t.writes_per_change(), "{table}");
    assert!(s.jira_to_external.echo_writes() > 0.0, "{table}");
    assert!(report.ratios.calls_per_change.is_some_and(|r| r > 1.0));

    // The JSON a user gets with --json carries the same figures.
    let json = serde_json::to_value(&report).expect("serialises");
    assert_eq!(
        json["tandem"]["jira_to_external"]["other_side"]["writes"],
        serde_json::json!(1.0)
    );
    assert!(table.contains("seed ÷ Tandem"));

    // The engine alone, with its store holding the links: its RSS is read from its own
    // process, and the twins it made under load all hold their last edit.
    let memory = report
        .engine_memory
        .as_ref()
        .expect("the engine's memory is measured");
    assert_eq!(memory.links_in_store, opts.memory_links);
    assert_eq!(memory.creates, opts.memory_creates);
    assert_eq!(memory.links_landed, memory.creates, "{table}");
    let (idle, peak) = (
        memory.idle_kb.expect("idle RSS"),
        memory.peak_kb.expect("peak RSS"),
    );
    assert!(idle > 0 && peak >= idle, "{table}");
    assert!(table.contains("RSS, ready and idle"), "{table}");
}

/// `tandem bench --store URL`: the same run with Tandem on PostgreSQL, in a schema of its own
/// that is gone afterwards. Runs when `TANDEM_TEST_POSTGRES_URL` is set (CI sets it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_bench_runs_tandem_on_postgres_and_cleans_up() {
    let Ok(url) = std::env::var("TANDEM_TEST_POSTGRES_URL") else {
        eprintln!("TANDEM_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    let opts = BenchOptions::quick();
    let report = tandem::bench::run_on(opts, Some(&url))
        .await
        .expect("the bench runs on PostgreSQL");
    let table = tandem::bench::render(&report);
    let t = &report.tandem;
    assert!(report.store.starts_with("postgres"), "{}", report.store);
    assert!(table.contains("Tandem's store: postgres"), "{table}");
    for d in [&t.jira_to_external, &t.external_to_jira] {
        assert_eq!(d.landed, d.edits, "{table}");
        assert_eq!(d.other_side.writes, 1.0, "{table}");
    }
    assert_eq!(t.throughput.links_landed, t.throughput.links, "{table}");
    assert_eq!(t.lost_edits, 0, "{table}");
    let ingest = t.ingest.expect("ingest measured");
    assert_eq!(ingest.accepted, ingest.deliveries, "{table}");

    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE $1",
    )
    .bind(format!("tandem_bench_{}_%", std::process::id()))
    .fetch_one(&pool)
    .await
    .expect("count schemas");
    assert_eq!(left, 0, "the run's schema is dropped");
}

/// `tandem bench --engine-only --items 20 --duration 2`: the engine as its own `tandem serve`
/// process carries every phase on distinct items, each phase reports its changes and the
/// engine's CPU time per change, its memory is read from its own process, and the process is
/// gone once the run returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_process_phases_carry_every_change_and_the_engine_is_gone_afterwards() {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_tandem"));
    let opts = tandem::bench::EngineOptions {
        items: 20,
        duration_secs: 2.0,
        rate: 20,
        ingest_deliveries: 100,
        ingest_senders: 4,
        progress: true,
    };
    let report = tandem::bench::engine_process::run(binary, opts)
        .await
        .expect("the engine phases run");
    let table = tandem::bench::render_engine(&report);

    let json = serde_json::to_value(&report).expect("serialises");
    for phase in ["creates", "jira_to_external", "external_to_jira"] {
        let p = &json[phase];
        assert!(
            p["changes"].as_u64().is_some_and(|n| n > 0),
            "{phase}\n{table}"
        );
        assert_eq!(
            p["landed"], p["changes"],
            "{phase}: every change lands\n{table}"
        );
        assert!(
            p["per_sec"].as_f64().is_some_and(|r| r > 0.0),
            "{phase}\n{table}"
        );
        assert!(
            p["cpu"]["us_per_change"].as_f64().is_some(),
            "{phase}: the engine's CPU per change is reported\n{table}"
        );
    }
    assert_eq!(json["creates"]["changes"], serde_json::json!(20));
    // Sustained: the edit phases lasted the duration, in whole rounds of one edit per item.
    for phase in ["jira_to_external", "external_to_jira"] {
        let p = &json[phase];
        assert!(
            p["seconds"].as_f64().is_some_and(|s| s >= 2.0),
            "{phase}\n{table}"
        );
        assert_eq!(
            p["changes"].as_u64().unwrap_or(0) % 20,
            0,
            "{phase}: one edit per item per round\n{table}"
        );
    }
    let ingest = &json["ingest"];
    assert_eq!(ingest["deliveries"], serde_json::json!(100), "{table}");
    assert_eq!(ingest["accepted"], ingest["deliveries"], "{table}");
    assert!(ingest["cpu"]["us_per_change"].as_f64().is_some(), "{table}");
    let steady = &json["steady"];
    assert!(steady["edits"].as_u64().is_some_and(|n| n > 0), "{table}");
    assert!(steady["landed"].as_u64().is_some_and(|n| n > 0), "{table}");
    assert!(steady["latency_ms"]["median"].as_f64().is_some(), "{table}");
    assert!(report.all_landed(), "{table}");
    assert_eq!(report.lost_edits, 0, "{table}");

    let (idle, peak) = (
        report.rss.idle_kb.expect("idle RSS of the engine"),
        report.rss.peak_kb.expect("peak RSS of the engine"),
    );
    assert!(idle > 0 && peak >= idle, "{table}");
    assert!(table.contains("engine CPU/change"), "{table}");

    // The engine was a process of its own, and it is gone.
    assert_ne!(report.engine_pid, std::process::id());
    assert!(
        !std::path::Path::new(&format!("/proc/{}", report.engine_pid)).exists(),
        "tandem serve (pid {}) still runs after the bench",
        report.engine_pid
    );
}

/// `tandem bench --scale` at a small size: both store sizes carry every timed edit, and the
/// import links every pair and writes exactly the pairs edited since (one write each), with
/// a few calls per hundred items (listings, not reads per item).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_bench_carries_every_edit_and_imports_with_one_write_per_difference() {
    use tandem::bench::scale::{ScaleOptions, render, run};
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_tandem"));
    let opts = ScaleOptions {
        links: 5_000,
        latency_edits: 20,
        sync_items: 500,
        progress: true,
    };
    let report = run(binary, opts).await.expect("the scale bench runs");
    let table = render(&report);
    for s in [&report.small_store, &report.large_store] {
        assert_eq!(s.landed, s.edits, "{table}");
        assert!(s.idle_kb.is_some() && s.peak_kb.is_some(), "{table}");
    }
    assert_eq!(report.large_store.links_in_store, 5_000);
    let i = &report.import;
    assert!(i.succeeded, "{table}");
    assert!(i.summary.contains("linked 500"), "{table}");
    assert_eq!(i.differing, 5, "{table}");
    assert_eq!(i.differing_landed, i.differing, "{table}");
    assert_eq!(i.writes, i.differing, "one write per difference\n{table}");
    assert!(
        i.calls_per_item < 0.1,
        "listings, not a read per item\n{table}"
    );
    assert!(i.peak_kb.is_some(), "{table}");
}
