//! The user map's parsing and lookups, the unmatched rule's spelling, markers and the cache.

use super::*;

const MAP: &str = "jiraUser,externalUser\n\
Alice@Example.com,ext-alice\n\
5b10a2844c20165700ede21g,bob@desk.example\n";

#[test]
fn pairs_are_found_from_either_side_with_e_mails_in_any_case() {
    let map = UserMap::parse_csv(MAP).unwrap();
    assert_eq!(map.len(), 2);
    assert_eq!(map.external_for("alice@example.COM"), Some("ext-alice"));
    assert_eq!(map.jira_for("ext-alice"), Some("Alice@Example.com"));
    assert_eq!(
        map.jira_for("BOB@desk.example"),
        Some("5b10a2844c20165700ede21g")
    );
    assert_eq!(
        map.external_for("5b10a2844c20165700ede21g"),
        Some("bob@desk.example")
    );
    // Ids are exact: an account id in another case is another account.
    assert_eq!(map.external_for("5B10A2844C20165700EDE21G"), None);
    assert_eq!(map.jira_for("EXT-ALICE"), None);
    assert_eq!(map.by_external("ext-alice").unwrap().line, 2);
}

#[test]
fn the_header_is_required_and_checked() {
    let err = UserMap::parse_csv("alice@example.com,ext-alice\n").unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].line, 1);
    assert!(err.to_string().contains("jiraUser,externalUser"), "{err}");
    let err = UserMap::parse_csv("").unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    // Case and spaces around the names do not matter; a BOM neither.
    let map = UserMap::parse_csv("\u{feff} JiraUser , EXTERNALUSER\na@x.io,b\n").unwrap();
    assert_eq!(map.jira_for("b"), Some("a@x.io"));
}

#[test]
fn bad_rows_are_all_reported_with_their_lines() {
    let text = "jiraUser,externalUser\n\
a@x.io,ext-a\n\
\n\
b@x.io\n\
,ext-c\n\
A@X.IO,ext-d\n\
e@x.io,ext-a\n\
f@x.io,ext-f,extra\n\
g@x.io,ext-g\n";
    let err = UserMap::parse_csv(text).unwrap_err();
    let got: Vec<(usize, &str)> = err.0.iter().map(|e| (e.line, e.message.as_str())).collect();
    assert_eq!(
        got,
        [
            (4, "expected 2 columns (jiraUser,externalUser), found 1"),
            (5, "jiraUser is empty"),
            (6, "jiraUser `a@x.io` is already mapped on line 2"),
            (7, "externalUser `ext-a` is already mapped on line 2"),
            (8, "expected 2 columns (jiraUser,externalUser), found 3"),
        ]
    );
    assert!(err.to_string().starts_with("line 4: "), "{err}");
}

#[test]
fn e_mails_are_told_from_ids() {
    for yes in ["a@b", "first.last@example.co.uk", " A@B.C "] {
        assert!(is_email(yes), "{yes}");
    }
    for no in ["", "alice", "@x", "x@", "a@b@c", "a b@c", "712020:5f0c7b0e"] {
        assert!(!is_email(no), "{no}");
    }
    assert_eq!(normalize(" Alice@Example.COM "), "alice@example.com");
    assert_eq!(normalize(" AbC "), "AbC");
}

#[test]
fn unmatched_rules_are_read_forgivingly_and_refused_clearly() {
    assert_eq!("keep".parse::<Unmatched>(), Ok(Unmatched::Keep));
    assert_eq!(" FAIL ".parse::<Unmatched>(), Ok(Unmatched::Fail));
    assert_eq!(
        "default: helpdesk@example.com".parse::<Unmatched>(),
        Ok(Unmatched::Default("helpdesk@example.com".into()))
    );
    assert!(
        "default:"
            .parse::<Unmatched>()
            .unwrap_err()
            .contains("needs a user")
    );
    let err = "clear".parse::<Unmatched>().unwrap_err();
    assert!(err.contains("keep, default:<user> or fail"), "{err}");
    assert_eq!(Unmatched::Default("x".into()).to_string(), "default:x");
}

#[test]
fn a_marker_names_its_user_and_no_real_user_is_one() {
    let m = unmatched_marker(" zed ");
    assert_eq!(unmatched_of(&m), Some("zed"));
    for real in ["zed", "zed@example.com", "5b10ac8d82e05b22cc7d4ef5", ""] {
        assert_eq!(unmatched_of(real), None);
    }
}

#[test]
fn the_cache_keeps_hits_and_misses_for_the_ttl() {
    let t0 = Instant::now();
    let mut cache: TtlCache<Option<String>> = TtlCache::new(Duration::from_secs(60));
    assert_eq!(cache.get("a@x.io", t0), None);
    cache.put("a@x.io".into(), Some("acc-a".into()), t0);
    cache.put("nobody@x.io".into(), None, t0);
    let later = t0 + Duration::from_secs(59);
    assert_eq!(cache.get("a@x.io", later), Some(Some("acc-a".into())));
    assert_eq!(
        cache.get("nobody@x.io", later),
        Some(None),
        "a miss is cached"
    );
    assert_eq!(
        cache.get("a@x.io", t0 + Duration::from_secs(60)),
        None,
        "expired"
    );
    assert_eq!(cache.stats(), (2, 2));
}
