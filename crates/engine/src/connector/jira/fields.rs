//! Jira field catalogue and value encoding.
//!
//! `GET /rest/api/{3|2}/field` tells us each field's id, display name and schema. The mapping
//! may name a field either way (`summary`, `dueDate`, `"External ID"`, `cf[10050]`), so
//! [`resolve`] finds the one field meant — or says which candidates made the name
//! ambiguous. The schema picks the wire format (JIRA_FACTS §3): a description is ADF on REST
//! v3 and a wiki string on v2 and in webhooks, an option is `{"value"}`, a priority
//! `{"name"}`, an assignee `{"accountId"}` on Cloud and `{"name"}` on Data Center.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};
use tandem_core::FieldValue;
use tandem_core::mapping::FieldType;
use tandem_core::richtext::Doc;

/// Which REST dialect the connector speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Cloud: `/rest/api/3`, ADF rich text, users by `accountId`.
    Cloud,
    /// Data Center: `/rest/api/2`, wiki rich text, users by `name`.
    DataCenter,
}

impl Api {
    pub fn prefix(self) -> &'static str {
        match self {
            Api::Cloud => "/rest/api/3",
            Api::DataCenter => "/rest/api/2",
        }
    }
}

/// How a field's values look on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JiraKind {
    /// Single-line text: a plain string in every dialect.
    Text,
    /// description, environment, textarea custom fields: ADF (v3) or wiki (v2).
    RichText,
    Date,
    DateTime,
    Number,
    /// Single select / radio: `{"value": …}`.
    Option,
    /// Multi select / checkboxes: `[{"value": …}]`.
    OptionList,
    /// priority, resolution: `{"name": …}`.
    Named,
    Labels,
    User,
    /// Read-only; changed through a transition.
    Status,
    /// A type we do not encode specially: read by shape, written as given.
    Other,
}

impl JiraKind {
    /// The canonical value kind this field naturally holds.
    pub fn field_type(self) -> FieldType {
        match self {
            JiraKind::Text | JiraKind::Other => FieldType::Text,
            JiraKind::RichText => FieldType::RichText,
            JiraKind::Date => FieldType::Date,
            JiraKind::DateTime => FieldType::DateTime,
            JiraKind::Number => FieldType::Number,
            JiraKind::Option | JiraKind::Named | JiraKind::Status => FieldType::Option,
            JiraKind::OptionList => FieldType::OptionList,
            JiraKind::Labels => FieldType::Labels,
            JiraKind::User => FieldType::User,
        }
    }

    /// Reads a `JsonTypeBean` (`{"type":"string","system":"description"}`).
    pub fn from_schema(schema: &Value) -> JiraKind {
        let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
        let system = schema.get("system").and_then(Value::as_str).unwrap_or("");
        let custom = schema.get("custom").and_then(Value::as_str).unwrap_or("");
        let items = schema.get("items").and_then(Value::as_str).unwrap_or("");
        if matches!(system, "description" | "environment") || custom.ends_with(":textarea") {
            return JiraKind::RichText;
        }
        match ty {
            "string" => JiraKind::Text,
            "date" => JiraKind::Date,
            "datetime" => JiraKind::DateTime,
            "number" => JiraKind::Number,
            "option" => JiraKind::Option,
            "priority" | "resolution" => JiraKind::Named,
            "status" => JiraKind::Status,
            "user" => JiraKind::User,
            "array" => match items {
                "string" => JiraKind::Labels,
                "option" => JiraKind::OptionList,
                _ => JiraKind::Other,
            },
            _ => JiraKind::Other,
        }
    }

    /// A best guess for well-known system fields, used before the catalogue is loaded.
    pub fn guess(id: &str) -> JiraKind {
        match id {
            "summary" => JiraKind::Text,
            "description" | "environment" => JiraKind::RichText,
            "duedate" => JiraKind::Date,
            "created" | "updated" | "resolutiondate" => JiraKind::DateTime,
            "priority" | "resolution" => JiraKind::Named,
            "labels" => JiraKind::Labels,
            "assignee" | "reporter" => JiraKind::User,
            "status" => JiraKind::Status,
            _ => JiraKind::Other,
        }
    }
}

/// One field of the site's catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldInfo {
    pub id: String,
    pub name: String,
    pub kind: JiraKind,
    /// `customfield_10050` → 10050, for `cf[10050]` in JQL.
    pub custom_id: Option<u64>,
}

impl FieldInfo {
    /// `customfield_10050 (External ID)`, for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.id, self.name)
    }
}

/// Reads the answer of `GET /rest/api/{3|2}/field`, skipping entries without an id.
pub fn parse_catalogue(v: &Value) -> Result<Vec<FieldInfo>, String> {
    let arr = v
        .as_array()
        .ok_or("the field list is not a JSON array".to_string())?;
    let mut out = Vec::with_capacity(arr.len());
    for f in arr {
        let Some(id) = f.get("id").and_then(Value::as_str) else {
            continue;
        };
        let name = f.get("name").and_then(Value::as_str).unwrap_or(id);
        let schema = f.get("schema").cloned().unwrap_or(Value::Null);
        let custom_id = schema
            .get("customId")
            .and_then(Value::as_u64)
            .or_else(|| id.strip_prefix("customfield_")?.parse().ok());
        out.push(FieldInfo {
            id: id.to_string(),
            name: name.to_string(),
            kind: JiraKind::from_schema(&schema),
            custom_id,
        });
    }
    Ok(out)
}

/// Finds the field a mapping means by `name`: an exact id, then an id in any case
/// (`dueDate` → `duedate`), then `cf[N]`, then a display name in any case. A display name
/// shared by several fields is refused with the candidates, since guessing would write to
/// the wrong field.
pub fn resolve(name: &str, catalogue: &[FieldInfo]) -> Result<FieldInfo, String> {
    let wanted = name.trim();
    if let Some(f) = catalogue.iter().find(|f| f.id == wanted) {
        return Ok(f.clone());
    }
    let by_id: Vec<&FieldInfo> = catalogue
        .iter()
        .filter(|f| f.id.eq_ignore_ascii_case(wanted))
        .collect();
    if let [one] = by_id.as_slice() {
        return Ok((*one).clone());
    }
    let lower = wanted.to_ascii_lowercase();
    if let Some(n) = lower
        .strip_prefix("cf[")
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|n| n.trim().parse::<u64>().ok())
        && let Some(f) = catalogue.iter().find(|f| f.custom_id == Some(n))
    {
        return Ok(f.clone());
    }
    let by_name: Vec<&FieldInfo> = catalogue
        .iter()
        .filter(|f| f.name.trim().eq_ignore_ascii_case(wanted))
        .collect();
    match by_name.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "unknown Jira field `{wanted}`: no field has that id or display name"
        )),
        many => Err(format!(
            "Jira field name `{wanted}` is ambiguous: {} fields have it ({}); name the field by id instead",
            many.len(),
            many.iter()
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading values
// ---------------------------------------------------------------------------------------------

/// Parses Jira's timestamps: `2025-01-31T10:15:30.000+0000` (REST) and RFC 3339.
pub fn parse_jira_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    // Some custom datetime fields come back without an offset; Jira means UTC then.
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// Jira's own timestamp form, always in UTC: `2025-01-31T10:15:30.000+0000`.
pub fn format_jira_datetime(dt: &DateTime<Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Decodes one field value as Jira sends it. Rich text is told apart by shape: an object is
/// ADF (REST v3), a string is wiki markup (REST v2 and every webhook).
pub fn decode(kind: JiraKind, raw: &Value) -> Result<FieldValue, String> {
    if raw.is_null() {
        return Ok(FieldValue::Empty);
    }
    let bad = |what: &str| format!("expected {what}, got {}", short(raw));
    Ok(match kind {
        JiraKind::Text => match raw {
            Value::String(s) => FieldValue::Text(s.clone()),
            Value::Number(n) => FieldValue::Text(n.to_string()),
            _ => return Err(bad("a string")),
        },
        JiraKind::RichText => match raw {
            Value::String(s) => FieldValue::RichText(doc_from_wiki(s)),
            Value::Object(_) => FieldValue::RichText(doc_from_adf(raw)?),
            _ => return Err(bad("an ADF document or a wiki string")),
        },
        JiraKind::Date => {
            let s = raw.as_str().ok_or_else(|| bad("a date string"))?;
            // Accept a full timestamp too: a datetime mapped onto a date field.
            match NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d") {
                Ok(d) => FieldValue::Date(d),
                Err(_) => return Err(bad("a YYYY-MM-DD date")),
            }
        }
        JiraKind::DateTime => {
            let s = raw.as_str().ok_or_else(|| bad("a datetime string"))?;
            FieldValue::DateTime(parse_jira_datetime(s).ok_or_else(|| bad("a datetime"))?)
        }
        JiraKind::Number => match raw {
            Value::Number(n) => FieldValue::Number(n.as_f64().ok_or_else(|| bad("a number"))?),
            Value::String(s) => FieldValue::Number(s.trim().parse().map_err(|_| bad("a number"))?),
            _ => return Err(bad("a number")),
        },
        JiraKind::Option | JiraKind::Named | JiraKind::Status => {
            FieldValue::Option(named(raw).ok_or_else(|| bad("an option"))?)
        }
        JiraKind::OptionList => {
            let arr = raw.as_array().ok_or_else(|| bad("an array of options"))?;
            FieldValue::OptionList(arr.iter().filter_map(named).collect())
        }
        JiraKind::Labels => {
            let arr = raw.as_array().ok_or_else(|| bad("an array of labels"))?;
            FieldValue::Labels(
                arr.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            )
        }
        JiraKind::User => {
            let id = ["accountId", "name", "key", "emailAddress"]
                .iter()
                .find_map(|k| raw.get(k).and_then(Value::as_str))
                .or(raw.as_str())
                .ok_or_else(|| bad("a user"))?;
            FieldValue::User(id.to_string())
        }
        JiraKind::Other => match raw {
            Value::String(s) => FieldValue::Text(s.clone()),
            Value::Number(n) => FieldValue::Number(n.as_f64().unwrap_or_default()),
            Value::Bool(b) => FieldValue::Text(b.to_string()),
            Value::Array(a) if a.iter().all(Value::is_string) => FieldValue::Labels(
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            ),
            Value::Array(a) => FieldValue::OptionList(a.iter().filter_map(named).collect()),
            Value::Object(_) => FieldValue::Option(named(raw).ok_or_else(|| bad("a value"))?),
            Value::Null => FieldValue::Empty,
        },
    })
}

/// The human name of an option-like object (`value`, then `name`), or a plain string.
fn named(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => ["value", "name", "id"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str))
            .map(str::to_string),
        _ => None,
    }
}

/// A JSON value cut short for an error message.
fn short(v: &Value) -> String {
    crate::connector::http::quote(&v.to_string())
        .chars()
        .take(80)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Writing values
// ---------------------------------------------------------------------------------------------

/// Converts `value` into the field's natural kind when it arrives as another (the seed maps
/// description and due date to a text field, so a string may be bound for a date).
pub fn coerce(value: &FieldValue, to: FieldType) -> Result<FieldValue, String> {
    if value.is_empty() {
        return Ok(FieldValue::Empty);
    }
    if value.kind() == to.as_str() {
        return Ok(value.clone());
    }
    Ok(match (value, to) {
        (FieldValue::Text(s), FieldType::RichText) => FieldValue::RichText(doc_from_plain(s)),
        (FieldValue::RichText(d), FieldType::Text) => FieldValue::Text(doc_to_plain(d)),
        (FieldValue::DateTime(dt), FieldType::Date) => FieldValue::Date(dt.date_naive()),
        (FieldValue::Option(s), FieldType::Text) | (FieldValue::User(s), FieldType::Text) => {
            FieldValue::Text(s.clone())
        }
        _ => tandem_core::convert::coerce(value.clone(), to).map_err(|e| {
            format!(
                "cannot write a {} value as {}: {}",
                value.kind(),
                to.as_str(),
                e.reason()
            )
        })?,
    })
}

/// Encodes a canonical value for Jira's `fields` object.
pub fn encode(info: &FieldInfo, value: &FieldValue, api: Api) -> Result<Value, String> {
    let v = coerce(value, info.kind.field_type()).map_err(|e| format!("{}: {e}", info.id))?;
    if matches!(v, FieldValue::Empty) {
        // Labels and multi-selects are cleared with an empty list, everything else with null.
        return Ok(match info.kind {
            JiraKind::Labels | JiraKind::OptionList => json!([]),
            _ => Value::Null,
        });
    }
    Ok(match (info.kind, &v) {
        (JiraKind::RichText, FieldValue::RichText(d)) => match api {
            Api::Cloud => doc_to_adf(d),
            Api::DataCenter => Value::String(doc_to_wiki(d)),
        },
        (JiraKind::Date, FieldValue::Date(d)) => json!(d.format("%Y-%m-%d").to_string()),
        (JiraKind::DateTime, FieldValue::DateTime(dt)) => json!(format_jira_datetime(dt)),
        (JiraKind::Number, FieldValue::Number(n)) => {
            // Keep integers integral on the wire (`3`, not `3.0`).
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                json!(*n as i64)
            } else {
                json!(n)
            }
        }
        (JiraKind::Option, FieldValue::Option(s)) => json!({ "value": s }),
        (JiraKind::Named, FieldValue::Option(s)) => json!({ "name": s }),
        (JiraKind::OptionList, FieldValue::OptionList(v)) => {
            Value::Array(v.iter().map(|s| json!({ "value": s })).collect())
        }
        (JiraKind::Labels, FieldValue::Labels(v)) => json!(v),
        (JiraKind::User, FieldValue::User(u)) => match api {
            Api::Cloud => json!({ "accountId": u }),
            Api::DataCenter => json!({ "name": u }),
        },
        (JiraKind::Text, FieldValue::Text(s)) => json!(s),
        (JiraKind::Other, other) => encode_by_kind(other, api),
        (kind, v) => {
            return Err(format!(
                "{}: cannot write a {} value to a {kind:?} field",
                info.id,
                v.kind()
            ));
        }
    })
}

/// For fields of a type we do not know, write the value in its most natural JSON form.
fn encode_by_kind(v: &FieldValue, api: Api) -> Value {
    match v {
        FieldValue::Empty => Value::Null,
        FieldValue::Text(s) => json!(s),
        FieldValue::RichText(d) => match api {
            Api::Cloud => doc_to_adf(d),
            Api::DataCenter => json!(doc_to_wiki(d)),
        },
        FieldValue::Number(n) => json!(n),
        FieldValue::Date(d) => json!(d.format("%Y-%m-%d").to_string()),
        FieldValue::DateTime(dt) => json!(format_jira_datetime(dt)),
        FieldValue::Option(s) => json!({ "value": s }),
        FieldValue::OptionList(v) => {
            Value::Array(v.iter().map(|s| json!({ "value": s })).collect())
        }
        FieldValue::Labels(v) => json!(v),
        FieldValue::User(u) => match api {
            Api::Cloud => json!({ "accountId": u }),
            Api::DataCenter => json!({ "name": u }),
        },
    }
}

/// A comment body: ADF on Cloud, a wiki string on Data Center.
pub fn comment_body(text: &str, api: Api) -> Value {
    match api {
        Api::Cloud => doc_to_adf(&doc_from_plain(text)),
        Api::DataCenter => json!(text),
    }
}

/// Builds the `fields` object of a create or edit from already-encoded pairs.
pub fn fields_object(pairs: impl IntoIterator<Item = (String, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect::<Map<String, Value>>())
}

// ---------------------------------------------------------------------------------------------
// Rich text: one place that knows the core's `Doc` API.
// ---------------------------------------------------------------------------------------------

fn doc_from_adf(v: &Value) -> Result<Doc, String> {
    Doc::from_adf(v).map_err(|e| e.to_string())
}

fn doc_to_adf(d: &Doc) -> Value {
    d.to_adf()
}

fn doc_from_wiki(s: &str) -> Doc {
    Doc::from_wiki(s)
}

fn doc_to_wiki(d: &Doc) -> String {
    d.to_wiki()
}

fn doc_from_plain(s: &str) -> Doc {
    Doc::from_plain(s)
}

fn doc_to_plain(d: &Doc) -> String {
    d.to_plain()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Vec<FieldInfo> {
        parse_catalogue(&json!([
            {"id":"summary","name":"Summary","schema":{"type":"string","system":"summary"}},
            {"id":"duedate","name":"Due date","schema":{"type":"date","system":"duedate"}},
            {"id":"description","name":"Description","schema":{"type":"string","system":"description"}},
            {"id":"customfield_10050","name":"External ID","schema":{"type":"string","custom":"x:textfield","customId":10050}},
            {"id":"customfield_1","name":"Team","schema":{"type":"option","custom":"x:select","customId":1}},
            {"id":"customfield_2","name":"team","schema":{"type":"string","custom":"x:textarea","customId":2}},
            {"id":"labels","name":"Labels","schema":{"type":"array","items":"string","system":"labels"}},
            {"name":"no id"}
        ]))
        .unwrap()
    }

    #[test]
    fn resolves_ids_names_and_refuses_ambiguity() {
        let c = catalogue();
        assert_eq!(c.len(), 7);
        assert_eq!(resolve("dueDate", &c).unwrap().id, "duedate");
        assert_eq!(resolve("external id", &c).unwrap().id, "customfield_10050");
        assert_eq!(resolve("cf[10050]", &c).unwrap().id, "customfield_10050");
        assert_eq!(
            resolve("customfield_2", &c).unwrap().kind,
            JiraKind::RichText
        );
        let err = resolve("TEAM", &c).unwrap_err();
        assert!(
            err.contains("ambiguous") && err.contains("customfield_1, customfield_2"),
            "{err}"
        );
        assert!(
            resolve("Colour", &c)
                .unwrap_err()
                .starts_with("unknown Jira field `Colour`")
        );
    }

    #[test]
    fn datetimes_in_jira_form() {
        let dt = parse_jira_datetime("2025-01-31T10:15:30.000+0100").unwrap();
        assert_eq!(format_jira_datetime(&dt), "2025-01-31T09:15:30.000+0000");
        assert!(parse_jira_datetime("yesterday").is_none());
    }

    #[test]
    fn decode_by_kind_and_never_panic() {
        assert_eq!(
            decode(JiraKind::Named, &json!({"name":"High","id":"2"})).unwrap(),
            FieldValue::Option("High".into())
        );
        assert_eq!(
            decode(JiraKind::User, &json!({"accountId":"abc"})).unwrap(),
            FieldValue::User("abc".into())
        );
        assert!(decode(JiraKind::Date, &json!(12)).is_err());
        assert!(decode(JiraKind::Labels, &json!({"a":1})).is_err());
        assert_eq!(
            decode(JiraKind::Text, &Value::Null).unwrap(),
            FieldValue::Empty
        );
    }

    #[test]
    fn encode_by_schema() {
        let c = catalogue();
        let due = resolve("duedate", &c).unwrap();
        let d = FieldValue::Date(NaiveDate::from_ymd_opt(2025, 1, 31).unwrap());
        assert_eq!(encode(&due, &d, Api::Cloud).unwrap(), json!("2025-01-31"));
        let team = resolve("customfield_1", &c).unwrap();
        assert_eq!(
            encode(&team, &FieldValue::Option("Red".into()), Api::Cloud).unwrap(),
            json!({"value":"Red"})
        );
        let labels = resolve("labels", &c).unwrap();
        assert_eq!(
            encode(&labels, &FieldValue::Empty, Api::Cloud).unwrap(),
            json!([])
        );
    }
}
