//! The REST connector: the seed format against the external-system sandbox over HTTP, and the
//! custom format against a small helpdesk-like API served by the test (typed JSON, a
//! JSONPath-addressed custom field, ids and lists at configured pointers).

mod common;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use chrono::{Duration as ChronoDuration, Utc};
use common::{date, fields, fm, receiver, serve, text, wait_for};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem::config::RestConfig;
use tandem::connector::rest::RestConnector;
use tandem::connector::{Connector, ConnectorContext, ConnectorError, WebhookError};
use tandem_core::mapping::{FieldType, Mapping};
use tandem_core::{ChangeKind, FieldValue, Side};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig};

fn rest_config(toml_text: &str) -> RestConfig {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("config: {e}\n{toml_text}"))
}

fn connector(cfg: &RestConfig, mapping: Mapping) -> RestConnector {
    RestConnector::new(
        cfg,
        ConnectorContext::new(Side::External, mapping, reqwest::Client::new()),
    )
    .expect("connector")
}

// ---------------------------------------------------------------------------------------------
// Seed format against the external sandbox
// ---------------------------------------------------------------------------------------------

fn seed_mapping() -> Mapping {
    Mapping {
        fields: vec![
            fm("summary", "1001", FieldType::Text),
            fm("duedate", "1002", FieldType::Date),
            fm("customfield_10052", "1003", FieldType::Number),
            fm("labels", "1004", FieldType::Labels),
        ],
    }
}

fn seed_config(base: &str, token: Option<&str>) -> RestConfig {
    let d = ExternalSandboxConfig::default();
    let token = token
        .map(|t| format!("webhook_token = \"{t}\"\n"))
        .unwrap_or_default();
    rest_config(&format!(
        "base_url = \"{base}\"\n{token}auth = {{ type = \"basic\", username = \"{}\", password = \"{}\" }}\n",
        d.username, d.password
    ))
}

#[tokio::test]
async fn seed_create_update_fetch_and_list_round_trip() {
    let sb = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .expect("sandbox");
    let c = connector(&seed_config(&sb.url(), None), seed_mapping());
    c.prepare().await.expect("prepare");
    let since = Utc::now() - ChronoDuration::seconds(5);

    let values = fields(&[
        ("1001", text("Printer on fire")),
        ("1002", date(2025, 1, 31)),
        ("1003", FieldValue::Number(5.0)),
        (
            "1004",
            FieldValue::Labels(vec!["ops".into(), "urgent".into()]),
        ),
    ]);
    let created = c.create(&values, Some("TEST-1")).await.expect("create");
    assert_eq!(created.id, "EXT-1");

    // The seed's `_externalData`: Jira names, numeric ids, string values, the Jira key.
    let log = sb.request_log();
    let post = log
        .iter()
        .find(|r| r.method == "POST" && r.path == "/API/issue")
        .expect("create call");
    assert_eq!(post.body["sourceIssueId"], json!("TEST-1"));
    assert!(
        post.body["fields"]
            .as_array()
            .expect("fields")
            .contains(&json!({"fieldName": "duedate", "fieldId": 1002, "value": "2025-01-31"})),
        "{}",
        post.body
    );

    let item = c.fetch("EXT-1").await.expect("fetch");
    assert_eq!(item.fields, values);
    assert_eq!(item.link.as_deref(), Some("TEST-1"));
    assert!(item.updated.is_some());

    let changes = fields(&[("1001", text("Printer fixed")), ("1003", FieldValue::Empty)]);
    c.update("EXT-1", &changes).await.expect("update");
    // The update repeats the Jira key the item records rather than overwriting it.
    let update = sb
        .request_log()
        .into_iter()
        .rfind(|r| r.method == "POST" && r.path == "/API/issue/EXT-1")
        .expect("update call");
    assert_eq!(update.body["sourceIssueId"], json!("TEST-1"));
    let item = c.fetch("EXT-1").await.expect("fetch");
    assert_eq!(item.link.as_deref(), Some("TEST-1"));
    assert_eq!(item.fields["1001"], text("Printer fixed"));
    assert_eq!(item.fields["1003"], FieldValue::Empty);
    assert_eq!(item.fields["1002"], date(2025, 1, 31));

    let page = c.changed_since(since, None).await.expect("list");
    assert_eq!(page.items.len(), 1);
    assert!(page.next.is_none());
    assert_eq!(page.items[0].fields["1001"], text("Printer fixed"));
    let later = c
        .changed_since(Utc::now() + ChronoDuration::minutes(1), None)
        .await
        .expect("list");
    assert!(later.items.is_empty());

    // No link field outside Jira: these are documented no-ops.
    c.set_link("EXT-1", "TEST-1").await.expect("no-op");
    assert_eq!(c.find_by_link("TEST-1").await.expect("none"), None);
    c.comment("EXT-1", "hi").await.expect("no-op");

    let report = c.check().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(!report.identity.contains("external-secret"));
    sb.shutdown().await;
}

#[tokio::test]
async fn seed_webhooks_from_the_sandbox_are_verified_and_parsed() {
    let sb = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .expect("sandbox");
    let (url, got) = receiver(StatusCode::ACCEPTED).await;
    sb.set_webhook(&url, Some("wh-token"));
    let c = connector(&seed_config(&sb.url(), Some("wh-token")), seed_mapping());
    let now = Utc::now();

    let id = sb.user_create(vec![(1001, "Hello".into()), (9999, "unmapped".into())]);
    sb.user_edit(&id, vec![(1002, "2025-05-01".into())]);
    let d = wait_for(&got, 2).await;

    let events = c
        .parse_webhook("conn", &d[0].0, &d[0].1, now)
        .expect("created");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.item_id, id);
    assert_eq!(e.source, Side::External);
    assert_eq!(e.fields, fields(&[("1001", text("Hello"))]));
    let delivery = d[0]
        .0
        .get("x-delivery-id")
        .and_then(|v| v.to_str().ok())
        .expect("id");
    assert_eq!(e.idempotency_key, format!("external:{delivery}"));

    let events = c
        .parse_webhook("conn", &d[1].0, &d[1].1, now)
        .expect("updated");
    assert_eq!(events[0].kind, ChangeKind::Updated);
    assert_eq!(events[0].fields, fields(&[("1002", date(2025, 5, 1))]));

    // Credentials.
    let mut missing = d[0].0.clone();
    missing.remove("authorization");
    assert_eq!(
        c.parse_webhook("conn", &missing, &d[0].1, now),
        Err(WebhookError::Unauthorized(
            "missing Authorization: Bearer token".into()
        ))
    );
    let mut wrong = d[0].0.clone();
    wrong.insert("authorization", HeaderValue::from_static("Bearer wh-tokeN"));
    assert_eq!(
        c.parse_webhook("conn", &wrong, &d[0].1, now),
        Err(WebhookError::Unauthorized("bad bearer token".into()))
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn seed_webhook_shapes_keys_and_id_only_deliveries() {
    let c = connector(&seed_config("http://127.0.0.1:9", None), seed_mapping());
    let h = HeaderMap::new();
    let now = Utc::now();
    let parse =
        |body: Value| c.parse_webhook("conn", &h, &serde_json::to_vec(&body).expect("json"), now);

    // Numbers for ids, null values, unmapped fields dropped, body digest as key.
    let ev = parse(json!({"sourceIssueId": 77, "fields": [
        {"fieldName": "summary", "fieldId": 1001, "value": "S"},
        {"fieldId": "1003", "value": 2.5},
        {"fieldId": 1002, "value": null},
        {"fieldId": 4242, "value": "ignored"}
    ]}))
    .expect("ok");
    assert_eq!(ev[0].item_id, "77");
    assert_eq!(
        ev[0].fields,
        fields(&[
            ("1001", text("S")),
            ("1002", FieldValue::Empty),
            ("1003", FieldValue::Number(2.5))
        ])
    );
    assert!(ev[0].idempotency_key.starts_with("external:"));
    assert_eq!(ev[0].idempotency_key.len(), "external:".len() + 64);
    // Idempotency-Key is honoured too.
    let mut with_key = HeaderMap::new();
    with_key.insert("idempotency-key", HeaderValue::from_static("k-1"));
    let b = serde_json::to_vec(
        &json!({"sourceIssueId": "E", "fields": [{"fieldId": 1001, "value": "x"}]}),
    )
    .expect("json");
    assert_eq!(
        c.parse_webhook("conn", &with_key, &b, now).expect("ok")[0].idempotency_key,
        "external:k-1"
    );
    // Only unmapped fields: nothing to do.
    assert!(
        parse(json!({"sourceIssueId": "E", "fields": [{"fieldId": 5, "value": "x"}]}))
            .expect("ok")
            .is_empty()
    );

    assert!(matches!(
        c.parse_webhook("conn", &h, b"nope", now),
        Err(WebhookError::Malformed(_))
    ));
    for (body, path) in [
        (json!("str"), ""),
        (json!({"fields": []}), "/sourceIssueId"),
        (
            json!({"sourceIssueId": ["x"], "fields": []}),
            "/sourceIssueId",
        ),
        (json!({"sourceIssueId": "E", "fields": {}}), "/fields"),
        (
            json!({"sourceIssueId": "E", "fields": [{"fieldId": 1, "value": "a"}, 3]}),
            "/fields/1",
        ),
        (
            json!({"sourceIssueId": "E", "fields": [{"fieldId": 1, "value": "a"}, {"fieldId": 2}, {"fieldId": {}, "value": "c"}]}),
            "/fields/2/fieldId",
        ),
        (
            json!({"sourceIssueId": "E", "fields": [{"fieldId": 1001, "value": [1]}]}),
            "/fields/0/value",
        ),
        // A value the mapping's type cannot hold names its path too.
        (
            json!({"sourceIssueId": "E", "fields": [{"fieldId": 1002, "value": "soon"}]}),
            "/fields/0/value",
        ),
    ] {
        match parse(body.clone()) {
            Err(WebhookError::Shape { path: p, .. }) => assert_eq!(p, path, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }

    // id_only: the id at the configured pointer, values fetched later.
    let cfg = rest_config(
        "base_url = \"http://127.0.0.1:9\"\nwebhook_payload = \"id_only\"\n\
         [webhook]\nid_pointer = \"/data/id\"\nevent_pointer = \"/event\"\n",
    );
    let c = connector(&cfg, seed_mapping());
    let b = serde_json::to_vec(&json!({"event": "created", "data": {"id": 12}})).expect("json");
    let ev = c.parse_webhook("conn", &h, &b, now).expect("ok");
    assert_eq!(ev[0].item_id, "12");
    assert!(ev[0].needs_fetch && ev[0].fields.is_empty());
    assert_eq!(ev[0].kind, ChangeKind::Created);
    let b = serde_json::to_vec(&json!({"event": "updated", "data": {}})).expect("json");
    match c.parse_webhook("conn", &h, &b, now) {
        Err(WebhookError::Shape { path, .. }) => assert_eq!(path, "/data/id"),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Custom format: a helpdesk-like API
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Desk {
    tickets: BTreeMap<u64, Value>,
    requests: Vec<(String, String, Value)>,
}

type DeskState = Arc<Mutex<Desk>>;

/// Custom fields come in as `{"custom_fields": {"2": v}}` (a JSON Pointer cannot address an
/// array element by its `id`) and are stored the way desks list them: `[{id, value}]`.
fn store_ticket(t: &mut Value, patch: &Value) {
    if let (Some(obj), Some(p)) = (t.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if k == "custom_fields" {
                let mut list: Vec<Value> = obj
                    .get("custom_fields")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for (id, val) in v.as_object().into_iter().flatten() {
                    let id: u64 = id.parse().unwrap_or(0);
                    list.retain(|e| e["id"] != json!(id));
                    list.push(json!({"id": id, "value": val}));
                }
                obj.insert("custom_fields".into(), json!(list));
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
        obj.insert("updated_at".into(), json!(Utc::now().to_rfc3339()));
    }
}

async fn desk() -> (String, DeskState) {
    let state: DeskState = Arc::default();
    let app = axum::Router::new()
        .route(
            "/api/v2/tickets",
            axum::routing::post(
                |State(s): State<DeskState>, axum::Json(body): axum::Json<Value>| async move {
                    let mut d = s.lock().expect("lock");
                    d.requests
                        .push(("POST".into(), "/api/v2/tickets".into(), body.clone()));
                    if body["ticket"]["subject"].is_null() {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"error": "subject is required"})),
                        )
                            .into_response();
                    }
                    let id = 40 + d.tickets.len() as u64 + 1;
                    let mut t = json!({"id": id});
                    store_ticket(&mut t, &body["ticket"]);
                    d.tickets.insert(id, t.clone());
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
                    axum::Json(json!({"tickets": list, "count": list.len()}))
                },
            ),
        )
        .route(
            "/api/v2/tickets/{id}",
            axum::routing::put(
                |State(s): State<DeskState>,
                 Path(id): Path<u64>,
                 axum::Json(body): axum::Json<Value>| async move {
                    let mut d = s.lock().expect("lock");
                    d.requests
                        .push(("PUT".into(), format!("/api/v2/tickets/{id}"), body.clone()));
                    if id == 500 {
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [("retry-after", "7")],
                            "down",
                        )
                            .into_response();
                    }
                    match d.tickets.get_mut(&id) {
                        Some(t) => {
                            store_ticket(t, &body["ticket"]);
                            axum::Json(json!({"ticket": t})).into_response()
                        }
                        None => (
                            StatusCode::NOT_FOUND,
                            axum::Json(json!({"error": "no such ticket"})),
                        )
                            .into_response(),
                    }
                },
            )
            .get(
                |State(s): State<DeskState>, Path(id): Path<u64>, headers: HeaderMap| async move {
                    let presented = headers.get("x-api-key").and_then(|v| v.to_str().ok());
                    if presented != Some("desk-key") {
                        // Echoes the credential, as careless servers do.
                        let echo = format!("bad key {}", presented.unwrap_or(""));
                        return (StatusCode::UNAUTHORIZED, echo).into_response();
                    }
                    let d = s.lock().expect("lock");
                    match d.tickets.get(&id) {
                        Some(t) => axum::Json(json!({"ticket": t})).into_response(),
                        None => (
                            StatusCode::NOT_FOUND,
                            axum::Json(json!({"error": "no such ticket"})),
                        )
                            .into_response(),
                    }
                },
            ),
        )
        .with_state(state.clone());
    (serve(app).await, state)
}

const DESK_CONFIG: &str = r#"
base_url = "BASE"
format = "custom"
auth = { type = "header", name = "X-API-Key", value = "desk-key" }

[operations.create]
method = "POST"
path = "/api/v2/tickets"
body = '{"ticket": {{fields}}}'
id_pointer = "/ticket/id"

[operations.update]
method = "PUT"
path = "/api/v2/tickets/{id}"
body = '{"ticket": {{fields}}}'

[operations.fetch]
method = "GET"
path = "/api/v2/tickets/{id}"
item_pointer = "/ticket"

[operations.list_changed]
method = "GET"
path = "/api/v2/tickets?updated_since={since}"
items_pointer = "/tickets"
id_pointer = "/id"
updated_pointer = "/updated_at"

[webhook]
id_pointer = "/id"
event_pointer = "/event"

[[fields]]
id = "subject"
read = "/subject"

[[fields]]
id = "priority"
read = "/priority"

[[fields]]
id = "tags"
read = "/tags"

[[fields]]
id = "due"
read = "$.custom_fields[?(@.id==2)].value"
write = "/custom_fields/2"
"#;

fn desk_mapping() -> Mapping {
    Mapping {
        fields: vec![
            fm("summary", "subject", FieldType::Text),
            fm("customfield_10052", "priority", FieldType::Number),
            fm("labels", "tags", FieldType::Labels),
            fm("duedate", "due", FieldType::Date),
        ],
    }
}

#[tokio::test]
async fn custom_api_with_pointers_and_jsonpath_round_trips() {
    let (base, state) = desk().await;
    let cfg = rest_config(&DESK_CONFIG.replace("BASE", &base));
    let c = connector(&cfg, desk_mapping());
    let since = Utc::now() - ChronoDuration::seconds(5);

    let values = fields(&[
        ("subject", text("VPN down")),
        ("priority", FieldValue::Number(3.0)),
        ("tags", FieldValue::Labels(vec!["net".into(), "vpn".into()])),
        ("due", date(2025, 6, 30)),
    ]);
    let created = c.create(&values, Some("10001")).await.expect("create");
    assert_eq!(created.id, "41");
    // Typed JSON placed at each write pointer inside the body template.
    let sent = state.lock().expect("lock").requests[0].2.clone();
    assert_eq!(
        sent,
        json!({"ticket": {
            "subject": "VPN down", "priority": 3, "tags": ["net", "vpn"],
            "custom_fields": {"2": "2025-06-30"}
        }})
    );

    let item = c.fetch("41").await.expect("fetch");
    assert_eq!(item.id, "41");
    assert_eq!(item.fields, values);

    c.update(
        "41",
        &fields(&[("due", date(2025, 7, 1)), ("tags", FieldValue::Empty)]),
    )
    .await
    .expect("update");
    let item = c.fetch("41").await.expect("fetch");
    assert_eq!(item.fields["due"], date(2025, 7, 1));
    assert_eq!(item.fields["tags"], FieldValue::Empty);
    assert_eq!(item.fields["subject"], text("VPN down"));

    let page = c.changed_since(since, None).await.expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, "41");
    assert!(page.items[0].updated.is_some());
    assert_eq!(page.items[0].fields["due"], date(2025, 7, 1));

    // A full custom delivery is the item itself, read with the same places.
    let body = serde_json::to_vec(&json!({
        "id": 41, "event": "updated", "subject": "New subject",
        "custom_fields": [{"id": 1, "value": "x"}, {"id": 2, "value": "2025-08-01"}]
    }))
    .expect("json");
    let ev = c
        .parse_webhook("conn", &HeaderMap::new(), &body, Utc::now())
        .expect("event");
    assert_eq!(ev[0].item_id, "41");
    assert_eq!(ev[0].fields["subject"], text("New subject"));
    assert_eq!(ev[0].fields["due"], date(2025, 8, 1));
    assert!(!ev[0].fields.contains_key("tags"));

    // `check` tries every pointer on the listed and fetched ticket.
    let report = c.check().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let typo = DESK_CONFIG
        .replace("BASE", &base)
        .replace("read = \"/priority\"", "read = \"/priorty\"");
    let report = connector(&rest_config(&typo), desk_mapping()).check().await;
    assert_eq!(
        report.problems,
        vec![
            "fields[1].read: field `priority`: `/priorty` finds nothing in the 2 items read (set \
             the field on an item and check again if it is only empty)"
                .to_string()
        ]
    );
}

#[tokio::test]
async fn errors_are_classified_with_the_systems_message_and_no_secret() {
    let (base, _state) = desk().await;
    let cfg = rest_config(&DESK_CONFIG.replace("BASE", &base));
    let c = connector(&cfg, desk_mapping());

    // 400 with the desk's own error message quoted.
    match c
        .create(&fields(&[("priority", FieldValue::Number(1.0))]), None)
        .await
    {
        Err(ConnectorError::Permanent { status, message }) => {
            assert_eq!(status, Some(400));
            assert!(message.contains("subject is required"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // 503 with Retry-After: transient, delay honoured.
    match c.update("500", &fields(&[("subject", text("x"))])).await {
        Err(ConnectorError::Transient {
            status,
            retry_after,
            ..
        }) => {
            assert_eq!(status, Some(503));
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("{other:?}"),
    }
    // 404 is permanent.
    match c.fetch("999").await {
        Err(ConnectorError::Permanent { status, .. }) => assert_eq!(status, Some(404)),
        other => panic!("{other:?}"),
    }
    // A server that echoes the credential back does not get it into our message.
    let wrong = rest_config(
        &DESK_CONFIG
            .replace("BASE", &base)
            .replace("desk-key", "desk-key-x"),
    );
    let w = connector(&wrong, desk_mapping());
    let err = w.fetch("41").await.unwrap_err();
    assert!(matches!(
        err,
        ConnectorError::Permanent {
            status: Some(401),
            ..
        }
    ));
    let shown = format!("{err} {err:?} {w:?}");
    assert!(!shown.contains("desk-key-x"), "{shown}");
    // Ids cannot add path segments.
    assert!(c.fetch("..").await.is_err());

    // The seed sandbox under faults: 500 and 429 (Retry-After: 1) are transient.
    let sb = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .expect("sandbox");
    let s = connector(&seed_config(&sb.url(), None), seed_mapping());
    sb.faults().set_error_rate(1.0);
    assert!(matches!(
        s.fetch("EXT-1").await,
        Err(ConnectorError::Transient {
            status: Some(500),
            ..
        })
    ));
    sb.faults().clear();
    sb.faults().set_rate_limit_rate(1.0);
    match s.fetch("EXT-1").await {
        Err(ConnectorError::Transient {
            status,
            retry_after,
            ..
        }) => {
            assert_eq!(status, Some(429));
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
        }
        other => panic!("{other:?}"),
    }
    sb.faults().clear();
    // Faults off: the same connector works again.
    match s.create(&fields(&[("1001", text("x"))]), None).await {
        Ok(item) => assert_eq!(item.id, "EXT-1"),
        other => panic!("{other:?}"),
    }
    sb.shutdown().await;
    // Nothing listening any more: transient.
    assert!(s.fetch("EXT-1").await.unwrap_err().is_transient());
}

// ---------------------------------------------------------------------------------------------
// Custom format against the sandbox's Redmine-style API: the form of `{since}`
// ---------------------------------------------------------------------------------------------

/// The `[connection.external]` table of [`common::REDMINE`] as a bare `RestConfig`, with
/// `since_format` / `since_overlap` replaced by `since` (TOML lines, possibly empty).
fn redmine_config(base: &str, since: &str) -> RestConfig {
    let table = common::REDMINE
        .replace("[connection.external.", "[")
        .replace("[[connection.external.", "[[")
        .replace("[connection.external]\ntype = \"rest\"\n", "")
        .replace("EXT_URL", base)
        .replace(
            "since_format = \"rfc3339\"\nsince_overlap = \"5s\"\n",
            since,
        );
    rest_config(&table)
}

fn redmine_mapping() -> Mapping {
    Mapping {
        fields: vec![
            fm("summary", "1001", FieldType::Text),
            fm("duedate", "1003", FieldType::Date),
        ],
    }
}

/// The `updated_on` filter of each listing the sandbox received from its `start`-th request
/// on, decoded, with the status it answered.
fn listed_since(sb: &ExternalSandbox, start: usize) -> Vec<(String, u16)> {
    sb.requests_since(start)
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/issues.json")
        .map(|r| {
            let query = r.query.unwrap_or_default();
            let url = reqwest::Url::parse(&format!("http://sandbox/?{query}")).expect("query");
            let value = url
                .query_pairs()
                .find(|(k, _)| k == "updated_on")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            (value, r.status)
        })
        .collect()
}

#[tokio::test]
async fn since_is_written_in_the_form_a_strict_tracker_accepts() {
    let sb = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .expect("sandbox");
    let id = sb.user_create(vec![(1001, "Printer on fire".into())]);
    let number = id.trim_start_matches("EXT-").to_string();
    let since = Utc::now() - ChronoDuration::seconds(10);

    // Milliseconds, the default form, are refused the way Redmine refuses them.
    let millis = connector(&redmine_config(&sb.url(), ""), redmine_mapping());
    match millis.changed_since(since, None).await {
        Err(ConnectorError::Permanent { status, message }) => {
            assert_eq!(status, Some(422));
            assert!(message.contains("Updated is invalid"), "{message}");
        }
        other => panic!("expected the tracker's 422, got {other:?}"),
    }

    // Whole seconds are listed, rounded down: an item of the same second is not missed.
    let secs = connector(
        &redmine_config(&sb.url(), "since_format = \"rfc3339\"\n"),
        redmine_mapping(),
    );
    let page = secs.changed_since(since, None).await.expect("listing");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, number);
    assert_eq!(page.items[0].fields["1001"], text("Printer on fire"));
    let updated = page.items[0].updated.expect("updated_on");
    let same_second = secs.changed_since(updated + ChronoDuration::milliseconds(999), None);
    assert_eq!(same_second.await.expect("listing").items.len(), 1);
    let (value, status) = listed_since(&sb, 0).pop().expect("a listing");
    assert_eq!(status, 200);
    assert_eq!(
        value,
        format!(
            ">={}",
            updated.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    );

    // An overlap moves `{since}` back: a listing from "now" still sees the recent item.
    let now = Utc::now() + ChronoDuration::seconds(2);
    assert!(
        secs.changed_since(now, None)
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let overlap = connector(
        &redmine_config(
            &sb.url(),
            "since_format = \"rfc3339\"\nsince_overlap = \"30s\"\n",
        ),
        redmine_mapping(),
    );
    assert_eq!(
        overlap
            .changed_since(now, None)
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    let (value, _) = listed_since(&sb, 0).pop().expect("a listing");
    let expected =
        (now - ChronoDuration::seconds(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(value, format!(">={expected}"));

    // A strftime pattern with an offset: the `+` reaches the tracker as `+`, not as a space
    // (which a raw `+` in a query string means), so the listing is accepted.
    let pattern = connector(
        &redmine_config(&sb.url(), "since_format = \"%Y-%m-%dT%H:%M:%S+00:00\"\n"),
        redmine_mapping(),
    );
    assert_eq!(
        pattern
            .changed_since(since, None)
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    let (value, status) = listed_since(&sb, 0).pop().expect("a listing");
    assert_eq!(status, 200);
    assert_eq!(
        value,
        format!(">={}", since.format("%Y-%m-%dT%H:%M:%S+00:00"))
    );
    let raw = sb
        .request_log()
        .pop()
        .and_then(|r| r.query)
        .unwrap_or_default();
    assert!(raw.contains("%2B00%3A00"), "{raw}");

    // Unix seconds and milliseconds, for systems that filter on numbers.
    for (form, expected) in [
        ("unix", since.timestamp().to_string()),
        ("unix_millis", since.timestamp_millis().to_string()),
    ] {
        let c = connector(
            &redmine_config(&sb.url(), &format!("since_format = \"{form}\"\n")),
            redmine_mapping(),
        );
        // The sandbox, like Redmine, refuses numbers; what matters is what was sent.
        let _ = c.changed_since(since, None).await;
        let (value, _) = listed_since(&sb, 0).pop().expect("a listing");
        assert_eq!(value, format!(">={expected}"), "{form}");
    }
    sb.shutdown().await;
}

/// The `{since}` of each listing from the `start`-th request on, each one accepted and in
/// whole seconds.
fn listings_since(sb: &ExternalSandbox, start: usize) -> Vec<chrono::DateTime<Utc>> {
    listed_since(sb, start)
        .into_iter()
        .map(|(value, status)| {
            assert_eq!(status, 200, "a listing was refused: {value}");
            let time = value.strip_prefix(">=").expect("a >= filter");
            assert!(!time.contains('.'), "fractional seconds sent: {time}");
            chrono::DateTime::parse_from_rfc3339(time)
                .expect("RFC 3339")
                .with_timezone(&Utc)
        })
        .collect()
}

/// Tandem's writes to the Redmine-style API (creates and updates).
fn redmine_writes(sb: &ExternalSandbox) -> usize {
    sb.request_log()
        .iter()
        .filter(|r| {
            (r.method == "POST" && r.path == "/issues.json")
                || (r.method == "PUT" && r.path.starts_with("/issues/"))
        })
        .count()
}

/// Waits until the item's current state was listed `n` times from the `start`-th request on.
async fn relisted(w: &common::World, id: &str, start: usize, n: usize) {
    let updated = w
        .external
        .item(id)
        .and_then(|i| i["updated"].as_str().map(str::to_string))
        .expect("item");
    let updated = chrono::DateTime::parse_from_rfc3339(&updated)
        .expect("time")
        .with_timezone(&Utc);
    let updated = chrono::SubsecRound::trunc_subsecs(updated, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while listings_since(&w.external, start)
        .iter()
        .filter(|since| **since <= updated)
        .count()
        < n
    {
        assert!(
            std::time::Instant::now() < deadline,
            "item {id} not re-listed {n} times"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_a_strict_tracker_with_an_overlap_relists_without_writing_twice() {
    let w = common::world(common::Options {
        external: Some(common::REDMINE.into()),
        poll_interval: Some("1s"),
        ..common::Options::default()
    })
    .await;
    let ext_id = w.external.user_create(vec![
        (1001, "Refund request".into()),
        (1003, "2026-03-01".into()),
    ]);
    let number = ext_id.trim_start_matches("EXT-").to_string();
    let link_field = w.jira.external_id_field().to_string();
    let issue = common::eventually("Jira twin of the polled item", || {
        w.jira
            .issues()
            .into_iter()
            .find(|i| i["fields"][&link_field] == json!(number))
    })
    .await;
    let key = issue["key"].as_str().expect("key").to_string();
    assert_eq!(issue["fields"]["summary"], json!("Refund request"));
    common::quiesce(&w).await;
    let jira_writes = w.jira_writes().len();
    assert_eq!(redmine_writes(&w.external), 0);

    // Re-listed by every poll while the overlap covers it: no second twin, no write.
    relisted(&w, &ext_id, 0, 3).await;
    common::quiesce(&w).await;
    assert_eq!(
        w.jira_writes().len(),
        jira_writes,
        "re-listing wrote to Jira"
    );
    assert_eq!(
        redmine_writes(&w.external),
        0,
        "re-listing wrote to Redmine"
    );

    // An edit in the tracker crosses once, however often the overlap lists it.
    let start = w.external.request_count();
    assert!(
        w.external
            .user_edit(&ext_id, vec![(1001, "Refund sent".into())])
    );
    common::eventually("tracker edit in Jira", || {
        w.jira
            .issue(&key)
            .filter(|i| i["fields"]["summary"] == json!("Refund sent"))
    })
    .await;
    relisted(&w, &ext_id, start, 3).await;
    common::quiesce(&w).await;
    assert_eq!(w.jira_writes().len(), jira_writes + 1);
    assert_eq!(redmine_writes(&w.external), 0);

    // An edit in Jira is written to the tracker once; its echo, listed again and again by
    // the overlap, costs nothing.
    w.jira
        .user_edit_issue(&key, json!({"duedate": "2026-04-01"}));
    common::eventually("Jira edit in the tracker", || {
        w.external
            .item(&ext_id)
            .filter(|i| common::ext_field(i, 1003).as_deref() == Some("2026-04-01"))
    })
    .await;
    let start = w.external.request_count();
    relisted(&w, &ext_id, start, 3).await;
    common::quiesce(&w).await;
    assert_eq!(redmine_writes(&w.external), 1);
    assert_eq!(
        w.jira_writes().len(),
        jira_writes + 1,
        "the echo wrote to Jira"
    );
    assert_eq!(w.jira.issues().len(), 1, "never a second twin");
    w.stop().await;
}
