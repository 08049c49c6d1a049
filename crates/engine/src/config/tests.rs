//! Tests of loading as a user meets it: whole files in, issues with file, line and key out.

use super::connection::normalize;
use super::storage::resolve_storage_url;
use super::*;
use std::path::Path;
use std::time::Duration;
use tandem_core::mapping::ConflictPolicy;

/// A complete, valid config with an inline mapping; tests change one thing at a time.
const VALID: &str = r#"
[server]
listen = "127.0.0.1:9000"
admin_token = "${ADMIN}"

[[connection]]
name = "seed"
poll_interval = "5m"

[[connection.field]]
jira = "summary"
external = "1001"

[[connection.field]]
jira = "duedate"
external = 1003
type = "date"

[connection.jira]
base_url = "https://example.atlassian.net"
email = "me@example.com"
api_token = "${JIRA_TOKEN}"
project = "TEST"

[connection.external]
type = "rest"
base_url = "https://ext.example.com"
auth = { type = "basic", username = "sync", password = "${EXT_PASSWORD}" }
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "ADMIN" => Some("admin-secret-value".into()),
        "JIRA_TOKEN" => Some("jira-secret-value".into()),
        "EXT_PASSWORD" => Some("ext-secret-value".into()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Config, ConfigError> {
    load_str(text, Path::new("/etc/tandem/tandem.toml"), env)
}

/// The single issue of a failing load.
fn one_issue(text: &str) -> ConfigIssue {
    let err = load(text).expect_err("config should be refused");
    assert_eq!(err.issues.len(), 1, "{err}");
    err.issues.into_iter().next().unwrap()
}

fn line_of(text: &str, needle: &str) -> usize {
    let offset = text.find(needle).expect("needle in text");
    text[..offset].matches('\n').count() + 1
}

#[test]
fn valid_config_loads_with_defaults_and_inline_mapping() {
    let c = load(VALID).unwrap();
    assert_eq!(c.server.listen.port(), 9000);
    assert_eq!(
        c.server.admin_token.as_ref().unwrap().expose(),
        "admin-secret-value"
    );
    assert_eq!(c.server.max_body_bytes, 1024 * 1024);
    assert_eq!(c.worker.max_attempts, 10);
    assert_eq!(c.storage.url, "sqlite:///etc/tandem/tandem.db");
    let conn = &c.connections[0];
    assert_eq!(conn.poll_interval, Duration::from_secs(300));
    assert_eq!(conn.conflict, ConflictPolicy::LaterWins);
    assert_eq!(conn.create, CreatePolicy::Both);
    assert_eq!(conn.jira.issue_type, "Task");
    assert_eq!(conn.jira.link_field, "External ID");
    assert_eq!(conn.fields.fields.len(), 2);
    assert_eq!(conn.fields.fields[1].external_field, "1003");
    assert_eq!(
        conn.fields.fields[1].location.line,
        line_of(VALID, "[[connection.field]]\njira = \"duedate\"")
    );
    match &conn.external {
        ExternalConfig::Rest(r) => {
            assert_eq!(r.format, RestFormat::Seed);
            assert!(
                matches!(&r.auth, RestAuth::Basic { password, .. } if password.expose() == "ext-secret-value")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn env_references_expand_and_double_dollar_escapes() {
    let e = |n: &str| (n == "A").then(|| "x\"y".to_string());
    assert_eq!(
        expand_env("${A}-$${A}-$5-${A}", &e).unwrap(),
        "x\"y-${A}-$5-x\"y"
    );
    let errs = expand_env("${B} ${C} ${1X} ${", &e).unwrap_err();
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs[0].contains("`B` is not set"));
    assert!(errs[1].contains("`C` is not set"));
    // A comment mentioning ${NOPE} is not a value and is left alone.
    let text = format!("# uses ${{NOPE}}\n{VALID}");
    assert!(load(&text).is_ok());
}

#[test]
fn missing_env_variables_are_all_named_with_line_and_key() {
    let text = VALID
        .replace("${JIRA_TOKEN}", "${JIRA_API_TOKEN}")
        .replace("${ADMIN}", "${TANDEM_ADMIN}");
    let err = load(&text).unwrap_err();
    assert_eq!(err.issues.len(), 2, "{err}");
    let admin = &err.issues[0];
    assert_eq!(admin.line, Some(line_of(&text, "admin_token")));
    assert_eq!(admin.key, "server.admin_token");
    assert!(admin.message.contains("`TANDEM_ADMIN` is not set"));
    let jira = &err.issues[1];
    assert_eq!(jira.line, Some(line_of(&text, "api_token")));
    assert_eq!(jira.key, "connection[0].jira.api_token");
    assert_eq!(
        jira.to_string(),
        format!(
            "/etc/tandem/tandem.toml:{}: connection[0].jira.api_token: environment variable `JIRA_API_TOKEN` is not set",
            jira.line.unwrap()
        )
    );
}

#[test]
fn unknown_keys_name_their_line_and_path_at_every_level() {
    let cases = [
        (
            "[server]\n",
            "[server]\nlisten_addr = \"x\"\n",
            "listen_addr",
            "server.listen_addr",
        ),
        (
            "\n[server]\n",
            "\nverbose = true\n[server]\n",
            "verbose",
            "verbose",
        ),
        (
            "poll_interval = \"5m\"\n",
            "poll_interval = \"5m\"\ntimeout = 3\n",
            "timeout",
            "connection[0].timeout",
        ),
        (
            "project = \"TEST\"\n",
            "project = \"TEST\"\nprojekt = \"X\"\n",
            "projekt",
            "connection[0].jira.projekt",
        ),
        // Inside an internally tagged enum (serde buffers these, losing spans).
        (
            "type = \"rest\"\n",
            "type = \"rest\"\nbase_uri = \"x\"\n",
            "base_uri",
            "connection[0].external.base_uri",
        ),
        (
            "username = \"sync\"",
            "username = \"sync\", user = \"x\"",
            "user = ",
            "connection[0].external.auth.user",
        ),
        (
            "external = \"1001\"\n",
            "external = \"1001\"\ndirektion = \"both\"\n",
            "direktion",
            "connection[0].field[0].direktion",
        ),
    ];
    for (from, to, needle, key) in cases {
        let text = VALID.replacen(from, to, 1);
        assert_ne!(text, VALID, "{from}");
        let issue = one_issue(&text);
        assert_eq!(issue.line, Some(line_of(&text, needle)), "{key}: {issue}");
        assert_eq!(issue.key, key, "{issue}");
        assert!(issue.message.contains("unknown field"), "{issue}");
    }
}

#[test]
fn missing_and_mistyped_values_point_at_their_table_or_value() {
    let text = VALID.replace("project = \"TEST\"\n", "");
    let issue = one_issue(&text);
    assert_eq!(issue.key, "connection[0].jira.project");
    assert_eq!(issue.line, Some(line_of(&text, "[connection.jira]")));
    assert!(issue.message.contains("missing field `project`"), "{issue}");

    let text = VALID.replace("\"5m\"", "\"5 minutes\"");
    let issue = one_issue(&text);
    assert_eq!(issue.key, "connection[0].poll_interval");
    assert_eq!(issue.line, Some(line_of(&text, "poll_interval")));

    let text = VALID.replace("type = \"rest\"", "type = \"soap\"");
    let issue = one_issue(&text);
    assert!(issue.message.contains("soap"), "{issue}");
    assert_eq!(issue.key, "connection[0].external.type");
    assert_eq!(
        issue.line,
        Some(line_of(&text, "type = \"soap\"")),
        "{issue}"
    );

    let text = VALID.replace("[server]\n", "[server]\nmax_body_bytes = \"big\"\n");
    let issue = one_issue(&text);
    assert_eq!(issue.key, "server.max_body_bytes");
    assert_eq!(issue.line, Some(line_of(&text, "max_body_bytes")));
}

#[test]
fn server_limits_have_safe_defaults_and_refuse_off_or_out_of_range() {
    let c = load(VALID).unwrap();
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.server.body_read_timeout, Duration::from_secs(30));
    assert_eq!(c.server.write_timeout, Duration::from_secs(30));
    assert_eq!(c.server.max_connections, 512);

    let text = VALID.replace(
        "[server]\n",
        "[server]\nheader_read_timeout = \"2s\"\nbody_read_timeout = \"1500ms\"\nwrite_timeout = \"1m\"\nmax_connections = 64\n",
    );
    let c = load(&text).unwrap();
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(2));
    assert_eq!(c.server.body_read_timeout, Duration::from_millis(1500));
    assert_eq!(c.server.write_timeout, Duration::from_secs(60));
    assert_eq!(c.server.max_connections, 64);

    for key in ["header_read_timeout", "body_read_timeout", "write_timeout"] {
        let text = VALID.replace("[server]\n", &format!("[server]\n{key} = \"0\"\n"));
        let issue = one_issue(&text);
        assert_eq!(issue.key, format!("server.{key}"));
        assert_eq!(issue.line, Some(line_of(&text, key)), "{issue}");
        assert!(issue.message.contains("longer than 0"), "{issue}");
    }
    let text = VALID.replace("[server]\n", "[server]\nbody_read_timeout = \"soon\"\n");
    let issue = one_issue(&text);
    assert_eq!(issue.key, "server.body_read_timeout");
    assert!(issue.message.contains("invalid duration `soon`"), "{issue}");
    for bad in ["0", "1000001"] {
        let text = VALID.replace(
            "[server]\n",
            &format!("[server]\nmax_connections = {bad}\n"),
        );
        let issue = one_issue(&text);
        assert_eq!(issue.key, "server.max_connections");
        assert_eq!(
            issue.line,
            Some(line_of(&text, "max_connections")),
            "{issue}"
        );
        assert!(issue.message.contains("expected 1 to 1000000"), "{issue}");
    }
}

#[test]
fn syntax_errors_have_a_line() {
    let text = VALID.replace("name = \"seed\"", "name = seed");
    let issue = one_issue(&text);
    assert_eq!(issue.line, Some(line_of(&text, "name = seed")), "{issue}");
}

#[test]
fn dynamic_webhooks_need_an_oauth_token_and_no_extra_jql() {
    let text = VALID.replace(
        "project = \"TEST\"\n",
        "project = \"TEST\"\ndynamic_webhook_url = \"https://sync.example.com\"\n",
    );
    let issue = one_issue(&text);
    assert_eq!(issue.key, "connection[0].jira.dynamic_webhook_url");
    assert_eq!(issue.line, Some(line_of(&text, "dynamic_webhook_url")));
    assert!(issue.to_string().contains("needs `oauth_token`"), "{issue}");

    // With an OAuth token instead of e-mail + API token, it loads.
    let oauth = text.replace(
        "email = \"me@example.com\"\napi_token = \"${JIRA_TOKEN}\"\n",
        "oauth_token = \"${JIRA_TOKEN}\"\n",
    );
    let c = load(&oauth).unwrap();
    assert_eq!(
        c.connections[0].jira.oauth_token.as_ref().unwrap().expose(),
        "jira-secret-value"
    );
    assert!(!format!("{c:?}").contains("jira-secret-value"));

    // Dynamic deliveries are unsigned: a secret would refuse them all.
    let signed = oauth.replace(
        "project = \"TEST\"\n",
        "project = \"TEST\"\nwebhook_secret = \"s\"\n",
    );
    let issue = one_issue(&signed);
    assert_eq!(issue.key, "connection[0].jira.webhook_secret");
    assert_eq!(issue.line, Some(line_of(&signed, "webhook_secret")));

    // Extra JQL cannot be expressed by a dynamic webhook's filter.
    let jql = oauth.replace(
        "[connection.jira]",
        "[connection.filter]\njql = \"labels = sync\"\n\n[connection.jira]",
    );
    let issue = one_issue(&jql);
    assert_eq!(issue.key, "connection[0].filter.jql");
    assert_eq!(issue.line, Some(line_of(&jql, "jql = ")));
}

#[test]
fn semantic_checks_collect_every_problem() {
    let text = VALID.replace("email = \"me@example.com\"\n", "").replace(
        "base_url = \"https://ext.example.com\"",
        "base_url = \"ext.example.com\"\nformat = \"custom\"",
    ) + "\n[[connection]]\nname = \"Seed!\"\nmapping = \"m.txt\"\n[connection.jira]\nbase_url = \"https://x\"\napi = \"datacenter\"\nproject = \"P\"\n[connection.external]\ntype = \"jira\"\nbase_url = \"https://y\"\napi = \"datacenter\"\npat = \"p\"\nproject = \"Q\"\n";
    let err = load(&text).unwrap_err();
    let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "connection[0].jira.email",
            "connection[0].external.operations",
            "connection[0].external.base_url",
            "connection[1].name",
            "connection[1].mapping",
            "connection[1].mapping",
            "connection[1].jira.pat",
        ],
        "{err}"
    );
    assert!(err.issues.iter().all(|i| i.line.is_some()), "{err}");
    assert_eq!(
        err.issues[0].line,
        Some(line_of(&text, "[connection.jira]"))
    );
    assert_eq!(err.issues[3].line, Some(line_of(&text, "name = \"Seed!\"")));
}

#[test]
fn request_timeout_defaults_to_30_s_and_must_be_shorter_than_the_lease() {
    let default = load(VALID).unwrap().worker;
    assert_eq!(default.request_timeout(), Duration::from_secs(30));
    let short_lease = format!("{VALID}\n[worker]\nlease_seconds = 20\n");
    assert_eq!(
        load(&short_lease).unwrap().worker.request_timeout(),
        Duration::from_secs(10),
        "half the lease when that is shorter"
    );
    let short = format!("{VALID}\n[worker]\nlease_seconds = 5\nrequest_timeout_ms = 500\n");
    assert_eq!(
        load(&short).unwrap().worker.request_timeout(),
        Duration::from_millis(500)
    );
    let long = format!("{VALID}\n[worker]\nlease_seconds = 5\nrequest_timeout_ms = 5000\n");
    let issue = one_issue(&long);
    assert_eq!(issue.key, "worker.request_timeout_ms");
    assert!(
        issue
            .message
            .contains("5000 ms is not shorter than the lease"),
        "{issue}"
    );
    let zero = format!("{VALID}\n[worker]\nrequest_timeout_ms = 0\n");
    assert_eq!(one_issue(&zero).key, "worker.request_timeout_ms");
}

#[test]
fn duplicate_names_and_missing_mapping_are_refused() {
    let second = VALID.split_once("[[connection]]").unwrap().1;
    let text = format!("{VALID}\n[[connection]]{second}");
    let issue = one_issue(&text);
    assert_eq!(issue.key, "connection[1].name");
    assert!(issue.message.contains("already used"), "{issue}");

    let text = VALID.replace("[[connection.field]]", "[[connection.nofield]]");
    assert!(one_issue(&text).message.contains("unknown field"));
    let no_fields = VALID
        .replace(
            "[[connection.field]]\njira = \"summary\"\nexternal = \"1001\"\n",
            "",
        )
        .replace(
            "[[connection.field]]\njira = \"duedate\"\nexternal = 1003\ntype = \"date\"\n",
            "",
        );
    let issue = one_issue(&no_fields);
    assert_eq!(issue.key, "connection[0]");
    assert!(issue.message.contains("no field mapping"), "{issue}");
}

#[test]
fn inline_mapping_errors_carry_the_config_file_and_line() {
    let text = VALID.replace(
        "type = \"date\"",
        "type = \"date\"\ndirection = \"sideways\"",
    );
    let issue = one_issue(&text);
    assert_eq!(issue.file, Path::new("/etc/tandem/tandem.toml"));
    assert_eq!(
        issue.line,
        Some(line_of(&text, "[[connection.field]]\njira = \"duedate\""))
    );
    assert!(
        issue.message.contains("unknown direction `sideways`"),
        "{issue}"
    );
}

#[test]
fn debug_of_a_config_never_shows_secrets() {
    let text = VALID.replace(
        "[server]",
        "[storage]\nurl = \"postgres://tandem:pg-secret-value@db:5432/tandem\"\n[server]",
    );
    let c = load(&text).unwrap();
    let debug = format!("{c:?}");
    for secret in [
        "admin-secret-value",
        "jira-secret-value",
        "ext-secret-value",
        "pg-secret-value",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
    assert!(
        debug.contains("postgres://tandem:***@db:5432/tandem"),
        "{debug}"
    );
    assert!(c.storage.is_postgres());
}

#[test]
fn mapping_paths_are_relative_to_the_config_and_tidied() {
    assert_eq!(
        normalize(Path::new("a/b/../../examples/./x.csv")),
        Path::new("examples/x.csv")
    );
    assert_eq!(normalize(Path::new("../x.csv")), Path::new("../x.csv"));
    assert_eq!(normalize(Path::new("./")), Path::new("."));
    let text = VALID
        .replace(
            "[[connection.field]]\njira = \"summary\"\nexternal = \"1001\"\n",
            "",
        )
        .replace(
            "[[connection.field]]\njira = \"duedate\"\nexternal = 1003\ntype = \"date\"\n",
            "mapping = \"../maps/m.csv\"\n",
        );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("conf")).unwrap();
    std::fs::create_dir_all(tmp.path().join("maps")).unwrap();
    std::fs::write(
        tmp.path().join("maps/m.csv"),
        "jiraField,externalField\nsummary,1\n",
    )
    .unwrap();
    let c = load_str(&text, &tmp.path().join("conf/tandem.toml"), env).unwrap();
    assert_eq!(
        c.connections[0].mapping,
        MappingSource::File(tmp.path().join("maps/m.csv"))
    );
    assert_eq!(c.connections[0].fields.fields.len(), 1);

    // A missing file is reported at its `mapping =` line.
    std::fs::remove_file(tmp.path().join("maps/m.csv")).unwrap();
    let err = load_str(&text, &tmp.path().join("conf/tandem.toml"), env).unwrap_err();
    assert_eq!(err.issues.len(), 1, "{err}");
    assert_eq!(err.issues[0].key, "connection[0].mapping");
    assert_eq!(err.issues[0].line, Some(line_of(&text, "mapping =")));
    assert!(err.issues[0].message.contains("not found"), "{err}");
}

#[test]
fn no_prefix_of_a_valid_file_makes_loading_panic() {
    // Every truncation yields some parse, schema or semantic error path; none may panic.
    for (i, _) in VALID.char_indices() {
        let _ = load(&VALID[..i]);
    }
    let _ = load("[connection]\nname = \"é\"\npoll_interval = \"5é\"");
}

#[test]
fn durations_and_storage_urls() {
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
    assert_eq!(parse_duration(" 1500ms "), Ok(Duration::from_millis(1500)));
    assert!(parse_duration("ms").is_err());
    assert!(parse_duration("-5ms").is_err());
    assert!(parse_duration("5 ms").is_err());
    assert!(parse_duration("99999999999999999999999ms").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("-5s").is_err());
    assert!(parse_duration("+5s").is_err());
    assert!(parse_duration("5é").is_err());
    assert!(parse_duration("é").is_err());
    assert!(parse_duration("99999999999999999999h").is_err());
    let dir = Path::new("/srv/t");
    assert_eq!(
        resolve_storage_url("sqlite://data/t.db?mode=rwc", dir).unwrap(),
        "sqlite:///srv/t/data/t.db?mode=rwc"
    );
    assert_eq!(
        resolve_storage_url("sqlite:///var/t.db", dir).unwrap(),
        "sqlite:///var/t.db"
    );
    assert_eq!(
        resolve_storage_url("sqlite::memory:", dir).unwrap(),
        "sqlite::memory:"
    );
    assert!(resolve_storage_url("mysql://x", dir).is_err());
}

#[test]
fn a_broken_expr_is_refused_at_its_mapping_line() {
    // In a CSV file: the row's line, the expression and where in it.
    let text = VALID
        .replace(
            "[[connection.field]]\njira = \"summary\"\nexternal = \"1001\"\n",
            "",
        )
        .replace(
            "[[connection.field]]\njira = \"duedate\"\nexternal = 1003\ntype = \"date\"\n",
            "mapping = \"m.csv\"\n",
        );
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("m.csv");
    let config = tmp.path().join("tandem.toml");
    std::fs::write(
        &csv,
        "jiraField,externalField,expr\nsummary,1,value.to_upper()\ndescription,2,value.trim(\n",
    )
    .unwrap();
    let err = load_str(&text, &config, env).unwrap_err();
    assert_eq!(err.issues.len(), 1, "{err}");
    let issue = &err.issues[0];
    assert_eq!(issue.file, csv);
    assert_eq!(issue.line, Some(3), "{err}");
    assert_eq!(issue.key, "expr");
    assert!(
        issue.message.contains("`value.trim(` does not compile"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("{}:3: expr: ", csv.display())),
        "{err}"
    );

    // Fixed, it loads, and the expression is compiled for its entry only.
    std::fs::write(
        &csv,
        "jiraField,externalField,expr\nsummary,1,value.to_upper()\ndescription,2,\n",
    )
    .unwrap();
    let c = load_str(&text, &config, env).unwrap();
    let exprs = &c.connections[0].exprs;
    assert_eq!(exprs.keys().collect::<Vec<_>>(), ["summary|1"]);
    assert_eq!(exprs["summary|1"].source(), "value.to_upper()");

    // Inline: the `[[connection.field]]` table's line in the config file; an unknown
    // variable is a compile error too.
    let text = VALID.replace("type = \"date\"", "type = \"date\"\nexpr = \"valeu\"");
    let issue = one_issue(&text);
    assert_eq!(issue.file, Path::new("/etc/tandem/tandem.toml"));
    assert_eq!(
        issue.line,
        Some(line_of(&text, "[[connection.field]]\njira = \"duedate\""))
    );
    assert!(
        issue.message.contains("`valeu` does not compile"),
        "{issue}"
    );
}

#[test]
fn console_users_expand_their_tokens_and_are_checked() {
    let with_users = |users: &str| {
        VALID.replace(
            "admin_token = \"${ADMIN}\"",
            &format!("admin_token = \"${{ADMIN}}\"\nconsole_users = [{users}]"),
        )
    };
    let c = load(&with_users(
        r#"{ name = "alice", token = "${JIRA_TOKEN}-long-enough" }, { name = "bob.s-2_x", token = "0123456789abcdef" }"#,
    ))
    .unwrap();
    let users = &c.server.console_users;
    assert_eq!(users.len(), 2);
    assert_eq!(users[0].name, "alice");
    assert_eq!(users[0].token.expose(), "jira-secret-value-long-enough");
    assert!(!format!("{c:?}").contains("jira-secret-value-long-enough"));

    for (users, key, says) in [
        (
            r#"{ name = "Alice", token = "0123456789abcdef" }"#,
            "server.console_users[0].name",
            "not a valid user name",
        ),
        (
            r#"{ name = "alice", token = "0123456789abcdef" }, { name = "alice", token = "0123456789abcdeg" }"#,
            "server.console_users[1].name",
            "named twice",
        ),
        (
            r#"{ name = "admin", token = "0123456789abcdef" }"#,
            "server.console_users[0].name",
            "server.admin_token",
        ),
        (
            r#"{ name = "alice", token = "short" }"#,
            "server.console_users[0].token",
            "at least 16 characters",
        ),
        (
            r#"{ name = "alice", token = "0123456789abcdef" }, { name = "bob", token = "0123456789abcdef" }"#,
            "server.console_users[1].token",
            "a token of their own",
        ),
    ] {
        let text = with_users(users);
        let issue = one_issue(&text);
        assert_eq!(issue.key, key, "{issue}");
        assert!(issue.message.contains(says), "{issue}");
        assert_eq!(issue.line, Some(line_of(&text, "console_users")), "{issue}");
        assert!(!issue.to_string().contains("0123456789abcdef"), "{issue}");
    }
}
