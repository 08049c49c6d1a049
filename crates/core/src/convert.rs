//! Applying a mapping entry to a value: its value map, its default and its type, in either
//! direction.
//!
//! [`map_to_jira`] and [`map_to_external`] apply a mapping entry's value map and default;
//! [`to_canonical`]/[`from_canonical`] are what the planner uses, since the shadow always holds
//! values in Jira terms. Every function here is total: any input gives a value or a
//! [`ConvertError`], never a panic. What only concerns a kind (reading and writing text,
//! coercion) lives in [`crate::kind`] and is re-exported here, where callers have always found
//! it.

use crate::ids::Side;
use crate::kind::FieldType;
use crate::mapping::FieldMapping;
use crate::value::FieldValue;

pub use crate::kind::{
    ConvertError, coerce, format_number, from_text, parse_date, parse_datetime, to_text,
};

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
