//! A connection's rules script end to end: both sandboxes and a real Tandem on loopback. What
//! a user checks: a skipped event says why in `tandem events list`, a reshaped value crosses
//! once and its echo writes nothing back, a failing script parks the event naming the
//! script's line, `tandem check` and `tandem script test` show what the script does; a
//! mapping entry's `expr` reshapes its value the same way.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

/// Writes `source` as `rules.rhai` in its own folder, and the connection line naming it.
fn script(source: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.rhai");
    std::fs::write(&path, source).unwrap();
    let line = format!("script = {:?}\n", path.display().to_string());
    (dir, line)
}

fn tandem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env_remove("TANDEM_CONFIG")
        .output()
        .expect("run tandem")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_skip_shows_its_reason_in_events_list() {
    let (_dir, line) = script(
        "fn filter(event) {\n    if event.fields.summary == \"Internal only\" { return \"internal ticket\"; }\n    true\n}\n",
    );
    let w = world(Options {
        connection_extra: line,
        ..Options::default()
    })
    .await;
    let skipped = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Internal only"}));
    let kept = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Customer ticket"}));
    eventually("the kept issue's twin", || {
        w.twins_of(&kept).into_iter().next()
    })
    .await;
    quiesce(&w).await;
    assert!(
        w.twins_of(&skipped).is_empty(),
        "the skipped issue has no twin"
    );

    let config = w.config_path();
    let out = tandem(&["events", "list", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    let row = list
        .lines()
        .find(|l| l.contains(&skipped))
        .unwrap_or_else(|| panic!("no event of {skipped}:\n{list}"));
    assert!(row.contains("ignored"), "{row}");
    assert!(row.contains("skipped by script: internal ticket"), "{row}");
    assert!(
        !list
            .lines()
            .filter(|l| l.contains(&kept))
            .any(|l| l.contains("skipped by script")),
        "{list}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suffix_added_on_the_way_to_jira_crosses_once_and_its_echo_writes_nothing() {
    let (_dir, line) = script(
        "fn to_jira(fields, item) {\n    if fields.summary != () { fields.summary += \" [from Zendesk]\"; }\n    fields\n}\n",
    );
    let w = world(Options {
        connection_extra: line,
        ..Options::default()
    })
    .await;
    let link_field = w.jira.external_id_field().to_string();

    // Created outside: the Jira twin carries the suffix, once.
    let ext_id = w.external.user_create(vec![(1001, "Refund".into())]);
    let issue = eventually("Jira twin", || {
        w.jira
            .issues()
            .into_iter()
            .find(|i| i["fields"][&link_field] == json!(ext_id))
    })
    .await;
    let key = issue["key"].as_str().unwrap().to_string();
    assert_eq!(issue["fields"]["summary"], json!("Refund [from Zendesk]"));
    quiesce(&w).await;
    let jira_writes = w.jira_writes().len();
    assert_eq!(jira_writes, 1, "one create in Jira");
    assert_eq!(
        w.external_writes().len(),
        0,
        "the twin's echo wrote nothing back"
    );

    // Edited outside: one write to Jira, and its echo writes nothing outside.
    assert!(
        w.external
            .user_edit(&ext_id, vec![(1001, "Refund please".into())])
    );
    eventually("the edit in Jira", || {
        w.jira
            .issue(&key)
            .filter(|i| i["fields"]["summary"] == json!("Refund please [from Zendesk]"))
    })
    .await;
    quiesce(&w).await;
    assert_eq!(w.jira_writes().len(), jira_writes + 1);
    assert_eq!(w.external_writes().len(), 0, "the echo wrote nothing back");

    // Another field edited in Jira crosses; the summary stays as it is on both sides.
    w.jira
        .user_edit_issue(&key, json!({"duedate": "2027-01-15"}));
    eventually("the Jira edit outside", || {
        w.external
            .item(&ext_id)
            .filter(|i| ext_field(i, 1003).as_deref() == Some("2027-01-15"))
    })
    .await;
    quiesce(&w).await;
    assert_eq!(w.external_writes().len(), 1);
    assert_eq!(w.jira_writes().len(), jira_writes + 1, "nothing came back");
    let item = w.external.item(&ext_id).unwrap();
    assert_eq!(ext_field(&item, 1001).as_deref(), Some("Refund please"));
    let issue = w.jira.issue(&key).unwrap();
    assert_eq!(
        issue["fields"]["summary"],
        json!("Refund please [from Zendesk]")
    );
    w.stop().await;
}

/// The seed mapping with `value.to_upper()` on the summary entry (an `expr` column).
const UPPER_MAPPING: &str = "jiraField,externalField,direction,type,expr
summary,1001,both,text,value.to_upper()
description,1002,both,richtext,
dueDate,1003,both,date,
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_expr_upper_cases_the_value_written_and_its_echo_writes_nothing() {
    let w = world(Options {
        mapping: Some(("fieldMappings.csv", UPPER_MAPPING.to_string())),
        ..Options::default()
    })
    .await;
    let link_field = w.jira.external_id_field().to_string();

    // Created outside: the Jira twin's summary is upper-cased.
    let ext_id = w.external.user_create(vec![(1001, "Refund".into())]);
    let issue = eventually("Jira twin", || {
        w.jira
            .issues()
            .into_iter()
            .find(|i| i["fields"][&link_field] == json!(ext_id))
    })
    .await;
    let key = issue["key"].as_str().unwrap().to_string();
    assert_eq!(issue["fields"]["summary"], json!("REFUND"));
    quiesce(&w).await;
    let jira_writes = w.jira_writes().len();
    assert_eq!(jira_writes, 1, "one create in Jira");
    assert_eq!(
        w.external_writes().len(),
        0,
        "the twin's echo wrote nothing back"
    );

    // Edited outside: one write to Jira, and its echo writes nothing outside.
    assert!(
        w.external
            .user_edit(&ext_id, vec![(1001, "Refund please".into())])
    );
    eventually("the edit in Jira", || {
        w.jira
            .issue(&key)
            .filter(|i| i["fields"]["summary"] == json!("REFUND PLEASE"))
    })
    .await;
    quiesce(&w).await;
    assert_eq!(w.jira_writes().len(), jira_writes + 1);
    assert_eq!(w.external_writes().len(), 0, "the echo wrote nothing back");

    // Edited in Jira: the expression applies that way too.
    w.jira
        .user_edit_issue(&key, json!({"summary": "Refund sent"}));
    eventually("the Jira edit outside", || {
        w.external
            .item(&ext_id)
            .filter(|i| ext_field(i, 1001).as_deref() == Some("REFUND SENT"))
    })
    .await;
    quiesce(&w).await;
    assert_eq!(w.external_writes().len(), 1);
    assert_eq!(w.jira_writes().len(), jira_writes + 1, "nothing came back");
    let issue = w.jira.issue(&key).unwrap();
    assert_eq!(issue["fields"]["summary"], json!("Refund sent"));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_error_dead_letters_the_event_with_the_scripts_line_and_column() {
    let (_dir, line) = script("fn to_external(fields, item) {\n    throw \"no customer\";\n}\n");
    let w = world(Options {
        connection_extra: line,
        ..Options::default()
    })
    .await;
    let key = w.jira.user_create_issue("TEST", json!({"summary": "A"}));
    let dead = eventually("a dead letter", || dead_letters(&w).into_iter().next()).await;
    assert!(dead.reason.contains("rules.rhai:2:5:"), "{}", dead.reason);
    assert!(dead.reason.contains("no customer"), "{}", dead.reason);
    assert!(w.twins_of(&key).is_empty());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_mapping_expr_dead_letters_the_event_naming_the_mapping_line() {
    let mapping = "jiraField,externalField,expr\nsummary,1001,parse_int(value)\n";
    let w = world(Options {
        mapping: Some(("fieldMappings.csv", mapping.to_string())),
        ..Options::default()
    })
    .await;
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "not a number"}));
    let dead = eventually("a dead letter", || dead_letters(&w).into_iter().next()).await;
    assert!(
        dead.reason.contains("fieldMappings.csv:2 expr"),
        "{}",
        dead.reason
    );
    assert!(dead.reason.contains("'not a number'"), "{}", dead.reason);
    assert!(w.twins_of(&key).is_empty());
    w.stop().await;
}

/// The connection's dead letters, read without awaiting inside `eventually`'s probe.
fn dead_letters(w: &World) -> Vec<tandem::store::DeadLetter> {
    let store = w.engine().store.clone();
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current()
            .block_on(async move { store.list_dead_letters(Some("seed"), 10).await.unwrap() })
    })
}

/// A config with one connection (summary ↔ 1001) whose script is `rules.rhai` in `dir`.
fn offline_config(dir: &Path, script_source: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("rules.rhai"), script_source).unwrap();
    let config = dir.join("tandem.toml");
    std::fs::write(
        &config,
        r#"
[[connection]]
name = "helpdesk"
script = "rules.rhai"

[[connection.field]]
jira = "summary"
external = "1001"

[connection.jira]
base_url = "https://example.atlassian.net"
email = "me@example.com"
api_token = "t"
project = "TEST"

[connection.external]
type = "rest"
base_url = "https://ext.example.com"
"#,
    )
    .unwrap();
    config
}

#[test]
fn tandem_check_names_the_line_and_column_of_a_broken_script() {
    let dir = tempfile::tempdir().unwrap();
    let config = offline_config(
        dir.path(),
        "fn to_jira(fields, item) {\n    fields.summary = ;\n    fields\n}\n",
    );
    let out = tandem(&["check", "--offline", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("rules.rhai:2:"), "{err}");
    assert!(err.contains("connection[0].script"), "{err}");
}

#[test]
fn tandem_script_test_prints_the_decision_and_the_fields_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = offline_config(
        dir.path(),
        "fn filter(event) { if event.fields[\"1001\"] == \"spam\" { \"spam\" } else { true } }\n\
         fn to_jira(fields, item) { print(`from ${item.id}`); fields.summary += \" [from Zendesk]\"; fields }\n",
    );
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{ "side": "external", "id": "42", "fields": { "1001": "Printer" } }"#,
    )
    .unwrap();
    let args = |e: &Path| {
        tandem(&[
            "script",
            "test",
            "--config",
            config.to_str().unwrap(),
            "--connection",
            "helpdesk",
            "--event",
            e.to_str().unwrap(),
        ])
    };
    let out = args(&event);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("filter: keep"), "{text}");
    assert!(text.contains("log: from 42"), "{text}");
    assert!(text.contains("write on jira:"), "{text}");
    assert!(
        text.contains("summary = \"Printer [from Zendesk]\""),
        "{text}"
    );

    std::fs::write(
        &event,
        r#"{ "side": "external", "fields": { "1001": "spam" } }"#,
    )
    .unwrap();
    let out = args(&event);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("filter: skip (skipped by script: spam)"),
        "{text}"
    );
    assert!(!text.contains("write on"), "{text}");
}

#[test]
fn tandem_script_test_runs_the_mapping_expressions_without_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tandem.toml");
    std::fs::write(
        &config,
        r#"
[[connection]]
name = "helpdesk"

[[connection.field]]
jira = "summary"
external = "1001"
expr = "value.to_upper()"

[connection.jira]
base_url = "https://example.atlassian.net"
email = "me@example.com"
api_token = "t"
project = "TEST"

[connection.external]
type = "rest"
base_url = "https://ext.example.com"
"#,
    )
    .unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{ "side": "external", "id": "7", "fields": { "1001": "Printer jam" } }"#,
    )
    .unwrap();
    let out = tandem(&[
        "script",
        "test",
        "--config",
        config.to_str().unwrap(),
        "--connection",
        "helpdesk",
        "--event",
        event.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("write on jira:"), "{text}");
    assert!(text.contains("summary = \"PRINTER JAM\""), "{text}");
    // No script: no filter ran.
    assert!(!text.contains("filter:"), "{text}");
}
