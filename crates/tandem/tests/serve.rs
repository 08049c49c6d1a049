//! `tandem serve` as a user runs it: a child process with a config file, answering on its
//! port, and stopping cleanly (exit 0) on SIGTERM, even with a slow client connected.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_and_exits_zero_on_sigterm() {
    let jira = JiraSandbox::start(JiraSandboxConfig::default())
        .await
        .unwrap();
    let external = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mapping = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/seed/fieldMappings.csv"
    ))
    .unwrap();
    std::fs::write(dir.path().join("fieldMappings.csv"), mapping).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/seed/tandem.toml"
    ))
    .unwrap()
    .replace("http://127.0.0.1:8081", &jira.url())
    .replace("http://127.0.0.1:8082", &external.url())
    .replace("127.0.0.1:8080", "127.0.0.1:0");
    let config = dir.path().join("tandem.toml");
    std::fs::write(&config, example).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tandem serve starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("tandem listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();

    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    // A client that sent half a header and nothing since must not keep the process alive:
    // the server closes it when its header timeout or the shutdown grace (10 s) runs out.
    let mut half_sent =
        std::net::TcpStream::connect(base.strip_prefix("http://").unwrap()).unwrap();
    std::io::Write::write_all(
        &mut half_sent,
        b"POST /webhooks/seed/jira HTTP/1.1\r\nHost: t",
    )
    .unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "tandem serve did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    drop(half_sent);
    // Logs are JSON lines, as asked for with --log-format json.
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    let first = logs.lines().next().expect("some log output");
    let parsed: serde_json::Value = serde_json::from_str(first).expect("a JSON log line");
    assert!(parsed.get("level").is_some(), "{first}");
    jira.shutdown().await;
    external.shutdown().await;
}

/// The README's first command: `tandem demo --once` plays the round trip and exits 0.
#[test]
fn demo_once_plays_the_round_trip_and_exits_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["demo", "--once"])
        .output()
        .expect("tandem demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "step 1: created TEST-1 in Jira → twin EXT-1 created outside",
        "step 2: edited summary of EXT-1 outside → TEST-1 updated in Jira",
        "step 3: edited due date of TEST-1 in Jira → EXT-1 updated outside",
        "All steps passed.",
        "  Console:          http://127.0.0.1:",
        "/signin?once=",
        "it signs you in once",
        "sign in with the demo's admin token: sandbox-admin-token",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
}
