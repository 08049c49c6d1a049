//! The REST connector's comments against the external sandbox on loopback: the seed's
//! comment routes (list, create, edit, delete, internal notes, errors), its comment webhooks
//! (three events, a redelivery keeping its key, the item webhook unchanged), and a custom
//! configuration reaching the same comments as Redmine's journals.

mod common;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use chrono::Utc;
use common::{receiver, wait_for};
use serde_json::json;
use tandem::config::RestConfig;
use tandem::connector::rest::RestConnector;
use tandem::connector::{Connector, ConnectorContext, ConnectorError, WebhookError};
use tandem_core::comment::NewComment;
use tandem_core::mapping::Mapping;
use tandem_core::{ChangeKind, CommentChange, Doc, Side};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig};

fn rest_config(toml_text: &str) -> RestConfig {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("config: {e}\n{toml_text}"))
}

fn connector(cfg: &RestConfig) -> RestConnector {
    RestConnector::new(
        cfg,
        ConnectorContext::new(
            Side::External,
            Mapping { fields: vec![] },
            reqwest::Client::new(),
        ),
    )
    .expect("connector")
}

fn seed_config(base: &str) -> RestConfig {
    let d = ExternalSandboxConfig::default();
    rest_config(&format!(
        "base_url = \"{base}\"\nauth = {{ type = \"basic\", username = \"{}\", password = \"{}\" }}\n",
        d.username, d.password
    ))
}

fn new_comment(text: &str, internal: bool) -> NewComment {
    NewComment {
        body: Doc::from_plain(text),
        internal,
        mark: None,
    }
}

#[tokio::test]
async fn seed_comments_are_listed_created_edited_and_deleted() {
    let sb = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .expect("sandbox");
    let c = connector(&seed_config(&sb.url()));
    assert!(c.supports_comments());
    assert!(c.supports_internal_comments());
    let item = sb.user_create(vec![(1001, "Printer on fire".into())]);
    assert!(c.list_comments(&item).await.expect("list").is_empty());

    let first = c
        .create_comment(
            &item,
            &new_comment("Jane (Jira) wrote:\n\nIt smokes.", false),
        )
        .await
        .expect("create");
    let post = sb
        .request_log()
        .into_iter()
        .rfind(|r| r.method == "POST")
        .expect("create call");
    assert_eq!(post.path, format!("/API/issue/{item}/comments"));
    assert_eq!(
        post.body,
        json!({"body": "Jane (Jira) wrote:\n\nIt smokes.", "internal": false})
    );
    let person = sb
        .user_comment(&item, "Ann", "Turned it off.\nAll good", true)
        .expect("person's comment");

    let listed = c.list_comments(&item).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, first);
    // The author defaults to the API user.
    assert_eq!(listed[0].author, ExternalSandboxConfig::default().username);
    assert_eq!(
        listed[0].body,
        Doc::paragraphs(["Jane (Jira) wrote:", "It smokes."])
    );
    assert!(!listed[0].internal);
    assert_eq!(listed[0].created, listed[0].updated);
    assert_eq!(listed[1].id, person);
    assert_eq!(listed[1].author, "Ann");
    assert_eq!(listed[1].body.to_plain(), "Turned it off.\nAll good");
    assert!(listed[1].internal);
    assert!(listed[1].created > listed[0].created);

    // An internal note written by Tandem keeps its flag.
    let note = c
        .create_comment(&item, &new_comment("for agents only", true))
        .await
        .expect("internal");
    assert_eq!(sb.comments(&item)[2]["internal"], json!(true));

    c.update_comment(&item, &first, &new_comment("It smokes a lot.", false))
        .await
        .expect("update");
    let listed = c.list_comments(&item).await.expect("list");
    assert_eq!(listed[0].body.to_plain(), "It smokes a lot.");
    assert!(listed[0].updated > listed[0].created);

    c.delete_comment(&item, &note).await.expect("delete");
    // Deleting what is already gone is what was asked for.
    c.delete_comment(&item, &note).await.expect("delete again");
    let ids: Vec<String> = c
        .list_comments(&item)
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec![first.clone(), person]);

    // Unknown items and comments are permanent failures, with the system's message.
    match c.list_comments("EXT-99").await {
        Err(ConnectorError::Permanent { status, message }) => {
            assert_eq!(status, Some(404));
            assert!(message.contains("issue EXT-99 not found"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match c
        .update_comment(&item, "9999", &new_comment("x", false))
        .await
    {
        Err(ConnectorError::Permanent { status, .. }) => assert_eq!(status, Some(404)),
        other => panic!("{other:?}"),
    }
    // A comment with no text is refused by the system (400), not retried.
    match c.create_comment(&item, &new_comment("  ", false)).await {
        Err(ConnectorError::Permanent { status, message }) => {
            assert_eq!(status, Some(400));
            assert!(message.contains("'body' must not be empty"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(c.list_comments("..").await.is_err());

    // The system unreachable: transient.
    sb.shutdown().await;
    assert!(c.list_comments(&item).await.unwrap_err().is_transient());
}

#[tokio::test]
async fn seed_comment_webhooks_become_commented_events() {
    let sb = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .expect("sandbox");
    let (url, got) = receiver(StatusCode::ACCEPTED).await;
    sb.set_webhook(&url, None);
    let c = connector(&seed_config(&sb.url()));
    let now = Utc::now();

    let item = sb.user_create(vec![(1001, "Hello".into())]);
    let cid = sb
        .user_comment(&item, "Ann", "First!", false)
        .expect("comment");
    assert!(sb.user_edit_comment(&item, &cid, "First, edited"));
    // Editing to the same text changes nothing and sends nothing.
    assert!(sb.user_edit_comment(&item, &cid, "First, edited"));
    assert!(sb.user_delete_comment(&item, &cid));
    assert!(!sb.user_delete_comment(&item, &cid));
    let d = wait_for(&got, 4).await;
    assert_eq!(d.len(), 4);

    // Today's item webhook is unchanged: `_externalData`, no event name.
    let item_hook: serde_json::Value = serde_json::from_slice(&d[0].1).expect("json");
    assert!(item_hook.get("event").is_none(), "{item_hook}");
    assert_eq!(item_hook["sourceIssueId"], json!(item));

    let mut keys = Vec::new();
    for (i, change) in [
        (1, CommentChange::Created),
        (2, CommentChange::Updated),
        (3, CommentChange::Deleted),
    ] {
        let body: serde_json::Value = serde_json::from_slice(&d[i].1).expect("json");
        assert_eq!(body["sourceIssueId"], json!(item), "{body}");
        assert_eq!(body["comment"]["id"], json!(cid), "{body}");
        let events = c
            .parse_webhook("conn", &d[i].0, &d[i].1, now)
            .expect("comment event");
        assert_eq!(events.len(), 1, "{body}");
        let e = &events[0];
        assert_eq!(e.kind, ChangeKind::Commented);
        assert_eq!(e.item_id, item);
        assert!(e.fields.is_empty());
        assert!(!e.needs_fetch);
        let r = e.comment.as_ref().expect("comment ref");
        assert_eq!((r.id.as_str(), r.change), (cid.as_str(), change));
        let delivery = d[i]
            .0
            .get("x-delivery-id")
            .and_then(|v| v.to_str().ok())
            .expect("delivery id");
        let change_name = serde_json::to_value(change).expect("name");
        assert_eq!(
            e.idempotency_key,
            format!(
                "external:comment:{cid}:{}:{delivery}",
                change_name.as_str().expect("str")
            )
        );
        if change == CommentChange::Deleted {
            assert_eq!(e.source_ts, now);
        } else {
            let updated = body["comment"]["updated"].as_str().expect("updated");
            assert_eq!(
                e.source_ts
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                updated
            );
        }
        // The same delivery again (a retry keeps its id): the same key, so a duplicate.
        let again = c
            .parse_webhook("conn", &d[i].0, &d[i].1, now)
            .expect("again");
        assert_eq!(again[0].idempotency_key, e.idempotency_key);
        keys.push(e.idempotency_key.clone());
    }
    keys.dedup();
    assert_eq!(keys.len(), 3);

    // Without a delivery id the comment's `updated` names the delivery.
    let bare = c
        .parse_webhook("conn", &HeaderMap::new(), &d[2].1, now)
        .expect("no id");
    let body: serde_json::Value = serde_json::from_slice(&d[2].1).expect("json");
    assert_eq!(
        bare[0].idempotency_key,
        format!(
            "external:comment:{cid}:updated:{}",
            body["comment"]["updated"].as_str().expect("updated")
        )
    );

    // Wrong shapes name their path.
    let shape = |b: serde_json::Value| {
        let mut h = HeaderMap::new();
        h.insert("x-delivery-id", HeaderValue::from_static("d-1"));
        match c.parse_webhook("conn", &h, b.to_string().as_bytes(), now) {
            Err(WebhookError::Shape { path, .. }) => path,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        shape(json!({"event": "comment_moved", "sourceIssueId": "EXT-1", "comment": {"id": "1"}})),
        "/event"
    );
    assert_eq!(
        shape(json!({"event": "comment_created", "comment": {"id": "1"}})),
        "/sourceIssueId"
    );
    assert_eq!(
        shape(json!({"event": "comment_created", "sourceIssueId": "EXT-1"})),
        "/comment"
    );
    assert_eq!(
        shape(json!({"event": "comment_created", "sourceIssueId": "EXT-1", "comment": {"id": ""}})),
        "/comment/id"
    );
    assert_eq!(
        shape(json!({"event": "comment_created", "sourceIssueId": "EXT-1",
            "comment": {"id": "1", "updated": "yesterday"}})),
        "/comment/updated"
    );
    sb.shutdown().await;
}

/// A custom system reaching the sandbox's comments as Redmine's journals: notes added with
/// an issue update (204, no id), edited and removed through `PUT /journals/{id}.json`.
fn redmine_journals_config(base: &str) -> RestConfig {
    rest_config(&format!(
        r#"
base_url = "{base}"
format = "custom"
auth = {{ type = "basic", username = "external", password = "external-secret" }}

[operations.update]
method = "PUT"
path = "/issues/{{id}}.json"
body = '{{"issue": {{{{fields}}}}}}'

[operations.list_comments]
method = "GET"
path = "/issues/{{id}}.json?include=journals"
items_pointer = "/issue/journals"
id_pointer = "/id"

[operations.create_comment]
method = "PUT"
path = "/issues/{{id}}.json"
body = '{{"issue": {{"notes": {{{{body}}}}, "private_notes": {{{{internal}}}}}}}}'

[operations.update_comment]
method = "PUT"
path = "/journals/{{comment_id}}.json"
body = '{{"journal": {{"notes": {{{{body}}}}}}}}'

[operations.delete_comment]
method = "PUT"
path = "/journals/{{comment_id}}.json"
body = '{{"journal": {{"notes": ""}}}}'

[comment]
body_pointer = "/notes"
created_pointer = "/created_on"
updated_pointer = "/updated_on"
author_pointer = "/user/name"
internal_pointer = "/private_notes"
format = "plain"

[webhook]
id_pointer = "/issue/id"
event_pointer = "/action"
comment_id_pointer = "/journal/id"
"#
    ))
}

#[tokio::test]
async fn custom_comment_operations_reach_redmine_journals() {
    let sb = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .expect("sandbox");
    let c = connector(&redmine_journals_config(&sb.url()));
    assert!(c.supports_comments());
    assert!(c.supports_internal_comments());
    let item = sb.user_create(vec![(1001, "Printer on fire".into())]);
    let number = item.trim_start_matches("EXT-").to_string();
    sb.user_comment(&item, "Ann", "Seen on the 2nd floor", false)
        .expect("person's note");

    // The note is added with an issue update answered 204: its id comes from the listing.
    let id = c
        .create_comment(&number, &new_comment("Jane (Jira) wrote:\n\nOn it.", true))
        .await
        .expect("create");
    let put = sb
        .request_log()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .expect("note call");
    assert_eq!(put.path, format!("/issues/{number}.json"));
    assert_eq!(
        put.body,
        json!({"issue": {"notes": "Jane (Jira) wrote:\n\nOn it.", "private_notes": true}})
    );
    let listed = c.list_comments(&number).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].author, "Ann");
    assert_eq!(listed[0].body.to_plain(), "Seen on the 2nd floor");
    assert!(!listed[0].internal);
    assert_eq!(listed[1].id, id);
    assert!(listed[1].internal);
    assert_eq!(sb.comments(&item)[1]["id"], json!(id));

    c.update_comment(&number, &id, &new_comment("On it, today.", true))
        .await
        .expect("update");
    assert_eq!(sb.comments(&item)[1]["body"], json!("On it, today."));

    c.delete_comment(&number, &id).await.expect("delete");
    assert_eq!(sb.comments(&item).len(), 1);
    // Gone already: Redmine's 404 counts as deleted.
    c.delete_comment(&number, &id).await.expect("delete again");

    // A delivery naming a journal is a comment event; one without is about the item.
    let h = HeaderMap::new();
    let events = c
        .parse_webhook(
            "conn",
            &h,
            json!({"action": "journal_deleted", "issue": {"id": 7}, "journal": {"id": 12}})
                .to_string()
                .as_bytes(),
            Utc::now(),
        )
        .expect("comment delivery");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, ChangeKind::Commented);
    assert_eq!(events[0].item_id, "7");
    let r = events[0].comment.as_ref().expect("ref");
    assert_eq!((r.id.as_str(), r.change), ("12", CommentChange::Deleted));
    let events = c
        .parse_webhook(
            "conn",
            &h,
            json!({"action": "updated", "issue": {"id": 7}})
                .to_string()
                .as_bytes(),
            Utc::now(),
        )
        .expect("item delivery");
    assert!(events.iter().all(|e| e.comment.is_none()));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_custom_system_without_comment_operations_has_no_comments() {
    let cfg = rest_config(
        r#"
base_url = "http://127.0.0.1:9"
format = "custom"
[operations.update]
method = "PUT"
path = "/t/{id}"
"#,
    );
    let c = connector(&cfg);
    assert!(!c.supports_comments());
    assert!(!c.supports_internal_comments());
    assert!(c.list_comments("1").await.is_err());
}
