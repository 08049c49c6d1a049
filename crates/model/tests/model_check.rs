//! Runs the model checker over the sync protocol (see `tandem_model`): every interleaving
//! within the bounds, every property in every state. Figures and findings are in
//! docs/RELIABILITY.md ("Model check").

use stateright::{Checker, HasDiscoveries, Model};
use std::collections::BTreeSet;
use std::time::Instant;
use tandem_core::mapping::ConflictPolicy;
use tandem_model::{Bounds, SyncModel, Variant};

/// Every `always` property of the model.
const ALWAYS: [&str; 7] = [
    "no second twin",
    "no write caused by an echo",
    "no ping-pong",
    "converges once quiet",
    "Jira's link field names the twin once quiet",
    "no lost change once quiet",
    "no step left undone",
];

/// Explores the states (all of them, or until one of `stop_at` is found); returns the
/// names of the properties with a discovery (a broken `always`, a reached `sometimes`).
fn check(
    bounds: Bounds,
    policy: ConflictPolicy,
    variant: Variant,
    stop_at: &[&'static str],
) -> BTreeSet<&'static str> {
    let started = Instant::now();
    let mut builder = SyncModel::new(bounds, policy, variant).checker().threads(2);
    if !stop_at.is_empty() {
        builder = builder.finish_when(HasDiscoveries::AnyOf(stop_at.iter().copied().collect()));
    }
    let checker = builder.spawn_bfs().join();
    let found: BTreeSet<&str> = checker.discoveries().into_keys().collect();
    println!(
        "{policy} {variant:?} {bounds:?}: {} states ({} unique), depth {}, {:.1?}; found {found:?}",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed(),
    );
    if std::env::var("TANDEM_MODEL_TRACE").is_ok() {
        for (name, path) in checker.discoveries() {
            println!("{name}:");
            for (state, action) in path.into_vec() {
                println!("  {}\n    {action:?}", state.summary());
            }
        }
    }
    found
}

/// Every `always` property holds, and the quiet states they judge are reached.
fn assert_all_hold(bounds: Bounds, found: &BTreeSet<&str>) {
    for p in ALWAYS {
        assert!(
            !found.contains(p),
            "`{p}` fails (TANDEM_MODEL_TRACE=1 with the `explore` test shows how)"
        );
    }
    if bounds.jira_edits > 0 && bounds.external_edits > 0 {
        assert!(found.contains("quiet after edits on both sides"));
    }
}

/// The CI run: people's edits on both sides, with each delivery and write fault in turn
/// (one test, so the runs do not compete for the cores).
#[test]
fn the_protocol_keeps_every_property_in_every_interleaving() {
    let runs = [
        Bounds::edits(2, 1),
        Bounds {
            losses: 1,
            ..Bounds::edits(1, 1)
        },
        Bounds {
            delays: 1,
            ..Bounds::edits(1, 1)
        },
        Bounds {
            failed_writes: 1,
            ..Bounds::edits(1, 1)
        },
        Bounds {
            duplicates: 1,
            ..Bounds::edits(1, 0)
        },
    ];
    for bounds in runs {
        assert_all_hold(
            bounds,
            &check(bounds, ConflictPolicy::LaterWins, Variant::Faithful, &[]),
        );
    }
}

/// The checker can fail: without re-reading a delivered snapshot, a webhook held back
/// brings an old value back (lost change, no convergence, ping-pong).
#[test]
fn the_checker_finds_the_bug_of_trusting_old_snapshots() {
    let bounds = Bounds {
        delays: 1,
        ..Bounds::edits(1, 1)
    };
    let found = check(
        bounds,
        ConflictPolicy::LaterWins,
        Variant::TrustSnapshots,
        &["no lost change once quiet"],
    );
    assert!(found.contains("no lost change once quiet"), "{found:?}");
}

/// Crashes and lost answers (docs/RELIABILITY.md, "Model check: findings"): with one crash,
/// or one lost answer, or both, every property holds. These bounds found findings 1–3
/// (Jira's link field left empty, discovery writing under the item's key, a pending write
/// judged on an old snapshot) before the engine was fixed.
#[test]
fn every_property_holds_under_crashes_and_lost_answers() {
    let runs = [
        Bounds {
            crashes: 1,
            ..Bounds::edits(1, 1)
        },
        Bounds {
            lost_answers: 1,
            ..Bounds::edits(1, 1)
        },
        Bounds {
            crashes: 1,
            lost_answers: 1,
            ..Bounds::edits(1, 1)
        },
    ];
    for bounds in runs {
        assert_all_hold(
            bounds,
            &check(bounds, ConflictPolicy::LaterWins, Variant::Faithful, &[]),
        );
    }
}

/// The larger run documented in docs/RELIABILITY.md:
/// `cargo test -p tandem-model --test model_check larger_run -- --ignored --nocapture`.
#[test]
#[ignore]
fn larger_run() {
    for policy in ConflictPolicy::ALL {
        assert_all_hold(
            Bounds::edits(2, 1),
            &check(Bounds::edits(2, 1), policy, Variant::Faithful, &[]),
        );
    }
    for policy in ConflictPolicy::ALL {
        assert_all_hold(
            Bounds::large(),
            &check(Bounds::large(), policy, Variant::Faithful, &[]),
        );
    }
}

/// `TANDEM_MODEL_BOUNDS=je,ee,crash,lease,lost,failed,dup,delay,loss` and optionally
/// `TANDEM_MODEL_VARIANT=IgnorePending|NoConnectionLock|NoWriteAhead|TrustSnapshots` run any
/// bounds (with `--ignored --nocapture`; `TANDEM_MODEL_TRACE=1` prints counterexamples).
#[test]
#[ignore]
fn explore() {
    let Ok(spec) = std::env::var("TANDEM_MODEL_BOUNDS") else {
        return;
    };
    let n: Vec<u8> = spec.split(',').map(|x| x.trim().parse().unwrap()).collect();
    let b = Bounds {
        jira_edits: n[0],
        external_edits: n[1],
        crashes: n[2],
        lease_expiries: n[3],
        lost_answers: n[4],
        failed_writes: n[5],
        duplicates: n[6],
        delays: n[7],
        losses: n[8],
    };
    let variant = match std::env::var("TANDEM_MODEL_VARIANT").as_deref() {
        Ok("IgnorePending") => Variant::IgnorePending,
        Ok("NoConnectionLock") => Variant::NoConnectionLock,
        Ok("NoWriteAhead") => Variant::NoWriteAhead,
        Ok("TrustSnapshots") => Variant::TrustSnapshots,
        _ => Variant::Faithful,
    };
    check(b, ConflictPolicy::LaterWins, variant, &[]);
}
