//! Runs the model checker over comment sync (see `tandem_model::comments`): every
//! interleaving of people's comments, edits and deletions on both sides with duplicated and
//! lost webhooks, crashes and lost answers, around core's real comment planner.

use stateright::{Checker, Model};
use std::collections::BTreeSet;
use std::time::Instant;
use tandem_core::comment::CommentSettings;
use tandem_model::comments::{CommentBounds, CommentModel};

const ALWAYS: [&str; 6] = [
    "no second twin",
    "no twin of a twin",
    "no ping-pong",
    "every comment has its twin once quiet",
    "texts agree once quiet",
    "no step left undone",
];

fn check(bounds: CommentBounds) -> BTreeSet<&'static str> {
    let started = Instant::now();
    let model = CommentModel {
        bounds,
        settings: CommentSettings {
            external_system: "Desk".into(),
            ..CommentSettings::default()
        },
    };
    let checker = model.checker().threads(2).spawn_bfs().join();
    let found: BTreeSet<&str> = checker.discoveries().into_keys().collect();
    println!(
        "comments {bounds:?}: {} states ({} unique), depth {}, {:.1?}; found {found:?}",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed(),
    );
    if std::env::var("TANDEM_MODEL_TRACE").is_ok() {
        for (name, path) in checker.discoveries() {
            println!("{name}:");
            for (state, action) in path.into_vec() {
                println!("  {state:?}\n    {action:?}");
            }
        }
    }
    found
}

fn assert_all_hold(found: &BTreeSet<&str>) {
    for p in ALWAYS {
        assert!(
            !found.contains(p),
            "`{p}` fails (run with TANDEM_MODEL_TRACE=1 --nocapture to see how)"
        );
    }
}

/// The CI run: comments on both sides, then each fault in turn with an edit and a deletion.
#[test]
fn comment_sync_keeps_every_property_in_every_interleaving() {
    let base = CommentBounds::adds(1, 1);
    let runs = [
        CommentBounds::adds(2, 1),
        CommentBounds {
            edits: 1,
            deletes: 1,
            ..CommentBounds::adds(1, 0)
        },
        CommentBounds {
            crashes: 1,
            edits: 1,
            ..base
        },
        CommentBounds {
            lost_answers: 1,
            deletes: 1,
            ..base
        },
        CommentBounds {
            duplicates: 1,
            losses: 1,
            edits: 1,
            ..base
        },
    ];
    let mut reached = false;
    for bounds in runs {
        let found = check(bounds);
        assert_all_hold(&found);
        reached |= found.contains("quiet with comments on both sides");
    }
    assert!(reached, "the quiet states the properties judge are reached");
}

/// The larger run documented in docs/RELIABILITY.md:
/// `cargo test -p tandem-model --release --test comment_model larger_run -- --ignored --nocapture`.
#[test]
#[ignore]
fn larger_run() {
    let found = check(CommentBounds {
        jira_adds: 2,
        external_adds: 1,
        edits: 1,
        deletes: 1,
        crashes: 1,
        lost_answers: 1,
        duplicates: 1,
        losses: 1,
    });
    assert_all_hold(&found);
}
