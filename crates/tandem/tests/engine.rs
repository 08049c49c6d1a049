//! End-to-end: both sandboxes and a real Tandem over loopback HTTP, checking what a user
//! would check — twins appear, edits cross, echoes cost nothing, failures are parked visibly.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_issue_gets_a_twin_outside_and_edits_cross_both_ways_once() {
    let w = world(Options::default()).await;

    // Create in Jira → one twin outside, its id written back into Jira's External ID.
    let key = w.jira.user_create_issue(
        "TEST",
        json!({"summary": "Printer on fire", "duedate": "2026-12-31", "customfield_123456": "ACME-1"}),
    );
    let twin = eventually("twin created outside", || {
        w.twins_of(&key).into_iter().next()
    })
    .await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    assert_eq!(ext_field(&twin, 1001).as_deref(), Some("Printer on fire"));
    assert_eq!(ext_field(&twin, 1003).as_deref(), Some("2026-12-31"));
    assert_eq!(ext_field(&twin, 1004).as_deref(), Some("ACME-1"));
    let link_field = w.jira.external_id_field().to_string();
    eventually("External ID written back", || {
        w.jira
            .issue(&key)
            .filter(|i| i["fields"][&link_field] == json!(ext_id))
    })
    .await;
    quiesce(&w).await;
    let ext_writes_after_create = w.external_writes().len();
    let jira_writes_after_create = w.jira_writes().len();
    assert_eq!(ext_writes_after_create, 1, "one create call outside");
    assert_eq!(
        jira_writes_after_create, 1,
        "one write of the link field in Jira"
    );

    // Edit outside → lands in Jira with exactly one write; its echo costs nothing.
    assert!(
        w.external
            .user_edit(&ext_id, vec![(1001, "Printer still on fire".into())])
    );
    eventually("external edit in Jira", || {
        w.jira
            .issue(&key)
            .filter(|i| i["fields"]["summary"] == json!("Printer still on fire"))
    })
    .await;
    quiesce(&w).await;
    assert_eq!(w.jira_writes().len(), jira_writes_after_create + 1);
    assert_eq!(
        w.external_writes().len(),
        ext_writes_after_create,
        "the echo caused no write"
    );

    // Edit in Jira → lands outside with exactly one write.
    w.jira
        .user_edit_issue(&key, json!({"duedate": "2027-01-15"}));
    eventually("Jira edit outside", || {
        w.external
            .item(&ext_id)
            .filter(|i| ext_field(i, 1003).as_deref() == Some("2027-01-15"))
    })
    .await;
    quiesce(&w).await;
    assert_eq!(w.external_writes().len(), ext_writes_after_create + 1);
    assert_eq!(
        w.jira_writes().len(),
        jira_writes_after_create + 1,
        "the echo caused no write"
    );
    assert_eq!(w.external.items().len(), 1, "never a second twin");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_item_gets_a_jira_twin_carrying_its_id() {
    let w = world(Options::default()).await;
    let ext_id = w.external.user_create(vec![
        (1001, "Refund request".into()),
        (1003, "2026-03-01".into()),
    ]);
    let link_field = w.jira.external_id_field().to_string();
    let issue = eventually("Jira twin", || {
        w.jira
            .issues()
            .into_iter()
            .find(|i| i["fields"][&link_field] == json!(ext_id))
    })
    .await;
    assert_eq!(issue["fields"]["summary"], json!("Refund request"));
    assert_eq!(issue["fields"]["duedate"], json!("2026-03-01"));
    quiesce(&w).await;
    let jira_issues = w
        .jira
        .issues()
        .into_iter()
        .filter(|i| i["fields"][&link_field] == json!(ext_id))
        .count();
    assert_eq!(jira_issues, 1, "exactly one Jira twin");
    assert_eq!(
        w.external_writes().len(),
        0,
        "the Jira twin's echo wrote nothing back"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_webhook_is_answered_200_and_applied_once() {
    let w = world(Options {
        jira_secret: None,
        ..Options::default()
    })
    .await;
    let ext_id = w.external.user_create(vec![(1001, "Seed".into())]);
    let link_field = w.jira.external_id_field().to_string();
    eventually("Jira twin", || {
        w.jira
            .issues()
            .into_iter()
            .find(|i| i["fields"][&link_field] == json!(ext_id))
    })
    .await;
    quiesce(&w).await;
    let before = w.jira_writes().len();

    // The item really changes outside, but its own webhook goes nowhere: the delivery below,
    // sent twice, is what tells Tandem.
    w.external
        .set_webhook("http://127.0.0.1:9/unreachable", None);
    assert!(
        w.external
            .user_edit(&ext_id, vec![(1001, "Redelivered".into())])
    );
    let client = reqwest::Client::new();
    let body = json!({"sourceIssueId": ext_id, "fields": [{"fieldName": "summary", "fieldId": 1001, "value": "Redelivered"}]});
    let send = || {
        client
            .post(format!("{}/webhooks/seed/external", w.base))
            .bearer_auth("ext-hook-token")
            .header("X-Delivery-Id", "delivery-42")
            .json(&body)
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 202);
    assert_eq!(send().await.unwrap().status(), 200);
    quiesce(&w).await;
    assert_eq!(w.jira_writes().len(), before + 1, "applied once");
    let link_field = w.jira.external_id_field().to_string();
    let issue = w
        .jira
        .issues()
        .into_iter()
        .find(|i| i["fields"][&link_field] == json!(ext_id))
        .unwrap();
    assert_eq!(issue["fields"]["summary"], json!("Redelivered"));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_becomes_a_dead_letter_with_a_jira_comment_and_others_keep_syncing() {
    let w = world(Options::default()).await;
    let a = w.jira.user_create_issue("TEST", json!({"summary": "A"}));
    let b = w.jira.user_create_issue("TEST", json!({"summary": "B"}));
    let twin_a = eventually("twin A", || w.twins_of(&a).into_iter().next()).await;
    let twin_b = eventually("twin B", || w.twins_of(&b).into_iter().next()).await;
    let b_ext = twin_b["id"].as_str().unwrap().to_string();
    quiesce(&w).await;

    // A value Jira refuses (a summary over 255 characters: 400) is permanent:
    // dead letter + comment on A.
    let a_ext = twin_a["id"].as_str().unwrap().to_string();
    w.external.user_edit(&a_ext, vec![(1001, "x".repeat(300))]);
    eventually("comment on A", || {
        w.jira
            .comments(&a)
            .into_iter()
            .find(|c| c.to_string().contains("Tandem could not sync"))
    })
    .await;
    let dead = w
        .engine()
        .store
        .list_dead_letters(Some("seed"), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "one dead letter: {dead:?}");

    // B still syncs.
    w.jira.user_edit_issue(&b, json!({"summary": "B edited"}));
    eventually("B synced", || {
        w.external
            .item(&b_ext)
            .filter(|i| ext_field(i, 1001).as_deref() == Some("B edited"))
    })
    .await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_storm_delays_but_loses_nothing() {
    let w = world(Options::default()).await;
    w.external.faults().set_error_rate(1.0);
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "During the storm"}));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(
        w.twins_of(&key).is_empty(),
        "nothing gets through while every call fails"
    );
    w.external.faults().clear();
    let twin = eventually("twin after the storm", || {
        w.twins_of(&key).into_iter().next()
    })
    .await;
    assert_eq!(ext_field(&twin, 1001).as_deref(), Some("During the storm"));
    quiesce(&w).await;
    assert_eq!(w.twins_of(&key).len(), 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_outside_the_filter_are_ignored() {
    let w = world(Options::default()).await;
    let other = w
        .jira
        .user_create_issue("OTHER", json!({"summary": "Not ours"}));
    let ours = w.jira.user_create_issue("TEST", json!({"summary": "Ours"}));
    eventually("twin of ours", || w.twins_of(&ours).into_iter().next()).await;
    quiesce(&w).await;
    assert!(
        w.twins_of(&other).is_empty(),
        "OTHER is outside the connection's projects"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_converge_on_the_later_one() {
    let w = world(Options::default()).await;
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Start"}));
    let twin = eventually("twin", || w.twins_of(&key).into_iter().next()).await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    quiesce(&w).await;

    // Both sides edit the summary at almost the same moment; the external edit is later.
    // The external system answers slowly, so Tandem reads the twin after both edits and
    // sees a conflict. (Without latency Tandem may read the twin before the external edit
    // and write after it: no API offers a conditional write, so that edit is overwritten and
    // both sides converge on the earlier one. docs/RELIABILITY.md records this window.)
    w.external
        .faults()
        .set_latency(std::time::Duration::from_millis(100));
    w.jira
        .user_edit_issue(&key, json!({"summary": "Jira says"}));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    w.external
        .user_edit(&ext_id, vec![(1001, "Outside says".into())]);
    quiesce(&w).await;
    w.external.faults().clear();
    let jira_summary = w.jira.issue(&key).unwrap()["fields"]["summary"].clone();
    let ext_summary = ext_field(&w.external.item(&ext_id).unwrap(), 1001);
    assert_eq!(jira_summary, json!("Outside says"));
    assert_eq!(ext_summary.as_deref(), Some("Outside says"));
    w.stop().await;
}

/// A create whose answer is lost still made the twin. When the retry finds it, the values it
/// was created with count as synced: an edit made on the twin meanwhile is an edit, and wins
/// over the Jira issue even though Jira's `updated` is later (an unmapped field changed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_on_a_twin_whose_create_answer_was_lost_is_kept() {
    let w = world(Options {
        poll_interval: Some("300ms"),
        max_attempts: 100,
        ..Options::default()
    })
    .await;
    // The create lands but its answer is lost, and the twin's webhooks never arrive.
    w.external.faults().set_lost_response_rate(1.0);
    w.external.faults().set_webhook_drop_rate(1.0);
    let key = w.jira.user_create_issue(
        "TEST",
        json!({"summary": "Answer lost", "customfield_123456": "as created"}),
    );
    let twin = eventually("twin", || w.twins_of(&key).into_iter().next()).await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    // Keep Tandem's retries failing while someone edits the twin, then Jira's unmapped
    // labels (which moves Jira's `updated` past the twin's edit).
    w.external.faults().set_lost_response_rate(0.0);
    w.external.faults().set_error_rate(1.0);
    w.external
        .user_edit(&ext_id, vec![(1004, "edited on the twin".into())]);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    w.jira
        .user_edit_issue(&key, json!({"labels": ["unmapped"]}));
    w.external.faults().clear();

    eventually("the twin's edit in Jira", || {
        (w.jira.issue(&key)?["fields"]["customfield_123456"] == json!("edited on the twin"))
            .then_some(())
    })
    .await;
    quiesce(&w).await;
    let twins = w.twins_of(&key);
    assert_eq!(twins.len(), 1, "one twin: {twins:?}");
    assert_eq!(
        ext_field(&twins[0], 1004).as_deref(),
        Some("edited on the twin")
    );
    assert_eq!(
        w.jira.issue(&key).unwrap()["fields"]["customfield_123456"],
        json!("edited on the twin")
    );
    w.stop().await;
}

/// Model check finding 1 (docs/RELIABILITY.md): a create whose answer is lost leaves the
/// twin without a link; the twin's own webhook then links the pair by discovery (the twin
/// names the issue), and the Jira event's retry finds the link and, its snapshot being an
/// echo, never reads the issue. Jira's link field must be written all the same: discovery
/// writes it before it stores the link. Every item created here goes through the same
/// steps, whichever of the two events links it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_linked_after_a_lost_create_answer_gets_jira_s_link_field() {
    let w = world(Options {
        max_attempts: 100,
        ..Options::default()
    })
    .await;
    let link_field = w.jira.external_id_field().to_string();
    let mut keys = Vec::new();
    for n in 0..3 {
        // The create lands but its answer is lost; the twin's webhook is sent.
        w.external.faults().set_lost_response_rate(1.0);
        let key = w
            .jira
            .user_create_issue("TEST", json!({"summary": format!("Answer lost {n}")}));
        eventually("twin", || w.twins_of(&key).into_iter().next()).await;
        w.external.faults().set_lost_response_rate(0.0);
        keys.push(key);
    }
    quiesce(&w).await;
    for key in &keys {
        let twins = w.twins_of(key);
        assert_eq!(twins.len(), 1, "one twin of {key}: {twins:?}");
        let ext_id = twins[0]["id"].as_str().unwrap().to_string();
        assert_eq!(
            w.jira.issue(key).unwrap()["fields"][&link_field],
            json!(ext_id),
            "Jira's link field of {key} names its twin"
        );
    }
    w.stop().await;
}

/// An event whose remote calls take longer than the lease keeps its lease (the worker renews
/// it): no second worker picks it up halfway and repeats its reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_event_keeps_its_lease_and_is_worked_on_once() {
    let w = world(Options {
        lease_seconds: 2,
        ..Options::default()
    })
    .await;
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Quick"}));
    let twin = eventually("twin", || w.twins_of(&key).into_iter().next()).await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    quiesce(&w).await;
    let twin_path = format!("/API/issue/{ext_id}");
    let calls_on_twin = || {
        w.external
            .request_log()
            .into_iter()
            .filter(|r| r.path == twin_path)
            .map(|r| r.method)
            .collect::<Vec<_>>()
    };
    let before = calls_on_twin().len();

    // Three calls of 800 ms each (read the Jira issue, read the twin, write): 2.4 s, longer
    // than the 2 s lease.
    w.jira
        .faults()
        .set_latency(std::time::Duration::from_millis(800));
    w.external
        .faults()
        .set_latency(std::time::Duration::from_millis(800));
    w.jira.user_edit_issue(&key, json!({"summary": "Slow"}));
    eventually("the slow edit outside", || {
        w.external
            .item(&ext_id)
            .filter(|i| ext_field(i, 1001).as_deref() == Some("Slow"))
    })
    .await;
    quiesce(&w).await;
    // A second worker that took the event over would still be in its slow calls.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    w.jira.faults().clear();
    w.external.faults().clear();
    assert_eq!(
        calls_on_twin()[before..],
        ["GET", "POST"],
        "one read and one write of the twin"
    );
    w.stop().await;
}

/// A burst of edits faster than one per millisecond: the last edit of every issue reaches its
/// twin. (Jira's `updated` then runs ahead of the wall clock, and a delivery's time must be
/// read from the issue's own `updated`, the clock Tandem's re-reads see, or later edits
/// look older than the synced one and are dropped as stale.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_edits_ends_with_every_last_edit_on_the_twin() {
    let w = world(Options::default()).await;
    let keys: Vec<String> = (0..10)
        .map(|i| {
            w.jira
                .user_create_issue("TEST", json!({"summary": format!("burst {i}")}))
        })
        .collect();
    for key in &keys {
        eventually("twin", || w.twins_of(key).into_iter().next()).await;
    }
    quiesce(&w).await;
    for round in 0..100 {
        for key in &keys {
            w.jira
                .user_edit_issue(key, json!({"summary": format!("{key} edit {round}")}));
        }
    }
    quiesce(&w).await;
    let behind: Vec<String> = keys
        .iter()
        .filter_map(|key| {
            let twin = w.twins_of(key).into_iter().next()?;
            let value = ext_field(&twin, 1001).unwrap_or_default();
            (value != format!("{key} edit 99")).then(|| format!("{key}: {value}"))
        })
        .collect();
    assert!(behind.is_empty(), "twins behind their issue: {behind:?}");
    w.stop().await;
}

/// The seed's webhooks carry no time, so Tandem times them on arrival, by its own clock. With
/// the external system's clock a minute ahead, the synced edit's time (the item's
/// `updated`) is later than any arrival: a later edit must still get through, not be
/// dropped as older than the synced one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_outside_get_through_when_the_external_clock_runs_ahead() {
    let w = world(Options::default()).await;
    w.external.advance_clock(std::time::Duration::from_secs(60));
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Clocks"}));
    let twin = eventually("twin", || w.twins_of(&key).into_iter().next()).await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    quiesce(&w).await;
    for n in 0..3 {
        let value = format!("edited outside {n}");
        w.external.user_edit(&ext_id, vec![(1001, value.clone())]);
        eventually("the edit in Jira", || {
            (w.jira.issue(&key)?["fields"]["summary"] == json!(value)).then_some(())
        })
        .await;
        quiesce(&w).await;
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_tell_what_happened() {
    let w = world(Options::default()).await;
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Observable"}));
    eventually("twin", || w.twins_of(&key).into_iter().next()).await;
    quiesce(&w).await;
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = client
        .get(format!("{}/readyz", w.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["store"], json!("sqlite"));
    let metrics = client
        .get(format!("{}/metrics", w.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "tandem_events_received_total{connection=\"seed\",side=\"jira\"}",
        "tandem_events_applied_total{connection=\"seed\",side=\"jira\"}",
        "tandem_end_to_end_latency_seconds",
        "tandem_remote_calls_total{system=\"jira\",status=\"200\"}",
        "tandem_queue_depth{connection=\"seed\",status=\"done\"}",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    // The admin API is closed without the token, open with it.
    let links = client
        .get(format!("{}/api/v1/links", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(links.status(), 401);
    let links: serde_json::Value = client
        .get(format!("{}/api/v1/links", w.base))
        .bearer_auth("admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(links["links"].as_array().map(Vec::len), Some(1));
    w.stop().await;
}
