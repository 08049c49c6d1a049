//! Field values through scripts: every kind makes the round trip unchanged, missing hooks
//! are identity, and each hook's inputs and results read as documented.

mod common;

use chrono::{NaiveDate, TimeZone, Utc};
use common::{event, fields, item, text};
use std::collections::BTreeMap;
use tandem_core::{Block, Doc, FieldValue, Inline, Marks, Side};
use tandem_script::convert::{from_dynamic, to_dynamic};
use tandem_script::{FieldExpr, FilterDecision, Script, ScriptLimits};

/// One value of every kind, with details that a lossy conversion would drop: formatting in
/// rich text, a fraction of a second, a non-integral number, list order and duplicates.
fn every_kind() -> BTreeMap<String, FieldValue> {
    let doc = Doc {
        blocks: vec![
            Block::Heading {
                level: 2,
                content: vec![Inline::text("Steps")],
            },
            Block::Paragraph {
                content: vec![
                    Inline::styled(
                        "bold",
                        Marks {
                            bold: true,
                            ..Marks::NONE
                        },
                    ),
                    Inline::text(" and "),
                    Inline::Mention {
                        id: "abc".into(),
                        text: "@Ann".into(),
                    },
                ],
            },
        ],
    };
    fields(&[
        ("empty", FieldValue::Empty),
        ("text", text("  spaced text ")),
        ("richtext", FieldValue::RichText(doc)),
        ("number", FieldValue::Number(-12.375)),
        ("integer", FieldValue::Number(3.0)),
        (
            "date",
            FieldValue::Date(NaiveDate::from_ymd_opt(2025, 1, 31).unwrap()),
        ),
        (
            "datetime",
            FieldValue::DateTime(
                Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 58).unwrap()
                    + chrono::Duration::milliseconds(123),
            ),
        ),
        ("option", FieldValue::Option("High".into())),
        (
            "option_list",
            FieldValue::OptionList(vec!["b".into(), "a".into(), "b".into()]),
        ),
        (
            "labels",
            FieldValue::Labels(vec!["z".into(), "sync".into()]),
        ),
        ("user", FieldValue::User("5b10ac8d82e05b22cc7d4ef5".into())),
    ])
}

/// Exact equality: `FieldValue`'s own `==` is deliberately loose (labels as sets, times
/// within a second), which would hide a lossy conversion.
fn exactly(a: &BTreeMap<String, FieldValue>, b: &BTreeMap<String, FieldValue>) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn every_kind_converts_to_a_script_value_and_back_unchanged() {
    for (name, value) in every_kind() {
        let back = from_dynamic(&name, &to_dynamic(&value), Some(&value)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{value:?}"), "{name}");
    }
}

#[test]
fn every_kind_survives_a_hook_that_returns_its_fields() {
    let script = Script::compile(
        "id.rhai",
        "fn to_jira(fields, item) { fields }\n\
         fn to_external(fields, item) { let copy = #{}; for k in fields.keys() { copy[k] = fields[k]; } copy }\n\
         fn on_create(side, fields, item) { item.fields }",
        ScriptLimits::default(),
    )
    .unwrap();
    let all = every_kind();
    let it = item(Side::External, &[]);
    assert!(exactly(&script.to_jira(&all, &it).unwrap(), &all));
    assert!(exactly(&script.to_external(&all, &it).unwrap(), &all));
    // Item fields reach the script with the same conversion (kinds inferred on the way
    // back, since they were not among the fields the hook was given).
    let source = item(Side::External, &[("title", text("from the item"))]);
    let created = script.on_create(Side::Jira, &all, &source).unwrap();
    assert_eq!(created, fields(&[("title", text("from the item"))]));
}

#[test]
fn missing_hooks_keep_everything() {
    let script =
        Script::compile("none.rhai", "fn helper(x) { x }", ScriptLimits::default()).unwrap();
    assert!(script.hooks().is_empty());
    let all = every_kind();
    let it = item(Side::Jira, &[]);
    assert!(exactly(&script.to_jira(&all, &it).unwrap(), &all));
    assert!(exactly(&script.to_external(&all, &it).unwrap(), &all));
    assert!(exactly(
        &script.on_create(Side::Jira, &all, &it).unwrap(),
        &all
    ));
    assert_eq!(
        script.filter(&event(Side::Jira, &[])).unwrap(),
        FilterDecision::Keep
    );
}

#[test]
fn hooks_see_values_as_plain_script_values() {
    let script = Script::compile(
        "types.rhai",
        r#"fn to_jira(fields, item) {
            let out = #{};
            for k in fields.keys() { out["type_" + k] = type_of(fields[k]); }
            out.first_label = fields.labels[0];
            out.rich = fields.richtext;
            out.item_side = item.side;
            out.item_key = item.key;
            out
        }"#,
        ScriptLimits::default(),
    )
    .unwrap();
    let out = script
        .to_jira(&every_kind(), &item(Side::Jira, &[]))
        .unwrap();
    let kind = |k: &str| match &out[k] {
        FieldValue::Text(s) => s.clone(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(kind("type_empty"), "()");
    assert_eq!(kind("type_text"), "string");
    assert_eq!(kind("type_richtext"), "string");
    assert_eq!(kind("type_number"), "f64");
    assert_eq!(kind("type_date"), "string");
    assert_eq!(kind("type_datetime"), "string");
    assert_eq!(kind("type_option"), "string");
    assert_eq!(kind("type_user"), "string");
    assert_eq!(kind("type_option_list"), "array");
    assert_eq!(kind("type_labels"), "array");
    assert_eq!(kind("first_label"), "z");
    assert_eq!(kind("rich"), "Steps\n\nbold and @Ann");
    assert_eq!(kind("item_side"), "jira");
    assert_eq!(kind("item_key"), "TEST-42");
    // Fields the hook did not return are not written.
    assert!(!out.contains_key("text"));
}

#[test]
fn changed_values_keep_their_kind_and_unit_leaves_a_field_out() {
    let script = Script::compile(
        "edit.rhai",
        r#"fn to_external(fields, item) {
            fields.option = "Low";
            fields.number += 1;
            fields.date = "2026-03-01";
            fields.labels.push("new");
            fields.richtext = "one\n\ntwo";
            fields.user = ();
            fields.remove("text");
            fields.added = "fresh";
            fields
        }"#,
        ScriptLimits::default(),
    )
    .unwrap();
    let out = script
        .to_external(&every_kind(), &item(Side::Jira, &[]))
        .unwrap();
    assert!(matches!(&out["option"], FieldValue::Option(s) if s == "Low"));
    assert!(matches!(out["number"], FieldValue::Number(n) if n == -11.375));
    assert_eq!(
        out["date"],
        FieldValue::Date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap())
    );
    assert!(matches!(&out["labels"], FieldValue::Labels(v) if v == &["z", "sync", "new"]));
    assert_eq!(
        out["richtext"],
        FieldValue::RichText(Doc::paragraphs(["one", "two"]))
    );
    assert!(!out.contains_key("user"), "set to ()");
    assert!(!out.contains_key("text"), "removed");
    assert_eq!(out["added"], text("fresh"));
    // The empty field was left alone, so it is still written (as empty).
    assert_eq!(out.get("empty"), Some(&FieldValue::Empty));
}

#[test]
fn an_empty_string_clears_a_field_of_any_kind() {
    let script = Script::compile(
        "clear.rhai",
        "fn to_jira(fields, item) { fields.option = \"\"; fields.date = \"\"; fields.text = \"\"; fields }",
        ScriptLimits::default(),
    )
    .unwrap();
    let out = script
        .to_jira(&every_kind(), &item(Side::External, &[]))
        .unwrap();
    assert!(out["option"].is_empty() && out["date"].is_empty() && out["text"].is_empty());
}

#[test]
fn a_bad_date_names_the_field() {
    let script = Script::compile(
        "rules.rhai",
        "fn to_jira(fields, item) { fields.date = \"31/01/2025\"; fields }",
        ScriptLimits::default(),
    )
    .unwrap();
    let err = script
        .to_jira(&every_kind(), &item(Side::External, &[]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "rules.rhai:1:4: to_jira: field `date`: `31/01/2025` is not a valid date value: expected a date such as 2025-01-31"
    );
}

#[test]
fn filter_reads_booleans_and_reasons() {
    let script = Script::compile(
        "f.rhai",
        r#"fn filter(event) {
            switch event.fields.mode {
                "keep" => true,
                "drop" => false,
                "why" => "  too quiet  ",
                "blank" => "",
                _ => 42
            }
        }"#,
        ScriptLimits::default(),
    )
    .unwrap();
    let decide = |mode: &str| script.filter(&event(Side::External, &[("mode", text(mode))]));
    assert_eq!(decide("keep").unwrap(), FilterDecision::Keep);
    assert_eq!(
        decide("drop").unwrap(),
        FilterDecision::Skip("filtered by script".into())
    );
    assert_eq!(
        decide("why").unwrap(),
        FilterDecision::Skip("too quiet".into())
    );
    assert_eq!(
        decide("blank").unwrap(),
        FilterDecision::Skip("filtered by script".into())
    );
    let err = decide("other").unwrap_err();
    assert_eq!(
        err.to_string(),
        "f.rhai:1:4: filter must return true (keep), false or a reason string (skip), got i64 (42)"
    );
}

#[test]
fn filter_sees_the_event() {
    let script = Script::compile(
        "f.rhai",
        r#"fn filter(event) {
            event.side == "external" && event.kind == "updated" && event.origin == "webhook"
                && event.id == "42" && event.key == () && event.fields.summary == "hello"
        }"#,
        ScriptLimits::default(),
    )
    .unwrap();
    let e = event(Side::External, &[("summary", text("hello"))]);
    assert_eq!(script.filter(&e).unwrap(), FilterDecision::Keep);
    let other = event(Side::Jira, &[("summary", text("hello"))]);
    assert!(matches!(
        script.filter(&other).unwrap(),
        FilterDecision::Skip(_)
    ));
}

#[test]
fn on_create_gets_the_side_and_may_choose_the_issue_type() {
    let script = Script::compile(
        "c.rhai",
        r#"fn on_create(side, fields, item) {
            if side == "jira" {
                fields.issuetype = if item.fields.kind == "incident" { "Bug" } else { "Task" };
            }
            fields
        }"#,
        ScriptLimits::default(),
    )
    .unwrap();
    let mapped = fields(&[("summary", text("Down"))]);
    let incident = item(Side::External, &[("kind", text("incident"))]);
    let out = script.on_create(Side::Jira, &mapped, &incident).unwrap();
    assert_eq!(out["issuetype"], text("Bug"));
    let out = script
        .on_create(Side::External, &mapped, &incident)
        .unwrap();
    assert_eq!(out, mapped);
}

#[test]
fn field_expressions_compute_one_value() {
    let limits = ScriptLimits::default();
    let upper = FieldExpr::compile("value.to_upper()", limits).unwrap();
    let it = item(Side::External, &[("customer", text("Acme"))]);
    assert_eq!(upper.eval(&text("quiet"), &it).unwrap(), text("QUIET"));
    // The result keeps the value's kind.
    assert_eq!(
        upper.eval(&FieldValue::Option("high".into()), &it).unwrap(),
        FieldValue::Option("HIGH".into())
    );
    let with_item = FieldExpr::compile("`${item.fields.customer}: ${value}`", limits).unwrap();
    assert_eq!(
        with_item.eval(&text("Printer"), &it).unwrap(),
        text("Acme: Printer")
    );
    let double = FieldExpr::compile("value * 2", limits).unwrap();
    assert_eq!(
        double.eval(&FieldValue::Number(2.5), &it).unwrap(),
        FieldValue::Number(5.0)
    );
    let fallback =
        FieldExpr::compile("if value == () { \"none\" } else { value }", limits).unwrap();
    assert_eq!(
        fallback.eval(&FieldValue::Empty, &it).unwrap(),
        text("none")
    );
}

#[test]
fn field_expression_errors_name_the_expression() {
    let limits = ScriptLimits::default();
    let err = FieldExpr::compile("value.to_upper(", limits).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("expression `value.to_upper(`:1:"),
        "{err}"
    );
    // Only `value` and `item` exist; statements are not expressions.
    let err = FieldExpr::compile("valeu + 1", limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "expression `valeu + 1`:1:1: Undefined variable: valeu"
    );
    assert!(FieldExpr::compile("let x = 1", limits).is_err());
    let err = FieldExpr::compile_at("mapping.toml:7 expr", "value.to_upper()", limits)
        .unwrap()
        .eval(&FieldValue::Number(1.0), &item(Side::Jira, &[]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "mapping.toml:7 expr:1:7: expression: Function not found: to_upper (f64)"
    );
    let err = FieldExpr::compile("42", limits)
        .unwrap()
        .eval(&text("x"), &item(Side::Jira, &[]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "expression `42`: the expression must return a string, got an i64 (42)"
    );
    let looping = FieldExpr::compile("{ let n = 0; loop { n += 1 } }", limits);
    // A block with statements is not an expression Rhai accepts here.
    assert!(looping.is_err());
}
