//! `tandem check` for a custom REST system: every configured pointer is tried on real items.
//!
//! A pointer that is valid JSON Pointer syntax can still point at nothing (`/isue` for
//! `/issue`), and `serde_json` then silently answers "no value": at run time that is an item
//! without an id, or a field that always reads empty. So the check lists recently changed
//! items through `list_changed`, fetches the first one through `fetch`, and reports each
//! pointer that finds nothing in them at the `file:line` of its key.

use super::{RestConnector, id_text, parse_time};
use crate::config::{RestOperation, RestOperations};
use crate::connector::CheckReport;
use chrono::{Duration, Utc};
use serde_json::Value;
use tandem_core::mapping::FieldType;

/// How far back the check looks for an item to read, widening until one is found: most
/// systems have one changed today, a quiet one this month; past that, any item will do.
const LOOKBACK_DAYS: [i64; 3] = [1, 30, 3650];

impl RestConnector {
    /// Reads items through `list_changed` and `fetch` and reports every pointer that finds
    /// nothing in them.
    pub(super) async fn check_pointers(&self, ops: &RestOperations, report: &mut CheckReport) {
        let mut problem = |key: &str, message: String| {
            report.problems.push(self.key_lines.describe(key, message));
        };
        let mut read: Vec<Value> = Vec::new();
        let mut first_id = None;
        if let Some(op) = &ops.list_changed {
            // "Since now" first: cheap, and it proves the URL and the credentials.
            let mut listed = Vec::new();
            let now = Utc::now();
            let since = std::iter::once(now).chain(LOOKBACK_DAYS.map(|d| now - Duration::days(d)));
            for since in since {
                match self.list_raw(op, since).await {
                    Ok(items) if items.is_empty() => continue,
                    Ok(items) => {
                        listed = items;
                        break;
                    }
                    Err(e) => {
                        report.problems.push(e.to_string());
                        return;
                    }
                }
            }
            let Some(first) = listed.first() else {
                report.notes.push(format!(
                    "no item changed in the last {} days to read: the pointers were not tried",
                    LOOKBACK_DAYS[LOOKBACK_DAYS.len() - 1]
                ));
                return;
            };
            let id_ptr = op.id_pointer.as_deref().unwrap_or("/id");
            first_id = id_text(first.pointer(id_ptr));
            if first_id.is_none() {
                problem(
                    "operations.list_changed.id_pointer",
                    format!(
                        "`{id_ptr}` finds no id in the first listed item ({})",
                        members(first)
                    ),
                );
            }
            check_updated(op, first, "operations.list_changed", &mut problem);
            read.extend(listed);
        }
        match (&ops.fetch, &first_id) {
            (Some(op), Some(id)) => match self.run(op, Some(id), None, None).await {
                Err(e) => problem(
                    "operations.fetch",
                    format!("fetching item `{id}` (listed by list_changed): {e}"),
                ),
                Ok(answer) => match answer.json("rest: item") {
                    Err(e) => problem("operations.fetch", e.to_string()),
                    Ok(v) => {
                        let ptr = op.item_pointer.as_deref().unwrap_or("");
                        match v.pointer(ptr) {
                            Some(item) => {
                                check_updated(op, item, "operations.fetch", &mut problem);
                                read.push(item.clone());
                            }
                            None => problem(
                                "operations.fetch.item_pointer",
                                format!(
                                    "`{ptr}` finds nothing in the answer for item `{id}` ({})",
                                    members(&v)
                                ),
                            ),
                        }
                    }
                },
            },
            (Some(_), None) if ops.list_changed.is_none() => report.notes.push(
                "without `list_changed` there is no item id to try `fetch` with: its pointers \
                 were not tried"
                    .into(),
            ),
            _ => {}
        }
        if read.is_empty() {
            return;
        }
        for fid in self.mapping.fields_on(self.side) {
            let Some(place) = self.places.get(fid) else {
                continue;
            };
            let found: Vec<&Value> = read.iter().filter_map(|i| place.read.read(i)).collect();
            let (key, whose) = match place.entry {
                Some(i) => (format!("fields[{i}].read"), String::new()),
                // No `[[fields]]` entry: the default place, reported at the `fields` list.
                None => ("fields".to_string(), " (its default place)".to_string()),
            };
            let spec = &place.read_spec;
            if found.is_empty() {
                problem(
                    &key,
                    format!(
                        "field `{fid}`: `{spec}`{whose} finds nothing in the {} item{} read \
                         (set the field on an item and check again if it is only empty)",
                        read.len(),
                        if read.len() == 1 { "" } else { "s" }
                    ),
                );
                continue;
            }
            let ty: FieldType = self.declared_type(fid);
            let errors: Vec<String> = found
                .iter()
                .filter_map(|v| super::fields::decode_json(v, ty).err())
                .collect();
            // One readable value proves the place; the others may just be odd items.
            if errors.len() == found.len() {
                problem(
                    &key,
                    format!(
                        "field `{fid}`: `{spec}`{whose} finds {}, which cannot be read: {}",
                        found[0], errors[0]
                    ),
                );
            }
        }
    }
}

/// Reports an `updated_pointer` that finds nothing, or no time, in `item`.
fn check_updated(
    op: &RestOperation,
    item: &Value,
    at: &str,
    problem: &mut impl FnMut(&str, String),
) {
    let Some(ptr) = op.updated_pointer.as_deref() else {
        return;
    };
    match item.pointer(ptr) {
        None => problem(
            &format!("{at}.updated_pointer"),
            format!("`{ptr}` finds nothing in the item ({})", members(item)),
        ),
        Some(v) if parse_time(v).is_none() => problem(
            &format!("{at}.updated_pointer"),
            format!("`{ptr}` finds {v}, which is not a time (RFC 3339 or Unix seconds/millis)"),
        ),
        Some(_) => {}
    }
}

/// The top-level members of a JSON object, to show what a wrong pointer could have meant.
fn members(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            let mut names: Vec<&str> = o.keys().map(String::as_str).take(12).collect();
            if o.len() > names.len() {
                names.push("…");
            }
            format!("it has: {}", names.join(", "))
        }
        Value::Array(a) => format!("it is an array of {}", a.len()),
        other => format!("it is {other}"),
    }
}
