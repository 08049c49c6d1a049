//! Values of a REST/JSON system: reading them out of an item and writing them into a body.
//!
//! The seed's API carries every value as a string, so it is parsed with the mapping's type
//! ([`tandem_core::convert::from_text`]). Custom APIs carry typed JSON (numbers, arrays for
//! labels), which is taken as it is and brought to the mapping's type. Where a value sits is
//! a JSON Pointer (`/ticket/priority`) or, for reading, a JSONPath filter
//! (`$.custom_fields[?(@.id==2)].value`, first match).

use serde_json::{Map, Value, json};
use serde_json_path::JsonPath;
use tandem_core::FieldValue;
use tandem_core::convert::{coerce, from_text, to_text};
use tandem_core::mapping::FieldType;

/// Where to read a field from an item.
#[derive(Debug, Clone)]
pub enum Reader {
    Pointer(String),
    Path(JsonPath),
}

impl Reader {
    /// `$…` is JSONPath, anything else a JSON Pointer (`""` is the whole item).
    pub fn parse(spec: &str) -> Result<Reader, String> {
        let spec = spec.trim();
        if spec.starts_with('$') {
            JsonPath::parse(spec)
                .map(Reader::Path)
                .map_err(|e| format!("`{spec}` is not a valid JSONPath: {e}"))
        } else if spec.is_empty() || spec.starts_with('/') {
            check_pointer(spec)?;
            Ok(Reader::Pointer(spec.to_string()))
        } else {
            Err(format!(
                "`{spec}` is neither a JSON Pointer (`/a/b`) nor a JSONPath (`$.a.b`)"
            ))
        }
    }

    /// The value at this place in `item`; the first match for a JSONPath.
    pub fn read<'a>(&self, item: &'a Value) -> Option<&'a Value> {
        match self {
            Reader::Pointer(p) => item.pointer(p),
            Reader::Path(path) => path.query(item).all().into_iter().next(),
        }
    }
}

/// JSON Pointer syntax is checked where the configuration is (it reports pointers at their
/// line); values are read and written here.
pub use crate::config::check_json_pointer as check_pointer;

/// Reads a value from the seed's string form.
pub fn decode_text(raw: Option<&Value>, ty: FieldType) -> Result<FieldValue, String> {
    match raw {
        None | Some(Value::Null) => Ok(FieldValue::Empty),
        Some(Value::String(s)) => from_text(s, ty).map_err(|e| e.reason()),
        // Tolerate systems that send numbers and booleans unquoted.
        Some(v @ (Value::Number(_) | Value::Bool(_))) => {
            from_text(&v.to_string(), ty).map_err(|e| e.reason())
        }
        Some(v) => decode_json(v, ty),
    }
}

/// Reads a typed JSON value and brings it to the mapping's type.
pub fn decode_json(raw: &Value, ty: FieldType) -> Result<FieldValue, String> {
    let v = match raw {
        Value::Null => return Ok(FieldValue::Empty),
        Value::String(s) => return from_text(s, ty).map_err(|e| e.reason()),
        Value::Number(n) => FieldValue::Number(
            n.as_f64()
                .ok_or_else(|| format!("number {n} is out of range"))?,
        ),
        Value::Bool(b) => FieldValue::Text(b.to_string()),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    Value::Number(n) => out.push(n.to_string()),
                    Value::Object(o) => {
                        match ["value", "name", "id"].iter().find_map(|k| o.get(*k)) {
                            Some(Value::String(s)) => out.push(s.clone()),
                            Some(other) => out.push(other.to_string()),
                            None => {
                                return Err("list items must be strings or named objects".into());
                            }
                        }
                    }
                    _ => return Err("list items must be strings or named objects".into()),
                }
            }
            if ty == FieldType::OptionList {
                FieldValue::OptionList(out)
            } else {
                FieldValue::Labels(out)
            }
        }
        Value::Object(o) => match ["value", "name", "id"].iter().find_map(|k| o.get(*k)) {
            Some(inner @ (Value::String(_) | Value::Number(_))) => {
                return decode_json(inner, ty);
            }
            _ => return Err("objects are read through their `value`, `name` or `id`".into()),
        },
    };
    coerce(v, ty).map_err(|e| e.reason())
}

/// The seed's string form of a value.
pub fn encode_text(v: &FieldValue) -> Value {
    match v {
        // The seed's `value` is a string; an empty one clears the field.
        FieldValue::Empty => json!(""),
        v => json!(to_text(v)),
    }
}

/// The natural JSON form of a value for a custom API.
pub fn encode_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Empty => Value::Null,
        FieldValue::Number(n) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                json!(*n as i64)
            } else {
                json!(n)
            }
        }
        FieldValue::Labels(items) | FieldValue::OptionList(items) => json!(items),
        v => json!(to_text(v)),
    }
}

/// Places `value` at JSON Pointer `pointer` inside `root`, creating objects on the way.
pub fn set_pointer(root: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    if pointer.is_empty() {
        *root = value;
        return Ok(());
    }
    check_pointer(pointer)?;
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("`{pointer}` is not a JSON Pointer"));
    };
    let tokens: Vec<String> = rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut cur = root;
    for (i, token) in tokens.iter().enumerate() {
        if cur.is_null() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else {
            return Err(format!(
                "cannot place a value at `{pointer}`: another field already put a non-object there"
            ));
        };
        if i + 1 == tokens.len() {
            map.insert(token.clone(), value);
            return Ok(());
        }
        cur = map.entry(token.clone()).or_insert(Value::Null);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_take_pointers_and_jsonpath() {
        let item = json!({"a":{"b":1},"custom_fields":[{"id":1,"value":"x"},{"id":2,"value":"y"}]});
        assert_eq!(Reader::parse("/a/b").unwrap().read(&item), Some(&json!(1)));
        let p = Reader::parse("$.custom_fields[?(@.id==2)].value").unwrap();
        assert_eq!(p.read(&item), Some(&json!("y")));
        assert!(Reader::parse("$[").is_err());
        assert!(Reader::parse("a.b").is_err());
        assert!(Reader::parse("/priority~2id").unwrap_err().contains("`~2`"));
    }

    #[test]
    fn pointers_build_objects() {
        let mut v = Value::Null;
        set_pointer(&mut v, "/ticket/priority", json!(3)).unwrap();
        set_pointer(&mut v, "/ticket/subject", json!("s")).unwrap();
        set_pointer(&mut v, "/a~1b", json!(true)).unwrap();
        assert_eq!(v, json!({"ticket":{"priority":3,"subject":"s"},"a/b":true}));
        assert!(set_pointer(&mut v, "/ticket/priority/x", json!(1)).is_err());
    }

    #[test]
    fn typed_and_text_values() {
        assert_eq!(
            decode_json(&json!(["a", "b"]), FieldType::Labels).unwrap(),
            FieldValue::Labels(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            decode_json(&json!(3), FieldType::Number).unwrap(),
            FieldValue::Number(3.0)
        );
        assert_eq!(
            decode_text(Some(&json!("2025-01-31")), FieldType::Date).unwrap(),
            FieldValue::Date(chrono::NaiveDate::from_ymd_opt(2025, 1, 31).unwrap())
        );
        assert_eq!(encode_json(&FieldValue::Number(3.0)), json!(3));
        assert_eq!(encode_text(&FieldValue::Number(2.5)), json!("2.5"));
    }
}
