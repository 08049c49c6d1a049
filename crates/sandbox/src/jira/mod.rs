//! The Jira sandbox: an in-memory Jira that speaks Cloud REST v3 and Data Center REST v2 on
//! loopback, sends admin webhooks like Jira Cloud, and lets tests act as human users.
//!
//! State lives behind one mutex; every write goes through the same functions whether it comes
//! from HTTP (acting as the API user) or from `user_*` (acting as a human), so both produce
//! the same changelog and webhooks — including the echoes of the engine's own writes.

pub mod adf;
mod api;
mod attachments;
mod dynhook;
pub mod jql;
pub mod model;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::RecordedRequest;
use crate::faults::Faults;
use crate::net::{RequestLog, Running};
use crate::webhook::{Delivery, Dispatcher, RetryPolicy, new_delivery_id};
use model::{Api, Comment, FieldDef, History, Issue, Kind, Project, User};

/// Settings of a Jira sandbox.
#[derive(Debug, Clone)]
pub struct JiraSandboxConfig {
    /// Cloud login: `Authorization: Basic base64(email:api_token)`.
    pub email: String,
    pub api_token: String,
    /// Data Center personal access token: `Authorization: Bearer <pat>`.
    pub pat: String,
    /// Projects as (key, name). Each gets the Task, Bug and Story issue types.
    pub projects: Vec<(String, String)>,
    /// Requests per second before answering 429 (None: unlimited).
    pub rate_limit_per_sec: Option<u32>,
    /// How webhook deliveries are retried.
    pub webhook_retry: RetryPolicy,
    /// OAuth 2.0 (3LO) access token: `Authorization: Bearer <oauth_token>`. Works for every
    /// endpoint, and is the only credential the dynamic webhook API (`/rest/api/3/webhook`)
    /// accepts, as in Jira where only Connect and OAuth 2.0 apps may use it.
    pub oauth_token: String,
}

impl Default for JiraSandboxConfig {
    fn default() -> Self {
        Self {
            email: "tandem@example.com".into(),
            api_token: "sandbox-api-token".into(),
            pat: "sandbox-pat".into(),
            projects: vec![("TEST".into(), "Test".into())],
            rate_limit_per_sec: None,
            webhook_retry: RetryPolicy::default(),
            oauth_token: "sandbox-oauth-token".into(),
        }
    }
}

/// An error answer in Jira's `ErrorCollection` shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub messages: Vec<String>,
    pub errors: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            messages: vec![message.into()],
            errors: Map::new(),
        }
    }
    pub fn fields(errors: Map<String, Value>) -> Self {
        Self {
            status: 400,
            messages: vec![],
            errors,
        }
    }
    pub fn not_found() -> Self {
        Self::new(
            404,
            "Issue does not exist or you do not have permission to see it.",
        )
    }
    pub fn body(&self) -> Value {
        json!({ "errorMessages": self.messages, "errors": self.errors })
    }
}

/// A registered admin webhook.
#[derive(Debug, Clone)]
pub(crate) struct HookReg {
    pub id: u64,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub jql: Option<String>,
    pub filter: Option<jql::Query>,
    pub secret: Option<String>,
    pub exclude_body: bool,
    pub updated: DateTime<Utc>,
}

/// Mutable state of the sandbox.
pub(crate) struct State {
    pub projects: Vec<Project>,
    pub users: Vec<User>,
    pub issues: BTreeMap<u64, Issue>,
    pub keys: HashMap<String, u64>,
    next_issue_id: u64,
    counters: HashMap<String, u64>,
    next_comment_id: u64,
    next_history_id: u64,
    pub hooks: Vec<HookReg>,
    next_hook_id: u64,
    last_time: DateTime<Utc>,
    pub rate: Burst,
    /// Dynamic (app) webhooks registered through `/rest/api/3/webhook`.
    pub dyn_hooks: Vec<dynhook::DynHook>,
    pub next_dyn_hook_id: u64,
    /// How far the sandbox clock runs ahead of the wall clock (see `advance_clock`).
    clock_offset: chrono::Duration,
    /// The issues' files.
    pub(crate) attachments: attachments::Attachments,
}

/// A fixed one-second window counting requests against the burst budget.
#[derive(Default)]
pub(crate) struct Burst {
    second: i64,
    count: u32,
}

impl Burst {
    /// Count one request: `Some(remaining budget)` when admitted, `None` when over `limit`.
    pub fn admit(&mut self, limit: u32) -> Option<u32> {
        let now = Utc::now().timestamp();
        if now != self.second {
            self.second = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        (self.count <= limit).then(|| limit - self.count)
    }
}

impl State {
    /// Look an issue up by id or key; keys are matched case-insensitively like Jira.
    pub fn find(&self, key_or_id: &str) -> Option<u64> {
        if let Ok(id) = key_or_id.parse::<u64>() {
            return self.issues.contains_key(&id).then_some(id);
        }
        self.keys.get(&key_or_id.to_ascii_uppercase()).copied()
    }

    /// The sandbox's "now": the wall clock plus the offset tests added with `advance_clock`.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    /// A strictly increasing clock, so `ORDER BY updated` and cursors never see ties that
    /// reorder edits made in the same millisecond.
    fn tick(&mut self) -> DateTime<Utc> {
        let now = chrono::SubsecRound::trunc_subsecs(self.now(), 3);
        let t = if now > self.last_time {
            now
        } else {
            self.last_time + chrono::Duration::milliseconds(1)
        };
        self.last_time = t;
        t
    }

    pub fn api_user(&self) -> User {
        self.users[0].clone()
    }
    pub fn human(&self) -> User {
        self.users[1].clone()
    }

    pub fn jql_ctx<'a>(&'a self, keys: &'a dyn Fn(&str) -> bool, current: &'a str) -> jql::Ctx<'a> {
        jql::Ctx {
            projects: &self.projects,
            users: &self.users,
            now: self.now(),
            current_user: current,
            keys,
        }
    }
}

pub(crate) struct Inner {
    pub cfg: JiraSandboxConfig,
    pub base: String,
    state: Mutex<State>,
    dispatcher: Dispatcher,
    pub faults: Faults,
    pub log: RequestLog,
}

type HmacSha256 = Hmac<Sha256>;

/// Sign a webhook body like Jira: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty tag anyway.
    match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// What a change did, for the webhook.
pub(crate) enum Event<'a> {
    Created,
    Updated {
        history: &'a History,
        kind: &'static str,
    },
    /// A comment was added, edited or deleted (the comment as it was when deleted).
    Comment(&'a Comment, CommentChange),
    /// A file was attached (`added`) or removed; `history` is its changelog entry.
    Attachment {
        attachment: &'a Value,
        added: bool,
        history: &'a History,
    },
}

/// What happened to a comment, for its webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommentChange {
    Created,
    Updated,
    Deleted,
}

impl CommentChange {
    /// The admin webhook event (`comment_created` …).
    fn webhook_event(self) -> &'static str {
        match self {
            CommentChange::Created => "comment_created",
            CommentChange::Updated => "comment_updated",
            CommentChange::Deleted => "comment_deleted",
        }
    }
    /// The `issue_event_type_name` of the `jira:issue_updated` Jira sends alongside.
    fn issue_event_type(self) -> &'static str {
        match self {
            CommentChange::Created => "issue_commented",
            CommentChange::Updated => "issue_comment_edited",
            CommentChange::Deleted => "issue_comment_deleted",
        }
    }
}

impl Inner {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Render an issue for the wire.
    pub fn bean(
        &self,
        st: &State,
        issue: &Issue,
        api: Api,
        select: &dyn Fn(&str) -> bool,
        expand: &[String],
    ) -> Value {
        let mut fields = issue.render_fields(select, &self.base, api, &st.users);
        if select("attachment") {
            let list: Vec<Value> = st
                .attachments
                .of(issue.id)
                .iter()
                .map(|a| a.render(&self.base, api))
                .collect();
            fields.insert("attachment".into(), Value::Array(list));
        }
        let mut bean = json!({
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": issue.id.to_string(),
            "self": issue.self_url(&self.base, api),
            "key": issue.key,
        });
        let has = |x: &str| expand.iter().any(|e| e.eq_ignore_ascii_case(x));
        if has("names") {
            let names: Map<String, Value> = fields
                .keys()
                .map(|k| {
                    let name = model::field(k).map(|f| f.name).unwrap_or("Comment");
                    (k.clone(), json!(name))
                })
                .collect();
            bean["names"] = Value::Object(names);
        }
        if has("schema") {
            let schema: Map<String, Value> = fields
                .keys()
                .filter_map(|k| model::field(k).map(|f| (k.clone(), f.schema())))
                .collect();
            bean["schema"] = Value::Object(schema);
        }
        if has("renderedFields") {
            let mut rendered = Map::new();
            if let Some(doc) = issue.fields.get("description") {
                rendered.insert("description".into(), json!(adf::to_html(doc)));
            }
            bean["renderedFields"] = Value::Object(rendered);
        }
        if has("changelog") {
            bean["changelog"] = issue.changelog(&self.base, api);
        }
        if has("transitions") {
            bean["transitions"] = json!(self.transitions(issue, api, false));
        }
        bean["fields"] = Value::Object(fields);
        bean
    }

    /// The transitions the workflow offers from the issue's current status (an
    /// `IssueTransition` each). With `with_fields` (`expand=transitions.fields`) each carries
    /// the fields of its screen, required ones marked, as Jira describes them.
    pub fn transitions(&self, issue: &Issue, api: Api, with_fields: bool) -> Vec<Value> {
        let p = api.prefix();
        model::transitions_from(issue.status().id)
            .filter_map(|t| {
                let to = model::status(t.to)?;
                let mut v = json!({
                    "id": t.id,
                    "name": t.name,
                    "to": model::render_status(to, &self.base, p),
                    "hasScreen": !t.required.is_empty(),
                    "isGlobal": false,
                    "isInitial": false,
                    "isAvailable": true,
                    "isConditional": false,
                    "looped": false,
                });
                if with_fields {
                    let fields: Map<String, Value> = t
                        .required
                        .iter()
                        .filter_map(|id| model::field(id))
                        .map(|f| {
                            let allowed = match f.kind {
                                Kind::Resolution => vec![json!({
                                    "self": format!("{}{p}/resolution/{}", self.base, model::RESOLUTION_DONE.0),
                                    "id": model::RESOLUTION_DONE.0,
                                    "name": model::RESOLUTION_DONE.1,
                                })],
                                _ => Vec::new(),
                            };
                            let meta = json!({
                                "key": f.id,
                                "name": f.name,
                                "required": true,
                                "schema": f.schema(),
                                "operations": ["set"],
                                "allowedValues": allowed,
                            });
                            (f.id.to_string(), meta)
                        })
                        .collect();
                    v["fields"] = Value::Object(fields);
                }
                Some(v)
            })
            .collect()
    }

    /// Validate `fields`/`update` of a create or edit body and return the new internal value
    /// of every field it names, or Jira's 400.
    fn plan(
        &self,
        st: &State,
        api: Api,
        body: &Value,
        current: Option<&Issue>,
    ) -> Result<Vec<(&'static FieldDef, Value)>, ApiError> {
        let creating = current.is_none();
        if !body.is_object() {
            return Err(ApiError::new(
                400,
                "Can not deserialize instance of IssueUpdateDetails: the body must be a JSON object.",
            ));
        }
        let empty = Map::new();
        let fields = match body.get("fields") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(ApiError::new(400, "'fields' must be an object.")),
        };
        let update = match body.get("update") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(ApiError::new(400, "'update' must be an object.")),
        };
        let mut errors = Map::new();
        let mut out: Vec<(&'static FieldDef, Value)> = Vec::new();
        let settable = |k: &str| -> Option<&'static FieldDef> {
            model::field(k).filter(|f| f.editable || (creating && f.id == "project"))
        };
        for (k, v) in fields {
            if update.contains_key(k) {
                errors.insert(
                    k.clone(),
                    json!(format!(
                        "Field '{k}' cannot be set in both 'fields' and 'update'."
                    )),
                );
                continue;
            }
            if creating && k == "project" {
                continue; // handled by the caller
            }
            let Some(def) = settable(k) else {
                errors.insert(k.clone(), json!(model::cannot_set(k)));
                continue;
            };
            match model::parse_input(def, v, api, &st.users) {
                Ok(val) => out.push((def, val)),
                Err(msg) => {
                    errors.insert(k.clone(), json!(msg));
                }
            }
        }
        for (k, ops) in update {
            let Some(def) = settable(k) else {
                errors.insert(k.clone(), json!(model::cannot_set(k)));
                continue;
            };
            let mut value = current.map(|i| i.get(k).clone()).unwrap_or(Value::Null);
            let Some(ops) = ops.as_array() else {
                errors.insert(k.clone(), json!("Operations must be an array."));
                continue;
            };
            for op in ops {
                let Some((verb, arg)) = op.as_object().and_then(|o| o.iter().next()) else {
                    errors.insert(k.clone(), json!("Each operation must be an object."));
                    break;
                };
                let result = match (verb.as_str(), def.kind) {
                    ("set", _) => model::parse_input(def, arg, api, &st.users),
                    ("add", Kind::Labels) => model::label(arg).map(|l| {
                        let mut list = value.as_array().cloned().unwrap_or_default();
                        if !list.contains(&json!(l)) {
                            list.push(json!(l));
                        }
                        json!(list)
                    }),
                    ("remove", Kind::Labels) => model::label(arg).map(|l| {
                        let mut list = value.as_array().cloned().unwrap_or_default();
                        list.retain(|x| x != &json!(l));
                        json!(list)
                    }),
                    (verb, _) => Err(format!("Field '{k}' does not support operation '{verb}'.")),
                };
                match result {
                    Ok(v) => value = v,
                    Err(msg) => {
                        errors.insert(k.clone(), json!(msg));
                        break;
                    }
                }
            }
            out.push((def, value));
        }
        let summary_missing = match out.iter().find(|(d, _)| d.id == "summary") {
            Some((_, v)) => v.is_null(),
            None => creating,
        };
        if summary_missing && !errors.contains_key("summary") {
            errors.insert(
                "summary".into(),
                json!("You must specify a summary of the issue."),
            );
        }
        if creating
            && !out.iter().any(|(d, _)| d.id == "issuetype")
            && !errors.contains_key("issuetype")
        {
            errors.insert("issuetype".into(), json!("Specify an issue type"));
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(ApiError::fields(errors))
        }
    }

    /// Create an issue as `actor`. Returns (id, key).
    pub fn create_issue(
        &self,
        actor: &User,
        api: Api,
        body: &Value,
    ) -> Result<(u64, String), ApiError> {
        let mut st = self.lock();
        let project_ref = body.get("fields").and_then(|f| f.get("project"));
        let project = project_ref.and_then(|p| {
            let key = p.get("key").and_then(Value::as_str);
            let id = p.get("id").and_then(Value::as_str);
            st.projects
                .iter()
                .find(|pr| Some(pr.key.as_str()) == key || Some(pr.id.as_str()) == id)
                .cloned()
        });
        let plan = self.plan(&st, api, body, None);
        let (project, plan) = match (project, plan) {
            (Some(p), Ok(plan)) => (p, plan),
            (None, plan) => {
                let mut errors = plan.err().map(|e| e.errors).unwrap_or_default();
                errors.insert("project".into(), json!("valid project is required"));
                return Err(ApiError::fields(errors));
            }
            (Some(_), Err(e)) => return Err(e),
        };
        let now = st.tick();
        let id = st.next_issue_id;
        st.next_issue_id += 1;
        let n = st.counters.entry(project.key.clone()).or_insert(0);
        *n += 1;
        let key = format!("{}-{}", project.key, n);
        let mut fields = BTreeMap::new();
        fields.insert("status".to_string(), json!(model::STATUSES[0].id));
        fields.insert("priority".to_string(), json!("3"));
        fields.insert("labels".to_string(), json!([]));
        fields.insert("reporter".to_string(), json!(actor.account_id));
        for (def, v) in plan {
            fields.insert(def.id.to_string(), v);
        }
        let issue = Issue {
            id,
            key: key.clone(),
            project,
            fields,
            created: now,
            updated: now,
            comments: vec![],
            histories: vec![],
        };
        st.keys.insert(key.to_ascii_uppercase(), id);
        st.issues.insert(id, issue);
        if let Some(issue) = st.issues.get(&id) {
            self.fire(&st, actor, issue, Event::Created);
        }
        Ok((id, key))
    }

    /// Apply field changes to an issue as `actor`, record them and fire the webhook.
    fn apply(
        &self,
        st: &mut State,
        actor: &User,
        id: u64,
        changes: Vec<(&'static FieldDef, Value)>,
        kind: &'static str,
    ) {
        let users = st.users.clone();
        let Some(issue) = st.issues.get(&id) else {
            return;
        };
        let mut items = Vec::new();
        let mut real = Vec::new();
        for (def, new) in changes {
            let old = issue.get(def.id);
            if !model::same(def, old, &new) {
                items.push(model::change_item(def, old, &new, &users));
                real.push((def, new));
            }
        }
        if items.is_empty() {
            return;
        }
        let now = st.tick();
        let hid = st.next_history_id;
        st.next_history_id += 1;
        let Some(issue) = st.issues.get_mut(&id) else {
            return;
        };
        for (def, new) in real {
            issue.fields.insert(def.id.to_string(), new);
        }
        issue.updated = now;
        let kind =
            if kind == "issue_updated" && items.len() == 1 && items[0]["fieldId"] == "assignee" {
                "issue_assigned"
            } else {
                kind
            };
        issue.histories.push(History {
            id: hid,
            author: actor.clone(),
            created: now,
            items,
        });
        let st = &*st;
        if let Some(issue) = st.issues.get(&id)
            && let Some(history) = issue.histories.last()
        {
            self.fire(st, actor, issue, Event::Updated { history, kind });
        }
    }

    pub fn edit_issue(
        &self,
        actor: &User,
        api: Api,
        key: &str,
        body: &Value,
    ) -> Result<(), ApiError> {
        let mut st = self.lock();
        let id = st.find(key).ok_or_else(ApiError::not_found)?;
        let changes = {
            let issue = st.issues.get(&id).ok_or_else(ApiError::not_found)?;
            self.plan(&st, api, body, Some(issue))?
        };
        self.apply(&mut st, actor, id, changes, "issue_updated");
        Ok(())
    }

    pub fn do_transition(
        &self,
        actor: &User,
        api: Api,
        key: &str,
        body: &Value,
    ) -> Result<(), ApiError> {
        let mut st = self.lock();
        let id = st.find(key).ok_or_else(ApiError::not_found)?;
        let tid = match body.get("transition").and_then(|t| t.get("id")) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(ApiError::new(400, "Missing 'transition' identifier"));
            }
        };
        let (target, resolution, mut changes) = {
            let issue = st.issues.get(&id).ok_or_else(ApiError::not_found)?;
            let transition = model::transitions_from(issue.status().id)
                .find(|t| t.id == tid)
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        format!("Transition id '{tid}' is not valid for this issue."),
                    )
                })?;
            let target = model::status(transition.to).ok_or_else(ApiError::not_found)?;
            // The screen's fields: a required one left out is Jira's 400, keyed by the field.
            let mut extra = body.clone();
            let given = extra
                .get_mut("fields")
                .and_then(Value::as_object_mut)
                .and_then(|f| f.remove("resolution"));
            let resolution = match (transition.required.contains(&"resolution"), given) {
                (true, None | Some(Value::Null)) => {
                    let mut e = Map::new();
                    e.insert("resolution".into(), json!("Resolution is required."));
                    return Err(ApiError::fields(e));
                }
                (true, Some(v)) => {
                    let named = ["id", "name"].iter().any(|k| {
                        v.get(k).and_then(Value::as_str).is_some_and(|s| {
                            s == model::RESOLUTION_DONE.0
                                || s.eq_ignore_ascii_case(model::RESOLUTION_DONE.1)
                        })
                    });
                    if !named {
                        let mut e = Map::new();
                        e.insert(
                            "resolution".into(),
                            json!(format!(
                                "Could not find valid 'id' or 'name' in resolution object."
                            )),
                        );
                        return Err(ApiError::fields(e));
                    }
                    json!(model::RESOLUTION_DONE.0)
                }
                // Not on this transition's screen: Jira refuses it.
                (false, Some(_)) => {
                    let mut e = Map::new();
                    e.insert(
                        "resolution".into(),
                        json!("Field 'resolution' cannot be set. It is not on the appropriate screen, or unknown."),
                    );
                    return Err(ApiError::fields(e));
                }
                // Leaving Done clears the resolution, as the default workflow's reopen does.
                (false, None) => Value::Null,
            };
            if let Some(u) = extra.get_mut("update").and_then(Value::as_object_mut) {
                u.remove("comment");
            }
            let has_extra = ["fields", "update"].iter().any(|k| {
                extra
                    .get(k)
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
            });
            let changes = if has_extra {
                self.plan(&st, api, &extra, Some(issue))?
            } else {
                vec![]
            };
            (target, resolution, changes)
        };
        if let Some(def) = model::field("status") {
            changes.push((def, json!(target.id)));
        }
        if let Some(def) = model::field("resolution") {
            changes.push((def, resolution));
        }
        self.apply(&mut st, actor, id, changes, "issue_generic");
        Ok(())
    }

    /// Add a comment as `actor` from a `CommentRequest` body (`body`, optional `properties`
    /// and `visibility`); fires `comment_created`. Answers the rendered comment, with its
    /// properties when `expand` asks for them.
    pub fn add_comment(
        &self,
        actor: &User,
        api: Api,
        key: &str,
        body: &Value,
        expand: bool,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let id = st.find(key).ok_or_else(ApiError::not_found)?;
        let doc = comment_doc(api, body)?;
        let properties = comment_properties(body)?;
        let visibility = comment_visibility(body)?;
        let now = st.tick();
        let cid = st.next_comment_id;
        st.next_comment_id += 1;
        let mut comment = Comment {
            id: cid,
            author: actor.clone(),
            update_author: actor.clone(),
            body: doc,
            created: now,
            updated: now,
            properties: Vec::new(),
            visibility,
        };
        comment.set_properties(properties);
        let rendered = comment.render_with(&self.base, api, id, expand);
        let Some(issue) = st.issues.get_mut(&id) else {
            return Err(ApiError::not_found());
        };
        issue.comments.push(comment);
        issue.updated = now;
        let st = &*st;
        if let Some(issue) = st.issues.get(&id)
            && let Some(c) = issue.comments.last()
        {
            self.fire(st, actor, issue, Event::Comment(c, CommentChange::Created));
        }
        Ok(rendered)
    }

    /// One comment of an issue, rendered (`GET …/comment/{id}`).
    pub fn get_comment(
        &self,
        api: Api,
        key: &str,
        comment_id: &str,
        expand: bool,
    ) -> Result<Value, ApiError> {
        let st = self.lock();
        let id = st.find(key).ok_or_else(ApiError::not_found)?;
        let issue = st.issues.get(&id).ok_or_else(ApiError::not_found)?;
        let pos = comment_position(issue, comment_id)?;
        Ok(issue.comments[pos].render_with(&self.base, api, id, expand))
    }

    /// Rewrite a comment's body as `actor` (`PUT …/comment/{id}`); properties named in the
    /// body are set, the others kept. Fires `comment_updated` when anything changed.
    pub fn edit_comment(
        &self,
        actor: &User,
        api: Api,
        key: &str,
        comment_id: &str,
        body: &Value,
        expand: bool,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let id = st.find(key).ok_or_else(ApiError::not_found)?;
        let pos = {
            let issue = st.issues.get(&id).ok_or_else(ApiError::not_found)?;
            comment_position(issue, comment_id)?
        };
        let doc = comment_doc(api, body)?;
        let properties = comment_properties(body)?;
        let visibility = comment_visibility(body)?;
        let now = st.tick();
        let Some(issue) = st.issues.get_mut(&id) else {
            return Err(ApiError::not_found());
        };
        let c = &mut issue.comments[pos];
        let before = (c.body.clone(), c.properties.clone(), c.visibility.clone());
        c.body = doc;
        c.set_properties(properties);
        if body.get("visibility").is_some() {
            c.visibility = visibility;
        }
        let changed = before != (c.body.clone(), c.properties.clone(), c.visibility.clone());
        if changed {
            c.updated = now;
            c.update_author = actor.clone();
            issue.updated = now;
        }
        let rendered = issue.comments[pos].render_with(&self.base, api, id, expand);
        let st = &*st;
        if changed && let Some(issue) = st.issues.get(&id) {
            let c = &issue.comments[pos];
            self.fire(st, actor, issue, Event::Comment(c, CommentChange::Updated));
        }
        Ok(rendered)
    }

    /// Delete a comment as `actor` (`DELETE …/comment/{id}`); fires `comment_deleted`.
    pub fn delete_comment(
        &self,
        actor: &User,
        key: &str,
        comment_id: &str,
    ) -> Result<(), ApiError> {
        let mut st = self.lock();
        let id = st.find(key).ok_or_else(ApiError::not_found)?;
        let pos = {
            let issue = st.issues.get(&id).ok_or_else(ApiError::not_found)?;
            comment_position(issue, comment_id)?
        };
        let now = st.tick();
        let Some(issue) = st.issues.get_mut(&id) else {
            return Err(ApiError::not_found());
        };
        let removed = issue.comments.remove(pos);
        issue.updated = now;
        let st = &*st;
        if let Some(issue) = st.issues.get(&id) {
            self.fire(
                st,
                actor,
                issue,
                Event::Comment(&removed, CommentChange::Deleted),
            );
        }
        Ok(())
    }

    /// Register an admin webhook; returns its REST representation.
    pub fn register_hook(&self, body: &Value) -> Result<Value, ApiError> {
        let url = body
            .get("url")
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .ok_or_else(|| ApiError::new(400, "A valid 'url' is required."))?;
        let events: Vec<String> = match body.get("events") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(_) => return Err(ApiError::new(400, "'events' must be an array of strings.")),
        };
        let jql_text = body
            .get("filters")
            .and_then(|f| f.get("issue-related-events-section"))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string);
        let mut st = self.lock();
        let filter = match &jql_text {
            Some(text) => {
                let keys = |_: &str| true;
                let q = jql::parse(text).map_err(|e| ApiError::new(400, e))?;
                let ctx = st.jql_ctx(&keys, "");
                jql::validate(&q, &ctx).map_err(|errs| ApiError {
                    status: 400,
                    messages: errs,
                    errors: Map::new(),
                })?;
                Some(q)
            }
            None => None,
        };
        let id = st.next_hook_id;
        st.next_hook_id += 1;
        let now = st.tick();
        let hook = HookReg {
            id,
            name: body
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("webhook")
                .to_string(),
            url: url.to_string(),
            events,
            jql: jql_text,
            filter,
            secret: body
                .get("secret")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            exclude_body: body
                .get("excludeBody")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            updated: now,
        };
        let out = self.hook_json(&hook);
        st.hooks.push(hook);
        Ok(out)
    }

    pub fn hook_json(&self, h: &HookReg) -> Value {
        let mut filters = Map::new();
        if let Some(j) = &h.jql {
            filters.insert("issue-related-events-section".into(), json!(j));
        }
        // The secret is write-only, as in Jira: it is never echoed back.
        json!({
            "self": format!("{}/rest/webhooks/1.0/webhook/{}", self.base, h.id),
            "name": h.name,
            "url": h.url,
            "events": h.events,
            "filters": filters,
            "excludeBody": h.exclude_body,
            "enabled": true,
            "lastUpdatedUser": "admin",
            "lastUpdatedDisplayName": "Administrator",
            "lastUpdated": h.updated.timestamp_millis(),
        })
    }

    /// Queue the webhooks that `event` on `issue` triggers: admin webhooks (one delivery per
    /// hook, signed when the hook has a secret) and dynamic app webhooks (one unsigned
    /// delivery per URL, listing every matched hook in `matchedWebhookIds`).
    fn fire(&self, st: &State, actor: &User, issue: &Issue, event: Event) {
        let keys = |k: &str| st.keys.contains_key(&k.to_ascii_uppercase());
        let ctx = st.jql_ctx(&keys, &actor.account_id);
        let base = &self.base;
        let all = |_: &str| true;
        let full_issue = || {
            json!({
                "id": issue.id.to_string(),
                "self": issue.self_url(base, Api::V2),
                "key": issue.key,
                "fields": issue.render_fields(&all, base, Api::V2, &st.users),
            })
        };
        let stamp = st.now().timestamp_millis();
        let user = actor.render(base, Api::V2);
        // (event name, body without matchedWebhookIds, changed field ids when there is a
        // changelog)
        let mut candidates: Vec<(&'static str, Value, Option<Vec<String>>)> = Vec::new();
        match &event {
            // Its deliveries are built below.
            Event::Attachment { .. } => {}
            Event::Created => candidates.push((
                "jira:issue_created",
                json!({
                    "timestamp": stamp,
                    "webhookEvent": "jira:issue_created",
                    "issue_event_type_name": "issue_created",
                    "user": user,
                    "issue": full_issue(),
                }),
                None,
            )),
            Event::Updated { history, kind } => {
                let changed = history
                    .items
                    .iter()
                    .filter_map(|i| i.get("fieldId").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect();
                candidates.push((
                    "jira:issue_updated",
                    json!({
                        "timestamp": stamp,
                        "webhookEvent": "jira:issue_updated",
                        "issue_event_type_name": kind,
                        "user": user,
                        "issue": full_issue(),
                        "changelog": { "id": history.id.to_string(), "items": history.items },
                    }),
                    Some(changed),
                ));
            }
            Event::Comment(c, change) => {
                let comment = c.render(base, Api::V2, issue.id);
                let subset = |k: &str| {
                    [
                        "summary",
                        "issuetype",
                        "project",
                        "assignee",
                        "priority",
                        "status",
                    ]
                    .contains(&k)
                };
                let name = change.webhook_event();
                candidates.push((
                    name,
                    json!({
                        "timestamp": stamp,
                        "webhookEvent": name,
                        "comment": comment,
                        "issue": {
                            "id": issue.id.to_string(),
                            "self": issue.self_url(base, Api::V2),
                            "key": issue.key,
                            "fields": issue.render_fields(&subset, base, Api::V2, &st.users),
                        },
                    }),
                    None,
                ));
                // Jira also tells issue webhooks, with the comment and no changelog.
                // (Attachments: below.)
                candidates.push((
                    "jira:issue_updated",
                    json!({
                        "timestamp": stamp,
                        "webhookEvent": "jira:issue_updated",
                        "issue_event_type_name": change.issue_event_type(),
                        "user": user,
                        "issue": full_issue(),
                        "comment": comment,
                    }),
                    None,
                ));
            }
        }
        if let Event::Attachment {
            attachment,
            added,
            history,
        } = &event
        {
            let name = if *added {
                "attachment_created"
            } else {
                "attachment_deleted"
            };
            candidates.push((
                name,
                json!({
                    "timestamp": stamp,
                    "webhookEvent": name,
                    "attachment": attachment,
                }),
                None,
            ));
            candidates.push((
                "jira:issue_updated",
                json!({
                    "timestamp": stamp,
                    "webhookEvent": "jira:issue_updated",
                    "issue_event_type_name": "issue_updated",
                    "user": user,
                    "issue": full_issue(),
                    "changelog": { "id": history.id.to_string(), "items": history.items },
                }),
                Some(vec!["attachment".to_string()]),
            ));
        }
        let headers = || {
            vec![
                (
                    "X-Atlassian-Webhook-Identifier".to_string(),
                    new_delivery_id(),
                ),
                (
                    "X-Atlassian-Webhook-Flow".to_string(),
                    "Primary".to_string(),
                ),
            ]
        };
        for hook in &st.hooks {
            let wants = |ev: &str| hook.events.is_empty() || hook.events.iter().any(|e| e == ev);
            if let Some(f) = hook.filter.as_ref().and_then(|q| q.filter.as_ref())
                && !jql::matches(f, issue, &ctx)
            {
                continue;
            }
            for (name, body, _) in &candidates {
                if !wants(name) {
                    continue;
                }
                let body = if hook.exclude_body {
                    Vec::new()
                } else {
                    let mut body = body.clone();
                    body["matchedWebhookIds"] = json!([hook.id]);
                    serde_json::to_vec(&body).unwrap_or_default()
                };
                let mut headers = headers();
                if let Some(secret) = &hook.secret {
                    headers.push(("X-Hub-Signature".to_string(), sign(secret, &body)));
                }
                self.dispatcher.send(Delivery {
                    key: format!("{}/{}", hook.id, issue.id),
                    url: hook.url.clone(),
                    headers,
                    retry_header: Some("X-Atlassian-Webhook-Retry"),
                    body,
                });
            }
        }
        let now = st.now();
        for (name, body, changed) in &candidates {
            for (url, ids) in dynhook::matching(st, now, name, changed.as_deref(), issue, &ctx) {
                let mut body = body.clone();
                body["matchedWebhookIds"] = json!(ids);
                // App webhooks are not HMAC-signed.
                self.dispatcher.send(Delivery {
                    key: format!("app:{url}/{}", issue.id),
                    url,
                    headers: headers(),
                    retry_header: Some("X-Atlassian-Webhook-Retry"),
                    body: serde_json::to_vec(&body).unwrap_or_default(),
                });
            }
        }
    }
}

/// The stored (ADF) body of a `CommentRequest`, or Jira's 400.
fn comment_doc(api: Api, body: &Value) -> Result<Value, ApiError> {
    let refuse = |msg: &str| {
        let mut e = Map::new();
        e.insert("comment".into(), json!(msg));
        Err(ApiError::fields(e))
    };
    if !body.is_object() {
        return Err(ApiError::new(
            400,
            "Can not deserialize instance of Comment: the body must be a JSON object.",
        ));
    }
    match (api, body.get("body")) {
        (Api::V3, Some(doc)) if adf::is_doc(doc) => Ok(doc.clone()),
        (Api::V2, Some(Value::String(s))) if !s.trim().is_empty() => Ok(adf::from_wiki(s)),
        (Api::V3, Some(_)) => refuse(
            "Comment body is not valid! Operation value must be an Atlassian Document (see the Atlassian Document Format)",
        ),
        _ => refuse("Comment body can not be empty!"),
    }
}

/// Longest value Jira keeps in one entity property (32 KiB of JSON).
const PROPERTY_VALUE_MAX: usize = 32_768;

/// The `properties` of a `CommentRequest` (`[{"key", "value"}]`), or Jira's 400.
fn comment_properties(body: &Value) -> Result<Vec<(String, Value)>, ApiError> {
    let list = match body.get("properties") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::new(400, "'properties' must be an array.")),
    };
    let mut out = Vec::new();
    for p in list {
        let key = match p.get("key") {
            Some(Value::String(k)) if !k.trim().is_empty() && k.chars().count() <= 255 => k,
            Some(Value::String(k)) if !k.trim().is_empty() => {
                return Err(ApiError::new(
                    400,
                    "The property key can not be longer than 255 characters.",
                ));
            }
            _ => return Err(ApiError::new(400, "The property key can not be empty.")),
        };
        let Some(value) = p.get("value") else {
            return Err(ApiError::new(
                400,
                format!("The property '{key}' has no value."),
            ));
        };
        if value.to_string().len() > PROPERTY_VALUE_MAX {
            return Err(ApiError::new(
                400,
                format!("The property '{key}' is too big: at most 32768 bytes of JSON."),
            ));
        }
        out.push((key.clone(), value.clone()));
    }
    Ok(out)
}

/// The `visibility` of a `CommentRequest` (a group or role), or Jira's 400.
fn comment_visibility(body: &Value) -> Result<Option<Value>, ApiError> {
    match body.get("visibility") {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(o))
            if matches!(
                o.get("type").and_then(Value::as_str),
                Some("group" | "role")
            ) && (o.get("value").is_some_and(Value::is_string)
                || o.get("identifier").is_some_and(Value::is_string)) =>
        {
            Ok(Some(v.clone()))
        }
        Some(_) => {
            let mut e = Map::new();
            e.insert(
                "commentLevel".into(),
                json!("You are currently not a member of the project role or group specified."),
            );
            Err(ApiError::fields(e))
        }
    }
}

/// Where comment `comment_id` sits in the issue's list, or Jira's 404.
fn comment_position(issue: &Issue, comment_id: &str) -> Result<usize, ApiError> {
    comment_id
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|cid| issue.comments.iter().position(|c| c.id == cid))
        .ok_or_else(|| {
            ApiError::new(
                404,
                format!("Can not find a comment for the id: {comment_id}."),
            )
        })
}

/// A running Jira sandbox.
pub struct JiraSandbox {
    inner: Arc<Inner>,
    server: Running,
}

impl JiraSandbox {
    /// Start on a free loopback port.
    pub async fn start(cfg: JiraSandboxConfig) -> anyhow::Result<JiraSandbox> {
        Self::start_on(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Start on `addr`.
    pub async fn start_on(cfg: JiraSandboxConfig, addr: SocketAddr) -> anyhow::Result<JiraSandbox> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let base = format!("http://{local}");
        let projects = cfg
            .projects
            .iter()
            .enumerate()
            .map(|(i, (key, name))| Project {
                id: (10000 + i).to_string(),
                key: key.to_ascii_uppercase(),
                name: name.clone(),
            })
            .collect();
        let users = vec![
            User {
                account_id: "712020:5f0c7b0e-sandbox-api-user".into(),
                name: cfg.email.split('@').next().unwrap_or("api").to_string(),
                display_name: "Tandem Integration".into(),
                email: cfg.email.clone(),
            },
            User {
                account_id: "5b10ac8d82e05b22cc7d4ef5".into(),
                name: "alice".into(),
                display_name: "Alice Human".into(),
                email: "alice@example.com".into(),
            },
            User {
                account_id: "5b10a2844c20165700ede21g".into(),
                name: "bob".into(),
                display_name: "Bob Human".into(),
                email: "bob@example.com".into(),
            },
        ];
        let faults = Faults::new();
        let state = State {
            projects,
            users,
            issues: BTreeMap::new(),
            keys: HashMap::new(),
            next_issue_id: 10000,
            counters: HashMap::new(),
            next_comment_id: 10000,
            next_history_id: 10000,
            hooks: vec![],
            next_hook_id: 1,
            last_time: chrono::SubsecRound::trunc_subsecs(Utc::now(), 3),
            rate: Burst::default(),
            dyn_hooks: vec![],
            next_dyn_hook_id: 10000,
            clock_offset: chrono::Duration::zero(),
            attachments: Default::default(),
        };
        let inner = Arc::new(Inner {
            dispatcher: Dispatcher::start(cfg.webhook_retry.clone(), faults.clone()),
            cfg,
            base,
            state: Mutex::new(state),
            faults,
            log: RequestLog::default(),
        });
        let router = api::router(inner.clone());
        let server = crate::net::serve(router, listener)?;
        Ok(JiraSandbox { inner, server })
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.inner.base.clone()
    }

    /// The fault switches of this sandbox.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// The id of the "External ID" text field.
    pub fn external_id_field(&self) -> &str {
        model::EXTERNAL_ID_FIELD
    }

    /// An issue as `GET /rest/api/3/issue/{key}` would return it (all fields).
    pub fn issue(&self, key_or_id: &str) -> Option<Value> {
        let st = self.inner.lock();
        let id = st.find(key_or_id)?;
        let issue = st.issues.get(&id)?;
        Some(self.inner.bean(&st, issue, Api::V3, &|_| true, &[]))
    }

    /// Every issue, oldest first.
    pub fn issues(&self) -> Vec<Value> {
        let st = self.inner.lock();
        st.issues
            .values()
            .map(|i| self.inner.bean(&st, i, Api::V3, &|_| true, &[]))
            .collect()
    }

    /// Requests received so far, oldest first.
    pub fn request_log(&self) -> Vec<RecordedRequest> {
        self.inner.log.snapshot()
    }

    /// The requests received from the `start`-th on (see [`Self::request_count`]).
    pub fn requests_since(&self, start: usize) -> Vec<RecordedRequest> {
        self.inner.log.since(start)
    }

    /// How many requests were received so far, without copying the log.
    pub fn request_count(&self) -> usize {
        self.inner.log.len()
    }

    /// Comments on an issue in v3 shape (ADF bodies), with their properties, as
    /// `GET /rest/api/3/issue/{key}/comment?expand=properties` lists them.
    pub fn comments(&self, key: &str) -> Vec<Value> {
        let st = self.inner.lock();
        st.find(key)
            .and_then(|id| st.issues.get(&id))
            .map(|i| {
                i.comments
                    .iter()
                    .map(|c| c.render_with(&self.inner.base, Api::V3, i.id, true))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The sandbox user named `user` (login name, account id or display name).
    ///
    /// # Panics
    /// If there is none: a test naming an unknown person is a bug in the test.
    fn person(&self, user: &str) -> User {
        let st = self.inner.lock();
        st.users
            .iter()
            .find(|u| {
                u.name.eq_ignore_ascii_case(user)
                    || u.account_id == user
                    || u.display_name.eq_ignore_ascii_case(user)
            })
            .cloned()
            .unwrap_or_else(|| panic!("no sandbox user `{user}` (try alice or bob)"))
    }

    /// Comment on an issue as `user` (e.g. `"alice"`), with plain text as a person types it.
    /// Fires `comment_created`; answers the comment's id.
    ///
    /// # Panics
    /// If the user or the issue does not exist.
    pub fn user_add_comment(&self, user: &str, key: &str, text: &str) -> String {
        self.user_add_comment_body(user, key, json!({ "body": adf::from_plain(text) }))
    }

    /// Comment on an issue as `user` with a whole v3 `CommentRequest` (ADF `body`, and
    /// `properties` such as JSM's `sd.public.comment` for an internal note). Fires
    /// `comment_created`; answers the comment's id.
    ///
    /// # Panics
    /// If the user or the issue does not exist, or Jira would refuse the body.
    pub fn user_add_comment_body(&self, user: &str, key: &str, body: Value) -> String {
        let who = self.person(user);
        match self.inner.add_comment(&who, Api::V3, key, &body, false) {
            Ok(c) => c["id"].as_str().unwrap_or_default().to_string(),
            Err(e) => panic!("user_add_comment failed: {}", e.body()),
        }
    }

    /// Add a JSM internal note as `user` (the property `sd.public.comment` `{"internal":
    /// true}`, so `jsdPublic` is false). Answers the comment's id.
    pub fn user_add_internal_comment(&self, user: &str, key: &str, text: &str) -> String {
        self.user_add_comment_body(
            user,
            key,
            json!({
                "body": adf::from_plain(text),
                "properties": [{ "key": model::JSM_PUBLIC_PROPERTY, "value": { "internal": true } }],
            }),
        )
    }

    /// Rewrite comment `id` of issue `key` as `user`, with plain text. Fires
    /// `comment_updated` when the text changed.
    ///
    /// # Panics
    /// If the user, the issue or the comment does not exist.
    pub fn user_edit_comment(&self, user: &str, key: &str, id: &str, text: &str) {
        let who = self.person(user);
        let body = json!({ "body": adf::from_plain(text) });
        if let Err(e) = self
            .inner
            .edit_comment(&who, Api::V3, key, id, &body, false)
        {
            panic!("user_edit_comment failed: {}", e.body());
        }
    }

    /// Delete comment `id` of issue `key` as `user`. Fires `comment_deleted`.
    ///
    /// # Panics
    /// If the user, the issue or the comment does not exist.
    pub fn user_delete_comment(&self, user: &str, key: &str, id: &str) {
        let who = self.person(user);
        if let Err(e) = self.inner.delete_comment(&who, key, id) {
            panic!("user_delete_comment failed: {}", e.body());
        }
    }

    /// Create an issue as a human user (v3 field formats; a plain string description is
    /// accepted too). Fires `jira:issue_created`.
    ///
    /// # Panics
    /// If the fields are invalid: this is a test helper and a bad call is a bug in the test.
    pub fn user_create_issue(&self, project: &str, fields: Value) -> String {
        let mut fields = lenient_description(fields);
        if let Some(m) = fields.as_object_mut() {
            m.insert("project".into(), json!({ "key": project }));
            m.entry("issuetype").or_insert(json!({ "name": "Task" }));
        }
        let human = self.inner.lock().human();
        match self
            .inner
            .create_issue(&human, Api::V3, &json!({ "fields": fields }))
        {
            Ok((_, key)) => key,
            Err(e) => panic!("user_create_issue failed: {}", e.body()),
        }
    }

    /// Edit an issue as a human user. Fires `jira:issue_updated` if anything changed.
    /// A `status` entry (a status name) is applied as the matching transition.
    ///
    /// # Panics
    /// If the issue does not exist or the fields are invalid.
    pub fn user_edit_issue(&self, key: &str, fields: Value) {
        let mut fields = lenient_description(fields);
        let human = self.inner.lock().human();
        let status = fields.as_object_mut().and_then(|m| m.remove("status"));
        if let Some(status) = status {
            let name = status
                .get("name")
                .and_then(Value::as_str)
                .or(status.as_str())
                .unwrap_or_default();
            let Some(target) = model::status(name) else {
                panic!("user_edit_issue: no status `{name}`");
            };
            // A person walks the workflow, filling in each screen it shows.
            let from = {
                let st = self.inner.lock();
                st.find(key)
                    .and_then(|id| st.issues.get(&id))
                    .map(|i| i.status().id)
            };
            let path = from.and_then(|f| model::workflow_path(f, target.id));
            for step in path.unwrap_or_default() {
                let mut body = json!({ "transition": { "id": step.id } });
                if step.required.contains(&"resolution") {
                    body["fields"] = json!({ "resolution": { "name": model::RESOLUTION_DONE.1 } });
                }
                if let Err(e) = self.inner.do_transition(&human, Api::V3, key, &body) {
                    panic!(
                        "user_edit_issue: transition {} failed: {}",
                        step.name,
                        e.body()
                    );
                }
            }
        }
        if let Err(e) = self
            .inner
            .edit_issue(&human, Api::V3, key, &json!({ "fields": fields }))
        {
            panic!("user_edit_issue failed: {}", e.body());
        }
    }

    /// Attach a file to an issue as `user` (fires `attachment_created`); answers its id.
    ///
    /// # Panics
    /// If the user or the issue does not exist.
    pub fn user_attach(
        &self,
        user: &str,
        key: &str,
        filename: &str,
        mime: &str,
        data: Vec<u8>,
    ) -> String {
        let who = self.person(user);
        let files = vec![(filename.to_string(), Some(mime.to_string()), data.into())];
        match self.inner.add_attachments(&who, Api::V3, key, files) {
            Ok(v) => v[0]["id"].as_str().unwrap_or_default().to_string(),
            Err(e) => panic!("user_attach failed: {}", e.body()),
        }
    }

    /// Delete an attachment as `user` (fires `attachment_deleted`); false when unknown.
    pub fn user_delete_attachment(&self, user: &str, id: &str) -> bool {
        let who = self.person(user);
        self.inner.delete_attachment(&who, id).is_ok()
    }

    /// The files of an issue as (id, file name, content), oldest first.
    pub fn attachments(&self, key_or_id: &str) -> Vec<(String, String, Vec<u8>)> {
        let st = self.inner.lock();
        let Some(id) = st.find(key_or_id) else {
            return Vec::new();
        };
        st.attachments
            .of(id)
            .iter()
            .map(|a| (a.id.to_string(), a.filename.clone(), a.data.to_vec()))
            .collect()
    }

    /// Register an admin webhook, like `POST /rest/webhooks/1.0/webhook` with all events.
    pub fn register_webhook(&self, url: &str, secret: Option<&str>) {
        let body = json!({
            "name": "sandbox",
            "url": url,
            "events": [
                "jira:issue_created",
                "jira:issue_updated",
                "comment_created",
                "comment_updated",
                "comment_deleted",
                "attachment_created",
                "attachment_deleted",
            ],
            "secret": secret,
        });
        if let Err(e) = self.inner.register_hook(&body) {
            tracing::warn!(error = %e.body(), "register_webhook failed");
        }
    }

    /// Move the sandbox clock forward by `by`: timestamps of later changes, JQL's `now()`,
    /// webhook timestamps and the expiry of dynamic webhooks (30 days after registration or
    /// refresh) all follow it. The wall clock is untouched; the clock never goes back.
    pub fn advance_clock(&self, by: std::time::Duration) {
        // Bounded so that "now" stays far from chrono's limits whatever a test passes.
        let max = chrono::Duration::days(365 * 100);
        let by = chrono::Duration::from_std(by).unwrap_or(max);
        let mut st = self.inner.lock();
        st.clock_offset = st.clock_offset.checked_add(&by).unwrap_or(max).min(max);
    }

    /// The sandbox's current time (the wall clock plus what `advance_clock` added).
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.lock().now()
    }

    /// Stop the server and webhook delivery.
    pub async fn shutdown(self) {
        self.server.stop().await;
    }

    /// Credentials for the CLI banner.
    pub fn config(&self) -> &JiraSandboxConfig {
        &self.inner.cfg
    }
}

/// Let test helpers pass a description as plain text.
fn lenient_description(mut fields: Value) -> Value {
    if let Some(m) = fields.as_object_mut()
        && let Some(Value::String(s)) = m.get("description")
    {
        // What a person types is text, not markup: `*x*` stays two asterisks.
        let doc = adf::from_plain(s);
        m.insert("description".into(), doc);
    }
    fields
}
