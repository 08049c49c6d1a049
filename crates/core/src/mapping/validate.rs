//! Whether a parsed mapping can work: no empty names, no duplicate pairs, no ambiguous routing,
//! sane value maps and defaults of the right type.

use super::error::{MappingError, MappingErrors};
use super::types::{FieldMapping, Mapping};
use crate::ids::Side;
use crate::kind::from_text;
use std::collections::BTreeMap;

/// Checks that a mapping can work: no empty names, no duplicate pairs, no ambiguous routing,
/// value maps without duplicates, defaults of the right type. Reports every problem found.
pub fn validate(mapping: &Mapping) -> Result<(), MappingErrors> {
    let mut errors = Vec::new();

    for m in &mapping.fields {
        let loc = &m.location;
        if m.jira_field.trim().is_empty() {
            errors.push(MappingError::new(
                loc.clone(),
                "the Jira field name is empty",
            ));
        }
        if m.external_field.trim().is_empty() {
            errors.push(MappingError::new(
                loc.clone(),
                "the external field name is empty",
            ));
        }
        check_value_map(m, &mut errors);
        if let Some(d) = &m.default
            && let Err(e) = from_text(d, m.field_type)
        {
            errors.push(MappingError::new(
                loc.clone(),
                format!(
                    "default `{d}` of {} is not a valid {} value: {}",
                    m.jira_field,
                    m.field_type,
                    e.reason()
                ),
            ));
        }
    }

    // Duplicate pairs: reported at the later line, naming the first.
    let mut seen: BTreeMap<(&str, &str), &FieldMapping> = BTreeMap::new();
    for m in &mapping.fields {
        let pair = (m.jira_field.as_str(), m.external_field.as_str());
        if let Some(first) = seen.get(&pair) {
            errors.push(MappingError::new(
                m.location.clone(),
                format!(
                    "duplicate mapping {} ↔ {}: already mapped at {}",
                    m.jira_field, m.external_field, first.location
                ),
            ));
        } else {
            seen.insert(pair, m);
        }
    }

    check_routing(mapping, Side::External, &mut errors);
    check_routing(mapping, Side::Jira, &mut errors);

    errors.sort_by(|a, b| a.location.cmp(&b.location));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.into())
    }
}

fn check_value_map(m: &FieldMapping, errors: &mut Vec<MappingError>) {
    if m.value_map.is_empty() {
        return;
    }
    if !m.field_type.takes_value_map() {
        errors.push(MappingError::new(
            m.location.clone(),
            format!(
                "a value map does not apply to {} fields ({}); use it with text, number, \
                 option, option_list, labels or user",
                m.field_type, m.jira_field
            ),
        ));
        return;
    }
    for (i, (j, e)) in m.value_map.iter().enumerate() {
        if m.value_map[..i].iter().any(|(j2, _)| j2 == j) {
            errors.push(MappingError::new(
                m.location.clone(),
                format!("value map of {} names Jira value `{j}` twice", m.jira_field),
            ));
        }
        // Two Jira values for one external value only matter when values come back to Jira:
        // the way back would be ambiguous.
        if m.direction.writes_to(Side::Jira)
            && let Some((j2, _)) = m.value_map[..i].iter().find(|(_, e2)| e2 == e)
        {
            errors.push(MappingError::new(
                m.location.clone(),
                format!(
                    "value map of {} maps both `{j2}` and `{j}` to external value `{e}`, so \
                     `{e}` coming back could not be mapped; make the external values distinct \
                     or set direction = to_external",
                    m.jira_field
                ),
            ));
        }
    }
}

/// A field on side `hub` that several fields of the other side are routed to/from in the
/// direction that writes to the other side (for `hub` = External: the `to_jira` direction).
fn check_routing(mapping: &Mapping, hub: Side, errors: &mut Vec<MappingError>) {
    let spoke = hub.other();
    let mut groups: BTreeMap<&str, Vec<&FieldMapping>> = BTreeMap::new();
    for m in &mapping.fields {
        if m.direction.writes_to(spoke) {
            groups.entry(m.field_on(hub)).or_default().push(m);
        }
    }
    for (hub_field, entries) in groups {
        // Distinct spoke fields, keeping the first entry of each.
        let mut distinct: Vec<&FieldMapping> = Vec::new();
        for m in entries {
            if !distinct
                .iter()
                .any(|d| d.field_on(spoke) == m.field_on(spoke))
            {
                distinct.push(m);
            }
        }
        if distinct.len() < 2 {
            continue;
        }
        let list = distinct
            .iter()
            .map(|m| format!("{} at line {}", m.field_on(spoke), m.location.line))
            .collect::<Vec<_>>()
            .join(", ");
        let message = match hub {
            Side::External => format!(
                "external field {hub_field} is fed by several Jira fields in the to_jira \
                 direction ({list}): an incoming value could not be routed; give each Jira \
                 field its own external field, or set direction = to_external on all but one"
            ),
            Side::Jira => format!(
                "Jira field {hub_field} is fed by several external fields in the to_external \
                 direction ({list}): an outgoing value could not be routed; give each external \
                 field its own Jira field, or set direction = to_jira on all but one"
            ),
        };
        errors.push(MappingError::new(distinct[1].location.clone(), message));
    }
}
