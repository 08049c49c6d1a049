//! The comment rules on small cases: twins by mark or header, pending links, edits,
//! deletes, inert mentions, internal notes.

use super::*;
use chrono::TimeZone;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn c(id: &str, author: &str, text: &str, at: i64) -> Comment {
    Comment {
        id: id.into(),
        author: author.into(),
        author_id: None,
        author_email: None,
        body: Doc::from_plain(text),
        created: t(at),
        updated: t(at),
        internal: false,
        mark: None,
    }
}

fn settings() -> CommentSettings {
    CommentSettings {
        external_system: "Desk".into(),
        ..CommentSettings::default()
    }
}

fn plan(
    jira: &[Comment],
    external: &[Comment],
    links: &[CommentLink],
    s: &CommentSettings,
) -> Vec<CommentAction> {
    plan_comments(&CommentInput {
        jira,
        external,
        links,
        settings: s,
        since: t(0),
        authors: &Authors::new(),
    })
}

fn linked(id: i64, origin: Side, j: &str, e: &str, shadow: &str) -> CommentLink {
    CommentLink {
        id,
        origin,
        jira_id: Some(j.into()),
        external_id: Some(e.into()),
        shadow: shadow.into(),
        state: CommentLinkState::Linked,
    }
}

/// The twin as a system that keeps no mark would hold it: header and text, no mark.
fn twin_text(id: &str, header_author: &str, system: &str, text: &str, at: i64) -> Comment {
    c(
        id,
        "tandem-bot",
        &format!("{header_author} ({system}) wrote:\n\n{text}"),
        at,
    )
}

#[test]
fn a_new_comment_becomes_a_twin_with_its_author_and_system_above_it() {
    let s = settings();
    let actions = plan(&[c("10001", "Ann", "Can you reproduce?", 5)], &[], &[], &s);
    let [CommentAction::Create { link, on, comment }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!(*on, Side::External);
    assert_eq!(link.state, CommentLinkState::Pending);
    assert_eq!(link.jira_id.as_deref(), Some("10001"));
    assert_eq!(link.shadow, "Can you reproduce?");
    assert_eq!(
        comment.body.to_plain(),
        "Ann (Jira) wrote:\n\nCan you reproduce?"
    );
    assert_eq!(
        comment.mark,
        Some(TandemMark::TwinOf { of: "10001".into() })
    );
}

#[test]
fn the_echo_of_a_twin_plans_nothing() {
    let s = settings();
    let links = [linked(1, Side::Jira, "10001", "7", "Can you reproduce?")];
    let jira = [c("10001", "Ann", "Can you reproduce?", 5)];
    let ext = [twin_text("7", "Ann", "Jira", "Can you reproduce?", 6)];
    assert_eq!(plan(&jira, &ext, &links, &s), vec![]);
}

#[test]
fn a_pending_twin_that_exists_is_adopted_not_created_again() {
    let s = settings();
    let mut pending = linked(1, Side::Jira, "10001", "", "Can you reproduce?");
    pending.external_id = None;
    pending.state = CommentLinkState::Pending;
    let jira = [c("10001", "Ann", "Can you reproduce?", 5)];
    // The create went through, its answer was lost: the twin is there, unlinked.
    let ext = [twin_text("7", "Ann", "Jira", "Can you reproduce?", 6)];
    assert_eq!(
        plan(&jira, &ext, &[pending.clone()], &s),
        vec![CommentAction::Adopt {
            link_id: 1,
            on: Side::External,
            comment_id: "7".into()
        }]
    );
    // The create never happened: it is made (once) under the same link.
    let actions = plan(&jira, &[], &[pending], &s);
    assert!(
        matches!(actions.as_slice(), [CommentAction::Create { link, .. }] if link.id == 1),
        "{actions:?}"
    );
}

#[test]
fn a_pending_twin_is_recognised_by_its_mark_even_when_its_text_was_rewritten() {
    let s = settings();
    let mut pending = linked(1, Side::External, "", "7", "hello");
    pending.jira_id = None;
    pending.state = CommentLinkState::Pending;
    let mut twin = c("10001", "tandem", "something else entirely", 6);
    twin.mark = Some(TandemMark::TwinOf { of: "7".into() });
    let actions = plan(&[twin], &[c("7", "Bob", "hello", 5)], &[pending], &s);
    assert!(
        matches!(actions.as_slice(), [CommentAction::Adopt { comment_id, .. }] if comment_id == "10001"),
        "{actions:?}"
    );
}

#[test]
fn an_edit_on_either_side_updates_the_other_and_keeps_the_header_on_the_twin() {
    let s = settings();
    let links = [linked(1, Side::Jira, "10001", "7", "first words")];
    let jira = [c("10001", "Ann", "better words", 5)];
    let ext = [twin_text("7", "Ann", "Jira", "first words", 6)];
    let actions = plan(&jira, &ext, &links, &s);
    let [
        CommentAction::Update {
            on,
            comment_id,
            comment,
            shadow,
            ..
        },
    ] = actions.as_slice()
    else {
        panic!("{actions:?}")
    };
    assert_eq!((*on, comment_id.as_str()), (Side::External, "7"));
    assert_eq!(comment.body.to_plain(), "Ann (Jira) wrote:\n\nbetter words");
    assert_eq!(shadow, "better words");

    // Someone edits the twin outside: the origin gets the text alone, unmarked.
    let jira = [c("10001", "Ann", "first words", 5)];
    let ext = [twin_text("7", "Ann", "Jira", "corrected words", 9)];
    let actions = plan(&jira, &ext, &links, &s);
    let [
        CommentAction::Update {
            on,
            comment_id,
            comment,
            ..
        },
    ] = actions.as_slice()
    else {
        panic!("{actions:?}")
    };
    assert_eq!((*on, comment_id.as_str()), (Side::Jira, "10001"));
    assert_eq!(comment.body.to_plain(), "corrected words");
    assert_eq!(comment.mark, None);
}

#[test]
fn both_sides_edited_the_later_edit_wins() {
    let s = settings();
    let links = [linked(1, Side::Jira, "10001", "7", "v1")];
    let jira = [c("10001", "Ann", "jira text", 20)];
    let ext = [twin_text("7", "Ann", "Jira", "desk text", 30)];
    let actions = plan(&jira, &ext, &links, &s);
    assert!(
        matches!(actions.as_slice(), [CommentAction::Update { on: Side::Jira, shadow, .. }] if shadow == "desk text"),
        "{actions:?}"
    );
    // Both edited to the same words: only the shadow moves.
    let ext = [twin_text("7", "Ann", "Jira", "jira text", 30)];
    assert_eq!(
        plan(&jira, &ext, &links, &s),
        vec![CommentAction::Reshadow {
            link_id: 1,
            shadow: "jira text".into()
        }]
    );
}

#[test]
fn a_deletion_deletes_the_twin_or_keeps_it_by_setting() {
    let links = [linked(1, Side::Jira, "10001", "7", "bye")];
    let ext = [twin_text("7", "Ann", "Jira", "bye", 6)];
    assert_eq!(
        plan(&[], &ext, &links, &settings()),
        vec![CommentAction::Delete {
            link_id: 1,
            on: Side::External,
            comment_id: "7".into()
        }]
    );
    let keep = CommentSettings {
        deletes: CommentDeletes::Keep,
        ..settings()
    };
    assert_eq!(
        plan(&[], &ext, &links, &keep),
        vec![CommentAction::Keep {
            link_id: 1,
            deleted_on: Side::Jira
        }]
    );
    // A kept twin is never copied back as new.
    let mut kept = links[0].clone();
    kept.state = CommentLinkState::Kept;
    assert_eq!(plan(&[], &ext, &[kept.clone()], &keep), vec![]);
    assert_eq!(
        plan(&[], &[], &[kept], &keep),
        vec![CommentAction::Forget { link_id: 1 }]
    );
}

#[test]
fn notices_and_orphaned_twins_are_never_copied_back() {
    let s = settings();
    let mut notice = c("10002", "tandem", "Tandem could not sync this issue", 5);
    notice.mark = Some(TandemMark::Notice);
    let mut orphan = c("10003", "tandem", "Bob (Desk) wrote:\n\nhi", 6);
    orphan.mark = Some(TandemMark::TwinOf { of: "99".into() });
    assert_eq!(plan(&[notice, orphan], &[], &[], &s), vec![]);
}

#[test]
fn direction_history_and_internal_notes_are_respected() {
    let to_jira = CommentSettings {
        sync: CommentSync::ToJira,
        ..settings()
    };
    assert_eq!(plan(&[c("1", "Ann", "x", 5)], &[], &[], &to_jira), vec![]);
    assert_eq!(
        plan(&[], &[c("7", "Bob", "y", 5)], &[], &to_jira).len(),
        1,
        "outside → Jira still flows"
    );

    // Written before the pair's first reconcile: history, not copied by default.
    let old = c("1", "Ann", "old", -10);
    assert_eq!(
        plan(std::slice::from_ref(&old), &[], &[], &settings()),
        vec![]
    );
    let history = CommentSettings {
        history: true,
        ..settings()
    };
    assert_eq!(plan(&[old], &[], &[], &history).len(), 1);

    let mut note = c("1", "Ann", "internal only", 5);
    note.internal = true;
    let actions = plan(std::slice::from_ref(&note), &[], &[], &settings());
    assert!(
        matches!(actions.as_slice(), [CommentAction::Skip { .. }]),
        "no internal comments outside: skipped, {actions:?}"
    );
    let private = CommentSettings {
        external_has_internal: true,
        ..settings()
    };
    let actions = plan(&[note], &[], &[], &private);
    assert!(
        matches!(actions.as_slice(), [CommentAction::Create { comment, .. }] if comment.internal),
        "{actions:?}"
    );
}

#[test]
fn creates_follow_the_order_comments_were_written_across_both_sides() {
    let s = settings();
    let actions = plan(
        &[c("1", "Ann", "first", 1), c("3", "Ann", "third", 3)],
        &[c("2", "Bob", "second", 2)],
        &[],
        &s,
    );
    let order: Vec<String> = actions
        .iter()
        .map(|a| match a {
            CommentAction::Create { link, .. } => link.shadow.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(order, ["first", "second", "third"]);
}

#[test]
fn mentions_are_made_inert_and_compare_equal_to_their_text() {
    let body = Doc {
        blocks: vec![Block::Paragraph {
            content: vec![
                Inline::Mention {
                    id: "557058:abc".into(),
                    text: "@Ann".into(),
                },
                Inline::text(" please ask @bob and [~carl]"),
            ],
        }],
    };
    let disarmed = inert(&body).to_plain();
    assert!(!disarmed.contains("@Ann") && !disarmed.contains("@bob"));
    assert!(!disarmed.contains("[~carl"), "{disarmed:?}");
    assert_eq!(content_key(&body), "@Ann please ask @bob and [~carl]");
    assert_eq!(content_key(&inert(&body)), content_key(&body));
    // Not a name: an e-mail's @ inside a word and a lone @ are left alone.
    assert_eq!(disarm("a @ b"), "a @ b");
}

#[test]
fn a_header_is_recognised_from_the_template_whatever_the_names() {
    assert!(matches_template(
        "Ann Lee (Jira) wrote:",
        "{author} ({system}) wrote:"
    ));
    assert!(!matches_template(
        "Ann Lee said:",
        "{author} ({system}) wrote:"
    ));
    assert!(matches_template(
        "From Jira — Ann",
        "From {system} — {author}"
    ));
    assert!(!matches_template("Ann", "{author} ({system}) wrote:"));
    let body = Doc::from_plain("Ann (Jira) wrote:\n\nhello");
    assert_eq!(strip_header(&body, DEFAULT_HEADER).to_plain(), "hello");
    // A body without the header is left whole.
    let body = Doc::from_plain("hello\n\nworld");
    assert_eq!(
        strip_header(&body, DEFAULT_HEADER).to_plain(),
        "hello\n\nworld"
    );
}

#[test]
fn a_round_trip_through_a_plain_text_side_is_not_an_edit() {
    // Bold is lost in plain text; the words are not: no write back.
    let s = settings();
    let rich = Comment {
        body: Doc {
            blocks: vec![Block::Paragraph {
                content: vec![Inline::styled(
                    "important",
                    crate::richtext::Marks {
                        bold: true,
                        ..Default::default()
                    },
                )],
            }],
        },
        ..c("10001", "Ann", "", 5)
    };
    let links = [linked(
        1,
        Side::Jira,
        "10001",
        "7",
        &content_key(&rich.body),
    )];
    let twin = Comment {
        body: Doc::from_plain(&twin_comment(&rich, Side::Jira, &s).body.to_plain()),
        ..c("7", "bot", "", 6)
    };
    assert_eq!(plan(&[rich], &[twin], &links, &s), vec![]);
}

#[test]
fn a_twin_edited_before_its_link_was_completed_is_adopted_not_copied_back() {
    // The twin landed outside (no mark there), the worker crashed before recording its id,
    // and a person edited it: its content no longer matches, its header still names the
    // origin's author and system.
    let s = settings();
    let mut pending = linked(1, Side::Jira, "10001", "", "first words");
    pending.external_id = None;
    pending.state = CommentLinkState::Pending;
    let jira = [c("10001", "Ann", "first words", 5)];
    let ext = [twin_text("7", "Ann", "Jira", "edited words", 9)];
    assert_eq!(
        plan(&jira, &ext, &[pending], &s),
        vec![CommentAction::Adopt {
            link_id: 1,
            on: Side::External,
            comment_id: "7".into()
        }]
    );
    // With its link lost altogether, such a twin is still never copied back to Jira.
    assert_eq!(plan(&jira[..0], &ext, &[], &s), vec![]);
}

#[test]
fn a_twin_that_landed_for_a_comment_deleted_meanwhile_is_deleted_too() {
    let s = settings();
    let mut pending = linked(1, Side::Jira, "10001", "", "bye");
    pending.external_id = None;
    pending.state = CommentLinkState::Pending;
    let ext = [twin_text("7", "Ann", "Jira", "bye", 6)];
    assert_eq!(
        plan(&[], &ext, std::slice::from_ref(&pending), &s),
        vec![CommentAction::Delete {
            link_id: 1,
            on: Side::External,
            comment_id: "7".into()
        }]
    );
    // Nothing landed: the link is only forgotten.
    assert_eq!(
        plan(&[], &[], &[pending], &s),
        vec![CommentAction::Forget { link_id: 1 }]
    );
}

#[test]
fn a_matched_author_is_named_in_the_header_by_the_other_sides_user() {
    let s = settings();
    let mut authors = Authors::new();
    let mention = Inline::Mention {
        id: "acc-ann".into(),
        text: "@Ann".into(),
    };
    authors.insert((Side::External, "7".into()), mention.clone());
    let origin = c("7", "Ann Desk", "Printer smokes", 5);
    let plan_with = |external: &[Comment], links: &[CommentLink]| {
        plan_comments(&CommentInput {
            jira: &[],
            external,
            links,
            settings: &s,
            since: t(0),
            authors: &authors,
        })
    };
    let actions = plan_with(std::slice::from_ref(&origin), &[]);
    let [CommentAction::Create { comment, .. }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    // The mention stands where `{author}` is; the rest of the header is text.
    let Block::Paragraph { content } = &comment.body.blocks[0] else {
        panic!("{:?}", comment.body)
    };
    assert_eq!(content[0], mention);
    assert_eq!(content[1], Inline::text(" (Desk) wrote:"));
    assert!(has_header(&comment.body, &s.header));

    // A pending link whose twin a person edited before it was recorded is adopted by the
    // attributed header (and still by the display-name one), not copied again.
    let pending = CommentLink {
        id: 3,
        origin: Side::External,
        jira_id: None,
        external_id: Some("7".into()),
        shadow: "Printer smokes".into(),
        state: CommentLinkState::Pending,
    };
    for header in ["@Ann (Desk) wrote:", "Ann Desk (Desk) wrote:"] {
        let twin = c(
            "10009",
            "bot",
            &format!("{header}\n\nPrinter smokes a lot"),
            6,
        );
        let actions = plan_comments(&CommentInput {
            jira: std::slice::from_ref(&twin),
            external: std::slice::from_ref(&origin),
            links: std::slice::from_ref(&pending),
            settings: &s,
            since: t(0),
            authors: &authors,
        });
        assert_eq!(
            actions,
            vec![CommentAction::Adopt {
                link_id: 3,
                on: Side::Jira,
                comment_id: "10009".into()
            }],
            "{header}"
        );
    }

    // Data Center's wiki names the person by user name, Cloud's by account id.
    let dc = Doc {
        blocks: vec![Block::Paragraph {
            content: header_inlines(
                DEFAULT_HEADER,
                &Inline::Mention {
                    id: "alice".into(),
                    text: String::new(),
                },
                "Desk",
            ),
        }],
    };
    assert_eq!(dc.to_wiki_by_name(), "[~alice] (Desk) wrote:");
    assert_eq!(dc.to_wiki(), "[~accountid:alice] (Desk) wrote:");
    assert!(has_header(
        &Doc::from_wiki(&dc.to_wiki_by_name()),
        DEFAULT_HEADER
    ));
}
