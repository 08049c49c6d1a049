//! Errors at load time: positions, syntax, hook arity, the refused parts of the language.

use tandem_script::{ErrorKind, Limit, Script, ScriptError, ScriptLimits};

fn compile(source: &str) -> Result<Script, ScriptError> {
    Script::compile("rules.rhai", source, ScriptLimits::default())
}

fn compile_err(source: &str) -> ScriptError {
    compile(source).expect_err("the script should not compile")
}

#[test]
fn a_hook_with_too_many_arguments_is_named_with_its_position() {
    let src = "// rules\n\nfn helper(x) { x }\n\n    fn to_jira(fields, item, extra) {\n        fields\n    }\n";
    let err = compile_err(src);
    assert_eq!(err.kind, ErrorKind::Hook);
    assert_eq!(
        err.to_string(),
        "rules.rhai:5:8: function 'to_jira' takes 2 arguments (fields, item), found 3"
    );
}

#[test]
fn every_hook_has_its_arity_checked() {
    let cases = [
        (
            "fn filter() { true }",
            "rules.rhai:1:4: function 'filter' takes 1 argument (event), found 0",
        ),
        (
            "fn to_external(fields) { fields }",
            "rules.rhai:1:4: function 'to_external' takes 2 arguments (fields, item), found 1",
        ),
        (
            "fn on_create(fields, item) { fields }",
            "rules.rhai:1:4: function 'on_create' takes 3 arguments (side, fields, item), found 2",
        ),
    ];
    for (src, expected) in cases {
        assert_eq!(compile_err(src).to_string(), expected, "{src}");
    }
    // An overload with the wrong arity next to a right one is still a mistake.
    let err =
        compile_err("fn filter(e) { true }\n/* fn filter(a, b) */\nfn filter(a, b) { false }");
    assert_eq!(
        err.to_string(),
        "rules.rhai:3:4: function 'filter' takes 1 argument (event), found 2"
    );
}

#[test]
fn other_functions_and_correct_hooks_load() {
    let script = compile(
        "fn filter(event) { keep(event) }\nfn keep(e) { true }\nfn on_create(side, fields, item) { fields }\nfn unrelated(a, b, c, d) { a }",
    )
    .unwrap();
    assert_eq!(script.hooks(), ["filter", "on_create"]);
    assert!(!script.has_hook("to_jira"));
}

#[test]
fn a_syntax_error_gives_line_and_column() {
    let err = compile_err("fn to_jira(fields, item) {\n    fields.summary = \n}\n");
    assert_eq!(err.kind, ErrorKind::Syntax);
    assert_eq!((err.line, err.column), (Some(3), Some(1)));
    assert!(err.to_string().starts_with("rules.rhai:3:1: "), "{err}");
}

#[test]
fn a_misspelt_variable_fails_at_load_not_on_the_first_event() {
    let err = compile_err("fn to_jira(fields, item) {\n  feilds\n}");
    assert_eq!(
        err.to_string(),
        "rules.rhai:2:3: Undefined variable: feilds"
    );
}

#[test]
fn eval_is_refused() {
    let err = compile_err("fn to_jira(fields, item) {\n  eval(\"fields\")\n}");
    assert_eq!(
        err.to_string(),
        "rules.rhai:2:3: `eval` is not available in Tandem scripts"
    );
    // Nor can it be reached through a function pointer at run time.
    let script = compile("fn filter(event) { let f = Fn(\"eval\"); f.call(\"true\") }").unwrap();
    let err = script.filter(&event()).unwrap_err();
    assert!(err.message.contains("`eval` is not available"), "{err}");
}

#[test]
fn modules_and_the_clock_do_not_exist() {
    let err = compile_err("import \"secrets\" as s;\nfn filter(event) { true }");
    assert_eq!(err.kind, ErrorKind::Syntax);
    assert_eq!(err.line, Some(1));
    let script = compile("fn filter(event) { timestamp() }").unwrap();
    let err = script.filter(&event()).unwrap_err();
    assert!(
        err.message.contains("Function not found: timestamp"),
        "{err}"
    );
}

#[test]
fn sleep_is_refused() {
    let script = compile("fn filter(event) {\n  sleep(5);\n  true\n}").unwrap();
    let started = std::time::Instant::now();
    let err = script.filter(&event()).unwrap_err();
    assert!(started.elapsed().as_secs() < 1, "the script slept");
    assert_eq!(
        err.to_string(),
        "rules.rhai:2:3: filter: `sleep` is not available in Tandem scripts"
    );
    let script = compile("fn filter(event) { sleep(0.5); true }").unwrap();
    assert!(script.filter(&event()).is_err());
}

#[test]
fn literals_and_nesting_beyond_the_limits_fail_at_load() {
    let deep = format!(
        "fn filter(event) {{ {}1{} }}",
        "(".repeat(100),
        ")".repeat(100)
    );
    let err = compile_err(&deep);
    assert_eq!(err.kind, ErrorKind::Limit(Limit::ExprDepth));
    assert!(
        err.message
            .ends_with("exceeded the expression-depth limit (max_expr_depth = 64)"),
        "{err}"
    );
    let limits = ScriptLimits {
        max_string_size: 10,
        ..ScriptLimits::default()
    };
    let err = Script::compile(
        "rules.rhai",
        "fn filter(event) { \"a string longer than ten\" }",
        limits,
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Limit(Limit::StringSize), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let err = Script::load("/nonexistent/rules.rhai", ScriptLimits::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Read);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/rules.rhai: cannot read the script: "),
        "{err}"
    );
}

fn event() -> tandem_script::EventView {
    tandem_script::EventView {
        side: tandem_core::Side::Jira,
        id: "1".into(),
        key: None,
        kind: tandem_core::ChangeKind::Updated,
        origin: tandem_core::EventOrigin::Poll,
        fields: Default::default(),
    }
}
