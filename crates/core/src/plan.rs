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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{Direction, FieldType};
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn ts(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .unwrap_or_default()
    }

    fn text(s: &str) -> FieldValue {
        FieldValue::Text(s.to_string())
    }

    fn mapping() -> Mapping {
        let mut priority = FieldMapping::new("priority", "5");
        priority.field_type = FieldType::Option;
        priority.value_map = vec![
            ("High".into(), "3".into()),
            ("Medium".into(), "2".into()),
            ("Low".into(), "1".into()),
        ];
        let mut labels = FieldMapping::new("labels", "tags");
        labels.field_type = FieldType::Labels;
        let mut description = FieldMapping::new("description", "9");
        description.direction = Direction::ToExternal;
        let mut due = FieldMapping::new("duedate", "7");
        due.field_type = FieldType::Date;
        Mapping {
            fields: vec![
                FieldMapping::new("summary", "1"),
                priority,
                labels,
                description,
                due,
            ],
        }
    }

    #[test]
    fn a_twin_holds_what_its_create_recorded() {
        let m = mapping();
        let jira = values(&[("summary", text("Printer")), ("priority", text("High"))]);
        let created = Shadow(plan_create(Side::Jira, ts(0), &jira, &m).shadow_updates);
        // The twin as the other side reads it: its own field ids, the value map applied.
        let twin = values(&[("1", text("Printer")), ("5", text("3")), ("7", text("x"))]);
        assert!(holds_created(&twin, Side::External, &created, &m));
        let edited = values(&[("1", text("Printer!")), ("5", text("3"))]);
        assert!(!holds_created(&edited, Side::External, &created, &m));
        let missing = values(&[("1", text("Printer"))]);
        assert!(!holds_created(&missing, Side::External, &created, &m));
        assert!(!holds_created(
            &twin,
            Side::External,
            &Shadow::default(),
            &m
        ));
    }

    fn values(pairs: &[(&str, FieldValue)]) -> BTreeMap<String, FieldValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn shadow(pairs: &[(&str, FieldValue, i64, Side)]) -> Shadow {
        let mut s = Shadow::default();
        for (k, v, t, side) in pairs {
            s.set(
                *k,
                ShadowEntry {
                    value: v.clone(),
                    source_ts: ts(*t),
                    source: *side,
                },
            );
        }
        s
    }

    struct Case {
        source: Side,
        source_ts: i64,
        source_values: BTreeMap<String, FieldValue>,
        target_values: Option<BTreeMap<String, FieldValue>>,
        target_ts: Option<i64>,
        shadow: Shadow,
        pending: Shadow,
        policy: ConflictPolicy,
        mapping: Mapping,
    }

    impl Case {
        fn new(source: Side, source_ts: i64, source_values: &[(&str, FieldValue)]) -> Self {
            Case {
                source,
                source_ts,
                source_values: values(source_values),
                target_values: None,
                target_ts: None,
                shadow: Shadow::default(),
                pending: Shadow::default(),
                policy: ConflictPolicy::LaterWins,
                mapping: mapping(),
            }
        }
        fn target(mut self, t: i64, vals: &[(&str, FieldValue)]) -> Self {
            self.target_ts = Some(t);
            self.target_values = Some(values(vals));
            self
        }
        fn shadow(mut self, pairs: &[(&str, FieldValue, i64, Side)]) -> Self {
            self.shadow = shadow(pairs);
            self
        }
        fn pending(mut self, pairs: &[(&str, FieldValue, i64, Side)]) -> Self {
            self.pending = shadow(pairs);
            self
        }
        fn policy(mut self, p: ConflictPolicy) -> Self {
            self.policy = p;
            self
        }
        fn run(&self) -> Plan {
            plan_update(&PlanInput {
                source: self.source,
                source_ts: ts(self.source_ts),
                source_values: &self.source_values,
                target_values: self.target_values.as_ref(),
                target_ts: self.target_ts.map(ts),
                shadow: &self.shadow,
                pending: &self.pending,
                mapping: &self.mapping,
                policy: self.policy,
            })
        }
    }

    fn outcomes(p: &Plan) -> Vec<(&str, Outcome)> {
        p.decisions
            .iter()
            .map(|d| (d.mapping_key.as_str(), d.outcome))
            .collect()
    }

    #[test]
    fn first_sync_writes_in_target_terms() {
        let p = Case::new(
            Side::Jira,
            10,
            &[
                ("summary", text("Hello")),
                ("priority", FieldValue::Option("High".into())),
            ],
        )
        .run();
        assert_eq!(
            outcomes(&p),
            [
                ("summary|1", Outcome::Write),
                ("priority|5", Outcome::Write)
            ]
        );
        assert_eq!(
            p.writes,
            values(&[("1", text("Hello")), ("5", FieldValue::Option("3".into()))])
        );
        let s = &p.shadow_updates["priority|5"];
        assert_eq!(s.value, FieldValue::Option("High".into()));
        assert_eq!((s.source, s.source_ts), (Side::Jira, ts(10)));
        assert!(p.errors.is_empty());
    }

    #[test]
    fn echo_of_our_own_write_writes_nothing() {
        // We wrote priority High → "3" outside; the external webhook echoes "3".
        let p = Case::new(Side::External, 20, &[("5", text("3"))])
            .shadow(&[(
                "priority|5",
                FieldValue::Option("High".into()),
                10,
                Side::Jira,
            )])
            .target(10, &[("priority", FieldValue::Option("Low".into()))])
            .run();
        assert_eq!(outcomes(&p), [("priority|5", Outcome::Echo)]);
        assert!(p.is_noop() && p.shadow_updates.is_empty());
    }

    #[test]
    fn stale_state_does_not_overwrite_newer_sync() {
        let p = Case::new(Side::External, 5, &[("1", text("old"))])
            .shadow(&[("summary|1", text("new"), 10, Side::Jira)])
            .run();
        assert_eq!(outcomes(&p), [("summary|1", Outcome::Stale)]);
        assert!(p.is_noop() && p.shadow_updates.is_empty());
    }

    #[test]
    fn unchanged_when_twin_already_holds_it() {
        let p = Case::new(Side::External, 30, &[("1", text("same"))])
            .shadow(&[("summary|1", text("before"), 10, Side::Jira)])
            .target(25, &[("summary", text("same"))])
            .run();
        assert_eq!(outcomes(&p), [("summary|1", Outcome::Unchanged)]);
        assert!(p.is_noop());
        let s = &p.shadow_updates["summary|1"];
        assert_eq!(
            (&s.value, s.source_ts, s.source),
            (&text("same"), ts(30), Side::External)
        );
    }

    #[test]
    fn plain_change_writes() {
        let p = Case::new(Side::External, 30, &[("1", text("new"))])
            .shadow(&[("summary|1", text("old"), 10, Side::Jira)])
            .target(10, &[("summary", text("old"))])
            .run();
        assert_eq!(outcomes(&p), [("summary|1", Outcome::Write)]);
        assert_eq!(p.writes, values(&[("summary", text("new"))]));
        // Unknown target: still a write.
        let p = Case::new(Side::External, 30, &[("1", text("new"))])
            .shadow(&[("summary|1", text("old"), 10, Side::Jira)])
            .run();
        assert_eq!(p.writes, values(&[("summary", text("new"))]));
    }

    fn conflict(source: Side, source_ts: i64, target_ts: Option<i64>, p: ConflictPolicy) -> Plan {
        let (src_field, tgt_field) = match source {
            Side::Jira => ("summary", "1"),
            Side::External => ("1", "summary"),
        };
        let mut c = Case::new(source, source_ts, &[(src_field, text("mine"))])
            .shadow(&[("summary|1", text("base"), 10, Side::Jira)])
            .target(0, &[(tgt_field, text("theirs"))])
            .policy(p);
        c.target_ts = target_ts;
        c.run()
    }

    #[test]
    fn conflicts_follow_the_policy() {
        use ConflictPolicy::*;
        let lost = |p: &Plan| p.decisions[0].outcome == Outcome::ConflictLost && p.is_noop();
        let won = |p: &Plan| p.decisions[0].outcome == Outcome::Write && p.writes.len() == 1;
        assert!(won(&conflict(Side::Jira, 30, Some(20), LaterWins)));
        assert!(won(&conflict(Side::Jira, 30, Some(30), LaterWins)));
        assert!(lost(&conflict(Side::Jira, 20, Some(30), LaterWins)));
        assert!(won(&conflict(Side::Jira, 20, None, LaterWins)));
        assert!(won(&conflict(Side::Jira, 20, Some(30), JiraWins)));
        assert!(lost(&conflict(Side::External, 40, Some(30), JiraWins)));
        assert!(won(&conflict(Side::External, 20, Some(30), ExternalWins)));
        assert!(lost(&conflict(Side::Jira, 40, Some(30), ExternalWins)));
        let p = conflict(Side::Jira, 20, Some(30), LaterWins);
        // The loser is remembered as the last known state, timed no later than the winner,
        // so the winner's own event is not stale and finds nothing to contest.
        let lost_entry = &p.shadow_updates["summary|1"];
        assert_eq!(lost_entry.value, text("mine"));
        assert_eq!(lost_entry.source_ts, ts(20));
        assert!(
            p.decisions[0].detail.contains("later_wins"),
            "{:?}",
            p.decisions
        );
    }

    #[test]
    fn a_never_synced_pair_that_disagrees_is_settled_by_the_policy() {
        // Just discovered (or re-found after a crash): no shadow, both sides hold a value.
        let pair = |source_ts, target_ts, policy| {
            Case::new(Side::External, source_ts, &[("1", text("outside"))])
                .target(target_ts, &[("summary", text("jira"))])
                .policy(policy)
                .run()
        };
        let p = pair(10, 20, ConflictPolicy::LaterWins);
        assert_eq!(outcomes(&p), [("summary|1", Outcome::ConflictLost)]);
        assert!(p.is_noop(), "Jira's later value stays");
        let p = pair(30, 20, ConflictPolicy::LaterWins);
        assert_eq!(p.writes, values(&[("summary", text("outside"))]));
        let p = pair(30, 20, ConflictPolicy::JiraWins);
        assert!(p.is_noop());
        // A twin with no value yet is filled whatever the times.
        let p = Case::new(Side::External, 10, &[("1", text("outside"))])
            .target(20, &[("summary", FieldValue::Empty)])
            .run();
        assert_eq!(p.writes, values(&[("summary", text("outside"))]));
        // And a pair that already agrees just records the shadow.
        let p = Case::new(Side::External, 10, &[("1", text("same"))])
            .target(20, &[("summary", text("same"))])
            .run();
        assert!(p.writes.is_empty());
        assert_eq!(p.shadow_updates["summary|1"].value, text("same"));
    }

    #[test]
    fn field_policy_overrides_connection_policy() {
        let mut c = Case::new(Side::External, 40, &[("1", text("mine"))])
            .shadow(&[("summary|1", text("base"), 10, Side::Jira)])
            .target(30, &[("summary", text("theirs"))])
            .policy(ConflictPolicy::LaterWins);
        c.mapping.fields[0].conflict = Some(ConflictPolicy::JiraWins);
        assert_eq!(c.run().decisions[0].outcome, Outcome::ConflictLost);
    }

    #[test]
    fn direction_and_conversion_errors() {
        // description only flows Jira → external; the external "9" is not routed to Jira.
        let p = Case::new(
            Side::External,
            10,
            &[
                ("9", text("x")),
                ("7", text("not a date")),
                ("5", text("42")),
                ("1", text("ok")),
            ],
        )
        .run();
        assert_eq!(
            outcomes(&p),
            [
                ("summary|1", Outcome::Write),
                ("priority|5", Outcome::Failed),
                ("description|9", Outcome::NotInDirection),
                ("duedate|7", Outcome::Failed),
            ]
        );
        assert_eq!(p.writes, values(&[("summary", text("ok"))]));
        assert_eq!(p.errors.len(), 2);
        assert!(p.errors[0].to_string().contains("`42`"));
        assert!(p.errors[1].to_string().contains("field 7"));
    }

    #[test]
    fn empty_twin_gets_the_value_even_with_a_default() {
        let mut c = Case::new(
            Side::Jira,
            10,
            &[("priority", FieldValue::Option("Medium".into()))],
        )
        .target(5, &[("5", FieldValue::Empty)]);
        c.mapping.fields[1].default = Some("Medium".into());
        let p = c.run();
        assert_eq!(p.writes, values(&[("5", FieldValue::Option("2".into()))]));
    }

    // ---- pending writes: a write whose answer was lost -----------------------------------

    /// Tandem wrote summary "mine" (Jira's edit at 20) outside; the answer was lost, so the
    /// shadow still says "base". Then the user edited Jira again ("newer", at 40) and
    /// something else outside (its `updated` is now 50). The retry reads both sides.
    fn lost_answer_retry(pending: bool) -> Plan {
        let c = Case::new(Side::Jira, 40, &[("summary", text("newer"))])
            .shadow(&[("summary|1", text("base"), 10, Side::Jira)])
            .target(50, &[("1", text("mine"))]);
        if pending {
            c.pending(&[("summary|1", text("mine"), 20, Side::Jira)])
                .run()
        } else {
            c.run()
        }
    }

    #[test]
    fn a_landed_pending_write_is_not_taken_for_an_edit_on_the_twin() {
        // Without the pending record, Tandem's own value outside looks like an edit made
        // there at 50, and Jira's newer edit loses the conflict.
        let p = lost_answer_retry(false);
        assert_eq!(outcomes(&p), [("summary|1", Outcome::ConflictLost)]);
        // With it, the value outside is Tandem's write (Jira's edit at 20), and the newer
        // edit simply goes across.
        let p = lost_answer_retry(true);
        assert_eq!(outcomes(&p), [("summary|1", Outcome::Write)]);
        assert_eq!(p.writes, values(&[("1", text("newer"))]));
        let landed = &p.landed["summary|1"];
        assert_eq!(
            (&landed.value, landed.source_ts, landed.source),
            (&text("mine"), ts(20), Side::Jira)
        );
        assert_eq!(p.shadow_updates["summary|1"].value, text("newer"));
        assert_eq!(
            p.pending_writes().get("summary|1").map(|e| &e.value),
            Some(&text("newer"))
        );
        // Applied in order: the landed write, then the new write supersedes it.
        let mut shadow = shadow(&[("summary|1", text("base"), 10, Side::Jira)]);
        p.apply_shadow(&mut shadow);
        assert_eq!(
            shadow.get("summary|1").map(|e| &e.value),
            Some(&text("newer"))
        );
    }

    #[test]
    fn a_retry_finding_its_write_landed_writes_nothing() {
        // Same event retried, nothing edited since: the twin holds the pending value.
        let p = Case::new(Side::Jira, 20, &[("summary", text("mine"))])
            .shadow(&[("summary|1", text("base"), 10, Side::Jira)])
            .pending(&[("summary|1", text("mine"), 20, Side::Jira)])
            .target(21, &[("1", text("mine"))])
            .run();
        assert_eq!(outcomes(&p), [("summary|1", Outcome::Echo)]);
        assert!(p.is_noop() && p.shadow_updates.is_empty());
        assert_eq!(p.landed["summary|1"].value, text("mine"));
    }

    #[test]
    fn a_pending_write_that_did_not_land_is_planned_as_before() {
        // The twin still holds the synced value: the write never happened.
        let p = Case::new(Side::Jira, 20, &[("summary", text("mine"))])
            .shadow(&[("summary|1", text("base"), 10, Side::Jira)])
            .pending(&[("summary|1", text("mine"), 20, Side::Jira)])
            .target(15, &[("1", text("base"))])
            .run();
        assert_eq!(outcomes(&p), [("summary|1", Outcome::Write)]);
        assert!(p.landed.is_empty());
        // Overwritten outside after it landed: a real edit there, which the policy weighs
        // against the stored shadow as before (here the later one outside wins).
        let p = Case::new(Side::Jira, 20, &[("summary", text("mine"))])
            .shadow(&[("summary|1", text("base"), 10, Side::Jira)])
            .pending(&[("summary|1", text("mine"), 20, Side::Jira)])
            .target(30, &[("1", text("theirs"))])
            .run();
        assert_eq!(outcomes(&p), [("summary|1", Outcome::ConflictLost)]);
        assert!(p.landed.is_empty());
        // Unknown twin (the shadow-only pass): the pending write cannot be judged, so the
        // event goes on to read the twin.
        let p = Case::new(Side::Jira, 20, &[("summary", text("mine"))])
            .shadow(&[("summary|1", text("base"), 10, Side::Jira)])
            .pending(&[("summary|1", text("mine"), 20, Side::Jira)])
            .run();
        assert_eq!(outcomes(&p), [("summary|1", Outcome::Write)]);
        assert!(p.landed.is_empty());
    }

    #[test]
    fn the_echo_of_a_pending_write_is_an_echo_without_reading_the_twin() {
        // The webhook from the side Tandem wrote to carries the pending value (in that side's
        // terms): the write landed, and this is its echo, even with no shadow entry at all.
        let p = Case::new(Side::External, 30, &[("5", text("3"))])
            .pending(&[(
                "priority|5",
                FieldValue::Option("High".into()),
                20,
                Side::Jira,
            )])
            .run();
        assert_eq!(outcomes(&p), [("priority|5", Outcome::Echo)]);
        assert!(p.is_noop());
        assert_eq!(p.landed["priority|5"].source_ts, ts(20));
        // A different value from that side is an edit.
        let p = Case::new(Side::External, 30, &[("5", text("1"))])
            .pending(&[(
                "priority|5",
                FieldValue::Option("High".into()),
                20,
                Side::Jira,
            )])
            .run();
        assert_eq!(outcomes(&p), [("priority|5", Outcome::Write)]);
        assert!(p.landed.is_empty());
    }

    #[test]
    fn stored_links_without_pending_still_read() {
        let json = r#"{"connection":"c","jira_id":"1","jira_key":null,"external_id":"E",
                       "shadow":{},"version":3}"#;
        let link: crate::link::Link = serde_json::from_str(json).unwrap();
        assert!(link.pending.is_empty());
        assert!(!serde_json::to_string(&link).unwrap().contains("pending"));
    }

    #[test]
    fn create_plans_every_flowing_field() {
        let src = values(&[
            ("1", text("Hi")),
            ("5", text("1")),
            ("9", text("ignored")),
            ("tags", text("a b")),
        ]);
        let p = plan_create(Side::External, ts(1), &src, &mapping());
        assert_eq!(
            p.writes,
            values(&[
                ("summary", text("Hi")),
                ("priority", FieldValue::Option("Low".into())),
                ("labels", FieldValue::Labels(vec!["a".into(), "b".into()])),
            ])
        );
        assert_eq!(p.shadow_updates.len(), 3);
        assert_eq!(p.with_outcome(Outcome::NotInDirection).count(), 1);
    }

    // ---- property: echoes never write, and sequential edits converge ----------------------

    /// Both sides of one link, evolving under the planner.
    struct World {
        jira: BTreeMap<String, FieldValue>,
        ext: BTreeMap<String, FieldValue>,
        jira_ts: DateTime<Utc>,
        ext_ts: DateTime<Utc>,
        shadow: Shadow,
        pending: Shadow,
        mapping: Mapping,
    }

    impl World {
        fn side(&mut self, s: Side) -> (&mut BTreeMap<String, FieldValue>, &mut DateTime<Utc>) {
            match s {
                Side::Jira => (&mut self.jira, &mut self.jira_ts),
                Side::External => (&mut self.ext, &mut self.ext_ts),
            }
        }

        /// Delivers an event and applies the plan; returns it.
        fn deliver(
            &mut self,
            source: Side,
            at: DateTime<Utc>,
            fields: BTreeMap<String, FieldValue>,
        ) -> Plan {
            let (target_values, target_ts) = match source {
                Side::Jira => (self.ext.clone(), self.ext_ts),
                Side::External => (self.jira.clone(), self.jira_ts),
            };
            let plan = plan_update(&PlanInput {
                source,
                source_ts: at,
                source_values: &fields,
                target_values: Some(&target_values),
                target_ts: Some(target_ts),
                shadow: &self.shadow,
                pending: &self.pending,
                mapping: &self.mapping,
                policy: ConflictPolicy::LaterWins,
            });
            let write_at = at + chrono::Duration::seconds(1);
            let (tv, tts) = self.side(source.other());
            for (k, v) in &plan.writes {
                tv.insert(k.clone(), v.clone());
            }
            if !plan.writes.is_empty() {
                *tts = write_at;
            }
            plan.apply_shadow(&mut self.shadow);
            plan
        }
    }

    fn edit_strategy() -> impl Strategy<Value = (bool, usize, usize)> {
        (any::<bool>(), 0usize..4, 0usize..4)
    }

    fn edit_value(side: Side, field: usize, choice: usize) -> (String, FieldValue) {
        let summaries = ["", "a", "b", "c"];
        let prios = ["High", "Medium", "Low", "High"];
        let codes = ["3", "2", "1", "2"];
        let labels = [vec![], vec!["x"], vec!["x", "y"], vec!["y"]];
        match (side, field) {
            (Side::Jira, 0) => ("summary".into(), text(summaries[choice])),
            (Side::External, 0) => ("1".into(), text(summaries[choice])),
            (Side::Jira, 1) => ("priority".into(), FieldValue::Option(prios[choice].into())),
            (Side::External, 1) => ("5".into(), text(codes[choice])),
            (Side::Jira, 2) => (
                "labels".into(),
                FieldValue::Labels(labels[choice].iter().map(|s| s.to_string()).collect()),
            ),
            (Side::External, 2) => ("tags".into(), text(&labels[choice].join(" "))),
            (Side::Jira, _) => ("description".into(), text(summaries[choice])),
            (Side::External, _) => ("9".into(), text(summaries[choice])),
        }
    }

    proptest! {
        #[test]
        fn echoes_never_write_and_edits_converge(edits in prop::collection::vec(edit_strategy(), 1..25)) {
            let mut w = World {
                jira: BTreeMap::new(),
                ext: BTreeMap::new(),
                jira_ts: ts(0),
                ext_ts: ts(0),
                shadow: Shadow::default(),
                pending: Shadow::default(),
                mapping: mapping(),
            };
            for (i, (from_jira, field, choice)) in edits.into_iter().enumerate() {
                let source = if from_jira { Side::Jira } else { Side::External };
                let at = ts(10 * (i as i64 + 1));
                let (k, v) = edit_value(source, field, choice);
                let (sv, sts) = w.side(source);
                sv.insert(k.clone(), v.clone());
                *sts = at;
                let event: BTreeMap<_, _> = [(k, v)].into_iter().collect();
                let plan = w.deliver(source, at, event.clone());
                prop_assert!(plan.errors.is_empty(), "{:?}", plan.errors);

                // The target echoes what we wrote: no further write.
                if !plan.writes.is_empty() {
                    let echo_at = at + chrono::Duration::seconds(1);
                    let echo = w.deliver(source.other(), echo_at, plan.writes.clone());
                    prop_assert!(echo.writes.is_empty(), "echo wrote {:?}: {:?}", echo.writes, echo.decisions);
                }
                // A duplicate delivery of the original event writes nothing either.
                let again = w.deliver(source, at, event);
                prop_assert!(again.writes.is_empty(), "redelivery wrote {:?}", again.writes);

                // Both-way fields hold the same canonical value on both sides.
                for m in w.mapping.fields.iter().filter(|m| m.direction == Direction::Both) {
                    let j = w.jira.get(&m.jira_field).cloned().unwrap_or_default();
                    let e = w.ext.get(&m.external_field).cloned().unwrap_or_default();
                    let j = to_canonical(&j, m, Side::Jira).unwrap();
                    let e = if e.is_empty() { FieldValue::Empty } else { to_canonical(&e, m, Side::External).unwrap() };
                    prop_assert_eq!(j, e, "{}", m.key());
                }
            }
        }
    }
}
