//! The Jira sandbox over real HTTP: issues, search and paging, transitions, comments,
//! webhooks (signature, retries, filters), auth, errors, rate limits and faults.

mod common;

use std::time::Duration;

use common::{Jira, Receiver, adf, fast_retry};
use serde_json::{Value, json};
use tandem_sandbox::{JiraSandbox, JiraSandboxConfig};

async fn sandbox() -> (JiraSandbox, Jira) {
    let cfg = JiraSandboxConfig {
        webhook_retry: fast_retry(),
        ..JiraSandboxConfig::default()
    };
    let sb = JiraSandbox::start(cfg).await.unwrap();
    let client = Jira::new(&sb.url());
    (sb, client)
}

async fn create(j: &Jira, summary: &str) -> String {
    let (s, v) = j
        .post(
            "/rest/api/3/issue",
            json!({"fields": {"project": {"key": "TEST"}, "issuetype": {"name": "Task"}, "summary": summary}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v["key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn create_get_edit_round_trip_v3_and_v2() {
    let (sb, j) = sandbox().await;
    let (s, v) = j
        .post(
            "/rest/api/3/issue",
            json!({"fields": {
                "project": {"key": "TEST"}, "issuetype": {"name": "Bug"},
                "summary": "First", "description": adf("Hello"),
                "duedate": "2025-01-31", "priority": {"name": "High"}, "labels": ["a"],
                "customfield_10050": "EXT-1", "customfield_10051": {"value": "Major"},
                "customfield_10052": 3, "customfield_123456": "ACME"
            }}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["key"], "TEST-1");
    assert_eq!(v["id"], "10000");
    assert!(
        v["self"]
            .as_str()
            .unwrap()
            .ends_with("/rest/api/3/issue/10000")
    );

    let (s, v) = j.get("/rest/api/3/issue/TEST-1").await;
    assert_eq!(s, 200);
    let f = &v["fields"];
    assert_eq!(f["summary"], "First");
    assert_eq!(f["description"], adf("Hello"));
    assert_eq!(f["priority"]["name"], "High");
    assert_eq!(f["priority"]["id"], "2");
    assert_eq!(f["status"]["name"], "To Do");
    assert_eq!(f["customfield_10051"]["value"], "Major");
    assert_eq!(f["customfield_10052"], 3);
    let created = f["created"].as_str().unwrap();
    assert_eq!(
        created.len(),
        "2025-01-31T10:15:30.000+0000".len(),
        "{created}"
    );
    assert!(created.ends_with("+0000"));

    // v2 speaks wiki strings, and a lower-case key still finds the issue.
    let (s, v) = j
        .get("/rest/api/2/issue/test-1?fields=description,summary")
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["fields"]["description"], "Hello");
    assert!(v["fields"].get("labels").is_none());

    let (s, _) = j
        .put(
            "/rest/api/2/issue/TEST-1",
            json!({"fields": {"description": "Line one\n\nLine two"}, "update": {"labels": [{"add": "b"}, {"remove": "a"}]}}),
        )
        .await;
    assert_eq!(s, 204);
    let issue = sb.issue("TEST-1").unwrap();
    assert_eq!(issue["fields"]["labels"], json!(["b"]));
    assert_eq!(
        issue["fields"]["description"]["content"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(sb.external_id_field(), "customfield_10050");
    assert_eq!(sb.issues().len(), 1);

    let (s, v) = j
        .get("/rest/api/3/issue/TEST-1?expand=changelog,names")
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["changelog"]["histories"].as_array().unwrap().len(), 1);
    assert_eq!(v["names"]["customfield_10050"], "External ID");
    sb.shutdown().await;
}

#[tokio::test]
async fn edit_errors_have_jira_shapes() {
    let (sb, j) = sandbox().await;
    let key = create(&j, "x").await;
    let path = format!("/rest/api/3/issue/{key}");

    let (s, v) = j.put(&path, json!({"fields": {"nope": "x"}})).await;
    assert_eq!(s, 400);
    assert_eq!(v["errorMessages"], json!([]));
    assert!(
        v["errors"]["nope"]
            .as_str()
            .unwrap()
            .contains("cannot be set")
    );

    let (s, v) = j
        .put(
            &path,
            json!({"fields": {"summary": "a"}, "update": {"summary": [{"set": "b"}]}}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(v["errors"]["summary"].is_string(), "{v}");

    let (s, v) = j
        .put(&path, json!({"fields": {"status": {"name": "Done"}}}))
        .await;
    assert_eq!(s, 400);
    assert!(v["errors"]["status"].is_string());

    let (s, v) = j
        .put(
            &path,
            json!({"fields": {"description": "plain string on v3"}}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["errors"]["description"]
            .as_str()
            .unwrap()
            .contains("Atlassian Document")
    );

    let (s, v) = j
        .put(&path, json!({"fields": {"labels": ["has space"]}}))
        .await;
    assert_eq!(s, 400, "{v}");

    let (s, v) = j.get("/rest/api/3/issue/TEST-999").await;
    assert_eq!(s, 404);
    assert_eq!(
        v,
        json!({"errorMessages":["Issue does not exist or you do not have permission to see it."],"errors":{}})
    );

    // Malformed JSON is a 400 ErrorCollection, not a crash.
    let resp = j
        .http
        .put(format!("{}{path}", j.base))
        .header("authorization", &j.auth)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(v["errorMessages"].is_array());

    let (s, v) = j
        .post(
            "/rest/api/3/issue",
            json!({"fields": {"project": {"key": "NOPE"}, "summary": "x"}}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(v["errors"]["project"].is_string());
    // Nothing invalid was stored or changed.
    assert_eq!(sb.issues().len(), 1);
    assert_eq!(sb.issue(&key).unwrap()["fields"]["summary"], "x");
    sb.shutdown().await;
}

#[tokio::test]
async fn auth_basic_bearer_and_401() {
    let (sb, j) = sandbox().await;
    let (s, v) = j.get("/rest/api/3/myself").await;
    assert_eq!(s, 200);
    assert!(v["accountId"].is_string());

    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/rest/api/2/myself", sb.url()))
        .bearer_auth(JiraSandboxConfig::default().pat)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(v["name"].is_string(), "DC representation carries name: {v}");

    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic d3Jvbmc6d3Jvbmc="),
        Some("Basic !!!"),
    ] {
        let mut req = http.get(format!("{}/rest/api/3/myself", sb.url()));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let v: Value = resp.json().await.unwrap();
        assert!(
            v["errorMessages"][0]
                .as_str()
                .unwrap()
                .contains("not authenticated")
        );
    }
    sb.shutdown().await;
}

/// Data Center's `GET /rest/api/2/project/{key}` (a PAT), and the 404 for a key that is not
/// there, as `tandem init` reads them to check a project exists.
#[tokio::test]
async fn project_by_key_on_v2_and_its_404() {
    let (sb, _) = sandbox().await;
    let http = reqwest::Client::new();
    let get = |key: &str| {
        http.get(format!("{}/rest/api/2/project/{key}", sb.url()))
            .bearer_auth(JiraSandboxConfig::default().pat)
            .send()
    };
    let resp = get("TEST").await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["key"], "TEST");
    assert_eq!(v["name"], "Test");
    assert!(
        v["self"].as_str().unwrap().contains("/rest/api/2/project/"),
        "{v}"
    );
    assert!(v["lead"]["name"].is_string(), "DC lead carries name: {v}");
    assert_eq!(v["issueTypes"][0]["name"], "Task");
    let resp = get("NOPE").await.unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["errorMessages"][0],
        "No project could be found with key 'NOPE'."
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn search_jql_pages_with_next_page_token() {
    let (sb, j) = sandbox().await;
    for i in 0..7 {
        create(&j, &format!("issue {i}")).await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({"jql": "project = TEST ORDER BY key ASC", "maxResults": 3, "fields": ["summary", "updated"]});
        if let Some(t) = &token {
            body["nextPageToken"] = json!(t);
        }
        let (s, v) = j.post("/rest/api/3/search/jql", body).await;
        assert_eq!(s, 200, "{v}");
        pages += 1;
        for i in v["issues"].as_array().unwrap() {
            assert!(i["fields"]["summary"].is_string());
            assert!(i["fields"].get("labels").is_none());
            seen.push(i["key"].as_str().unwrap().to_string());
        }
        if v["isLast"] == json!(true) {
            assert!(v.get("nextPageToken").is_none());
            break;
        }
        token = Some(v["nextPageToken"].as_str().unwrap().to_string());
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=7).map(|n| format!("TEST-{n}")).collect();
    assert_eq!(seen, expected);

    // Default fields: id only.
    let (s, v) = j
        .get("/rest/api/3/search/jql?jql=project%3DTEST&maxResults=2")
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["issues"][0], json!({"id": "10006"}));
    assert_eq!(v["isLast"], false);

    // Unbounded queries are refused on search/jql.
    let (s, v) = j
        .post("/rest/api/3/search/jql", json!({"jql": "ORDER BY key"}))
        .await;
    assert_eq!(s, 400);
    assert!(
        v["errorMessages"][0]
            .as_str()
            .unwrap()
            .contains("Unbounded")
    );

    let (s, v) = j
        .post(
            "/rest/api/3/search/approximate-count",
            json!({"jql": "project = TEST"}),
        )
        .await;
    assert_eq!((s, v), (200, json!({"count": 7})));
    sb.shutdown().await;
}

#[tokio::test]
async fn search_v2_pages_with_start_at_and_total() {
    let (sb, j) = sandbox().await;
    for i in 0..5 {
        create(&j, &format!("issue {i}")).await;
    }
    let (s, v) = j
        .get("/rest/api/2/search?jql=project%20%3D%20TEST%20ORDER%20BY%20key%20ASC&startAt=2&maxResults=2&fields=summary")
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total"], 5);
    assert_eq!(v["startAt"], 2);
    assert_eq!(v["issues"][0]["key"], "TEST-3");
    assert_eq!(v["issues"].as_array().unwrap().len(), 2);
    let (s, v) = j
        .post(
            "/rest/api/2/search",
            json!({"jql": "", "startAt": 4, "maxResults": 10}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["issues"].as_array().unwrap().len(), 1);
    assert!(v["issues"][0]["fields"]["labels"].is_array());
    // The deprecated Cloud search is gone, as on real Cloud.
    let (s, _) = j.get("/rest/api/3/search?jql=project=TEST").await;
    assert_eq!(s, 410);
    sb.shutdown().await;
}

#[tokio::test]
async fn jql_external_id_and_errors() {
    let (sb, j) = sandbox().await;
    for (n, ext) in [(1, "EXT-1"), (2, "EXT-12"), (3, "")] {
        let mut fields = json!({"project": {"key": "TEST"}, "issuetype": {"name": "Task"}, "summary": format!("s{n}")});
        if !ext.is_empty() {
            fields["customfield_10050"] = json!(ext);
        }
        assert_eq!(
            j.post("/rest/api/3/issue", json!({ "fields": fields }))
                .await
                .0,
            201
        );
    }
    let keys = |v: &Value| -> Vec<String> {
        v["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap().to_string())
            .collect()
    };
    let search = |jql: &str| {
        let body = json!({"jql": jql, "fields": ["key"]});
        let j = &j;
        async move { j.post("/rest/api/3/search/jql", body).await }
    };
    let (s, v) = search(r#"project = TEST AND "External ID" ~ "\"EXT-12\"""#).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(keys(&v), vec!["TEST-2"]);
    let (_, v) = search(r#"cf[10050] ~ "EXT-1" ORDER BY key ASC"#).await;
    assert_eq!(keys(&v), vec!["TEST-1"]);
    let (_, v) = search("cf[10050] IS EMPTY").await;
    assert_eq!(keys(&v), vec!["TEST-3"]);
    let (_, v) =
        search("project = TEST AND (key = TEST-1 OR key in (TEST-3)) ORDER BY key DESC").await;
    assert_eq!(keys(&v), vec!["TEST-3", "TEST-1"]);
    let (_, v) = search("project = TEST AND updated >= -5m AND status = \"To Do\"").await;
    assert_eq!(keys(&v).len(), 3);
    let (_, v) = search("updated > \"2999/01/01 00:00\"").await;
    assert_eq!(keys(&v).len(), 0);

    let (s, v) = search(r#""External ID" = "EXT-1""#).await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"errorMessages": ["The operator '=' is not supported by the 'External ID' field."], "errors": {}})
    );
    for bad in [
        "project = ",
        "project = TEST AND (",
        "\"unterminated",
        "project TEST",
        "(((",
        "project in (",
        "a = b c d",
    ] {
        let (s, v) = search(bad).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(v["errorMessages"][0].is_string(), "{bad}: {v}");
    }
    let (s, v) = search("project = TEST AND key ~ x").await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = search("customfield_10050 ~ x").await;
    assert_eq!(s, 400);
    assert!(
        v["errorMessages"][0]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn transitions_and_comments() {
    let (sb, j) = sandbox().await;
    let key = create(&j, "t").await;
    let (s, v) = j.get(&format!("/rest/api/3/issue/{key}/transitions")).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = v["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"]["name"].as_str().unwrap())
        .collect();
    // From To Do only Start progress; Done is two steps away and asks for a resolution.
    assert_eq!(names, vec!["In Progress"]);
    let start = v["transitions"][0]["id"].clone();
    let (s, _) = j
        .post(
            &format!("/rest/api/3/issue/{key}/transitions"),
            json!({"transition": {"id": start}}),
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = j
        .get(&format!(
            "/rest/api/3/issue/{key}/transitions?expand=transitions.fields"
        ))
        .await;
    let done = v["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to"]["name"] == "Done")
        .unwrap()
        .clone();
    assert_eq!(done["fields"]["resolution"]["required"], json!(true));
    let (s, v) = j
        .post(
            &format!("/rest/api/3/issue/{key}/transitions"),
            json!({"transition": {"id": done["id"]}}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(v["errors"]["resolution"], json!("Resolution is required."));
    let (s, _) = j
        .post(
            &format!("/rest/api/3/issue/{key}/transitions"),
            json!({"transition": {"id": done["id"]}, "fields": {"resolution": {"name": "Done"}}}),
        )
        .await;
    assert_eq!(s, 204);
    let issue = sb.issue(&key).unwrap();
    assert_eq!(issue["fields"]["status"]["name"], "Done");
    assert_eq!(issue["fields"]["resolution"]["name"], "Done");
    let (s, v) = j
        .post(
            &format!("/rest/api/3/issue/{key}/transitions"),
            json!({"transition": {"id": "999"}}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(v["errorMessages"][0].is_string());

    let (s, v) = j
        .post(
            &format!("/rest/api/3/issue/{key}/comment"),
            json!({"body": adf("v3 comment")}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["body"], adf("v3 comment"));
    let (s, v) = j
        .post(
            &format!("/rest/api/2/issue/{key}/comment"),
            json!({"body": "v2 *comment*"}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(v["body"], "v2 *comment*");
    let (s, v) = j.get(&format!("/rest/api/2/issue/{key}/comment")).await;
    assert_eq!(s, 200);
    assert_eq!(v["total"], 2);
    assert_eq!(v["comments"][0]["body"], "v3 comment");
    assert_eq!(sb.comments(&key).len(), 2);
    let (s, _) = j
        .post(
            &format!("/rest/api/3/issue/{key}/comment"),
            json!({"body": "string on v3"}),
        )
        .await;
    assert_eq!(s, 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn webhooks_signed_with_changelog_and_echoes() {
    let (sb, j) = sandbox().await;
    let rx = Receiver::start().await;
    let (s, v) = j
        .post(
            "/rest/webhooks/1.0/webhook",
            json!({"name": "tandem", "url": rx.url, "events": ["jira:issue_created", "jira:issue_updated", "comment_created"],
                   "filters": {"issue-related-events-section": "project = TEST"}, "secret": "s3cret"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(v.get("secret").is_none(), "the secret is never echoed");
    let (_, list) = j.get("/rest/webhooks/1.0/webhook").await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let key = create(&j, "hooked").await; // an API write: its echo arrives too
    sb.user_edit_issue(
        &key,
        json!({"summary": "by a human", "customfield_10050": "EXT-9"}),
    );
    let hits = rx.wait_for(2).await;
    for h in &hits {
        let expected = tandem_sandbox::jira::sign("s3cret", &h.raw);
        assert_eq!(h.headers["x-hub-signature"], expected);
        assert!(h.headers.contains_key("x-atlassian-webhook-identifier"));
        assert!(!h.headers.contains_key("x-atlassian-webhook-retry"));
    }
    let created = &hits[0].json;
    assert_eq!(created["webhookEvent"], "jira:issue_created");
    assert_eq!(created["issue"]["key"], key.as_str());
    assert!(
        created["issue"]["self"]
            .as_str()
            .unwrap()
            .contains("/rest/api/2/")
    );
    assert!(created.get("changelog").is_none());
    assert_eq!(created["user"]["displayName"], "Tandem Integration");
    let updated = &hits[1].json;
    assert_eq!(updated["webhookEvent"], "jira:issue_updated");
    assert_eq!(updated["user"]["displayName"], "Alice Human");
    let items = updated["changelog"]["items"].as_array().unwrap();
    let ext = items
        .iter()
        .find(|i| i["fieldId"] == "customfield_10050")
        .unwrap();
    assert_eq!(ext["field"], "External ID");
    assert_eq!(ext["fieldtype"], "custom");
    assert_eq!(ext["toString"], "EXT-9");
    let sum = items.iter().find(|i| i["fieldId"] == "summary").unwrap();
    assert_eq!(
        (sum["fromString"].clone(), sum["toString"].clone()),
        (json!("hooked"), json!("by a human"))
    );

    // Comments raise comment_created and an issue_updated carrying the comment.
    j.post(
        &format!("/rest/api/2/issue/{key}/comment"),
        json!({"body": "hi"}),
    )
    .await;
    let hits = rx.wait_for(4).await;
    let events: Vec<&str> = hits[2..]
        .iter()
        .map(|h| h.json["webhookEvent"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["comment_created", "jira:issue_updated"]);
    assert_eq!(hits[2].json["comment"]["body"], "hi");

    // Deleting stops deliveries.
    let (s, _, _) = j
        .send(
            reqwest::Method::DELETE,
            "/rest/webhooks/1.0/webhook/1",
            None,
        )
        .await;
    assert_eq!(s, 204);
    sb.user_edit_issue(&key, json!({"summary": "unheard"}));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.hits().len(), 4);
    sb.shutdown().await;
}

#[tokio::test]
async fn comment_edits_and_deletes_fire_their_webhooks() {
    let (sb, j) = sandbox().await;
    let rx = Receiver::start().await;
    let (s, v) = j
        .post(
            "/rest/webhooks/1.0/webhook",
            json!({"name": "c", "url": rx.url, "events": ["comment_created", "comment_updated", "comment_deleted"]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let key = create(&j, "talk").await;
    // By the API: create with a property, edit, delete.
    let (s, made) = j
        .post(
            &format!("/rest/api/3/issue/{key}/comment"),
            json!({"body": adf("one"), "properties": [{"key": "tandem", "value": {"kind": "notice"}}]}),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    assert!(
        made.get("properties").is_none(),
        "only with expand=properties"
    );
    let id = made["id"].as_str().unwrap().to_string();
    let (s, v) = j
        .put(
            &format!("/rest/api/2/issue/{key}/comment/{id}"),
            json!({"body": "two"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["body"], "two");
    let (s, _) = j
        .delete(
            &format!("/rest/api/3/issue/{key}/comment/{id}"),
            json!(null),
        )
        .await;
    assert_eq!(s, 204);
    // By people, through the test helpers.
    let mine = sb.user_add_comment("alice", &key, "from alice");
    sb.user_edit_comment("bob", &key, &mine, "edited by bob");
    let note = sb.user_add_internal_comment("bob", &key, "internal");
    sb.user_delete_comment("alice", &key, &mine);
    let hits = rx.wait_for(7).await;
    let seen: Vec<(String, String)> = hits
        .iter()
        .map(|h| {
            (
                h.json["webhookEvent"].as_str().unwrap_or("?").to_string(),
                h.json["comment"]["id"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    let want = |e: &str, i: &str| (e.to_string(), i.to_string());
    assert_eq!(
        seen,
        vec![
            want("comment_created", &id),
            want("comment_updated", &id),
            want("comment_deleted", &id),
            want("comment_created", &mine),
            want("comment_updated", &mine),
            want("comment_created", &note),
            want("comment_deleted", &mine),
        ]
    );
    for h in &hits {
        let b = &h.json;
        assert!(b["timestamp"].is_i64(), "{b}");
        assert_eq!(b["issue"]["key"], key.as_str());
        assert!(b["issue"]["id"].is_string());
        assert_eq!(b["issue"]["fields"]["project"]["key"], "TEST");
        assert!(b["comment"]["body"].is_string(), "webhooks speak v2: {b}");
    }
    let edited = &hits[4].json["comment"];
    assert_eq!(edited["body"], "edited by bob");
    assert_eq!(edited["author"]["displayName"], "Alice Human");
    assert_eq!(edited["updateAuthor"]["displayName"], "Bob Human");
    assert_ne!(edited["created"], edited["updated"]);
    assert_eq!(hits[5].json["comment"]["jsdPublic"], json!(false));
    // What is left: the internal note, with its property.
    let left = sb.comments(&key);
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0]["properties"],
        json!([{"key": "sd.public.comment", "value": {"internal": true}}])
    );
    // Unknown comments and bad bodies get Jira's answers.
    let (s, v) = j
        .put(
            &format!("/rest/api/3/issue/{key}/comment/{mine}"),
            json!({"body": adf("x")}),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = j
        .put(
            &format!("/rest/api/3/issue/{key}/comment/{note}"),
            json!({"body": "not a document"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["errors"]["comment"].is_string(), "{v}");
    let (s, v) = j
        .post(
            &format!("/rest/api/3/issue/{key}/comment"),
            json!({"body": adf("x"), "properties": [{"value": 1}]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    sb.shutdown().await;
}

#[tokio::test]
async fn webhook_retry_keeps_identifier() {
    let (sb, j) = sandbox().await;
    let rx = Receiver::start().await;
    sb.register_webhook(&rx.url, None);
    rx.fail_next(2);
    create(&j, "retry me").await;
    let hits = rx.wait_for(3).await;
    let ids: Vec<&String> = hits
        .iter()
        .map(|h| &h.headers["x-atlassian-webhook-identifier"])
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let retries: Vec<Option<&String>> = hits
        .iter()
        .map(|h| h.headers.get("x-atlassian-webhook-retry"))
        .collect();
    assert_eq!(
        retries,
        vec![None, Some(&"1".to_string()), Some(&"2".to_string())]
    );
    assert_eq!(hits[2].status, 200);
    assert!(!hits[0].headers.contains_key("x-hub-signature"));
    sb.shutdown().await;
}

#[tokio::test]
async fn webhook_jql_filter_applies() {
    let cfg = JiraSandboxConfig {
        projects: vec![
            ("TEST".into(), "Test".into()),
            ("OTHER".into(), "Other".into()),
        ],
        webhook_retry: fast_retry(),
        ..JiraSandboxConfig::default()
    };
    let sb = JiraSandbox::start(cfg).await.unwrap();
    let j = Jira::new(&sb.url());
    let rx = Receiver::start().await;
    let (s, _) = j
        .post("/rest/webhooks/1.0/webhook", json!({"name": "f", "url": rx.url, "events": ["jira:issue_created"], "filters": {"issue-related-events-section": "project = OTHER"}}))
        .await;
    assert_eq!(s, 201);
    sb.user_create_issue("TEST", json!({"summary": "ignored"}));
    let key = sb.user_create_issue("OTHER", json!({"summary": "wanted", "description": "text"}));
    let hits = rx.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.hits().len(), 1);
    assert_eq!(hits[0].json["issue"]["key"], key.as_str());
    assert_eq!(hits[0].json["issue"]["fields"]["description"], "text");
    // A bad JQL filter is refused at registration.
    let (s, _) = j
        .post("/rest/webhooks/1.0/webhook", json!({"name": "bad", "url": rx.url, "filters": {"issue-related-events-section": "project = "}}))
        .await;
    assert_eq!(s, 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let cfg = JiraSandboxConfig {
        rate_limit_per_sec: Some(3),
        ..JiraSandboxConfig::default()
    };
    let sb = JiraSandbox::start(cfg).await.unwrap();
    let j = Jira::new(&sb.url());
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..10 {
        let (s, _, h) = j
            .send(reqwest::Method::GET, "/rest/api/3/myself", None)
            .await;
        statuses.push(s);
        if s == 429 {
            retry_after = h
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 200).count() <= 6,
        "{statuses:?}"
    );
    assert_eq!(retry_after.as_deref(), Some("1"));
    sb.shutdown().await;
}

#[tokio::test]
async fn faults_errors_drops_and_request_log() {
    let (sb, j) = sandbox().await;
    sb.faults().set_error_rate(1.0);
    let (s, _) = j.get("/rest/api/3/myself").await;
    assert_eq!(s, 500);
    sb.faults().clear();
    sb.faults().set_rate_limit_rate(1.0);
    let (s, _, h) = j
        .send(reqwest::Method::GET, "/rest/api/3/myself", None)
        .await;
    assert_eq!(s, 429);
    assert_eq!(h["retry-after"], "1");
    sb.faults().clear();

    // A dropped connection is a transport error for the client, and the write did not happen.
    sb.faults().set_drop_rate(1.0);
    let result = j
        .http
        .post(format!("{}/rest/api/3/issue", j.base))
        .header("authorization", &j.auth)
        .json(&json!({"fields": {"project": {"key": "TEST"}, "issuetype": {"name": "Task"}, "summary": "lost"}}))
        .send()
        .await;
    assert!(result.is_err(), "{result:?}");
    assert!(sb.issues().is_empty());
    sb.faults().clear();

    // A lost response: the write happened but the client saw a network error.
    sb.faults().set_lost_response_rate(1.0);
    let result = j
        .http
        .post(format!("{}/rest/api/3/issue", j.base))
        .header("authorization", &j.auth)
        .json(&json!({"fields": {"project": {"key": "TEST"}, "issuetype": {"name": "Task"}, "summary": "ghost"}}))
        .send()
        .await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(sb.issues().len(), 1);
    sb.faults().clear();

    sb.faults().set_latency(Duration::from_millis(150));
    let t = std::time::Instant::now();
    assert_eq!(j.get("/rest/api/3/myself").await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    sb.faults().clear();

    // A slow answer: a client that stops waiting sees a timeout, but the write happened.
    sb.faults()
        .set_slow_answers(1.0, Duration::from_millis(400));
    let result = j
        .http
        .post(format!("{}/rest/api/3/issue", j.base))
        .header("authorization", &j.auth)
        .timeout(Duration::from_millis(100))
        .json(&json!({"fields": {"project": {"key": "TEST"}, "issuetype": {"name": "Task"}, "summary": "late"}}))
        .send()
        .await;
    assert!(result.as_ref().is_err_and(|e| e.is_timeout()), "{result:?}");
    assert_eq!(sb.issues().len(), 2);
    sb.faults().clear();

    let log = sb.request_log();
    let posts: Vec<_> = log
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/rest/api/3/issue")
        .collect();
    assert_eq!(posts.len(), 3);
    assert_eq!(posts[0].status, tandem_sandbox::STATUS_DROPPED);
    assert_eq!(posts[1].status, tandem_sandbox::STATUS_LOST_RESPONSE);
    assert_eq!(posts[1].body["fields"]["summary"], "ghost");
    assert_eq!((posts[2].status, posts[2].slow), (201, true));
    assert!(!posts[1].slow);
    sb.shutdown().await;
}

#[tokio::test]
async fn webhook_faults_duplicate_and_drop() {
    let (sb, _j) = sandbox().await;
    let rx = Receiver::start().await;
    sb.register_webhook(&rx.url, None);
    sb.faults().set_webhook_duplicate_rate(1.0);
    sb.user_create_issue("TEST", json!({"summary": "twice"}));
    let hits = rx.wait_for(2).await;
    assert_eq!(
        hits[0].headers["x-atlassian-webhook-identifier"],
        hits[1].headers["x-atlassian-webhook-identifier"]
    );
    sb.faults().clear();
    sb.faults().set_webhook_drop_rate(1.0);
    sb.user_create_issue("TEST", json!({"summary": "never"}));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(rx.hits().len(), 2);
    sb.faults().clear();
    sb.faults().set_webhook_reorder(true);
    for i in 0..3 {
        sb.user_create_issue("TEST", json!({"summary": format!("r{i}")}));
    }
    rx.wait_for(5).await;
    sb.shutdown().await;
}
