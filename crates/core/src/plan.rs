//! The planning step: given a change from one side, decide what to write to the other.
//!
//! This is where loops die and conflicts are settled, so it is a pure function over plain
//! data. For each mapping entry the incoming value is brought into canonical (Jira) terms and
//! compared with the link's *shadow* (the value last synced) and, when known, the twin's
//! current value:
//!
//! A *pending* write (stored before Tandem writes, see [`PlanInput::pending`]) that is found on
//! the side it was written to counts as synced: its answer was lost, but it landed. It takes
//! the shadow entry's place, so Tandem's own value on the twin is not mistaken for an edit
//! made there, and an incoming value equal to it is an echo.
//!
//! | situation | outcome |
//! | --- | --- |
//! | value equals the shadow | `Echo`: our own write coming back, or a no-op edit |
//! | edit older than the shadow's edit | `Stale`: a late or re-delivered state |
//! | twin already holds the value | `Unchanged`: only the shadow moves on |
//! | both sides changed since the last sync | conflict: the policy picks `Write` or `ConflictLost` (the loser is recorded in the shadow, timed no later than the winner) |
//! | otherwise | `Write` |
//!
//! The caller applies `writes` in one call to the target, then stores `landed` and
//! `shadow_updates` in the same transaction as the outcome.

use crate::convert::{ConvertError, from_canonical, to_canonical};
use crate::ids::Side;
use crate::link::{Shadow, ShadowEntry};
use crate::mapping::{ConflictPolicy, FieldMapping, Mapping};
use crate::value::FieldValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything the planner looks at for one update event.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The side the event came from.
    pub source: Side,
    /// When the edit happened there.
    pub source_ts: DateTime<Utc>,
    /// Keyed by source-side field id; only the fields the event carries.
    pub source_values: &'a BTreeMap<String, FieldValue>,
    /// Current values of the twin, keyed by target-side field id (`None` = not fetched).
    pub target_values: Option<&'a BTreeMap<String, FieldValue>>,
    /// The twin's last update time.
    pub target_ts: Option<DateTime<Utc>>,
    pub shadow: &'a Shadow,
    /// The link's pending writes (see [`crate::link::Link::pending`]): values Tandem set out
    /// to write whose answer it has not seen. One found on the side it was written to — the
    /// twin's current value, or the incoming value when it was written to the source side —
    /// landed: it stands in for the shadow entry and is reported in [`Plan::landed`].
    pub pending: &'a Shadow,
    pub mapping: &'a Mapping,
    /// The connection's policy; a [`FieldMapping::conflict`] overrides it.
    pub policy: ConflictPolicy,
}

/// What happened to one mapping entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The value goes to the other side.
    Write,
    /// Equal to the last synced value: nothing to do.
    Echo,
    /// The other side already holds the value; the shadow is brought up to date.
    Unchanged,
    /// Older than the last synced edit.
    Stale,
    /// Both sides changed and the policy kept the other side's value.
    ConflictLost,
    /// The entry does not carry values from this side.
    NotInDirection,
    /// The value could not be converted; see [`Plan::errors`].
    Failed,
}

/// The planner's verdict on one mapping entry, for the audit log and for tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub mapping_key: String,
    pub outcome: Outcome,
    /// Why, in words a person can follow.
    pub detail: String,
}

/// What to do about one event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Target-side field id → value in target terms; applied as one write.
    pub writes: BTreeMap<String, FieldValue>,
    /// Mapping key → new shadow entry; stored with the outcome.
    pub shadow_updates: BTreeMap<String, ShadowEntry>,
    /// Mapping key → pending write found landed (see [`PlanInput::pending`]). It belongs in
    /// the shadow before `shadow_updates` (which may supersede it), and may be stored before
    /// anything is written.
    pub landed: BTreeMap<String, ShadowEntry>,
    /// One per mapping entry whose source field the event carries.
    pub decisions: Vec<Decision>,
    /// Conversion failures: permanent, the caller dead-letters them.
    pub errors: Vec<ConvertError>,
    /// The conflicts the policy settled, with both sides' values: what the caller records
    /// for people to review (the decisions alone name no values).
    pub conflicts: Vec<Conflict>,
}

/// One conflict the policy settled: both sides changed a field since the last sync (or a
/// pair never synced held two values) and one side's value was kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub mapping_key: String,
    /// The policy that decided (the field's own, else the connection's).
    pub policy: ConflictPolicy,
    /// The side whose value was kept.
    pub winner: Side,
    /// Jira's value, in canonical (Jira) terms.
    pub jira_value: FieldValue,
    /// The external side's value, in canonical (Jira) terms, so the two compare directly.
    pub external_value: FieldValue,
    /// When each side's edit was made, when known.
    pub jira_ts: Option<DateTime<Utc>>,
    pub external_ts: Option<DateTime<Utc>>,
    /// Why, in words a person can follow.
    pub detail: String,
}

impl Plan {
    /// True when nothing needs writing to the target.
    pub fn is_noop(&self) -> bool {
        self.writes.is_empty()
    }

    /// Brings `shadow` up to date with this plan: the landed pending writes, then the
    /// updates (which supersede them).
    pub fn apply_shadow(&self, shadow: &mut Shadow) {
        for (k, e) in self.landed.iter().chain(&self.shadow_updates) {
            shadow.set(k.clone(), e.clone());
        }
    }

    /// The shadow entries of the planned writes: what a caller records as pending before
    /// it writes (see [`PlanInput::pending`]).
    pub fn pending_writes(&self) -> Shadow {
        let mut pending = Shadow::default();
        for d in self.with_outcome(Outcome::Write) {
            if let Some(e) = self.shadow_updates.get(&d.mapping_key) {
                pending.set(d.mapping_key.clone(), e.clone());
            }
        }
        pending
    }

    /// The decisions with a given outcome.
    pub fn with_outcome(&self, outcome: Outcome) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(move |d| d.outcome == outcome)
    }

    fn decide(&mut self, m: &FieldMapping, outcome: Outcome, detail: impl Into<String>) {
        self.decisions.push(Decision {
            mapping_key: m.key(),
            outcome,
            detail: detail.into(),
        });
    }

    /// The canonical value of mapping `m` from `source_values`, when `source` sent the field,
    /// it flows from `source` and converts. A field that does not flow, or fails to convert,
    /// is recorded as decided here; an absent field is passed over without a decision.
    fn incoming(
        &mut self,
        m: &FieldMapping,
        source_values: &BTreeMap<String, FieldValue>,
        source: Side,
    ) -> Option<FieldValue> {
        let raw = source_values.get(m.field_on(source))?;
        if !m.flows(source) {
            self.decide(
                m,
                Outcome::NotInDirection,
                format!("direction is {}", m.direction),
            );
            return None;
        }
        match to_canonical(raw, m, source) {
            Ok(v) => Some(v),
            Err(e) => {
                self.decide(m, Outcome::Failed, e.to_string());
                self.errors.push(e);
                None
            }
        }
    }

    /// Converts the canonical value for the target and records the write and the shadow.
    fn write(
        &mut self,
        m: &FieldMapping,
        canonical: FieldValue,
        source: Side,
        source_ts: DateTime<Utc>,
        detail: String,
    ) {
        let target = source.other();
        match from_canonical(&canonical, m, target) {
            Ok(out) => {
                self.writes.insert(m.field_on(target).to_string(), out);
                self.shadow_updates.insert(
                    m.key(),
                    ShadowEntry {
                        value: canonical,
                        source_ts,
                        source,
                        written: None,
                    },
                );
                self.decide(m, Outcome::Write, detail);
            }
            Err(e) => {
                self.decide(m, Outcome::Failed, e.to_string());
                self.errors.push(e);
            }
        }
    }
}

/// Plans an update of an existing link. See the module docs for the rules.
pub fn plan_update(input: &PlanInput) -> Plan {
    let mut plan = Plan::default();
    let source = input.source;
    let target = source.other();

    for m in &input.mapping.fields {
        let key = m.key();
        let raw = input.source_values.get(m.field_on(source));
        // A pending write that landed: the side it was written to holds its value.
        let landed = input.pending.get(&key).filter(|p| {
            let written_to = p.source.other();
            let held = if written_to == source {
                raw
            } else {
                input
                    .target_values
                    .and_then(|tv| tv.get(m.field_on(target)))
            };
            held.is_some_and(|h| canonical(h, m, written_to).as_ref() == Some(&p.value))
        });
        if let Some(p) = landed {
            plan.landed.insert(key.clone(), p.clone());
        }
        let Some(v) = plan.incoming(m, input.source_values, source) else {
            continue;
        };
        let shadow = landed.or_else(|| input.shadow.get(&key));

        if let Some(s) = shadow {
            if v == s.value {
                let why = if landed.is_some() {
                    "equal to Tandem's own write, which landed although its answer was lost"
                } else {
                    "equal to the last synced value"
                };
                plan.decide(m, Outcome::Echo, why);
                continue;
            }
            if input.source_ts < s.source_ts {
                plan.decide(
                    m,
                    Outcome::Stale,
                    format!(
                        "edit at {} is older than the last synced edit at {} ({})",
                        input.source_ts, s.source_ts, s.source
                    ),
                );
                continue;
            }
        }

        // The twin's current value, when known. An empty value is taken as is: reading it
        // through the value map's default would hide that the twin still needs the value.
        let current = input
            .target_values
            .and_then(|tv| tv.get(m.field_on(target)))
            .and_then(|raw| canonical(raw, m, target));

        if let Some(t) = &current {
            if *t == v {
                plan.shadow_updates.insert(
                    key,
                    ShadowEntry {
                        value: v,
                        source_ts: input.source_ts,
                        source,
                        written: None,
                    },
                );
                plan.decide(m, Outcome::Unchanged, format!("{target} already holds it"));
                continue;
            }
            // Both sides changed since the last sync — or, for a pair never synced (just
            // discovered, or re-found after a crash), both already hold their own value:
            // either way the conflict policy decides. A twin with no value is simply filled.
            let both_changed = match shadow {
                Some(s) => *t != s.value,
                None => !t.is_empty(),
            };
            if both_changed {
                let policy = m.conflict.unwrap_or(input.policy);
                let (wins, why) = match policy {
                    ConflictPolicy::LaterWins => match input.target_ts {
                        Some(tt) if input.source_ts < tt => {
                            (false, format!("{target}'s edit at {tt} is later"))
                        }
                        Some(tt) => (
                            true,
                            format!("this edit at {} is not older than {tt}", input.source_ts),
                        ),
                        None => (true, format!("{target}'s edit time is unknown")),
                    },
                    ConflictPolicy::JiraWins => (source == Side::Jira, "jira_wins".to_string()),
                    ConflictPolicy::ExternalWins => {
                        (source == Side::External, "external_wins".to_string())
                    }
                };
                // Both values in canonical terms, named by side, for the record.
                let (jira_value, external_value, jira_ts, external_ts) = match source {
                    Side::Jira => (v.clone(), t.clone(), Some(input.source_ts), input.target_ts),
                    Side::External => {
                        (t.clone(), v.clone(), input.target_ts, Some(input.source_ts))
                    }
                };
                plan.conflicts.push(Conflict {
                    mapping_key: key.clone(),
                    policy,
                    winner: if wins { source } else { target },
                    jira_value,
                    external_value,
                    jira_ts,
                    external_ts,
                    detail: why.clone(),
                });
                if wins {
                    plan.write(
                        m,
                        v,
                        source,
                        input.source_ts,
                        format!("conflict won ({policy}): {why}"),
                    );
                } else {
                    // The losing value is recorded as the pair's last known state, timed no
                    // later than the winner's edit. Otherwise the next event from this side
                    // (often the echo of a write Tandem makes to this item, such as its link
                    // field, which moves the item's `updated`) would re-run the conflict with
                    // a newer time and write the losing value over the winner. With it, that
                    // echo is an echo, and the winner's own event finds this side still
                    // holding the recorded value and simply writes the winner across.
                    let at = input
                        .target_ts
                        .map_or(DateTime::UNIX_EPOCH, |t| t.min(input.source_ts));
                    plan.shadow_updates.insert(
                        key,
                        ShadowEntry {
                            value: v,
                            source_ts: at,
                            source,
                            written: None,
                        },
                    );
                    plan.decide(
                        m,
                        Outcome::ConflictLost,
                        format!("both sides changed; {policy}: {why}"),
                    );
                }
                continue;
            }
        }

        let detail = if shadow.is_none() {
            "not synced before".to_string()
        } else {
            "changed since the last sync".to_string()
        };
        plan.write(m, v, source, input.source_ts, detail);
    }
    plan
}

/// A value read from `side` in canonical terms; an empty value is taken as is (reading it
/// through the value map's default would hide that the side still needs a value).
fn canonical(raw: &FieldValue, m: &FieldMapping, side: Side) -> Option<FieldValue> {
    if raw.is_empty() {
        Some(FieldValue::Empty)
    } else {
        to_canonical(raw, m, side).ok()
    }
}

/// Whether an item read from `side` holds every value a create recorded (`created`, keyed
/// by mapping key, in canonical terms): the item is that create's twin. An empty record
/// matches nothing, since it cannot tell one item from another.
pub fn holds_created(
    values: &BTreeMap<String, FieldValue>,
    side: Side,
    created: &Shadow,
    mapping: &Mapping,
) -> bool {
    let mut compared = 0;
    for m in &mapping.fields {
        let Some(entry) = created.get(&m.key()) else {
            continue;
        };
        let held = values
            .get(m.field_on(side))
            .and_then(|raw| canonical(raw, m, side));
        if held.as_ref() != Some(&entry.value) {
            return false;
        }
        compared += 1;
    }
    compared > 0
}

/// Plans the creation of a twin: every field that flows from `source` and is present.
pub fn plan_create(
    source: Side,
    source_ts: DateTime<Utc>,
    source_values: &BTreeMap<String, FieldValue>,
    mapping: &Mapping,
) -> Plan {
    let mut plan = Plan::default();
    for m in &mapping.fields {
        if let Some(v) = plan.incoming(m, source_values, source) {
            plan.write(m, v, source, source_ts, "new twin".to_string());
        }
    }
    plan
}

mod written;
pub use written::{keep_written, record_script_writes, restore_written};

#[cfg(test)]
mod tests;
