//! Contract test: every `/rest/api/3` endpoint the Jira sandbox serves is called with a
//! request the Atlassian OpenAPI spec accepts, and the response body is validated against the
//! spec's schema for that status. Nothing is hand-copied: schemas come from
//! `vendor/openapi/jira-cloud-platform.openapi.json`, vendored in the repository.
//!
//! Which routes are served is not taken on trust either: every `/rest/api/3` operation of the
//! spec is probed, and any the sandbox answers (anything but its "no such endpoint" 404 or a
//! 405) must be in `SERVED` and have a contract case.
//!
//! OpenAPI 3.0 schemas are not quite JSON Schema, so they are translated first:
//! `nullable: true` becomes a `null` alternative, and the OpenAPI-only keywords (`example`,
//! `xml`, `discriminator`, `externalDocs`) are dropped. Formats are not asserted: Jira's own
//! timestamps (`2025-01-31T10:15:30.000+0000`) are not RFC 3339 `date-time`, and the sandbox
//! copies Jira, not the spec's annotation.

mod common;
#[path = "support/openapi.rs"]
mod openapi;

use common::{Jira, adf};
use openapi::{spec, translate, violations};
use serde_json::{Value, json};
use tandem_sandbox::{JiraSandbox, JiraSandboxConfig};

/// Check `body` against `schema`; the error lists every violation with its location.
fn check(schema: &Value, body: &Value) -> Result<(), String> {
    let errors = violations(schema, body);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

fn operation(method: &str, path: &str) -> &'static Value {
    let op = &spec()["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not in the spec");
    op
}

/// The spec's response schema for a status, or None when the spec declares no JSON body.
fn response_schema(method: &str, path: &str, status: u16) -> Option<&'static Value> {
    let resp = &operation(method, path)["responses"][status.to_string()];
    assert!(
        resp.is_object(),
        "{method} {path} does not declare status {status} in the spec"
    );
    resp["content"]["application/json"]["schema"]
        .as_object()
        .map(|_| &resp["content"]["application/json"]["schema"])
}

fn request_schema(method: &str, path: &str) -> &'static Value {
    &operation(method, path)["requestBody"]["content"]["application/json"]["schema"]
}

/// Calls the sandbox and checks request and response against the spec.
struct Contract {
    jira: Jira,
    /// An OAuth 2.0 app, for the app-only endpoints.
    app: Jira,
    covered: Vec<(String, String)>,
}

impl Contract {
    async fn call(
        &mut self,
        method: &str,
        template: &str,
        url: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        self.call_as(false, method, template, url, body, expect)
            .await
    }

    /// Like `call`, as the OAuth app when `as_app`.
    async fn call_as(
        &mut self,
        as_app: bool,
        method: &str,
        template: &str,
        url: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        if let Some(b) = &body {
            let schema = request_schema(method, template);
            if let Err(e) = check(schema, b) {
                panic!("request for {method} {template} violates the spec:\n{e}\n{b:#}");
            }
        }
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let client = if as_app { &self.app } else { &self.jira };
        let (status, resp, _) = client.send(m, url, body).await;
        assert_eq!(status, expect, "{method} {url}: {resp}");
        match response_schema(method, template, status) {
            Some(schema) => {
                if let Err(e) = check(schema, &resp) {
                    panic!("{method} {url} → {status} violates the spec:\n{e}\n{resp:#}");
                }
            }
            None => assert!(
                resp.is_null() || status >= 400,
                "{method} {url} → {status} has a body the spec does not declare: {resp}"
            ),
        }
        self.covered
            .push((method.to_string(), template.to_string()));
        resp
    }
}

/// Routes the sandbox answers on purpose outside the spec: Jira Cloud removed the old search
/// (CHANGE-2046) and answers 410, a status the (deprecated) spec entry does not declare.
const REMOVED: &[(&str, &str)] = &[
    ("get", "/rest/api/3/search"),
    ("post", "/rest/api/3/search"),
];

/// Every `/rest/api/3` route the sandbox serves. Kept next to the test so a new route
/// without contract coverage fails below.
const SERVED: &[(&str, &str)] = &[
    ("post", "/rest/api/3/issue"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}"),
    ("put", "/rest/api/3/issue/{issueIdOrKey}"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}/comment"),
    ("post", "/rest/api/3/issue/{issueIdOrKey}/comment"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}"),
    ("put", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}"),
    ("delete", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}"),
    ("post", "/rest/api/3/issue/{issueIdOrKey}/attachments"),
    ("get", "/rest/api/3/attachment/content/{id}"),
    ("delete", "/rest/api/3/attachment/{id}"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}/transitions"),
    ("post", "/rest/api/3/issue/{issueIdOrKey}/transitions"),
    ("get", "/rest/api/3/status/{idOrName}"),
    ("get", "/rest/api/3/field"),
    ("get", "/rest/api/3/myself"),
    ("get", "/rest/api/3/user/search"),
    ("get", "/rest/api/3/project/{projectIdOrKey}"),
    ("get", "/rest/api/3/search/jql"),
    ("post", "/rest/api/3/search/jql"),
    ("post", "/rest/api/3/search/approximate-count"),
    ("get", "/rest/api/3/webhook"),
    ("post", "/rest/api/3/webhook"),
    ("delete", "/rest/api/3/webhook"),
    ("put", "/rest/api/3/webhook/refresh"),
];

#[tokio::test]
async fn sandbox_responses_match_the_openapi_spec() {
    let sb = JiraSandbox::start(JiraSandboxConfig::default())
        .await
        .unwrap();
    let mut c = Contract {
        jira: Jira::new(&sb.url()),
        app: Jira::oauth(&sb.url()),
        covered: vec![],
    };
    let issue = "/rest/api/3/issue/{issueIdOrKey}";

    let created = c
        .call(
            "post",
            "/rest/api/3/issue",
            "/rest/api/3/issue",
            Some(json!({"fields": {
                "project": {"key": "TEST"}, "issuetype": {"name": "Bug"}, "summary": "Contract",
                "description": adf("Body"), "duedate": "2025-01-31", "priority": {"name": "Low"},
                "labels": ["x"], "customfield_10050": "EXT-1", "customfield_10051": {"value": "Minor"},
                "customfield_10052": 2.5, "assignee": {"accountId": "5b10ac8d82e05b22cc7d4ef5"}
            }})),
            201,
        )
        .await;
    let key = created["key"].as_str().unwrap().to_string();
    c.call(
        "post",
        "/rest/api/3/issue",
        "/rest/api/3/issue",
        Some(json!({"fields": {"project": {"key": "TEST"}, "summary": "no type"}})),
        400,
    )
    .await;

    c.call(
        "put",
        issue,
        &format!("/rest/api/3/issue/{key}"),
        Some(json!({"fields": {"summary": "Edited"}, "update": {"labels": [{"add": "y"}]}})),
        204,
    )
    .await;
    c.call(
        "post",
        "/rest/api/3/issue/{issueIdOrKey}/comment",
        &format!("/rest/api/3/issue/{key}/comment"),
        Some(json!({"body": adf("A comment")})),
        201,
    )
    .await;
    c.call(
        "get",
        "/rest/api/3/issue/{issueIdOrKey}/comment",
        &format!("/rest/api/3/issue/{key}/comment"),
        None,
        200,
    )
    .await;
    comment_routes(&mut c, &key).await;
    attachment_routes(&mut c, &key).await;
    let transitions = c
        .call(
            "get",
            "/rest/api/3/issue/{issueIdOrKey}/transitions",
            &format!("/rest/api/3/issue/{key}/transitions"),
            None,
            200,
        )
        .await;
    let tid = transitions["transitions"][0]["id"].clone();
    c.call(
        "post",
        "/rest/api/3/issue/{issueIdOrKey}/transitions",
        &format!("/rest/api/3/issue/{key}/transitions"),
        Some(json!({"transition": {"id": tid}})),
        204,
    )
    .await;
    // In Progress now: with the screens' fields; Done's requires a resolution.
    let transitions = c
        .call(
            "get",
            "/rest/api/3/issue/{issueIdOrKey}/transitions",
            &format!("/rest/api/3/issue/{key}/transitions?expand=transitions.fields"),
            None,
            200,
        )
        .await;
    let done = transitions["transitions"]
        .as_array()
        .and_then(|l| l.iter().find(|t| t["to"]["name"] == "Done"))
        .expect("a transition to Done from In Progress")
        .clone();
    assert_eq!(done["fields"]["resolution"]["required"], json!(true));
    let refused = c
        .call(
            "post",
            "/rest/api/3/issue/{issueIdOrKey}/transitions",
            &format!("/rest/api/3/issue/{key}/transitions"),
            Some(json!({"transition": {"id": done["id"]}})),
            400,
        )
        .await;
    assert_eq!(
        refused["errors"]["resolution"],
        json!("Resolution is required.")
    );
    c.call(
        "post",
        "/rest/api/3/issue/{issueIdOrKey}/transitions",
        &format!("/rest/api/3/issue/{key}/transitions"),
        Some(json!({"transition": {"id": done["id"]}, "fields": {"resolution": {"name": "Done"}}})),
        204,
    )
    .await;
    for (name, expect) in [("Done", 200), ("10000", 200), ("Nirvana", 404)] {
        c.call(
            "get",
            "/rest/api/3/status/{idOrName}",
            &format!("/rest/api/3/status/{name}"),
            None,
            expect,
        )
        .await;
    }
    for query in [
        "",
        "?expand=names,schema,changelog,transitions,renderedFields",
        "?fields=summary,customfield_10050",
    ] {
        c.call(
            "get",
            issue,
            &format!("/rest/api/3/issue/{key}{query}"),
            None,
            200,
        )
        .await;
    }
    c.call("get", "/rest/api/3/field", "/rest/api/3/field", None, 200)
        .await;
    c.call("get", "/rest/api/3/myself", "/rest/api/3/myself", None, 200)
        .await;
    user_search_routes(&mut c).await;
    let project = "/rest/api/3/project/{projectIdOrKey}";
    let test = c
        .call("get", project, "/rest/api/3/project/TEST", None, 200)
        .await;
    assert_eq!(test["key"], "TEST");
    let types: Vec<&str> = test["issueTypes"]
        .as_array()
        .map(|l| l.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(types.contains(&"Task"), "{test}");
    let by_id = c
        .call(
            "get",
            project,
            &format!("/rest/api/3/project/{}", test["id"].as_str().unwrap()),
            None,
            200,
        )
        .await;
    assert_eq!(by_id["key"], "TEST");
    // Keys are case-sensitive in this endpoint; Jira's 404 names the key.
    let missing = c
        .call("get", project, "/rest/api/3/project/test", None, 404)
        .await;
    assert_eq!(
        missing["errorMessages"][0],
        "No project could be found with key 'test'."
    );

    for _ in 0..3 {
        sb.user_create_issue("TEST", json!({"summary": "more"}));
    }
    let page = c
        .call(
            "post",
            "/rest/api/3/search/jql",
            "/rest/api/3/search/jql",
            Some(
                json!({"jql": "project = TEST ORDER BY updated ASC", "maxResults": 2,
                        "fields": ["*all"], "expand": "names,schema"}),
            ),
            200,
        )
        .await;
    let token = page["nextPageToken"].as_str().unwrap().to_string();
    c.call(
        "post",
        "/rest/api/3/search/jql",
        "/rest/api/3/search/jql",
        Some(
            json!({"jql": "project = TEST ORDER BY updated ASC", "maxResults": 2,
                    "nextPageToken": token, "fields": ["summary", "updated"]}),
        ),
        200,
    )
    .await;
    c.call(
        "get",
        "/rest/api/3/search/jql",
        "/rest/api/3/search/jql?jql=project%20%3D%20TEST",
        None,
        200,
    )
    .await;
    c.call(
        "post",
        "/rest/api/3/search/approximate-count",
        "/rest/api/3/search/approximate-count",
        Some(json!({"jql": "project = TEST"})),
        200,
    )
    .await;

    // Dynamic webhooks: app-only, with per-webhook errors for unsupported JQL.
    let hooks = "/rest/api/3/webhook";
    let registered = c
        .call_as(
            true,
            "post",
            hooks,
            hooks,
            Some(json!({"url": "https://app.example.com/wh", "webhooks": [
                {"events": ["jira:issue_created", "jira:issue_updated"],
                 "jqlFilter": "project = TEST", "fieldIdsFilter": ["summary", "customfield_10050"]},
                {"events": ["jira:issue_created"], "jqlFilter": "watchCount = 1"}
            ]})),
            200,
        )
        .await;
    let id = registered["webhookRegistrationResult"][0]["createdWebhookId"].clone();
    assert!(id.is_u64(), "{registered}");
    assert!(registered["webhookRegistrationResult"][1]["errors"].is_array());
    c.call_as(
        false,
        "post",
        hooks,
        hooks,
        Some(json!({"url": "https://app.example.com/wh", "webhooks": []})),
        403,
    )
    .await;
    c.call_as(true, "get", hooks, hooks, None, 200).await;
    c.call_as(
        true,
        "get",
        hooks,
        "/rest/api/3/webhook?startAt=0&maxResults=1",
        None,
        200,
    )
    .await;
    c.call_as(false, "get", hooks, hooks, None, 403).await;
    c.call_as(
        true,
        "put",
        "/rest/api/3/webhook/refresh",
        "/rest/api/3/webhook/refresh",
        Some(json!({"webhookIds": [id]})),
        200,
    )
    .await;
    c.call_as(
        true,
        "delete",
        hooks,
        hooks,
        Some(json!({"webhookIds": [id]})),
        202,
    )
    .await;
    c.call_as(
        false,
        "delete",
        hooks,
        hooks,
        Some(json!({"webhookIds": [id]})),
        403,
    )
    .await;

    for (m, p) in SERVED {
        assert!(
            c.covered.iter().any(|(cm, cp)| cm == m && cp == p),
            "{m} {p} is served but not contract-tested"
        );
    }
    for (m, p, url) in served_by_probing(&c.jira).await {
        // A probe can also land on a served route with a parameter, e.g. PUT
        // /rest/api/3/issue/archive is an edit of issue "archive"; that is not a new route.
        assert!(
            SERVED
                .iter()
                .any(|(sm, sp)| *sm == m && (*sp == p || template_matches(sp, &url)))
                || REMOVED.iter().any(|(rm, rp)| *rm == m && *rp == p),
            "{m} {p} is served by the sandbox but missing from SERVED"
        );
    }
    sb.shutdown().await;
}

/// The user search, as the user map's automatic matching calls it: Cloud by e-mail
/// (`query`, a prefix match) and by account id, Data Center by `username` (checked against
/// the same schema: Data Center's answer is Cloud's `User` with `name` and `key`).
async fn user_search(c: &mut Contract, query: &str, expect: u16) -> Value {
    let template = "/rest/api/3/user/search";
    let api = if query.starts_with("username") { 2 } else { 3 };
    c.call(
        "get",
        template,
        &format!("/rest/api/{api}/user/search?{query}"),
        None,
        expect,
    )
    .await
}

async fn user_search_routes(c: &mut Contract) {
    let by_mail = user_search(c, "query=Alice%40Example.com", 200).await;
    assert_eq!(by_mail.as_array().map(Vec::len), Some(1), "{by_mail}");
    assert_eq!(by_mail[0]["accountId"], "5b10ac8d82e05b22cc7d4ef5");
    assert_eq!(by_mail[0]["emailAddress"], "alice@example.com");
    let by_prefix = user_search(c, "query=b&maxResults=10", 200).await;
    assert_eq!(by_prefix[0]["displayName"], "Bob Human", "{by_prefix}");
    let by_id = user_search(c, "accountId=5b10a2844c20165700ede21g", 200).await;
    assert_eq!(by_id[0]["displayName"], "Bob Human");
    let nobody = user_search(c, "query=nobody%40example.com", 200).await;
    assert_eq!(nobody, json!([]));
    let dc = user_search(c, "username=alice", 200).await;
    assert_eq!(dc[0]["name"], "alice", "{dc}");
    user_search(c, "maxResults=5", 400).await;
    user_search(c, "username=", 400).await;
}

/// The attachment routes: an upload (multipart, which the spec describes as an array of
/// `MultipartFile` parts rather than a JSON schema, so the request is checked for Jira's own
/// rules and the answer against the spec), the content served back byte for byte, the
/// issue's `attachment` field, and the delete.
async fn attachment_routes(c: &mut Contract, key: &str) {
    let upload = "/rest/api/3/issue/{issueIdOrKey}/attachments";
    let body: &[u8] = b"--b0und\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b0und--\r\n";
    let send = |xsrf: bool| {
        let mut r = c
            .jira
            .http
            .post(format!(
                "{}/rest/api/3/issue/{key}/attachments",
                c.jira.base
            ))
            .header("authorization", &c.jira.auth)
            .header("content-type", "multipart/form-data; boundary=b0und");
        if xsrf {
            r = r.header("X-Atlassian-Token", "no-check");
        }
        r.body(body.to_vec())
    };
    // Jira refuses an upload without `X-Atlassian-Token: no-check`.
    let refused = send(false).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let resp = send(true).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let added: Value = resp.json().await.unwrap();
    let schema = response_schema("post", upload, 200).expect("a JSON answer in the spec");
    if let Err(e) = check(schema, &added) {
        panic!("POST {upload} → 200 violates the spec:\n{e}\n{added:#}");
    }
    c.covered.push(("post".into(), upload.into()));
    let id = added[0]["id"].as_str().unwrap().to_string();
    assert_eq!(added[0]["size"], json!(5));

    let content = c
        .jira
        .http
        .get(format!(
            "{}/rest/api/3/attachment/content/{id}",
            c.jira.base
        ))
        .header("authorization", &c.jira.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), 200);
    assert_eq!(
        content.headers()["content-type"].to_str().unwrap(),
        "text/plain"
    );
    assert_eq!(&content.bytes().await.unwrap()[..], b"hello");
    c.covered
        .push(("get".into(), "/rest/api/3/attachment/content/{id}".into()));

    let issue = c
        .call(
            "get",
            "/rest/api/3/issue/{issueIdOrKey}",
            &format!("/rest/api/3/issue/{key}?fields=attachment"),
            None,
            200,
        )
        .await;
    assert_eq!(issue["fields"]["attachment"][0]["id"], json!(id));
    let one = "/rest/api/3/attachment/{id}";
    c.call(
        "delete",
        one,
        &format!("/rest/api/3/attachment/{id}"),
        None,
        204,
    )
    .await;
    c.call(
        "delete",
        one,
        &format!("/rest/api/3/attachment/{id}"),
        None,
        404,
    )
    .await;
}

/// One comment's routes and comment properties, on v3 and on v2 (whose bodies are wiki
/// strings; the spec's `Comment.body` has no type, so one schema checks both dialects).
async fn comment_routes(c: &mut Contract, key: &str) {
    let list = "/rest/api/3/issue/{issueIdOrKey}/comment";
    let one = "/rest/api/3/issue/{issueIdOrKey}/comment/{id}";
    for v in [3, 2] {
        let body = |text: &str| if v == 3 { adf(text) } else { json!(text) };
        let made = c
            .call(
                "post",
                list,
                &format!("/rest/api/{v}/issue/{key}/comment?expand=properties"),
                Some(json!({"body": body("An internal note"), "properties": [
                    {"key": "sd.public.comment", "value": {"internal": true}},
                    {"key": "tandem", "value": {"kind": "notice"}}
                ]})),
                201,
            )
            .await;
        assert_eq!(made["jsdPublic"], json!(false), "{made}");
        assert_eq!(made["properties"][1]["value"], json!({"kind": "notice"}));
        let id = made["id"].as_str().unwrap().to_string();
        let url = format!("/rest/api/{v}/issue/{key}/comment/{id}");
        let got = c
            .call("get", one, &format!("{url}?expand=properties"), None, 200)
            .await;
        assert_eq!(got["properties"], made["properties"]);
        let plain = c.call("get", one, &url, None, 200).await;
        assert!(plain.get("properties").is_none(), "{plain}");
        let page = c
            .call(
                "get",
                list,
                &format!(
                    "/rest/api/{v}/issue/{key}/comment?startAt=0&maxResults=50&orderBy=created&expand=properties"
                ),
                None,
                200,
            )
            .await;
        let listed = page["comments"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["id"] == json!(id)))
            .expect("the new comment is listed")
            .clone();
        assert_eq!(listed["properties"], made["properties"]);
        let edited = c
            .call("put", one, &url, Some(json!({"body": body("Edited")})), 200)
            .await;
        assert_eq!(edited["body"], body("Edited"));
        assert_eq!(edited["jsdPublic"], json!(false), "properties are kept");
        let refused = c
            .call(
                "put",
                one,
                &url,
                Some(json!({"body": if v == 3 { json!("not ADF") } else { json!(" ") }})),
                400,
            )
            .await;
        assert!(refused["errors"]["comment"].is_string(), "{refused}");
        c.call("delete", one, &url, None, 204).await;
        let gone = c.call("get", one, &url, None, 404).await;
        assert_eq!(
            gone["errorMessages"][0],
            json!(format!("Can not find a comment for the id: {id}."))
        );
        c.call("delete", one, &url, None, 404).await;
    }
}

/// Every `/rest/api/3` operation of the spec that the sandbox answers: path parameters are
/// filled with `1`, and anything but the sandbox's own "no such endpoint" 404 or a 405 means
/// a route exists.
/// Whether `url` fits `template` with any value in each `{param}` segment.
fn template_matches(template: &str, url: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let u: Vec<&str> = url.split('/').collect();
    t.len() == u.len()
        && t.iter()
            .zip(&u)
            .all(|(a, b)| a == b || (a.starts_with('{') && a.ends_with('}')))
}

/// (method, spec template, probed URL) of every answered probe.
async fn served_by_probing(jira: &Jira) -> Vec<(String, String, String)> {
    let mut served = Vec::new();
    let paths = spec()["paths"].as_object().expect("paths");
    for (template, ops) in paths {
        if !template.starts_with("/rest/api/3/") {
            continue;
        }
        let mut url = String::new();
        let mut in_param = false;
        for ch in template.chars() {
            match ch {
                '{' => {
                    in_param = true;
                    url.push('1');
                }
                '}' => in_param = false,
                c if !in_param => url.push(c),
                _ => {}
            }
        }
        for method in ["get", "post", "put", "delete", "patch"] {
            if !ops.get(method).is_some_and(Value::is_object) {
                continue;
            }
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body, _) = jira.send(m, &url, None).await;
            let fallback = status == 404
                && body["errorMessages"][0]
                    .as_str()
                    .is_some_and(|s| s.contains("no such endpoint"));
            if !(fallback || status == 405) {
                served.push((method.to_string(), template.clone(), url.clone()));
            }
        }
    }
    assert!(served.len() >= SERVED.len() / 2, "probing found {served:?}");
    served
}

#[test]
fn the_validator_rejects_wrong_bodies() {
    let schema = response_schema("post", "/rest/api/3/search/jql", 200).unwrap();
    assert!(check(schema, &json!({"issues": [{"id": "1"}], "isLast": true})).is_ok());
    assert!(check(schema, &json!({"issues": "not an array"})).is_err());
    assert!(
        check(schema, &json!({"issues": [], "total": 3})).is_err(),
        "additionalProperties"
    );
    assert!(
        check(schema, &json!({"issues": [{"id": 5}]})).is_err(),
        "nested $ref"
    );
    let created = response_schema("post", "/rest/api/3/issue", 201).unwrap();
    assert!(check(created, &json!({"id": 10000, "key": "T-1"})).is_err());
    let fields = response_schema("get", "/rest/api/3/field", 200).unwrap();
    assert!(
        check(fields, &json!([{"id": "x", "schema": {"system": "x"}}])).is_err(),
        "schema.type is required"
    );
}

#[test]
fn nullable_is_translated() {
    let s = translate(&json!({"type": "string", "nullable": true, "example": "x"}));
    assert_eq!(s, json!({"type": ["string", "null"]}));
    let s = translate(&json!({"properties": {"example": {"type": "integer"}}}));
    assert_eq!(s["properties"]["example"]["type"], "integer");
}
