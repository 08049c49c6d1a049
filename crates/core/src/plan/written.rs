//! Values a connection's script changed on their way to the other side, and their echoes.
//!
//! A script hook (`to_jira` appending " [from Zendesk]" to the summary) may write a value
//! other than the one the mapping produced, and not one the mapping can read back to the
//! synced value. Without help, the echo of that write would differ from the shadow and be
//! copied back — the script applied again, the suffix doubled, forever. So the value as
//! written is kept in the shadow entry ([`ShadowEntry::written`]) and, before planning, a
//! value equal to it is taken for what the mapping would have written
//! ([`restore_written`]): the planner then sees an echo, or a twin unchanged since the sync.

use super::{Plan, canonical};
use crate::convert::from_canonical;
use crate::ids::Side;
use crate::link::{Shadow, ShadowEntry};
use crate::mapping::{FieldMapping, Mapping};
use crate::value::FieldValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// `values` (keyed by `side`'s field ids, as read from `side`) with every value a script wrote
/// to `side` — recorded as `written` in `pending` or `shadow` for an entry written to `side`
/// — replaced by the value the mapping would have written (`from_canonical(entry.value)`).
///
/// Used on the incoming source values and on the twin's current values before planning, so
/// the echo of a scripted write is an echo and a twin holding it is unchanged.
///
/// Borrows `values` unchanged when the link records no scripted value (every link of a
/// connection without a script): the worker calls this on every event.
pub fn restore_written<'a>(
    values: &'a BTreeMap<String, FieldValue>,
    side: Side,
    shadow: &Shadow,
    pending: &Shadow,
    mapping: &Mapping,
) -> Cow<'a, BTreeMap<String, FieldValue>> {
    let scripted = |s: &Shadow| s.0.values().any(|e| e.written.is_some());
    if !scripted(shadow) && !scripted(pending) {
        return Cow::Borrowed(values);
    }
    let mut out = Cow::Borrowed(values);
    for m in &mapping.fields {
        let field = m.field_on(side);
        let Some(held) = values.get(field) else {
            continue;
        };
        let key = m.key();
        let recorded = [pending.get(&key), shadow.get(&key)];
        let entry = recorded.into_iter().flatten().find(|e| {
            e.source.other() == side
                && e.written
                    .as_ref()
                    .is_some_and(|w| same_value(held, w, m, side))
        });
        if let Some(entry) = entry
            && let Ok(mapped) = from_canonical(&entry.value, m, side)
        {
            out.to_mut().insert(field.to_string(), mapped);
        }
    }
    out
}

/// Whether two values read from `side` for mapping `m` are the same: equal as read, or in
/// canonical terms (a webhook may carry a value in another shape than the write sent).
fn same_value(a: &FieldValue, b: &FieldValue, m: &FieldMapping, side: Side) -> bool {
    a == b || canonical(a, m, side).is_some_and(|ca| canonical(b, m, side) == Some(ca))
}

/// Replaces the plan's writes to `target` by `written`, what a script hook returned, and
/// records in the shadow updates (and so in the pending writes) every value the script
/// changed as `written`. A field the script left out is not written, and its shadow update
/// is dropped: the target does not hold it. Fields the script added are written as they are.
pub fn record_script_writes(
    plan: &mut Plan,
    written: &BTreeMap<String, FieldValue>,
    target: Side,
    mapping: &Mapping,
) {
    for (field, planned) in &plan.writes {
        for m in mapping.by_field(target, field) {
            let key = m.key();
            match written.get(field) {
                None => {
                    plan.shadow_updates.remove(&key);
                    for d in plan.decisions.iter_mut().filter(|d| d.mapping_key == key) {
                        d.detail.push_str("; left out of the write by the script");
                    }
                }
                Some(value) if value != planned => {
                    if let Some(entry) = plan.shadow_updates.get_mut(&key) {
                        entry.written = Some(value.clone());
                    }
                }
                Some(_) => {}
            }
        }
    }
    plan.writes = written.clone();
}

/// Carries `written` over into the plan's shadow updates that record the value the link
/// already had towards the same side (a twin found already holding a scripted write is
/// `Unchanged`, and its next echo must still be recognised).
pub fn keep_written(plan: &mut Plan, shadow: &Shadow, pending: &Shadow) {
    for (key, entry) in plan.shadow_updates.iter_mut() {
        if entry.written.is_some() {
            continue;
        }
        let before = [pending.get(key), shadow.get(key)];
        let kept = before.into_iter().flatten().find(|old: &&ShadowEntry| {
            old.written.is_some()
                && old.value == entry.value
                && old.source.other() == entry.source.other()
        });
        if let Some(old) = kept {
            entry.written = old.written.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Outcome, PlanInput, plan_update};
    use chrono::{DateTime, TimeZone, Utc};

    /// The mapping key of summary ↔ subject.
    const KEY: &str = "summary|subject";

    fn ts(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .unwrap_or_default()
    }

    fn text(s: &str) -> FieldValue {
        FieldValue::Text(s.to_string())
    }

    fn mapping() -> Mapping {
        Mapping {
            fields: vec![FieldMapping::new("summary", "subject")],
        }
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, FieldValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), text(v)))
            .collect()
    }

    /// The shadow after "Printer" came from the external side and the script wrote
    /// "Printer [from Zendesk]" to Jira.
    fn scripted_shadow() -> Shadow {
        let mut shadow = Shadow::default();
        shadow.set(
            KEY,
            ShadowEntry {
                value: text("Printer"),
                source_ts: ts(0),
                source: Side::External,
                written: Some(text("Printer [from Zendesk]")),
            },
        );
        shadow
    }

    fn plan(
        source: Side,
        values: &BTreeMap<String, FieldValue>,
        twin: Option<&BTreeMap<String, FieldValue>>,
        shadow: &Shadow,
    ) -> Plan {
        plan_update(&PlanInput {
            source,
            source_ts: ts(10),
            source_values: values,
            target_values: twin,
            target_ts: Some(ts(5)),
            shadow,
            pending: &Shadow::default(),
            mapping: &mapping(),
            policy: Default::default(),
        })
    }

    #[test]
    fn the_echo_of_a_scripted_write_is_an_echo() {
        let m = mapping();
        let shadow = scripted_shadow();
        let echo = fields(&[("summary", "Printer [from Zendesk]")]);
        let restored =
            restore_written(&echo, Side::Jira, &shadow, &Shadow::default(), &m).into_owned();
        assert_eq!(restored, fields(&[("summary", "Printer")]));
        let p = plan(Side::Jira, &restored, None, &shadow);
        assert!(p.writes.is_empty());
        assert_eq!(p.decisions[0].outcome, Outcome::Echo);
        // Unrestored, the echo would be copied back to the external side.
        assert_eq!(plan(Side::Jira, &echo, None, &shadow).writes.len(), 1);
    }

    #[test]
    fn only_the_written_value_on_the_side_written_to_is_restored() {
        let m = mapping();
        let shadow = scripted_shadow();
        let edited = fields(&[("summary", "Printer on fire")]);
        let restored =
            restore_written(&edited, Side::Jira, &shadow, &Shadow::default(), &m).into_owned();
        assert_eq!(restored, edited, "a real edit in Jira stays as it is");
        let external = fields(&[("subject", "Printer [from Zendesk]")]);
        let restored = restore_written(&external, Side::External, &shadow, &Shadow::default(), &m)
            .into_owned();
        assert_eq!(
            restored, external,
            "nothing was scripted towards the external side"
        );
    }

    #[test]
    fn a_twin_holding_the_scripted_write_is_unchanged_since_the_sync() {
        let m = mapping();
        let shadow = scripted_shadow();
        let incoming = fields(&[("subject", "Printer jammed")]);
        let twin = fields(&[("summary", "Printer [from Zendesk]")]);
        let twin = restore_written(&twin, Side::Jira, &shadow, &Shadow::default(), &m).into_owned();
        let p = plan(Side::External, &incoming, Some(&twin), &shadow);
        // Not a conflict: the twin holds what was synced, so the new value is written.
        assert_eq!(p.decisions[0].outcome, Outcome::Write);
        assert_eq!(p.writes, fields(&[("summary", "Printer jammed")]));
    }

    #[test]
    fn a_pending_scripted_write_that_landed_is_recognised() {
        let m = mapping();
        let pending = scripted_shadow();
        let twin = fields(&[("summary", "Printer [from Zendesk]")]);
        let twin =
            restore_written(&twin, Side::Jira, &Shadow::default(), &pending, &m).into_owned();
        let incoming = fields(&[("subject", "Printer")]);
        let p = plan_update(&PlanInput {
            source: Side::External,
            source_ts: ts(10),
            source_values: &incoming,
            target_values: Some(&twin),
            target_ts: Some(ts(5)),
            shadow: &Shadow::default(),
            pending: &pending,
            mapping: &m,
            policy: Default::default(),
        });
        assert!(p.writes.is_empty());
        assert_eq!(p.landed.get(KEY), pending.get(KEY));
    }

    #[test]
    fn script_writes_are_recorded_where_they_differ() {
        let m = mapping();
        let incoming = fields(&[("subject", "Printer")]);
        let mut p = plan(Side::External, &incoming, None, &Shadow::default());
        let written = fields(&[("summary", "Printer [from Zendesk]"), ("labels", "x")]);
        record_script_writes(&mut p, &written, Side::Jira, &m);
        assert_eq!(p.writes, written);
        let mut expected = scripted_shadow().0[KEY].clone();
        expected.source_ts = ts(10);
        assert_eq!(p.shadow_updates[KEY], expected);
        assert_eq!(p.pending_writes().get(KEY), p.shadow_updates.get(KEY));

        // Unchanged by the script: nothing recorded.
        let mut same = plan(Side::External, &incoming, None, &Shadow::default());
        record_script_writes(
            &mut same,
            &fields(&[("summary", "Printer")]),
            Side::Jira,
            &m,
        );
        assert_eq!(same.shadow_updates[KEY].written, None);

        // Left out: neither written nor synced.
        let mut removed = plan(Side::External, &incoming, None, &Shadow::default());
        record_script_writes(&mut removed, &BTreeMap::new(), Side::Jira, &m);
        assert!(removed.writes.is_empty());
        assert!(removed.shadow_updates.is_empty());
        assert!(removed.pending_writes().is_empty());
    }

    #[test]
    fn an_unchanged_twin_keeps_the_scripted_value() {
        let m = mapping();
        let shadow = scripted_shadow();
        let twin = fields(&[("summary", "Printer [from Zendesk]")]);
        let twin = restore_written(&twin, Side::Jira, &shadow, &Shadow::default(), &m).into_owned();
        // The same value arrives again with a newer time (say, a poll).
        let mut stale_shadow = shadow.clone();
        if let Some(e) = stale_shadow.0.get_mut(KEY) {
            e.value = text("Old");
        }
        let incoming = fields(&[("subject", "Printer")]);
        let mut p = plan(Side::External, &incoming, Some(&twin), &Shadow::default());
        assert_eq!(p.decisions[0].outcome, Outcome::Unchanged);
        keep_written(&mut p, &shadow, &Shadow::default());
        assert_eq!(
            p.shadow_updates[KEY].written,
            Some(text("Printer [from Zendesk]"))
        );
        // A different value recorded before is not carried over.
        let mut q = plan(Side::External, &incoming, Some(&twin), &Shadow::default());
        keep_written(&mut q, &stale_shadow, &Shadow::default());
        assert_eq!(q.shadow_updates[KEY].written, None);
    }
}
