//! Unit tests of `kind`, kept out of the file they test so it reads as the code alone.

use super::*;
use proptest::prelude::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[test]
fn years_that_cannot_be_written_back_are_refused() {
    for (raw, ty) in [
        ("-02025-01-31", FieldType::Date),
        ("+12025-01-31", FieldType::Date),
        ("-2025-01-31T00:00:00", FieldType::DateTime),
        ("9999-12-31T23:00:00-05:00", FieldType::DateTime),
        ("0000-06-01", FieldType::Date),
    ] {
        let err = from_text(raw, ty).unwrap_err();
        assert!(
            err.to_string().contains("between 0001 and 9999"),
            "{raw}: {err}"
        );
    }
    let v = from_text("9999-12-31", FieldType::Date).unwrap();
    assert_eq!(from_text(&to_text(&v), FieldType::Date).unwrap(), v);
}

#[test]
fn text_forms() {
    assert_eq!(
        from_text("42", FieldType::Number).unwrap(),
        FieldValue::Number(42.0)
    );
    assert_eq!(
        from_text(" 1.5 ", FieldType::Number).unwrap(),
        FieldValue::Number(1.5)
    );
    assert_eq!(from_text("", FieldType::Number).unwrap(), FieldValue::Empty);
    assert_eq!(from_text("  ", FieldType::Date).unwrap(), FieldValue::Empty);
    assert_eq!(
        from_text("2025-01-31", FieldType::Date).unwrap(),
        FieldValue::Date(date(2025, 1, 31))
    );
    assert_eq!(
        from_text("2025-01-31T23:30:00-05:00", FieldType::Date).unwrap(),
        FieldValue::Date(date(2025, 1, 31))
    );
    let jira = from_text("2015-11-18T14:39:00.000+1100", FieldType::DateTime).unwrap();
    let want = DateTime::parse_from_rfc3339("2015-11-18T03:39:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(jira, FieldValue::DateTime(want));
    assert_eq!(
        from_text("2015-11-18T03:39:00Z", FieldType::DateTime).unwrap(),
        FieldValue::DateTime(want)
    );
    assert_eq!(
        from_text("a, b  c,,", FieldType::Labels).unwrap(),
        FieldValue::Labels(vec!["a".into(), "b".into(), "c".into()])
    );
    assert_eq!(
        from_text("Red, Dark blue", FieldType::OptionList).unwrap(),
        FieldValue::OptionList(vec!["Red".into(), "Dark blue".into()])
    );
    assert_eq!(to_text(&FieldValue::Number(3.0)), "3");
    assert_eq!(to_text(&FieldValue::Number(-0.25)), "-0.25");
    assert_eq!(to_text(&FieldValue::Number(1e20)), "100000000000000000000");
    assert_eq!(to_text(&FieldValue::DateTime(want)), "2015-11-18T03:39:00Z");
}

#[test]
fn errors_name_field_and_value() {
    let e = from_text("abc", FieldType::Number).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`abc` is not a valid number value: expected a number such as 42 or 1.5"
    );
    let e = e.with_field("customfield_1");
    assert_eq!(e.field(), "customfield_1");
    assert!(e.to_string().starts_with("field customfield_1: `abc`"));
    assert!(from_text("NaN", FieldType::Number).is_err());
    assert!(from_text("inf", FieldType::Number).is_err());
    assert!(from_text("2025-02-30", FieldType::Date).is_err());
    assert!(from_text("yesterday", FieldType::DateTime).is_err());
}

#[test]
fn coercions() {
    assert_eq!(
        coerce(FieldValue::Text("7".into()), FieldType::Number).unwrap(),
        FieldValue::Number(7.0)
    );
    assert_eq!(
        coerce(FieldValue::Option("High".into()), FieldType::Text).unwrap(),
        FieldValue::Text("High".into())
    );
    assert_eq!(
        coerce(FieldValue::Number(2.0), FieldType::Option).unwrap(),
        FieldValue::Option("2".into())
    );
    assert_eq!(
        coerce(FieldValue::Text("a\n\nb".into()), FieldType::RichText).unwrap(),
        FieldValue::RichText(Doc::from_plain("a\n\nb"))
    );
    assert_eq!(
        coerce(FieldValue::Date(date(2025, 1, 2)), FieldType::DateTime).unwrap(),
        FieldValue::DateTime(date(2025, 1, 2).and_time(chrono::NaiveTime::MIN).and_utc())
    );
    assert_eq!(
        coerce(
            FieldValue::OptionList(vec!["a b".into()]),
            FieldType::Labels
        )
        .unwrap(),
        FieldValue::Labels(vec!["a b".into()])
    );
    let e = coerce(FieldValue::Number(42.0), FieldType::Date).unwrap_err();
    assert!(e.to_string().contains("converting from number"), "{e}");
}

fn value_of(ty: FieldType) -> BoxedStrategy<FieldValue> {
    let name = "[A-Za-z0-9][A-Za-z0-9 _./-]{0,12}[A-Za-z0-9]";
    match ty {
        FieldType::Text => ".+".prop_map(FieldValue::Text).boxed(),
        FieldType::RichText => prop::collection::vec(
            prop::collection::vec("[A-Za-z0-9][A-Za-z0-9 ,.!?]{0,20}", 1..4),
            1..4,
        )
        .prop_map(|paras| {
            let text = paras
                .iter()
                .map(|lines| {
                    lines
                        .iter()
                        .map(|l| l.trim())
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .collect::<Vec<_>>()
                .join("\n\n");
            FieldValue::RichText(Doc::from_plain(&text))
        })
        .boxed(),
        FieldType::Number => prop_oneof![
            any::<i64>().prop_map(|n| n as f64),
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
        ]
        .prop_map(FieldValue::Number)
        .boxed(),
        FieldType::Date => (1i32..=9999, 1u32..=12, 1u32..=28)
            .prop_map(|(y, m, d)| FieldValue::Date(date(y, m, d)))
            .boxed(),
        FieldType::DateTime => (0i64..253_402_300_799, 0u32..1_000_000_000)
            .prop_map(|(s, ns)| {
                FieldValue::DateTime(DateTime::from_timestamp(s, ns).unwrap_or_default())
            })
            .boxed(),
        FieldType::Option => name.prop_map(FieldValue::Option).boxed(),
        FieldType::User => name.prop_map(FieldValue::User).boxed(),
        FieldType::OptionList => prop::collection::vec(name, 0..5)
            .prop_map(FieldValue::OptionList)
            .boxed(),
        FieldType::Labels => prop::collection::vec("[A-Za-z0-9_.-]{1,10}", 0..5)
            .prop_map(FieldValue::Labels)
            .boxed(),
    }
}

fn any_value() -> impl Strategy<Value = (FieldType, FieldValue)> {
    prop::sample::select(FieldType::ALL.to_vec())
        .prop_flat_map(|ty| value_of(ty).prop_map(move |v| (ty, v)))
}

proptest! {
    #[test]
    fn text_round_trips((ty, v) in any_value()) {
        let back = from_text(&to_text(&v), ty).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn from_text_never_panics(s in any::<String>(), i in 0usize..9) {
        let ty = FieldType::ALL[i];
        if let Ok(v) = from_text(&s, ty) {
            let _ = to_text(&v);
            let _ = coerce(v, FieldType::ALL[(i + 1) % 9]);
        }
    }

    #[test]
    fn coerce_never_panics((_ty, v) in any_value(), i in 0usize..9) {
        let _ = coerce(v, FieldType::ALL[i]);
    }
}
