//! The `github`, `gitlab` and `zendesk` presets against sandboxes built from the vendors' API
//! descriptions (vendor/openapi/{github,gitlab,zendesk}/, see the README there), and
//! `tandem check --offline` on each shipped example (examples/presets/, examples/jira-to-jira/).
//!
//! Each sandbox is an axum server on loopback that holds issues in memory, answers in the
//! shape of the description's own examples, and checks every request Tandem sends against the
//! description: the path and method must be one of the operations, every query parameter
//! must be declared (with a value of its type or enum), required ones present, and the JSON
//! body must hold the required properties, no undeclared ones, each of its declared type. A
//! request that fails answers 400 and is recorded; each test ends by asserting that none
//! failed and that every operation the preset configures was called. Between the sandbox and
//! the Jira sandbox runs `tandem serve` as a user runs it, with `preset = "…"`, credentials
//! and the sandbox's URL: a create both ways, an edit both ways, status through the preset's
//! value map, and changes made in the vendor's system found by polling (none of the sandboxes
//! sends webhooks).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem_sandbox::{JiraSandbox, JiraSandboxConfig};

const JIRA_SECRET: &str = "jira-hook-secret";

// ---- the API description ------------------------------------------------------------------

/// One vendor's API description (OpenAPI 3 or Swagger 2, as JSON) and what it says about a
/// request.
struct Description {
    doc: Value,
    /// Swagger 2.0 has no `nullable`: there a null is taken as "no value" for a property
    /// that is not required, as GitLab's API reads it.
    swagger2: bool,
}

/// A request the description accepts: its operation and the path parameters.
#[derive(Debug)]
struct Matched {
    operation: String,
    params: BTreeMap<String, String>,
}

impl Description {
    fn parse(text: &str) -> Description {
        let doc: Value = serde_json::from_str(text).expect("the vendored description is JSON");
        Description {
            swagger2: doc.get("swagger").is_some(),
            doc,
        }
    }

    /// The value a local `$ref` names; `None` when the description does not hold it (the
    /// GitLab excerpt's `x-unresolved`), which is then taken as "any value".
    fn resolve<'a>(&'a self, v: &'a Value) -> Option<&'a Value> {
        let mut v = v;
        for _ in 0..16 {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => v = self.doc.pointer(r.strip_prefix('#')?)?,
                None => return Some(v),
            }
        }
        None
    }

    /// Checks a request; `tolerated` lists body properties (JSON Pointers) that may be sent
    /// though undeclared.
    fn check(
        &self,
        method: &Method,
        raw_path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        tolerated: &[&str],
    ) -> Result<Matched, String> {
        let paths = self.doc["paths"].as_object().expect("paths");
        let segs: Vec<&str> = raw_path.split('/').collect();
        let (template, item, params) = paths
            .iter()
            .find_map(|(t, item)| {
                let tsegs: Vec<&str> = t.split('/').collect();
                if tsegs.len() != segs.len() {
                    return None;
                }
                let mut params = BTreeMap::new();
                for (ts, s) in tsegs.iter().zip(&segs) {
                    if let Some(name) = ts.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                        if s.is_empty() {
                            return None;
                        }
                        params.insert(name.to_string(), percent_decode(s));
                    } else if ts != s {
                        return None;
                    }
                }
                Some((t, item, params))
            })
            .ok_or_else(|| format!("{method} {raw_path}: no such path in the description"))?;
        let op = item
            .get(method.as_str().to_ascii_lowercase())
            .ok_or_else(|| format!("{method} {template}: no such operation"))?;
        let operation = op["operationId"].as_str().unwrap_or(template).to_string();
        let at = |m: String| format!("{operation}: {m}");

        let declared: Vec<&Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(
                op.get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            )
            .filter_map(|p| self.resolve(p))
            .collect();
        let schema_of = |p: &'_ Value| -> Value {
            // OpenAPI 3 puts the type in `schema`, Swagger 2 on the parameter itself.
            p.get("schema").cloned().unwrap_or_else(|| p.clone())
        };
        for p in &declared {
            let name = p["name"].as_str().unwrap_or_default();
            match p["in"].as_str() {
                Some("path") => {
                    let v = params
                        .get(name)
                        .ok_or_else(|| at(format!("path parameter {name} missing")))?;
                    self.check_text(v, &schema_of(p))
                        .map_err(|e| at(format!("path parameter {name}: {e}")))?;
                }
                Some("query")
                    if p["required"] == json!(true) && !query.iter().any(|(k, _)| k == name) =>
                {
                    return Err(at(format!("required query parameter {name} missing")));
                }
                _ => {}
            }
        }
        for (k, v) in query {
            let p = declared
                .iter()
                .find(|p| p["in"] == json!("query") && p["name"].as_str() == Some(k))
                .ok_or_else(|| at(format!("query parameter {k} is not declared")))?;
            self.check_text(v, &schema_of(p))
                .map_err(|e| at(format!("query parameter {k}={v:?}: {e}")))?;
        }

        let body_schema = op
            .pointer("/requestBody/content/application~1json/schema")
            .cloned()
            .or_else(|| {
                declared
                    .iter()
                    .find(|p| p["in"] == json!("body"))
                    .map(|p| p["schema"].clone())
            });
        match (body_schema, body) {
            (Some(s), Some(b)) => self
                .check_value(b, &s, "", tolerated)
                .map_err(|e| at(format!("body: {e}")))?,
            (Some(_), None) => return Err(at("a body is required".into())),
            (None, Some(b)) => return Err(at(format!("takes no body, got {b}"))),
            (None, None) => {}
        }
        Ok(Matched { operation, params })
    }

    /// A query or path value (text) against its schema.
    fn check_text(&self, text: &str, schema: &Value) -> Result<(), String> {
        let Some(schema) = self.resolve(schema) else {
            return Ok(());
        };
        if let Some(e) = schema.get("enum").and_then(Value::as_array)
            && !e.iter().any(|x| x.as_str() == Some(text))
        {
            return Err(format!("not one of {e:?}"));
        }
        match schema["type"].as_str() {
            Some("integer") => text
                .parse::<i64>()
                .map(|_| ())
                .map_err(|_| "not an integer".into()),
            Some("boolean") if !matches!(text, "true" | "false") => Err("not a boolean".into()),
            Some("array") => text
                .split(',')
                .try_for_each(|t| self.check_text(t, &schema["items"])),
            Some("string") if schema["format"] == json!("date-time") => {
                DateTime::parse_from_rfc3339(text)
                    .map(|_| ())
                    .map_err(|e| format!("not a date-time: {e}"))
            }
            _ => Ok(()),
        }
    }

    /// A JSON value against its schema, strictly: no undeclared properties unless tolerated.
    fn check_value(
        &self,
        v: &Value,
        schema: &Value,
        at: &str,
        tolerated: &[&str],
    ) -> Result<(), String> {
        let Some(schema) = self.resolve(schema) else {
            return Ok(());
        };
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                let errors: Vec<String> = branches
                    .iter()
                    .filter_map(|b| self.check_value(v, b, at, tolerated).err())
                    .collect();
                if errors.len() == branches.len() {
                    return Err(format!(
                        "{at}: matches none of {key}: {}",
                        errors.join("; ")
                    ));
                }
                if schema.get("type").is_none() {
                    return Ok(());
                }
            }
        }
        if v.is_null() {
            return if schema["nullable"] == json!(true)
                || schema.get("type").is_none()
                || (self.swagger2 && !at.is_empty())
            {
                Ok(())
            } else {
                Err(format!("{at}: null where {} is required", schema["type"]))
            };
        }
        if let Some(e) = schema.get("enum").and_then(Value::as_array)
            && !e.contains(v)
        {
            return Err(format!("{at}: {v} is not one of {e:?}"));
        }
        let ok = match schema["type"].as_str() {
            None => true,
            Some("string") => v.is_string(),
            Some("integer") => v.is_i64() || v.is_u64(),
            Some("number") => v.is_number(),
            Some("boolean") => v.is_boolean(),
            Some("array") => v.is_array(),
            Some("object") => v.is_object(),
            Some(other) => panic!("schema type {other} not handled"),
        };
        if !ok {
            return Err(format!("{at}: {v} is not of type {}", schema["type"]));
        }
        if let (Some(s), Some("date-time")) = (v.as_str(), schema["format"].as_str()) {
            DateTime::parse_from_rfc3339(s).map_err(|e| format!("{at}: {e}"))?;
        }
        if let Value::Array(items) = v
            && let Some(item_schema) = schema.get("items")
        {
            for (i, item) in items.iter().enumerate() {
                self.check_value(item, item_schema, &format!("{at}/{i}"), tolerated)?;
            }
        }
        if let Value::Object(obj) = v {
            let props = schema.get("properties").and_then(Value::as_object);
            for r in schema["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap_or_default();
                if !obj.contains_key(r) {
                    return Err(format!("{at}: required property {r} missing"));
                }
                if self.swagger2 && obj[r].is_null() {
                    return Err(format!("{at}: required property {r} is null"));
                }
            }
            for (k, pv) in obj {
                let here = format!("{at}/{k}");
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => self.check_value(pv, ps, &here, tolerated)?,
                    None if props.is_none() || tolerated.contains(&here.as_str()) => {}
                    None => return Err(format!("{here}: property not declared")),
                }
            }
        }
        Ok(())
    }

    /// The example value of the operation's success answer (OpenAPI 3 `examples`).
    fn answer_example(&self, path: &str, method: &str) -> Value {
        let op = &self.doc["paths"][path][method];
        let content = op["responses"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(code, _)| code.starts_with('2'))
            .map(|(_, r)| r["content"]["application/json"].clone())
            .unwrap();
        let mut v = content["examples"]
            .as_object()
            .and_then(|m| m.values().next())
            .expect("an example answer");
        // An example object (`{"summary", "value"}`) may itself be a `$ref` or hold one.
        loop {
            v = self.resolve(v).expect("the example is in the description");
            match v.as_object() {
                Some(o)
                    if o.contains_key("value")
                        && o.keys()
                            .all(|k| matches!(k.as_str(), "summary" | "description" | "value")) =>
                {
                    v = &o["value"];
                }
                _ => return v.clone(),
            }
        }
    }

    /// An object made of the `example` of each property of a (Swagger 2) definition.
    fn object_from_examples(&self, definition: &str) -> Value {
        let def = &self.doc["definitions"][definition];
        let mut out = Map::new();
        for (k, p) in def["properties"].as_object().unwrap() {
            let v = match (p.get("example"), p["type"].as_str()) {
                // GitLab's `labels` example is one string for an array of them.
                (Some(e), Some("array")) if !e.is_array() => json!([e]),
                (Some(e), _) => e.clone(),
                (None, Some("boolean")) => json!(false),
                (None, _) => Value::Null,
            };
            out.insert(k.clone(), v);
        }
        Value::Object(out)
    }
}

fn percent_decode(s: &str) -> String {
    let url = reqwest::Url::parse(&format!("http://x/?v={s}")).unwrap();
    url.query_pairs()
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

// ---- the vendor sandbox ---------------------------------------------------------------------

/// What differs between the three systems: auth, where the id and values sit, how a request
/// body changes an item, and how a listing selects items.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Vendor {
    GitHub,
    GitLab,
    Zendesk,
}

struct VendorState {
    vendor: Vendor,
    api: Description,
    /// Issues by the id the API addresses them with (number, iid, id).
    items: BTreeMap<u64, Value>,
    next: u64,
    /// Every request that broke the description or the auth rules.
    violations: Vec<String>,
    /// Calls per operation id.
    calls: BTreeMap<String, usize>,
    /// Writes by Tandem (create and update calls).
    writes: usize,
}

#[derive(Clone)]
struct VendorSandbox {
    state: Arc<Mutex<VendorState>>,
    url: String,
}

const GITHUB_TOKEN: &str = "ghp-test-token";
const GITLAB_TOKEN: &str = "glpat-test-token";
const ZENDESK_USER: &str = "agent@example.com/token";
const ZENDESK_TOKEN: &str = "zendesk-test-token";

fn github_api() -> Description {
    Description::parse(include_str!(
        "../../../vendor/openapi/github/api.github.com.subset.json"
    ))
}
fn gitlab_api() -> Description {
    Description::parse(include_str!(
        "../../../vendor/openapi/gitlab/gitlab.subset.json"
    ))
}
fn zendesk_api() -> Description {
    Description::parse(include_str!(
        "../../../vendor/openapi/zendesk/zendesk-tickets.handwritten.json"
    ))
}

/// The time as each system writes it: GitHub and Zendesk in whole seconds, GitLab with
/// milliseconds.
fn stamp(vendor: Vendor, t: DateTime<Utc>) -> String {
    match vendor {
        Vendor::GitLab => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        _ => t.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

impl VendorState {
    fn id_key(&self) -> &'static str {
        match self.vendor {
            Vendor::GitHub => "number",
            Vendor::GitLab => "iid",
            Vendor::Zendesk => "id",
        }
    }

    /// A new item in the shape of the description's example.
    fn template(&self) -> Value {
        match self.vendor {
            Vendor::GitHub => self
                .api
                .answer_example("/repos/{owner}/{repo}/issues/{issue_number}", "get"),
            Vendor::GitLab => self.api.object_from_examples("API_Entities_IssueBasic"),
            Vendor::Zendesk => self
                .api
                .answer_example("/api/v2/tickets/{ticket_id}", "get")["ticket"]
                .clone(),
        }
    }

    fn create(&mut self, fields: &Value) -> Value {
        let n = self.next;
        self.next += 1;
        let mut item = self.template();
        item["id"] = json!(1_000_000 + n);
        item[self.id_key()] = json!(n);
        match self.vendor {
            Vendor::GitHub => {
                item["state"] = json!("open");
                item["labels"] = json!([]);
                item["body"] = Value::Null;
                // An issue, not a pull request.
                item.as_object_mut().unwrap().remove("pull_request");
            }
            Vendor::GitLab => {
                item["state"] = json!("opened");
                item["labels"] = json!([]);
                item["description"] = Value::Null;
                item["due_date"] = Value::Null;
            }
            Vendor::Zendesk => {
                item["status"] = json!("new");
                item["tags"] = json!([]);
                item["priority"] = Value::Null;
            }
        }
        self.apply(&mut item, fields, true);
        self.items.insert(n, item.clone());
        item
    }

    /// A request body's values applied to an item, as the system does.
    fn apply(&self, item: &mut Value, body: &Value, creating: bool) {
        let now = stamp(self.vendor, Utc::now());
        let fields = match self.vendor {
            Vendor::Zendesk => body["ticket"].clone(),
            _ => body.clone(),
        };
        for (k, v) in fields.as_object().into_iter().flatten() {
            match (self.vendor, k.as_str()) {
                // Labels are written by name and read as objects.
                (Vendor::GitHub, "labels") => {
                    let shape = self.template()["labels"][0].clone();
                    item["labels"] = Value::Array(
                        v.as_array()
                            .unwrap()
                            .iter()
                            .map(|name| {
                                let mut l = shape.clone();
                                l["name"] = name.clone();
                                l
                            })
                            .collect(),
                    );
                }
                // Neither create takes a state; both systems ignore it there.
                (Vendor::GitHub, "state") | (Vendor::GitLab, "state_event") if creating => {}
                (Vendor::GitLab, "state_event") => {
                    item["state"] = json!(match v.as_str() {
                        Some("close") => "closed",
                        _ => "opened",
                    });
                }
                (Vendor::GitHub, "state") => {
                    item["closed_at"] = if v == "closed" {
                        json!(now)
                    } else {
                        Value::Null
                    };
                    item["state"] = v.clone();
                }
                // The description is the first comment; later comments leave it.
                (Vendor::Zendesk, "comment") => {
                    if creating {
                        item["description"] = v["body"].clone();
                    }
                }
                _ => item[k] = v.clone(),
            }
        }
        item["updated_at"] = json!(now);
    }

    /// A person's edit in the system's own UI.
    fn user_edit(&mut self, id: u64, values: Value) {
        let mut item = self.items[&id].clone();
        for (k, v) in values.as_object().unwrap() {
            item[k] = v.clone();
        }
        // A later edit has a later time. GitHub and Zendesk write whole seconds, and the
        // poller takes an item listed again with the same update time for the same change,
        // so a second edit within the second of one already polled would not be seen (see
        // the preset headers); the story's edits are a person's, seconds apart.
        let before: DateTime<Utc> =
            DateTime::parse_from_rfc3339(item["updated_at"].as_str().unwrap())
                .unwrap()
                .into();
        let at = Utc::now().max(before + chrono::Duration::seconds(1));
        item["updated_at"] = json!(stamp(self.vendor, at));
        self.items.insert(id, item);
    }

    /// Items changed since the listing's `since`, oldest first.
    fn listed(&self, query: &[(String, String)]) -> Result<Vec<Value>, String> {
        let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let since: DateTime<Utc> = match self.vendor {
            Vendor::GitHub => {
                let text = q("q").unwrap_or_default();
                let words: Vec<&str> = text.split(' ').collect();
                if !words.contains(&"is:issue") || !words.contains(&"repo:octo-org/octo-repo") {
                    return Err(format!(
                        "q={text:?} does not select this repository's issues"
                    ));
                }
                let t = words
                    .iter()
                    .find_map(|w| w.strip_prefix("updated:>="))
                    .ok_or_else(|| format!("q={text:?} has no updated:>="))?;
                DateTime::parse_from_rfc3339(t)
                    .map_err(|e| format!("updated:>={t}: {e}"))?
                    .into()
            }
            Vendor::GitLab => DateTime::parse_from_rfc3339(&q("updated_after").unwrap())
                .unwrap()
                .into(),
            Vendor::Zendesk => {
                let secs: i64 = q("start_time")
                    .ok_or("start_time missing")?
                    .parse()
                    .map_err(|_| "start_time is not a number")?;
                let t = DateTime::from_timestamp(secs, 0).unwrap();
                if t > Utc::now() - chrono::Duration::seconds(60) {
                    return Err(
                        "Too recent start_time. Use a start_time older than 1 minute".into(),
                    );
                }
                t
            }
        };
        let mut out: Vec<Value> = self
            .items
            .values()
            .filter(|i| {
                let u: DateTime<Utc> =
                    DateTime::parse_from_rfc3339(i["updated_at"].as_str().unwrap())
                        .unwrap()
                        .into();
                u >= since
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| a["updated_at"].as_str().cmp(&b["updated_at"].as_str()));
        Ok(out)
    }
}

impl VendorSandbox {
    async fn start(vendor: Vendor) -> VendorSandbox {
        let api = match vendor {
            Vendor::GitHub => github_api(),
            Vendor::GitLab => gitlab_api(),
            Vendor::Zendesk => zendesk_api(),
        };
        let state = Arc::new(Mutex::new(VendorState {
            vendor,
            api,
            items: BTreeMap::new(),
            next: 1,
            violations: Vec::new(),
            calls: BTreeMap::new(),
            writes: 0,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        VendorSandbox { state, url }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VendorState> {
        self.state.lock().unwrap()
    }

    fn find(&self, key: &str, value: &str) -> Option<Value> {
        self.lock()
            .items
            .values()
            .find(|i| i[key] == json!(value))
            .cloned()
    }

    fn item(&self, id: u64) -> Value {
        self.lock().items[&id].clone()
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

async fn handle(
    State(state): State<Arc<Mutex<VendorState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = state.lock().unwrap();
    let vendor = st.vendor;
    let query: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x{uri}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");

    // The credentials each system takes, in the header it reads them from.
    let authorized = match vendor {
        Vendor::GitHub => header("authorization") == format!("Bearer {GITHUB_TOKEN}"),
        Vendor::GitLab => header("private-token") == GITLAB_TOKEN,
        Vendor::Zendesk => {
            use base64::Engine;
            let want = base64::engine::general_purpose::STANDARD
                .encode(format!("{ZENDESK_USER}:{ZENDESK_TOKEN}"));
            header("authorization") == format!("Basic {want}")
        }
    };
    // GitHub refuses requests without a User-Agent.
    if !authorized || (vendor == Vendor::GitHub && header("user-agent").is_empty()) {
        let m = format!("{method} {}: bad credentials or no User-Agent", uri.path());
        st.violations.push(m.clone());
        return error(StatusCode::UNAUTHORIZED, m);
    }
    let parsed: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                let m = format!("{method} {}: body is not JSON: {e}", uri.path());
                st.violations.push(m.clone());
                return error(StatusCode::BAD_REQUEST, m);
            }
        }
    };
    if parsed.is_some() && !header("content-type").starts_with("application/json") {
        let m = format!(
            "{method} {}: content type {}",
            uri.path(),
            header("content-type")
        );
        st.violations.push(m.clone());
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, m);
    }
    // What the create calls carry though the description does not declare it there: the
    // mapped state, which neither system accepts on create (the preset says so).
    let tolerated: &[&str] = match vendor {
        Vendor::GitHub => &["/state"],
        Vendor::GitLab => &["/state_event"],
        Vendor::Zendesk => &[],
    };
    let matched = match st
        .api
        .check(&method, uri.path(), &query, parsed.as_ref(), tolerated)
    {
        Ok(m) => m,
        Err(e) => {
            st.violations.push(e.clone());
            return error(StatusCode::BAD_REQUEST, e);
        }
    };
    *st.calls.entry(matched.operation.clone()).or_default() += 1;
    let id_param = matched
        .params
        .get(match vendor {
            Vendor::GitHub => "issue_number",
            Vendor::GitLab => "issue_iid",
            Vendor::Zendesk => "ticket_id",
        })
        .and_then(|s| s.parse::<u64>().ok());
    let wrap = |item: Value| match vendor {
        Vendor::Zendesk => json!({ "ticket": item }),
        _ => item,
    };
    match (method.clone(), id_param) {
        (Method::GET, Some(id)) => match st.items.get(&id) {
            Some(i) => axum::Json(wrap(i.clone())).into_response(),
            None => error(StatusCode::NOT_FOUND, "Not Found".into()),
        },
        (Method::GET, None) => match st.listed(&query) {
            Ok(items) => axum::Json(match vendor {
                Vendor::GitHub => {
                    let mut page = st.api.answer_example("/search/issues", "get");
                    page["total_count"] = json!(items.len());
                    page["incomplete_results"] = json!(false);
                    page["items"] = Value::Array(items);
                    page
                }
                Vendor::GitLab => Value::Array(items),
                Vendor::Zendesk => {
                    let mut page = st
                        .api
                        .answer_example("/api/v2/incremental/tickets/cursor", "get");
                    page["tickets"] = Value::Array(items);
                    page["end_of_stream"] = json!(true);
                    page
                }
            })
            .into_response(),
            Err(e) => {
                st.violations.push(e.clone());
                error(StatusCode::BAD_REQUEST, e)
            }
        },
        (Method::POST, None) => {
            st.writes += 1;
            let item = st.create(parsed.as_ref().unwrap());
            (StatusCode::CREATED, axum::Json(wrap(item))).into_response()
        }
        (Method::PATCH | Method::PUT, Some(id)) => {
            st.writes += 1;
            let Some(mut item) = st.items.get(&id).cloned() else {
                return error(StatusCode::NOT_FOUND, "Not Found".into());
            };
            st.apply(&mut item, parsed.as_ref().unwrap(), false);
            st.items.insert(id, item.clone());
            axum::Json(wrap(item)).into_response()
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} not served"),
        ),
    }
}

// ---- tandem serve ---------------------------------------------------------------------------

/// A `tandem serve` child, killed if the test fails before stopping it.
struct Serving(Option<Child>);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn serve(config: &Path) -> (Serving, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tandem serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("tandem listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (Serving(Some(child)), base)
}

fn check_offline(config: &Path, env: &[(&str, &str)]) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["check", "--offline", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tandem check --offline {}: {}{}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `probe` (async) until it gives a value, for up to 60 s.
macro_rules! eventually {
    ($what:expr, $probe:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = $probe {
                break v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {}", $what);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }};
}

fn jira_issue_with_summary(jira: &JiraSandbox, summary: &str) -> Option<Value> {
    jira.issues()
        .into_iter()
        .find(|i| i["fields"]["summary"] == json!(summary))
}

/// The connection's `[connection.external]` lines for a vendor, pointed at its sandbox.
fn external_table(vendor: Vendor, url: &str) -> String {
    match vendor {
        Vendor::GitHub => format!(
            "preset = \"github\"\nbase_url = \"{url}\"\nowner = \"octo-org\"\nrepo = \"octo-repo\"\nauth = {{ token = \"{GITHUB_TOKEN}\" }}\n"
        ),
        Vendor::GitLab => format!(
            "preset = \"gitlab\"\nbase_url = \"{url}\"\nproject = \"my-group%2Fmy-project\"\nauth = {{ value = \"{GITLAB_TOKEN}\" }}\n"
        ),
        Vendor::Zendesk => format!(
            "preset = \"zendesk\"\nbase_url = \"{url}\"\nauth = {{ username = \"{ZENDESK_USER}\", password = \"{ZENDESK_TOKEN}\" }}\n"
        ),
    }
}

/// Field names and values of each system, for the common story below.
struct Words {
    title: &'static str,
    /// The state field and its values for Jira's To Do and Done.
    state: &'static str,
    todo: &'static str,
    done: &'static str,
}

fn words(vendor: Vendor) -> Words {
    match vendor {
        Vendor::GitHub => Words {
            title: "title",
            state: "state",
            todo: "open",
            done: "closed",
        },
        Vendor::GitLab => Words {
            title: "title",
            state: "state",
            todo: "opened",
            done: "closed",
        },
        Vendor::Zendesk => Words {
            title: "subject",
            state: "status",
            todo: "new",
            done: "solved",
        },
    }
}

/// The story every preset goes through; what is particular to a system is checked by the
/// caller on the returned ids.
async fn sync_story(vendor: Vendor) {
    let sandbox = VendorSandbox::start(vendor).await;
    let jira = JiraSandbox::start(JiraSandboxConfig {
        projects: vec![("TEST".into(), "Test".into())],
        ..JiraSandboxConfig::default()
    })
    .await
    .unwrap();
    let w = words(vendor);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tandem.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"

[storage]
url = "sqlite://tandem.db"

[worker]
backoff_base_ms = 100
backoff_cap_ms = 1000

[[connection]]
name = "vendor"
poll_interval = "1s"

[connection.filter]
projects = ["TEST"]

[connection.jira]
base_url = "{jira}"
email = "tandem@example.com"
api_token = "sandbox-api-token"
project = "TEST"
webhook_secret = "{JIRA_SECRET}"

[connection.external]
{external}"#,
            jira = jira.url(),
            external = external_table(vendor, &sandbox.url),
        ),
    )
    .unwrap();
    check_offline(&config, &[]);
    let (_child, base) = serve(&config);
    jira.register_webhook(&format!("{base}/webhooks/vendor/jira"), Some(JIRA_SECRET));
    let link = jira.external_id_field().to_string();

    // Jira → vendor: a new issue gets a twin, linked from Jira.
    let key = jira.user_create_issue(
        "TEST",
        json!({"summary": "Made in Jira", "description": "Written in Jira.", "labels": ["sync"]}),
    );
    let twin = eventually!("the twin", sandbox.find(w.title, "Made in Jira"));
    let twin_id = twin[sandbox.lock().id_key()].as_u64().unwrap();
    assert_eq!(twin[w.state], json!(w.todo), "{twin}");
    let description = match vendor {
        Vendor::GitHub => &twin["body"],
        _ => &twin["description"],
    };
    assert!(
        description
            .as_str()
            .is_some_and(|d| d.contains("Written in Jira.")),
        "{twin}"
    );
    let labels = |item: &Value| -> Vec<String> {
        let list = match vendor {
            Vendor::Zendesk => &item["tags"],
            _ => &item["labels"],
        };
        list.as_array()
            .unwrap()
            .iter()
            .map(|l| l.get("name").unwrap_or(l).as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(labels(&twin), ["sync"]);
    eventually!("the link in Jira", {
        (jira.issue(&key).unwrap()["fields"][&link] == json!(twin_id.to_string())).then_some(())
    });

    // Vendor → Jira, by polling: a ticket made in the system's own UI.
    let made = {
        let mut st = sandbox.lock();
        let body = match vendor {
            Vendor::GitHub => {
                json!({"title": "Made outside", "body": "Written outside.", "labels": ["triage"]})
            }
            Vendor::GitLab => {
                json!({"title": "Made outside", "description": "Written outside.", "labels": ["triage"]})
            }
            Vendor::Zendesk => {
                json!({"ticket": {"subject": "Made outside", "comment": {"body": "Written outside."}, "tags": ["triage"], "priority": "high"}})
            }
        };
        let item = st.create(&body);
        item[st.id_key()].as_u64().unwrap()
    };
    let jira_twin = eventually!(
        "the Jira twin",
        jira_issue_with_summary(&jira, "Made outside")
    );
    let jira_twin_key = jira_twin["key"].as_str().unwrap().to_string();
    assert_eq!(jira_twin["fields"][&link], json!(made.to_string()));
    assert_eq!(jira_twin["fields"]["labels"], json!(["triage"]));
    if vendor == Vendor::Zendesk {
        assert_eq!(jira_twin["fields"]["priority"]["name"], json!("High"));
    }

    // Edits both ways, status through the preset's value map.
    jira.user_edit_issue(
        &key,
        json!({"summary": "Renamed in Jira", "status": "Done"}),
    );
    eventually!("the rename and status outside", {
        let i = sandbox.item(twin_id);
        (i[w.title] == json!("Renamed in Jira") && i[w.state] == json!(w.done)).then_some(())
    });
    sandbox
        .lock()
        .user_edit(made, json!({ w.title: "Renamed outside", w.state: w.done }));
    eventually!("the rename and status in Jira", {
        let i = jira.issue(&jira_twin_key).unwrap();
        (i["fields"]["summary"] == json!("Renamed outside")
            && i["fields"]["status"]["name"] == json!("Done"))
        .then_some(())
    });
    // And back to To Do from outside.
    sandbox.lock().user_edit(made, json!({ w.state: w.todo }));
    eventually!("the reopening in Jira", {
        (jira.issue(&jira_twin_key).unwrap()["fields"]["status"]["name"] == json!("To Do"))
            .then_some(())
    });

    // Settled: more polls write nothing on either side, and Jira's description of the
    // first issue is still its own.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let writes = sandbox.lock().writes;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(sandbox.lock().writes, writes, "Tandem wrote outside again");
    assert_eq!(jira.issues().len(), 2);
    assert_eq!(sandbox.lock().items.len(), 2);
    let first = jira.issue(&key).unwrap();
    assert!(
        first["fields"]["description"]
            .to_string()
            .contains("Written in Jira."),
        "{first}"
    );

    let (violations, calls) = {
        let st = sandbox.lock();
        (st.violations.clone(), st.calls.clone())
    };
    assert!(
        violations.is_empty(),
        "requests the description refuses: {violations:#?}"
    );
    let wanted: &[&str] = match vendor {
        Vendor::GitHub => &[
            "issues/create",
            "issues/get",
            "issues/update",
            "search/issues-and-pull-requests",
        ],
        Vendor::GitLab => &[
            "postApiV4ProjectsIdIssues",
            "getApiV4ProjectsIdIssuesIssueIid",
            "putApiV4ProjectsIdIssuesIssueIid",
            "getApiV4ProjectsIdIssues",
        ],
        Vendor::Zendesk => &[
            "CreateTicket",
            "ShowTicket",
            "UpdateTicket",
            "IncrementalTicketExportCursor",
        ],
    };
    for op in wanted {
        assert!(calls.contains_key(*op), "{op} was never called: {calls:?}");
    }
    jira.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_preset_syncs_both_ways_against_the_described_api() {
    sync_story(Vendor::GitHub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_preset_syncs_both_ways_against_the_described_api() {
    sync_story(Vendor::GitLab).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_preset_syncs_both_ways_against_the_described_api() {
    sync_story(Vendor::Zendesk).await;
}

/// The validator itself refuses what the descriptions refuse, so a passing story means
/// something.
#[test]
fn the_descriptions_refuse_malformed_requests() {
    let gh = github_api();
    let ok = gh.check(
        &Method::PATCH,
        "/repos/o/r/issues/3",
        &[],
        Some(&json!({"title": "t", "state": "closed", "labels": ["a"]})),
        &[],
    );
    assert_eq!(ok.unwrap().operation, "issues/update");
    for (method, path, query, body, why) in [
        (
            Method::PATCH,
            "/repos/o/r/issues/3",
            vec![],
            Some(json!({"state": "done"})),
            "not one of",
        ),
        (
            Method::PATCH,
            "/repos/o/r/issues/x",
            vec![],
            Some(json!({})),
            "not an integer",
        ),
        (
            Method::PATCH,
            "/repos/o/r/issues/3",
            vec![],
            Some(json!({"titel": "t"})),
            "not declared",
        ),
        (
            Method::POST,
            "/repos/o/r/issues",
            vec![],
            Some(json!({"body": "b"})),
            "required property title",
        ),
        (
            Method::GET,
            "/search/issues",
            vec![("sort".to_string(), "updated".to_string())],
            None,
            "required query parameter q",
        ),
        (
            Method::GET,
            "/repos/o/r/issues/3",
            vec![("bogus".to_string(), "1".to_string())],
            None,
            "not declared",
        ),
        (
            Method::PUT,
            "/repos/o/r/issues/3",
            vec![],
            Some(json!({})),
            "no such operation",
        ),
    ] {
        let err = gh
            .check(&method, path, &query, body.as_ref(), &[])
            .unwrap_err();
        assert!(err.contains(why), "{method} {path}: {err}");
    }
    let gl = gitlab_api();
    let err = gl
        .check(
            &Method::PUT,
            "/api/v4/projects/1/issues/2",
            &[],
            Some(&json!({"state_event": "closed"})),
            &[],
        )
        .unwrap_err();
    assert!(err.contains("not one of"), "{err}");
    let err = gl
        .check(
            &Method::GET,
            "/api/v4/projects/1/issues",
            &[("updated_after".into(), "yesterday".into())],
            None,
            &[],
        )
        .unwrap_err();
    assert!(err.contains("date-time"), "{err}");
    let err = gl
        .check(
            &Method::POST,
            "/api/v4/projects/1/issues",
            &[],
            Some(&json!({"title": null})),
            &[],
        )
        .unwrap_err();
    assert!(err.contains("required property title is null"), "{err}");
    let zd = zendesk_api();
    let err = zd
        .check(
            &Method::POST,
            "/api/v2/tickets",
            &[],
            Some(&json!({"ticket": {"subject": "s"}})),
            &[],
        )
        .unwrap_err();
    assert!(err.contains("required property comment"), "{err}");
}

#[test]
fn every_shipped_example_passes_the_offline_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let env = [
        ("JIRA_API_TOKEN", "t"),
        ("JIRA_WEBHOOK_SECRET", "s"),
        ("GITHUB_TOKEN", "t"),
        ("GITLAB_TOKEN", "t"),
        ("GITLAB_WEBHOOK_TOKEN", "t"),
        ("ZENDESK_API_TOKEN", "t"),
        ("ZENDESK_WEBHOOK_TOKEN", "t"),
        ("A_JIRA_TOKEN", "t"),
        ("A_WEBHOOK_SECRET", "s"),
        ("B_JIRA_TOKEN", "t"),
        ("B_WEBHOOK_SECRET", "s"),
    ];
    for example in [
        "examples/presets/github.toml",
        "examples/presets/gitlab.toml",
        "examples/presets/zendesk.toml",
        "examples/jira-to-jira/tandem.toml",
    ] {
        check_offline(&root.join(example), &env);
    }
}

#[test]
fn presets_list_names_every_preset() {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["presets", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["redmine", "github", "gitlab", "zendesk"] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} missing from:\n{text}"
        );
    }
}
