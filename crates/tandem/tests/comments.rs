//! Comments end to end, on the sandboxes with `tandem serve` running: a comment crosses both
//! ways under its author's name, edits and deletions follow, and neither Tandem's own writes
//! (their webhooks), nor redelivered webhooks, polls, or a create whose answer was lost make
//! a second twin or an echo write.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use tandem_core::Doc;

/// The words of a Jira comment (v3, ADF body).
fn jira_text(c: &Value) -> String {
    Doc::from_adf(&c["body"])
        .map(|d| d.to_plain())
        .unwrap_or_default()
}

fn jira_texts(w: &World, key: &str) -> Vec<String> {
    w.jira.comments(key).iter().map(jira_text).collect()
}

fn ext_texts(w: &World, id: &str) -> Vec<String> {
    w.external
        .comments(id)
        .iter()
        .map(|c| c["body"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Comment writes Tandem sent to the external sandbox (method, path).
fn ext_comment_writes(w: &World) -> Vec<(String, String)> {
    w.external
        .request_log()
        .into_iter()
        .filter(|r| r.path.contains("/comments") && r.method != "GET")
        .map(|r| (r.method, r.path))
        .collect()
}

/// Comment writes Tandem sent to Jira (method, path).
fn jira_comment_writes(w: &World) -> Vec<(String, String)> {
    w.jira
        .request_log()
        .into_iter()
        .filter(|r| r.path.contains("/comment") && r.method != "GET")
        .map(|r| (r.method, r.path))
        .collect()
}

/// An issue created in Jira, and its twin outside.
async fn linked_pair(w: &World, summary: &str) -> (String, String) {
    let key = w
        .jira
        .user_create_issue("TEST", json!({ "summary": summary }));
    let twin = eventually("twin outside", || w.twins_of(&key).into_iter().next()).await;
    quiesce(w).await;
    (key, twin["id"].as_str().unwrap().to_string())
}

/// Waits for the engine to settle, then a little longer for late webhooks of Tandem's own
/// writes, and settles again.
async fn settle(w: &World) {
    quiesce(w).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    quiesce(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_crosses_both_ways_and_its_edits_and_deletion_follow() {
    let w = world(Options::default()).await;
    let (key, ext) = linked_pair(&w, "Printer on fire").await;

    // Jira → outside, under the author's name.
    let alice = w
        .jira
        .user_add_comment("alice", &key, "Can you reproduce it?");
    let texts = eventually("Alice's comment outside", || {
        Some(ext_texts(&w, &ext)).filter(|t| !t.is_empty())
    })
    .await;
    assert_eq!(
        texts,
        ["Alice Human (Jira) wrote:\n\nCan you reproduce it?"]
    );

    // Outside → Jira.
    let dana = w
        .external
        .user_comment(&ext, "Dana Agent", "Yes, on firmware 5.2", false)
        .expect("item exists");
    eventually("Dana's comment in Jira", || {
        Some(jira_texts(&w, &key)).filter(|t| t.len() == 2)
    })
    .await;
    assert_eq!(
        jira_texts(&w, &key),
        [
            "Can you reproduce it?",
            "Dana Agent (External) wrote:\n\nYes, on firmware 5.2"
        ]
    );
    settle(&w).await;
    // One create each way; the webhooks of both twins were echoes.
    assert_eq!(
        ext_comment_writes(&w).len(),
        1,
        "{:?}",
        ext_comment_writes(&w)
    );
    assert_eq!(
        jira_comment_writes(&w).len(),
        1,
        "{:?}",
        jira_comment_writes(&w)
    );

    // An edit of the origin updates the twin; an edit of a twin updates the origin.
    w.jira
        .user_edit_comment("alice", &key, &alice, "Can you reproduce it on 5.3?");
    eventually("the edit outside", || {
        ext_texts(&w, &ext)
            .first()
            .filter(|t| t.ends_with("on 5.3?"))
            .cloned()
    })
    .await;
    assert_eq!(
        ext_texts(&w, &ext)[0],
        "Alice Human (Jira) wrote:\n\nCan you reproduce it on 5.3?"
    );
    let alice_twin = w.external.comments(&ext)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(w.external.user_edit_comment(
        &ext,
        &alice_twin,
        "Alice Human (Jira) wrote:\n\nCan you reproduce it on 5.4?"
    ));
    eventually("the twin's edit back in Jira", || {
        jira_texts(&w, &key)
            .first()
            .filter(|t| t.as_str() == "Can you reproduce it on 5.4?")
            .cloned()
    })
    .await;

    // A deletion outside deletes the twin in Jira.
    assert!(w.external.user_delete_comment(&ext, &dana));
    eventually("Dana's twin deleted in Jira", || {
        Some(jira_texts(&w, &key)).filter(|t| t.len() == 1)
    })
    .await;
    settle(&w).await;
    assert_eq!(jira_texts(&w, &key), ["Can you reproduce it on 5.4?"]);
    assert_eq!(
        ext_texts(&w, &ext),
        ["Alice Human (Jira) wrote:\n\nCan you reproduce it on 5.4?"]
    );
    // Writes: out: create + edit; in: create + edit + delete. Nothing else, no echo.
    assert_eq!(
        ext_comment_writes(&w).len(),
        2,
        "{:?}",
        ext_comment_writes(&w)
    );
    assert_eq!(
        jira_comment_writes(&w).len(),
        3,
        "{:?}",
        jira_comment_writes(&w)
    );
    // The audit names each comment write.
    let audit = w.engine().store.list_audit(None, 100).await.unwrap();
    let comment_rows = audit
        .iter()
        .filter(|a| a.mapping_key.starts_with("comment:"))
        .count();
    assert_eq!(comment_rows, 5);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_webhooks_polls_and_lost_answers_make_no_second_twin() {
    let w = world(Options {
        poll_interval: Some("300ms"),
        // Enough attempts that the calls losing their answers never park the event.
        max_attempts: 40,
        ..Options::default()
    })
    .await;
    let (key, ext) = linked_pair(&w, "Duplicates?").await;

    // Every Jira webhook delivered twice, and the poller listing the issue again and again.
    w.jira.faults().set_webhook_duplicate_rate(1.0);
    w.jira.user_add_comment("bob", &key, "first");
    eventually("the twin outside", || {
        Some(ext_texts(&w, &ext)).filter(|t| !t.is_empty())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle(&w).await;
    assert_eq!(ext_texts(&w, &ext).len(), 1, "{:?}", ext_texts(&w, &ext));
    w.jira.faults().clear();

    // Half the external calls land but lose their answer, the twin's create among them:
    // the retry finds the twin instead of making another.
    w.external.faults().set_lost_response_rate(0.5);
    w.jira.user_add_comment("bob", &key, "second");
    eventually("the second twin outside", || {
        Some(ext_texts(&w, &ext)).filter(|t| t.len() >= 2)
    })
    .await;
    w.external.faults().clear();
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle(&w).await;
    assert_eq!(
        ext_texts(&w, &ext),
        [
            "Bob Human (Jira) wrote:\n\nfirst",
            "Bob Human (Jira) wrote:\n\nsecond"
        ]
    );
    // Nothing came back to Jira: two comments there, both Bob's.
    assert_eq!(jira_texts(&w, &key), ["first", "second"]);
    assert!(
        jira_comment_writes(&w).is_empty(),
        "{:?}",
        jira_comment_writes(&w)
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_missed_by_webhooks_are_found_by_the_poller() {
    let w = world(Options {
        poll_interval: Some("500ms"),
        ..Options::default()
    })
    .await;
    let (key, ext) = linked_pair(&w, "Lost webhooks").await;
    w.jira.faults().set_webhook_drop_rate(1.0);
    w.external.faults().set_webhook_drop_rate(1.0);
    w.jira.user_add_comment("alice", &key, "said in Jira");
    w.external
        .user_comment(&ext, "Dana Agent", "said outside", false)
        .unwrap();
    eventually("both comments crossed by polling", || {
        (ext_texts(&w, &ext).len() == 2 && jira_texts(&w, &key).len() == 2).then_some(())
    })
    .await;
    settle(&w).await;
    assert_eq!(
        jira_texts(&w, &key),
        [
            "said in Jira",
            "Dana Agent (External) wrote:\n\nsaid outside"
        ]
    );
    assert_eq!(ext_comment_writes(&w).len(), 1);
    assert_eq!(jira_comment_writes(&w).len(), 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_notes_stay_internal_and_comments_none_syncs_nothing() {
    let w = world(Options::default()).await;
    let (key, ext) = linked_pair(&w, "Internal").await;
    // The external sandbox has private notes: an internal Jira note becomes one.
    w.jira
        .user_add_internal_comment("alice", &key, "only for agents");
    let c = eventually("the internal note outside", || {
        w.external.comments(&ext).into_iter().next()
    })
    .await;
    assert_eq!(c["internal"], json!(true));
    w.stop().await;

    let w = world(Options {
        connection_extra: "comments = \"none\"\n".into(),
        ..Options::default()
    })
    .await;
    let (key, ext) = linked_pair(&w, "No comments").await;
    w.jira.user_add_comment("alice", &key, "stays here");
    settle(&w).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(ext_texts(&w, &ext).is_empty());
    assert!(ext_comment_writes(&w).is_empty());
    w.stop().await;
}
