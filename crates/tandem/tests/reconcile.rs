//! Reconciliation without trusting webhooks: the poller catches what webhooks lose,
//! `tandem sync` reconciles what existed before Tandem, `--dry-run` touches nothing, and
//! `tandem jira webhook register` sets up Jira's side. Everything runs against the sandboxes
//! over loopback HTTP and checks what a user would check: the items on both sides.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tandem::sync::{Progress, SyncOptions};

fn summary_of(w: &World, key: &str) -> Value {
    w.jira
        .issue(key)
        .map(|i| i["fields"]["summary"].clone())
        .unwrap_or(Value::Null)
}

/// Waits up to `limit` for `probe`, returning how long it took.
async fn within<T>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> (T, Duration) {
    let started = Instant::now();
    loop {
        if let Some(v) = probe() {
            return (v, started.elapsed());
        }
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The poller's first listings fail (the system is down as Tandem starts) while an item is
/// created and its webhook is lost: once listing works, the item is still found, because the
/// starting point of a side without a cursor is stored by the first attempt, not recomputed
/// (one interval back) by every later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_changed_while_the_first_polls_fail_are_still_found() {
    let w = world(Options {
        poll_interval: Some("1s"),
        ..Options::default()
    })
    .await;
    // Before the first poll (one interval after start).
    w.external.faults().set_error_rate(1.0);
    w.external.faults().set_webhook_drop_rate(1.0);
    let made = w
        .external
        .user_create(vec![(1001, "Made while down".into())]);
    // Longer than interval + overlap (3 s), so a start recomputed by each poll would skip it.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let failed_lists = w
        .external
        .request_log()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/API/issues" && r.status == 500)
        .count();
    assert!(failed_lists >= 3, "{failed_lists} failed listings");
    w.external.faults().set_error_rate(0.0);
    let link_field = w.jira.external_id_field().to_string();
    within(
        "the item made while down reaches Jira",
        Duration::from_secs(10),
        || {
            w.jira
                .issues()
                .into_iter()
                .find(|i| i["fields"][&link_field] == json!(made))
        },
    )
    .await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_webhook_lost_edits_on_both_sides_still_converge_by_polling() {
    let w = world(Options {
        poll_interval: Some("200ms"),
        ..Options::default()
    })
    .await;
    w.jira.faults().set_webhook_drop_rate(1.0);
    w.external.faults().set_webhook_drop_rate(1.0);
    // Poll interval plus processing, with room for a loaded 2-core machine.
    let bound = Duration::from_secs(5);

    let key = w.jira.user_create_issue(
        "TEST",
        json!({"summary": "Lost hook", "duedate": "2026-05-01"}),
    );
    let (twin, t_create) = within("Jira issue reaches the external system", bound, || {
        w.twins_of(&key).into_iter().next()
    })
    .await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    assert_eq!(ext_field(&twin, 1003).as_deref(), Some("2026-05-01"));

    let new_ext = w.external.user_create(vec![(1001, "Made outside".into())]);
    let link_field = w.jira.external_id_field().to_string();
    let (_, t_ext_create) = within("external item reaches Jira", bound, || {
        w.jira
            .issues()
            .into_iter()
            .find(|i| i["fields"][&link_field] == json!(new_ext))
    })
    .await;

    w.jira
        .user_edit_issue(&key, json!({"summary": "Edited in Jira"}));
    let (_, t_jira_edit) = within("Jira edit reaches the external system", bound, || {
        w.external
            .item(&ext_id)
            .filter(|i| ext_field(i, 1001).as_deref() == Some("Edited in Jira"))
    })
    .await;

    w.external
        .user_edit(&ext_id, vec![(1003, "2026-06-30".into())]);
    let (_, t_ext_edit) = within("external edit reaches Jira", bound, || {
        w.jira
            .issue(&key)
            .filter(|i| i["fields"]["duedate"] == json!("2026-06-30"))
    })
    .await;
    println!(
        "recovery with 100% webhook loss, poll_interval 200ms: create→outside {t_create:?}, create→Jira {t_ext_create:?}, edit→outside {t_jira_edit:?}, edit→Jira {t_ext_edit:?}"
    );

    quiesce(&w).await;
    // Converged, and nothing was created twice.
    let twin = w.external.item(&ext_id).unwrap();
    assert_eq!(ext_field(&twin, 1001).as_deref(), Some("Edited in Jira"));
    assert_eq!(summary_of(&w, &key), json!("Edited in Jira"));
    assert_eq!(
        w.external.items().len(),
        2,
        "one twin each way, no duplicates"
    );
    assert_eq!(w.jira.issues().len(), 2);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_webhooks_and_polling_both_on_each_change_is_written_once() {
    let w = world(Options {
        poll_interval: Some("200ms"),
        ..Options::default()
    })
    .await;
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Both ways"}));
    let twin = eventually("twin", || w.twins_of(&key).into_iter().next()).await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    // Several poll rounds see the same states the webhooks delivered.
    tokio::time::sleep(Duration::from_millis(800)).await;
    quiesce(&w).await;
    assert_eq!(w.external_writes().len(), 1, "one create outside");
    assert_eq!(w.jira_writes().len(), 1, "one write of the link field");

    w.external
        .user_edit(&ext_id, vec![(1001, "Edited outside".into())]);
    eventually("edit in Jira", || {
        w.jira
            .issue(&key)
            .filter(|i| i["fields"]["summary"] == json!("Edited outside"))
    })
    .await;
    w.jira
        .user_edit_issue(&key, json!({"duedate": "2027-02-02"}));
    eventually("edit outside", || {
        w.external
            .item(&ext_id)
            .filter(|i| ext_field(i, 1003).as_deref() == Some("2027-02-02"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    quiesce(&w).await;
    assert_eq!(
        w.jira_writes().len(),
        2,
        "the external edit was written to Jira once"
    );
    assert_eq!(
        w.external_writes().len(),
        2,
        "the Jira edit was written outside once"
    );
    w.stop().await;
}

// ---- bulk sync ------------------------------------------------------------------------------

const EQUAL: usize = 600;
const JIRA_LATER: usize = 150;
const EXT_LATER: usize = 150;
const JIRA_ONLY: usize = 500;
const EXT_ONLY: usize = 600;

/// Waits until a sandbox's clock (which runs ahead by a millisecond per write within one
/// millisecond) is behind real time again, so the next phase's edits are strictly later.
async fn settle(latest: impl Fn() -> Option<chrono::DateTime<chrono::Utc>>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while latest().is_some_and(|t| t >= chrono::Utc::now()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
}

fn latest(
    items: Vec<Value>,
    field: &dyn Fn(&Value) -> &Value,
) -> Option<chrono::DateTime<chrono::Utc>> {
    items
        .iter()
        .filter_map(|i| field(i).as_str())
        .filter_map(|s| {
            chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f%z")
                .ok()
                .or_else(|| chrono::DateTime::parse_from_rfc3339(s).ok())
        })
        .map(|t| t.with_timezone(&chrono::Utc))
        .max()
}

/// 2,000 issues that existed before Tandem: pairs that know each other through Jira's
/// External ID (equal, or differing with either side edited later), and items on one side
/// only. Returns summary → the value both twins must end with.
async fn seed_bulk(w: &World) -> BTreeMap<String, String> {
    let link_field = w.jira.external_id_field().to_string();
    let mut expect = BTreeMap::new();
    let mut ext_ids = Vec::new();
    for i in 0..EQUAL + JIRA_LATER + EXT_LATER {
        let summary = if i < EQUAL {
            format!("Equal {i}")
        } else {
            format!("Old {i}")
        };
        ext_ids.push(
            w.external
                .user_create(vec![(1001, summary), (1003, "2026-01-01".into())]),
        );
    }
    for i in 0..EXT_ONLY {
        let s = format!("Outside only {i}");
        w.external.user_create(vec![(1001, s.clone())]);
        expect.insert(s.clone(), s);
    }
    settle(|| latest(w.external.items(), &|i| &i["updated"])).await;
    for (i, ext_id) in ext_ids.iter().enumerate() {
        let summary = if i < EQUAL {
            format!("Equal {i}")
        } else {
            format!("Jira {i}")
        };
        w.jira.user_create_issue(
            "TEST",
            json!({"summary": summary, "duedate": "2026-01-01", link_field.clone(): ext_id}),
        );
    }
    for i in 0..JIRA_ONLY {
        let s = format!("Jira only {i}");
        w.jira.user_create_issue("TEST", json!({"summary": s}));
        expect.insert(s.clone(), s);
    }
    settle(|| latest(w.jira.issues(), &|i| &i["fields"]["updated"])).await;
    for (i, ext_id) in ext_ids.iter().enumerate() {
        if i < EQUAL {
            expect.insert(format!("Equal {i}"), format!("Equal {i}"));
        } else if i < EQUAL + JIRA_LATER {
            expect.insert(format!("Jira {i}"), format!("Jira {i}"));
        } else {
            // Edited outside after the Jira issue was: the later edit wins.
            w.external
                .user_edit(ext_id, vec![(1001, format!("Outside {i}"))]);
            expect.insert(format!("Outside {i}"), format!("Outside {i}"));
        }
    }
    expect
}

/// Every Jira issue has exactly one twin outside and the other way round, and each pair
/// holds the same summary and due date. Returns the number of pairs.
fn assert_all_paired_and_equal(w: &World, expected_summaries: &BTreeMap<String, String>) -> usize {
    let link_field = w.jira.external_id_field().to_string();
    let issues = w.jira.issues();
    let items = w.external.items();
    let by_id: HashMap<String, &Value> = items
        .iter()
        .map(|i| (i["id"].as_str().unwrap().to_string(), i))
        .collect();
    let mut seen = HashMap::new();
    for issue in &issues {
        let key = issue["key"].as_str().unwrap();
        let ext_id = issue["fields"][&link_field]
            .as_str()
            .unwrap_or_else(|| panic!("{key} has no External ID"));
        let twin = by_id
            .get(ext_id)
            .unwrap_or_else(|| panic!("{key} names {ext_id}, which does not exist"));
        if let Some(other) = seen.insert(ext_id.to_string(), key.to_string()) {
            panic!("{ext_id} is the twin of both {other} and {key}");
        }
        let summary = issue["fields"]["summary"].as_str().unwrap();
        assert_eq!(
            ext_field(twin, 1001).as_deref(),
            Some(summary),
            "{key} ↔ {ext_id}"
        );
        assert!(
            expected_summaries.contains_key(summary),
            "{key}: unexpected summary {summary:?} (a losing value won)"
        );
        let due = issue["fields"]["duedate"].as_str().map(str::to_string);
        assert_eq!(
            ext_field(twin, 1003).filter(|s| !s.is_empty()),
            due,
            "{key} due date"
        );
    }
    assert_eq!(
        seen.len(),
        items.len(),
        "every external item has exactly one Jira twin"
    );
    assert_eq!(
        issues.len(),
        expected_summaries.len(),
        "no duplicate Jira issues"
    );
    issues.len()
}

fn sync_options(dry_run: bool) -> SyncOptions {
    SyncOptions {
        connection: None,
        dry_run,
        progress: Progress::Quiet,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_sync_of_2000_issues_survives_a_kill_and_ends_linked_and_equal() {
    let w = world(Options {
        serve: false,
        lease_seconds: 2,
        ..Options::default()
    })
    .await;
    let t0 = Instant::now();
    let expect = seed_bulk(&w).await;
    eprintln!("seeded in {:?}", t0.elapsed());
    let jira_before = w.jira.issues().len();
    let ext_before = w.external.items().len();
    assert_eq!(jira_before + EXT_ONLY, 2000);
    let calls_before = w.jira.request_log().len() + w.external.request_log().len();
    let started = Instant::now();

    // First run: the real binary, killed (SIGKILL) once a quarter of the twins exist.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["sync", "--config"])
        .arg(w.config_path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tandem sync starts");
    // Jira-only issues are queued first, so their twins outside show the progress (counted
    // outside: rendering every Jira issue while sync runs would slow it down).
    let target = JIRA_ONLY / 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if w.external.items().len() - ext_before >= target {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("sync ended before it could be interrupted: {status}");
        }
        assert!(Instant::now() < deadline, "sync made no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("killed after {:?}", started.elapsed());
    child.kill().expect("kill");
    let _ = child.wait();
    let created_before_kill =
        w.jira.issues().len() - jira_before + w.external.items().len() - ext_before;
    assert!(
        created_before_kill < JIRA_ONLY + EXT_ONLY,
        "killed half-way, not at the end"
    );

    // Second run, resumed in-process: finishes the job without duplicates.
    let config = tandem::config::load(&w.config_path()).unwrap();
    let summary = tandem::sync::run(&config, &sync_options(false), std::future::pending())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let calls = w.jira.request_log().len() + w.external.request_log().len() - calls_before;
    println!(
        "bulk sync of 2000 issues (killed after {created_before_kill} twins, resumed): {elapsed:?}, {calls} calls; resumed run: {}",
        summary.render()
    );
    assert_eq!(summary.failed_total(), 0, "{}", summary.render());
    assert_eq!(summary.unfinished, 0);
    assert_all_paired_and_equal(&w, &expect);
    let pairs = w.jira.issues().len();
    assert_eq!(pairs, 2000);

    // A third run finds nothing to do.
    let again = tandem::sync::run(&config, &sync_options(false), std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        (again.linked, again.created, again.updated),
        (0, 0, 0),
        "{}",
        again.render()
    );
    assert_eq!(again.in_agreement, 2000, "{}", again.render());
    assert_eq!(w.jira.issues().len(), 2000);
    assert_eq!(w.external.items().len(), 2000);
}

/// Everything a sync could change, as plain data.
async fn snapshot(w: &World, config: &tandem::config::Config) -> (Vec<Value>, Vec<Value>, String) {
    let store = tandem::store::open(&config.storage.url).await.unwrap();
    let links = store.list_links(None, 100_000, 0).await.unwrap();
    let events = store
        .list_events(&tandem::store::EventFilter {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let audit = store.list_audit(None, 100_000).await.unwrap();
    let cursors = (
        store
            .get_cursor("seed", tandem_core::Side::Jira)
            .await
            .unwrap(),
        store
            .get_cursor("seed", tandem_core::Side::External)
            .await
            .unwrap(),
    );
    let store_state = format!("{links:?}\n{events:?}\n{audit:?}\n{cursors:?}");
    (w.jira.issues(), w.external.items(), store_state)
}

fn writes(w: &World) -> usize {
    w.jira_writes().len() + w.external_writes().len()
}

/// `tandem sync …` through the built binary, off the async runtime.
async fn tandem_cli(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(args)
            .output()
            .expect("tandem runs")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_changes_nothing() {
    let w = world(Options {
        serve: false,
        ..Options::default()
    })
    .await;
    let config_path = w.config_path();
    let config = tandem::config::load(&config_path).unwrap();
    let db = config
        .storage
        .url
        .trim_start_matches("sqlite://")
        .to_string();
    let link_field = w.jira.external_id_field().to_string();
    let mut keys = Vec::new();
    for i in 0..3 {
        let ext = w.external.user_create(vec![(1001, format!("Pair {i}"))]);
        keys.push(w.jira.user_create_issue(
            "TEST",
            json!({"summary": format!("Pair {i}"), link_field.clone(): ext}),
        ));
    }
    w.jira
        .user_create_issue("TEST", json!({"summary": "Only in Jira"}));
    let run = |dry: bool| {
        let mut args = vec![
            "sync".to_string(),
            "--config".into(),
            config_path.display().to_string(),
        ];
        if dry {
            args.push("--dry-run".into());
        }
        tandem_cli(args)
    };

    // Before any store exists: the dry run does not even create one.
    let before = (w.jira.issues(), w.external.items());
    let out = run(true).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("dry run (nothing was changed)"), "{stdout}");
    assert!(
        stdout.contains("linked 3, created 1, updated 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("create on external from jira TEST-4: 1001"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("link jira {} ↔ external EXT-1", keys[0])),
        "{stdout}"
    );
    assert_eq!((w.jira.issues(), w.external.items()), before);
    assert!(
        !std::path::Path::new(&db).exists(),
        "the dry run created the store {db}"
    );
    assert_eq!(writes(&w), 0);

    // A real sync, then changes on both sides that a dry run must only describe.
    let out = run(false).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    w.jira
        .user_edit_issue(&keys[0], json!({"summary": "Edited in Jira"}));
    w.external
        .user_edit("EXT-2", vec![(1003, "2030-01-01".into())]);
    w.external.user_create(vec![(1001, "Only outside".into())]);
    let before = snapshot(&w, &config).await;
    let writes_before = writes(&w);

    let out = run(true).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("update external EXT-1 from jira TEST-1: 1001"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "update jira {} from external EXT-2: dueDate",
            keys[1]
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("create on jira from external EXT-5: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("linked 0, created 1, updated 2"),
        "{stdout}"
    );
    assert_eq!(
        snapshot(&w, &config).await,
        before,
        "the dry run changed something"
    );
    assert_eq!(writes(&w), writes_before, "the dry run wrote to a system");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_register_creates_jiras_admin_webhook_with_the_connections_jql() {
    let w = world(Options {
        serve: false,
        filter: "projects = [\"TEST\"]\nissue_types = [\"Task\", \"Bug\"]".into(),
        ..Options::default()
    })
    .await;
    let out = tandem_cli(vec![
        "jira".into(),
        "webhook".into(),
        "register".into(),
        "--config".into(),
        w.config_path().display().to_string(),
        "--connection".into(),
        "seed".into(),
        "--url".into(),
        "https://tandem.example.com/".into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("https://tandem.example.com/webhooks/seed/jira"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("jira-hook-secret"),
        "the secret was printed: {stdout}"
    );

    // What Jira now holds, as an administrator would look it up.
    let hooks: Value = reqwest::Client::new()
        .get(format!("{}/rest/webhooks/1.0/webhook", w.jira.url()))
        .basic_auth("tandem@example.com", Some("sandbox-api-token"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hook = hooks
        .as_array()
        .and_then(|a| a.iter().find(|h| h["name"] == json!("tandem-seed")))
        .unwrap_or_else(|| panic!("no tandem-seed webhook in {hooks}"));
    assert_eq!(
        hook["url"],
        json!("https://tandem.example.com/webhooks/seed/jira")
    );
    assert_eq!(
        hook["filters"]["issue-related-events-section"],
        json!(r#"project in ("TEST") AND issuetype in ("Task", "Bug")"#)
    );
    let events: Vec<&str> = hook["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        events,
        [
            "jira:issue_created",
            "jira:issue_updated",
            "comment_created"
        ]
    );

    // Jira keeps the secret write-only (it is not in the listing); Tandem sent it.
    assert!(hook.get("secret").is_none());
    let sent = w
        .jira
        .request_log()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/rest/webhooks/1.0/webhook")
        .expect("the registration request");
    assert_eq!(sent.body["secret"], json!("jira-hook-secret"));

    let unknown = tandem_cli(vec![
        "jira".into(),
        "webhook".into(),
        "register".into(),
        "--config".into(),
        w.config_path().display().to_string(),
        "--connection".into(),
        "nope".into(),
        "--url".into(),
        "https://tandem.example.com".into(),
    ])
    .await;
    assert_eq!(unknown.status.code(), Some(2));
}

/// The figures quoted in the README and the issue: one uninterrupted bulk sync of the same
/// 2,000 issues. `cargo test -p tandem --test reconcile bulk_sync_figures -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check; run on demand"]
async fn bulk_sync_figures() {
    let w = world(Options {
        serve: false,
        ..Options::default()
    })
    .await;
    let expect = seed_bulk(&w).await;
    let jira_calls = w.jira.request_log().len();
    let ext_calls = w.external.request_log().len();
    let config = tandem::config::load(&w.config_path()).unwrap();
    let started = Instant::now();
    let summary = tandem::sync::run(&config, &sync_options(false), std::future::pending())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    println!(
        "bulk sync, 2000 issues, uninterrupted: {elapsed:?}, {} Jira calls, {} external calls\n{}",
        w.jira.request_log().len() - jira_calls,
        w.external.request_log().len() - ext_calls,
        summary.render()
    );
    assert_all_paired_and_equal(&w, &expect);
}
