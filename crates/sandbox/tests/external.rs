//! The external-system sandbox over real HTTP: the seed's `_externalData` API, listing for
//! pollers, auth and body errors, webhooks with a Bearer token and retries, and the same items
//! through the Redmine-style API (whole-second `updated_on`, Redmine's 422 for fractions).

mod common;

use std::time::Duration;

use common::{Receiver, fast_retry};
use serde_json::{Value, json};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig};

struct Client {
    base: String,
    http: reqwest::Client,
    user: String,
    pass: String,
}

impl Client {
    fn new(sb: &ExternalSandbox) -> Client {
        Client {
            base: sb.url(),
            http: reqwest::Client::new(),
            user: sb.config().username.clone(),
            pass: sb.config().password.clone(),
        }
    }
    async fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.pass))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_raw(path, &body.to_string()).await
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.pass))
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }
}

fn data(source: &str, fields: &[(u64, &str, &str)]) -> Value {
    json!({
        "sourceIssueId": source,
        "fields": fields.iter().map(|(id, name, value)| json!({"fieldName": name, "fieldId": id, "value": value})).collect::<Vec<_>>(),
    })
}

async fn sandbox(webhook: Option<&Receiver>) -> ExternalSandbox {
    let cfg = ExternalSandboxConfig {
        webhook_url: webhook.map(|r| r.url.clone()),
        webhook_token: Some("hook-token".into()),
        webhook_retry: fast_retry(),
        ..ExternalSandboxConfig::default()
    };
    ExternalSandbox::start(cfg).await.unwrap()
}

#[tokio::test]
async fn create_update_fetch_list() {
    let sb = sandbox(None).await;
    let c = Client::new(&sb);
    let (s, v) = c
        .post("/API/issue", data("TEST-1", &[(1001, "summary", "Hello")]))
        .await;
    assert_eq!((s, v), (201, json!({"id": "EXT-1"})));
    let (s, _) = c
        .post("/API/issue", data("TEST-2", &[(1001, "summary", "Two")]))
        .await;
    assert_eq!(s, 201);

    let (s, v) = c
        .post(
            "/API/issue/EXT-1",
            data("TEST-1", &[(1002, "due", "2025-01-31")]),
        )
        .await;
    assert_eq!((s, v), (200, json!({"id": "EXT-1"})));
    let (s, v) = c.get("/API/issue/EXT-1").await;
    assert_eq!(s, 200);
    assert_eq!(v["sourceIssueId"], "TEST-1");
    assert_eq!(v["fields"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["fields"][0],
        json!({"fieldId": 1001, "fieldName": "summary", "value": "Hello"})
    );
    let updated = v["updated"].as_str().unwrap().to_string();
    assert!(chrono::DateTime::parse_from_rfc3339(&updated).is_ok());

    // EXT-1 was edited after EXT-2 was created, so it comes last.
    let (s, v) = c.get("/API/issues").await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = v["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["EXT-2", "EXT-1"]);
    let (_, v) = c
        .get(&format!(
            "/API/issues?updatedSince={}",
            updated.replace('+', "%2B")
        ))
        .await;
    assert_eq!(v["issues"].as_array().unwrap().len(), 1);
    assert_eq!(sb.items().len(), 2);
    assert_eq!(sb.item("EXT-2").unwrap()["fields"][0]["value"], "Two");

    let (s, v) = c.post("/API/issue/EXT-99", data("X", &[])).await;
    assert_eq!(s, 404);
    assert!(v["error"].is_string());
    let (s, _) = c.get("/API/issue/nope").await;
    assert_eq!(s, 404);
    let writes = sb
        .request_log()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(writes, 4);
    sb.shutdown().await;
}

#[tokio::test]
async fn auth_and_body_errors() {
    let sb = sandbox(None).await;
    let c = Client::new(&sb);
    let resp = reqwest::Client::new()
        .get(format!("{}/API/issues", sb.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = reqwest::Client::new()
        .get(format!("{}/API/issues", sb.url()))
        .basic_auth("external", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    for (body, status) in [
        ("{nope", 400),
        ("[]", 400),
        (r#"{"sourceIssueId":"T-1"}"#, 400),
        (r#"{"fields":[1]}"#, 400),
        (r#"{"fields":[{"fieldId":"abc","value":"x"}]}"#, 422),
        (r#"{"fields":[{"fieldId":1.5,"value":"x"}]}"#, 422),
        (r#"{"fields":[{"fieldId":1,"value":{"a":1}}]}"#, 422),
    ] {
        let (s, v) = c.post_raw("/API/issue", body).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(v["error"].is_string(), "{body}: {v}");
    }
    let (s, _) = c.get("/API/issues?updatedSince=yesterday").await;
    assert_eq!(s, 400);
    assert!(sb.items().is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn webhooks_carry_changed_fields_and_bearer_token() {
    let rx = Receiver::start().await;
    let sb = sandbox(Some(&rx)).await;
    let c = Client::new(&sb);
    c.post(
        "/API/issue",
        data("TEST-1", &[(1001, "summary", "A"), (1002, "due", "")]),
    )
    .await;
    let id = sb.user_create(vec![(1001, "human".into())]);
    assert_eq!(id, "EXT-2");
    assert!(sb.user_edit("EXT-1", vec![(1001, "B".into()), (1002, "".into())]));
    assert!(!sb.user_edit("EXT-404", vec![]));
    // An edit that changes nothing sends nothing.
    c.post(
        "/API/issue/EXT-1",
        data("TEST-1", &[(1001, "summary", "B")]),
    )
    .await;
    let hits = rx.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.hits().len(), 3);
    for h in &hits {
        assert_eq!(h.headers["authorization"], "Bearer hook-token");
        assert_eq!(h.headers["content-type"], "application/json");
        assert!(h.headers.contains_key("x-delivery-id"));
    }
    let first = hits
        .iter()
        .find(|h| {
            h.json["sourceIssueId"] == "EXT-1" && h.json["fields"].as_array().unwrap().len() == 2
        })
        .unwrap();
    assert_eq!(
        first.json["fields"][0],
        json!({"fieldName": "summary", "fieldId": 1001, "value": "A"})
    );
    let edit = hits
        .iter()
        .filter(|h| h.json["sourceIssueId"] == "EXT-1")
        .nth(1)
        .unwrap();
    assert_eq!(
        edit.json["fields"],
        json!([{"fieldName": "summary", "fieldId": 1001, "value": "B"}])
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn webhook_retry_keeps_delivery_id() {
    let rx = Receiver::start().await;
    let sb = sandbox(None).await;
    sb.set_webhook(&rx.url, Some("late-token"));
    rx.fail_next(1);
    sb.user_create(vec![(7, "x".into())]);
    let hits = rx.wait_for(2).await;
    assert_eq!(hits[0].status, 503);
    assert_eq!(hits[1].status, 200);
    assert_eq!(
        hits[0].headers["x-delivery-id"],
        hits[1].headers["x-delivery-id"]
    );
    assert_eq!(hits[1].headers["authorization"], "Bearer late-token");
    sb.shutdown().await;
}

#[tokio::test]
async fn faults_apply_to_the_external_api() {
    let sb = sandbox(None).await;
    let c = Client::new(&sb);
    sb.faults().set_error_rate(1.0);
    assert_eq!(c.get("/API/issues").await.0, 500);
    sb.faults().clear();
    sb.faults().set_drop_rate(1.0);
    let r = reqwest::Client::new()
        .get(format!("{}/API/issues", sb.url()))
        .basic_auth("external", Some("external-secret"))
        .send()
        .await;
    assert!(r.is_err());
    sb.faults().clear();
    assert_eq!(c.get("/API/issues").await.0, 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn the_redmine_view_lists_by_whole_seconds_and_refuses_fractions_like_redmine() {
    let sb = sandbox(None).await;
    let c = Client::new(&sb);
    // Create the Redmine way: custom field values by id; 201 with the issue.
    let (status, created) = c
        .post(
            "/issues.json",
            json!({"issue": {"custom_field_values": {"1001": "Printer on fire"}}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["issue"]["id"].as_u64().expect("numeric id");
    let updated_on = created["issue"]["updated_on"].as_str().expect("updated_on");
    assert!(!updated_on.contains('.'), "whole seconds: {updated_on}");
    assert_eq!(
        created["issue"]["custom_fields"],
        json!([{"id": 1001, "name": "field1001", "value": "Printer on fire"}])
    );

    // `updated_on=>=` with whole seconds, a date, or an offset lists it.
    for filter in [
        format!("%3E%3D{}", updated_on.replace(':', "%3A")),
        format!("%3E%3D{}", &updated_on[..10]),
        format!("%3E%3D{}%2B00%3A00", &updated_on[..19].replace(':', "%3A")),
    ] {
        let (status, list) = c.get(&format!("/issues.json?updated_on={filter}")).await;
        assert_eq!(status, 200, "{filter}: {list}");
        assert_eq!(list["issues"][0]["id"], json!(id), "{filter}");
        assert_eq!(list["total_count"], json!(1));
    }
    // Fractional seconds, or no operator: Redmine's 422.
    for filter in [
        format!("%3E%3D{}.139Z", &updated_on[..19]),
        updated_on.to_string(),
    ] {
        let (status, body) = c.get(&format!("/issues.json?updated_on={filter}")).await;
        assert_eq!(status, 422, "{filter}");
        assert_eq!(body, json!({"errors": ["Updated is invalid"]}));
    }

    // Update answers 204; fetch shows the new value.
    let resp = c
        .http
        .put(format!("{}/issues/{id}.json", c.base))
        .basic_auth(&c.user, Some(&c.pass))
        .json(&json!({"issue": {"custom_field_values": {"1001": "Printer fixed"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let (status, issue) = c.get(&format!("/issues/{id}.json")).await;
    assert_eq!(status, 200);
    assert_eq!(
        issue["issue"]["custom_fields"][0]["value"],
        json!("Printer fixed")
    );
    // The seed's view shows the same item.
    assert_eq!(
        sb.item(&format!("EXT-{id}")).expect("item")["fields"][0]["value"],
        json!("Printer fixed")
    );
    assert_eq!(c.get("/issues/999.json").await.0, 404);
    sb.shutdown().await;
}
