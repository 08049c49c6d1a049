//! Attachments end to end, on the sandboxes with Tandem serving: a file crosses both ways
//! byte-identical (SHA-256 compared), a deletion follows (or is kept, by setting), a file
//! over `attachment_max_bytes` is a visible skip that fails nothing, and neither Tandem's own
//! uploads (their webhooks), nor redelivered webhooks, polls, or uploads whose answer was lost
//! make a second copy.
//!
//! The last test moves a 50 MiB file from Jira to the external system through a `tandem
//! serve` child process and prints the time, the throughput and the process's peak RSS
//! (`VmHWM`) before and after: the figures docs/BENCHMARKS.md quotes. It asserts no timing.

mod common;

use common::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A file's worth of bytes that no two calls share (so identities differ).
fn content(seed: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x: u32 = 0x9E37_79B9 ^ u32::from(seed);
    for _ in 0..len {
        // xorshift: cheap, and not compressible into a pattern a bug could hide behind.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push((x >> 24) as u8);
    }
    out
}

/// (file name, sha256) of each file, sorted.
fn identities(files: &[(String, String, Vec<u8>)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = files.iter().map(|(_, n, d)| (n.clone(), sha(d))).collect();
    v.sort();
    v
}

/// Upload calls Tandem made to each sandbox.
fn uploads(w: &World) -> (usize, usize) {
    let jira = w
        .jira
        .request_log()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/attachments"))
        .count();
    let ext = w
        .external
        .request_log()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/attachments"))
        .count();
    (jira, ext)
}

async fn linked_pair(w: &World, summary: &str) -> (String, String) {
    let key = w
        .jira
        .user_create_issue("TEST", json!({ "summary": summary }));
    let twin = eventually("twin outside", || w.twins_of(&key).into_iter().next()).await;
    quiesce(w).await;
    (key, twin["id"].as_str().unwrap().to_string())
}

async fn settle(w: &World) {
    quiesce(w).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    quiesce(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_crosses_both_ways_byte_identical_and_deletions_follow() {
    let w = world(Options::default()).await;
    let (key, ext) = linked_pair(&w, "Screenshots attached").await;

    // Jira → outside: 300 KiB, more than one chunk of every buffer on the way.
    let report = content(1, 300 * 1024);
    let jira_att = w.jira.user_attach(
        "alice",
        &key,
        "report.pdf",
        "application/pdf",
        report.clone(),
    );
    let outside = eventually("the report outside", || {
        Some(w.external.attachments(&ext)).filter(|l| !l.is_empty())
    })
    .await;
    assert_eq!(outside.len(), 1);
    assert_eq!(outside[0].1, "report.pdf");
    assert_eq!(sha(&outside[0].2), sha(&report), "byte-identical");

    // Outside → Jira.
    let photo = content(2, 70_000);
    let ext_att = w
        .external
        .user_attach(&ext, "photo.png", "image/png", photo.clone());
    eventually("the photo in Jira", || {
        Some(w.jira.attachments(&key)).filter(|l| l.len() == 2)
    })
    .await;
    settle(&w).await;
    let both = vec![
        ("photo.png".to_string(), sha(&photo)),
        ("report.pdf".to_string(), sha(&report)),
    ];
    assert_eq!(identities(&w.jira.attachments(&key)), both);
    assert_eq!(identities(&w.external.attachments(&ext)), both);
    // One upload each way: the webhooks of Tandem's own uploads were echoes.
    assert_eq!(uploads(&w), (1, 1));

    // A deletion on either side deletes the twin.
    assert!(w.jira.user_delete_attachment("alice", &jira_att));
    eventually("the report deleted outside", || {
        Some(()).filter(|_| w.external.attachments(&ext).len() == 1)
    })
    .await;
    assert!(w.external.user_delete_attachment(&ext, &ext_att));
    eventually("the photo deleted in Jira", || {
        Some(()).filter(|_| w.jira.attachments(&key).is_empty())
    })
    .await;
    settle(&w).await;
    assert!(w.external.attachments(&ext).is_empty());
    assert_eq!(uploads(&w), (1, 1), "nothing uploaded back");
    let audit = w.engine().store.list_audit(None, 100).await.unwrap();
    let rows: Vec<&str> = audit
        .iter()
        .filter(|a| a.mapping_key.starts_with("attachment:"))
        .map(|a| a.mapping_key.as_str())
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(
        rows.iter().filter(|k| **k == "attachment:uploaded").count(),
        2
    );
    assert_eq!(
        rows.iter().filter(|k| **k == "attachment:deleted").count(),
        2
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_webhooks_polls_and_lost_answers_make_no_second_copy() {
    let w = world(Options {
        poll_interval: Some("300ms"),
        // Enough attempts that the calls losing their answers never park the event.
        max_attempts: 40,
        ..Options::default()
    })
    .await;
    let (key, ext) = linked_pair(&w, "Duplicates?").await;

    // Every Jira webhook twice, the poller listing the issue again and again, and half the
    // external system's answers lost after it acted (uploads included).
    w.jira.faults().set_webhook_duplicate_rate(1.0);
    w.external.faults().set_lost_response_rate(0.5);
    let files: Vec<Vec<u8>> = (0..3).map(|i| content(10 + i, 40_000)).collect();
    for (i, f) in files.iter().enumerate() {
        w.jira.user_attach(
            "bob",
            &key,
            &format!("log-{i}.txt"),
            "text/plain",
            f.clone(),
        );
    }
    // The same file under the same name twice is two attachments: two twins, not one.
    w.jira
        .user_attach("bob", &key, "log-0.txt", "text/plain", files[0].clone());
    eventually("four files outside", || {
        Some(()).filter(|_| w.external.attachments(&ext).len() >= 4)
    })
    .await;
    w.external.faults().clear();
    w.jira.faults().clear();
    // Polls keep coming; let several pass.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    settle(&w).await;
    let outside = w.external.attachments(&ext);
    assert_eq!(
        outside.len(),
        4,
        "no second copy: {:?}",
        identities(&outside)
    );
    assert_eq!(identities(&outside), identities(&w.jira.attachments(&key)));
    // Nothing came back to Jira (the twins outside are Tandem's own).
    assert_eq!(w.jira.attachments(&key).len(), 4);
    assert_eq!(uploads(&w).0, 0);
    // Nothing dead.
    let depth = w.engine().store.queue_depth().await.unwrap();
    assert!(
        depth
            .iter()
            .all(|(_, s, _)| *s != tandem::store::EventStatus::Dead),
        "{depth:?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_file_is_a_visible_skip_and_fails_nothing() {
    let w = world(Options {
        connection_extra: "attachment_max_bytes = 50000\nattachment_deletes = \"keep\"\n".into(),
        ..Options::default()
    })
    .await;
    let (key, ext) = linked_pair(&w, "Big files").await;
    w.jira.user_attach(
        "alice",
        &key,
        "dump.bin",
        "application/octet-stream",
        content(3, 60_000),
    );
    let small = content(4, 1000);
    let small_id = w
        .jira
        .user_attach("alice", &key, "small.txt", "text/plain", small.clone());
    eventually("the small file outside", || {
        Some(w.external.attachments(&ext)).filter(|l| !l.is_empty())
    })
    .await;
    // The summary still syncs: the item did not fail.
    w.jira
        .user_edit_issue(&key, json!({ "summary": "Big files, renamed" }));
    eventually("the new summary outside", || {
        w.twins_of(&key)
            .into_iter()
            .next()
            .filter(|t| ext_field(t, 1001).as_deref() == Some("Big files, renamed"))
    })
    .await;
    settle(&w).await;
    let outside = w.external.attachments(&ext);
    assert_eq!(
        identities(&outside),
        vec![("small.txt".to_string(), sha(&small))]
    );
    // The skip is in the audit, once, with its reason.
    let audit = w.engine().store.list_audit(None, 100).await.unwrap();
    let skips: Vec<_> = audit
        .iter()
        .filter(|a| a.mapping_key == "attachment:skipped")
        .collect();
    assert_eq!(skips.len(), 1, "{skips:?}");
    let said = format!("{:?}", skips[0].to);
    assert!(
        said.contains("dump.bin") && said.contains("attachment_max_bytes"),
        "{said}"
    );
    // The oversized file was never downloaded.
    assert!(
        !w.jira
            .request_log()
            .iter()
            .any(|r| r.path.contains("/attachment/content/") && !r.path.ends_with(&small_id)),
        "only the small file was read"
    );
    // `attachment_deletes = "keep"`: deleting the origin keeps the twin.
    assert!(w.jira.user_delete_attachment("alice", &small_id));
    settle(&w).await;
    assert_eq!(w.external.attachments(&ext).len(), 1);
    w.stop().await;
}

/// Starts `tandem serve` on the world's config as a child process and points the sandboxes'
/// webhooks at it; answers the child.
fn spawn_serve(w: &World) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--config"])
        .arg(w.config_path())
        .current_dir(w.dir.path())
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(w.dir.path().join("serve.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .expect("tandem serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("tandem listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    w.jira.register_webhook(
        &format!("{base}/webhooks/seed/jira"),
        Some("jira-hook-secret"),
    );
    w.external.set_webhook(
        &format!("{base}/webhooks/seed/external"),
        Some("ext-hook-token"),
    );
    child
}

/// A world for a `tandem serve` child: sandboxes and config only.
async fn child_world(connection_extra: String) -> World {
    world(Options {
        serve: false,
        connection_extra,
        server_extra: "listen = \"127.0.0.1:0\"\n".into(),
        // A restarted process takes over a killed one's leases quickly.
        lease_seconds: 10,
        max_attempts: 40,
        ..Options::default()
    })
    .await
}

/// Waits up to `secs` for `probe`.
async fn within<T>(secs: u64, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `kill -9` of the engine after the upload reached the external system but before its
/// answer did (the link is still pending): the restarted engine finds the twin by its
/// identity and adopts it. The file is there once, byte-identical, uploaded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_makes_no_second_copy() {
    let w = child_world(String::new()).await;
    let mut child = spawn_serve(&w);
    let key = w
        .jira
        .user_create_issue("TEST", json!({ "summary": "Crash while uploading" }));
    let twin = within(60, "twin outside", || w.twins_of(&key).into_iter().next()).await;
    let ext = twin["id"].as_str().unwrap().to_string();

    // Every answer of the external system held back 3 s (less than the engine's request
    // timeout, half the lease, so its listing gets through): the upload is handled, and the engine is still
    // waiting for its answer when it is killed.
    w.external
        .faults()
        .set_slow_answers(1.0, Duration::from_secs(3));
    let file = content(7, 200_000);
    w.jira
        .user_attach("alice", &key, "trace.log", "text/plain", file.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.external.attachments(&ext).is_empty() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(w.dir.path().join("serve.log")).unwrap_or_default();
            panic!("the upload never reached the external system; tandem serve said:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait();
    w.external.faults().clear();

    let mut child = spawn_serve(&w);
    // The killed process's event is taken over once its lease owner is seen dead; the
    // reconcile adopts the twin. Another Jira event of the pair proves the engine caught up.
    w.jira
        .user_edit_issue(&key, json!({ "summary": "Crash while uploading, after" }));
    within(60, "the engine back at work", || {
        w.twins_of(&key)
            .into_iter()
            .next()
            .filter(|t| ext_field(t, 1001).as_deref() == Some("Crash while uploading, after"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let outside = w.external.attachments(&ext);
    assert_eq!(
        identities(&outside),
        vec![("trace.log".to_string(), sha(&file))],
        "once, byte-identical"
    );
    assert_eq!(uploads(&w), (0, 1), "uploaded once");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The peak resident set (`VmHWM`) of process `pid`, in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A 50 MiB file from Jira to the external system through a `tandem serve` child process:
/// prints the time, MiB/s and the process's peak RSS before and after (no assertion on
/// them). The file arrives byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_mib_jira_to_external_through_tandem_serve() {
    const SIZE: usize = 50 * 1024 * 1024;
    let w = child_world(format!("attachment_max_bytes = {}\n", 64 * 1024 * 1024)).await;
    let mut child = spawn_serve(&w);
    let pid = child.id();
    let key = w
        .jira
        .user_create_issue("TEST", json!({ "summary": "A large file" }));
    let twin = eventually("twin outside", || w.twins_of(&key).into_iter().next()).await;
    let ext = twin["id"].as_str().unwrap().to_string();
    // A small file first, so the attachment path has run once before the baseline.
    w.jira
        .user_attach("alice", &key, "warmup.txt", "text/plain", content(5, 4096));
    eventually("the warm-up file outside", || {
        Some(()).filter(|_| w.external.attachments(&ext).len() == 1)
    })
    .await;
    let before = vm_hwm_kib(pid).expect("VmHWM of tandem serve");

    let big = content(6, SIZE);
    let big_sha = sha(&big);
    let started = Instant::now();
    w.jira
        .user_attach("alice", &key, "disk.img", "application/octet-stream", big);
    let deadline = Instant::now() + Duration::from_secs(600);
    let arrived = loop {
        let files = w.external.attachments(&ext);
        if let Some(f) = files.into_iter().find(|(_, n, _)| n == "disk.img") {
            break f;
        }
        assert!(Instant::now() < deadline, "the 50 MiB file did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = started.elapsed();
    let after = vm_hwm_kib(pid).expect("VmHWM of tandem serve");
    assert_eq!(arrived.2.len(), SIZE);
    assert_eq!(sha(&arrived.2), big_sha, "byte-identical");
    let mib = SIZE as f64 / (1024.0 * 1024.0);
    println!(
        "attachment 50 MiB Jira → external: {:.2} s, {:.1} MiB/s; tandem serve VmHWM \
         before {:.1} MiB, after {:.1} MiB (+{:.1} MiB)",
        took.as_secs_f64(),
        mib / took.as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / 1024.0
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
}
