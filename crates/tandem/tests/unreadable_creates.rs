//! A create whose answer cannot be read must never multiply twins (DESIGN §2 invariant 2).
//!
//! The external side is a small ticket tracker served by the test, configured with
//! `format = "custom"` and a mistyped `id_pointer` on its `create` operation: every create
//! there takes effect, and Tandem cannot read the new ticket's id from the answer. The
//! ticket then comes back (through the tracker's webhook, or through polling when there are
//! no webhooks) as an unknown item. Without protection it was twinned into Jira, whose twin
//! was copied back, and so on. These tests drive the real `tandem serve` wiring (in process)
//! against the Jira sandbox and that tracker, and check what a user would: each item has
//! exactly one twin on the other side, in both directions, and no create loop starts.

mod common;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{SecondsFormat, Utc};
use common::{eventually, serve};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem::app::{self, Running};
use tandem::store::{EventFilter, EventStatus, Store};
use tandem_core::Side;
use tandem_sandbox::{JiraSandbox, JiraSandboxConfig};

const MAPPING: &str = "jiraField,externalField,direction,type\n\
summary,subject,both,text\n\
customfield_123456,team,both,text\n";

const DESK_TOKEN: &str = "desk-hook-token";

/// The tracker: tickets `{id, subject, team, updated_at}`; every write is answered, logged,
/// and (when a webhook is set) announced as `{"event": "created"|"updated", "id": N}`.
#[derive(Default)]
struct Desk {
    tickets: BTreeMap<u64, Value>,
    creates: usize,
    webhook: Option<String>,
}

type DeskState = Arc<Mutex<Desk>>;

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Sends the delivery the way trackers do: after the write, from elsewhere.
fn announce(desk: &Desk, event: &str, id: u64) {
    if let Some(url) = desk.webhook.clone() {
        let body = json!({"event": event, "id": id});
        tokio::spawn(async move {
            for _ in 0..20 {
                let sent = reqwest::Client::new()
                    .post(&url)
                    .bearer_auth(DESK_TOKEN)
                    .json(&body)
                    .send()
                    .await;
                if sent.is_ok_and(|r| r.status().is_success()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
}

fn write_ticket(d: &mut Desk, id: Option<u64>, patch: &Value) -> Option<Value> {
    let id = match id {
        Some(id) => id,
        None => {
            d.creates += 1;
            let id = 40 + d.tickets.len() as u64 + 1;
            d.tickets.insert(id, json!({"id": id}));
            id
        }
    };
    let t = d.tickets.get_mut(&id)?;
    for (k, v) in patch.as_object().into_iter().flatten() {
        t[k] = v.clone();
    }
    t["updated_at"] = json!(now_text());
    Some(t.clone())
}

async fn desk() -> (String, DeskState) {
    let state: DeskState = Arc::default();
    let app = axum::Router::new()
        .route(
            "/api/tickets",
            axum::routing::post(
                |State(s): State<DeskState>, axum::Json(body): axum::Json<Value>| async move {
                    let mut d = s.lock().expect("lock");
                    let t = write_ticket(&mut d, None, &body["ticket"]).expect("new ticket");
                    announce(&d, "created", t["id"].as_u64().unwrap_or(0));
                    (StatusCode::CREATED, axum::Json(json!({"ticket": t}))).into_response()
                },
            )
            .get(
                |State(s): State<DeskState>, Query(q): Query<BTreeMap<String, String>>| async move {
                    let d = s.lock().expect("lock");
                    let since = q.get("updated_since").cloned().unwrap_or_default();
                    let list: Vec<Value> = d
                        .tickets
                        .values()
                        .filter(|t| t["updated_at"].as_str().unwrap_or("") >= since.as_str())
                        .cloned()
                        .collect();
                    axum::Json(json!({"tickets": list}))
                },
            ),
        )
        .route(
            "/api/tickets/{id}",
            axum::routing::put(
                |State(s): State<DeskState>,
                 Path(id): Path<u64>,
                 axum::Json(body): axum::Json<Value>| async move {
                    let mut d = s.lock().expect("lock");
                    match write_ticket(&mut d, Some(id), &body["ticket"]) {
                        Some(t) => {
                            announce(&d, "updated", id);
                            axum::Json(json!({"ticket": t})).into_response()
                        }
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                },
            )
            .get(
                |State(s): State<DeskState>, Path(id): Path<u64>| async move {
                    let d = s.lock().expect("lock");
                    match d.tickets.get(&id) {
                        Some(t) => axum::Json(json!({"ticket": t})).into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                },
            ),
        )
        .with_state(state.clone());
    (serve(app).await, state)
}

/// How changes reach Tandem.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path2 {
    Webhooks,
    Polling,
}

struct Rig {
    jira: JiraSandbox,
    desk: DeskState,
    desk_url: String,
    dir: tempfile::TempDir,
    path: Path2,
    tandem: Option<Running>,
}

impl Rig {
    async fn new(path: Path2) -> Rig {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let jira = JiraSandbox::start(JiraSandboxConfig::default())
            .await
            .expect("jira sandbox");
        let (desk_url, desk) = desk().await;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("fieldMappings.csv"), MAPPING).unwrap();
        Rig {
            jira,
            desk,
            desk_url,
            dir,
            path,
            tandem: None,
        }
    }

    /// Starts Tandem with the create operation's `id_pointer` (`/ticket/idd` is the typo).
    async fn start(&mut self, create_id_pointer: &str) {
        let config = format!(
            r#"
[server]
admin_token = "admin-token"
[storage]
url = "sqlite://{db}"
[worker]
concurrency = 4
max_attempts = 200
backoff_base_ms = 50
backoff_cap_ms = 300
lease_seconds = 30
[[connection]]
name = "seed"
mapping = "fieldMappings.csv"
poll_interval = "{poll}"
[connection.filter]
projects = ["TEST"]
[connection.jira]
base_url = "{jira}"
api = "cloud"
email = "tandem@example.com"
api_token = "sandbox-api-token"
project = "TEST"
issue_type = "Task"
webhook_secret = "jira-hook-secret"
[connection.external]
type = "rest"
base_url = "{desk}"
format = "custom"
webhook_payload = "id_only"
webhook_token = "{DESK_TOKEN}"
[connection.external.operations]
create = {{ method = "POST", path = "/api/tickets", body = '{{"ticket": {{{{fields}}}}}}', id_pointer = "{create_id_pointer}" }}
update = {{ method = "PUT", path = "/api/tickets/{{id}}", body = '{{"ticket": {{{{fields}}}}}}' }}
fetch = {{ method = "GET", path = "/api/tickets/{{id}}", item_pointer = "/ticket" }}
list_changed = {{ method = "GET", path = "/api/tickets?updated_since={{since}}", items_pointer = "/tickets", updated_pointer = "/updated_at", id_pointer = "/id" }}
[connection.external.webhook]
id_pointer = "/id"
event_pointer = "/event"
[[connection.external.fields]]
id = "subject"
read = "/subject"
[[connection.external.fields]]
id = "team"
read = "/team"
"#,
            db = self.dir.path().join("tandem.db").display(),
            poll = match self.path {
                Path2::Webhooks => "60s",
                Path2::Polling => "1s",
            },
            jira = self.jira.url(),
            desk = self.desk_url,
        );
        let path = self.dir.path().join("tandem.toml");
        std::fs::write(&path, config).unwrap();
        let config = tandem::config::load(&path).expect("config loads");
        let running = app::start(
            config,
            "127.0.0.1:0".parse().unwrap(),
            app::metrics_handle(),
        )
        .await
        .expect("tandem starts");
        let base = format!("http://{}", running.addr);
        if self.path == Path2::Webhooks {
            self.jira.register_webhook(
                &format!("{base}/webhooks/seed/jira"),
                Some("jira-hook-secret"),
            );
            self.desk.lock().unwrap().webhook = Some(format!("{base}/webhooks/seed/external"));
        }
        self.tandem = Some(running);
    }

    async fn stop(&mut self) {
        if let Some(t) = self.tandem.take() {
            t.shutdown().await;
        }
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.tandem.as_ref().expect("running").engine.store
    }

    /// The text of one of Tandem's own pages, as an operator reads it.
    async fn get(&self, path: &str) -> String {
        let addr = self.tandem.as_ref().expect("running").addr;
        reqwest::Client::new()
            .get(format!("http://{addr}{path}"))
            .bearer_auth("admin-token")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A `tandem` command's output (`creates status`, `events list`), as an operator runs it.
    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join("tandem.toml"))
            .output()
            .expect("tandem creates status runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn tickets(&self) -> Vec<Value> {
        self.desk
            .lock()
            .unwrap()
            .tickets
            .values()
            .cloned()
            .collect()
    }

    fn desk_creates(&self) -> usize {
        self.desk.lock().unwrap().creates
    }

    /// A person creates a ticket in the tracker.
    fn user_create_ticket(&self, subject: &str, team: &str) -> u64 {
        let mut d = self.desk.lock().unwrap();
        let t = write_ticket(&mut d, None, &json!({"subject": subject, "team": team})).unwrap();
        let id = t["id"].as_u64().unwrap();
        announce(&d, "created", id);
        id
    }

    /// Tickets whose subject is `subject`, and Jira issues whose summary is.
    fn copies(&self, subject: &str) -> (usize, usize) {
        let tickets = self
            .tickets()
            .iter()
            .filter(|t| t["subject"] == json!(subject))
            .count();
        let issues = self
            .jira
            .issues()
            .iter()
            .filter(|i| i["fields"]["summary"] == json!(subject))
            .count();
        (issues, tickets)
    }

    /// Waits until the item called `subject` is linked (both sides hold it, and the store has
    /// the link), then a few poll intervals more, and checks it still has exactly one copy
    /// on each side: one twin, and no create loop.
    async fn assert_one_twin_each_side(&self, subject: &str) {
        let store = self.store().clone();
        let jira = &self.jira;
        let field = jira.external_id_field().to_string();
        let key = eventually(&format!("{subject} is linked"), || {
            jira.issues()
                .into_iter()
                .find(|i| {
                    i["fields"]["summary"] == json!(subject) && !i["fields"][&field].is_null()
                })
                .and_then(|i| i["key"].as_str().map(str::to_string))
        })
        .await;
        let issue = jira.issue(&key).unwrap();
        let ticket_id = issue["fields"][&field].as_str().unwrap().to_string();
        // Jira's link field is written with the create, a moment before the worker stores
        // the link: wait for the store too rather than read it at once.
        let link = eventually_async("the ticket is linked in the store", || {
            let store = store.clone();
            let ticket_id = ticket_id.clone();
            async move {
                store
                    .link_by_item("seed", Side::External, &ticket_id)
                    .await
                    .unwrap()
            }
        })
        .await;
        assert_eq!(link.jira_id, issue["id"].as_str().unwrap());
        // Long enough for a copy of a copy to appear if a loop had started.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            self.copies(subject),
            (1, 1),
            "{subject}: Jira issues and tickets holding it ({:?} path)",
            self.path
        );
    }
}

async fn unreadable_creates_make_one_twin(path: Path2) {
    let mut rig = Rig::new(path).await;
    rig.start("/ticket/idd").await;

    // Jira → tracker: the ticket is made, its id is unreadable; it comes back and is
    // recognised as the twin.
    rig.jira.user_create_issue(
        "TEST",
        json!({"summary": "Printer on fire", "customfield_123456": "ops"}),
    );
    rig.assert_one_twin_each_side("Printer on fire").await;
    assert_eq!(rig.desk_creates(), 1, "one create in the tracker");

    // Creating there is stopped now, visibly: the store, `/metrics` and the dashboard say so.
    let circuits = rig.store().create_circuits().await.unwrap();
    assert_eq!(circuits.len(), 1, "{circuits:?}");
    assert_eq!(
        (circuits[0].connection.as_str(), circuits[0].side),
        ("seed", Side::External)
    );
    assert!(
        circuits[0].reason.contains("/ticket/idd"),
        "{}",
        circuits[0].reason
    );
    let metrics = rig.get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tandem_create_circuit_open")
                && l.contains("side=\"external\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    let page = rig.get("/").await;
    assert!(
        page.contains("Creating twins on the external side of seed is stopped"),
        "{page}"
    );
    let status = rig.cli(&["creates", "status"]);
    assert!(
        status.contains("seed / external: creating stopped since")
            && status.contains("/ticket/idd"),
        "{status}"
    );

    // Tracker → Jira still works: a ticket made by a person gets exactly one Jira twin.
    rig.user_create_ticket("Toner low", "print");
    rig.assert_one_twin_each_side("Toner low").await;

    // A second Jira issue waits, saying why, instead of leaving another unknown ticket.
    rig.jira.user_create_issue(
        "TEST",
        json!({"summary": "Paper jam", "customfield_123456": "ops"}),
    );
    let store = rig.store().clone();
    let waiting = eventually_async("the second issue's event says why it waits", || {
        let store = store.clone();
        async move {
            let events = store
                .list_events(&EventFilter {
                    status: Some(EventStatus::Pending),
                    ..EventFilter::default()
                })
                .await
                .unwrap();
            events.into_iter().find(|e| {
                e.last_error.as_deref().is_some_and(|m| {
                    m.contains("creating on the external side of `seed` is stopped")
                })
            })
        }
    })
    .await;
    assert_eq!(waiting.event.source, Side::Jira);
    let why = waiting.last_error.as_deref().unwrap_or_default();
    assert!(
        why.contains(
            "Fix the external side's create operation and restart, or run \
             `tandem creates reset --connection seed --side external`"
        ),
        "the waiting event says what to do, in plain words: {why}"
    );
    let listed = rig.cli(&["events", "list", "--status", "pending"]);
    assert!(
        listed.contains("creating on the external side of `seed` is stopped"),
        "{listed}"
    );
    assert_eq!(rig.copies("Paper jam"), (1, 0));
    assert_eq!(rig.desk_creates(), 2, "nothing created while stopped");

    // Across a restart with the same configuration, creating stays stopped.
    rig.stop().await;
    rig.start("/ticket/idd").await;
    assert_eq!(rig.store().create_circuits().await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rig.copies("Paper jam"), (1, 0));

    // Fixed and restarted: the waiting issue gets its one twin, and edits cross.
    rig.stop().await;
    rig.start("/ticket/id").await;
    assert!(rig.store().create_circuits().await.unwrap().is_empty());
    rig.assert_one_twin_each_side("Paper jam").await;
    let key = rig
        .jira
        .issues()
        .into_iter()
        .find(|i| i["fields"]["summary"] == json!("Printer on fire"))
        .and_then(|i| i["key"].as_str().map(str::to_string))
        .unwrap();
    rig.jira
        .user_edit_issue(&key, json!({"summary": "Printer fixed"}));
    eventually("the edit reaches the recognised twin", || {
        rig.tickets()
            .iter()
            .any(|t| t["subject"] == json!("Printer fixed"))
            .then_some(())
    })
    .await;

    // In all: three items, each with one twin; two creates in the tracker (no copy of a
    // copy), and one in Jira.
    assert_eq!(rig.jira.issues().len(), 3, "{:#?}", rig.jira.issues());
    assert_eq!(rig.tickets().len(), 3, "{:#?}", rig.tickets());
    assert_eq!(rig.desk_creates(), 3);
    assert_eq!(rig.store().count_links(None).await.unwrap(), 3);
    rig.stop().await;
}

/// Polls an async probe until it gives a value (at most 20 s).
async fn eventually_async<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_create_answer_makes_one_twin_through_webhooks() {
    unreadable_creates_make_one_twin(Path2::Webhooks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_create_answer_makes_one_twin_through_polling() {
    unreadable_creates_make_one_twin(Path2::Polling).await;
}
