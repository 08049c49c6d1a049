//! The Jira connector's comment calls against the Jira sandbox over real HTTP, on Cloud
//! (REST v3, ADF) and Data Center (REST v2, wiki): listing across pages, create / update /
//! delete, Tandem's mark and JSM internal notes as comment properties, the dead-letter
//! notice marked, and `comment_*` webhooks read as one `Commented` event each.

mod common;

use axum::http::StatusCode;
use chrono::Utc;
use common::{fm, receiver, wait_for};
use serde_json::json;
use tandem::config::{FilterConfig, JiraApi, JiraConfig};
use tandem::connector::jira::JiraConnector;
use tandem::connector::{Connector, ConnectorContext};
use tandem::secret::Secret;
use tandem_core::comment::{NewComment, TandemMark};
use tandem_core::mapping::{FieldType, Mapping};
use tandem_core::richtext::Doc;
use tandem_core::{ChangeKind, CommentChange, Side};
use tandem_sandbox::{JiraSandbox, JiraSandboxConfig};

fn config(base: &str, api: JiraApi) -> JiraConfig {
    let d = JiraSandboxConfig::default();
    JiraConfig {
        base_url: base.to_string(),
        api,
        email: Some(d.email.clone()),
        api_token: Some(Secret::new(d.api_token.clone())),
        pat: Some(Secret::new(d.pat.clone())),
        oauth_token: None,
        dynamic_webhook_url: None,
        webhook_secret: None,
        project: "TEST".into(),
        issue_type: "Task".into(),
        link_field: "External ID".into(),
    }
}

fn connector(base: &str, api: JiraApi, filter: FilterConfig) -> JiraConnector {
    let mapping = Mapping {
        fields: vec![fm("summary", "1", FieldType::Text)],
    };
    JiraConnector::new(
        &config(base, api),
        ConnectorContext::new(Side::Jira, mapping, reqwest::Client::new()).with_filter(filter),
    )
    .expect("connector")
}

fn new_comment(text: &str, internal: bool, mark: Option<TandemMark>) -> NewComment {
    NewComment {
        body: Doc::from_plain(text),
        internal,
        mark,
    }
}

#[tokio::test]
async fn comments_round_trip_on_cloud_and_data_center() {
    let sb = JiraSandbox::start(JiraSandboxConfig::default())
        .await
        .unwrap();
    for api in [JiraApi::Cloud, JiraApi::Datacenter] {
        let c = connector(&sb.url(), api, FilterConfig::default());
        let key = sb.user_create_issue("TEST", json!({"summary": "talk"}));
        let issue = sb.issue(&key).unwrap();
        let id = issue["id"].as_str().unwrap().to_string();
        assert!(c.supports_comments() && c.supports_internal_comments());
        assert!(c.list_comments(&id).await.expect("empty list").is_empty());

        // A person's comment, an internal note, then more than a page of comments.
        let alice = sb.user_add_comment("alice", &key, "First words");
        let note = sb.user_add_internal_comment("bob", &key, "Between us");
        for n in 0..120 {
            sb.user_add_comment("alice", &key, &format!("filler {n}"));
        }
        let listed = c.list_comments(&id).await.expect("list");
        assert_eq!(listed.len(), 122, "every page is read");
        assert_eq!(listed[0].id, alice);
        assert_eq!(listed[0].author, "Alice Human");
        assert_eq!(listed[0].body.to_plain(), "First words");
        assert!(!listed[0].internal && listed[0].mark.is_none());
        assert_eq!(listed[0].created, listed[0].updated);
        assert_eq!(listed[1].id, note);
        assert!(
            listed[1].internal,
            "sd.public.comment makes an internal note"
        );
        assert_eq!(listed[121].body.to_plain(), "filler 119", "oldest first");
        let pages = sb
            .request_log()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/comment"))
            .count();
        assert!(pages >= 3, "paged: {pages} listing calls in all");

        // A twin: marked, internal, and read back as such.
        let mark = TandemMark::TwinOf {
            of: "ext-42".into(),
        };
        let twin = c
            .create_comment(&id, &new_comment("Copied *over*", true, Some(mark.clone())))
            .await
            .expect("create");
        let raw = sb.comments(&key);
        let stored = raw.iter().find(|r| r["id"] == json!(twin)).unwrap();
        assert_eq!(stored["jsdPublic"], json!(false));
        assert_eq!(
            stored["properties"],
            json!([{"key": "tandem", "value": {"kind": "twin_of", "of": "ext-42"}},
                   {"key": "sd.public.comment", "value": {"internal": true}}])
        );
        let read = c.list_comments(&id).await.unwrap();
        let back = read.iter().find(|x| x.id == twin).unwrap();
        assert_eq!(back.mark, Some(mark.clone()));
        assert!(back.internal);
        assert_eq!(back.author, "Tandem Integration");
        assert_eq!(back.body.to_plain(), "Copied *over*");

        // An update rewrites the body and keeps the properties.
        c.update_comment(&id, &twin, &new_comment("Rewritten", false, None))
            .await
            .expect("update");
        let read = c.list_comments(&id).await.unwrap();
        let back = read.iter().find(|x| x.id == twin).unwrap();
        assert_eq!(back.body.to_plain(), "Rewritten");
        assert_eq!(back.mark, Some(mark));
        assert!(back.internal);
        assert!(back.updated >= back.created);

        // A person's edit is seen; a delete removes; deleting again is fine.
        sb.user_edit_comment("alice", &key, &alice, "Second thoughts");
        let read = c.list_comments(&id).await.unwrap();
        assert_eq!(read[0].body.to_plain(), "Second thoughts");
        assert!(read[0].updated > read[0].created);
        c.delete_comment(&id, &twin).await.expect("delete");
        c.delete_comment(&id, &twin)
            .await
            .expect("a gone comment is Ok");
        assert!(sb.comments(&key).iter().all(|r| r["id"] != json!(twin)));

        // Refusals are permanent and say why.
        let err = c
            .update_comment(&id, "99999999", &new_comment("x", false, None))
            .await
            .unwrap_err();
        assert!(!err.is_transient(), "{err}");
        assert!(err.to_string().contains("Can not find a comment"), "{err}");
        assert!(
            c.delete_comment(&id, "1/../2").await.is_err(),
            "ids are checked"
        );

        // The dead-letter notice carries the notice mark, so it is never synced.
        c.comment(&id, "Tandem could not sync: example")
            .await
            .unwrap();
        let read = c.list_comments(&id).await.unwrap();
        let notice = read.last().unwrap();
        assert_eq!(notice.body.to_plain(), "Tandem could not sync: example");
        assert_eq!(notice.mark, Some(TandemMark::Notice));
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn transient_comment_failures_are_retried() {
    let sb = JiraSandbox::start(JiraSandboxConfig::default())
        .await
        .unwrap();
    let c = connector(&sb.url(), JiraApi::Cloud, FilterConfig::default());
    let key = sb.user_create_issue("TEST", json!({"summary": "busy"}));
    let id = sb.issue(&key).unwrap()["id"].as_str().unwrap().to_string();
    sb.faults().set_error_rate(1.0);
    let err = c.list_comments(&id).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    sb.faults().set_error_rate(0.0);
    assert!(c.list_comments(&id).await.unwrap().is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn comment_webhooks_become_one_commented_event_each() {
    let sb = JiraSandbox::start(JiraSandboxConfig::default())
        .await
        .unwrap();
    let (url, got) = receiver(StatusCode::NO_CONTENT).await;
    sb.register_webhook(&url, None);
    let c = connector(&sb.url(), JiraApi::Cloud, FilterConfig::default());
    c.prepare().await.expect("prepare");
    let key = sb.user_create_issue("TEST", json!({"summary": "hooked"}));
    let issue_id = sb.issue(&key).unwrap()["id"].as_str().unwrap().to_string();
    let cid = sb.user_add_comment("alice", &key, "Hello");
    sb.user_edit_comment("alice", &key, &cid, "Hello again");
    sb.user_delete_comment("bob", &key, &cid);
    // issue_created, then per comment change: comment_* and jira:issue_updated.
    let d = wait_for(&got, 7).await;
    let now = Utc::now();
    let mut events = Vec::new();
    for (headers, body) in &d {
        events.extend(c.parse_webhook("conn", headers, body, now).expect("parsed"));
    }
    let comment_events: Vec<_> = events
        .iter()
        .filter(|e| e.kind == ChangeKind::Commented)
        .collect();
    assert_eq!(
        comment_events.len(),
        3,
        "the issue_updated twins of comment deliveries add no event: {events:#?}"
    );
    assert_eq!(events.len(), 4, "plus the issue's creation: {events:#?}");
    let changes: Vec<CommentChange> = comment_events
        .iter()
        .map(|e| e.comment.as_ref().unwrap().change)
        .collect();
    assert_eq!(
        changes,
        vec![
            CommentChange::Created,
            CommentChange::Updated,
            CommentChange::Deleted
        ]
    );
    let listed = sb.comments(&key);
    assert!(listed.is_empty());
    for e in &comment_events {
        assert_eq!(e.item_id, issue_id);
        assert_eq!(e.item_key.as_deref(), Some(key.as_str()));
        assert_eq!(e.comment.as_ref().unwrap().id, cid);
        assert!(e.fields.is_empty() && !e.needs_fetch);
        assert_eq!(e.source, Side::Jira);
    }
    assert!(comment_events[1].source_ts > comment_events[0].source_ts);
    assert_eq!(
        comment_events[0].idempotency_key,
        format!(
            "jira:comment:{cid}:created:{}",
            comment_events[0].source_ts.timestamp_millis()
        )
    );
    assert!(
        comment_events[2]
            .idempotency_key
            .starts_with(&format!("jira:comment:{cid}:deleted:"))
    );

    // A redelivery (another delivery id, same comment state) is the same event.
    let created_delivery = d
        .iter()
        .find(|(_, b)| String::from_utf8_lossy(b).contains("\"comment_created\""))
        .unwrap();
    let mut other_headers = created_delivery.0.clone();
    other_headers.insert(
        "x-atlassian-webhook-identifier",
        "another-delivery".parse().unwrap(),
    );
    let again = c
        .parse_webhook("conn", &other_headers, &created_delivery.1, Utc::now())
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].idempotency_key, comment_events[0].idempotency_key);

    // Outside the connection's filter: acknowledged, no event.
    let narrow = connector(
        &sb.url(),
        JiraApi::Cloud,
        FilterConfig {
            projects: vec!["OTHER".into()],
            issue_types: vec![],
            jql: None,
        },
    );
    assert!(
        narrow
            .parse_webhook("conn", &created_delivery.0, &created_delivery.1, now)
            .unwrap()
            .is_empty()
    );
    let by_type = connector(
        &sb.url(),
        JiraApi::Cloud,
        FilterConfig {
            projects: vec![],
            issue_types: vec!["task".into()],
            jql: None,
        },
    );
    assert_eq!(
        by_type
            .parse_webhook("conn", &created_delivery.0, &created_delivery.1, now)
            .unwrap()
            .len(),
        1
    );
    sb.shutdown().await;
}
