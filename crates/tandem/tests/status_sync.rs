//! Jira status (workflow) sync end to end: status moves through transitions, found through
//! the workflow when no single one reaches the target; an unreachable status fails alone;
//! and a status change costs no echo write on either side.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

/// Status both ways with the tracker's ids, as a tracker such as Redmine numbers them.
const STATUS_MAPPING: &str = "jiraField,externalField,direction,type,valueMap\n\
summary,1001,both,text,\n\
status,1005,both,option,To Do=1;In Progress=2;Done=5\n";

fn status_world() -> Options {
    Options {
        mapping: Some(("fieldMappings.csv", STATUS_MAPPING.to_string())),
        ..Options::default()
    }
}

/// The same in TOML, with the resolution the Done transition's screen asks for, and a
/// status (`Nirvana`) that no workflow of the site has.
const STATUS_MAPPING_TOML: &str = r#"
[[field]]
jira = "summary"
external = "1001"

[[field]]
jira = "status"
external = "1005"
type = "option"
values = { "To Do" = "1", "In Progress" = "2", "Done" = "5", "Nirvana" = "9" }
transition_fields = { "Done" = { resolution = { name = "Done" } } }
"#;

fn workflow_world() -> Options {
    Options {
        mapping: Some(("fieldMappings.toml", STATUS_MAPPING_TOML.to_string())),
        max_attempts: 2,
        ..Options::default()
    }
}

async fn dead_letters(w: &World) -> Vec<String> {
    w.engine()
        .store
        .list_dead_letters(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.reason)
        .collect()
}

fn jira_issue_of(w: &World, ext_id: &str) -> Option<serde_json::Value> {
    let link_field = w.jira.external_id_field().to_string();
    w.jira
        .issues()
        .into_iter()
        .find(|i| i["fields"][&link_field] == json!(ext_id))
}

/// Items created outside in each status get a Jira twin in that status: no transition when
/// the new issue already is there, a walk through the workflow (with the resolution the
/// mapping gives) when no single transition reaches it; and no dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_created_outside_reach_their_status_through_the_workflow() {
    let w = world(workflow_world()).await;
    let mut made = Vec::new();
    for (value, status) in [("1", "To Do"), ("2", "In Progress"), ("5", "Done")] {
        let before = w.jira_transitions().len();
        let ext_id = w
            .external
            .user_create(vec![(1001, format!("In {status}")), (1005, value.into())]);
        let issue = eventually(&format!("Jira twin in {status}"), || {
            jira_issue_of(&w, &ext_id).filter(|i| i["fields"]["status"]["name"] == json!(status))
        })
        .await;
        quiesce(&w).await;
        // To Do is where issues start; In Progress is one step; Done is two.
        let expected = match status {
            "To Do" => 0,
            "In Progress" => 1,
            _ => 2,
        };
        assert_eq!(
            w.jira_transitions().len() - before,
            expected,
            "transitions to reach {status}"
        );
        if status == "Done" {
            assert_eq!(issue["fields"]["resolution"]["name"], json!("Done"));
        }
        made.push((ext_id, issue["key"].as_str().unwrap().to_string()));
    }
    assert_eq!(dead_letters(&w).await, Vec::<String>::new());
    // The audit says how each status was reached.
    let audit = w.engine().store.list_audit(None, 100).await.unwrap();
    let status_rows: Vec<&str> = audit
        .iter()
        .filter(|a| a.field == "status")
        .map(|a| a.actor.as_str())
        .collect();
    for how in [
        "tandem (already in `To Do`: no transition)",
        "tandem (transition To Do → Start progress → In Progress)",
        "tandem (2 transitions through the workflow: To Do → Start progress → In Progress → Done → Done)",
    ] {
        assert!(status_rows.contains(&how), "{how} not in {status_rows:?}");
    }
    // The webhooks of each step (intermediate statuses included) are echoes: nothing goes
    // back to the tracker, which made the items.
    tokio::time::sleep(Duration::from_secs(1)).await;
    quiesce(&w).await;
    assert_eq!(w.external_writes().len(), 0, "no write back to the tracker");

    // Back from Done to In Progress: Reopen, then Start progress.
    let (ext_id, key) = &made[2];
    w.external.user_edit(ext_id, vec![(1005, "2".into())]);
    eventually("reopened and started", || {
        jira_status(&w, key).filter(|s| s == "In Progress")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    quiesce(&w).await;
    assert_eq!(dead_letters(&w).await, Vec::<String>::new());
    assert_eq!(w.external_writes().len(), 0, "no write back to the tracker");
    w.stop().await;
}

/// A status no workflow reaches fails alone: the event's other fields are written, the
/// status becomes a dead letter that names the transitions there are, and the Jira echo of
/// the rest of the write does not carry Jira's status back over the tracker's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_status_fails_alone() {
    let w = world(workflow_world()).await;
    // On create: the twin exists, linked, with its summary.
    let ext_id = w
        .external
        .user_create(vec![(1001, "Lost cause".into()), (1005, "9".into())]);
    let issue = eventually("Jira twin", || jira_issue_of(&w, &ext_id)).await;
    let key = issue["key"].as_str().unwrap().to_string();
    assert_eq!(issue["fields"]["summary"], json!("Lost cause"));
    quiesce(&w).await;
    let reasons = dead_letters(&w).await;
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("no status `Nirvana`"), "{}", reasons[0]);
    assert!(
        reasons[0].contains("available from `To Do`: Start progress → In Progress"),
        "{}",
        reasons[0]
    );
    assert_eq!(w.jira.issues().len(), 1, "one twin");
    let item = w.external.item(&ext_id).unwrap();
    assert_eq!(
        ext_field(&item, 1005).as_deref(),
        Some("9"),
        "the tracker keeps its status"
    );

    // On an edit: the summary lands, the status alone fails again.
    let ext_before = w.external_writes().len();
    w.external
        .user_edit(&ext_id, vec![(1001, "Still lost".into())]);
    eventually("summary in Jira", || {
        w.jira
            .issue(&key)
            .filter(|i| i["fields"]["summary"] == json!("Still lost"))
    })
    .await;
    quiesce(&w).await;
    assert_eq!(jira_status(&w, &key).as_deref(), Some("To Do"));
    assert_eq!(dead_letters(&w).await.len(), 2);
    assert_eq!(
        w.external_writes().len(),
        ext_before,
        "nothing written back to the tracker"
    );
    let item = w.external.item(&ext_id).unwrap();
    assert_eq!(ext_field(&item, 1005).as_deref(), Some("9"));
    w.stop().await;
}

fn jira_status(w: &World, key: &str) -> Option<String> {
    w.jira
        .issue(key)
        .and_then(|i| i["fields"]["status"]["name"].as_str().map(str::to_string))
}

/// A transition made by a person in Jira reaches the tracker with one write, and nothing
/// follows it: neither the tracker's echo nor the transition's own webhook costs a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jira_transition_reaches_the_tracker_once_and_echoes_nothing() {
    transition_echo_costs_nothing(world(status_world()).await).await;
}

/// The same, with the tracker sending no webhooks: its changes (and the echoes of Tandem's
/// writes) are only seen by polling, as with a tracker that has no webhooks at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jira_transition_echoes_nothing_when_the_tracker_is_polled() {
    let w = world(Options {
        poll_interval: Some("1s"),
        ..status_world()
    })
    .await;
    w.external.faults().set_webhook_drop_rate(1.0);
    transition_echo_costs_nothing(w).await;
}

async fn transition_echo_costs_nothing(w: World) {
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Printer on fire"}));
    let twin = eventually("twin outside", || w.twins_of(&key).into_iter().next()).await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    assert_eq!(ext_field(&twin, 1005).as_deref(), Some("1"));
    quiesce(&w).await;

    for (status, ext_value) in [("In Progress", "2"), ("Done", "5"), ("To Do", "1")] {
        let ext_before = w.external_writes().len();
        let jira_before = w.jira_writes().len() + w.jira_transitions().len();
        w.jira.user_edit_issue(&key, json!({ "status": status }));
        eventually(&format!("{status} outside"), || {
            w.external
                .item(&ext_id)
                .filter(|i| ext_field(i, 1005).as_deref() == Some(ext_value))
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        quiesce(&w).await;
        assert_eq!(
            w.external_writes().len() - ext_before,
            1,
            "one write outside for the transition to {status}, none after it"
        );
        assert_eq!(
            w.jira_writes().len() + w.jira_transitions().len() - jira_before,
            0,
            "no write back into Jira after the transition to {status}"
        );
        assert_eq!(jira_status(&w, &key).as_deref(), Some(status));
    }
    w.stop().await;
}

/// One field of every type the sandboxes share, both ways.
const EVERY_TYPE_MAPPING: &str = "jiraField,externalField,direction,type,valueMap\n\
summary,1001,both,text,\n\
description,1002,both,richtext,\n\
duedate,1003,both,date,\n\
customfield_10052,1006,both,number,\n\
customfield_10051,1007,both,option,\n\
labels,1008,both,labels,\n\
assignee,1009,both,user,5b10ac8d82e05b22cc7d4ef5=alice;5b10a2844c20165700ede21g=bob\n\
status,1005,both,option,To Do=1;In Progress=2;Done=5\n";

/// Invariant 3 for every field type: a change made on one side costs exactly one write to
/// the other and nothing after it, in both directions. (`datetime` and `option_list` have
/// no editable field in the Jira sandbox's catalogue.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_field_type_echoes_in_either_direction() {
    let w = world(Options {
        mapping: Some(("fieldMappings.csv", EVERY_TYPE_MAPPING.to_string())),
        ..Options::default()
    })
    .await;
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Every type"}));
    let twin = eventually("twin outside", || w.twins_of(&key).into_iter().next()).await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    quiesce(&w).await;
    let jira_writes = |w: &World| w.jira_writes().len() + w.jira_transitions().len();

    // (type, Jira field, a Jira edit, external field, an external value)
    let cases = [
        (
            "text",
            "summary",
            json!("Renamed in Jira"),
            1001,
            "Renamed outside",
        ),
        (
            "richtext",
            "description",
            json!("Said in Jira"),
            1002,
            "Said outside",
        ),
        ("date", "duedate", json!("2026-12-31"), 1003, "2027-01-15"),
        ("number", "customfield_10052", json!(5), 1006, "8"),
        (
            "option",
            "customfield_10051",
            json!({"value": "Major"}),
            1007,
            "Minor",
        ),
        ("labels", "labels", json!(["red", "blue"]), 1008, "green"),
        (
            "user",
            "assignee",
            json!({"accountId": "5b10ac8d82e05b22cc7d4ef5"}),
            1009,
            "bob",
        ),
        ("status", "status", json!("In Progress"), 1005, "1"),
    ];
    for (ty, jira_field, jira_value, ext_field_id, ext_value) in cases {
        // Jira → outside.
        let before = ext_field(&w.external.item(&ext_id).unwrap(), ext_field_id);
        let (ext_before, jira_before) = (w.external_writes().len(), jira_writes(&w));
        w.jira
            .user_edit_issue(&key, json!({ jira_field: jira_value }));
        eventually(&format!("{ty} outside"), || {
            w.external
                .item(&ext_id)
                .filter(|i| ext_field(i, ext_field_id) != before)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        quiesce(&w).await;
        assert_eq!(
            (
                w.external_writes().len() - ext_before,
                jira_writes(&w) - jira_before
            ),
            (1, 0),
            "{ty}: a Jira edit costs one write outside and none after it"
        );

        // Outside → Jira.
        let before = w.jira.issue(&key).unwrap()["fields"][jira_field].clone();
        let (ext_before, jira_before) = (w.external_writes().len(), jira_writes(&w));
        w.external
            .user_edit(&ext_id, vec![(ext_field_id, ext_value.to_string())]);
        eventually(&format!("{ty} in Jira"), || {
            w.jira
                .issue(&key)
                .filter(|i| i["fields"][jira_field] != before)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        quiesce(&w).await;
        let jira_calls = jira_writes(&w) - jira_before;
        // A status may take several transitions; every other field is one edit.
        assert!(
            ty == "status" && jira_calls >= 1 || jira_calls == 1,
            "{ty}: {jira_calls} writes to Jira for one edit outside"
        );
        assert_eq!(
            w.external_writes().len() - ext_before,
            0,
            "{ty}: an edit outside costs no write back outside"
        );
    }
    w.stop().await;
}

/// A walk that stops midway (Done's screen asks for a resolution the CSV mapping cannot
/// give) fails alone and leaves the issue where it stopped; the webhook of the step it did
/// take is not copied back over the tracker's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_that_stops_midway_writes_nothing_back() {
    let w = world(Options {
        max_attempts: 2,
        ..status_world()
    })
    .await;
    let ext_id = w
        .external
        .user_create(vec![(1001, "Halfway".into()), (1005, "1".into())]);
    let issue = eventually("Jira twin", || jira_issue_of(&w, &ext_id)).await;
    let key = issue["key"].as_str().unwrap().to_string();
    quiesce(&w).await;
    w.external.user_edit(&ext_id, vec![(1005, "5".into())]);
    eventually("stopped in progress", || {
        jira_status(&w, &key).filter(|s| s == "In Progress")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    quiesce(&w).await;
    let reasons = dead_letters(&w).await;
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("requires `resolution`"),
        "{}",
        reasons[0]
    );
    assert_eq!(
        w.external_writes().len(),
        0,
        "nothing written back to the tracker"
    );
    let item = w.external.item(&ext_id).unwrap();
    assert_eq!(ext_field(&item, 1005).as_deref(), Some("5"));
    w.stop().await;
}
