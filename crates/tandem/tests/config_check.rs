//! `tandem check --offline` as a user runs it: the built binary, the shipped examples and a set
//! of broken configs, asserting exit codes and the `file:line: ...` messages people act on.

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
    ] {
        let expected = format!("{file}:{}: {key}: {message}", line_of(&file, needle));
        assert!(
            stderr.contains(&expected),
            "expected `{expected}` in:\n{stderr}"
        );
    }
}
