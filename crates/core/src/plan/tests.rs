//! Unit tests of `plan`, kept out of the file they test so it reads as the code alone.

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
                written: None,
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
fn a_settled_conflict_is_recorded_with_both_values() {
    use ConflictPolicy::*;
    // Jira's edit at 20 loses to the external one at 30.
    let p = conflict(Side::Jira, 20, Some(30), LaterWins);
    assert_eq!(
        p.conflicts,
        [Conflict {
            mapping_key: "summary|1".into(),
            policy: LaterWins,
            winner: Side::External,
            jira_value: text("mine"),
            external_value: text("theirs"),
            jira_ts: Some(ts(20)),
            external_ts: Some(ts(30)),
            detail: format!("external's edit at {} is later", ts(30)),
        }]
    );
    // The external edit wins under external_wins: the values are still named by side.
    let p = conflict(Side::External, 20, None, ExternalWins);
    let c = &p.conflicts[0];
    assert_eq!(
        (c.winner, &c.jira_value, &c.external_value, c.jira_ts),
        (Side::External, &text("theirs"), &text("mine"), None)
    );
    // No conflict, no record: a plain change, an echo.
    let plain = Case::new(Side::External, 30, &[("1", text("new"))])
        .shadow(&[("summary|1", text("old"), 10, Side::Jira)])
        .target(10, &[("summary", text("old"))])
        .run();
    assert!(plain.conflicts.is_empty());
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
