//! How long a typical `to_jira` hook call takes: the customer-prefix example script on an
//! item of 20 fields, 8 of them mapped.
//!
//! `cargo run --release -p tandem-script --example overhead` prints the median over several
//! runs of the time per call, next to a hook that only returns its fields (the cost of
//! passing the values in and reading them back) and to no hook at all (a copy of the
//! fields), so the script's own share is visible.

use std::collections::BTreeMap;
use std::time::Instant;
use tandem_core::{Doc, FieldValue, Side};
use tandem_script::{ItemView, Script, ScriptLimits};

const CALLS: usize = 2_000;
const RUNS: usize = 7;

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/scripts/customer_prefix.rhai"
    );
    let script = Script::load(path, ScriptLimits::default()).unwrap_or_else(|e| panic!("{e}"));
    let none = Script::compile("none.rhai", "", ScriptLimits::default()).unwrap();
    // Passing the values in and reading them back, with a hook that does nothing else.
    let identity = Script::compile(
        "identity.rhai",
        "fn to_jira(fields, item) { fields }",
        ScriptLimits::default(),
    )
    .unwrap();

    let mut mapped = BTreeMap::new();
    mapped.insert(
        "summary".to_string(),
        FieldValue::Text("Printer on fire".into()),
    );
    mapped.insert(
        "description".to_string(),
        FieldValue::RichText(Doc::paragraphs([
            "The printer on floor 3 is on fire.",
            "Please send help.",
        ])),
    );
    mapped.insert("priority".to_string(), FieldValue::Option("High".into()));
    mapped.insert(
        "labels".to_string(),
        FieldValue::Labels(vec!["hardware".into(), "urgent".into()]),
    );
    mapped.insert("duedate".to_string(), FieldValue::Text("2025-01-31".into()));
    mapped.insert(
        "assignee".to_string(),
        FieldValue::User("5b10ac8d82e0".into()),
    );
    mapped.insert("customfield_10050".to_string(), FieldValue::Number(3.0));
    mapped.insert(
        "customfield_10061".to_string(),
        FieldValue::Text("Ada Lovelace".into()),
    );
    let mut raw = mapped.clone();
    raw.insert("customer_name".to_string(), FieldValue::Text("Acme".into()));
    for i in 0..11 {
        raw.insert(format!("extra_{i}"), FieldValue::Text(format!("value {i}")));
    }
    let item = ItemView {
        side: Some(Side::External),
        id: "4711".into(),
        key: None,
        fields: raw,
    };

    let measure = |script: &Script| {
        let mut per_call = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let start = Instant::now();
            for _ in 0..CALLS {
                let out = script.to_jira(&mapped, &item).unwrap();
                std::hint::black_box(out);
            }
            per_call.push(start.elapsed().as_secs_f64() * 1e6 / CALLS as f64);
        }
        per_call.sort_by(f64::total_cmp);
        per_call[RUNS / 2]
    };
    let out = script.to_jira(&mapped, &item).unwrap();
    assert_eq!(
        out["summary"],
        FieldValue::Text("[Acme] Printer on fire".into())
    );
    let with_hook = measure(&script);
    let passing = measure(&identity);
    let without = measure(&none);
    println!(
        "to_jira (customer_prefix.rhai, 8 mapped fields, 20 item fields): {with_hook:.1} us per call \
         (median of {RUNS} runs of {CALLS}); a hook returning its fields: {passing:.1} us; \
         without a hook: {without:.2} us"
    );
}
