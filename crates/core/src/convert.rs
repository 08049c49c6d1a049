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
mod tests {
    use super::*;
    use crate::mapping::Direction;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn years_that_cannot_be_written_back_are_refused() {
        for (raw, ty) in [
            ("-02025-01-31", FieldType::Date),
            ("+12025-01-31", FieldType::Date),
            ("-2025-01-31T00:00:00", FieldType::DateTime),
            ("9999-12-31T23:00:00-05:00", FieldType::DateTime),
            ("0000-06-01", FieldType::Date),
        ] {
            let err = from_text(raw, ty).unwrap_err();
            assert!(
                err.to_string().contains("between 0001 and 9999"),
                "{raw}: {err}"
            );
        }
        let v = from_text("9999-12-31", FieldType::Date).unwrap();
        assert_eq!(from_text(&to_text(&v), FieldType::Date).unwrap(), v);
    }

    #[test]
    fn text_forms() {
        assert_eq!(
            from_text("42", FieldType::Number).unwrap(),
            FieldValue::Number(42.0)
        );
        assert_eq!(
            from_text(" 1.5 ", FieldType::Number).unwrap(),
            FieldValue::Number(1.5)
        );
        assert_eq!(from_text("", FieldType::Number).unwrap(), FieldValue::Empty);
        assert_eq!(from_text("  ", FieldType::Date).unwrap(), FieldValue::Empty);
        assert_eq!(
            from_text("2025-01-31", FieldType::Date).unwrap(),
            FieldValue::Date(date(2025, 1, 31))
        );
        assert_eq!(
            from_text("2025-01-31T23:30:00-05:00", FieldType::Date).unwrap(),
            FieldValue::Date(date(2025, 1, 31))
        );
        let jira = from_text("2015-11-18T14:39:00.000+1100", FieldType::DateTime).unwrap();
        let want = DateTime::parse_from_rfc3339("2015-11-18T03:39:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(jira, FieldValue::DateTime(want));
        assert_eq!(
            from_text("2015-11-18T03:39:00Z", FieldType::DateTime).unwrap(),
            FieldValue::DateTime(want)
        );
        assert_eq!(
            from_text("a, b  c,,", FieldType::Labels).unwrap(),
            FieldValue::Labels(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            from_text("Red, Dark blue", FieldType::OptionList).unwrap(),
            FieldValue::OptionList(vec!["Red".into(), "Dark blue".into()])
        );
        assert_eq!(to_text(&FieldValue::Number(3.0)), "3");
        assert_eq!(to_text(&FieldValue::Number(-0.25)), "-0.25");
        assert_eq!(to_text(&FieldValue::Number(1e20)), "100000000000000000000");
        assert_eq!(to_text(&FieldValue::DateTime(want)), "2015-11-18T03:39:00Z");
    }

    #[test]
    fn errors_name_field_and_value() {
        let e = from_text("abc", FieldType::Number).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`abc` is not a valid number value: expected a number such as 42 or 1.5"
        );
        let e = e.with_field("customfield_1");
        assert_eq!(e.field(), "customfield_1");
        assert!(e.to_string().starts_with("field customfield_1: `abc`"));
        assert!(from_text("NaN", FieldType::Number).is_err());
        assert!(from_text("inf", FieldType::Number).is_err());
        assert!(from_text("2025-02-30", FieldType::Date).is_err());
        assert!(from_text("yesterday", FieldType::DateTime).is_err());
    }

    #[test]
    fn coercions() {
        assert_eq!(
            coerce(FieldValue::Text("7".into()), FieldType::Number).unwrap(),
            FieldValue::Number(7.0)
        );
        assert_eq!(
            coerce(FieldValue::Option("High".into()), FieldType::Text).unwrap(),
            FieldValue::Text("High".into())
        );
        assert_eq!(
            coerce(FieldValue::Number(2.0), FieldType::Option).unwrap(),
            FieldValue::Option("2".into())
        );
        assert_eq!(
            coerce(FieldValue::Text("a\n\nb".into()), FieldType::RichText).unwrap(),
            FieldValue::RichText(Doc::from_plain("a\n\nb"))
        );
        assert_eq!(
            coerce(FieldValue::Date(date(2025, 1, 2)), FieldType::DateTime).unwrap(),
            FieldValue::DateTime(date(2025, 1, 2).and_time(chrono::NaiveTime::MIN).and_utc())
        );
        assert_eq!(
            coerce(
                FieldValue::OptionList(vec!["a b".into()]),
                FieldType::Labels
            )
            .unwrap(),
            FieldValue::Labels(vec!["a b".into()])
        );
        let e = coerce(FieldValue::Number(42.0), FieldType::Date).unwrap_err();
        assert!(e.to_string().contains("converting from number"), "{e}");
    }

    fn priority() -> FieldMapping {
        let mut m = FieldMapping::new("priority", "5");
        m.field_type = FieldType::Option;
        m.value_map = vec![
            ("High".into(), "3".into()),
            ("Medium".into(), "2".into()),
            ("Low".into(), "1".into()),
        ];
        m
    }

    #[test]
    fn value_maps_both_ways() {
        let m = priority();
        assert_eq!(
            map_to_jira(&FieldValue::Text("3".into()), &m).unwrap(),
            FieldValue::Option("High".into())
        );
        assert_eq!(
            map_to_external(&FieldValue::Option("low".into()), &m).unwrap(),
            FieldValue::Option("1".into())
        );
        let e = map_to_jira(&FieldValue::Text("9".into()), &m).unwrap_err();
        assert_eq!(
            e.to_string(),
            "field 5: value `9` has no entry in the value map (known values: 3, 2, 1) and there is no default"
        );
        assert_eq!(
            map_to_jira(&FieldValue::Empty, &m).unwrap(),
            FieldValue::Empty
        );

        let mut m = m;
        m.default = Some("Medium".into());
        assert_eq!(
            map_to_jira(&FieldValue::Text("9".into()), &m).unwrap(),
            FieldValue::Option("Medium".into())
        );
        assert_eq!(
            map_to_jira(&FieldValue::Empty, &m).unwrap(),
            FieldValue::Option("Medium".into())
        );
        assert_eq!(
            map_to_external(&FieldValue::Empty, &m).unwrap(),
            FieldValue::Option("2".into())
        );
    }

    #[test]
    fn list_value_maps_and_numbers() {
        let mut m = FieldMapping::new("labels", "tags");
        m.field_type = FieldType::Labels;
        m.direction = Direction::Both;
        m.value_map = vec![("bug".into(), "defect".into())];
        assert_eq!(
            map_to_jira(&FieldValue::Text("defect, defect".into()), &m).unwrap(),
            FieldValue::Labels(vec!["bug".into()])
        );
        assert!(map_to_jira(&FieldValue::Text("defect other".into()), &m).is_err());

        let mut n = FieldMapping::new("customfield_2", "sev");
        n.field_type = FieldType::Number;
        n.value_map = vec![("1".into(), "P1".into())];
        assert_eq!(
            map_to_jira(&FieldValue::Text("P1".into()), &n).unwrap(),
            FieldValue::Number(1.0)
        );
        assert_eq!(
            map_to_external(&FieldValue::Number(1.0), &n).unwrap(),
            FieldValue::Text("P1".into())
        );
        // No value map: only the type conversion.
        let mut d = FieldMapping::new("duedate", "9");
        d.field_type = FieldType::Date;
        assert_eq!(
            map_to_jira(&FieldValue::Text("2025-03-04".into()), &d).unwrap(),
            FieldValue::Date(date(2025, 3, 4))
        );
        let e = map_to_jira(&FieldValue::Text("soon".into()), &d).unwrap_err();
        assert!(e.to_string().starts_with("field 9: `soon`"), "{e}");
    }

    fn value_of(ty: FieldType) -> BoxedStrategy<FieldValue> {
        let name = "[A-Za-z0-9][A-Za-z0-9 _./-]{0,12}[A-Za-z0-9]";
        match ty {
            FieldType::Text => ".+".prop_map(FieldValue::Text).boxed(),
            FieldType::RichText => prop::collection::vec(
                prop::collection::vec("[A-Za-z0-9][A-Za-z0-9 ,.!?]{0,20}", 1..4),
                1..4,
            )
            .prop_map(|paras| {
                let text = paras
                    .iter()
                    .map(|lines| {
                        lines
                            .iter()
                            .map(|l| l.trim())
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .collect::<Vec<_>>()
                    .join("\n\n");
                FieldValue::RichText(Doc::from_plain(&text))
            })
            .boxed(),
            FieldType::Number => prop_oneof![
                any::<i64>().prop_map(|n| n as f64),
                any::<f64>().prop_filter("finite", |f| f.is_finite()),
            ]
            .prop_map(FieldValue::Number)
            .boxed(),
            FieldType::Date => (1i32..=9999, 1u32..=12, 1u32..=28)
                .prop_map(|(y, m, d)| FieldValue::Date(date(y, m, d)))
                .boxed(),
            FieldType::DateTime => (0i64..253_402_300_799, 0u32..1_000_000_000)
                .prop_map(|(s, ns)| {
                    FieldValue::DateTime(DateTime::from_timestamp(s, ns).unwrap_or_default())
                })
                .boxed(),
            FieldType::Option => name.prop_map(FieldValue::Option).boxed(),
            FieldType::User => name.prop_map(FieldValue::User).boxed(),
            FieldType::OptionList => prop::collection::vec(name, 0..5)
                .prop_map(FieldValue::OptionList)
                .boxed(),
            FieldType::Labels => prop::collection::vec("[A-Za-z0-9_.-]{1,10}", 0..5)
                .prop_map(FieldValue::Labels)
                .boxed(),
        }
    }

    fn any_value() -> impl Strategy<Value = (FieldType, FieldValue)> {
        prop::sample::select(FieldType::ALL.to_vec())
            .prop_flat_map(|ty| value_of(ty).prop_map(move |v| (ty, v)))
    }

    proptest! {
        #[test]
        fn text_round_trips((ty, v) in any_value()) {
            let back = from_text(&to_text(&v), ty).unwrap();
            prop_assert_eq!(back, v);
        }

        #[test]
        fn from_text_never_panics(s in any::<String>(), i in 0usize..9) {
            let ty = FieldType::ALL[i];
            if let Ok(v) = from_text(&s, ty) {
                let _ = to_text(&v);
                let _ = coerce(v, FieldType::ALL[(i + 1) % 9]);
            }
        }

        #[test]
        fn coerce_never_panics((_ty, v) in any_value(), i in 0usize..9) {
            let _ = coerce(v, FieldType::ALL[i]);
        }

        #[test]
        fn value_maps_round_trip(i in 0usize..3) {
            let m = priority();
            let (j, e) = &m.value_map[i];
            let out = map_to_external(&FieldValue::Option(j.clone()), &m).unwrap();
            prop_assert_eq!(&out, &FieldValue::Option(e.clone()));
            prop_assert_eq!(map_to_jira(&out, &m).unwrap(), FieldValue::Option(j.clone()));
        }
    }
}
