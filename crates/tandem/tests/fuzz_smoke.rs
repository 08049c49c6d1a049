//! The fuzz targets on stable Rust: `tandem::fuzzing`'s bodies (the same ones `fuzz/` hands to
//! libFuzzer) driven by seeded random inputs, half mutations of realistic seeds and half raw
//! noise.
//!
//! The bounded test runs in CI (a few hundred inputs per target, seconds). The long run is
//! `cargo test -p tandem --test fuzz_smoke -- --ignored`; `TANDEM_FUZZ_ITERS` sets its inputs
//! per target and `TANDEM_FUZZ_SEED` replays a run. A failure prints the seed and the input.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::panic::{AssertUnwindSafe, catch_unwind};
use tandem::fuzzing::TARGETS;

/// Realistic starting points, so mutations land deep in the parsers, not only at byte one.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let s: &[&str] = match target {
        "webhook_jira" => &[
            r#"{"timestamp":1767000000000,"webhookEvent":"jira:issue_updated","issue":{"id":"10001","key":"FUZZ-1","fields":{"summary":"Printer on fire","duedate":"2026-01-31","customfield_10001":3,"labels":["a","b"],"priority":{"name":"High"},"description":"h1. Title\n* one\n* two"}},"changelog":{"items":[{"fieldId":"summary","field":"summary"},{"field":"labels"},{"fieldId":"description"}]}}"#,
            r#"{"webhookEvent":"jira:issue_created","issue":{"id":10002,"key":"FUZZ-2","fields":{"summary":"New","description":null,"updated":"2015-11-18T14:39:00.000+1100"}}}"#,
            r#"{"webhookEvent":"comment_created","comment":{"body":"x"}}"#,
        ],
        "webhook_rest" => &[
            r#"{"sourceIssueId":"FUZZ-1","fields":[{"fieldName":"summary","fieldId":1001,"value":"x"},{"fieldId":"1003","value":"2026-01-31"},{"fieldId":1004,"value":1.5},{"fieldId":1005,"value":"a b,c"},{"fieldId":1006,"value":null}]}"#,
            "x-delivery-id\n{\"id\":7,\"event\":\"created\"}",
        ],
        "mapping_csv" => &[
            "jiraField,externalField\nsummary,1001\ndescription,1002 # note\n\n# comment\n",
            "jiraField,externalField,direction,type,valueMap,default,conflict\npriority,1005,both,option,High=3;Medium=2;Low=1,Medium,jira_wins\nduedate,1003,to_jira,date,,,\n",
            "\u{feff}jiraField,externalField\nsummary,1\ndescription,1\n",
        ],
        "convert" => &[
            "2025-01-31",
            "2015-11-18T14:39:00.000+1100",
            "2025-01-31 10:15:00.5",
            "-1.5e3",
            "a, b c,,d",
            "line one\r\nline two\n\n para",
            "  padded  ",
        ],
        "richtext" => &[
            r#"{"type":"doc","version":1,"content":[{"type":"heading","attrs":{"level":2},"content":[{"type":"text","text":"Hi","marks":[{"type":"strong"},{"type":"link","attrs":{"href":"https://x"}}]}]},{"type":"bulletList","content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"one"},{"type":"hardBreak"},{"type":"mention","attrs":{"id":"u1","text":"@Ann"}}]}]}]},{"type":"codeBlock","attrs":{"language":"rust"},"content":[{"type":"text","text":"fn main() {}"}]}]}"#,
            "h1. Title\n* one\n** nested\n# numbered\n{code:java}x{code}\n*bold* _it_ [link|http://x] {{mono}}\n|| a || b ||\n| 1 | 2 |",
            r#""plain string""#,
        ],
        _ => &[],
    };
    s.iter().map(|x| x.as_bytes().to_vec()).collect()
}

/// Fragments that break parsers: quotes, escapes, surrogates, deep nesting, huge numbers.
const TOKENS: &[&str] = &[
    "\"", "\\", "\\ud800", "\\u0000", "[[[[[[[[", "{\"a\":", "}", "]", ",", ":", "null", "1e999",
    "-0", "\u{202e}", "🚒", "\0", "\r\n", "{code}", "*", "||", "h1. ", "%", "${X}", "#",
];

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.random_range(1..8) {
        let at = if v.is_empty() {
            0
        } else {
            rng.random_range(0..=v.len())
        };
        match rng.random_range(0..6) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 => v.insert(at, rng.random()),
            2 if !v.is_empty() => {
                let end = (at + rng.random_range(1..16)).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
                let times = if rng.random_bool(0.1) {
                    rng.random_range(1..300)
                } else {
                    1
                };
                for _ in 0..times {
                    v.splice(at..at, t.iter().copied());
                }
            }
            4 => v.truncate(at),
            _ if !v.is_empty() => {
                let start = rng.random_range(0..v.len());
                let end = (start + rng.random_range(1..32)).min(v.len());
                let piece = v[start..end].to_vec();
                v.splice(at..at, piece);
            }
            _ => {}
        }
    }
    v
}

fn noise(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.random_range(0..256);
    (0..len).map(|_| rng.random()).collect()
}

fn run(iterations: usize) {
    let seed: u64 = std::env::var("TANDEM_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    for (name, target) in TARGETS {
        let mut rng = StdRng::seed_from_u64(seed);
        let corpus = seeds(name);
        // The seeds themselves first: they must pass untouched.
        let inputs = corpus.clone().into_iter().chain((0..iterations).map(|_| {
            if !corpus.is_empty() && rng.random_bool(0.7) {
                let base = &corpus[rng.random_range(0..corpus.len())];
                mutate(&mut rng, base)
            } else {
                noise(&mut rng)
            }
        }));
        for input in inputs {
            if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
                panic!(
                    "fuzz target {name} failed (TANDEM_FUZZ_SEED={seed}) on input {:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }
}

/// CI's bounded run: every target, a few hundred inputs each.
#[test]
fn fuzz_targets_survive_a_few_hundred_inputs() {
    run(300);
}

/// The long run for release checks: `cargo test -p tandem --test fuzz_smoke -- --ignored`.
#[test]
#[ignore = "long; run before a release"]
fn fuzz_targets_survive_many_inputs() {
    let n = std::env::var("TANDEM_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    run(n);
}
