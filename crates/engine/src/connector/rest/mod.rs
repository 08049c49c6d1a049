//! The generic REST/JSON connector.
//!
//! `format = "seed"` (the default) speaks the seed guide's external API exactly
//! (DESIGN §1): `_externalData` bodies with string values, `POST /API/issue[/{id}]`,
//! `GET /API/issue/{id}`, `GET /API/issues?updatedSince=`. `format = "custom"` is described
//! by configuration: each operation's method, path template and body template, JSON Pointers
//! to ids, items and update times, and per field a JSON Pointer or JSONPath to read and a
//! pointer to write — enough to reach common trackers and desks without new code.
//!
//! A REST system has no place that we know of to record the twin's id and no search for it,
//! so `set_link` and `find_by_link` do nothing: the store's links are the record.
//!
//! Comments (`comments.rs`): the seed's comment routes, or a custom system's configured
//! comment operations; plain-text bodies.

mod attachments;
mod check;
pub mod client;
mod comments;
pub mod fields;
pub mod webhook;

use self::client::{RestClient, encode_component};
use self::fields::Reader;
use super::files::{Download, Upload};
use super::http::Answer;
use super::{
    CheckReport, Connector, ConnectorContext, ConnectorError, ConnectorResult, Fields, Item, Page,
    WebhookError,
};
use crate::config::{
    HttpMethod, KeyLines, RestConfig, RestFormat, RestOperation, RestOperations, SinceFormat,
    WebhookPayload,
};
use crate::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use reqwest::Method;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use tandem_core::attachment::Attachment;
use tandem_core::comment::{Comment, NewComment};
use tandem_core::mapping::{FieldType, Mapping};
use tandem_core::{ChangeEvent, ChangeKind, EventOrigin, FieldValue, Side};

/// Where one external field lives in a custom system's JSON.
#[derive(Debug, Clone)]
struct FieldPlace {
    read: Reader,
    /// `read` as configured, for messages.
    read_spec: String,
    /// JSON Pointer inside the `{{fields}}` object; `None` when the field is read-only.
    write: Option<String>,
    /// Its `[[fields]]` entry; `None` when the field sits at its default place.
    entry: Option<usize>,
}

#[derive(Debug)]
enum Format {
    Seed,
    Custom(Box<RestOperations>),
}

pub struct RestConnector {
    side: Side,
    mapping: Mapping,
    client: RestClient,
    format: Format,
    payload: WebhookPayload,
    webhook_token: Option<Secret>,
    webhook_id_pointer: String,
    webhook_event_pointer: Option<String>,
    /// Custom format: where a comment delivery names its comment.
    webhook_comment_pointer: Option<String>,
    /// Where a listed comment's parts are.
    comment_places: comments::CommentPlaces,
    /// Whether comments are read and written here (seed: always; custom: with
    /// `list_comments` and `create_comment`).
    comments_enabled: bool,
    /// Custom format: the `[attachment]` calls; `None`: the seed's routes (seed format) or
    /// no attachments (custom format without the table).
    attachment: Option<crate::config::RestAttachment>,
    /// Origins besides `base_url`'s whose file URLs get the credentials
    /// (`attachment.download.credentials_for`, normalised).
    trusted_origins: Vec<String>,
    /// Custom format: where a delivery names an attachment.
    webhook_attachment_pointer: Option<String>,
    /// External field id → where it lives (custom format).
    places: BTreeMap<String, FieldPlace>,
    /// How `list_changed` writes `{since}` (custom format).
    since_format: SinceFormat,
    /// Where the configuration's keys are, for `check`'s messages.
    key_lines: KeyLines,
    /// Seed format: item id → the `sourceIssueId` (Jira key) last seen on it. The worker
    /// fetches a twin before updating it, so an update can repeat the key the item already
    /// holds instead of overwriting it with the item's own id.
    source_refs: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for RestConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestConnector")
            .field("side", &self.side)
            .field("client", &self.client)
            .field("format", &self.format)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

/// Beyond this many remembered keys the memory is cleared; a miss only costs the seed's own
/// fallback (the item id), never correctness.
const MAX_SOURCE_REFS: usize = 100_000;

/// The default place of field `id`: a top-level member of that name.
fn default_pointer(id: &str) -> String {
    format!("/{}", id.replace('~', "~0").replace('/', "~1"))
}

impl RestConnector {
    pub fn new(cfg: &RestConfig, ctx: ConnectorContext) -> anyhow::Result<Self> {
        let client = RestClient::new(ctx.http, &cfg.base_url, &cfg.auth)?;
        let format = match cfg.format {
            RestFormat::Seed => Format::Seed,
            RestFormat::Custom => {
                Format::Custom(Box::new(cfg.operations.clone().ok_or_else(|| {
                    anyhow::anyhow!("rest: format = \"custom\" needs [operations]")
                })?))
            }
        };
        let mut places = BTreeMap::new();
        for (entry, f) in cfg.fields.iter().enumerate() {
            let read = Reader::parse(&f.read)
                .map_err(|e| anyhow::anyhow!("rest: field `{}`: read {e}", f.id))?;
            let write = f.write_pointer().map(str::to_string);
            if let Some(w) = &write
                && let Err(e) = fields::check_pointer(w)
            {
                anyhow::bail!("rest: field `{}`: write {e}", f.id);
            }
            places.insert(
                f.id.clone(),
                FieldPlace {
                    read,
                    read_spec: f.read.trim().to_string(),
                    write,
                    entry: Some(entry),
                },
            );
        }
        for id in ctx.mapping.fields_on(ctx.side) {
            places.entry(id.to_string()).or_insert_with(|| FieldPlace {
                read: Reader::Pointer(default_pointer(id)),
                read_spec: default_pointer(id),
                write: Some(default_pointer(id)),
                entry: None,
            });
        }
        let since_format = SinceFormat::parse(
            cfg.operations
                .as_ref()
                .and_then(|o| o.list_changed.as_ref())
                .and_then(|l| l.since_format.as_deref()),
        )
        .map_err(|e| anyhow::anyhow!("rest: list_changed.since_format: {e}"))?;
        let (id_ptr, event_ptr, comment_ptr, attachment_ptr) = match &cfg.webhook {
            Some(w) => (
                w.id_pointer.clone(),
                w.event_pointer.clone(),
                w.comment_id_pointer.clone(),
                w.attachment_id_pointer.clone(),
            ),
            None => ("/id".to_string(), None, None, None),
        };
        let attachment = match cfg.format {
            RestFormat::Seed => None,
            RestFormat::Custom => cfg.attachment.clone(),
        };
        let trusted_origins = attachment
            .iter()
            .flat_map(|a| a.download.iter())
            .flat_map(|d| d.credentials_for.iter())
            .map(|o| {
                crate::config::attachment_origin(o)
                    .map_err(|e| anyhow::anyhow!("rest: attachment.download.credentials_for: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (comment_places, comments_enabled) = match (&cfg.format, &cfg.operations) {
            (RestFormat::Seed, _) => (comments::CommentPlaces::seed(), true),
            (RestFormat::Custom, Some(ops)) => match &cfg.comment {
                Some(c) if ops.list_comments.is_some() && ops.create_comment.is_some() => (
                    comments::CommentPlaces::custom(ops.list_comments.as_ref(), c),
                    true,
                ),
                _ => (comments::CommentPlaces::seed(), false),
            },
            (RestFormat::Custom, None) => (comments::CommentPlaces::seed(), false),
        };
        Ok(RestConnector {
            side: ctx.side,
            mapping: ctx.mapping,
            client,
            format,
            payload: cfg.webhook_payload,
            webhook_token: cfg.webhook_token.clone().filter(|t| !t.is_empty()),
            webhook_id_pointer: id_ptr,
            webhook_event_pointer: event_ptr,
            webhook_comment_pointer: comment_ptr,
            comment_places,
            comments_enabled,
            attachment,
            trusted_origins,
            webhook_attachment_pointer: attachment_ptr,
            places,
            since_format,
            key_lines: cfg.key_lines.clone(),
            source_refs: Mutex::new(HashMap::new()),
        })
    }

    fn is_mapped(&self, id: &str) -> bool {
        self.mapping.by_field(self.side, id).next().is_some()
    }

    fn declared_type(&self, id: &str) -> FieldType {
        self.mapping
            .by_field(self.side, id)
            .next()
            .map_or(FieldType::Text, |m| m.field_type)
    }

    /// The other side's field name for `id`, which the seed sends as `fieldName`.
    fn field_name(&self, id: &str) -> String {
        self.mapping.by_field(self.side, id).next().map_or_else(
            || id.to_string(),
            |m| m.field_on(self.side.other()).to_string(),
        )
    }

    fn remember_source_ref(&self, id: &str, source_ref: &str) {
        let mut refs = self.source_refs.lock().unwrap_or_else(|e| e.into_inner());
        if refs.len() >= MAX_SOURCE_REFS {
            refs.clear();
        }
        refs.insert(id.to_string(), source_ref.to_string());
    }

    fn source_ref(&self, id: &str) -> Option<String> {
        let refs = self.source_refs.lock().unwrap_or_else(|e| e.into_inner());
        refs.get(id).cloned()
    }

    fn check_id(id: &str) -> ConnectorResult<&str> {
        // `.` and `..` would be read as path navigation even when percent-encoded.
        if id.trim().is_empty() || id == "." || id == ".." {
            Err(ConnectorError::permanent(format!(
                "rest: `{id}` is not an item id"
            )))
        } else {
            Ok(id)
        }
    }

    // ---- seed format ------------------------------------------------------------------------

    fn seed_body(&self, source_issue_id: &str, values: &Fields) -> Value {
        let list: Vec<Value> = values
            .iter()
            .map(|(id, v)| {
                // The seed's fieldId is a number; ids that are not numbers go as strings.
                let field_id = id
                    .trim()
                    .parse::<u64>()
                    .map_or_else(|_| json!(id), |n| json!(n));
                json!({
                    "fieldName": self.field_name(id),
                    "fieldId": field_id,
                    "value": fields::encode_text(v),
                })
            })
            .collect();
        json!({ "sourceIssueId": source_issue_id, "fields": list })
    }

    fn seed_item(&self, v: &Value) -> ConnectorResult<Item> {
        let id = id_text(v.get("id"))
            .ok_or_else(|| ConnectorError::permanent("rest: item without an `id`"))?;
        let mut values = Fields::new();
        let listed = v.get("fields").and_then(Value::as_array);
        for f in listed.into_iter().flatten() {
            let Some(fid) = id_text(f.get("fieldId")) else {
                continue;
            };
            if !self.is_mapped(&fid) {
                continue;
            }
            match fields::decode_text(f.get("value"), self.declared_type(&fid)) {
                Ok(val) => {
                    values.insert(fid, val);
                }
                Err(e) => {
                    tracing::warn!(item = %id, field = %fid, error = %e, "rest: cannot read field")
                }
            }
        }
        // The seed lists the fields an item has; a mapped field it lacks is empty.
        for fid in self.mapping.fields_on(self.side) {
            values.entry(fid.to_string()).or_insert(FieldValue::Empty);
        }
        let link = id_text(v.get("sourceIssueId")).filter(|s| *s != id);
        if let Some(l) = &link {
            self.remember_source_ref(&id, l);
        }
        Ok(Item {
            updated: v.get("updated").and_then(parse_time),
            id,
            key: None,
            fields: values,
            link,
            project: None,
            issue_type: None,
        })
    }

    // ---- custom format ----------------------------------------------------------------------

    fn ops(&self) -> Option<&RestOperations> {
        match &self.format {
            Format::Custom(ops) => Some(ops),
            Format::Seed => None,
        }
    }

    /// The `{{fields}}` object: each value at its write pointer.
    fn custom_fields_object(&self, values: &Fields) -> ConnectorResult<Value> {
        let mut obj = Value::Object(Map::new());
        for (id, v) in values {
            let place = self.places.get(id);
            let Some(ptr) = place.and_then(|p| p.write.as_deref()) else {
                return Err(ConnectorError::permanent(format!(
                    "rest: field `{id}` has no `write` pointer, so it cannot be written"
                )));
            };
            fields::set_pointer(&mut obj, ptr, fields::encode_json(v))
                .map_err(|e| ConnectorError::permanent(format!("rest: field `{id}`: {e}")))?;
        }
        Ok(obj)
    }

    /// Renders an operation: path with `{id}`/`{since}` encoded, body from its template.
    async fn run(
        &self,
        op: &RestOperation,
        id: Option<&str>,
        since: Option<&str>,
        values: Option<&Fields>,
    ) -> ConnectorResult<Answer> {
        let mut path = op.path.clone();
        if let Some(id) = id {
            path = path.replace("{id}", &encode_component(id));
        }
        if let Some(s) = since {
            path = path.replace("{since}", &encode_component(s));
        }
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let body = match values {
            None => None,
            Some(values) => {
                let obj = self.custom_fields_object(values)?;
                Some(match &op.body {
                    None => obj,
                    Some(template) => render_body(template, &obj, id)?,
                })
            }
        };
        self.client
            .call(method(op.method), &path, body.as_ref())
            .await
    }

    fn custom_item(
        &self,
        item: &Value,
        id: Option<String>,
        op: &RestOperation,
    ) -> ConnectorResult<Item> {
        let id = id
            .or_else(|| id_text(item.pointer(op.id_pointer.as_deref().unwrap_or("/id"))))
            .ok_or_else(|| ConnectorError::permanent("rest: item without an id"))?;
        let mut values = Fields::new();
        for fid in self.mapping.fields_on(self.side) {
            let Some(place) = self.places.get(fid) else {
                continue;
            };
            let raw = place.read.read(item).unwrap_or(&Value::Null);
            match fields::decode_json(raw, self.declared_type(fid)) {
                Ok(v) => {
                    values.insert(fid.to_string(), v);
                }
                Err(e) => {
                    tracing::warn!(item = %id, field = %fid, error = %e, "rest: cannot read field")
                }
            }
        }
        Ok(Item {
            updated: op
                .updated_pointer
                .as_deref()
                .and_then(|p| item.pointer(p))
                .and_then(parse_time),
            id,
            key: None,
            fields: values,
            link: None,
            project: None,
            issue_type: None,
        })
    }

    /// The items `list_changed` answers for `since`, as JSON.
    async fn list_raw(
        &self,
        op: &RestOperation,
        since: DateTime<Utc>,
    ) -> ConnectorResult<Vec<Value>> {
        let since_text = self.since_format.render(since, op.since_overlap());
        let mut v = self
            .run(op, None, Some(&since_text), None)
            .await?
            .json("rest: changed items")?;
        let ptr = op.items_pointer.as_deref().unwrap_or("");
        match v.pointer_mut(ptr).map(Value::take) {
            Some(Value::Array(list)) => Ok(list),
            _ => Err(ConnectorError::permanent(format!(
                "rest: the listing has no array at items_pointer `{ptr}`"
            ))),
        }
    }

    fn missing_op(what: &str) -> ConnectorError {
        ConnectorError::permanent(format!(
            "rest: no `{what}` operation is configured for this system"
        ))
    }
}

fn method(m: HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
    }
}

/// Fills a body template: `{{fields}}` (quoted or not) becomes the fields object and
/// `{{id}}` the item id as a JSON string. Substitution happens on parsed JSON, so a value
/// can never change the template's structure.
fn render_body(template: &str, fields_obj: &Value, id: Option<&str>) -> ConnectorResult<Value> {
    let id = id.map_or(Value::Null, |i| json!(i));
    render_template(template, &[("fields", fields_obj.clone()), ("id", id)])
}

/// Fills `{{name}}` (quoted or not) in a JSON template with `values`' JSON. Each placeholder
/// is first made a marker string, the template parsed, and the markers replaced in the
/// parsed value, so a value can never change the template's structure.
fn render_template(template: &str, values: &[(&str, Value)]) -> ConnectorResult<Value> {
    let marker = |name: &str| format!("\u{0}tandem-{name}\u{0}");
    let mut text = template.to_string();
    for (name, _) in values {
        let escaped = format!("\"\\u0000tandem-{name}\\u0000\"");
        text = text
            .replace(&format!("\"{{{{{name}}}}}\""), &escaped)
            .replace(&format!("{{{{{name}}}}}"), &escaped);
    }
    let mut v: Value = serde_json::from_str(&text).map_err(|e| {
        ConnectorError::permanent(format!("rest: the body template is not JSON: {e}"))
    })?;
    let markers: Vec<(String, &Value)> = values.iter().map(|(n, v)| (marker(n), v)).collect();
    fn fill(v: &mut Value, markers: &[(String, &Value)]) {
        match v {
            Value::String(s) => {
                if let Some((_, with)) = markers.iter().find(|(m, _)| m == s) {
                    *v = (*with).clone();
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| fill(x, markers)),
            Value::Object(o) => o.values_mut().for_each(|x| fill(x, markers)),
            _ => {}
        }
    }
    fill(&mut v, &markers);
    Ok(v)
}

/// An id that may be a string or a number.
fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// RFC 3339 text, or epoch seconds / milliseconds as a number.
fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|d| d.with_timezone(&Utc))
            .or_else(|| super::jira::fields::parse_jira_datetime(s)),
        Value::Number(n) => {
            let n = n.as_i64()?;
            // Anything past 1e11 is milliseconds (1e11 seconds is the year 5138).
            if n.abs() >= 100_000_000_000 {
                Utc.timestamp_millis_opt(n).single()
            } else {
                Utc.timestamp_opt(n, 0).single()
            }
        }
        _ => None,
    }
}

#[async_trait]
impl Connector for RestConnector {
    fn kind(&self) -> &'static str {
        "rest"
    }

    /// Nothing to resolve: external field ids are used as configured.
    async fn prepare(&self) -> ConnectorResult<()> {
        Ok(())
    }

    fn parse_webhook(
        &self,
        connection: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<ChangeEvent>, WebhookError> {
        if let Some(token) = &self.webhook_token {
            webhook::verify_bearer(token, headers)?;
        }
        let v = webhook::parse_json(body)?;
        if matches!(self.format, Format::Seed)
            && let Some(e) = self.parse_seed_attachment(connection, &v, now)?
        {
            return Ok(vec![e]);
        }
        if let Some(e) = self.parse_custom_attachment(connection, headers, body, &v, now)? {
            return Ok(vec![e]);
        }
        // A comment delivery is one `Commented` event, whatever the payload setting.
        let comment = match &self.format {
            Format::Seed => self.parse_seed_comment(connection, headers, body, &v, now)?,
            Format::Custom(_) => self.parse_custom_comment(connection, headers, body, &v, now)?,
        };
        if let Some(e) = comment {
            return Ok(vec![e]);
        }
        let key =
            webhook::delivery_id(headers).unwrap_or_else(|| hex::encode(Sha256::digest(body)));
        let event = |item_id: String, kind, values, needs_fetch| ChangeEvent {
            connection: connection.to_string(),
            source: self.side,
            item_id,
            item_key: None,
            kind,
            fields: values,
            needs_fetch,
            // Neither the seed nor a bare id carries a change time; arrival is the best
            // estimate, and the poller's `updated` corrects it when it differs.
            source_ts: now,
            idempotency_key: format!("{}:{key}", self.side),
            origin: EventOrigin::Webhook,
            comment: None,
        };
        let kind_of = |name: Option<&str>| match name.map(str::to_ascii_lowercase).as_deref() {
            Some("created" | "create" | "item.created" | "issue_created") => ChangeKind::Created,
            _ => ChangeKind::Updated,
        };
        match (self.payload, &self.format) {
            (WebhookPayload::IdOnly, _) => {
                let (id, name) = webhook::parse_id_only(
                    &v,
                    &self.webhook_id_pointer,
                    self.webhook_event_pointer.as_deref(),
                )?;
                Ok(vec![event(
                    id,
                    kind_of(name.as_deref()),
                    BTreeMap::new(),
                    true,
                )])
            }
            (WebhookPayload::Full, Format::Seed) => {
                let d = webhook::parse_seed(&v)?;
                let mut values = BTreeMap::new();
                for (i, f) in d.fields.iter().enumerate() {
                    if !self.is_mapped(&f.field_id) {
                        continue;
                    }
                    match fields::decode_text(Some(&f.value), self.declared_type(&f.field_id)) {
                        Ok(val) => {
                            values.insert(f.field_id.clone(), val);
                        }
                        // A value the mapping's type cannot hold is refused with its path,
                        // so the sender sees what to fix.
                        Err(e) => {
                            return Err(WebhookError::Shape {
                                path: format!("/fields/{i}/value"),
                                message: format!("field {}: {e}", f.field_id),
                            });
                        }
                    }
                }
                // Nothing we map changed: acknowledged, nothing to queue.
                if values.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![event(
                    d.source_issue_id,
                    ChangeKind::Updated,
                    values,
                    false,
                )])
            }
            (WebhookPayload::Full, Format::Custom(_)) => {
                // A custom system's full delivery is the item itself.
                let (id, name) = webhook::parse_id_only(
                    &v,
                    &self.webhook_id_pointer,
                    self.webhook_event_pointer.as_deref(),
                )?;
                let mut values = BTreeMap::new();
                for fid in self.mapping.fields_on(self.side) {
                    let Some(place) = self.places.get(fid) else {
                        continue;
                    };
                    let Some(raw) = place.read.read(&v) else {
                        continue;
                    };
                    let val = fields::decode_json(raw, self.declared_type(fid)).map_err(|e| {
                        WebhookError::Shape {
                            // A JSONPath has no single JSON Pointer to name; the message
                            // names the field instead.
                            path: match &place.read {
                                Reader::Pointer(p) => p.clone(),
                                Reader::Path(_) => String::new(),
                            },
                            message: format!("field {fid}: {e}"),
                        }
                    })?;
                    values.insert(fid.to_string(), val);
                }
                if values.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![event(id, kind_of(name.as_deref()), values, false)])
            }
        }
    }

    async fn fetch(&self, id: &str) -> ConnectorResult<Item> {
        let id = Self::check_id(id)?;
        match &self.format {
            Format::Seed => {
                let path = format!("/API/issue/{}", encode_component(id));
                let v = self
                    .client
                    .call(Method::GET, &path, None)
                    .await?
                    .json("rest: item")?;
                self.seed_item(&v)
            }
            Format::Custom(ops) => {
                let op = ops
                    .fetch
                    .as_ref()
                    .ok_or_else(|| Self::missing_op("fetch"))?;
                let v = self
                    .run(op, Some(id), None, None)
                    .await?
                    .json("rest: item")?;
                let item = match op.item_pointer.as_deref() {
                    Some(p) => v.pointer(p).ok_or_else(|| {
                        ConnectorError::permanent(format!(
                            "rest: the answer has nothing at item_pointer `{p}`"
                        ))
                    })?,
                    None => &v,
                };
                self.custom_item(item, Some(id.to_string()), op)
            }
        }
    }

    async fn create(&self, values: &Fields, link: Option<&str>) -> ConnectorResult<Item> {
        let answered = match &self.format {
            Format::Seed => {
                let body = self.seed_body(link.unwrap_or(""), values);
                self.client
                    .call(Method::POST, "/API/issue", Some(&body))
                    .await?
            }
            Format::Custom(ops) => {
                let op = ops
                    .create
                    .as_ref()
                    .ok_or_else(|| Self::missing_op("create"))?;
                self.run(op, None, None, Some(values)).await?
            }
        };
        let answer = answered.json("rest: created item")?;
        let pointer = self
            .ops()
            .and_then(|o| o.create.as_ref())
            .and_then(|op| op.id_pointer.clone())
            .unwrap_or_else(|| "/id".to_string());
        // The item was made (a success status): the status goes with the error, so the
        // worker knows a twin exists that it cannot name (`ConnectorError::took_effect`).
        let id = id_text(answer.pointer(&pointer)).ok_or_else(|| ConnectorError::Permanent {
            message: format!(
                "rest: create answered without an id at `{pointer}`: {}",
                super::http::quote(&answer.to_string())
            ),
            status: Some(answered.status.as_u16()),
        })?;
        if let Some(l) = link {
            self.remember_source_ref(&id, l);
        }
        Ok(Item {
            id,
            key: None,
            updated: None,
            fields: values.clone(),
            link: link.map(str::to_string),
            project: None,
            issue_type: None,
        })
    }

    async fn update(&self, id: &str, values: &Fields) -> ConnectorResult<()> {
        let id = Self::check_id(id)?;
        if values.is_empty() {
            return Ok(());
        }
        match &self.format {
            Format::Seed => {
                // The Jira key the item already records; failing that, the item's own id,
                // as the seed's outgoing script sends.
                let source_ref = self.source_ref(id).unwrap_or_else(|| id.to_string());
                let body = self.seed_body(&source_ref, values);
                let path = format!("/API/issue/{}", encode_component(id));
                self.client.call(Method::POST, &path, Some(&body)).await?;
            }
            Format::Custom(ops) => {
                self.run(&ops.update, Some(id), None, Some(values)).await?;
            }
        }
        Ok(())
    }

    async fn set_link(&self, _id: &str, _other_id: &str) -> ConnectorResult<()> {
        Ok(())
    }

    async fn find_by_link(&self, _other_id: &str) -> ConnectorResult<Option<Item>> {
        Ok(None)
    }

    async fn changed_since(
        &self,
        since: DateTime<Utc>,
        page: Option<&str>,
    ) -> ConnectorResult<Page> {
        // Both formats list everything changed in one answer; there is no second page.
        if page.is_some() {
            return Ok(Page::default());
        }
        match &self.format {
            Format::Seed => {
                let since_text = since.to_rfc3339_opts(SecondsFormat::Millis, true);
                let path = format!("/API/issues?updatedSince={}", encode_component(&since_text));
                let v = self
                    .client
                    .call(Method::GET, &path, None)
                    .await?
                    .json("rest: changed items")?;
                let list = v.get("issues").and_then(Value::as_array).ok_or_else(|| {
                    ConnectorError::permanent("rest: the listing has no `issues` array")
                })?;
                let items = list
                    .iter()
                    .map(|i| self.seed_item(i))
                    .collect::<ConnectorResult<Vec<_>>>()?;
                Ok(Page { items, next: None })
            }
            Format::Custom(ops) => {
                let op = ops
                    .list_changed
                    .as_ref()
                    .ok_or_else(|| Self::missing_op("list_changed"))?;
                let items = self
                    .list_raw(op, since)
                    .await?
                    .iter()
                    .map(|i| self.custom_item(i, None, op))
                    .collect::<ConnectorResult<Vec<_>>>()?;
                Ok(Page { items, next: None })
            }
        }
    }

    async fn comment(&self, _id: &str, _text: &str) -> ConnectorResult<()> {
        Ok(())
    }

    fn supports_comments(&self) -> bool {
        self.comments_enabled
    }

    /// The seed's attachment routes, or a custom system's `[attachment]` calls.
    fn supports_attachments(&self) -> bool {
        matches!(self.format, Format::Seed) || self.attachment.is_some()
    }

    async fn list_attachments(&self, id: &str) -> ConnectorResult<Vec<Attachment>> {
        self.list_attachments_impl(id).await
    }

    async fn download_attachment(
        &self,
        id: &str,
        attachment: &Attachment,
    ) -> ConnectorResult<Download> {
        self.download_attachment_impl(id, attachment).await
    }

    async fn upload_attachment(&self, id: &str, file: &Upload<'_>) -> ConnectorResult<Attachment> {
        self.upload_attachment_impl(id, file).await
    }

    async fn delete_attachment(&self, id: &str, attachment_id: &str) -> ConnectorResult<()> {
        self.delete_attachment_impl(id, attachment_id).await
    }

    fn supports_internal_comments(&self) -> bool {
        self.comments_enabled && self.comment_places.has_internal()
    }

    async fn list_comments(&self, id: &str) -> ConnectorResult<Vec<Comment>> {
        self.list_comments_impl(id).await
    }

    async fn create_comment(&self, id: &str, comment: &NewComment) -> ConnectorResult<String> {
        self.create_comment_impl(id, comment).await
    }

    async fn update_comment(
        &self,
        id: &str,
        comment_id: &str,
        comment: &NewComment,
    ) -> ConnectorResult<()> {
        self.update_comment_impl(id, comment_id, comment).await
    }

    async fn delete_comment(&self, id: &str, comment_id: &str) -> ConnectorResult<()> {
        self.delete_comment_impl(id, comment_id).await
    }

    async fn check(&self) -> CheckReport {
        let mut report = CheckReport {
            identity: format!(
                "{} (credentials in the {} header)",
                self.client.base(),
                self.client.auth_scheme()
            ),
            ..CheckReport::default()
        };
        for fid in self.mapping.fields_on(self.side) {
            report
                .fields
                .push(format!("{fid} → {}", self.field_name(fid)));
        }
        match &self.format {
            // A listing since "now" is cheap and proves the URL and the credentials.
            Format::Seed => {
                if let Err(e) = self.changed_since(Utc::now(), None).await {
                    report.problems.push(e.to_string());
                }
            }
            // The same listing, then every configured pointer tried on real items.
            Format::Custom(ops) => self.check_pointers(ops, &mut report).await,
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_templates_are_filled_structurally() {
        let obj = json!({"subject": "x\"}, \"evil\": {"});
        let v = render_body(
            r#"{"ticket": {{fields}}, "ref": "{{id}}"}"#,
            &obj,
            Some("7"),
        )
        .unwrap();
        assert_eq!(v, json!({"ticket": obj, "ref": "7"}));
        assert!(render_body("{nope", &obj, None).is_err());
    }

    #[test]
    fn times_in_several_forms() {
        assert!(parse_time(&json!("2025-01-31T10:00:00Z")).is_some());
        assert_eq!(
            parse_time(&json!(1_700_000_000_000_i64)),
            parse_time(&json!(1_700_000_000))
        );
        assert!(parse_time(&json!(true)).is_none());
    }
}
