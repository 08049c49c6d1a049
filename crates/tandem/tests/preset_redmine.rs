//! The `redmine` preset against a real Redmine (the one `.ci/redmine` installs and starts):
//! `tandem serve` as a user runs it, with the Jira sandbox on one side and
//! `preset = "redmine"` plus a URL, a project and an API key on the other. Creates both ways
//! (Redmine's by polling: it sends no webhooks), edits both ways, status, no echo, and no
//! duplicate twin after a restart.
//!
//! Runs when `TANDEM_TEST_REDMINE_URL` and `TANDEM_TEST_REDMINE_KEY` are set (CI sets them);
//! otherwise it prints a skip line. Each run makes its own Redmine project, so runs do not
//! see each other's issues.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tandem_sandbox::{JiraSandbox, JiraSandboxConfig};

const JIRA_SECRET: &str = "jira-hook-secret";

struct Redmine {
    url: String,
    key: String,
    http: reqwest::Client,
}

impl Redmine {
    fn from_env() -> Option<Redmine> {
        let url = std::env::var("TANDEM_TEST_REDMINE_URL").ok()?;
        let key = std::env::var("TANDEM_TEST_REDMINE_KEY").ok()?;
        Some(Redmine {
            url: url.trim_end_matches('/').to_string(),
            key,
            http: reqwest::Client::new(),
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("X-Redmine-API-Key", &self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("Redmine answers");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    /// A fresh project with every tracker, named after this run.
    async fn new_project(&self) -> String {
        let trackers = self
            .call(reqwest::Method::GET, "/trackers.json", None)
            .await;
        let ids: Vec<Value> = trackers["trackers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].clone())
            .collect();
        let ident = format!(
            "tandem-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        );
        self.call(
            reqwest::Method::POST,
            "/projects.json",
            Some(json!({"project": {
                "name": ident, "identifier": ident, "is_public": true,
                "tracker_ids": ids, "enabled_module_names": ["issue_tracking"]
            }})),
        )
        .await;
        ident
    }

    async fn issues(&self, project: &str) -> Vec<Value> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/issues.json?project_id={project}&status_id=*&limit=100"),
                None,
            )
            .await;
        v["issues"].as_array().cloned().unwrap_or_default()
    }

    async fn issue(&self, id: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!("/issues/{id}.json?include=journals"),
            None,
        )
        .await["issue"]
            .clone()
    }

    /// Changes recorded on an issue: one journal per update, whoever made it.
    async fn journals(&self, id: &str) -> usize {
        self.issue(id).await["journals"]
            .as_array()
            .map_or(0, Vec::len)
    }
}

/// A `tandem serve` child, killed if the test fails before stopping it (else it outlives
/// the test, holding its output open).
struct Serving(Option<Child>);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `tandem serve` in a child process; the base URL it prints first.
fn serve(config: &Path, key: &str) -> (Serving, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--config"])
        .arg(config)
        .env("TEST_REDMINE_KEY", key)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
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
    (Serving(Some(child)), base)
}

fn stop(mut serving: Serving) {
    let mut child = serving.0.take().unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "tandem serve did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `probe` (async) until it gives a value, for up to 60 s.
macro_rules! eventually {
    ($what:expr, $probe:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = $probe {
                break v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {}", $what);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }};
}

/// Tandem's issue writes to Jira (create and edit; not searches).
fn jira_writes(jira: &JiraSandbox) -> usize {
    jira.request_log()
        .into_iter()
        .filter(|r| {
            (r.method == "PUT" && r.path.contains("/issue/"))
                || (r.method == "POST"
                    && (r.path.ends_with("/issue") || r.path.ends_with("/transitions")))
        })
        .count()
}

fn jira_issue_with_summary(jira: &JiraSandbox, summary: &str) -> Vec<Value> {
    jira.issues()
        .into_iter()
        .filter(|i| i["fields"]["summary"] == json!(summary))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redmine_preset_syncs_both_ways_with_a_real_redmine() {
    let Some(redmine) = Redmine::from_env() else {
        println!(
            "skipped: set TANDEM_TEST_REDMINE_URL and TANDEM_TEST_REDMINE_KEY (`.ci/redmine` starts one)"
        );
        return;
    };
    let project = redmine.new_project().await;
    let jira = JiraSandbox::start(JiraSandboxConfig {
        projects: vec![("TEST".into(), "Test".into())],
        ..JiraSandboxConfig::default()
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tandem.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_token = "admin-token"

[storage]
url = "sqlite://tandem.db"

[worker]
backoff_base_ms = 100
backoff_cap_ms = 1000

[[connection]]
name = "redmine"
poll_interval = "2s"

[connection.filter]
projects = ["TEST"]

[connection.jira]
base_url = "{jira}"
email = "tandem@example.com"
api_token = "sandbox-api-token"
project = "TEST"
webhook_secret = "{JIRA_SECRET}"

[connection.external]
preset = "redmine"
base_url = "{redmine}"
project = "{project}"
auth = {{ value = "${{TEST_REDMINE_KEY}}" }}
"#,
            jira = jira.url(),
            redmine = redmine.url,
        ),
    )
    .unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["check", "--offline", "--config"])
        .arg(&config)
        .env("TEST_REDMINE_KEY", &redmine.key)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "tandem check --offline: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let (child, base) = serve(&config, &redmine.key);
    jira.register_webhook(&format!("{base}/webhooks/redmine/jira"), Some(JIRA_SECRET));
    let link = jira.external_id_field().to_string();

    // Jira → Redmine: a new issue gets a twin in the run's project, linked from Jira.
    let key = jira.user_create_issue(
        "TEST",
        json!({"summary": "Made in Jira", "description": "Written in Jira."}),
    );
    let twin = eventually!("the Redmine twin", {
        redmine
            .issues(&project)
            .await
            .into_iter()
            .find(|i| i["subject"] == json!("Made in Jira"))
    });
    let twin_id = twin["id"].to_string();
    assert_eq!(twin["status"]["id"], json!(1), "To Do is Redmine's New");
    assert!(
        twin["description"]
            .as_str()
            .is_some_and(|d| d.contains("Written in Jira.")),
        "{twin}"
    );
    eventually!("the link in Jira", {
        (jira.issue(&key).unwrap()["fields"][&link] == json!(twin_id)).then_some(())
    });

    // Redmine → Jira, by polling: Redmine sends no webhooks.
    let made = redmine
        .call(
            reqwest::Method::POST,
            &format!("/projects/{project}/issues.json"),
            Some(json!({"issue": {"subject": "Made in Redmine", "due_date": "2027-01-15"}})),
        )
        .await;
    let rm_id = made["issue"]["id"].to_string();
    let jira_twin = eventually!("the Jira twin", {
        jira_issue_with_summary(&jira, "Made in Redmine")
            .into_iter()
            .next()
    });
    let jira_twin_key = jira_twin["key"].as_str().unwrap().to_string();
    assert_eq!(jira_twin["fields"][&link], json!(rm_id));
    assert_eq!(jira_twin["fields"]["duedate"], json!("2027-01-15"));

    // Edits both ways, and status both ways through the preset's value map.
    jira.user_edit_issue(
        &key,
        json!({"summary": "Renamed in Jira", "status": "In Progress"}),
    );
    eventually!("the rename and status in Redmine", {
        let i = redmine.issue(&twin_id).await;
        (i["subject"] == json!("Renamed in Jira") && i["status"]["id"] == json!(2)).then_some(())
    });
    redmine
        .call(
            reqwest::Method::PUT,
            &format!("/issues/{rm_id}.json"),
            Some(json!({"issue": {"subject": "Renamed in Redmine", "status_id": 5}})),
        )
        .await;
    eventually!("the rename and status in Jira", {
        let i = jira.issue(&jira_twin_key).unwrap();
        (i["fields"]["summary"] == json!("Renamed in Redmine")
            && i["fields"]["status"]["name"] == json!("Done"))
        .then_some(())
    });

    // No echo: once settled, several polls write nothing more on either side.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let jira_before = jira_writes(&jira);
    let journals_before = (
        redmine.journals(&twin_id).await,
        redmine.journals(&rm_id).await,
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        jira_writes(&jira),
        jira_before,
        "Tandem wrote to Jira again"
    );
    assert_eq!(
        (
            redmine.journals(&twin_id).await,
            redmine.journals(&rm_id).await
        ),
        journals_before,
        "Tandem wrote to Redmine again"
    );

    // A restart and more polls make no second twin and no write.
    stop(child);
    let (child, _base) = serve(&config, &redmine.key);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        jira_issue_with_summary(&jira, "Renamed in Redmine").len(),
        1
    );
    assert_eq!(jira.issues().len(), 2, "exactly the two issues of this run");
    assert_eq!(redmine.issues(&project).await.len(), 2);
    assert_eq!(
        jira_writes(&jira),
        jira_before,
        "Tandem wrote to Jira after the restart"
    );
    assert_eq!(
        (
            redmine.journals(&twin_id).await,
            redmine.journals(&rm_id).await
        ),
        journals_before,
        "Tandem wrote to Redmine after the restart"
    );

    // And it still syncs after the restart.
    redmine
        .call(
            reqwest::Method::PUT,
            &format!("/issues/{twin_id}.json"),
            Some(json!({"issue": {"subject": "Renamed again in Redmine"}})),
        )
        .await;
    eventually!("the edit after the restart", {
        (jira.issue(&key).unwrap()["fields"]["summary"] == json!("Renamed again in Redmine"))
            .then_some(())
    });
    stop(child);
    jira.shutdown().await;
}
