//! Field value kinds: the [`FieldType`] a mapping entry declares, and how a value is read as,
//! written from and converted between kinds.
//!
//! Everything here looks at a value and a kind only, never at a mapping entry. That is what
//! lets the mapping check that a default is a valid value of its entry's type without
//! depending on [`crate::convert`], which applies mapping entries and so depends on the mapping:
//! the dependency runs one way, `convert → mapping → kind`.
//!
//! Every function here is total: any input gives a value or a [`ConvertError`], never a panic.
//! Systems that only speak strings (the seed's `_externalData`) go through [`from_text`] and
//! [`to_text`], which are inverse on each kind.

use crate::richtext::Doc;
use crate::value::FieldValue;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A field's value kind; decides parsing, comparison and conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    #[default]
    Text,
    #[serde(rename = "richtext")]
    RichText,
    Number,
    Date,
    #[serde(rename = "datetime")]
    DateTime,
    Option,
    OptionList,
    Labels,
    User,
}

impl FieldType {
    pub const ALL: [FieldType; 9] = [
        FieldType::Text,
        FieldType::RichText,
        FieldType::Number,
        FieldType::Date,
        FieldType::DateTime,
        FieldType::Option,
        FieldType::OptionList,
        FieldType::Labels,
        FieldType::User,
    ];

    /// Spelled as in mapping files and as [`crate::FieldValue::kind`].
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::RichText => "richtext",
            FieldType::Number => "number",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Option => "option",
            FieldType::OptionList => "option_list",
            FieldType::Labels => "labels",
            FieldType::User => "user",
        }
    }

    /// Kinds whose values are names that a value map can translate.
    pub fn takes_value_map(self) -> bool {
        matches!(
            self,
            FieldType::Text
                | FieldType::Number
                | FieldType::Option
                | FieldType::OptionList
                | FieldType::Labels
                | FieldType::User
        )
    }
}

/// Gives a keyword enum (one with `ALL` and `as_str`) its `Display` and a forgiving `FromStr`
/// whose error lists the allowed spellings. `$what` names the keyword in that error. Shared
/// with the mapping's own keywords (direction, conflict policy) so they all read alike.
macro_rules! keyword_enum {
    ($ty:ty, $what:literal) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = String;
            /// Case-insensitive; `-` and spaces are read as `_` so `to-jira` works too.
            fn from_str(s: &str) -> Result<Self, String> {
                let norm: String = s
                    .trim()
                    .chars()
                    .map(|c| match c {
                        '-' | ' ' => '_',
                        c => c.to_ascii_lowercase(),
                    })
                    .collect();
                <$ty>::ALL
                    .into_iter()
                    .find(|v| v.as_str() == norm)
                    .ok_or_else(|| {
                        let allowed: Vec<&str> = <$ty>::ALL.iter().map(|v| v.as_str()).collect();
                        format!(
                            "unknown {} `{}`: expected one of {}",
                            $what,
                            s.trim(),
                            allowed.join(", ")
                        )
                    })
            }
        }
    };
}
pub(crate) use keyword_enum;

keyword_enum!(FieldType, "type");

/// A value that cannot be read or translated. Names the field (when known) and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("{}`{value}` is not a valid {expected} value: {reason}", field_prefix(.field))]
    Invalid {
        field: String,
        value: String,
        expected: FieldType,
        reason: String,
    },
    #[error(
        "{}value `{value}` has no entry in the value map (known values: {}) and there is no default",
        field_prefix(.field),
        .known.join(", ")
    )]
    Unmapped {
        field: String,
        value: String,
        known: Vec<String>,
    },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("field {field}: ")
    }
}

impl ConvertError {
    fn invalid(value: &str, expected: FieldType, reason: impl Into<String>) -> Self {
        ConvertError::Invalid {
            field: String::new(),
            value: value.to_string(),
            expected,
            reason: reason.into(),
        }
    }

    /// Names the field, unless it is already named.
    pub fn with_field(mut self, name: &str) -> Self {
        match &mut self {
            ConvertError::Invalid { field, .. } | ConvertError::Unmapped { field, .. } => {
                if field.is_empty() {
                    *field = name.to_string();
                }
            }
        }
        self
    }

    pub fn field(&self) -> &str {
        match self {
            ConvertError::Invalid { field, .. } | ConvertError::Unmapped { field, .. } => field,
        }
    }

    pub fn value(&self) -> &str {
        match self {
            ConvertError::Invalid { value, .. } | ConvertError::Unmapped { value, .. } => value,
        }
    }

    /// The message without the field prefix.
    pub fn reason(&self) -> String {
        match self {
            ConvertError::Invalid { reason, .. } => reason.clone(),
            ConvertError::Unmapped { known, .. } => {
                format!("not in the value map (known values: {})", known.join(", "))
            }
        }
    }
}

/// Reads a string as a value of kind `ty`. An empty (or, for non-text kinds, blank) string is
/// [`FieldValue::Empty`].
pub fn from_text(raw: &str, ty: FieldType) -> Result<FieldValue, ConvertError> {
    if raw.is_empty() {
        return Ok(FieldValue::Empty);
    }
    let s = raw.trim();
    if s.is_empty() && !matches!(ty, FieldType::Text) {
        return Ok(FieldValue::Empty);
    }
    Ok(match ty {
        FieldType::Text => FieldValue::Text(raw.to_string()),
        FieldType::RichText => FieldValue::RichText(Doc::from_plain(raw)),
        FieldType::Number => FieldValue::Number(parse_number(s)?),
        FieldType::Date => FieldValue::Date(parse_date(s)?),
        FieldType::DateTime => FieldValue::DateTime(parse_datetime(s)?),
        FieldType::Option => FieldValue::Option(s.to_string()),
        FieldType::User => FieldValue::User(s.to_string()),
        FieldType::OptionList => FieldValue::OptionList(split_list(s, |c| c == ',')),
        // Jira labels cannot contain spaces, so whitespace separates them as commas do.
        FieldType::Labels => FieldValue::Labels(split_list(s, |c| c == ',' || c.is_whitespace())),
    })
}

fn split_list(s: &str, sep: impl Fn(char) -> bool) -> Vec<String> {
    s.split(sep)
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_number(s: &str) -> Result<f64, ConvertError> {
    match s.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        Ok(_) => Err(ConvertError::invalid(
            s,
            FieldType::Number,
            "not a finite number",
        )),
        Err(_) => Err(ConvertError::invalid(
            s,
            FieldType::Number,
            "expected a number such as 42 or 1.5",
        )),
    }
}

/// `YYYY-MM-DD`, or any accepted date-time (its date as written, in its own offset).
pub fn parse_date(s: &str) -> Result<NaiveDate, ConvertError> {
    let s = s.trim();
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| parse_datetime_parts(s).map(|p| p.0));
    match d {
        Some(d) if writable_year(d) => Ok(d),
        Some(_) => Err(ConvertError::invalid(s, FieldType::Date, YEAR_RANGE)),
        None => Err(ConvertError::invalid(
            s,
            FieldType::Date,
            "expected a date such as 2025-01-31",
        )),
    }
}

/// RFC 3339, Jira's `2015-11-18T14:39:00.000+1100`, a date-time without offset (read as UTC),
/// or a bare date (midnight UTC).
pub fn parse_datetime(s: &str) -> Result<DateTime<Utc>, ConvertError> {
    let s = s.trim();
    let dt = parse_datetime_parts(s).map(|p| p.1).or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
    });
    match dt {
        Some(dt) if writable_year(dt.date_naive()) => Ok(dt),
        Some(_) => Err(ConvertError::invalid(s, FieldType::DateTime, YEAR_RANGE)),
        None => Err(ConvertError::invalid(
            s,
            FieldType::DateTime,
            "expected a date-time such as 2025-01-31T14:39:00Z or 2015-11-18T14:39:00.000+1100",
        )),
    }
}

const YEAR_RANGE: &str = "the year must be between 0001 and 9999";

/// chrono reads signed and five-digit years (`-02025-01-31`), but `to_text` would write them
/// as text that neither RFC 3339, Jira nor [`from_text`] accepts, so a value could not make a
/// round trip; such dates are refused on the way in. (Found by the `convert` fuzz target.)
fn writable_year(d: NaiveDate) -> bool {
    use chrono::Datelike;
    (1..=9999).contains(&d.year())
}

/// The local date as written and the UTC instant of a date-time string.
fn parse_datetime_parts(s: &str) -> Option<(NaiveDate, DateTime<Utc>)> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some((dt.date_naive(), dt.with_timezone(&Utc)));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some((dt.date_naive(), dt.with_timezone(&Utc)));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some((dt.date(), dt.and_utc()));
        }
    }
    None
}

/// Writes a value as a string; the inverse of [`from_text`] for the value's own kind.
pub fn to_text(v: &FieldValue) -> String {
    match v {
        FieldValue::Empty => String::new(),
        FieldValue::Text(s) | FieldValue::Option(s) | FieldValue::User(s) => s.clone(),
        FieldValue::RichText(doc) => doc.to_plain(),
        FieldValue::Number(n) => format_number(*n),
        FieldValue::Date(d) => d.format("%Y-%m-%d").to_string(),
        FieldValue::DateTime(dt) => dt.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        FieldValue::OptionList(items) | FieldValue::Labels(items) => items.join(", "),
    }
}

/// `3` rather than `3.0` for integral values; otherwise Rust's shortest round-trip form.
pub fn format_number(n: f64) -> String {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e15 {
        // Exact: integral and well inside i64's range.
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// The kind a value already has, if it is one of the mapping types.
fn kind_of(v: &FieldValue) -> Option<FieldType> {
    Some(match v {
        FieldValue::Empty => return None,
        FieldValue::Text(_) => FieldType::Text,
        FieldValue::RichText(_) => FieldType::RichText,
        FieldValue::Number(_) => FieldType::Number,
        FieldValue::Date(_) => FieldType::Date,
        FieldValue::DateTime(_) => FieldType::DateTime,
        FieldValue::Option(_) => FieldType::Option,
        FieldValue::OptionList(_) => FieldType::OptionList,
        FieldValue::Labels(_) => FieldType::Labels,
        FieldValue::User(_) => FieldType::User,
    })
}

/// Converts a value to kind `ty` (Text → Number, Option → Text, DateTime → Date, ...).
pub fn coerce(v: FieldValue, ty: FieldType) -> Result<FieldValue, ConvertError> {
    if v.is_empty() {
        return Ok(FieldValue::Empty);
    }
    if kind_of(&v) == Some(ty) {
        return Ok(v);
    }
    Ok(match (v, ty) {
        // Lists keep their items as they are rather than being re-split on separators
        // that an item may contain.
        (FieldValue::OptionList(items), FieldType::Labels) => FieldValue::Labels(items),
        (FieldValue::Labels(items), FieldType::OptionList) => FieldValue::OptionList(items),
        (FieldValue::Option(s) | FieldValue::User(s), FieldType::OptionList) => {
            FieldValue::OptionList(vec![s])
        }
        (FieldValue::DateTime(dt), FieldType::Date) => FieldValue::Date(dt.date_naive()),
        (FieldValue::Text(s), FieldType::RichText) => FieldValue::RichText(Doc::from_plain(&s)),
        (other, ty) => from_text(&to_text(&other), ty).map_err(|e| match e {
            ConvertError::Invalid {
                field,
                value,
                expected,
                reason,
            } => ConvertError::Invalid {
                field,
                value,
                expected,
                reason: format!("{reason} (converting from {})", other.kind()),
            },
            e => e,
        })?,
    })
}

#[cfg(test)]
mod tests;
