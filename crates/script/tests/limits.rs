//! Run-time limits and failures: each stops the call with an error that says what happened
//! and where, and the script (and process) stay usable afterwards.

mod common;

use common::{fields, item, text};
use std::time::{Duration, Instant};
use tandem_core::Side;
use tandem_script::{ErrorKind, Limit, Script, ScriptError, ScriptLimits};

/// The default limits, with wall time to spare: a loaded CI machine can stall a thread
/// for longer than 50 ms, and only the wall-time test is about wall time.
fn roomy() -> ScriptLimits {
    ScriptLimits {
        wall_time: Duration::from_secs(1),
        ..ScriptLimits::default()
    }
}

fn run(source: &str, limits: ScriptLimits) -> ScriptError {
    let script = Script::compile("rules.rhai", source, limits).unwrap_or_else(|e| panic!("{e}"));
    let input = fields(&[("summary", text("hello"))]);
    let err = script
        .to_jira(&input, &item(Side::External, &[]))
        .expect_err("the call should fail");
    // The failure is per call: the same script still runs a call that stays in bounds.
    let ok = Script::compile(
        "ok.rhai",
        "fn to_jira(fields, item) { fields }",
        *script.limits(),
    )
    .unwrap();
    assert_eq!(
        ok.to_jira(&input, &item(Side::External, &[])).unwrap(),
        input
    );
    err
}

#[test]
fn an_endless_loop_is_stopped_by_the_operation_limit() {
    let err = run(
        "fn to_jira(fields, item) {\n  let n = 0;\n  loop { n += 1; }\n}",
        ScriptLimits {
            wall_time: Duration::from_secs(30),
            ..ScriptLimits::default()
        },
    );
    assert_eq!(err.kind, ErrorKind::Limit(Limit::Operations));
    assert_eq!(
        err.to_string(),
        "rules.rhai:1:4: to_jira: the script ran too many operations (does a loop never end?): \
         exceeded the operation limit (max_operations = 100000)"
    );
}

#[test]
fn an_endless_loop_is_stopped_by_wall_time() {
    let limits = ScriptLimits {
        max_operations: u64::MAX,
        wall_time: Duration::from_millis(30),
        ..ScriptLimits::default()
    };
    let started = Instant::now();
    let err = run(
        "fn to_jira(fields, item) { let n = 0; while true { n += 1; } }",
        limits,
    );
    let took = started.elapsed();
    assert_eq!(err.kind, ErrorKind::Limit(Limit::WallTime));
    assert_eq!(
        err.to_string(),
        "rules.rhai:1:4: to_jira: the script ran for too long: exceeded the wall-time limit (wall_time = 30ms)"
    );
    assert!(took < Duration::from_secs(2), "stopped only after {took:?}");
}

#[test]
fn endless_recursion_is_stopped_by_the_call_depth() {
    let err = run(
        "fn down(n) { down(n + 1) }\nfn to_jira(fields, item) { down(0) }",
        roomy(),
    );
    assert_eq!(err.kind, ErrorKind::Limit(Limit::CallLevels));
    assert!(
        err.message
            .ends_with("exceeded the call-depth limit (max_call_levels = 32)"),
        "{err}"
    );
    // Recursion within the limit works.
    let script = Script::compile(
        "rules.rhai",
        "fn depth(n) { if n == 0 { 0 } else { 1 + depth(n - 1) } }\n\
         fn to_jira(fields, item) { fields.depth = depth(30); fields }",
        roomy(),
    )
    .unwrap();
    let out = script
        .to_jira(&fields(&[]), &item(Side::Jira, &[]))
        .unwrap();
    assert_eq!(out["depth"], tandem_core::FieldValue::Number(30.0));
}

#[test]
fn a_huge_string_is_stopped_by_the_string_size() {
    let err = run(
        "fn to_jira(fields, item) { let s = \"x\"; loop { s += s; } }",
        roomy(),
    );
    assert_eq!(err.kind, ErrorKind::Limit(Limit::StringSize));
    assert!(
        err.message
            .ends_with("exceeded the string-size limit (max_string_size = 1048576 bytes)"),
        "{err}"
    );
    let err = run(
        "fn to_jira(fields, item) { fields.summary = \"\".pad(2000000, 'y'); fields }",
        roomy(),
    );
    assert_eq!(err.kind, ErrorKind::Limit(Limit::StringSize));
}

#[test]
fn huge_arrays_and_maps_are_stopped_by_their_sizes() {
    let limits = ScriptLimits {
        max_array_size: 100,
        max_map_size: 100,
        ..ScriptLimits::default()
    };
    let err = run(
        "fn to_jira(fields, item) { let a = []; loop { a.push(1); } }",
        limits,
    );
    assert_eq!(err.kind, ErrorKind::Limit(Limit::ArraySize), "{err}");
    assert!(
        err.message.ends_with("(max_array_size = 100 elements)"),
        "{err}"
    );
    // Rhai checks a map's size when it is assigned, passed or returned rather than on every
    // new key (which the operation and wall-time limits bound meanwhile).
    let err = run(
        "fn to_jira(fields, item) {\n  let m = #{};\n  for i in 0..200 { m[`f${i}`] = i; }\n  fields.extra = m;\n  fields\n}",
        limits,
    );
    assert_eq!(err.kind, ErrorKind::Limit(Limit::MapSize), "{err}");
    assert!(
        err.message.ends_with("(max_map_size = 100 entries)"),
        "{err}"
    );
}

#[test]
fn a_throw_carries_its_message_and_position() {
    let err = run(
        "fn to_jira(fields, item) {\n  if fields.summary == \"hello\" {\n    throw \"no greetings\";\n  }\n  fields\n}",
        roomy(),
    );
    assert_eq!(err.kind, ErrorKind::Runtime);
    assert_eq!(
        err.to_string(),
        "rules.rhai:3:5: to_jira: the script threw: no greetings"
    );
}

#[test]
fn a_type_error_in_a_helper_names_the_helper_and_its_line() {
    let err = run(
        "fn shout(s) {\n  s.to_upper()\n}\nfn to_jira(fields, item) {\n  fields.summary = shout(42);\n  fields\n}",
        roomy(),
    );
    assert_eq!(err.kind, ErrorKind::Runtime);
    assert_eq!(
        err.to_string(),
        "rules.rhai:2:5: to_jira: in function 'shout': Function not found: to_upper (i64)"
    );
}

#[test]
fn a_wrong_return_value_names_the_hook_and_field() {
    let err = run(
        "fn to_jira(fields, item) {\n  fields.summary = 42;\n  fields\n}",
        roomy(),
    );
    assert_eq!(err.kind, ErrorKind::Value);
    assert_eq!(
        err.to_string(),
        "rules.rhai:1:4: to_jira: field `summary` must be a string, got an i64 (42)"
    );
    let err = run(
        "fn to_jira(fields, item) { fields.summary.to_upper() }",
        roomy(),
    );
    assert_eq!(
        err.to_string(),
        "rules.rhai:1:4: to_jira must return the map of fields to write (e.g. `fields`), got string (\"HELLO\")"
    );
    let err = run("fn to_jira(fields, item) { if false { fields } }", roomy());
    assert!(
        err.message
            .contains("did the function forget to return a value?"),
        "{err}"
    );
}

#[test]
fn print_and_debug_are_captured_not_written_to_stdout() {
    let script = Script::compile(
        "rules.rhai",
        "fn to_jira(fields, item) {\n  print(`to jira: ${fields.summary}`);\n  debug(item.id);\n  fields\n}",
        roomy(),
    )
    .unwrap();
    let (out, log) = tandem_script::capture_log(|| {
        script.to_jira(&fields(&[("summary", text("hi"))]), &item(Side::Jira, &[]))
    });
    assert!(out.is_ok());
    assert_eq!(log, ["to jira: hi", "3:3: \"42\""]);
    // Outside a capture the output goes nowhere (and the call still works).
    assert!(script.to_jira(&fields(&[]), &item(Side::Jira, &[])).is_ok());
    let noisy = Script::compile(
        "rules.rhai",
        "fn filter(event) { for i in 0..1000 { print(i) } true }",
        roomy(),
    )
    .unwrap();
    let (_, log) = tandem_script::capture_log(|| noisy.filter(&common::event(Side::Jira, &[])));
    assert_eq!(log.len(), 201);
    assert_eq!(log[200], "... 800 more lines dropped");
}

#[test]
fn one_script_serves_many_threads_at_once() {
    let script = Script::compile(
        "rules.rhai",
        "fn to_jira(fields, item) { fields.who = item.id; fields }",
        roomy(),
    )
    .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let script = script.clone();
            std::thread::spawn(move || {
                for n in 0..50 {
                    let mut it = item(Side::External, &[]);
                    it.id = format!("{t}-{n}");
                    let out = script.to_jira(&fields(&[]), &it).unwrap();
                    assert_eq!(out["who"], text(&format!("{t}-{n}")));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn long_field_values_within_the_defaults_can_be_edited() {
    // Rhai counts all the strings inside a map together: the default leaves room for the
    // longest description Jira allows (32 767 characters) in several fields at once.
    let long = "é".repeat(32_767);
    let script = Script::compile(
        "rules.rhai",
        "fn to_jira(fields, item) { fields.summary = \"short\"; fields.copy = item.fields.notes; fields }",
        roomy(),
    )
    .unwrap();
    let input = fields(&[("description", text(&long)), ("other", text(&long))]);
    let source = item(Side::External, &[("notes", text(&long))]);
    let out = script.to_jira(&input, &source).unwrap();
    assert_eq!(out["copy"], text(&long));
    assert_eq!(out["summary"], text("short"));
}

#[test]
fn the_deepest_nesting_the_limits_allow_fits_a_small_thread_stack() {
    // The largest call depth and expression depth accepted, each used to the full, on a
    // 2 MiB thread (tokio's default): the limits stop the script before the stack runs out.
    let limits = ScriptLimits {
        max_call_levels: 64,
        max_expr_depth: 64,
        max_operations: 10_000_000,
        wall_time: Duration::from_secs(5),
        ..ScriptLimits::default()
    };
    let result = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let mut deepest = None;
            for nest in 1.. {
                let src = format!(
                    "fn d(n) {{ if n == 0 {{ 0 }} else {{ {}d(n - 1){} }} }}\n\
                     fn to_jira(fields, item) {{ fields.n = d(100); fields }}",
                    "(1 + ".repeat(nest),
                    ")".repeat(nest)
                );
                match Script::compile("deep.rhai", &src, limits) {
                    Ok(script) => deepest = Some(script),
                    Err(_) => break,
                }
            }
            deepest
                .expect("some nesting compiles")
                .to_jira(&fields(&[]), &item(Side::Jira, &[]))
                .unwrap_err()
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert_eq!(result.kind, ErrorKind::Limit(Limit::CallLevels), "{result}");
}
