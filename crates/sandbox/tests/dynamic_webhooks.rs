//! Dynamic (Connect / OAuth 2.0 app) webhooks: registration with Jira's JQL subset, listing,
//! deletion, refresh, 30-day expiry on an injectable clock, unsigned deliveries with
//! `matchedWebhookIds`, and the app-only rule (403 for API tokens and PATs).

mod common;

use std::time::Duration;

use common::{Jira, Receiver, fast_retry};
use serde_json::{Value, json};
use tandem_sandbox::{JiraSandbox, JiraSandboxConfig};

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn sandbox() -> JiraSandbox {
    let cfg = JiraSandboxConfig {
        projects: vec![
            ("TEST".into(), "Test".into()),
            ("OTHER".into(), "Other".into()),
        ],
        webhook_retry: fast_retry(),
        ..JiraSandboxConfig::default()
    };
    JiraSandbox::start(cfg).await.unwrap()
}

fn ids(v: &Value) -> Vec<Value> {
    v["webhookRegistrationResult"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["createdWebhookId"].clone())
        .collect()
}

#[tokio::test]
async fn only_apps_may_use_the_api() {
    let sb = sandbox().await;
    let body = json!({"url": "http://127.0.0.1:9/hook", "webhooks": [
        {"events": ["jira:issue_created"], "jqlFilter": "project = TEST"}]});
    let message = json!(["Only Connect and OAuth 2.0 apps can use this operation."]);
    for client in [
        Jira::new(&sb.url()),
        Jira::bearer(&sb.url(), &sb.config().pat),
    ] {
        let (s, v) = client.post("/rest/api/3/webhook", body.clone()).await;
        assert_eq!((s, &v["errorMessages"]), (403, &message), "{v}");
        let (s, _) = client.get("/rest/api/3/webhook").await;
        assert_eq!(s, 403);
        let (s, _) = client
            .put("/rest/api/3/webhook/refresh", json!({"webhookIds": [1]}))
            .await;
        assert_eq!(s, 403);
        let (s, _) = client
            .delete("/rest/api/3/webhook", json!({"webhookIds": [1]}))
            .await;
        assert_eq!(s, 403);
    }
    // The OAuth token also works for ordinary endpoints; a wrong one does not.
    let (s, _) = Jira::oauth(&sb.url()).get("/rest/api/3/myself").await;
    assert_eq!(s, 200);
    let (s, _) = Jira::bearer(&sb.url(), "nope")
        .get("/rest/api/3/myself")
        .await;
    assert_eq!(s, 401);
    sb.shutdown().await;
}

#[tokio::test]
async fn registration_enforces_the_jql_subset_per_webhook() {
    let sb = sandbox().await;
    let app = Jira::oauth(&sb.url());
    let (s, v) = app
        .post(
            "/rest/api/3/webhook",
            json!({"url": "http://127.0.0.1:9/hook", "webhooks": [
                {"events": ["jira:issue_created", "jira:issue_updated"],
                 "jqlFilter": "project = TEST AND issuetype IN (Bug, Task) AND status != Done",
                 "fieldIdsFilter": ["summary"]},
                {"events": ["jira:issue_created"], "jqlFilter": "watchCount = 1"},
                {"events": ["jira:issue_created"], "jqlFilter": "\"External ID\" ~ \"ABC\""},
                {"events": ["jira:issue_created"], "jqlFilter": "project = TEST AND priority = High"},
                {"events": ["jira:issue_created"], "jqlFilter": "project ~ TEST"},
                {"events": ["jira:issue_created"], "jqlFilter": "project = NOPE"},
                {"events": ["jira:issue_created"], "jqlFilter": "project = "},
                {"events": ["not_an_event"], "jqlFilter": "project = TEST"},
                {"events": ["comment_created"], "jqlFilter": "issueKey = TEST-1 OR assignee = bob OR reporter != alice"}
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let results = v["webhookRegistrationResult"].as_array().unwrap();
    assert_eq!(results.len(), 9);
    assert!(results[0]["createdWebhookId"].is_u64(), "{v}");
    assert_eq!(
        results[1]["errors"],
        json!(["The clause watchCount is unsupported"])
    );
    assert_eq!(
        results[2]["errors"],
        json!(["The clause External ID is unsupported"])
    );
    assert_eq!(
        results[3]["errors"],
        json!(["The clause priority is unsupported"])
    );
    assert_eq!(
        results[4]["errors"],
        json!(["The operator ~ is unsupported"])
    );
    assert!(
        results[5]["errors"][0].as_str().unwrap().contains("NOPE"),
        "{v}"
    );
    assert!(results[6]["errors"].is_array(), "{v}");
    assert_eq!(
        results[7]["errors"],
        json!(["The event not_an_event is unsupported"])
    );
    assert!(results[8]["createdWebhookId"].is_u64(), "{v}");

    // One URL per app.
    let (s, v) = app
        .post(
            "/rest/api/3/webhook",
            json!({"url": "http://127.0.0.1:9/other", "webhooks": [
                {"events": ["jira:issue_created"], "jqlFilter": "project = TEST"}]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = app
        .post("/rest/api/3/webhook", json!({"webhooks": []}))
        .await;
    assert_eq!(s, 400);

    // Listing pages through the live hooks.
    let (s, page) = app.get("/rest/api/3/webhook?maxResults=1").await;
    assert_eq!(s, 200);
    assert_eq!(page["total"], 2);
    assert_eq!(page["isLast"], false);
    let first = &page["values"][0];
    assert_eq!(
        first["jqlFilter"],
        "project = TEST AND issuetype IN (Bug, Task) AND status != Done"
    );
    assert_eq!(first["fieldIdsFilter"], json!(["summary"]));
    assert_eq!(first["url"], "http://127.0.0.1:9/hook");
    let expires = first["expirationDate"].as_i64().unwrap();
    let in_30_days = (sb.now() + chrono::Duration::days(30)).timestamp_millis();
    assert!(
        (expires - in_30_days).abs() < 60_000,
        "{expires} vs {in_30_days}"
    );
    let (_, page2) = app.get("/rest/api/3/webhook?startAt=1&maxResults=1").await;
    assert_eq!(page2["isLast"], true);
    assert!(page2["values"][0]["fieldIdsFilter"].is_null());

    // Delete one (unknown ids are ignored); a body without ids is a 400.
    let id = first["id"].clone();
    let (s, v) = app
        .delete("/rest/api/3/webhook", json!({"webhookIds": [id, 999999]}))
        .await;
    assert_eq!((s, v), (202, Value::Null));
    let (_, page) = app.get("/rest/api/3/webhook").await;
    assert_eq!(page["total"], 1);
    let (s, _) = app.delete("/rest/api/3/webhook", json!({})).await;
    assert_eq!(s, 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn deliveries_are_unsigned_grouped_filtered_and_stop_after_expiry() {
    let sb = sandbox().await;
    let rx = Receiver::start().await;
    let app = Jira::oauth(&sb.url());
    let (s, v) = app
        .post(
            "/rest/api/3/webhook",
            json!({"url": rx.url, "webhooks": [
                {"events": ["jira:issue_created", "jira:issue_updated"], "jqlFilter": "project = TEST"},
                {"events": ["jira:issue_created"], "jqlFilter": "project IN (TEST, OTHER)"},
                {"events": ["jira:issue_updated"], "jqlFilter": "project = TEST", "fieldIdsFilter": ["duedate"]}
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let [a, b, c] = ids(&v).try_into().unwrap();

    // One delivery per event for the app's URL, listing every matched hook.
    let key = sb.user_create_issue("TEST", json!({"summary": "one"}));
    let hits = rx.wait_for(1).await;
    assert_eq!(hits[0].json["webhookEvent"], "jira:issue_created");
    assert_eq!(hits[0].json["matchedWebhookIds"], json!([a, b]));
    assert_eq!(hits[0].json["issue"]["key"], key.as_str());
    assert!(!hits[0].headers.contains_key("x-hub-signature"));
    assert!(
        hits[0]
            .headers
            .contains_key("x-atlassian-webhook-identifier")
    );

    // fieldIdsFilter: only changes to duedate reach hook c.
    sb.user_edit_issue(&key, json!({"summary": "renamed"}));
    let hits = rx.wait_for(2).await;
    assert_eq!(hits[1].json["webhookEvent"], "jira:issue_updated");
    assert_eq!(hits[1].json["matchedWebhookIds"], json!([a]));
    sb.user_edit_issue(&key, json!({"duedate": "2030-01-01"}));
    let hits = rx.wait_for(3).await;
    assert_eq!(hits[2].json["matchedWebhookIds"], json!([a, c]));

    // The JQL filter applies: OTHER matches only b.
    sb.user_create_issue("OTHER", json!({"summary": "other"}));
    let hits = rx.wait_for(4).await;
    assert_eq!(hits[3].json["matchedWebhookIds"], json!([b]));

    // Refresh a on day 20; on day 31 b and c have expired and a still delivers.
    sb.advance_clock(20 * DAY);
    let (s, v) = app
        .put("/rest/api/3/webhook/refresh", json!({"webhookIds": [a]}))
        .await;
    assert_eq!(s, 200);
    let expected = (sb.now() + chrono::Duration::days(30)).timestamp_millis();
    assert!((v["expirationDate"].as_i64().unwrap() - expected).abs() < 60_000);
    sb.advance_clock(11 * DAY);
    let (_, page) = app.get("/rest/api/3/webhook").await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["values"][0]["id"], a);
    sb.user_create_issue("TEST", json!({"summary": "late"}));
    let hits = rx.wait_for(5).await;
    assert_eq!(hits[4].json["matchedWebhookIds"], json!([a]));
    let stamp = hits[4].json["timestamp"].as_i64().unwrap();
    assert!(
        stamp >= sb.now().timestamp_millis() - 60_000,
        "timestamps follow the clock"
    );

    // After a's 30 days nothing is delivered, and refreshing does not bring it back.
    sb.advance_clock(31 * DAY);
    let (s, _) = app
        .put("/rest/api/3/webhook/refresh", json!({"webhookIds": [a]}))
        .await;
    assert_eq!(s, 200);
    sb.user_create_issue("TEST", json!({"summary": "unheard"}));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(rx.hits().len(), 5);
    let (_, page) = app.get("/rest/api/3/webhook").await;
    assert_eq!(page["total"], 0);
    sb.shutdown().await;
}
