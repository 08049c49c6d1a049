//! The scripts in `examples/scripts/`, loaded from their files and run on typical items.

mod common;

use common::{event, fields, item, text};
use std::path::PathBuf;
use tandem_core::{FieldValue, Side};
use tandem_script::{FilterDecision, Script, ScriptLimits};

fn load(name: &str) -> Script {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/scripts")
        .join(name);
    Script::load(&path, ScriptLimits::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn option(s: &str) -> FieldValue {
    FieldValue::Option(s.to_string())
}

#[test]
fn only_urgent_or_enterprise_tickets_are_synced() {
    let script = load("urgent_or_enterprise.rhai");
    assert_eq!(script.hooks(), ["filter"]);
    let urgent = event(
        Side::External,
        &[("priority", option("Urgent")), ("plan", text("basic"))],
    );
    assert_eq!(script.filter(&urgent).unwrap(), FilterDecision::Keep);
    let enterprise = event(
        Side::External,
        &[("priority", option("Low")), ("plan", text("enterprise"))],
    );
    assert_eq!(script.filter(&enterprise).unwrap(), FilterDecision::Keep);
    let jira_enterprise = event(
        Side::Jira,
        &[
            ("priority", option("Medium")),
            ("customfield_10070", option("enterprise")),
        ],
    );
    assert_eq!(
        script.filter(&jira_enterprise).unwrap(),
        FilterDecision::Keep
    );
    let neither = event(
        Side::External,
        &[("priority", option("Low")), ("plan", text("basic"))],
    );
    assert_eq!(
        script.filter(&neither).unwrap(),
        FilterDecision::Skip("not Urgent and not an enterprise customer".into())
    );
    // A ticket that carries neither field is skipped, not an error.
    let bare = event(Side::External, &[("summary", text("hello"))]);
    assert!(matches!(
        script.filter(&bare).unwrap(),
        FilterDecision::Skip(_)
    ));
}

#[test]
fn first_and_last_name_are_joined_into_one_field() {
    let script = load("join_names.rhai");
    let mapped = fields(&[("summary", text("Printer on fire"))]);
    let ticket = item(
        Side::External,
        &[("first_name", text("Ada")), ("last_name", text("Lovelace"))],
    );
    let out = script.to_jira(&mapped, &ticket).unwrap();
    assert_eq!(
        out,
        fields(&[
            ("summary", text("Printer on fire")),
            ("customfield_10061", text("Ada Lovelace")),
        ])
    );
    // One name missing: no stray space.
    let only_last = item(Side::External, &[("last_name", text("Hopper"))]);
    let out = script.to_jira(&mapped, &only_last).unwrap();
    assert_eq!(out["customfield_10061"], text("Hopper"));
    // The other direction is untouched: the script has no to_external.
    assert_eq!(script.to_external(&mapped, &ticket).unwrap(), mapped);
}

#[test]
fn the_component_comes_from_the_first_label() {
    let script = load("component_from_label.rhai");
    let mapped = fields(&[("summary", text("Broken login"))]);
    let tagged = item(
        Side::External,
        &[(
            "labels",
            FieldValue::Labels(vec!["auth".into(), "web".into()]),
        )],
    );
    let out = script.to_jira(&mapped, &tagged).unwrap();
    assert!(
        matches!(&out["components"], FieldValue::Labels(v) if v == &["auth"]),
        "{out:?}"
    );
    assert_eq!(out["summary"], text("Broken login"));
    // No labels: the component is not written at all.
    let untagged = item(Side::External, &[("labels", FieldValue::Labels(vec![]))]);
    assert_eq!(script.to_jira(&mapped, &untagged).unwrap(), mapped);
    // An existing component field keeps its kind when the script replaces it.
    let with_component = fields(&[("components", FieldValue::OptionList(vec!["old".into()]))]);
    let out = script.to_jira(&with_component, &tagged).unwrap();
    assert!(matches!(&out["components"], FieldValue::OptionList(v) if v == &["auth"]));
}

#[test]
fn the_customer_prefix_is_added_going_to_jira_and_stripped_coming_back() {
    let script = load("customer_prefix.rhai");
    assert_eq!(script.hooks(), ["to_external", "to_jira"]);
    let ticket = item(Side::External, &[("customer_name", text("Acme"))]);
    let to_jira = script
        .to_jira(&fields(&[("summary", text("Printer on fire"))]), &ticket)
        .unwrap();
    assert_eq!(to_jira["summary"], text("[Acme] Printer on fire"));
    // Applying it again does not stack prefixes.
    let again = script.to_jira(&to_jira, &ticket).unwrap();
    assert_eq!(again["summary"], text("[Acme] Printer on fire"));

    let issue = item(Side::Jira, &[("summary", text("[Acme] Printer on fire"))]);
    let back = script
        .to_external(
            &fields(&[("summary", text("[Acme] Printer on fire"))]),
            &issue,
        )
        .unwrap();
    assert_eq!(back["summary"], text("Printer on fire"));
    // A title without a prefix comes back unchanged.
    let plain = fields(&[("summary", text("No customer here"))]);
    assert_eq!(script.to_external(&plain, &issue).unwrap(), plain);
}
