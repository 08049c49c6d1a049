//! Unit tests of `mapping`, kept out of the files they test so those read as the code alone.

use super::*;
use crate::ids::Side;

/// The seed's file exactly as the guide prints it.
const SEED: &str = "jiraField,externalField
summary,123456789 # Maps Jira's summary field to external ID 123456789
description,123456789 # Maps Jira's description field to same external ID
dueDate,123456789 # Maps Jira's dueDate field to same external ID
customfield_123456,123456789 # Maps a Jira custom field to same external ID
";

#[test]
fn seed_file_parses() {
    let m = parse_csv(SEED, "fieldMappings.csv").unwrap();
    let pairs: Vec<(&str, &str)> = m
        .fields
        .iter()
        .map(|f| (f.jira_field.as_str(), f.external_field.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("summary", "123456789"),
            ("description", "123456789"),
            ("dueDate", "123456789"),
            ("customfield_123456", "123456789")
        ]
    );
    assert_eq!(m.fields[0].location, Location::new("fieldMappings.csv", 2));
    assert_eq!(m.fields[3].location.line, 5);
    assert!(
        m.fields
            .iter()
            .all(|f| f.direction == Direction::Both && f.field_type == FieldType::Text)
    );
    assert_eq!(m.fields[0].key(), "summary|123456789");
}

#[test]
fn seed_file_is_refused_by_validate_with_file_and_line() {
    let m = parse_csv(SEED, "fieldMappings.seed.csv").unwrap();
    let err = validate(&m).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "fieldMappings.seed.csv:3: external field 123456789 is fed by several Jira \
             fields in the to_jira direction (summary at line 2, description at line 3, \
             dueDate at line 4, customfield_123456 at line 5): an incoming value could not \
             be routed"
        ),
        "{text}"
    );
    // The Jira → external direction is fine: each Jira field goes to one place.
    assert_eq!(err.errors.len(), 1, "{text}");
}

#[test]
fn seed_fixed_by_directions_validates() {
    let text = "jiraField,externalField,direction
summary,123456789
description,123456789,to_external
dueDate,123456789,to-external
";
    let m = parse_csv(text, "f.csv").unwrap();
    validate(&m).unwrap();
    assert!(m.fields[0].flows(Side::External));
    assert!(!m.fields[1].flows(Side::External));
    assert!(m.fields[1].flows(Side::Jira));
}

#[test]
fn symmetric_routing_error_for_a_jira_field() {
    let text = "jiraField,externalField\nsummary,1\nsummary,2\n";
    let err = validate(&parse_csv(text, "f.csv").unwrap()).unwrap_err();
    assert_eq!(err.errors.len(), 1);
    assert!(err.errors[0].message.starts_with(
        "Jira field summary is fed by several external fields in the to_external direction (1 at line 2, 2 at line 3)"
    ), "{err}");
    assert_eq!(err.errors[0].location.line, 3);
}

#[test]
fn extended_columns_comments_quotes_and_crlf() {
    let text = "\u{feff}# leading comment\r\n\r\nJiraField , ExternalField,Direction,Type,valueMap,Default,Conflict\r\n\
priority,5,both,option,High=3;Medium=2;Low=1,Medium,jira_wins # trailing\r\n\
labels,tags,to_external,labels\r\n\
customfield_1,\"7\",to_jira,option,\"A=x;B\\=y=z\"\r\n\
status,9,,,,,\r\n";
    let m = parse_csv(text, "f.csv").unwrap();
    assert_eq!(m.fields.len(), 4);
    let p = &m.fields[0];
    assert_eq!(p.location.line, 4);
    assert_eq!(p.field_type, FieldType::Option);
    assert_eq!(
        p.value_map,
        vec![
            ("High".into(), "3".into()),
            ("Medium".into(), "2".into()),
            ("Low".into(), "1".into())
        ]
    );
    assert_eq!(p.default.as_deref(), Some("Medium"));
    assert_eq!(p.conflict, Some(ConflictPolicy::JiraWins));
    assert_eq!(p.external_value_for("High"), Some("3"));
    assert_eq!(p.jira_value_for("1"), Some("Low"));
    assert_eq!(m.fields[1].direction, Direction::ToExternal);
    assert_eq!(
        m.fields[2].value_map,
        vec![("A".into(), "x".into()), ("B=y".into(), "z".into())]
    );
    assert_eq!(m.fields[3].direction, Direction::Both);
    validate(&m).unwrap();
    assert_eq!(m.by_field(Side::External, "5").count(), 1);
    assert_eq!(m.fields_on(Side::Jira)[0], "priority");
}

#[test]
fn bad_values_name_the_value_and_the_allowed_ones() {
    let text = "jiraField,externalField,direction,type,conflict
summary,1,sideways,text
description,2,both,blob,first_wins
";
    let err = parse_csv(text, "m.csv").unwrap_err();
    let lines: Vec<String> = err.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            "m.csv:2: unknown direction `sideways`: expected one of both, to_jira, to_external",
            "m.csv:3: unknown type `blob`: expected one of text, richtext, number, date, datetime, option, option_list, labels, user",
            "m.csv:3: unknown conflict policy `first_wins`: expected one of later_wins, jira_wins, external_wins",
        ]
    );
    assert_eq!(err.to_string(), lines.join("\n"));
}

#[test]
fn header_problems() {
    assert!(
        parse_csv("", "e.csv")
            .unwrap_err()
            .to_string()
            .starts_with("e.csv: no header line")
    );
    assert!(
        parse_csv("# only a comment\nsummary,1\n", "e.csv")
            .unwrap_err()
            .to_string()
            .starts_with("e.csv:2: the header `summary,1` must name")
    );
    assert!(
        parse_csv("jiraField,externalField,colour\n", "e.csv")
            .unwrap_err()
            .to_string()
            .contains("unknown column `colour`")
    );
    let err = parse_csv("jiraField,externalField\na,b,c\n\"open,x\n", "e.csv").unwrap_err();
    assert_eq!(err.errors.len(), 2);
    assert_eq!(err.errors[0].location.line, 2);
    assert!(err.errors[1].message.contains("unterminated"));
}

#[test]
fn validate_finds_duplicates_empty_names_value_map_and_default_problems() {
    let text = "jiraField,externalField,direction,type,valueMap,default
summary,1
summary,1
,2
priority,3,both,option,High=1;Low=1;High=2
duedate,4,both,date,,tomorrow
description,5,both,richtext,a=b
";
    let m = parse_csv(text, "v.csv").unwrap();
    let err = validate(&m).unwrap_err();
    let msgs: Vec<String> = err.errors.iter().map(|e| e.to_string()).collect();
    let all = msgs.join("\n");
    assert!(
        all.contains("v.csv:3: duplicate mapping summary ↔ 1: already mapped at v.csv:2"),
        "{all}"
    );
    assert!(
        all.contains("v.csv:4: the Jira field name is empty"),
        "{all}"
    );
    assert!(all.contains("names Jira value `High` twice"), "{all}");
    assert!(
        all.contains("maps both `High` and `Low` to external value `1`"),
        "{all}"
    );
    assert!(
        all.contains("v.csv:6: default `tomorrow` of duedate is not a valid date value"),
        "{all}"
    );
    assert!(
        all.contains("v.csv:7: a value map does not apply to richtext"),
        "{all}"
    );
}

#[test]
fn value_map_syntax() {
    assert_eq!(parse_value_map("").unwrap(), vec![]);
    assert_eq!(
        parse_value_map(" a = 1 ; b=2;").unwrap(),
        vec![("a".into(), "1".into()), ("b".into(), "2".into())]
    );
    assert_eq!(
        parse_value_map(r"x\;y=1\=2;z=").unwrap(),
        vec![("x;y".into(), "1=2".into()), ("z".into(), "".into())]
    );
    assert!(parse_value_map("novalue").unwrap_err().contains("no `=`"));
    assert!(
        parse_value_map("=3")
            .unwrap_err()
            .contains("empty Jira value")
    );
    let map = vec![("a;b".to_string(), "c=d\\".to_string())];
    assert_eq!(parse_value_map(&format_value_map(&map)).unwrap(), map);
}

#[test]
fn toml_tables() {
    let text = r#"
# priorities
[[field]]
jira = "priority"
external = 5
type = "option"
values = { "High" = "3", "Medium" = 2, Low = "1" }
default = "Medium"
conflict = "external_wins"

[[field]]
jira = "summary"
external = "1"
direction = "to_jira"
"#;
    let m = parse_toml(text, "map.toml").unwrap();
    assert_eq!(m.fields.len(), 2);
    let p = &m.fields[0];
    assert_eq!(p.location, Location::new("map.toml", 3));
    assert_eq!(p.external_field, "5");
    assert_eq!(p.jira_value_for("2"), Some("Medium"));
    assert_eq!(p.value_map.len(), 3);
    assert_eq!(p.conflict, Some(ConflictPolicy::ExternalWins));
    assert_eq!(m.fields[1].location.line, 11);
    assert_eq!(m.fields[1].direction, Direction::ToJira);
    validate(&m).unwrap();
}

#[test]
fn toml_errors_have_lines() {
    let text = "[[field]]\njira = \"a\"\nexternal = \"b\"\ncolour = \"red\"\n";
    let err = parse_toml(text, "m.toml").unwrap_err();
    assert_eq!(err.errors.len(), 1);
    assert_eq!(err.errors[0].location.line, 4, "{err}");
    assert!(err.errors[0].message.contains("colour"), "{err}");

    let text = "[[field]]\njira = \"a\"\nexternal = \"b\"\ntype = \"nope\"\n";
    let err = parse_toml(text, "m.toml").unwrap_err();
    assert_eq!(err.to_string().lines().count(), 1);
    assert!(
        err.to_string().starts_with("m.toml:1: unknown type `nope`"),
        "{err}"
    );

    let err = parse_toml("[[field]]\njira = \"a\"\n", "m.toml").unwrap_err();
    assert!(err.to_string().contains("external"), "{err}");
    assert!(parse_toml("[[field]\n", "m.toml").is_err());
    assert_eq!(parse_toml("", "m.toml").unwrap().fields.len(), 0);
}

#[test]
fn line_at_counts_lines() {
    assert_eq!(line_at("a\nb\nc", 0), 1);
    assert_eq!(line_at("a\nb\nc", 2), 2);
    assert_eq!(line_at("a\nb\nc", 99), 3);
}

#[test]
fn csv_expr_column_is_optional() {
    // Without the column (the seed file) no entry has an expression.
    let m = parse_csv(SEED, "fieldMappings.csv").unwrap();
    assert!(m.fields.iter().all(|f| f.expr.is_none()));

    // With it, a quoted cell may hold commas and `#`; an empty cell means none.
    let text = "jiraField,externalField,expr
summary,1,value.to_upper()
labels,2,\"value.replace(\"\"#\"\", \"\",\"\")\" # a comment
description,3,
";
    let m = parse_csv(text, "m.csv").unwrap();
    assert_eq!(m.fields.len(), 3);
    assert_eq!(m.fields[0].expr.as_deref(), Some("value.to_upper()"));
    assert_eq!(
        m.fields[1].expr.as_deref(),
        Some("value.replace(\"#\", \",\")")
    );
    assert_eq!(m.fields[1].location.line, 3);
    assert_eq!(m.fields[2].expr, None);
}

#[test]
fn toml_expr_key() {
    let text = r#"
[[field]]
jira = "summary"
external = "1"
expr = "value.to_upper()"

[[field]]
jira = "description"
external = "2"
expr = "  "
"#;
    let m = parse_toml(text, "map.toml").unwrap();
    assert_eq!(m.fields[0].expr.as_deref(), Some("value.to_upper()"));
    assert_eq!(m.fields[1].expr, None, "a blank expr means none");
}
