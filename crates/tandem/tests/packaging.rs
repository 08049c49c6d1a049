//! What an operator installing Tandem relies on: the systemd unit in `packaging/` has the keys
//! it needs, `tandem --version` names the commit, `tandem completions` prints completions,
//! and `tandem serve` reloads its configuration on SIGHUP: a bad file keeps the old one
//! serving, a good one takes over and the engine goes on syncing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// A unit file as systemd reads it: sections of `Key=Value` lines, keys repeatable.
fn parse_unit(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_string());
            sections.entry(name.to_string()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not Key=Value: {raw}", n + 1));
        assert!(
            !key.trim().is_empty() && key.trim().chars().all(|c| c.is_ascii_alphanumeric()),
            "line {}: bad key in {raw}",
            n + 1
        );
        let section = current
            .clone()
            .unwrap_or_else(|| panic!("line {}: key outside a section", n + 1));
        sections
            .get_mut(&section)
            .unwrap()
            .push((key.trim().to_string(), value.trim().to_string()));
    }
    sections
}

#[test]
fn the_systemd_unit_has_the_keys_a_hardened_service_needs() {
    let text = std::fs::read_to_string(repo("packaging/tandem.service")).unwrap();
    let unit = parse_unit(&text);
    for section in ["Unit", "Service", "Install"] {
        assert!(unit.contains_key(section), "no [{section}] section");
    }
    let get = |section: &str, key: &str| -> Vec<String> {
        unit[section]
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let one = |section: &str, key: &str| -> String {
        let v = get(section, key);
        assert_eq!(v.len(), 1, "[{section}] {key}: {v:?}");
        v[0].clone()
    };
    let start = one("Service", "ExecStart");
    assert!(
        start.starts_with('/') && start.contains("tandem serve --config /etc/tandem/tandem.toml"),
        "{start}"
    );
    assert_eq!(one("Service", "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("Service", "Restart"), "on-failure");
    assert_eq!(one("Service", "StateDirectory"), "tandem");
    assert!(one("Service", "EnvironmentFile").starts_with("/etc/tandem/"));
    assert!(
        get("Service", "DynamicUser") == ["yes"] || !get("Service", "User").is_empty(),
        "neither DynamicUser=yes nor User="
    );
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one("Service", key), value, "[Service] {key}");
    }
    assert_eq!(one("Install", "WantedBy"), "multi-user.target");
    // The store the unit's comment tells people to use is inside the state directory.
    assert!(text.contains("sqlite:///var/lib/tandem/tandem.db"));
    let readme = std::fs::read_to_string(repo("packaging/README.md")).unwrap();
    assert!(readme.contains("cargo install --path crates/tandem"));
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // build.rs gives the binary and this test the same value.
    let commit = env!("TANDEM_GIT_COMMIT");
    assert!(!commit.is_empty());
    assert_eq!(
        text.trim(),
        format!("tandem {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
    // Not overridden and built in a checkout: the commit is the checkout's.
    if std::env::var_os("TANDEM_GIT_COMMIT").is_none()
        && let Ok(git) = Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
        && git.status.success()
    {
        let head = String::from_utf8_lossy(&git.stdout).trim().to_string();
        assert_eq!(commit, head, "built from another commit than HEAD");
    }
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    let run = |shell: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {:?}", out.status);
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run("bash");
    assert!(bash.contains("_tandem()"), "{bash}");
    assert!(bash.contains("complete -F _tandem"), "{bash}");
    for sub in ["init", "serve", "check", "completions"] {
        assert!(bash.contains(sub), "bash completions miss `{sub}`");
    }
    assert!(run("zsh").starts_with("#compdef tandem"));
    assert!(run("fish").contains("complete -c tandem"));
    let bad = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["completions", "cmd.exe"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// Lines a child writes to one of its streams, read on a thread.
fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line containing `needle`, within 30 s; the lines passed over are returned too.
fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> (String, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return (line, seen),
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with {needle:?}; saw:\n{}", seen.join("\n")),
        }
    }
}

fn hup(child: &Child) {
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn admin_status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/links"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_serving_on_a_bad_config_and_reloads_a_good_one() {
    let jira = JiraSandbox::start(JiraSandboxConfig::default())
        .await
        .unwrap();
    let external = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo("examples/seed/fieldMappings.csv"),
        dir.path().join("fieldMappings.csv"),
    )
    .unwrap();
    let example = std::fs::read_to_string(repo("examples/seed/tandem.toml"))
        .unwrap()
        .replace("http://127.0.0.1:8081", &jira.url())
        .replace("http://127.0.0.1:8082", &external.url())
        .replace("127.0.0.1:8080", "127.0.0.1:0");
    let with_token = |token: &str| {
        example.replace(
            "admin_token = \"sandbox-admin-token\"",
            &format!("admin_token = \"{token}\""),
        )
    };
    let config = dir.path().join("tandem.toml");
    std::fs::write(&config, with_token("first-token")).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tandem serve starts");
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    let (first, _) = wait_line(&out, "tandem listening on ");
    let base = first.trim_start_matches("tandem listening on ").to_string();
    assert_eq!(admin_status(&base, "first-token").await, 200);

    // A file with a problem: logged with its line, and the old configuration goes on.
    std::fs::write(
        &config,
        with_token("second-token").replace("[worker]", "[worker]\nconcurrencee = 4"),
    )
    .unwrap();
    hup(&child);
    let (refused, before) = wait_line(&err, "the configuration was not reloaded");
    assert!(
        before
            .iter()
            .any(|l| l.contains("tandem.toml:") && l.contains("concurrencee")),
        "the problem is not logged with its place:\n{}",
        before.join("\n")
    );
    assert!(refused.contains("ERROR"), "{refused}");
    assert!(child.try_wait().unwrap().is_none(), "tandem serve exited");
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(admin_status(&base, "first-token").await, 200);
    assert_eq!(admin_status(&base, "second-token").await, 401);

    // A good file: the new configuration takes over, on the same port. An issue created
    // just before is accepted by the old engine and must still get its twin.
    jira.register_webhook(&format!("{base}/webhooks/seed/jira"), None);
    let before_reload =
        jira.user_create_issue("TEST", serde_json::json!({"summary": "before reload"}));
    std::fs::write(&config, with_token("second-token")).unwrap();
    hup(&child);
    let (reloaded, _) = wait_line(&out, "tandem reloaded ");
    assert!(
        reloaded.ends_with(&format!("listening on {base}")),
        "{reloaded} (was {base})"
    );
    assert_eq!(admin_status(&base, "second-token").await, 200);
    assert_eq!(admin_status(&base, "first-token").await, 401);
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    // The new engine syncs: an issue created in Jira gets its twin outside, and so did the
    // one from before the reload.
    let after_reload =
        jira.user_create_issue("TEST", serde_json::json!({"summary": "after reload"}));
    for key in [before_reload, after_reload] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !external
            .items()
            .iter()
            .any(|i| i["sourceIssueId"] == serde_json::json!(key))
        {
            assert!(Instant::now() < deadline, "{key} got no twin");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(external.items().len(), 2, "one twin each");

    // A valid file that cannot start (its port is taken): the previous one starts again.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    std::fs::write(
        &config,
        with_token("third-token").replace("127.0.0.1:0", &taken_addr),
    )
    .unwrap();
    hup(&child);
    let (kept, _) = wait_line(&out, "tandem kept the previous configuration");
    assert!(kept.ends_with(&format!("listening on {base}")), "{kept}");
    assert_eq!(admin_status(&base, "second-token").await, 200);
    assert_eq!(admin_status(&base, "third-token").await, 401);
    drop(taken);

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "tandem serve did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    jira.shutdown().await;
    external.shutdown().await;
}
