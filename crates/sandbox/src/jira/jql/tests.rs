//! Unit tests of `jql`, kept out of the file they test so it reads as the code alone.

use super::*;

#[test]
fn parses_the_engines_queries() {
    let q =
        parse(r#"project = TEST AND "External ID" ~ "\"EXT-1\"" ORDER BY updated ASC, key DESC"#);
    let q = q.unwrap_or_else(|e| panic!("{e}"));
    assert!(q.filter.is_some());
    assert_eq!(
        q.order,
        vec![("updated".into(), false), ("key".into(), true)]
    );
    let q = parse("(status in (\"To Do\", Done) OR labels is not EMPTY) and not issuetype = Bug");
    assert!(q.is_ok(), "{q:?}");
    let q = parse("cf[10050] ~ abc and updated >= -5m order by created");
    assert!(q.is_ok(), "{q:?}");
    let q = parse("order by key");
    assert_eq!(q.map(|q| q.filter.is_none()), Ok(true));
}

#[test]
fn syntax_errors_are_messages_not_panics() {
    for bad in [
        "project =",
        "project TEST",
        "project = \"unterminated",
        "(project = TEST",
        "project = TEST AND",
        "project in (A,",
        "!",
        "= TEST",
        "project = TEST garbage",
        "order",
        "order by",
        "project = f(",
        &"(".repeat(100_000),
        &"NOT ".repeat(100_000),
        &"key = A-1 AND ".repeat(10_000),
    ] {
        match parse(bad) {
            Err(e) => assert!(e.starts_with("Error in the JQL Query:"), "{bad}: {e}"),
            Ok(q) => panic!("{bad} parsed as {q:?}"),
        }
    }
}

/// Deterministic pseudo-random JQL built from real and hostile pieces: parsing,
/// validation and evaluation must answer, never panic.
#[test]
fn garbage_never_panics() {
    let pieces = [
        "project",
        "=",
        "TEST",
        "\"External ID\"",
        "~",
        "\"\\\"x\\\"\"",
        "(",
        ")",
        "AND",
        "OR",
        "NOT",
        "IN",
        "IS",
        "EMPTY",
        ",",
        "ORDER",
        "BY",
        "DESC",
        "updated",
        ">=",
        "-5m",
        "!",
        "cf[10050]",
        "cf[",
        "'",
        "\"",
        "key",
        "TEST-1",
        "<",
        "now()",
        "currentUser()",
        "é",
        "-",
        "9999999999999999999999w",
        "labels",
        "!=",
        "!~",
        "priority",
        "\\",
    ];
    let ctx = Ctx {
        projects: &[],
        users: &[],
        now: Utc::now(),
        current_user: "",
        keys: &|_| true,
    };
    let issue = Issue {
        id: 1,
        key: "TEST-1".into(),
        project: Project {
            id: "1".into(),
            key: "TEST".into(),
            name: "Test".into(),
        },
        fields: Default::default(),
        created: Utc::now(),
        updated: Utc::now(),
        comments: vec![],
        histories: vec![],
    };
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..5000 {
        let mut q = String::new();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 9) as usize;
        let mut x = seed;
        for _ in 0..len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            q.push_str(pieces[(x >> 33) as usize % pieces.len()]);
            q.push(' ');
        }
        if let Ok(parsed) = parse(&q)
            && validate(&parsed, &ctx).is_ok()
            && let Some(f) = &parsed.filter
        {
            let _ = matches(f, &issue, &ctx);
        }
    }
}

#[test]
fn text_match_is_tokenized() {
    assert!(text_match("EXT-12 for ACME", "ext-12"));
    assert!(text_match("EXT-12 for ACME", "acme ext"));
    assert!(!text_match("EXT-12 for ACME", "EXT-1"));
    assert!(text_match("EXT-12 for ACME", "\"ext 12\""));
    assert!(!text_match("EXT-12 for ACME", "\"12 ext\""));
    assert!(text_match("EXT-12 for ACME", "ac*"));
}

#[test]
fn dates_absolute_and_relative() {
    let now = Utc.with_ymd_and_hms(2025, 1, 31, 10, 15, 0).single();
    let now = now.unwrap_or_else(Utc::now);
    assert_eq!(
        parse_date("2025/01/31 10:00", now),
        Utc.with_ymd_and_hms(2025, 1, 31, 10, 0, 0).single()
    );
    assert_eq!(
        parse_date("-15m", now),
        now.checked_sub_signed(Duration::minutes(15))
    );
    assert_eq!(
        parse_date("-1w 2d", now),
        now.checked_sub_signed(Duration::days(9))
    );
    assert_eq!(parse_date("yesterday", now), None);
    assert_eq!(parse_date("-", now), None);
}

#[test]
fn semantic_errors_match_jira() {
    let ctx = Ctx {
        projects: &[Project {
            id: "10000".into(),
            key: "TEST".into(),
            name: "Test".into(),
        }],
        users: &[],
        now: Utc::now(),
        current_user: "",
        keys: &|_| false,
    };
    let check = |jql: &str| parse(jql).map(|q| validate(&q, &ctx));
    assert_eq!(
        check(r#""External ID" = "X""#),
        Ok(Err(vec![
            "The operator '=' is not supported by the 'External ID' field.".to_string()
        ]))
    );
    assert!(matches!(check("customfield_10050 ~ x"), Ok(Err(_))));
    assert!(matches!(check("project = NOPE"), Ok(Err(_))));
    assert!(matches!(check("updated > soon"), Ok(Err(_))));
    assert_eq!(check("project = test and cf[10050] is empty"), Ok(Ok(())));
}
