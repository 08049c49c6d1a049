//! Field values as script values and back.
//!
//! Scripts see plain values so that rules read naturally (`fields.priority == "Urgent"`,
//! `item.fields.labels[0]`):
//!
//! | [`FieldValue`]            | script value                                   |
//! | ------------------------- | ---------------------------------------------- |
//! | `Empty`                   | `()`                                           |
//! | `Text`, `Option`, `User`  | string                                         |
//! | `RichText`                | string: its plain text                         |
//! | `Number`                  | float                                          |
//! | `Date`                    | string `"2025-01-31"`                          |
//! | `DateTime`                | string, RFC 3339 in UTC `"2025-01-31T14:39:00Z"` |
//! | `OptionList`, `Labels`    | array of strings                               |
//!
//! On the way back the *kind* comes from the value the field had before the script ran (a
//! string returned for an `Option` field is an `Option`), so a value the script did not touch
//! comes back exactly as it went in. Rich text travels as plain text because that is what a
//! rule compares or edits; a description the script leaves unchanged keeps its formatting,
//! one it changes is rebuilt from the new plain text (paragraphs kept, styling lost). A field
//! the script adds, or one that was empty, has no kind yet: a string is text, a number is a
//! number, an array of strings is labels; the engine converts such values to the type the
//! mapping gives the field.

use rhai::{Array, Dynamic, ImmutableString, Map};
use std::collections::BTreeMap;
use tandem_core::convert::{parse_date, parse_datetime, to_text};
use tandem_core::{ChangeEvent, ChangeKind, Doc, EventOrigin, FieldValue, Side};

/// A field value as the script sees it.
pub fn to_dynamic(value: &FieldValue) -> Dynamic {
    match value {
        FieldValue::Empty => Dynamic::UNIT,
        FieldValue::Text(s) | FieldValue::Option(s) | FieldValue::User(s) => str_value(s),
        FieldValue::RichText(doc) => str_value(&doc.to_plain()),
        FieldValue::Number(n) => Dynamic::from_float(*n),
        // `to_text` writes dates as `YYYY-MM-DD` and date-times as RFC 3339 with as many
        // fraction digits as needed, which `parse_date`/`parse_datetime` read back exactly.
        FieldValue::Date(_) | FieldValue::DateTime(_) => str_value(&to_text(value)),
        FieldValue::OptionList(items) | FieldValue::Labels(items) => {
            Dynamic::from_array(items.iter().map(|s| str_value(s)).collect())
        }
    }
}

fn str_value(s: &str) -> Dynamic {
    Dynamic::from(ImmutableString::from(s))
}

/// A map of fields as a script object map.
pub fn fields_to_dynamic(fields: &BTreeMap<String, FieldValue>) -> Dynamic {
    let map: Map = fields
        .iter()
        .map(|(k, v)| (k.as_str().into(), to_dynamic(v)))
        .collect();
    Dynamic::from_map(map)
}

/// Reads a script value back as the value of field `field`.
///
/// `before` is the field's value before the script ran, which gives the kind (see the module
/// documentation). `()` is [`FieldValue::Empty`]. The error names the field and says what
/// was expected and what was returned.
pub fn from_dynamic(
    field: &str,
    value: &Dynamic,
    before: Option<&FieldValue>,
) -> Result<FieldValue, String> {
    if value.is_unit() {
        return Ok(FieldValue::Empty);
    }
    let wrong = |expected: &str| {
        format!(
            "field `{field}` must be {expected}, got {} {}",
            article(value.type_name()),
            short(value)
        )
    };
    let string = || -> Option<String> {
        if value.is_string() {
            value.clone().into_string().ok()
        } else if value.is_char() {
            value.as_char().ok().map(String::from)
        } else {
            None
        }
    };
    let strings = || -> Result<Vec<String>, String> {
        let Some(items) = value.read_lock::<Array>() else {
            return Err(wrong("an array of strings"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                if item.is_string() {
                    Ok(item.clone().into_string().unwrap_or_default())
                } else {
                    Err(format!(
                        "field `{field}` must be an array of strings, but element {i} is {} {}",
                        article(item.type_name()),
                        short(item)
                    ))
                }
            })
            .collect()
    };
    let number = || -> Option<f64> {
        value
            .as_float()
            .ok()
            .or_else(|| value.as_int().ok().map(|n| n as f64))
    };
    // An empty string clears a field of any kind, as an empty cell does in a mapping.
    let text_kind = |make: fn(String) -> FieldValue| -> Result<FieldValue, String> {
        match string() {
            Some(s) if s.is_empty() => Ok(FieldValue::Empty),
            Some(s) => Ok(make(s)),
            None => Err(wrong("a string")),
        }
    };
    match before {
        Some(FieldValue::Text(_)) => match string() {
            Some(s) => Ok(FieldValue::Text(s)),
            None => Err(wrong("a string")),
        },
        Some(FieldValue::Option(_)) => text_kind(FieldValue::Option),
        Some(FieldValue::User(_)) => text_kind(FieldValue::User),
        Some(FieldValue::RichText(doc)) => match string() {
            // Unchanged plain text: keep the document with its formatting.
            Some(s) if s == doc.to_plain() => Ok(FieldValue::RichText(doc.clone())),
            Some(s) if s.is_empty() => Ok(FieldValue::Empty),
            Some(s) => Ok(FieldValue::RichText(Doc::from_plain(&s))),
            None => Err(wrong("a string")),
        },
        Some(FieldValue::Number(_)) => number()
            .map(FieldValue::Number)
            .ok_or_else(|| wrong("a number")),
        Some(FieldValue::Date(_)) => match string() {
            Some(s) if s.trim().is_empty() => Ok(FieldValue::Empty),
            Some(s) => parse_date(&s)
                .map(FieldValue::Date)
                .map_err(|e| format!("field `{field}`: {e}")),
            None => Err(wrong("a date string such as \"2025-01-31\"")),
        },
        Some(FieldValue::DateTime(_)) => match string() {
            Some(s) if s.trim().is_empty() => Ok(FieldValue::Empty),
            Some(s) => parse_datetime(&s)
                .map(FieldValue::DateTime)
                .map_err(|e| format!("field `{field}`: {e}")),
            None => Err(wrong("a date-time string such as \"2025-01-31T14:39:00Z\"")),
        },
        Some(FieldValue::OptionList(_)) => strings().map(FieldValue::OptionList),
        Some(FieldValue::Labels(_)) => strings().map(FieldValue::Labels),
        // No kind known: infer one from the script value.
        Some(FieldValue::Empty) | None => {
            if let Some(s) = string() {
                Ok(if s.is_empty() {
                    FieldValue::Empty
                } else {
                    FieldValue::Text(s)
                })
            } else if let Some(n) = number() {
                Ok(FieldValue::Number(n))
            } else if value.is_array() {
                strings().map(FieldValue::Labels)
            } else {
                Err(wrong("a string, a number or an array of strings"))
            }
        }
    }
}

fn article(type_name: &str) -> String {
    let short = type_name.rsplit("::").next().unwrap_or(type_name);
    match short.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {short}"),
        _ => format!("a {short}"),
    }
}

/// A value as shown in an error message: short and built in bounded time, since a script
/// may return a map of ten thousand entries or containers nested thousands deep.
pub(crate) fn short(value: &Dynamic) -> String {
    let shown = if let Some(items) = value.read_lock::<Array>() {
        format!("of {} elements", items.len())
    } else if let Some(map) = value.read_lock::<Map>() {
        format!("of {} entries", map.len())
    } else if value.is_string() {
        let s = value.clone().into_string().unwrap_or_default();
        let mut cut: String = s.chars().take(40).collect();
        if cut.len() < s.len() {
            cut.push_str("...");
        }
        format!("{cut:?}")
    } else {
        let mut s = value.to_string();
        if s.chars().count() > 40 {
            s = s.chars().take(40).collect::<String>() + "...";
        }
        s
    };
    format!("({shown})")
}

/// What a hook learns about the item a change is about.
///
/// In scripts it is an object map:
/// `#{ side: "jira" | "external", id: "10001", key: "TEST-1" or (), fields: #{ ... } }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemView {
    /// The side the item lives on.
    pub side: Option<Side>,
    /// Its stable id on that side.
    pub id: String,
    /// Its human-friendly key, when the side has one (Jira's `TEST-12`).
    pub key: Option<String>,
    /// All of the item's raw fields known, keyed by that side's field ids, before mapping.
    pub fields: BTreeMap<String, FieldValue>,
}

impl ItemView {
    /// The item an event is about, with the event's fields.
    pub fn of_event(event: &ChangeEvent) -> ItemView {
        ItemView {
            side: Some(event.source),
            id: event.item_id.clone(),
            key: event.item_key.clone(),
            fields: event.fields.clone(),
        }
    }

    pub(crate) fn to_dynamic(&self) -> Dynamic {
        let mut map = Map::new();
        map.insert("side".into(), side_value(self.side));
        map.insert("id".into(), str_value(&self.id));
        map.insert("key".into(), opt_str(self.key.as_deref()));
        map.insert("fields".into(), fields_to_dynamic(&self.fields));
        Dynamic::from_map(map)
    }
}

/// What `filter` learns about an event.
///
/// In scripts it is an object map: `#{ side, id, key, kind: "created" | "updated" |
/// "commented", origin: "webhook" | "poll" | "sync" | "replay", fields: #{ ... } }`, where
/// `fields` are the item's fields as the event carries them, keyed by the source side's ids.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView {
    /// The side the change happened on.
    pub side: Side,
    /// The item's stable id on that side.
    pub id: String,
    /// Its human-friendly key, when the side has one.
    pub key: Option<String>,
    /// What happened.
    pub kind: ChangeKind,
    /// How the event arrived.
    pub origin: EventOrigin,
    /// The item's fields, keyed by the source side's field ids.
    pub fields: BTreeMap<String, FieldValue>,
}

impl From<&ChangeEvent> for EventView {
    fn from(event: &ChangeEvent) -> Self {
        EventView {
            side: event.source,
            id: event.item_id.clone(),
            key: event.item_key.clone(),
            kind: event.kind,
            origin: event.origin,
            fields: event.fields.clone(),
        }
    }
}

impl EventView {
    pub(crate) fn to_dynamic(&self) -> Dynamic {
        let kind = match self.kind {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Commented => "commented",
            ChangeKind::Attached => "attached",
        };
        let origin = match self.origin {
            EventOrigin::Webhook => "webhook",
            EventOrigin::Poll => "poll",
            EventOrigin::Sync => "sync",
            EventOrigin::Replay => "replay",
        };
        let mut map = Map::new();
        map.insert("side".into(), side_value(Some(self.side)));
        map.insert("id".into(), str_value(&self.id));
        map.insert("key".into(), opt_str(self.key.as_deref()));
        map.insert("kind".into(), str_value(kind));
        map.insert("origin".into(), str_value(origin));
        map.insert("fields".into(), fields_to_dynamic(&self.fields));
        Dynamic::from_map(map)
    }
}

pub(crate) fn side_value(side: Option<Side>) -> Dynamic {
    opt_str(side.map(Side::as_str))
}

fn opt_str(s: Option<&str>) -> Dynamic {
    s.map_or(Dynamic::UNIT, str_value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_name_the_field_and_both_types() {
        let before = FieldValue::Number(1.0);
        let err = from_dynamic("story_points", &str_value("many"), Some(&before)).unwrap_err();
        assert_eq!(
            err,
            "field `story_points` must be a number, got a string (\"many\")"
        );
        let labels = FieldValue::Labels(vec!["a".into()]);
        let bad = Dynamic::from_array(vec![str_value("x"), Dynamic::from_int(3)]);
        let err = from_dynamic("labels", &bad, Some(&labels)).unwrap_err();
        assert_eq!(
            err,
            "field `labels` must be an array of strings, but element 1 is an i64 (3)"
        );
    }

    #[test]
    fn values_without_a_kind_are_inferred() {
        assert_eq!(
            from_dynamic("x", &str_value("a"), None).unwrap(),
            FieldValue::Text("a".into())
        );
        assert_eq!(
            from_dynamic("x", &Dynamic::from_int(3), Some(&FieldValue::Empty)).unwrap(),
            FieldValue::Number(3.0)
        );
        assert!(matches!(
            from_dynamic("x", &Dynamic::from_array(vec![str_value("a")]), None).unwrap(),
            FieldValue::Labels(v) if v == ["a"]
        ));
        assert!(
            from_dynamic("x", &Dynamic::TRUE, None)
                .unwrap_err()
                .starts_with(
                    "field `x` must be a string, a number or an array of strings, got a bool"
                )
        );
    }
}
