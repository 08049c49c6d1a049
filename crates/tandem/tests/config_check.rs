//! `tandem check` as a user runs it: the built binary, the shipped examples and a set of broken
//! configs, asserting exit codes and the `file:line: ...` messages people act on; offline, and
//! online against the sandboxes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root: commands run from there, as the README shows them.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn fixture(name: &str) -> String {
    format!("crates/tandem/tests/fixtures/{name}")
}

/// Runs `tandem check --offline --config <config>` from the workspace root with a clean
/// environment for the variables the fixtures use.
fn check(config: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.current_dir(root())
        .args(["check", "--offline", "--config", config])
        .env_remove("TANDEM_TEST_UNSET_JIRA_TOKEN")
        .env_remove("TANDEM_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run tandem")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The 1-based line of the first line of `file` containing `needle`.
fn line_of(file: &str, needle: &str) -> usize {
    let content = std::fs::read_to_string(root().join(file)).expect("read fixture");
    content
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in {file}"))
        + 1
}

#[test]
fn the_seed_example_is_valid_on_a_fresh_machine() {
    let out = check("examples/seed/tandem.toml", &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with(
            "OK examples/seed/tandem.toml: 1 connection (seed: 4 fields, jira cloud ↔ rest seed); storage sqlite://"
        ),
        "{stdout}"
    );
    // The database lives next to the config, wherever the command is run from.
    assert!(stdout.contains("examples/seed/tandem.db"), "{stdout}");
    // Secrets are never printed.
    for secret in [
        "sandbox-api-token",
        "external-secret",
        "sandbox-webhook-token",
    ] {
        assert!(!stdout.contains(secret), "{secret} printed: {stdout}");
    }
}

#[test]
fn the_env_example_is_valid_once_its_variables_are_set() {
    let vars = [
        ("TANDEM_ADMIN_TOKEN", "a"),
        (
            "TANDEM_STORAGE_URL",
            "postgres://tandem:pg-password@db:5432/tandem",
        ),
        ("JIRA_BASE_URL", "https://example.atlassian.net"),
        ("JIRA_EMAIL", "me@example.com"),
        ("JIRA_API_TOKEN", "t"),
        ("JIRA_WEBHOOK_SECRET", "s"),
        ("EXT_BASE_URL", "https://www.myExternalSystem.com"),
        ("EXT_USERNAME", "sync"),
        ("EXT_PASSWORD", "p"),
        ("EXT_WEBHOOK_TOKEN", "w"),
    ];
    let out = check("examples/seed/tandem.env.toml", &vars);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("storage postgres://tandem:***@db:5432/tandem"),
        "{stdout}"
    );
    assert!(!stdout.contains("pg-password"), "{stdout}");
}

#[test]
fn the_seeds_own_mapping_is_refused_at_its_csv_line() {
    let out = check(&fixture("seed-ambiguous.toml"), &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The second Jira field routed to 123456789 is where the ambiguity starts.
    let line = line_of("examples/seed/fieldMappings.seed.csv", "description,");
    let expected = format!(
        "fieldMappings.seed.csv:{line}: external field 123456789 is fed by several Jira fields in the to_jira direction"
    );
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in:\n{stderr}"
    );
}

#[test]
fn a_missing_environment_variable_is_named_with_file_line_and_key() {
    let file = fixture("missing-env.toml");
    let out = check(&file, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = line_of(&file, "api_token =");
    let expected = format!(
        "{file}:{line}: connection[0].jira.api_token: environment variable `TANDEM_TEST_UNSET_JIRA_TOKEN` is not set"
    );
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in:\n{stderr}"
    );

    // Set, it passes.
    let out = check(&file, &[("TANDEM_TEST_UNSET_JIRA_TOKEN", "x")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn an_unknown_key_is_an_error_at_its_line() {
    let file = fixture("unknown-key.toml");
    let out = check(&file, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = line_of(&file, "api_tokn =");
    let expected = format!("{file}:{line}: connection[0].jira.api_tokn: unknown field `api_tokn`");
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in:\n{stderr}"
    );
}

#[test]
fn an_unknown_key_is_placed_in_the_table_that_cannot_hold_it() {
    // `name` is a valid key of `auth` (a header's name) but not of a field entry.
    let file = fixture("unknown-field-key.toml");
    let out = check(&file, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = line_of(&file, "name = \"1001\"");
    let expected =
        format!("{file}:{line}: connection[0].external.fields[0].name: unknown field `name`");
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in:\n{stderr}"
    );
}

#[test]
fn an_unknown_direction_is_an_error_at_its_mapping_line() {
    let out = check(&fixture("bad-direction.toml"), &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let csv = fixture("bad-direction.csv");
    let line = line_of(&csv, "sideways");
    let expected = format!("bad-direction.csv:{line}: unknown direction `sideways`");
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in:\n{stderr}"
    );
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let out = check("no/such/tandem.toml", &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no/such/tandem.toml: cannot read"),
        "{stderr}"
    );
}

#[test]
fn broken_pointers_paths_and_since_forms_are_refused_at_their_lines() {
    let file = fixture("bad-pointers.toml");
    let out = check(&file, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let at = "connection[0].external";
    for (needle, key, message) in [
        (
            "read = \"/priority~2id\"",
            format!("{at}.fields[1].read"),
            "`/priority~2id` is not a JSON Pointer: `~2` is not an escape",
        ),
        (
            "read = \"$.custom_fields",
            format!("{at}.fields[2].read"),
            "invalid JSONPath",
        ),
        (
            "id_pointer = \"/id~\"",
            format!("{at}.operations.list_changed.id_pointer"),
            "`/id~` is not a JSON Pointer: `~` is not an escape",
        ),
        (
            "since_format",
            format!("{at}.operations.list_changed.since_format"),
            "`iso8601` is not a since_format",
        ),
        (
            "since_overlap",
            format!("{at}.operations.list_changed.since_overlap"),
            "invalid duration `5 seconds`",
        ),
    ] {
        let expected = format!("{file}:{}: {key}: {message}", line_of(&file, needle));
        assert!(
            stderr.contains(&expected),
            "expected `{expected}` in:\n{stderr}"
        );
    }
}

/// Runs `tandem check --config <path>` (online) and returns (exit code, stdout).
async fn check_online(path: &Path) -> (Option<i32>, String) {
    let path = path.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["check", "--config"])
            .arg(&path)
            .env_remove("TANDEM_CONFIG")
            .output()
            .expect("run tandem")
    })
    .await
    .expect("join");
    (
        out.status.code(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_check_reads_a_real_item_and_names_each_pointer_that_finds_nothing() {
    let w = common::world(common::Options {
        external: Some(common::REDMINE.into()),
        serve: false,
        ..common::Options::default()
    })
    .await;
    w.external.user_create(vec![
        (1001, "Printer on fire".into()),
        (1002, "It smokes".into()),
        (1003, "2026-12-31".into()),
        (1004, "ACME-1".into()),
    ]);
    let path = w.config_path();
    let good = std::fs::read_to_string(&path).expect("config");

    // As configured, every pointer finds what it should.
    let (code, out) = check_online(&path).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("all systems reachable"), "{out}");

    let shown = path.display().to_string();
    let at = "connection[0].external";
    for (wrong, right, key, message) in [
        (
            "item_pointer = \"/isue\"",
            "item_pointer = \"/issue\"",
            "operations.fetch.item_pointer",
            "`/isue` finds nothing in the answer for item `1` (it has: issue)",
        ),
        (
            "id_pointer = \"/idd\"",
            "id_pointer = \"/id\"",
            "operations.list_changed.id_pointer",
            "`/idd` finds no id in the first listed item (it has: custom_fields, id,",
        ),
        (
            "updated_pointer = \"/updated\"\nsince_format",
            "updated_pointer = \"/updated_on\"\nsince_format",
            "operations.list_changed.updated_pointer",
            "`/updated` finds nothing in the item",
        ),
        (
            "read = \"$.custom_fields[?(@.id==1003)].valeu\"",
            "read = \"$.custom_fields[?(@.id==1003)].value\"",
            "fields[2].read",
            "field `1003`: `$.custom_fields[?(@.id==1003)].valeu` finds nothing in the 2 items read",
        ),
    ] {
        let broken = good.replacen(right, wrong, 1);
        assert_ne!(broken, good, "{right} not in the config");
        std::fs::write(&path, &broken).expect("write");
        let line = broken
            .lines()
            .position(|l| l.contains(wrong.lines().next().unwrap_or(wrong)))
            .expect("line")
            + 1;
        // Offline, the pointer is valid syntax: only reading a real item shows it is wrong.
        let offline = check(&shown, &[]);
        assert_eq!(offline.status.code(), Some(0), "{}", text(&offline.stderr));
        let (code, out) = check_online(&path).await;
        assert_eq!(code, Some(1), "{out}");
        let expected = format!("PROBLEM: {shown}:{line}: {at}.{key}: {message}");
        assert!(out.contains(&expected), "expected `{expected}` in:\n{out}");
    }
    std::fs::write(&path, &good).expect("write");
    w.stop().await;
}
