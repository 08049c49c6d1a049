//! The attachment rules on small cases: identity, pairing of unlinked files, pending links
//! adopted after a lost answer, skips, deletes both ways.

use super::*;

fn att(id: &str, name: &str, sha: Option<&str>, size: u64) -> Attachment {
    Attachment {
        id: id.into(),
        filename: name.into(),
        size,
        sha256: sha.map(str::to_string),
        content_type: Some("text/plain".into()),
        url: None,
    }
}

fn link(
    id: i64,
    origin: Side,
    j: Option<&str>,
    e: Option<&str>,
    state: AttachmentLinkState,
) -> AttachmentLink {
    AttachmentLink {
        id,
        origin,
        jira_id: j.map(str::to_string),
        external_id: e.map(str::to_string),
        sha256: "aa".into(),
        filename: "a.txt".into(),
        size: 3,
        state,
    }
}

fn plan(
    jira: &[Attachment],
    external: &[Attachment],
    links: &[AttachmentLink],
    s: &AttachmentSettings,
) -> Vec<AttachmentAction> {
    plan_attachments(&AttachmentInput {
        jira,
        external,
        links,
        settings: s,
    })
}

#[test]
fn a_new_file_is_uploaded_with_its_link_recorded_first() {
    let s = AttachmentSettings::default();
    let actions = plan(&[att("10", "a.txt", Some("aa"), 3)], &[], &[], &s);
    let [AttachmentAction::Upload { link, on, from_id }] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!((*on, from_id.as_str()), (Side::External, "10"));
    assert_eq!(link.state, AttachmentLinkState::Pending);
    assert_eq!(link.jira_id.as_deref(), Some("10"));
    assert_eq!(link.external_id, None);
    assert_eq!(
        (link.sha256.as_str(), link.filename.as_str()),
        ("aa", "a.txt")
    );
}

#[test]
fn a_linked_pair_plans_nothing_however_often_it_is_reconciled() {
    let s = AttachmentSettings::default();
    let l = link(
        1,
        Side::Jira,
        Some("10"),
        Some("e1"),
        AttachmentLinkState::Linked,
    );
    let j = [att("10", "a.txt", None, 3)];
    let e = [att("e1", "a.txt", Some("aa"), 3)];
    assert!(plan(&j, &e, std::slice::from_ref(&l), &s).is_empty());
    // Linked files are never hashed.
    let input = AttachmentInput {
        jira: &j,
        external: &e,
        links: std::slice::from_ref(&l),
        settings: &s,
    };
    assert!(needs_hash(&input).is_empty());
}

#[test]
fn a_pending_link_whose_twin_landed_adopts_it_instead_of_uploading_again() {
    // The upload went through, but its answer (or the process) was lost.
    let s = AttachmentSettings::default();
    let l = link(
        7,
        Side::Jira,
        Some("10"),
        None,
        AttachmentLinkState::Pending,
    );
    let j = [att("10", "a.txt", Some("aa"), 3)];
    let e = [att("e9", "a.txt", Some("aa"), 3)];
    assert_eq!(
        plan(&j, &e, &[l], &s),
        vec![AttachmentAction::Adopt {
            link_id: 7,
            on: Side::External,
            attachment_id: "e9".into()
        }]
    );
}

#[test]
fn a_pending_link_with_nothing_landed_uploads_again_on_the_same_row() {
    let s = AttachmentSettings::default();
    let l = link(
        7,
        Side::Jira,
        Some("10"),
        None,
        AttachmentLinkState::Pending,
    );
    // A same-named file of other content is not the twin (it is a file of its own, copied
    // the other way).
    let e = [att("e9", "a.txt", Some("bb"), 3)];
    let actions = plan(
        &[att("10", "a.txt", Some("aa"), 3)],
        &e,
        std::slice::from_ref(&l),
        &s,
    );
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(
        matches!(&actions[0], AttachmentAction::Upload { link, on: Side::External, .. } if link.id == 7)
    );
    assert!(
        matches!(&actions[1], AttachmentAction::Upload { link, on: Side::Jira, .. } if link.id == 0)
    );
}

#[test]
fn the_same_file_unlinked_on_both_sides_is_paired_not_copied() {
    let s = AttachmentSettings::default();
    let actions = plan(
        &[att("10", "a.txt", Some("aa"), 3)],
        &[att("e1", "a.txt", Some("aa"), 3)],
        &[],
        &s,
    );
    let [AttachmentAction::Pair { link }] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(link.state, AttachmentLinkState::Linked);
    assert_eq!(
        (link.jira_id.as_deref(), link.external_id.as_deref()),
        (Some("10"), Some("e1"))
    );
}

#[test]
fn the_same_content_under_another_name_is_another_file() {
    let s = AttachmentSettings::default();
    let actions = plan(
        &[att("10", "a.txt", Some("aa"), 3)],
        &[att("e1", "b.txt", Some("aa"), 3)],
        &[],
        &s,
    );
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(
        actions
            .iter()
            .all(|a| matches!(a, AttachmentAction::Upload { .. }))
    );
}

#[test]
fn two_copies_of_one_file_each_get_their_own_twin() {
    let s = AttachmentSettings::default();
    let links = [
        link(
            1,
            Side::Jira,
            Some("10"),
            None,
            AttachmentLinkState::Pending,
        ),
        link(
            2,
            Side::Jira,
            Some("11"),
            None,
            AttachmentLinkState::Pending,
        ),
    ];
    let j = [
        att("10", "a.txt", Some("aa"), 3),
        att("11", "a.txt", Some("aa"), 3),
    ];
    // One upload landed: one adopt, one upload; never both adopting the same twin.
    let actions = plan(&j, &[att("e1", "a.txt", Some("aa"), 3)], &links, &s);
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(matches!(
        &actions[0],
        AttachmentAction::Adopt { link_id: 1, .. }
    ));
    assert!(matches!(&actions[1], AttachmentAction::Upload { link, .. } if link.id == 2));
}

#[test]
fn a_deletion_follows_or_is_kept_by_setting() {
    let l = link(
        1,
        Side::Jira,
        Some("10"),
        Some("e1"),
        AttachmentLinkState::Linked,
    );
    let e = [att("e1", "a.txt", Some("aa"), 3)];
    let s = AttachmentSettings::default();
    assert_eq!(
        plan(&[], &e, std::slice::from_ref(&l), &s),
        vec![AttachmentAction::Delete {
            link_id: 1,
            on: Side::External,
            attachment_id: "e1".into()
        }]
    );
    let keep = AttachmentSettings {
        deletes: AttachmentDeletes::Keep,
        ..s.clone()
    };
    assert_eq!(
        plan(&[], &e, std::slice::from_ref(&l), &keep),
        vec![AttachmentAction::Keep {
            link_id: 1,
            deleted_on: Side::Jira
        }]
    );
    // A kept twin is not uploaded back, and is forgotten once it goes too.
    let mut kept = l.clone();
    kept.state = AttachmentLinkState::Kept;
    assert!(plan(&[], &e, std::slice::from_ref(&kept), &keep).is_empty());
    assert_eq!(
        plan(&[], &[], &[kept], &keep),
        vec![AttachmentAction::Forget { link_id: 1 }]
    );
    // Both gone: the link goes.
    assert_eq!(
        plan(&[], &[], &[l], &s),
        vec![AttachmentAction::Forget { link_id: 1 }]
    );
}

#[test]
fn a_pending_origin_deleted_takes_its_landed_twin_along() {
    let s = AttachmentSettings::default();
    let l = link(
        3,
        Side::External,
        None,
        Some("e1"),
        AttachmentLinkState::Pending,
    );
    assert_eq!(
        plan(
            &[att("10", "a.txt", Some("aa"), 3)],
            &[],
            std::slice::from_ref(&l),
            &s
        ),
        vec![AttachmentAction::Delete {
            link_id: 3,
            on: Side::Jira,
            attachment_id: "10".into()
        }]
    );
    assert_eq!(
        plan(&[], &[], &[l], &s),
        vec![AttachmentAction::Forget { link_id: 3 }]
    );
}

#[test]
fn an_oversized_file_is_a_skip_recorded_once_and_never_hashed() {
    let s = AttachmentSettings {
        max_bytes: 100,
        ..AttachmentSettings::default()
    };
    let j = [att("10", "big.bin", None, 101)];
    let input = AttachmentInput {
        jira: &j,
        external: &[],
        links: &[],
        settings: &s,
    };
    assert!(
        needs_hash(&input).is_empty(),
        "an oversized file is never downloaded"
    );
    let actions = plan(&j, &[], &[], &s);
    let [AttachmentAction::Skip { link, reason }] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(link.state, AttachmentLinkState::Skipped);
    assert!(reason.contains("attachment_max_bytes"), "{reason}");
    // Recorded: the next reconcile is quiet.
    let mut stored = link.clone();
    stored.id = 5;
    assert!(plan(&j, &[], std::slice::from_ref(&stored), &s).is_empty());
    // The limit raised: reconsidered (once hashed), uploaded.
    let raised = AttachmentSettings {
        max_bytes: 1000,
        ..s
    };
    let hashed = [att("10", "big.bin", Some("cc"), 101)];
    let actions = plan(&hashed, &[], &[stored], &raised);
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[0], AttachmentAction::Forget { link_id: 5 });
    assert!(matches!(
        &actions[1],
        AttachmentAction::Upload {
            on: Side::External,
            ..
        }
    ));
}

#[test]
fn content_types_outside_the_allow_list_are_skipped() {
    let s = AttachmentSettings {
        types: vec!["image/*".into(), "application/pdf".into()],
        ..Default::default()
    };
    let mut png = att("10", "a.png", Some("aa"), 3);
    png.content_type = Some("image/png".into());
    let mut pdf = att("11", "b.pdf", Some("bb"), 3);
    pdf.content_type = Some("Application/PDF; charset=binary".into());
    let exe = att("12", "c.txt", Some("cc"), 3);
    let actions = plan(&[png, pdf, exe], &[], &[], &s);
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert!(matches!(&actions[0], AttachmentAction::Upload { .. }));
    assert!(matches!(&actions[1], AttachmentAction::Upload { .. }));
    assert!(
        matches!(&actions[2], AttachmentAction::Skip { reason, .. } if reason.contains("text/plain"))
    );
    assert!(type_matches("*/*", "x/y"));
    assert!(!type_matches("image/*", "imagex/png"));
}

#[test]
fn one_way_settings_copy_one_way() {
    let s = AttachmentSettings {
        sync: AttachmentSync::ToJira,
        ..Default::default()
    };
    let actions = plan(
        &[att("10", "a.txt", Some("aa"), 3)],
        &[att("e1", "b.txt", Some("bb"), 3)],
        &[],
        &s,
    );
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(
        matches!(&actions[0], AttachmentAction::Upload { on: Side::Jira, from_id, .. } if from_id == "e1")
    );
    // A deletion on Jira is not carried outside either.
    let l = link(
        1,
        Side::External,
        Some("10"),
        Some("e1"),
        AttachmentLinkState::Linked,
    );
    assert_eq!(
        plan(&[], &[att("e1", "a.txt", Some("aa"), 3)], &[l], &s),
        vec![AttachmentAction::Keep {
            link_id: 1,
            deleted_on: Side::Jira
        }]
    );
}

#[test]
fn files_of_unknown_content_wait_for_their_hash() {
    let s = AttachmentSettings::default();
    let j = [att("10", "a.txt", None, 3)];
    let input = AttachmentInput {
        jira: &j,
        external: &[],
        links: &[],
        settings: &s,
    };
    assert_eq!(needs_hash(&input), vec![(Side::Jira, "10".to_string())]);
    assert!(plan(&j, &[], &[], &s).is_empty());
}
