//! Canonical field values: the common language between Jira's and other systems' field types.
//!
//! Connectors read their native JSON into a [`FieldValue`] and write one back out; the mapping
//! converts between the kinds; the shadow stores them. Equality is semantic (labels compare as
//! sets, numbers by value) so that an echo of Tandem's own write is recognised as "no change".

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Rich text in Tandem's canonical form; converted to and from Jira's ADF and wiki markup.
pub type RichText = crate::richtext::Doc;

/// A field's value, independent of which system it came from.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum FieldValue {
    /// No value (Jira `null`, an empty string outside).
    #[default]
    Empty,
    Text(String),
    RichText(RichText),
    Number(f64),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    /// One choice of a select list or priority, by its name.
    Option(String),
    /// Several choices of a multi-select.
    OptionList(Vec<String>),
    Labels(Vec<String>),
    /// A person, by the id the side knows them by (account id, user name or e-mail).
    User(String),
}

impl FieldValue {
    pub fn is_empty(&self) -> bool {
        match self {
            FieldValue::Empty => true,
            FieldValue::Text(s) | FieldValue::Option(s) | FieldValue::User(s) => s.is_empty(),
            FieldValue::OptionList(v) | FieldValue::Labels(v) => v.is_empty(),
            FieldValue::RichText(doc) => doc.is_empty(),
            FieldValue::Number(_) | FieldValue::Date(_) | FieldValue::DateTime(_) => false,
        }
    }

    /// The name of this value's kind, as used in mapping files and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            FieldValue::Empty => "empty",
            FieldValue::Text(_) => "text",
            FieldValue::RichText(_) => "richtext",
            FieldValue::Number(_) => "number",
            FieldValue::Date(_) => "date",
            FieldValue::DateTime(_) => "datetime",
            FieldValue::Option(_) => "option",
            FieldValue::OptionList(_) => "option_list",
            FieldValue::Labels(_) => "labels",
            FieldValue::User(_) => "user",
        }
    }

    fn sorted(v: &[String]) -> Vec<&str> {
        let mut out: Vec<&str> = v.iter().map(String::as_str).collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

impl PartialEq for FieldValue {
    fn eq(&self, other: &Self) -> bool {
        use FieldValue::*;
        if self.is_empty() && other.is_empty() {
            return true;
        }
        match (self, other) {
            (Text(a), Text(b)) | (Option(a), Option(b)) | (User(a), User(b)) => a == b,
            (RichText(a), RichText(b)) => a == b,
            // Systems round numbers differently (1 vs 1.0 vs 0.99999999); compare closely.
            (Number(a), Number(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
            (Date(a), Date(b)) => a == b,
            // Jira keeps milliseconds, other systems seconds: equal within one second.
            (DateTime(a), DateTime(b)) => (*a - *b).num_milliseconds().abs() < 1000,
            (OptionList(a), OptionList(b)) | (Labels(a), Labels(b)) => {
                Self::sorted(a) == Self::sorted(b)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empties_of_any_kind_are_equal() {
        assert_eq!(FieldValue::Empty, FieldValue::Text(String::new()));
        assert_eq!(FieldValue::Labels(vec![]), FieldValue::Empty);
        assert_ne!(FieldValue::Empty, FieldValue::Text("x".into()));
    }

    #[test]
    fn labels_compare_as_sets_and_numbers_by_value() {
        let a = FieldValue::Labels(vec!["b".into(), "a".into(), "a".into()]);
        let b = FieldValue::Labels(vec!["a".into(), "b".into()]);
        assert_eq!(a, b);
        assert_eq!(
            FieldValue::Number(1.0),
            FieldValue::Number(1.000_000_000_01)
        );
        assert_ne!(FieldValue::Number(1.0), FieldValue::Number(1.1));
    }

    #[test]
    fn values_round_trip_through_json() {
        let v = FieldValue::Date(NaiveDate::from_ymd_opt(2025, 1, 31).unwrap());
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"type":"date","value":"2025-01-31"}"#);
        assert_eq!(serde_json::from_str::<FieldValue>(&json).unwrap(), v);
    }
}
