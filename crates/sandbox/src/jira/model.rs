//! The Jira sandbox's data model: the fixed field, status, priority and user catalogue, the
//! stored issue, and the two wire representations (REST v3 with ADF, REST v2 / webhooks with
//! wiki strings).
//!
//! Values are stored in one internal form per field kind (ids for priorities, statuses and
//! options, ADF for rich text) and rendered on the way out, as Jira does, so that v2 and v3
//! clients see the same issue in their own dialect.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::adf;

/// Which REST dialect a representation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/rest/api/2`: wiki strings, used by Data Center and by webhooks.
    V2,
    /// `/rest/api/3`: Atlassian Document Format.
    V3,
}

impl Api {
    pub fn prefix(self) -> &'static str {
        match self {
            Api::V2 => "/rest/api/2",
            Api::V3 => "/rest/api/3",
        }
    }
}

/// How a field's value is stored, validated and rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Single-line text (summary, textfield custom fields).
    Text,
    /// Rich text: ADF in v3, wiki in v2.
    RichText,
    Date,
    DateTime,
    Priority,
    Labels,
    Status,
    Resolution,
    User,
    /// Single select custom field.
    Select,
    Number,
    Project,
    IssueType,
}

/// One field of the catalogue.
#[derive(Debug)]
pub struct FieldDef {
    pub id: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    /// Settable through create/edit (status only moves through transitions).
    pub editable: bool,
    /// JQL names besides the display name.
    pub clause_names: &'static [&'static str],
    /// For select fields: (option id, value).
    pub options: &'static [(&'static str, &'static str)],
    /// Plugin type key for custom fields, in `schema.custom`.
    pub custom_type: Option<&'static str>,
}

impl FieldDef {
    pub fn is_custom(&self) -> bool {
        self.custom_type.is_some()
    }
    /// The numeric id of a custom field (`customfield_10050` → 10050).
    pub fn custom_id(&self) -> Option<u64> {
        self.id.strip_prefix("customfield_")?.parse().ok()
    }
    /// The `FieldDetails` object of `GET /rest/api/3/field`.
    pub fn details(&self) -> Value {
        let mut clause: Vec<String> = self.clause_names.iter().map(|s| s.to_string()).collect();
        if let Some(n) = self.custom_id() {
            clause = vec![format!("cf[{n}]"), self.name.to_string()];
        }
        json!({
            "id": self.id,
            "key": self.id,
            "name": self.name,
            "custom": self.is_custom(),
            "orderable": self.editable,
            "navigable": true,
            "searchable": true,
            "clauseNames": clause,
            "schema": self.schema(),
        })
    }
    /// The `JsonTypeBean` describing the field's values.
    pub fn schema(&self) -> Value {
        let ty = match self.kind {
            Kind::Text | Kind::RichText => "string",
            Kind::Date => "date",
            Kind::DateTime => "datetime",
            Kind::Priority => "priority",
            Kind::Labels => "array",
            Kind::Status => "status",
            Kind::Resolution => "resolution",
            Kind::User => "user",
            Kind::Select => "option",
            Kind::Number => "number",
            Kind::Project => "project",
            Kind::IssueType => "issuetype",
        };
        let mut s = json!({ "type": ty });
        if self.kind == Kind::Labels {
            s["items"] = json!("string");
        }
        match (self.custom_type, self.custom_id()) {
            (Some(custom), Some(id)) => {
                s["custom"] = json!(custom);
                s["customId"] = json!(id);
            }
            _ => s["system"] = json!(self.id),
        }
        s
    }
}

/// The sandbox's fields. The ids of the custom fields are fixed so tests and the bundled
/// example can name them; `customfield_123456` is the one the seed's mapping uses.
pub static FIELDS: &[FieldDef] = &[
    sys("summary", "Summary", Kind::Text, true, &["summary"]),
    sys(
        "description",
        "Description",
        Kind::RichText,
        true,
        &["description"],
    ),
    sys("duedate", "Due date", Kind::Date, true, &["due", "duedate"]),
    sys("priority", "Priority", Kind::Priority, true, &["priority"]),
    sys("labels", "Labels", Kind::Labels, true, &["labels"]),
    sys("status", "Status", Kind::Status, false, &["status"]),
    sys(
        "resolution",
        "Resolution",
        Kind::Resolution,
        false,
        &["resolution"],
    ),
    sys("assignee", "Assignee", Kind::User, true, &["assignee"]),
    sys("reporter", "Reporter", Kind::User, true, &["reporter"]),
    sys("project", "Project", Kind::Project, false, &["project"]),
    sys(
        "issuetype",
        "Issue Type",
        Kind::IssueType,
        true,
        &["issuetype", "type"],
    ),
    sys(
        "created",
        "Created",
        Kind::DateTime,
        false,
        &["created", "createdDate"],
    ),
    sys(
        "updated",
        "Updated",
        Kind::DateTime,
        false,
        &["updated", "updatedDate"],
    ),
    FieldDef {
        id: "customfield_10050",
        name: "External ID",
        kind: Kind::Text,
        editable: true,
        clause_names: &[],
        options: &[],
        custom_type: Some("com.atlassian.jira.plugin.system.customfieldtypes:textfield"),
    },
    FieldDef {
        id: "customfield_10051",
        name: "Severity",
        kind: Kind::Select,
        editable: true,
        clause_names: &[],
        options: &[
            ("10100", "Critical"),
            ("10101", "Major"),
            ("10102", "Minor"),
        ],
        custom_type: Some("com.atlassian.jira.plugin.system.customfieldtypes:select"),
    },
    FieldDef {
        id: "customfield_10052",
        name: "Story Points",
        kind: Kind::Number,
        editable: true,
        clause_names: &[],
        options: &[],
        custom_type: Some("com.atlassian.jira.plugin.system.customfieldtypes:float"),
    },
    FieldDef {
        id: "customfield_123456",
        name: "Customer Reference",
        kind: Kind::Text,
        editable: true,
        clause_names: &[],
        options: &[],
        custom_type: Some("com.atlassian.jira.plugin.system.customfieldtypes:textfield"),
    },
];

const fn sys(
    id: &'static str,
    name: &'static str,
    kind: Kind,
    editable: bool,
    clause_names: &'static [&'static str],
) -> FieldDef {
    FieldDef {
        id,
        name,
        kind,
        editable,
        clause_names,
        options: &[],
        custom_type: None,
    }
}

/// The External ID field, which the engine uses as the link field.
pub const EXTERNAL_ID_FIELD: &str = "customfield_10050";

pub fn field(id: &str) -> Option<&'static FieldDef> {
    FIELDS.iter().find(|f| f.id == id)
}

/// Resolve a JQL field reference: a clause name, a display name or `cf[NNN]`, case-insensitive.
/// `customfield_NNN` is rejected, as in Jira.
pub fn field_by_clause(name: &str) -> Option<&'static FieldDef> {
    let lower = name.trim().to_ascii_lowercase();
    if let Some(num) = lower.strip_prefix("cf[").and_then(|r| r.strip_suffix(']')) {
        let id = format!("customfield_{}", num.trim());
        return FIELDS.iter().find(|f| f.is_custom() && f.id == id);
    }
    FIELDS.iter().find(|f| {
        (f.is_custom() && f.name.eq_ignore_ascii_case(&lower))
            || f.clause_names
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&lower))
    })
}

/// A workflow status.
pub struct Status {
    pub id: &'static str,
    pub name: &'static str,
    pub category: (u32, &'static str, &'static str, &'static str), // id, key, colour, name
}

pub static STATUSES: &[Status] = &[
    Status {
        id: "10000",
        name: "To Do",
        category: (2, "new", "blue-gray", "To Do"),
    },
    Status {
        id: "3",
        name: "In Progress",
        category: (4, "indeterminate", "yellow", "In Progress"),
    },
    Status {
        id: "10001",
        name: "Done",
        category: (3, "done", "green", "Done"),
    },
];

/// One transition of the workflow: available only from `from` (a status id), as in a
/// Jira workflow without global transitions, so what `GET …/transitions` offers depends on
/// where the issue is.
pub struct Transition {
    pub id: &'static str,
    pub name: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    /// Fields its screen requires; Jira answers 400 when the request leaves one out.
    pub required: &'static [&'static str],
}

/// To Do → In Progress → Done, with a way back from each; reaching Done asks for a
/// resolution, and leaving Done clears it. To Do → Done takes two steps, as on many sites.
pub static WORKFLOW: &[Transition] = &[
    Transition {
        id: "21",
        name: "Start progress",
        from: "10000",
        to: "3",
        required: &[],
    },
    Transition {
        id: "11",
        name: "Stop progress",
        from: "3",
        to: "10000",
        required: &[],
    },
    Transition {
        id: "31",
        name: "Done",
        from: "3",
        to: "10001",
        required: &["resolution"],
    },
    Transition {
        id: "41",
        name: "Reopen",
        from: "10001",
        to: "10000",
        required: &[],
    },
];

/// The transitions available from status `from`.
pub fn transitions_from(from: &str) -> impl Iterator<Item = &'static Transition> + '_ {
    WORKFLOW.iter().filter(move |t| t.from == from)
}

/// The shortest walk through [`WORKFLOW`] from status `from` to status `to` (both ids).
pub fn workflow_path(from: &str, to: &str) -> Option<Vec<&'static Transition>> {
    let mut paths: Vec<(&str, Vec<&'static Transition>)> = vec![(from, Vec::new())];
    let mut seen = vec![from];
    while !paths.is_empty() {
        let mut next = Vec::new();
        for (at, path) in paths {
            if at == to {
                return Some(path);
            }
            for t in transitions_from(at) {
                if !seen.contains(&t.to) {
                    seen.push(t.to);
                    let mut longer = path.clone();
                    longer.push(t);
                    next.push((t.to, longer));
                }
            }
        }
        paths = next;
    }
    None
}

pub fn status(id_or_name: &str) -> Option<&'static Status> {
    STATUSES
        .iter()
        .find(|s| s.id == id_or_name || s.name.eq_ignore_ascii_case(id_or_name))
}

/// Priorities: Highest is 1 … Lowest is 5, as on a default Jira site.
pub static PRIORITIES: &[(&str, &str)] = &[
    ("1", "Highest"),
    ("2", "High"),
    ("3", "Medium"),
    ("4", "Low"),
    ("5", "Lowest"),
];

pub fn priority(id_or_name: &str) -> Option<(&'static str, &'static str)> {
    PRIORITIES
        .iter()
        .copied()
        .find(|(id, name)| *id == id_or_name || name.eq_ignore_ascii_case(id_or_name))
}

pub static ISSUE_TYPES: &[(&str, &str)] =
    &[("10001", "Task"), ("10002", "Bug"), ("10003", "Story")];

pub fn issue_type(id_or_name: &str) -> Option<(&'static str, &'static str)> {
    ISSUE_TYPES
        .iter()
        .copied()
        .find(|(id, name)| *id == id_or_name || name.eq_ignore_ascii_case(id_or_name))
}

/// The one resolution of the catalogue, which the Done transition's screen asks for.
pub const RESOLUTION_DONE: (&str, &str) = ("10000", "Done");

/// A user account. The API user is who REST calls act as; the humans are who `user_*` act as,
/// so the engine can tell its own echoes from people's edits.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub account_id: String,
    pub name: String,
    pub display_name: String,
    pub email: String,
}

impl User {
    pub fn render(&self, base: &str, api: Api) -> Value {
        let avatar = format!("{base}/secure/useravatar?ownerId={}", self.name);
        let mut v = json!({
            "self": format!("{base}{}/user?accountId={}", api.prefix(), self.account_id),
            "accountId": self.account_id,
            "displayName": self.display_name,
            "emailAddress": self.email,
            "active": true,
            "timeZone": "Etc/UTC",
            "accountType": "atlassian",
            "avatarUrls": {
                "16x16": format!("{avatar}&size=xsmall"),
                "24x24": format!("{avatar}&size=small"),
                "32x32": format!("{avatar}&size=medium"),
                "48x48": avatar,
            },
        });
        if api == Api::V2 {
            // Data Center identifies users by name/key; Cloud's v2 still has accountId.
            v["name"] = json!(self.name);
            v["key"] = json!(self.name);
        }
        v
    }
}

/// A project.
#[derive(Debug, Clone)]
pub struct Project {
    pub id: String,
    pub key: String,
    pub name: String,
}

impl Project {
    pub fn render(&self, base: &str, api: Api) -> Value {
        json!({
            "self": format!("{base}{}/project/{}", api.prefix(), self.id),
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "projectTypeKey": "software",
            "simplified": false,
        })
    }
}

/// The comment property Jira Service Management keeps an internal note's flag in.
pub const JSM_PUBLIC_PROPERTY: &str = "sd.public.comment";

/// A comment, body stored as ADF.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub author: User,
    /// Who edited it last (`author` until someone does).
    pub update_author: User,
    pub body: Value,
    pub created: DateTime<Utc>,
    /// The last edit; `created` until then.
    pub updated: DateTime<Utc>,
    /// Comment properties (`EntityProperty`), in the order they were first set.
    pub properties: Vec<(String, Value)>,
    /// `visibility` as given (a group or role restriction), if any.
    pub visibility: Option<Value>,
}

impl Comment {
    /// A JSM internal note: the property `sd.public.comment` holds `{"internal": true}`.
    pub fn internal(&self) -> bool {
        self.property(JSM_PUBLIC_PROPERTY)
            .and_then(|v| v.get("internal"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn property(&self, key: &str) -> Option<&Value> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Sets (or replaces) the given properties, keeping the others.
    pub fn set_properties(&mut self, props: Vec<(String, Value)>) {
        for (k, v) in props {
            match self.properties.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => self.properties.push((k, v)),
            }
        }
    }

    /// The `Comment` bean, without its properties (what Jira sends unless asked).
    pub fn render(&self, base: &str, api: Api, issue_id: u64) -> Value {
        self.render_with(base, api, issue_id, false)
    }

    /// The `Comment` bean; `properties` adds them (`expand=properties`).
    pub fn render_with(&self, base: &str, api: Api, issue_id: u64, properties: bool) -> Value {
        let body = match api {
            Api::V3 => self.body.clone(),
            Api::V2 => json!(adf::to_wiki(&self.body)),
        };
        let mut v = json!({
            "self": format!("{base}{}/issue/{issue_id}/comment/{}", api.prefix(), self.id),
            "id": self.id.to_string(),
            "author": self.author.render(base, api),
            "body": body,
            "updateAuthor": self.update_author.render(base, api),
            "created": jira_time(&self.created),
            "updated": jira_time(&self.updated),
            "jsdPublic": !self.internal(),
        });
        if let Some(vis) = &self.visibility {
            v["visibility"] = vis.clone();
        }
        if properties {
            v["properties"] = json!(
                self.properties
                    .iter()
                    .map(|(k, val)| json!({ "key": k, "value": val }))
                    .collect::<Vec<_>>()
            );
        }
        v
    }
}

/// One changelog entry.
#[derive(Debug, Clone)]
pub struct History {
    pub id: u64,
    pub author: User,
    pub created: DateTime<Utc>,
    pub items: Vec<Value>,
}

/// A stored issue. `fields` holds internal values keyed by field id; missing means empty.
#[derive(Debug, Clone)]
pub struct Issue {
    pub id: u64,
    pub key: String,
    pub project: Project,
    pub fields: BTreeMap<String, Value>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub comments: Vec<Comment>,
    pub histories: Vec<History>,
}

/// Jira's timestamp format: `2025-01-31T10:15:30.000+0000`.
pub fn jira_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

impl Issue {
    pub fn get(&self, id: &str) -> &Value {
        self.fields.get(id).unwrap_or(&Value::Null)
    }

    /// The number part of the key, for ordering keys numerically.
    pub fn key_number(&self) -> u64 {
        self.key
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    pub fn status(&self) -> &'static Status {
        self.get("status")
            .as_str()
            .and_then(status)
            .unwrap_or(&STATUSES[0])
    }

    /// Render one field's value for the wire.
    pub fn render_field(&self, def: &FieldDef, base: &str, api: Api, users: &[User]) -> Value {
        let p = api.prefix();
        match def.kind {
            Kind::DateTime => {
                let t = if def.id == "created" {
                    &self.created
                } else {
                    &self.updated
                };
                json!(jira_time(t))
            }
            Kind::Project => self.project.render(base, api),
            _ => render_value(def, self.get(def.id), base, p, api, users),
        }
    }

    /// All fields (or the selected ones) in the given dialect.
    pub fn render_fields(
        &self,
        select: &dyn Fn(&str) -> bool,
        base: &str,
        api: Api,
        users: &[User],
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for def in FIELDS {
            if select(def.id) {
                out.insert(def.id.to_string(), self.render_field(def, base, api, users));
            }
        }
        if select("comment") {
            let comments: Vec<Value> = self
                .comments
                .iter()
                .map(|c| c.render(base, api, self.id))
                .collect();
            out.insert(
                "comment".into(),
                json!({
                    "comments": comments,
                    "self": format!("{base}{}/issue/{}/comment", api.prefix(), self.id),
                    "maxResults": comments.len(),
                    "total": comments.len(),
                    "startAt": 0,
                }),
            );
        }
        out
    }

    pub fn self_url(&self, base: &str, api: Api) -> String {
        format!("{base}{}/issue/{}", api.prefix(), self.id)
    }

    /// The `changelog` expansion: a `PageOfChangelogs`.
    pub fn changelog(&self, base: &str, api: Api) -> Value {
        let histories: Vec<Value> = self
            .histories
            .iter()
            .map(|h| {
                json!({
                    "id": h.id.to_string(),
                    "author": h.author.render(base, api),
                    "created": jira_time(&h.created),
                    // The spec types `from`/`to` as non-nullable strings, so the REST
                    // changelog leaves out empty ones; webhooks keep Jira's explicit nulls.
                    "items": h.items.iter().map(without_nulls).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "startAt": 0,
            "maxResults": histories.len(),
            "total": histories.len(),
            "histories": histories,
        })
    }
}

fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn find_user<'a>(users: &'a [User], id: &str) -> Option<&'a User> {
    users
        .iter()
        .find(|u| u.account_id == id || u.name.eq_ignore_ascii_case(id))
}

fn render_value(def: &FieldDef, v: &Value, base: &str, p: &str, api: Api, users: &[User]) -> Value {
    let Some(s) = v.as_str() else {
        return match def.kind {
            Kind::Labels => {
                if v.is_array() {
                    v.clone()
                } else {
                    json!([])
                }
            }
            Kind::RichText if !v.is_null() => match api {
                Api::V3 => v.clone(),
                Api::V2 => json!(adf::to_wiki(v)),
            },
            Kind::Number => v.clone(),
            _ => Value::Null,
        };
    };
    match def.kind {
        Kind::Priority => match priority(s) {
            Some((id, name)) => json!({
                "self": format!("{base}{p}/priority/{id}"),
                "iconUrl": format!("{base}/images/icons/priorities/{}.svg", name.to_lowercase()),
                "name": name,
                "id": id,
            }),
            None => Value::Null,
        },
        Kind::Status => match status(s) {
            Some(st) => render_status(st, base, p),
            None => Value::Null,
        },
        Kind::Resolution => json!({
            "self": format!("{base}{p}/resolution/{s}"),
            "id": s,
            "description": "Work has been completed on this issue.",
            "name": RESOLUTION_DONE.1,
        }),
        Kind::User => match find_user(users, s) {
            Some(u) => u.render(base, api),
            None => Value::Null,
        },
        Kind::Select => match def.options.iter().find(|(id, _)| *id == s) {
            Some((id, value)) => json!({
                "self": format!("{base}{p}/customFieldOption/{id}"),
                "value": value,
                "id": id,
            }),
            None => Value::Null,
        },
        Kind::IssueType => match issue_type(s) {
            Some((id, name)) => json!({
                "self": format!("{base}{p}/issuetype/{id}"),
                "id": id,
                "description": "",
                "iconUrl": format!("{base}/images/icons/issuetypes/{}.svg", name.to_lowercase()),
                "name": name,
                "subtask": false,
                "hierarchyLevel": 0,
            }),
            None => Value::Null,
        },
        _ => json!(s),
    }
}

pub fn render_status(st: &Status, base: &str, p: &str) -> Value {
    let (cid, ckey, colour, cname) = st.category;
    json!({
        "self": format!("{base}{p}/status/{}", st.id),
        "description": "",
        "iconUrl": format!("{base}/images/icons/statuses/generic.png"),
        "name": st.name,
        "id": st.id,
        "statusCategory": {
            "self": format!("{base}{p}/statuscategory/{cid}"),
            "id": cid,
            "key": ckey,
            "colorName": colour,
            "name": cname,
        },
    })
}

/// Turn a wire value into the internal value for `def`, or the message Jira would put under
/// `errors.<fieldId>`.
pub fn parse_input(def: &FieldDef, v: &Value, api: Api, users: &[User]) -> Result<Value, String> {
    let id = def.id;
    match def.kind {
        Kind::Text => match v {
            Value::Null => Ok(Value::Null),
            Value::String(s) if s.chars().count() > 255 => Err(if id == "summary" {
                "Summary must be less than 255 characters.".into()
            } else {
                "The entered text is too long. It exceeds the allowed limit of 255 characters."
                    .into()
            }),
            Value::String(s) if s.is_empty() => Ok(Value::Null),
            Value::String(s) => Ok(json!(s)),
            _ => Err("Operation value must be a string".into()),
        },
        Kind::RichText => match (api, v) {
            (_, Value::Null) => Ok(Value::Null),
            (Api::V2, Value::String(s)) if s.is_empty() => Ok(Value::Null),
            (Api::V2, Value::String(s)) => Ok(adf::from_wiki(s)),
            (Api::V3, doc) if adf::is_doc(doc) => Ok(doc.clone()),
            (Api::V3, _) => Err(
                "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
                    .into(),
            ),
            (Api::V2, _) => Err("Operation value must be a string".into()),
        },
        Kind::Date => match v {
            Value::Null => Ok(Value::Null),
            Value::String(s) if NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => Ok(json!(s)),
            Value::String(s) => Err(format!("Error parsing date string: {s}")),
            _ => Err("Operation value must be a string".into()),
        },
        Kind::Priority => {
            let found = id_or_name(v).and_then(priority);
            match (v, found) {
                (Value::Null, _) => Ok(Value::Null),
                (_, Some((pid, _))) => Ok(json!(pid)),
                _ => Err("Specify a valid value for priority".into()),
            }
        }
        Kind::IssueType => match id_or_name(v).and_then(issue_type) {
            Some((tid, _)) => Ok(json!(tid)),
            None => Err("Specify an issue type".into()),
        },
        Kind::Labels => match v {
            Value::Null => Ok(json!([])),
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.push(label(item)?);
                }
                Ok(json!(out))
            }
            _ => Err("Operation value must be an array of strings".into()),
        },
        Kind::User => match v {
            Value::Null => Ok(Value::Null),
            Value::Object(o) => {
                let key = o
                    .get("accountId")
                    .or_else(|| o.get("name"))
                    .or_else(|| o.get("id"))
                    .and_then(Value::as_str);
                match key.and_then(|k| find_user(users, k)) {
                    Some(u) => Ok(json!(u.account_id)),
                    None if key.is_none() => Ok(Value::Null),
                    None => Err(
                        "Specified user does not exist or you do not have required permissions"
                            .into(),
                    ),
                }
            }
            _ => Err("expected Object".into()),
        },
        Kind::Select => match v {
            Value::Null => Ok(Value::Null),
            Value::Object(o) => {
                let by_id = o.get("id").and_then(Value::as_str);
                let by_value = o.get("value").and_then(Value::as_str);
                def.options
                    .iter()
                    .find(|(oid, val)| by_id == Some(oid) || by_value == Some(val))
                    .map(|(oid, _)| json!(oid))
                    .ok_or_else(|| match (by_id, by_value) {
                        (Some(i), _) => format!("Option id '{i}' is not valid"),
                        (_, Some(val)) => format!("Option value '{val}' is not valid"),
                        _ => "Option value '' is not valid".into(),
                    })
            }
            _ => Err("Could not find valid 'id' or 'value' in the Parent Option object.".into()),
        },
        Kind::Number => match v {
            Value::Null => Ok(Value::Null),
            Value::Number(_) => Ok(v.clone()),
            _ => Err("Operation value must be a number".into()),
        },
        Kind::Status | Kind::Resolution | Kind::Project | Kind::DateTime => Err(cannot_set(id)),
    }
}

/// Jira's message for a field that is read-only, unknown or not on the screen.
pub fn cannot_set(id: &str) -> String {
    format!("Field '{id}' cannot be set. It is not on the appropriate screen, or unknown.")
}

fn id_or_name(v: &Value) -> Option<&str> {
    v.get("id")
        .or_else(|| v.get("name"))
        .and_then(Value::as_str)
}

/// Validate one label: Jira refuses labels with spaces.
pub fn label(v: &Value) -> Result<String, String> {
    match v.as_str() {
        Some(s) if s.chars().any(char::is_whitespace) => {
            Err(format!("The label '{s}' contains spaces which is invalid."))
        }
        Some("") => Err("Label cannot be empty.".into()),
        Some(s) => Ok(s.to_string()),
        None => Err("Operation value must be a string".into()),
    }
}

/// The display string Jira puts in `fromString`/`toString` for an internal value.
fn display(def: &FieldDef, v: &Value, users: &[User]) -> (Value, Value) {
    if v.is_null() {
        return (Value::Null, Value::Null);
    }
    let s = v.as_str().unwrap_or_default();
    match def.kind {
        Kind::Text => (Value::Null, v.clone()),
        Kind::RichText => (Value::Null, json!(adf::to_wiki(v))),
        Kind::Date => (json!(s), json!(format!("{s} 00:00:00.0"))),
        Kind::Priority => (json!(s), json!(priority(s).map(|p| p.1))),
        Kind::IssueType => (json!(s), json!(issue_type(s).map(|p| p.1))),
        Kind::Status => (json!(s), json!(status(s).map(|p| p.name))),
        Kind::Resolution => (json!(s), json!(RESOLUTION_DONE.1)),
        Kind::User => (
            json!(s),
            json!(find_user(users, s).map(|u| u.display_name.clone())),
        ),
        Kind::Select => (
            json!(s),
            json!(def.options.iter().find(|(i, _)| *i == s).map(|o| o.1)),
        ),
        Kind::Labels => {
            let joined: Vec<&str> = v
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if joined.is_empty() {
                (Value::Null, Value::Null)
            } else {
                (Value::Null, json!(joined.join(" ")))
            }
        }
        Kind::Number => (Value::Null, json!(v.to_string())),
        Kind::Project | Kind::DateTime => (Value::Null, json!(s)),
    }
}

/// A changelog item for a change of `def` from `old` to `new` (internal values).
pub fn change_item(def: &FieldDef, old: &Value, new: &Value, users: &[User]) -> Value {
    let (from, from_string) = display(def, old, users);
    let (to, to_string) = display(def, new, users);
    json!({
        // Jira names system fields by id and custom fields by display name here.
        "field": if def.is_custom() { def.name } else { def.id },
        "fieldtype": if def.is_custom() { "custom" } else { "jira" },
        "fieldId": def.id,
        "from": from,
        "fromString": from_string,
        "to": to,
        "toString": to_string,
    })
}

/// Whether two internal values are the same value (labels compare as sets).
pub fn same(def: &FieldDef, a: &Value, b: &Value) -> bool {
    if def.kind == Kind::Labels {
        let set = |v: &Value| -> std::collections::BTreeSet<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        return set(a) == set(b);
    }
    if def.kind == Kind::Number {
        return a.as_f64() == b.as_f64();
    }
    a == b
}

/// Text used by JQL `~` for a field value.
pub fn searchable_text(def: &FieldDef, v: &Value) -> Option<String> {
    match def.kind {
        Kind::Text => v.as_str().map(str::to_string),
        Kind::RichText if !v.is_null() => Some(adf::plain_text(v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clause_names_resolve_like_jira() {
        assert_eq!(
            field_by_clause("\"External ID\"".trim_matches('"')).map(|f| f.id),
            Some("customfield_10050")
        );
        assert_eq!(
            field_by_clause("cf[10050]").map(|f| f.id),
            Some("customfield_10050")
        );
        assert_eq!(
            field_by_clause("external id").map(|f| f.id),
            Some("customfield_10050")
        );
        assert!(field_by_clause("customfield_10050").is_none());
        assert_eq!(field_by_clause("type").map(|f| f.id), Some("issuetype"));
    }

    #[test]
    fn jira_time_format() {
        let t = DateTime::parse_from_rfc3339("2025-01-31T10:15:30Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        assert_eq!(
            t.map(|t| jira_time(&t)).as_deref(),
            Some("2025-01-31T10:15:30.000+0000")
        );
    }

    #[test]
    fn field_details_have_clause_names() {
        let d = field("customfield_10050")
            .map(FieldDef::details)
            .unwrap_or_default();
        assert_eq!(d["clauseNames"], json!(["cf[10050]", "External ID"]));
        assert_eq!(d["schema"]["customId"], json!(10050));
    }
}
