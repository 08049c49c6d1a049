//! Unit tests of `convert`, kept out of the file they test so it reads as the code alone.

use super::*;
use crate::mapping::Direction;
use chrono::NaiveDate;
use proptest::prelude::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn priority() -> FieldMapping {
    let mut m = FieldMapping::new("priority", "5");
    m.field_type = FieldType::Option;
    m.value_map = vec![
        ("High".into(), "3".into()),
        ("Medium".into(), "2".into()),
        ("Low".into(), "1".into()),
    ];
    m
}

#[test]
fn value_maps_both_ways() {
    let m = priority();
    assert_eq!(
        map_to_jira(&FieldValue::Text("3".into()), &m).unwrap(),
        FieldValue::Option("High".into())
    );
    assert_eq!(
        map_to_external(&FieldValue::Option("low".into()), &m).unwrap(),
        FieldValue::Option("1".into())
    );
    let e = map_to_jira(&FieldValue::Text("9".into()), &m).unwrap_err();
    assert_eq!(
        e.to_string(),
        "field 5: value `9` has no entry in the value map (known values: 3, 2, 1) and there is no default"
    );
    assert_eq!(
        map_to_jira(&FieldValue::Empty, &m).unwrap(),
        FieldValue::Empty
    );

    let mut m = m;
    m.default = Some("Medium".into());
    assert_eq!(
        map_to_jira(&FieldValue::Text("9".into()), &m).unwrap(),
        FieldValue::Option("Medium".into())
    );
    assert_eq!(
        map_to_jira(&FieldValue::Empty, &m).unwrap(),
        FieldValue::Option("Medium".into())
    );
    assert_eq!(
        map_to_external(&FieldValue::Empty, &m).unwrap(),
        FieldValue::Option("2".into())
    );
}

#[test]
fn list_value_maps_and_numbers() {
    let mut m = FieldMapping::new("labels", "tags");
    m.field_type = FieldType::Labels;
    m.direction = Direction::Both;
    m.value_map = vec![("bug".into(), "defect".into())];
    assert_eq!(
        map_to_jira(&FieldValue::Text("defect, defect".into()), &m).unwrap(),
        FieldValue::Labels(vec!["bug".into()])
    );
    assert!(map_to_jira(&FieldValue::Text("defect other".into()), &m).is_err());

    let mut n = FieldMapping::new("customfield_2", "sev");
    n.field_type = FieldType::Number;
    n.value_map = vec![("1".into(), "P1".into())];
    assert_eq!(
        map_to_jira(&FieldValue::Text("P1".into()), &n).unwrap(),
        FieldValue::Number(1.0)
    );
    assert_eq!(
        map_to_external(&FieldValue::Number(1.0), &n).unwrap(),
        FieldValue::Text("P1".into())
    );
    // No value map: only the type conversion.
    let mut d = FieldMapping::new("duedate", "9");
    d.field_type = FieldType::Date;
    assert_eq!(
        map_to_jira(&FieldValue::Text("2025-03-04".into()), &d).unwrap(),
        FieldValue::Date(date(2025, 3, 4))
    );
    let e = map_to_jira(&FieldValue::Text("soon".into()), &d).unwrap_err();
    assert!(e.to_string().starts_with("field 9: `soon`"), "{e}");
}

proptest! {
    #[test]
    fn value_maps_round_trip(i in 0usize..3) {
        let m = priority();
        let (j, e) = &m.value_map[i];
        let out = map_to_external(&FieldValue::Option(j.clone()), &m).unwrap();
        prop_assert_eq!(&out, &FieldValue::Option(e.clone()));
        prop_assert_eq!(map_to_jira(&out, &m).unwrap(), FieldValue::Option(j.clone()));
    }
}
