//! The bench's script phase: what a typical rules script costs per event.
//!
//! The shipped example `examples/scripts/customer_prefix.rhai` (prefix the summary with the
//! customer's name going to Jira) runs as `to_jira` on an item of 20 fields, 8 of them
//! mapped — the call the worker makes once per propagated change on a connection with a
//! script. Beside it, a hook that only returns its fields (the cost of passing values in and
//! out) and no hook at all. The figure is put next to the engine's own CPU per change when
//! the separate-process phases ran, so it reads as a share of what a change costs.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use tandem_core::{Doc, FieldValue, Side};
use tandem_script::{ItemView, Script, ScriptLimits};

const EXAMPLE: &str = include_str!("../../../../examples/scripts/customer_prefix.rhai");
const CALLS: usize = 2_000;
const RUNS: usize = 7;

/// Medians over [`RUNS`] runs of [`CALLS`] calls, in µs per call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScriptOverhead {
    /// `customer_prefix.rhai`'s `to_jira`.
    pub hook_us: f64,
    /// A `to_jira` that returns its fields unchanged.
    pub identity_us: f64,
    /// No hook defined (the fields are copied through).
    pub no_hook_us: f64,
    /// `hook_us` as a share of the engine's CPU per change (edits outside → Jira), when the
    /// separate-process phases ran.
    pub share_of_engine_cpu_pct: Option<f64>,
}

/// Times the three cases.
pub fn measure() -> anyhow::Result<ScriptOverhead> {
    let limits = ScriptLimits::default();
    let example = Script::compile("customer_prefix.rhai", EXAMPLE, limits)?;
    let identity = Script::compile(
        "identity.rhai",
        "fn to_jira(fields, item) { fields }",
        limits,
    )?;
    let none = Script::compile("none.rhai", "", limits)?;
    let (mapped, item) = typical_item();
    let median_us = |script: &Script| -> anyhow::Result<f64> {
        let mut per_call = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let start = Instant::now();
            for _ in 0..CALLS {
                std::hint::black_box(script.to_jira(&mapped, &item)?);
            }
            per_call.push(start.elapsed().as_secs_f64() * 1e6 / CALLS as f64);
        }
        per_call.sort_by(f64::total_cmp);
        Ok(per_call[RUNS / 2])
    };
    Ok(ScriptOverhead {
        hook_us: median_us(&example)?,
        identity_us: median_us(&identity)?,
        no_hook_us: median_us(&none)?,
        share_of_engine_cpu_pct: None,
    })
}

/// Eight mapped fields of every common kind, and an item of 20 fields holding the customer.
fn typical_item() -> (BTreeMap<String, FieldValue>, ItemView) {
    let mut mapped = BTreeMap::new();
    let text = |s: &str| FieldValue::Text(s.into());
    mapped.insert("summary".into(), text("Printer on fire"));
    mapped.insert(
        "description".into(),
        FieldValue::RichText(Doc::paragraphs([
            "The printer on floor 3 is on fire.",
            "Please send help.",
        ])),
    );
    mapped.insert("priority".into(), FieldValue::Option("High".into()));
    mapped.insert(
        "labels".into(),
        FieldValue::Labels(vec!["hardware".into(), "urgent".into()]),
    );
    mapped.insert("duedate".into(), text("2025-01-31"));
    mapped.insert("assignee".into(), FieldValue::User("5b10ac8d82e0".into()));
    mapped.insert("customfield_10050".into(), FieldValue::Number(3.0));
    mapped.insert("customfield_10061".into(), text("Ada Lovelace"));
    let mut raw = mapped.clone();
    raw.insert("customer_name".into(), text("Acme"));
    for i in 0..11 {
        raw.insert(format!("extra_{i}"), text(&format!("value {i}")));
    }
    let item = ItemView {
        side: Some(Side::External),
        id: "4711".into(),
        key: None,
        fields: raw,
    };
    (mapped, item)
}
