//! Jira ↔ Jira: `tandem serve` with `[connection.external] type = "jira"` between two Jira
//! sandboxes (two sites), configured like examples/jira-to-jira/tandem.toml: a create and
//! an edit each way, status by name through transitions, each twin linked from the other
//! site's link field, and no echo once settled. Both sites deliver signed webhooks.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tandem_sandbox::{JiraSandbox, JiraSandboxConfig};

const SECRET_A: &str = "site-a-secret";
const SECRET_B: &str = "site-b-secret";

/// A `tandem serve` child, killed if the test fails before it ends.
struct Serving(Option<Child>);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn serve(config: &Path) -> (Serving, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--config"])
        .arg(config)
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

/// Polls `probe` until it gives a value, for up to 60 s.
macro_rules! eventually {
    ($what:expr, $probe:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = $probe {
                break v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {}", $what);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }};
}

fn with_summary(jira: &JiraSandbox, summary: &str) -> Vec<Value> {
    jira.issues()
        .into_iter()
        .filter(|i| i["fields"]["summary"] == json!(summary))
        .collect()
}

/// Tandem's issue writes to a site (creates, edits, transitions; not searches).
fn writes(jira: &JiraSandbox) -> usize {
    jira.request_log()
        .into_iter()
        .filter(|r| {
            (r.method == "PUT" && r.path.contains("/issue/"))
                || (r.method == "POST"
                    && (r.path.ends_with("/issue") || r.path.ends_with("/transitions")))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jira_sites_sync_creates_and_edits_both_ways() {
    let a = JiraSandbox::start(JiraSandboxConfig {
        projects: vec![("OPS".into(), "Operations".into())],
        ..JiraSandboxConfig::default()
    })
    .await
    .unwrap();
    let b = JiraSandbox::start(JiraSandboxConfig {
        projects: vec![("SUP".into(), "Support".into())],
        ..JiraSandboxConfig::default()
    })
    .await
    .unwrap();

    // The example's connection, pointed at the two sandboxes.
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jira-to-jira/tandem.toml"),
    )
    .unwrap();
    let connection = &example[example.find("[[connection]]").unwrap()..];
    let connection = connection
        .replace("https://site-a.atlassian.net", &a.url())
        .replace("https://site-b.atlassian.net", &b.url())
        .replace("poll_interval = \"60s\"", "poll_interval = \"2s\"")
        .replace("${A_JIRA_TOKEN}", "sandbox-api-token")
        .replace("${B_JIRA_TOKEN}", "sandbox-api-token")
        .replace("${A_WEBHOOK_SECRET}", SECRET_A)
        .replace("${B_WEBHOOK_SECRET}", SECRET_B)
        .replace("sync@example.com", &JiraSandboxConfig::default().email);
    assert!(!connection.contains("${"), "{connection}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tandem.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\nurl = \"sqlite://tandem.db\"\n\n\
             [worker]\nbackoff_base_ms = 100\nbackoff_cap_ms = 1000\n\n{connection}"
        ),
    )
    .unwrap();
    let (_child, base) = serve(&config);
    a.register_webhook(&format!("{base}/webhooks/a-to-b/jira"), Some(SECRET_A));
    b.register_webhook(&format!("{base}/webhooks/a-to-b/external"), Some(SECRET_B));
    let (link_a, link_b) = (
        a.external_id_field().to_string(),
        b.external_id_field().to_string(),
    );

    // A → B.
    let key_a = a.user_create_issue(
        "OPS",
        json!({"summary": "Made on site A", "description": "Written on A.", "labels": ["ops"]}),
    );
    let twin_b = eventually!("the twin on B", with_summary(&b, "Made on site A").pop());
    let twin_b_key = twin_b["key"].as_str().unwrap().to_string();
    assert_eq!(twin_b["fields"]["project"]["key"], json!("SUP"));
    assert_eq!(twin_b["fields"]["labels"], json!(["ops"]));
    assert!(
        twin_b["fields"]["description"]
            .to_string()
            .contains("Written on A."),
        "{twin_b}"
    );
    let id_of =
        |j: &JiraSandbox, key: &str| j.issue(key).unwrap()["id"].as_str().unwrap().to_string();
    let id_b = id_of(&b, &twin_b_key);
    let links = eventually!("the links", {
        let la = a.issue(&key_a).unwrap()["fields"][&link_a].clone();
        let lb = b.issue(&twin_b_key).unwrap()["fields"][&link_b].clone();
        (!la.is_null() && !lb.is_null()).then_some((la, lb))
    });
    // Site A records B's issue id (as for any external item); B records A's key.
    assert_eq!(links, (json!(id_b), json!(key_a)), "A's link, B's link");

    // B → A.
    let key_b = b.user_create_issue("SUP", json!({"summary": "Made on site B"}));
    let twin_a = eventually!("the twin on A", with_summary(&a, "Made on site B").pop());
    let twin_a_key = twin_a["key"].as_str().unwrap().to_string();
    assert_eq!(twin_a["fields"]["project"]["key"], json!("OPS"));
    assert_eq!(twin_a["fields"][&link_a], json!(id_of(&b, &key_b)));

    // Edits both ways; status by name, through each site's transitions.
    a.user_edit_issue(
        &key_a,
        json!({"summary": "Renamed on A", "status": "In Progress"}),
    );
    eventually!("the edit on B", {
        let i = b.issue(&twin_b_key).unwrap();
        (i["fields"]["summary"] == json!("Renamed on A")
            && i["fields"]["status"]["name"] == json!("In Progress"))
        .then_some(())
    });
    b.user_edit_issue(&key_b, json!({"summary": "Renamed on B", "status": "Done"}));
    eventually!("the edit on A", {
        let i = a.issue(&twin_a_key).unwrap();
        (i["fields"]["summary"] == json!("Renamed on B")
            && i["fields"]["status"]["name"] == json!("Done"))
        .then_some(())
    });

    // Done on A is Done on B too: B's Done transition also asks for a resolution.
    a.user_edit_issue(&key_a, json!({"status": "Done"}));
    eventually!("Done on B", {
        (b.issue(&twin_b_key).unwrap()["fields"]["status"]["name"] == json!("Done")).then_some(())
    });

    // Settled: no echo, no second twin.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = (writes(&a), writes(&b));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!((writes(&a), writes(&b)), before, "Tandem wrote again");
    assert_eq!(a.issues().len(), 2);
    assert_eq!(b.issues().len(), 2);
    a.shutdown().await;
    b.shutdown().await;
}
