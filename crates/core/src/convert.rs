//! Conversions between field value kinds, strings and the two sides' value vocabularies.
//!
//! Every function here is total: any input gives a value or a [`ConvertError`], never a panic.
//! Systems that only speak strings (the seed's `_externalData`) go through [`from_text`] and
//! [`to_text`], which are inverse on each kind. [`map_to_jira`] and [`map_to_external`] apply a
//! mapping entry's value map and default; [`to_canonical`]/[`from_canonical`] are what the
//! planner uses, since the shadow always holds values in Jira terms.

use crate::ids::Side;
use crate::mapping::{FieldMapping, FieldType};
use crate::richtext::Doc;
use crate::value::FieldValue;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

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

/// An external value in Jira terms for entry `m`: reverse value map, default, then `m`'s type.
pub fn map_to_jira(v: &FieldValue, m: &FieldMapping) -> Result<FieldValue, ConvertError> {
    apply_map(v, m, Side::Jira)
}

/// A Jira value in external terms for entry `m`: default, forward value map, then `m`'s type.
pub fn map_to_external(v: &FieldValue, m: &FieldMapping) -> Result<FieldValue, ConvertError> {
    apply_map(v, m, Side::External)
}

/// A value read on side `from` in canonical (Jira) terms. Jira values are only brought to the
/// entry's type; external values go through [`map_to_jira`].
pub fn to_canonical(
    v: &FieldValue,
    m: &FieldMapping,
    from: Side,
) -> Result<FieldValue, ConvertError> {
    match from {
        Side::Jira => coerce(v.clone(), m.field_type).map_err(|e| e.with_field(&m.jira_field)),
        Side::External => map_to_jira(v, m),
    }
}

/// A canonical (Jira-terms) value as side `to` should receive it.
pub fn from_canonical(
    v: &FieldValue,
    m: &FieldMapping,
    to: Side,
) -> Result<FieldValue, ConvertError> {
    match to {
        Side::Jira => coerce(v.clone(), m.field_type).map_err(|e| e.with_field(&m.jira_field)),
        Side::External => map_to_external(v, m),
    }
}

fn apply_map(v: &FieldValue, m: &FieldMapping, to: Side) -> Result<FieldValue, ConvertError> {
    let from = to.other();
    let field = m.field_on(from);
    let ty = m.field_type;
    // The default is written in Jira terms; going out it is translated like any value.
    let default_for_target = || -> Option<String> {
        let d = m.default.as_deref()?;
        Some(match to {
            Side::Jira => d.to_string(),
            Side::External => m.external_value_for(d).unwrap_or(d).to_string(),
        })
    };
    let build = |text: &str| -> Result<FieldValue, ConvertError> {
        match from_text(text, ty) {
            Ok(v) => Ok(v),
            // External systems often hold a mapped code (`"P1"`) where Jira holds a number;
            // outside Jira, keep the text rather than fail.
            Err(_) if to == Side::External => Ok(FieldValue::Text(text.to_string())),
            Err(e) => Err(e.with_field(m.field_on(to))),
        }
    };

    if v.is_empty() {
        return match default_for_target() {
            Some(d) => build(&d),
            None => Ok(FieldValue::Empty),
        };
    }
    if m.value_map.is_empty() {
        return coerce(v.clone(), ty).map_err(|e| e.with_field(field));
    }

    let lookup = |s: &str| -> Option<String> {
        let hit = match to {
            Side::Jira => m.jira_value_for(s),
            Side::External => m.external_value_for(s),
        };
        // Systems disagree on case ("high" vs "High"); an exact entry wins, then any case.
        hit.or_else(|| {
            m.value_map.iter().find_map(|(j, e)| match to {
                Side::Jira => e.eq_ignore_ascii_case(s).then_some(j.as_str()),
                Side::External => j.eq_ignore_ascii_case(s).then_some(e.as_str()),
            })
        })
        .map(str::to_string)
    };
    let unmapped = |value: &str| ConvertError::Unmapped {
        field: field.to_string(),
        value: value.to_string(),
        known: m
            .value_map
            .iter()
            .map(|(j, e)| match to {
                Side::Jira => e.clone(),
                Side::External => j.clone(),
            })
            .collect(),
    };
    let map_one = |s: &str| -> Result<String, ConvertError> {
        lookup(s)
            .or_else(default_for_target)
            .ok_or_else(|| unmapped(s))
    };

    match ty {
        FieldType::OptionList | FieldType::Labels => {
            let items = match coerce(v.clone(), ty).map_err(|e| e.with_field(field))? {
                FieldValue::OptionList(items) | FieldValue::Labels(items) => items,
                _ => Vec::new(),
            };
            let mut out = Vec::with_capacity(items.len());
            for item in &items {
                let mapped = map_one(item.trim())?;
                if !out.contains(&mapped) {
                    out.push(mapped);
                }
            }
            Ok(if ty == FieldType::Labels {
                FieldValue::Labels(out)
            } else {
                FieldValue::OptionList(out)
            })
        }
        _ => {
            let key = to_text(v);
            let mapped = map_one(key.trim())?;
            build(&mapped)
        }
    }
}

#[cfg(test)]
mod tests;
