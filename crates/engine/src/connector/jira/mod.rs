//! The Jira connector: Cloud (REST v3, ADF, Basic `email:api_token`) and Data Center (REST
//! v2, wiki markup, Bearer PAT).
//!
//! [`JiraConnector::prepare`] loads the field catalogue once and resolves every field the
//! mapping names (by id or display name) plus the link field; the schema of each decides how
//! values are written (see [`fields`]). Every write is one call: a create carries the link
//! field, an update sends all changed fields in one `PUT`. Status is the exception Jira
//! imposes: it only moves through transitions, walked through the workflow by target status
//! name (see [`workflow`]). A status that cannot be reached fails alone: the other fields
//! are written, and the error says so ([`ConnectorError::PartlyApplied`]).
//!
//! External ids reach JQL only through [`jql_string`], which escapes them twice (for the
//! phrase and for the JQL string), and every search hit is checked client-side, because `~`
//! is a full-text match, not equality.

pub mod admin;
pub mod attachments;
pub mod client;
pub mod comments;
pub mod dynamic;
pub mod fields;
pub mod users;
pub mod webhook;
pub mod workflow;

use self::client::{Cursor, JiraAuth, JiraClient};
use self::fields::{Api, FieldInfo, JiraKind};
use super::{
    CheckReport, Connector, ConnectorContext, ConnectorError, ConnectorResult, Fields, Item, Page,
    WebhookError,
};
use crate::config::{FilterConfig, JiraApi, JiraConfig};
use crate::connector::files::{Download, Upload};
use crate::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use tandem_core::attachment::Attachment;
use tandem_core::comment::{Comment, NewComment, TandemMark};
use tandem_core::mapping::{FieldType, Mapping};
use tandem_core::{
    ChangeEvent, ChangeKind, CommentChange, CommentRef, EventOrigin, FieldValue, Side,
};

/// Results per search page; Jira may return fewer.
const PAGE_SIZE: u32 = 100;
/// How many pages of full-text hits `find_by_link` inspects before giving up.
const FIND_PAGES: usize = 5;

/// A status to set: (mapping field name, target status name).
type StatusWrite = (String, String);

/// Field names resolved against the site's catalogue.
#[derive(Debug, Clone)]
struct Resolved {
    /// Mapping name (as written in the mapping) → the field.
    fields: BTreeMap<String, FieldInfo>,
    /// The field holding the other side's id.
    link: Option<FieldInfo>,
    /// True when built from guesses because the catalogue was not loaded yet (webhooks only).
    guessed: bool,
}

pub struct JiraConnector {
    side: Side,
    mapping: Mapping,
    client: JiraClient,
    project: String,
    issue_type: String,
    link_field: Option<String>,
    webhook_secret: Option<Secret>,
    /// The connection's filter; empty (the project only) on the external side of Jira ↔ Jira.
    filter: FilterConfig,
    resolved: RwLock<Option<Arc<Resolved>>>,
    /// What is known of the site's workflows, for walking issues to a status.
    workflows: workflow::Workflows,
    /// Issue id → (status field, the walk taken) of its last transition, for the audit.
    walks: std::sync::Mutex<std::collections::HashMap<String, (String, String)>>,
}

impl std::fmt::Debug for JiraConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraConnector")
            .field("side", &self.side)
            .field("client", &self.client)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl JiraConnector {
    /// Builds the connector; credentials are checked for presence here and for validity by
    /// `prepare`/`check`.
    pub fn new(cfg: &JiraConfig, ctx: ConnectorContext) -> anyhow::Result<Self> {
        let oauth = cfg.oauth_token.as_ref().filter(|t| !t.is_empty());
        let (api, auth) = match cfg.api {
            // An OAuth 2.0 app authenticates every call with its bearer token.
            JiraApi::Cloud if oauth.is_some() => (
                Api::Cloud,
                JiraAuth::Bearer {
                    token: oauth.map(|t| t.expose().to_string()).unwrap_or_default(),
                },
            ),
            JiraApi::Cloud => {
                let email = cfg
                    .email
                    .clone()
                    .filter(|e| !e.trim().is_empty())
                    .ok_or_else(|| {
                        anyhow::anyhow!("jira: `email` is required for api = \"cloud\"")
                    })?;
                let token = cfg
                    .api_token
                    .as_ref()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        anyhow::anyhow!("jira: `api_token` is required for api = \"cloud\"")
                    })?;
                (
                    Api::Cloud,
                    JiraAuth::Basic {
                        email: email.trim().to_string(),
                        token: token.expose().to_string(),
                    },
                )
            }
            JiraApi::Datacenter => {
                let pat = cfg.pat.as_ref().filter(|t| !t.is_empty()).ok_or_else(|| {
                    anyhow::anyhow!("jira: `pat` is required for api = \"datacenter\"")
                })?;
                (
                    Api::DataCenter,
                    JiraAuth::Bearer {
                        token: pat.expose().to_string(),
                    },
                )
            }
        };
        let client = JiraClient::new(ctx.http, &cfg.base_url, api, auth)?;
        let link_field = Some(cfg.link_field.trim().to_string()).filter(|s| !s.is_empty());
        Ok(JiraConnector {
            side: ctx.side,
            mapping: ctx.mapping,
            client,
            project: cfg.project.trim().to_string(),
            issue_type: cfg.issue_type.trim().to_string(),
            link_field,
            webhook_secret: cfg.webhook_secret.clone().filter(|s| !s.is_empty()),
            // `[connection.filter]` describes the connection's Jira side; a Jira site on the
            // external side is scoped by its own project.
            filter: if ctx.side == Side::Jira {
                ctx.filter
            } else {
                FilterConfig::default()
            },
            resolved: RwLock::new(None),
            workflows: workflow::Workflows::default(),
            walks: Default::default(),
        })
    }

    /// The REST client, for administration calls outside the [`Connector`] trait.
    pub fn client(&self) -> &JiraClient {
        &self.client
    }

    /// The Jira ids of the mapped fields (resolving names against the catalogue first).
    pub async fn mapped_field_ids(&self) -> ConnectorResult<Vec<String>> {
        let r = self.ready().await?;
        let mut ids: Vec<String> = Vec::new();
        for f in r.fields.values() {
            if !ids.contains(&f.id) {
                ids.push(f.id.clone());
            }
        }
        Ok(ids)
    }

    /// The mapping's field names on this connector's side, in file order.
    fn mapped_names(&self) -> Vec<String> {
        self.mapping
            .fields_on(self.side)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// The declared type of a mapped field (the first entry naming it wins).
    fn declared_type(&self, name: &str) -> FieldType {
        self.mapping
            .by_field(self.side, name)
            .next()
            .map_or(FieldType::Text, |m| m.field_type)
    }

    fn cached(&self) -> Option<Arc<Resolved>> {
        match self.resolved.read() {
            Ok(g) => g.clone(),
            // A panic elsewhere while holding the lock leaves valid data behind.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the catalogue and resolves every name; all problems are reported at once.
    async fn resolve_all(&self) -> ConnectorResult<(Resolved, Vec<String>)> {
        let catalogue = fields::parse_catalogue(&self.client.fields().await?)
            .map_err(|e| ConnectorError::permanent(format!("jira: {e}")))?;
        let mut problems = Vec::new();
        let mut resolved = BTreeMap::new();
        for name in self.mapped_names() {
            match fields::resolve(&name, &catalogue) {
                Ok(f) => {
                    resolved.insert(name, f);
                }
                Err(e) => problems.push(e),
            }
        }
        let link = match &self.link_field {
            None => None,
            Some(name) => match fields::resolve(name, &catalogue) {
                Ok(f) => Some(f),
                Err(e) => {
                    problems.push(format!("link field: {e}"));
                    None
                }
            },
        };
        Ok((
            Resolved {
                fields: resolved,
                link,
                guessed: false,
            },
            problems,
        ))
    }

    /// The resolved fields, resolving on first use. A failure is transient for the caller
    /// (the trait's contract): the worker retries until `prepare` can succeed.
    async fn ready(&self) -> ConnectorResult<Arc<Resolved>> {
        if let Some(r) = self.cached().filter(|r| !r.guessed) {
            return Ok(r);
        }
        match self.prepare().await {
            Ok(()) => self
                .cached()
                .ok_or_else(|| ConnectorError::permanent("jira: fields not resolved")),
            Err(e) => Err(ConnectorError::Transient {
                message: format!("jira fields are not resolved yet: {e}"),
                status: None,
                retry_after: None,
            }),
        }
    }

    /// Before `prepare` ran, webhooks are read with guesses: mapping names taken as ids.
    fn guessed(&self) -> Resolved {
        let fields = self
            .mapped_names()
            .into_iter()
            .map(|name| {
                let info = FieldInfo {
                    id: name.clone(),
                    name: name.clone(),
                    kind: JiraKind::guess(&name.to_ascii_lowercase()),
                    custom_id: None,
                };
                (name, info)
            })
            .collect();
        Resolved {
            fields,
            link: None,
            guessed: true,
        }
    }

    /// The `fields` list for reads: mapped ids, the link field and what `Item` carries.
    fn read_field_ids(&self, r: &Resolved) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        let mut add = |id: &str| {
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        };
        for f in r.fields.values() {
            add(&f.id);
        }
        if let Some(l) = &r.link {
            add(&l.id);
        }
        for id in ["updated", "project", "issuetype"] {
            add(id);
        }
        ids
    }

    /// Reads one mapped value: Jira's representation → the mapping's declared kind.
    fn read_value(&self, name: &str, info: &FieldInfo, raw: &Value) -> Result<FieldValue, String> {
        let v = match (info.kind, self.client.api()) {
            // Data Center writes users by name (`{"name": …}`), so that is what is read; an
            // account id a Cloud-shaped answer may also carry would not be writable back.
            (JiraKind::User, Api::DataCenter) => match raw.get("name").and_then(Value::as_str) {
                Some(name) => FieldValue::User(name.to_string()),
                None => fields::decode(info.kind, raw).map_err(|e| format!("{}: {e}", info.id))?,
            },
            _ => fields::decode(info.kind, raw).map_err(|e| format!("{}: {e}", info.id))?,
        };
        fields::coerce(&v, self.declared_type(name)).map_err(|e| format!("{}: {e}", info.id))
    }

    /// Turns an `IssueBean` into an [`Item`].
    fn item_from_issue(&self, r: &Resolved, issue: &Value) -> ConnectorResult<Item> {
        let id = match issue.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(ConnectorError::permanent("jira: issue without an id")),
        };
        let empty = Map::new();
        let raw_fields = issue
            .get("fields")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut values = Fields::new();
        for (name, info) in &r.fields {
            let raw = raw_fields.get(&info.id).unwrap_or(&Value::Null);
            match self.read_value(name, info, raw) {
                Ok(v) => {
                    values.insert(name.clone(), v);
                }
                // One unreadable field must not hide the others; it is left out, so the
                // planner treats it as unknown rather than as cleared.
                Err(e) => tracing::warn!(issue = %id, error = %e, "jira: cannot read field"),
            }
        }
        let link = r.link.as_ref().and_then(|l| match raw_fields.get(&l.id) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        });
        let text_at = |field: &str, key: &str| {
            raw_fields
                .get(field)
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Ok(Item {
            id,
            key: issue.get("key").and_then(Value::as_str).map(str::to_string),
            updated: raw_fields
                .get("updated")
                .and_then(Value::as_str)
                .and_then(fields::parse_jira_datetime),
            fields: values,
            link,
            project: text_at("project", "key"),
            issue_type: text_at("issuetype", "name"),
        })
    }

    /// Encodes `values` for a create or edit. Status is split off: it needs a transition.
    fn encode_fields(
        &self,
        r: &Resolved,
        values: &Fields,
    ) -> ConnectorResult<(Map<String, Value>, Option<StatusWrite>)> {
        let mut out = Map::new();
        let mut status = None;
        for (name, value) in values {
            let info = r.fields.get(name).ok_or_else(|| {
                ConnectorError::permanent(format!(
                    "jira: field `{name}` is not in this connection's mapping"
                ))
            })?;
            if info.kind == JiraKind::Status {
                match value {
                    FieldValue::Empty => {}
                    v => status = Some((name.clone(), tandem_core::convert::to_text(v))),
                }
                continue;
            }
            let encoded = fields::encode(info, value, self.client.api())
                .map_err(|e| ConnectorError::permanent(format!("jira: {e}")))?;
            out.insert(info.id.clone(), encoded);
        }
        Ok((out, status))
    }

    /// Walks issue `id` to the status `target` (mapping field `name`), filling in the
    /// transitions' screens from the mapping entry's `transition_fields`.
    async fn transition_to(&self, id: &str, name: &str, target: &str) -> ConnectorResult<()> {
        let empty = BTreeMap::new();
        let screens = self
            .mapping
            .by_field(self.side, name)
            .map(|m| &m.transition_fields)
            .find(|t| !t.is_empty())
            .unwrap_or(&empty);
        let walk = self
            .workflows
            .walk_to(&self.client, id, target, screens)
            .await?;
        let note = match walk.steps.len() {
            0 => format!("already in `{}`: no transition", walk.from),
            1 => format!("transition {}", walk.describe()),
            n => format!("{n} transitions through the workflow: {}", walk.describe()),
        };
        tracing::info!(issue = %id, status = %target, walk = %note, "jira: status set");
        match self.walks.lock() {
            Ok(mut g) => g.insert(id.to_string(), (name.to_string(), note)),
            Err(p) => p
                .into_inner()
                .insert(id.to_string(), (name.to_string(), note)),
        };
        Ok(())
    }

    /// A status that could not be set for good: that failure alone, as
    /// [`ConnectorError::PartlyApplied`] (the other fields of the write, if any, landed).
    fn status_refused(e: ConnectorError, field: String, created: Option<Item>) -> ConnectorError {
        match e {
            // A created issue must be linked whatever went wrong after: retrying the create
            // would make a second one.
            e if created.is_some() => ConnectorError::PartlyApplied {
                message: e.to_string(),
                refused: vec![field],
                created: created.map(Box::new),
            },
            // Even with no other field written, a walk that stopped midway has moved the
            // issue: the engine must learn where it stands, so it is reported the same.
            ConnectorError::Permanent { message, .. } => ConnectorError::PartlyApplied {
                message,
                refused: vec![field],
                created: None,
            },
            other => other,
        }
    }

    /// The JQL clause name of a field: `cf[N]` for custom fields (names may be duplicated
    /// and `customfield_N` is not accepted), the quoted id otherwise.
    fn clause(info: &FieldInfo) -> String {
        match info.custom_id {
            Some(n) => format!("cf[{n}]"),
            None => jql_string(&info.id),
        }
    }

    /// The one event of a `comment_*` delivery: the issue's comments changed. `None` when
    /// the issue is outside the connection's filter (projects, issue types), as the worker's
    /// scope would decide for the issue's own events.
    fn comment_event(
        &self,
        connection: &str,
        d: webhook::Delivery,
        change: CommentChange,
        now: DateTime<Utc>,
    ) -> Option<ChangeEvent> {
        let comment = d.comment?;
        let named = |field: &str, key: &str| {
            d.fields
                .get(field)
                .and_then(|v| v.get(key))
                .and_then(Value::as_str)
        };
        let admits = |list: &[String], value: Option<&str>| {
            list.is_empty()
                || value.is_none_or(|v| list.iter().any(|x| x.trim().eq_ignore_ascii_case(v)))
        };
        if !admits(&self.filter.projects, named("project", "key"))
            || !admits(&self.filter.issue_types, named("issuetype", "name"))
        {
            tracing::debug!(issue = %d.issue_key, "jira: comment outside the connection's filter");
            return None;
        }
        let delivered = d
            .timestamp_ms
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
        // A created or edited comment is dated by its own `updated`, which a re-read shows
        // too; a deleted one has no later time than the delivery's.
        let at = match change {
            CommentChange::Deleted => delivered,
            _ => comment
                .updated
                .as_deref()
                .and_then(fields::parse_jira_datetime)
                .or(delivered),
        };
        let stamp = at.map_or_else(|| "?".to_string(), |t| t.timestamp_millis().to_string());
        let verb = match change {
            CommentChange::Created => "created",
            CommentChange::Updated => "updated",
            CommentChange::Deleted => "deleted",
        };
        Some(ChangeEvent {
            connection: connection.to_string(),
            source: self.side,
            item_id: d.issue_id,
            item_key: Some(d.issue_key),
            kind: ChangeKind::Commented,
            fields: BTreeMap::new(),
            needs_fetch: false,
            source_ts: at.unwrap_or(now),
            // The same change of the same comment gives the same key, however often Jira
            // delivers it (a retry carries the same comment and `updated`); namespaced by
            // side, as the issue events are, so the two sites of a Jira ↔ Jira connection
            // cannot collide.
            idempotency_key: format!("{}:comment:{}:{verb}:{stamp}", self.side, comment.id),
            origin: EventOrigin::Webhook,
            comment: Some(CommentRef {
                id: comment.id,
                change,
            }),
        })
    }

    /// The event of an attachment added (`added`) or removed: the issue's files changed.
    /// Keyed by the attachment and the change, so the `attachment_*` delivery and the
    /// changelog of the `jira:issue_updated` alongside it are one event, and a redelivery is
    /// a duplicate. `None` outside the connection's filter (when the delivery says).
    fn attachment_event(
        &self,
        connection: &str,
        d: &webhook::Delivery,
        attachment_id: &str,
        added: bool,
        now: DateTime<Utc>,
    ) -> Option<ChangeEvent> {
        let named = |field: &str, key: &str| {
            d.fields
                .get(field)
                .and_then(|v| v.get(key))
                .and_then(Value::as_str)
        };
        let admits = |list: &[String], value: Option<&str>| {
            list.is_empty()
                || value.is_none_or(|v| list.iter().any(|x| x.trim().eq_ignore_ascii_case(v)))
        };
        if !admits(&self.filter.projects, named("project", "key"))
            || !admits(&self.filter.issue_types, named("issuetype", "name"))
        {
            return None;
        }
        let at = d
            .timestamp_ms
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .unwrap_or(now);
        let verb = if added { "created" } else { "deleted" };
        Some(ChangeEvent {
            connection: connection.to_string(),
            source: self.side,
            item_id: d.issue_id.clone(),
            item_key: (!d.issue_key.is_empty()).then(|| d.issue_key.clone()),
            kind: ChangeKind::Attached,
            fields: BTreeMap::new(),
            needs_fetch: false,
            source_ts: at,
            idempotency_key: format!("{}:attachment:{attachment_id}:{verb}", self.side),
            origin: EventOrigin::Webhook,
            comment: None,
        })
    }

    fn project_clause(&self) -> String {
        format!("project = {}", jql_string(&self.project))
    }
}

/// The JQL that selects a connection's issues: its projects (the filter's, else the connector's
/// own `project`), its issue types, and the filter's extra JQL in parentheses. Polls, bulk sync
/// and the registered webhook's filter all use it, so they agree on what is in scope.
pub fn scope_jql(project: &str, filter: &FilterConfig) -> String {
    let mut clauses = Vec::new();
    if filter.projects.is_empty() {
        clauses.push(format!("project in ({})", jql_string(project)));
    } else {
        clauses.push(format!("project in ({})", jql_list(&filter.projects)));
    }
    if !filter.issue_types.is_empty() {
        clauses.push(format!("issuetype in ({})", jql_list(&filter.issue_types)));
    }
    if let Some(extra) = filter
        .jql
        .as_deref()
        .map(str::trim)
        .filter(|j| !j.is_empty())
    {
        // The user's own JQL, trusted as configuration; parenthesised so its ORs stay inside.
        clauses.push(format!("({extra})"));
    }
    clauses.join(" AND ")
}

/// `values` as a comma-separated list of JQL string literals (trimmed), for `IN (…)`.
pub(crate) fn jql_list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| jql_string(v.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A JQL string literal holding `s`: backslash and double quote escaped, control characters
/// written as escapes, so no input can end the literal early.
pub fn jql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The JQL operand for an exact-phrase full-text match of `s`: the phrase `"s"` (with `"` and
/// `\` escaped for the text-search syntax) inside a JQL string literal (escaped again).
pub fn jql_phrase(s: &str) -> String {
    let mut phrase = String::with_capacity(s.len() + 2);
    phrase.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            phrase.push('\\');
        }
        phrase.push(c);
    }
    phrase.push('"');
    jql_string(&phrase)
}

/// JQL's date form (`yyyy/MM/dd HH:mm`), minute precision.
pub fn jql_datetime(dt: &DateTime<Utc>) -> String {
    dt.format("%Y/%m/%d %H:%M").to_string()
}

/// Up to this age a poll's lower bound is written relative to now.
const RELATIVE_WINDOW_MINUTES: i64 = 7 * 24 * 60;
/// The widest gap between UTC and a Jira user's time zone (UTC+14 … UTC−12).
const MAX_ZONE_SLACK_HOURS: i64 = 14;

/// The lower bound of an `updated >=` clause for `since`, independent of time zones.
///
/// Jira reads an absolute JQL date in the API user's time zone, so `"2025/01/31 10:15"` means
/// a different instant for a user in New York than in UTC and a poll could silently skip
/// hours of changes. A relative bound (`"-15m"`) is computed by Jira from its own clock, so
/// recent cursors use that, rounded up a minute for overlap. Old cursors (bulk sync) use an
/// absolute date moved back by the widest zone offset: over-inclusion only costs dedupe.
pub fn updated_bound(since: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    let age_secs = (*now - *since).num_seconds().max(0);
    let minutes = age_secs / 60 + 2;
    if minutes <= RELATIVE_WINDOW_MINUTES {
        format!("-{minutes}m")
    } else {
        jql_datetime(&(*since - chrono::Duration::hours(MAX_ZONE_SLACK_HOURS)))
    }
}

/// Page tokens carry the `updated` bound of the first page, so every page of one listing runs
/// the same JQL (Jira's `nextPageToken` belongs to its query), plus Jira's own token (Cloud)
/// or an offset (Data Center), tagged so a token from one flavour is refused by the other.
fn encode_cursor(bound: &str, c: &Cursor) -> Option<String> {
    match c {
        Cursor::Token(Some(t)) => Some(format!("t|{bound}|{t}")),
        Cursor::Token(None) => None,
        Cursor::StartAt(n) => Some(format!("s|{bound}|{n}")),
    }
}

/// The bound and cursor of a page token (`None`: the first page, bound still to compute).
fn decode_cursor(api: Api, page: Option<&str>) -> ConnectorResult<(Option<String>, Cursor)> {
    let bad = || ConnectorError::permanent("jira: unreadable page token");
    let Some(p) = page else {
        return Ok(match api {
            Api::Cloud => (None, Cursor::Token(None)),
            Api::DataCenter => (None, Cursor::StartAt(0)),
        });
    };
    let mut parts = p.splitn(3, '|');
    let (Some(tag), Some(bound), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    // The bound goes back into JQL: accept only what `updated_bound` produces.
    let bound_ok = !bound.is_empty()
        && bound
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | 'm' | '/' | ' ' | ':'));
    if !bound_ok {
        return Err(bad());
    }
    let cursor = match (api, tag) {
        (Api::Cloud, "t") if !rest.is_empty() => Cursor::Token(Some(rest.to_string())),
        (Api::DataCenter, "s") => Cursor::StartAt(rest.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    Ok((Some(bound.to_string()), cursor))
}

/// Jira ids are numeric and keys are `PROJ-12`; anything else is refused before it reaches a
/// URL or a log line as if it were an issue.
fn check_issue_ref(id: &str) -> ConnectorResult<&str> {
    let ok = !id.is_empty()
        && id.len() <= 255
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(id)
    } else {
        Err(ConnectorError::permanent(format!(
            "jira: `{}` is not an issue id or key",
            crate::connector::http::quote(id)
        )))
    }
}

#[async_trait]
impl Connector for JiraConnector {
    fn kind(&self) -> &'static str {
        "jira"
    }

    async fn prepare(&self) -> ConnectorResult<()> {
        let (resolved, problems) = self.resolve_all().await?;
        if !problems.is_empty() {
            return Err(ConnectorError::permanent(format!(
                "jira: {}",
                problems.join("; ")
            )));
        }
        let resolved = Arc::new(resolved);
        match self.resolved.write() {
            Ok(mut g) => *g = Some(resolved),
            Err(poisoned) => *poisoned.into_inner() = Some(resolved),
        }
        Ok(())
    }

    fn parse_webhook(
        &self,
        connection: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<ChangeEvent>, WebhookError> {
        if let Some(secret) = &self.webhook_secret {
            webhook::verify_signature(secret, headers, body)?;
        }
        let Some(d) = webhook::parse(body)? else {
            return Ok(Vec::new());
        };
        if let webhook::EventType::Comment(change) = d.event {
            return Ok(self
                .comment_event(connection, d, change, now)
                .into_iter()
                .collect());
        }
        if let webhook::EventType::Attachment(added) = d.event {
            let id = d.attachment.clone().unwrap_or_default();
            return Ok(self
                .attachment_event(connection, &d, &id, added, now)
                .into_iter()
                .collect());
        }
        // An attachment added or removed shows in an update's changelog (field
        // `attachment`): one event per file, keyed as the `attachment_*` delivery's is, so
        // the two deliveries of one change are one event.
        let attachment_events: Vec<ChangeEvent> = d
            .changed
            .iter()
            .filter(|c| c.field_id.as_deref() == Some("attachment"))
            .filter_map(|c| match (&c.to, &c.from) {
                (Some(to), _) => Some((to.clone(), true)),
                (None, Some(from)) => Some((from.clone(), false)),
                _ => None,
            })
            .filter_map(|(id, added)| self.attachment_event(connection, &d, &id, added, now))
            .collect();
        let resolved = self.cached().unwrap_or_else(|| {
            tracing::warn!("jira: webhook read before field resolution; using field ids as named");
            Arc::new(self.guessed())
        });
        let is_changed = |info: &FieldInfo| {
            d.changed.iter().any(|c| {
                c.field_id.as_deref().is_some_and(|id| id == info.id)
                    || c.field.as_deref().is_some_and(|f| {
                        f.eq_ignore_ascii_case(&info.name) || f.eq_ignore_ascii_case(&info.id)
                    })
            })
        };
        let mut values = BTreeMap::new();
        let mut needs_fetch = false;
        for (name, info) in &resolved.fields {
            if d.event == webhook::EventType::Updated && !is_changed(info) {
                continue;
            }
            match d.fields.get(&info.id) {
                Some(raw) => match self.read_value(name, info, raw) {
                    Ok(v) => {
                        values.insert(name.clone(), v);
                    }
                    // An odd value is fetched over REST rather than refused: Jira would not
                    // resend a delivery we reject with 422.
                    Err(e) => {
                        tracing::warn!(issue = %d.issue_key, error = %e, "jira: webhook value unreadable; will fetch");
                        needs_fetch = true;
                    }
                },
                // A created issue's payload lists every field, so absent means empty; an
                // update that names a field but omits it must be fetched.
                None if d.event == webhook::EventType::Created => {
                    values.insert(name.clone(), FieldValue::Empty);
                }
                None => needs_fetch = true,
            }
        }
        if values.is_empty() && !needs_fetch {
            return Ok(attachment_events);
        }
        // The issue's own `updated` first: it is the clock a re-read of the issue shows,
        // which is what the shadow's times come from. The delivery's `timestamp` is when the
        // event fired, close to but not the same as `updated` (under a burst of edits they
        // drift apart), and comparing the two would make a later edit look older than the
        // synced one.
        let source_ts = d
            .fields
            .get("updated")
            .and_then(Value::as_str)
            .and_then(fields::parse_jira_datetime)
            .or_else(|| {
                d.timestamp_ms
                    .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            })
            .unwrap_or(now);
        let delivery_id = headers
            .get(webhook::IDENTIFIER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map_or_else(|| webhook::body_digest(body), str::to_string);
        let mut events = vec![ChangeEvent {
            connection: connection.to_string(),
            source: self.side,
            item_id: d.issue_id,
            item_key: Some(d.issue_key),
            kind: match d.event {
                webhook::EventType::Created => ChangeKind::Created,
                _ => ChangeKind::Updated,
            },
            fields: values,
            needs_fetch,
            source_ts,
            // Namespaced by side so a Jira delivery id can never collide with an id the
            // other side chose.
            idempotency_key: format!("{}:{delivery_id}", self.side),
            origin: EventOrigin::Webhook,
            comment: None,
        }];
        events.extend(attachment_events);
        Ok(events)
    }

    async fn fetch(&self, id: &str) -> ConnectorResult<Item> {
        let r = self.ready().await?;
        let issue = self
            .client
            .get_issue(check_issue_ref(id)?, &self.read_field_ids(&r))
            .await?;
        self.item_from_issue(&r, &issue)
    }

    async fn create(&self, values: &Fields, link: Option<&str>) -> ConnectorResult<Item> {
        let r = self.ready().await?;
        let (mut body_fields, status) = self.encode_fields(&r, values)?;
        body_fields.insert("project".into(), json!({ "key": self.project }));
        body_fields.insert("issuetype".into(), json!({ "name": self.issue_type }));
        if let (Some(l), Some(other)) = (&r.link, link) {
            body_fields.insert(l.id.clone(), json!(other));
        }
        let created = self
            .client
            .create_issue(&json!({ "fields": body_fields }))
            .await?;
        let id = match created.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            // Jira answered 201 Created: the issue exists but cannot be named, which the
            // worker must know so it never creates another (`ConnectorError::took_effect`).
            _ => {
                return Err(ConnectorError::Permanent {
                    message: "jira: create answered without an issue id".into(),
                    status: Some(201),
                });
            }
        };
        let item = Item {
            id,
            key: created
                .get("key")
                .and_then(Value::as_str)
                .map(str::to_string),
            updated: None,
            fields: values.clone(),
            link: link.map(str::to_string).filter(|_| r.link.is_some()),
            project: Some(self.project.clone()),
            issue_type: Some(self.issue_type.clone()),
        };
        if let Some((name, target)) = status {
            // A new issue starts in its workflow's initial status; it is moved only if the
            // target is another one. The issue exists either way, so a status that cannot
            // be reached is reported with it, not instead of it.
            if let Err(e) = self
                .transition_to(check_issue_ref(&item.id)?, &name, &target)
                .await
            {
                let mut item = item;
                // Where the issue stands now, which the engine records as its status.
                if let (Some(info), Ok(issue)) = (
                    r.fields.get(&name),
                    self.client
                        .get_issue(&item.id, &["status".to_string()])
                        .await,
                ) {
                    let raw = issue.pointer("/fields/status").unwrap_or(&Value::Null);
                    if let Ok(v) = self.read_value(&name, info, raw) {
                        item.fields.insert(name.clone(), v);
                    }
                }
                return Err(Self::status_refused(e, name, Some(item)));
            }
        }
        Ok(item)
    }

    async fn update(&self, id: &str, values: &Fields) -> ConnectorResult<()> {
        let id = check_issue_ref(id)?;
        let r = self.ready().await?;
        let (body_fields, status) = self.encode_fields(&r, values)?;
        if !body_fields.is_empty() {
            self.client
                .edit_issue(id, &json!({ "fields": body_fields }))
                .await?;
        }
        if let Some((name, target)) = status {
            self.transition_to(id, &name, &target)
                .await
                .map_err(|e| Self::status_refused(e, name, None))?;
        }
        Ok(())
    }

    async fn set_link(&self, id: &str, other_id: &str) -> ConnectorResult<()> {
        let id = check_issue_ref(id)?;
        let r = self.ready().await?;
        let Some(link) = &r.link else {
            return Ok(());
        };
        let mut f = Map::new();
        f.insert(link.id.clone(), json!(other_id));
        self.client.edit_issue(id, &json!({ "fields": f })).await
    }

    async fn find_by_link(&self, other_id: &str) -> ConnectorResult<Option<Item>> {
        let r = self.ready().await?;
        let Some(link) = &r.link else {
            return Ok(None);
        };
        if other_id.trim().is_empty() {
            return Ok(None);
        }
        let jql = format!(
            "{} AND {} ~ {}",
            self.project_clause(),
            Self::clause(link),
            jql_phrase(other_id)
        );
        let field_ids = self.read_field_ids(&r);
        let (_, mut cursor) = decode_cursor(self.client.api(), None)?;
        for _ in 0..FIND_PAGES {
            let page = self
                .client
                .search(&jql, &field_ids, PAGE_SIZE, &cursor)
                .await?;
            for issue in &page.issues {
                let item = self.item_from_issue(&r, issue)?;
                // `~` matched words; only an exact value is the twin.
                if item.link.as_deref() == Some(other_id.trim()) {
                    return Ok(Some(item));
                }
            }
            match page.next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        Ok(None)
    }

    async fn changed_since(
        &self,
        since: DateTime<Utc>,
        page: Option<&str>,
    ) -> ConnectorResult<Page> {
        let r = self.ready().await?;
        let (bound, cursor) = decode_cursor(self.client.api(), page)?;
        let bound = bound.unwrap_or_else(|| updated_bound(&since, &Utc::now()));
        let jql = format!(
            "{} AND updated >= {} ORDER BY updated ASC",
            scope_jql(&self.project, &self.filter),
            jql_string(&bound)
        );
        let result = self
            .client
            .search(&jql, &self.read_field_ids(&r), PAGE_SIZE, &cursor)
            .await?;
        let items = result
            .issues
            .iter()
            .map(|i| self.item_from_issue(&r, i))
            .collect::<ConnectorResult<Vec<_>>>()?;
        Ok(Page {
            items,
            next: result.next.as_ref().and_then(|c| encode_cursor(&bound, c)),
        })
    }

    async fn comment(&self, id: &str, text: &str) -> ConnectorResult<()> {
        let id = check_issue_ref(id)?;
        // Marked as Tandem's notice, so comment sync never copies it to the other side.
        let body = json!({
            "body": fields::comment_body(text, self.client.api()),
            "properties": comments::properties(Some(&TandemMark::Notice), false),
        });
        match self.client.add_comment(id, &body).await {
            Ok(_) => Ok(()),
            // Created, with an answer we do not need: the notice is there.
            Err(e) if e.took_effect() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn supports_comments(&self) -> bool {
        true
    }

    fn supports_users(&self) -> bool {
        true
    }

    async fn find_user(
        &self,
        query: super::UserQuery<'_>,
    ) -> ConnectorResult<Option<super::UserRecord>> {
        users::find(&self.client, query).await
    }

    fn supports_internal_comments(&self) -> bool {
        true
    }

    async fn list_comments(&self, id: &str) -> ConnectorResult<Vec<Comment>> {
        comments::list(&self.client, check_issue_ref(id)?).await
    }

    async fn create_comment(&self, id: &str, comment: &NewComment) -> ConnectorResult<String> {
        comments::create(&self.client, check_issue_ref(id)?, comment).await
    }

    async fn update_comment(
        &self,
        id: &str,
        comment_id: &str,
        comment: &NewComment,
    ) -> ConnectorResult<()> {
        comments::update(&self.client, check_issue_ref(id)?, comment_id, comment).await
    }

    async fn delete_comment(&self, id: &str, comment_id: &str) -> ConnectorResult<()> {
        comments::delete(&self.client, check_issue_ref(id)?, comment_id).await
    }

    fn supports_attachments(&self) -> bool {
        true
    }

    async fn list_attachments(&self, id: &str) -> ConnectorResult<Vec<Attachment>> {
        attachments::list(&self.client, check_issue_ref(id)?).await
    }

    async fn download_attachment(
        &self,
        _id: &str,
        attachment: &Attachment,
    ) -> ConnectorResult<Download> {
        attachments::download(&self.client, attachment).await
    }

    async fn upload_attachment(&self, id: &str, file: &Upload<'_>) -> ConnectorResult<Attachment> {
        attachments::upload(&self.client, check_issue_ref(id)?, file).await
    }

    async fn delete_attachment(&self, _id: &str, attachment_id: &str) -> ConnectorResult<()> {
        attachments::delete(&self.client, attachment_id).await
    }

    fn take_write_note(&self, id: &str) -> Option<(String, String)> {
        match self.walks.lock() {
            Ok(mut g) => g.remove(id),
            Err(p) => p.into_inner().remove(id),
        }
    }

    async fn check(&self) -> CheckReport {
        let mut report = CheckReport::default();
        match self.client.myself().await {
            Ok(me) => {
                let name = me.get("displayName").and_then(Value::as_str).unwrap_or("?");
                let login = ["emailAddress", "name", "accountId"]
                    .iter()
                    .find_map(|k| me.get(*k).and_then(Value::as_str))
                    .unwrap_or("?");
                report.identity = format!("{name} <{login}>");
            }
            Err(e) => {
                report.problems.push(format!("credentials: {e}"));
                return report;
            }
        }
        match self.resolve_all().await {
            Ok((resolved, problems)) => {
                for (name, f) in &resolved.fields {
                    report.fields.push(format!("{name} → {}", f.label()));
                }
                if let Some(l) = &resolved.link {
                    report.fields.push(format!("link field → {}", l.label()));
                }
                report.problems.extend(problems);
            }
            Err(e) => report.problems.push(format!("fields: {e}")),
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jql_literals_cannot_be_escaped() {
        assert_eq!(jql_string("TEST"), "\"TEST\"");
        assert_eq!(jql_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(jql_phrase("ABC-1"), r#""\"ABC-1\"""#);
        // `x" OR key = X` stays inside the phrase inside the string.
        assert_eq!(
            jql_phrase(r#"x\" OR key = X"#),
            r#""\"x\\\\\\\" OR key = X\"""#
        );
        assert_eq!(jql_string("a\nb\u{1}"), "\"a\\nb\\u0001\"");
    }

    #[test]
    fn scope_jql_follows_the_filter() {
        let none = FilterConfig::default();
        assert_eq!(scope_jql("TEST", &none), r#"project in ("TEST")"#);
        let f = FilterConfig {
            projects: vec!["A".into(), "B\"x".into()],
            issue_types: vec!["Bug".into()],
            jql: Some("labels = sync OR priority = High".into()),
        };
        assert_eq!(
            scope_jql("TEST", &f),
            r#"project in ("A", "B\"x") AND issuetype in ("Bug") AND (labels = sync OR priority = High)"#
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_the_other_flavour() {
        let t = encode_cursor("-15m", &Cursor::Token(Some("abc|d".into()))).unwrap();
        assert_eq!(
            decode_cursor(Api::Cloud, Some(&t)).unwrap(),
            (Some("-15m".into()), Cursor::Token(Some("abc|d".into())))
        );
        assert!(decode_cursor(Api::DataCenter, Some(&t)).is_err());
        let s = encode_cursor("2025/01/31 10:15", &Cursor::StartAt(100)).unwrap();
        assert_eq!(
            decode_cursor(Api::DataCenter, Some(&s)).unwrap(),
            (Some("2025/01/31 10:15".into()), Cursor::StartAt(100))
        );
        assert!(decode_cursor(Api::DataCenter, Some("s|-1m|x")).is_err());
        // A forged bound cannot smuggle JQL.
        assert!(decode_cursor(Api::DataCenter, Some("s|-1m\" OR x|0")).is_err());
        assert!(decode_cursor(Api::Cloud, Some("garbage")).is_err());
    }

    #[test]
    fn updated_bounds_do_not_depend_on_time_zones() {
        let now = Utc.with_ymd_and_hms(2025, 1, 31, 10, 15, 30).unwrap();
        let b = |secs: i64| updated_bound(&(now - chrono::Duration::seconds(secs)), &now);
        assert_eq!(b(0), "-2m");
        assert_eq!(b(59), "-2m");
        assert_eq!(b(61), "-3m");
        assert_eq!(b(-30), "-2m");
        // Old cursors: absolute, moved back by the widest zone offset.
        assert_eq!(b(30 * 24 * 3600), "2024/12/31 20:15");
    }

    #[test]
    fn issue_refs_are_checked() {
        assert!(check_issue_ref("10001").is_ok());
        assert!(check_issue_ref("TEST-12").is_ok());
        assert!(check_issue_ref("../myself").is_err());
        assert!(check_issue_ref("").is_err());
    }
}
