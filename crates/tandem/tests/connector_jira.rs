//! The Jira connector against the Jira sandbox over real HTTP (Cloud REST v3 and Data Center
//! REST v2), plus a tiny in-test server for catalogues the sandbox does not have.
//!
//! The request contract test at the end replays a whole session and validates every request
//! the client sent against Atlassian's OpenAPI spec (`vendor/openapi/jira-cloud-platform.openapi.json`).

mod common;
#[path = "../../sandbox/tests/support/openapi.rs"]
mod openapi;

use axum::http::{HeaderMap, StatusCode};
use chrono::{Duration as ChronoDuration, Utc};
use common::{date, fields, fm, receiver, serve, text, wait_for};
use openapi::{spec, violations};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tandem::config::{JiraApi, JiraConfig};
use tandem::connector::jira::JiraConnector;
use tandem::connector::{Connector, ConnectorContext, ConnectorError, Fields, WebhookError};
use tandem::secret::Secret;
use tandem_core::mapping::{FieldType, Mapping};
use tandem_core::richtext::Doc;
use tandem_core::{ChangeKind, FieldValue, Side};
use tandem_sandbox::{JiraSandbox, JiraSandboxConfig, RecordedRequest};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The mapping most tests use: system and custom fields, named by id and by display name.
fn mapping() -> Mapping {
    Mapping {
        fields: vec![
            fm("summary", "1", FieldType::Text),
            fm("description", "2", FieldType::RichText),
            fm("dueDate", "3", FieldType::Date),
            fm("Story Points", "4", FieldType::Number),
            fm("severity", "5", FieldType::Option),
            fm("labels", "6", FieldType::Labels),
            fm("priority", "7", FieldType::Option),
            status_entry(),
        ],
    }
}

/// Status, with the resolution the sandbox workflow's Done transition asks for.
fn status_entry() -> tandem_core::mapping::FieldMapping {
    let mut m = fm("status", "8", FieldType::Option);
    m.transition_fields.insert(
        "Done".into(),
        serde_json::json!({ "resolution": { "name": "Done" } }),
    );
    m
}

fn config(base: &str, api: JiraApi, secret: Option<&str>) -> JiraConfig {
    let d = JiraSandboxConfig::default();
    JiraConfig {
        base_url: base.to_string(),
        api,
        email: Some(d.email.clone()),
        api_token: Some(Secret::new(d.api_token.clone())),
        pat: Some(Secret::new(d.pat.clone())),
        oauth_token: None,
        dynamic_webhook_url: None,
        webhook_secret: secret.map(Secret::new),
        project: "TEST".into(),
        issue_type: "Task".into(),
        link_field: "External ID".into(),
    }
}

fn connector_with(cfg: &JiraConfig, mapping: Mapping) -> JiraConnector {
    JiraConnector::new(
        cfg,
        ConnectorContext::new(Side::Jira, mapping, reqwest::Client::new()),
    )
    .expect("connector")
}

async fn sandbox() -> JiraSandbox {
    JiraSandbox::start(JiraSandboxConfig::default())
        .await
        .expect("sandbox")
}

fn requests(sb: &JiraSandbox, method: &str, path_prefix: &str) -> Vec<RecordedRequest> {
    sb.request_log()
        .into_iter()
        .filter(|r| r.method == method && r.path.starts_with(path_prefix))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Field resolution
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fields_resolve_by_id_and_display_name_and_check_reports_them() {
    let sb = sandbox().await;
    let c = connector_with(&config(&sb.url(), JiraApi::Cloud, None), mapping());
    c.prepare().await.expect("prepare");
    let report = c.check().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        report.identity.contains("Tandem Integration"),
        "{}",
        report.identity
    );
    let lines = report.fields.join("\n");
    for expected in [
        "dueDate → duedate (Due date)",
        "Story Points → customfield_10052 (Story Points)",
        "severity → customfield_10051 (Severity)",
        "link field → customfield_10050 (External ID)",
    ] {
        assert!(lines.contains(expected), "missing `{expected}` in\n{lines}");
    }

    // An unknown name is refused by prepare and reported by check.
    let mut m = mapping();
    m.fields.push(fm("Colour", "9", FieldType::Text));
    let bad = connector_with(&config(&sb.url(), JiraApi::Cloud, None), m);
    let err = bad.prepare().await.unwrap_err();
    assert!(!err.is_transient());
    assert!(
        err.to_string().contains("unknown Jira field `Colour`"),
        "{err}"
    );
    let report = bad.check().await;
    assert!(
        report.problems.iter().any(|p| p.contains("Colour")),
        "{:?}",
        report.problems
    );
    // Until prepare succeeds, calls fail transiently (the worker retries them).
    assert!(bad.fetch("10000").await.unwrap_err().is_transient());
}

/// A catalogue with duplicate display names, served by a tiny server, since the sandbox's
/// catalogue has none.
#[tokio::test]
async fn ambiguous_display_names_are_refused_with_candidates() {
    let catalogue = json!([
        {"id":"summary","name":"Summary","schema":{"type":"string","system":"summary"}},
        {"id":"customfield_10050","name":"External ID","schema":{"type":"string","custom":"x:textfield","customId":10050}},
        {"id":"customfield_20001","name":"Team","schema":{"type":"option","custom":"x:select","customId":20001}},
        {"id":"customfield_20002","name":"team","schema":{"type":"string","custom":"x:textfield","customId":20002}}
    ]);
    let app = axum::Router::new().route(
        "/rest/api/3/field",
        axum::routing::get(move || {
            let c = catalogue.clone();
            async move { axum::Json(c) }
        }),
    );
    let base = serve(app).await;
    let m = Mapping {
        fields: vec![
            fm("summary", "1", FieldType::Text),
            fm("Team", "2", FieldType::Option),
        ],
    };
    let c = connector_with(&config(&base, JiraApi::Cloud, None), m);
    let err = c.prepare().await.unwrap_err().to_string();
    assert!(err.contains("`Team` is ambiguous"), "{err}");
    assert!(
        err.contains("customfield_20001, customfield_20002"),
        "{err}"
    );

    // By id it is fine.
    let m = Mapping {
        fields: vec![fm("customfield_20001", "2", FieldType::Option)],
    };
    connector_with(&config(&base, JiraApi::Cloud, None), m)
        .prepare()
        .await
        .expect("by id");
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

fn sample_fields() -> Fields {
    fields(&[
        ("summary", text("Printer on fire")),
        (
            "description",
            FieldValue::RichText(Doc::from_wiki("First *bold* paragraph\n\n* one\n* two")),
        ),
        ("dueDate", date(2025, 1, 31)),
        ("Story Points", FieldValue::Number(5.0)),
        ("severity", FieldValue::Option("Major".into())),
        (
            "labels",
            FieldValue::Labels(vec!["ops".into(), "urgent".into()]),
        ),
        ("priority", FieldValue::Option("High".into())),
    ])
}

async fn round_trip(api: JiraApi) {
    let sb = sandbox().await;
    let c = connector_with(&config(&sb.url(), api, None), mapping());
    c.prepare().await.expect("prepare");

    let created = c
        .create(&sample_fields(), Some("EXT-9"))
        .await
        .expect("create");
    assert_eq!(created.key.as_deref(), Some("TEST-1"));
    assert_eq!(created.link.as_deref(), Some("EXT-9"));

    let item = c.fetch(&created.id).await.expect("fetch");
    assert_eq!(item.id, created.id);
    assert_eq!(item.key.as_deref(), Some("TEST-1"));
    assert_eq!(item.link.as_deref(), Some("EXT-9"));
    assert_eq!(item.project.as_deref(), Some("TEST"));
    assert_eq!(item.issue_type.as_deref(), Some("Task"));
    assert!(item.updated.is_some());
    for (k, v) in sample_fields() {
        assert_eq!(item.fields.get(&k), Some(&v), "field {k}");
    }
    assert_eq!(
        item.fields.get("status"),
        Some(&FieldValue::Option("To Do".into()))
    );

    // One call carried the link field and the date in Jira's form.
    let prefix = match api {
        JiraApi::Cloud => "/rest/api/3",
        JiraApi::Datacenter => "/rest/api/2",
    };
    let creates = requests(&sb, "POST", &format!("{prefix}/issue"));
    assert_eq!(creates.len(), 1);
    let body = &creates[0].body["fields"];
    assert_eq!(body["customfield_10050"], json!("EXT-9"));
    assert_eq!(body["duedate"], json!("2025-01-31"));
    assert_eq!(body["customfield_10051"], json!({"value": "Major"}));
    assert_eq!(body["priority"], json!({"name": "High"}));
    assert_eq!(body["project"], json!({"key": "TEST"}));
    match api {
        JiraApi::Cloud => assert_eq!(body["description"]["type"], json!("doc")),
        JiraApi::Datacenter => assert!(body["description"].is_string(), "{body}"),
    }

    // All changed fields in one PUT; status through a transition.
    let changes = fields(&[
        ("dueDate", date(2025, 2, 1)),
        (
            "description",
            FieldValue::RichText(Doc::from_plain("Rewritten")),
        ),
        ("labels", FieldValue::Empty),
        ("status", FieldValue::Option("In Progress".into())),
    ]);
    c.update(&created.id, &changes).await.expect("update");
    let puts = requests(&sb, "PUT", &format!("{prefix}/issue/"));
    assert_eq!(puts.len(), 1, "one edit call");
    assert!(puts[0].body["fields"].get("status").is_none());
    let item = c.fetch(&created.id).await.expect("fetch");
    for (k, v) in &changes {
        assert_eq!(item.fields.get(k), Some(v), "field {k}");
    }
    let sandbox_issue = sb.issue("TEST-1").expect("issue");
    assert_eq!(sandbox_issue["fields"]["duedate"], json!("2025-02-01"));
    assert_eq!(
        sandbox_issue["fields"]["status"]["name"],
        json!("In Progress")
    );

    // A status the site does not have is a permanent error that says why, and names the
    // transitions there are.
    let err = c
        .update(
            &created.id,
            &fields(&[("status", FieldValue::Option("Nirvana".into()))]),
        )
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert!(
        err.to_string()
            .contains("status changes through transitions, and this site has no status `Nirvana`"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("available from `In Progress`: Stop progress → To Do, Done → Done"),
        "{err}"
    );

    // Comments land on the issue.
    c.comment(&created.id, "Tandem could not sync: example")
        .await
        .expect("comment");
    let comments = sb.comments("TEST-1");
    assert_eq!(comments.len(), 1);

    // set_link rewrites only the link field.
    c.set_link(&created.id, "EXT-10").await.expect("set_link");
    let last_put = requests(&sb, "PUT", &format!("{prefix}/issue/"))
        .pop()
        .expect("put");
    assert_eq!(
        last_put.body,
        json!({"fields": {"customfield_10050": "EXT-10"}})
    );
    assert_eq!(
        c.fetch("TEST-1")
            .await
            .expect("fetch by key")
            .link
            .as_deref(),
        Some("EXT-10")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn cloud_create_update_fetch_round_trip_with_adf_and_dates() {
    round_trip(JiraApi::Cloud).await;
}

#[tokio::test]
async fn datacenter_create_update_fetch_round_trip_with_wiki_and_dates() {
    round_trip(JiraApi::Datacenter).await;
}

// ---------------------------------------------------------------------------------------------
// find_by_link
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn find_by_link_quotes_hostile_ids_and_matches_exactly() {
    let sb = sandbox().await;
    let c = connector_with(&config(&sb.url(), JiraApi::Cloud, None), mapping());
    c.prepare().await.expect("prepare");
    let hostile = [
        r#"EXT-1"#,
        r#"a"b\c"#,
        r#"x" OR key = TEST-1 OR summary ~ "y"#,
        r#"\" OR key = TEST-1 OR \""#,
        "two words",
    ];
    let mut ids = Vec::new();
    for (i, link) in hostile.iter().enumerate() {
        let f = fields(&[("summary", text(&format!("issue {i}")))]);
        ids.push(c.create(&f, Some(link)).await.expect("create").id);
    }
    for (link, id) in hostile.iter().zip(&ids) {
        let found = c.find_by_link(link).await.expect("search");
        assert_eq!(
            found.as_ref().map(|i| i.id.as_str()),
            Some(id.as_str()),
            "{link}"
        );
    }
    // Partial words and injections that would match other issues find nothing.
    for probe in ["EXT", "two", r#"" OR key = TEST-1 OR ""#, "words two", ""] {
        assert_eq!(
            c.find_by_link(probe).await.expect("search"),
            None,
            "{probe:?}"
        );
    }
    // The JQL sent keeps each id inside one string literal.
    let searches = requests(&sb, "POST", "/rest/api/3/search/jql");
    let jql: Vec<String> = searches
        .iter()
        .filter_map(|r| r.body["jql"].as_str().map(str::to_string))
        .collect();
    assert!(
        jql.contains(&r#"project = "TEST" AND cf[10050] ~ "\"a\\\"b\\\\c\"""#.to_string()),
        "{jql:#?}"
    );
    sb.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// changed_since
// ---------------------------------------------------------------------------------------------

async fn paging(api: JiraApi) {
    let sb = sandbox().await;
    let since = Utc::now() - ChronoDuration::minutes(2);
    for i in 0..130 {
        sb.user_create_issue("TEST", json!({"summary": format!("bulk {i}")}));
    }
    let c = connector_with(&config(&sb.url(), api, None), mapping());
    let mut seen = BTreeSet::new();
    let mut page: Option<String> = None;
    let mut pages = 0;
    loop {
        let p = c.changed_since(since, page.as_deref()).await.expect("page");
        pages += 1;
        for item in &p.items {
            assert!(seen.insert(item.id.clone()), "duplicate {}", item.id);
            assert!(item.fields.contains_key("summary"));
        }
        match p.next {
            Some(n) => page = Some(n),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen.len(), 130);
    assert!(pages >= 2, "expected several pages, got {pages}");
    // The bound is relative to Jira's clock (time-zone proof) and the same on every page.
    let prefix = match api {
        JiraApi::Cloud => "/rest/api/3/search/jql",
        JiraApi::Datacenter => "/rest/api/2/search",
    };
    let jqls: Vec<String> = requests(&sb, "POST", prefix)
        .iter()
        .filter_map(|r| r.body["jql"].as_str().map(str::to_string))
        .collect();
    assert_eq!(jqls.len(), pages);
    assert!(jqls.iter().all(|j| j == &jqls[0]), "{jqls:#?}");
    assert!(
        jqls[0].starts_with(r#"project in ("TEST") AND updated >= "-"#),
        "{}",
        jqls[0]
    );
    // An old cursor (bulk sync) uses an absolute date, widened by the largest zone offset.
    let old = c
        .changed_since(Utc::now() - ChronoDuration::days(30), None)
        .await
        .expect("old");
    assert_eq!(old.items.len(), 100);
    let last = requests(&sb, "POST", prefix).pop().expect("search");
    assert!(
        !last.body["jql"].as_str().unwrap_or("").contains("\"-"),
        "{}",
        last.body["jql"]
    );
    // A token from the other flavour or garbage is refused, not misread.
    assert!(c.changed_since(since, Some("garbage")).await.is_err());
    sb.shutdown().await;
}

#[tokio::test]
async fn cloud_changed_since_follows_next_page_tokens() {
    paging(JiraApi::Cloud).await;
}

#[tokio::test]
async fn datacenter_changed_since_follows_start_at() {
    paging(JiraApi::Datacenter).await;
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn webhooks_are_verified_and_carry_only_changed_mapped_fields() {
    let sb = sandbox().await;
    let (url, got) = receiver(StatusCode::NO_CONTENT).await;
    sb.register_webhook(&url, Some("hook-secret"));
    let c = connector_with(
        &config(&sb.url(), JiraApi::Cloud, Some("hook-secret")),
        mapping(),
    );
    c.prepare().await.expect("prepare");
    let now = Utc::now();

    // Created: every mapped field, description read from the v2 wiki string.
    let key = sb.user_create_issue(
        "TEST",
        json!({"summary": "From a human", "description": "Hello there", "duedate": "2025-03-01"}),
    );
    let d = wait_for(&got, 1).await;
    let (headers, body) = &d[0];
    let events = c
        .parse_webhook("conn", headers, body, now)
        .expect("created");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.kind, ChangeKind::Created);
    assert_eq!(e.item_key.as_deref(), Some(key.as_str()));
    assert_eq!(e.source, Side::Jira);
    assert_eq!(e.fields.get("summary"), Some(&text("From a human")));
    assert_eq!(e.fields.get("dueDate"), Some(&date(2025, 3, 1)));
    assert_eq!(
        e.fields.get("description"),
        Some(&FieldValue::RichText(Doc::from_plain("Hello there")))
    );
    assert_eq!(e.fields.len(), mapping().fields.len());
    // The webhook's wiki string and the REST v3 ADF read as the same document, so an echo
    // is recognised whichever way the value arrived.
    // (Plain paragraphs and line breaks: the sandbox's v2 rendering drops marks.)
    sb.user_edit_issue(
        &key,
        json!({"description": "Hello there\nsecond line\n\nNew paragraph"}),
    );
    let d2 = wait_for(&got, 2).await;
    let via_hook = c
        .parse_webhook("conn", &d2[1].0, &d2[1].1, now)
        .expect("updated");
    let via_rest = c.fetch(&e.item_id).await.expect("fetch");
    assert_eq!(
        via_hook[0].fields.get("description"),
        via_rest.fields.get("description")
    );
    assert!(
        matches!(via_rest.fields.get("description"), Some(FieldValue::RichText(d)) if !d.is_empty())
    );
    let delivery_id = headers
        .get("x-atlassian-webhook-identifier")
        .and_then(|v| v.to_str().ok())
        .expect("identifier");
    assert_eq!(e.idempotency_key, format!("jira:{delivery_id}"));
    assert!(!e.needs_fetch);

    // Updated: only the mapped fields named in the changelog.
    sb.user_edit_issue(
        &key,
        json!({"summary": "Renamed", "customfield_123456": "unmapped"}),
    );
    let d = wait_for(&got, 3).await;
    let (headers, body) = &d[2];
    let events = c
        .parse_webhook("conn", headers, body, now)
        .expect("updated");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, ChangeKind::Updated);
    assert_eq!(
        events[0].fields.keys().collect::<Vec<_>>(),
        vec!["summary"],
        "{:?}",
        events[0].fields
    );
    assert_eq!(events[0].fields["summary"], text("Renamed"));

    // A change to an unmapped field only: nothing to sync.
    sb.user_edit_issue(&key, json!({"customfield_123456": "still unmapped"}));
    let d = wait_for(&got, 4).await;
    let (headers, body) = &d[3];
    assert!(
        c.parse_webhook("conn", headers, body, now)
            .expect("ok")
            .is_empty()
    );

    // Signatures: a wrong secret and a missing header are refused, saying which.
    let wrong = connector_with(
        &config(&sb.url(), JiraApi::Cloud, Some("other-secret")),
        mapping(),
    );
    match wrong.parse_webhook("conn", headers, body, now) {
        Err(WebhookError::Unauthorized(m)) => {
            assert!(m.starts_with("bad X-Hub-Signature"), "{m}");
            assert!(!m.contains("other-secret") && !m.contains("hook-secret"));
        }
        other => panic!("{other:?}"),
    }
    let mut stripped = headers.clone();
    stripped.remove("x-hub-signature");
    match c.parse_webhook("conn", &stripped, body, now) {
        Err(WebhookError::Unauthorized(m)) => assert!(m.starts_with("missing X-Hub-Signature")),
        other => panic!("{other:?}"),
    }
    // Tampering with the body breaks the signature.
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert!(matches!(
        c.parse_webhook("conn", headers, &tampered, now),
        Err(WebhookError::Unauthorized(_))
    ));
    sb.shutdown().await;
}

#[tokio::test]
async fn webhook_payloads_by_hand_shapes_and_fallbacks() {
    let c = connector_with(
        &config("http://127.0.0.1:9", JiraApi::Cloud, None),
        mapping(),
    );
    let h = HeaderMap::new();
    let now = Utc::now();
    // Not prepared: field ids are taken as named; still parses.
    let body = json!({
        "timestamp": 1_728_376_683_790_i64,
        "webhookEvent": "jira:issue_updated",
        "issue": {"id": "10005", "key": "TEST-5", "fields": {
            "summary": "S", "labels": ["x"], "status": {"name": "Done"}, "updated": "2025-01-31T10:15:30.000+0000"
        }},
        "changelog": {"items": [
            {"field": "summary", "fieldtype": "jira", "fieldId": "summary"},
            {"field": "Labels", "fieldtype": "jira"},
            {"field": "assignee", "fieldtype": "jira", "fieldId": "assignee"}
        ]}
    });
    let bytes = serde_json::to_vec(&body).expect("json");
    let events = c.parse_webhook("conn", &h, &bytes, now).expect("parsed");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.item_id, "10005");
    assert_eq!(
        e.fields.keys().cloned().collect::<Vec<_>>(),
        vec!["labels".to_string(), "summary".to_string()]
    );
    // The issue's own `updated` (the clock a re-read shows) wins over the delivery's
    // `timestamp`, which is the fallback.
    assert_eq!(e.source_ts.to_rfc3339(), "2025-01-31T10:15:30+00:00");
    let mut no_updated = body.clone();
    no_updated["issue"]["fields"]
        .as_object_mut()
        .expect("fields")
        .remove("updated");
    let without = c
        .parse_webhook(
            "conn",
            &h,
            &serde_json::to_vec(&no_updated).expect("json"),
            now,
        )
        .expect("parsed");
    assert_eq!(without[0].source_ts.timestamp_millis(), 1_728_376_683_790);
    // Without a delivery id the key is the body's digest: same body, same key.
    let again = c.parse_webhook("conn", &h, &bytes, now).expect("parsed");
    assert_eq!(again[0].idempotency_key, e.idempotency_key);
    assert!(e.idempotency_key.starts_with("jira:") && e.idempotency_key.len() == 5 + 64);

    // A comment event names its comment: without one the delivery is refused, at `/comment`.
    let b = serde_json::to_vec(
        &json!({"webhookEvent": "comment_created", "issue": {"id": "1", "key": "A-1"}}),
    )
    .expect("json");
    assert!(
        c.parse_webhook("conn", &h, &b, now).is_err(),
        "comment_created without a comment"
    );
    // Unknown events are acknowledged with nothing to do.
    for ev in ["jira:version_released", "something_else"] {
        let b =
            serde_json::to_vec(&json!({"webhookEvent": ev, "issue": {"id": "1", "key": "A-1"}}))
                .expect("json");
        assert!(
            c.parse_webhook("conn", &h, &b, now).expect("ok").is_empty(),
            "{ev}"
        );
    }
    // An update without a changelog (a comment's echo) changes nothing we sync.
    let b = serde_json::to_vec(&json!({
        "webhookEvent": "jira:issue_updated",
        "issue": {"id": "1", "key": "A-1", "fields": {"summary": "S"}},
        "comment": {"body": "hi"}
    }))
    .expect("json");
    assert!(c.parse_webhook("conn", &h, &b, now).expect("ok").is_empty());

    // Errors: malformed JSON, then shape errors naming the path.
    assert!(matches!(
        c.parse_webhook("conn", &h, b"{not json", now),
        Err(WebhookError::Malformed(_))
    ));
    for (body, path) in [
        (json!({"issue": {}}), "/webhookEvent"),
        (json!({"webhookEvent": "jira:issue_created"}), "/issue"),
        (
            json!({"webhookEvent": "jira:issue_created", "issue": {"key": "A-1"}}),
            "/issue/id",
        ),
        (
            json!({"webhookEvent": "jira:issue_created", "issue": {"id": "1"}}),
            "/issue/key",
        ),
        (
            json!({"webhookEvent": "jira:issue_updated", "issue": {"id": "1", "key": "A-1"}, "changelog": {"items": {}}}),
            "/changelog/items",
        ),
    ] {
        let b = serde_json::to_vec(&body).expect("json");
        match c.parse_webhook("conn", &h, &b, now) {
            Err(WebhookError::Shape { path: p, .. }) => assert_eq!(p, path, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Error classification
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn errors_are_classified_and_never_show_credentials() {
    let sb = sandbox().await;
    let cfg = config(&sb.url(), JiraApi::Cloud, None);
    let c = connector_with(&cfg, mapping());
    c.prepare().await.expect("prepare");
    let created = c
        .create(&fields(&[("summary", text("x"))]), None)
        .await
        .expect("create");

    sb.faults().set_error_rate(1.0);
    let err = c.fetch(&created.id).await.unwrap_err();
    match &err {
        ConnectorError::Transient { status, .. } => assert_eq!(*status, Some(500)),
        other => panic!("{other:?}"),
    }
    sb.faults().clear();

    sb.faults().set_rate_limit_rate(1.0);
    match c.fetch(&created.id).await.unwrap_err() {
        ConnectorError::Transient {
            status,
            retry_after,
            ..
        } => {
            assert_eq!(status, Some(429));
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
        }
        other => panic!("{other:?}"),
    }
    sb.faults().clear();

    // 400: Jira's ErrorCollection is quoted.
    let err = c
        .create(
            &fields(&[
                ("summary", text("x")),
                ("severity", FieldValue::Option("Nope".into())),
            ]),
            None,
        )
        .await
        .unwrap_err();
    match &err {
        ConnectorError::Permanent { status, message } => {
            assert_eq!(*status, Some(400));
            assert!(message.contains("customfield_10051"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // 404 for a missing issue.
    match c.fetch("999999").await.unwrap_err() {
        ConnectorError::Permanent { status, .. } => assert_eq!(status, Some(404)),
        other => panic!("{other:?}"),
    }
    // A hostile id never reaches the URL.
    assert!(!c.fetch("../myself").await.unwrap_err().is_transient());

    // 401 with bad credentials, and no credential in the message or Debug output.
    let mut bad_cfg = cfg.clone();
    bad_cfg.api_token = Some(Secret::new("wrong-token-value"));
    let bad = connector_with(&bad_cfg, mapping());
    let err = bad.prepare().await.unwrap_err();
    assert!(
        matches!(
            err,
            ConnectorError::Permanent {
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );
    let shown = format!("{err} {err:?} {bad:?}");
    assert!(!shown.contains("wrong-token-value"), "{shown}");
    assert!(!shown.contains("sandbox-api-token"), "{shown}");

    // Nothing listening: transient.
    sb.shutdown().await;
    let err = c.fetch(&created.id).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Request contract: every request validates against Atlassian's OpenAPI spec
// ---------------------------------------------------------------------------------------------

/// The spec path template matching a concrete path (`/rest/api/3/issue/10001` →
/// `/rest/api/3/issue/{issueIdOrKey}`), preferring literal segments.
fn template_for(method: &str, path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split('/').collect();
    let paths = spec()["paths"].as_object()?;
    let mut best: Option<(usize, String)> = None;
    for (tpl, item) in paths {
        if item.get(method).is_none() {
            continue;
        }
        let t: Vec<&str> = tpl.split('/').collect();
        if t.len() != segs.len() {
            continue;
        }
        let mut literal = 0;
        let ok = t.iter().zip(&segs).all(|(a, b)| {
            if a.starts_with('{') && a.ends_with('}') {
                !b.is_empty()
            } else {
                literal += 1;
                a == b
            }
        });
        if ok && best.as_ref().is_none_or(|(n, _)| literal > *n) {
            best = Some((literal, tpl.clone()));
        }
    }
    best.map(|(_, t)| t)
}

/// Checks one recorded request against the spec: path+method exist, body matches.
fn check_request(method: &str, path: &str, body: &Value) -> Result<(), String> {
    let m = method.to_ascii_lowercase();
    let tpl =
        template_for(&m, path).ok_or_else(|| format!("{method} {path} is not in the spec"))?;
    let op = &spec()["paths"][&tpl][&m];
    let schema = &op["requestBody"]["content"]["application/json"]["schema"];
    if body.is_null() {
        if op["requestBody"]["required"] == json!(true) {
            return Err(format!("{method} {tpl} requires a body"));
        }
        return Ok(());
    }
    if !schema.is_object() {
        return Err(format!("{method} {tpl} takes no JSON body, got {body}"));
    }
    let errors = violations(schema, body);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{method} {tpl}: {}", errors.join("; ")))
    }
}

#[tokio::test]
async fn every_request_the_cloud_client_sends_validates_against_the_openapi_spec() {
    let sb = sandbox().await;
    let c = connector_with(&config(&sb.url(), JiraApi::Cloud, None), mapping());
    // A whole session: every kind of call the connector makes.
    c.prepare().await.expect("prepare");
    let _ = c.check().await;
    let created = c
        .create(&sample_fields(), Some("EXT-1"))
        .await
        .expect("create");
    c.fetch(&created.id).await.expect("fetch");
    c.update(
        &created.id,
        &fields(&[
            ("summary", text("new")),
            ("dueDate", FieldValue::Empty),
            ("status", FieldValue::Option("Done".into())),
        ]),
    )
    .await
    .expect("update");
    c.set_link(&created.id, "EXT-2").await.expect("link");
    c.find_by_link(r#"EXT-2" OR "x"#).await.expect("find");
    c.find_by_link("EXT-2").await.expect("find");
    c.changed_since(Utc::now() - ChronoDuration::hours(1), None)
        .await
        .expect("poll");
    c.comment(&created.id, "hello\n\nworld")
        .await
        .expect("comment");
    // The user map's automatic matching: by e-mail (a prefix search, checked exactly) and by
    // account id.
    use tandem::connector::UserQuery;
    let alice = c
        .find_user(UserQuery::Email("Alice@example.com"))
        .await
        .expect("user search")
        .expect("alice");
    assert_eq!(alice.id, "5b10ac8d82e05b22cc7d4ef5");
    let by_id = c
        .find_user(UserQuery::Id(&alice.id))
        .await
        .expect("user search")
        .expect("alice by id");
    assert_eq!(by_id.email.as_deref(), Some("alice@example.com"));
    assert!(
        c.find_user(UserQuery::Email("alic@example.com"))
            .await
            .expect("user search")
            .is_none(),
        "a prefix is not a match"
    );

    let log = sb.request_log();
    assert!(log.len() >= 10, "{} requests", log.len());
    // The user search's query parameters are the operation's own.
    let declared: Vec<&str> = spec()["paths"]["/rest/api/3/user/search"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    let searches: Vec<&RecordedRequest> = log
        .iter()
        .filter(|r| r.path == "/rest/api/3/user/search")
        .collect();
    assert_eq!(searches.len(), 3);
    for r in searches {
        let query = r.query.as_deref().unwrap_or_default();
        for pair in query.split('&') {
            let name = pair.split('=').next().unwrap_or_default();
            assert!(
                declared.contains(&name),
                "`{name}` is not a parameter of user/search"
            );
        }
    }
    let mut seen_bodies = 0;
    for r in &log {
        assert!(
            r.path.starts_with("/rest/api/3/"),
            "cloud must use v3: {}",
            r.path
        );
        if !r.body.is_null() {
            seen_bodies += 1;
        }
        if let Err(e) = check_request(&r.method, &r.path, &r.body) {
            panic!("request does not match the spec: {e}");
        }
        assert!(
            r.status < 400,
            "{} {} answered {}",
            r.method,
            r.path,
            r.status
        );
    }
    assert!(seen_bodies >= 6, "bodies checked: {seen_bodies}");

    // The check has teeth: wrong bodies and unknown endpoints are rejected.
    for (method, path, body) in [
        (
            "POST",
            "/rest/api/3/search/jql",
            json!({"jql": "project = TEST", "startAt": 0}),
        ),
        ("POST", "/rest/api/3/search/jql", json!({"jql": 7})),
        ("POST", "/rest/api/3/issue", json!({"fields": "summary=x"})),
        (
            "PUT",
            "/rest/api/3/issue/10000",
            json!({"update": {"labels": "x"}}),
        ),
        (
            "POST",
            "/rest/api/3/issue/10000/transitions",
            json!({"transition": "5"}),
        ),
        ("POST", "/rest/api/3/issues/10000", json!({})),
    ] {
        assert!(
            check_request(method, path, &body).is_err(),
            "{method} {path} {body} should be rejected"
        );
    }
    sb.shutdown().await;
}
