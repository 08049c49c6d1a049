//! `tandem init` as a new user runs it: the built binary against the Jira and external
//! sandboxes on loopback ports, with `--yes` and flags as a script would, and answered line
//! by line on stdin as a person would. What it writes must pass `tandem check` (online, once
//! the variables it names are set); each failed live check says what failed, the URL and
//! the status; and nothing is overwritten without `--force`.

use std::path::Path;
use std::process::{Output, Stdio};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

struct Sandboxes {
    jira: JiraSandbox,
    external: ExternalSandbox,
}

async fn sandboxes() -> Sandboxes {
    let jira = JiraSandbox::start(JiraSandboxConfig {
        projects: vec![
            ("TEST".into(), "Test".into()),
            ("OTHER".into(), "Other".into()),
        ],
        ..JiraSandboxConfig::default()
    })
    .await
    .unwrap();
    let external = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .unwrap();
    Sandboxes { jira, external }
}

/// The sandboxes' credentials, in the variables the config names, and placeholders for
/// the secrets Tandem makes up no value for.
const ENV: &[(&str, &str)] = &[
    ("JIRA_API_TOKEN", "sandbox-api-token"),
    ("EXT_PASSWORD", "external-secret"),
];
const LATER_ENV: &[(&str, &str)] = &[
    ("JIRA_WEBHOOK_SECRET", "jira-hook-secret"),
    ("EXT_WEBHOOK_TOKEN", "ext-hook-token"),
    ("EXT_JIRA_WEBHOOK_SECRET", "other-hook-secret"),
    ("TANDEM_ADMIN_TOKEN", "admin-token"),
];

fn tandem(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    for (k, _) in ENV.iter().chain(LATER_ENV) {
        cmd.env_remove(k);
    }
    cmd.env_remove("TANDEM_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

async fn init(args: &[&str], env: &[(&str, &str)]) -> Output {
    tandem(env).arg("init").args(args).output().await.unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn yes_args<'a>(dir: &'a str, urls: &'a (String, String)) -> Vec<&'a str> {
    vec![
        "--yes",
        "--dir",
        dir,
        "--jira-url",
        &urls.0,
        "--jira-email",
        "tandem@example.com",
        "--jira-project",
        "TEST",
        "--external",
        "seed",
        "--external-url",
        &urls.1,
        "--external-username",
        "external",
        "--public-url",
        "https://tandem.example.com",
    ]
}

/// `tandem check --config F` (online) with every variable set.
async fn check(config: &Path, extra: &[(&str, &str)]) -> Output {
    let env: Vec<(&str, &str)> = ENV.iter().chain(LATER_ENV).chain(extra).copied().collect();
    tandem(&env)
        .args(["check", "--config"])
        .arg(config)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yes_mode_writes_files_that_pass_check_against_the_live_systems() {
    let sb = sandboxes().await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("conf");
    let out_dir_s = out_dir.display().to_string();
    let urls = (sb.jira.url(), sb.external.url());
    let out = init(&yes_args(&out_dir_s, &urls), ENV).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    // The live checks were made and said what they found.
    assert!(
        stdout
            .contains("signed in as Tandem Integration <tandem@example.com>; project TEST (Test)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("credentials of `external` accepted"),
        "{stdout}"
    );
    let log = sb.jira.request_log();
    for path in [
        "/rest/api/3/myself",
        "/rest/api/3/project/TEST",
        "/rest/api/3/field",
    ] {
        assert!(log.iter().any(|r| r.path == path), "{path} not called");
    }

    let toml = std::fs::read_to_string(out_dir.join("tandem.toml")).unwrap();
    let csv = std::fs::read_to_string(out_dir.join("fieldMappings.csv")).unwrap();
    let env_example = std::fs::read_to_string(out_dir.join(".env.example")).unwrap();
    // Secrets are references, never values.
    for (name, value) in ENV {
        assert!(
            toml.contains(&format!("\"${{{name}}}\"")),
            "{name} not referenced:\n{toml}"
        );
        for file in [&toml, &csv, &env_example] {
            assert!(!file.contains(value), "{value} written in clear:\n{file}");
        }
        assert!(
            env_example.contains(&format!("\n{name}=\n")),
            "{env_example}"
        );
    }
    for (name, _) in &LATER_ENV[..2] {
        assert!(
            env_example.contains(&format!("\n{name}=\n")),
            "{env_example}"
        );
    }
    assert!(toml.contains("issue_type = \"Task\""), "{toml}");
    // The mapping matched the seed's fields with the project's by name and kind; the link
    // field (External ID) is not in it.
    for row in [
        "summary,1001,both,text",
        "description,1002,both,richtext",
        "duedate,1003,both,date",
        "customfield_123456,1004,both,text",
    ] {
        assert!(csv.lines().any(|l| l == row), "no `{row}` in:\n{csv}");
    }
    assert!(!csv.contains("customfield_10050"), "{csv}");

    // The same validation as `tandem check`, then the next two commands.
    let config = out_dir.join("tandem.toml");
    assert!(
        stdout.contains(&format!(
            "OK {}: 1 connection (test: 4 fields, jira cloud ↔ rest seed)",
            config.display()
        )),
        "{stdout}"
    );
    let next = stdout.split("\nNext:\n").nth(1).expect("a Next: section");
    let commands: Vec<&str> = next
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        [
            format!(
                "tandem jira webhook register --config {} --connection test --url https://tandem.example.com/webhooks/test/jira",
                config.display()
            ),
            format!("tandem serve --config {}", config.display()),
        ]
    );

    let checked = check(&config, &[]).await;
    let check_out = text(&checked.stdout);
    assert_eq!(
        checked.status.code(),
        Some(0),
        "{check_out}{}",
        text(&checked.stderr)
    );
    assert!(
        check_out.contains("all systems reachable, credentials valid, fields resolved"),
        "{check_out}"
    );
    assert!(
        check_out.contains("link field → customfield_10050 (External ID)"),
        "{check_out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_center_and_jira_to_jira_with_named_token_variables() {
    let sb = sandboxes().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let url = sb.jira.url();
    let env = [("MY_PAT", "sandbox-pat"), ("OTHER_PAT", "sandbox-pat")];
    let out = init(
        &[
            "--yes",
            "--dir",
            &d,
            "--jira-url",
            &url,
            "--jira-flavour",
            "datacenter",
            "--jira-token-env",
            "MY_PAT",
            "--jira-project",
            "TEST",
            "--external",
            "jira",
            "--external-url",
            &url,
            "--external-flavour",
            "datacenter",
            "--external-token-env",
            "OTHER_PAT",
            "--external-project",
            "OTHER",
            "--name",
            "two",
        ],
        &env,
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let toml = std::fs::read_to_string(dir.path().join("tandem.toml")).unwrap();
    assert!(toml.contains("pat = \"${MY_PAT}\""), "{toml}");
    assert!(toml.contains("pat = \"${OTHER_PAT}\""), "{toml}");
    assert!(toml.contains("api = \"datacenter\""), "{toml}");
    assert!(!toml.contains("email"), "{toml}");
    assert!(!toml.contains("sandbox-pat"), "{toml}");
    assert!(
        sb.jira
            .request_log()
            .iter()
            .any(|r| r.path == "/rest/api/2/project/OTHER")
    );
    let csv = std::fs::read_to_string(dir.path().join("fieldMappings.csv")).unwrap();
    assert!(
        csv.lines().any(|l| l == "summary,summary,both,text"),
        "{csv}"
    );
    let checked = check(&dir.path().join("tandem.toml"), &env).await;
    assert_eq!(
        checked.status.code(),
        Some(0),
        "{}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
}

/// One failed check: the environment, flags replaced in [`yes_args`], the expected error.
type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<(&'a str, String)>, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failed_live_check_says_what_the_url_and_the_status_and_writes_nothing() {
    let sb = sandboxes().await;
    let urls = (sb.jira.url(), sb.external.url());
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let cases: Vec<Case> = vec![
        (
            vec![
                ("JIRA_API_TOKEN", "wrong"),
                ("EXT_PASSWORD", "external-secret"),
            ],
            vec![],
            format!(
                "error: Jira credentials check failed: GET {}/rest/api/3/myself answered 401",
                urls.0
            ),
        ),
        (
            ENV.to_vec(),
            vec![("--jira-project", "NOPE".into())],
            format!(
                "error: Jira project check for `NOPE` failed: GET {}/rest/api/3/project/NOPE answered 404: No project could be found with key 'NOPE'",
                urls.0
            ),
        ),
        (
            ENV.to_vec(),
            vec![("--jira-url", closed.clone())],
            format!(
                "error: Jira credentials check failed: GET {closed}/rest/api/3/myself got no answer"
            ),
        ),
        (
            vec![
                ("JIRA_API_TOKEN", "sandbox-api-token"),
                ("EXT_PASSWORD", "wrong"),
            ],
            vec![],
            format!(
                "error: external system check failed: GET {}/API/issues?updatedSince=",
                urls.1
            ),
        ),
        (
            ENV.to_vec(),
            vec![("--external-url", closed.clone())],
            format!("error: external system check failed: GET {closed}/API/issues"),
        ),
        (
            vec![("EXT_PASSWORD", "external-secret")],
            vec![],
            "the environment variable JIRA_API_TOKEN is not set".to_string(),
        ),
    ];
    for (env, overrides, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let mut args: Vec<String> = yes_args(&d, &urls).iter().map(|s| s.to_string()).collect();
        for (flag, value) in &overrides {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1] = value.clone();
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = init(&args, &env).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{expected}\n{stderr}");
        assert!(
            stderr.contains(&expected),
            "expected `{expected}` in:\n{stderr}"
        );
        assert!(stderr.contains("nothing was written"), "{stderr}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "files written"
        );
    }
    // Wrong credentials for the external system also name the status and the user.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let out = init(
        &yes_args(&d, &urls),
        &[
            ("JIRA_API_TOKEN", "sandbox-api-token"),
            ("EXT_PASSWORD", "wrong"),
        ],
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(stderr.contains("answered 401"), "{stderr}");
    assert!(
        stderr.contains("the user `external` with the password in $EXT_PASSWORD"),
        "{stderr}"
    );
    // A missing answer in --yes mode is a usage error naming the flag.
    let out = init(&["--yes", "--dir", &d], ENV).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--yes needs --jira-url"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_files_are_kept_unless_forced() {
    let sb = sandboxes().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let urls = (sb.jira.url(), sb.external.url());
    let mapping = dir.path().join("fieldMappings.csv");
    std::fs::write(&mapping, "jiraField,externalField\nsummary,9\n").unwrap();
    let out = init(&yes_args(&d, &urls), ENV).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} already exists; nothing was written. Pass --force",
            mapping.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&mapping).unwrap(),
        "jiraField,externalField\nsummary,9\n"
    );
    assert!(!dir.path().join("tandem.toml").exists());
    // Nothing was asked or contacted before refusing.
    assert!(sb.jira.request_log().is_empty());

    let mut args = yes_args(&d, &urls);
    args.push("--force");
    let out = init(&args, ENV).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let csv = std::fs::read_to_string(&mapping).unwrap();
    assert!(csv.contains("summary,1001,both,text"), "{csv}");
    // No staging folder is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_answers_on_stdin_with_a_retry_and_an_edited_mapping() {
    let sb = sandboxes().await;
    let dir = tempfile::tempdir().unwrap();
    let jira = sb.jira.url();
    let external = sb.external.url();
    // Each line answers one question, in order; empty lines take the default.
    let answers = [
        jira.as_str(),        // Jira base URL
        "",                   // flavour [cloud]
        "tandem@example.com", // e-mail
        "",                   // token variable [JIRA_API_TOKEN]
        "NOPE",               // project key: not there
        "y",                  // answer again
        "",                   // base URL [as before]
        "",                   // flavour
        "",                   // e-mail [as before]
        "",                   // token variable
        "TEST",               // project key
        "Bug",                // issue type
        "",                   // other system [seed]
        external.as_str(),    // its base URL
        "external",           // user name
        "",                   // password variable [EXT_PASSWORD]
        "n",                  // not this mapping
        "4",                  // drop row 4 (Customer Reference)
        "summary,1001",       // already mapped: refused, asked again
        "labels,1004,labels", // a row of one's own
        "-",                  // done
        "mysync",             // connection name
        "",                   // listen [127.0.0.1:8080]
        "",                   // public URL
    ];
    let mut child = tandem(ENV)
        .args(["init", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{}\n", answers.join("\n")).as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    // The failed check was shown with its URL and status, then the questions came again.
    assert!(
        stdout.contains(&format!(
            "PROBLEM: Jira project check for `NOPE` failed: GET {jira}/rest/api/3/project/NOPE answered 404"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Jira base URL [{jira}]: ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("Issue type of new issues (Task, Bug, Story) [Task]: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("summary ↔ 1001 is mapped already"),
        "{stdout}"
    );
    let toml = std::fs::read_to_string(dir.path().join("tandem.toml")).unwrap();
    assert!(toml.contains("name = \"mysync\""), "{toml}");
    assert!(toml.contains("issue_type = \"Bug\""), "{toml}");
    let csv = std::fs::read_to_string(dir.path().join("fieldMappings.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        rows,
        [
            "jiraField,externalField,direction,type",
            "summary,1001,both,text",
            "description,1002,both,richtext",
            "duedate,1003,both,date",
            "labels,1004,both,labels",
        ]
    );
    let checked = check(&dir.path().join("tandem.toml"), &[]).await;
    assert_eq!(
        checked.status.code(),
        Some(0),
        "{}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );

    // Input that ends early names the question left unanswered and writes nothing.
    let dir = tempfile::tempdir().unwrap();
    let mut child = tandem(ENV)
        .args(["init", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{jira}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the input ended before this question was answered: Jira flavour"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_with_named_fields_contacts_nothing_and_passes_the_offline_check() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // Nothing listens at these addresses, and no variable is set: --offline needs neither.
    let out = init(
        &[
            "--yes",
            "--offline",
            "--dir",
            &d,
            "--jira-url",
            "https://example.atlassian.net",
            "--jira-email",
            "me@example.com",
            "--jira-project",
            "OPS",
            "--external-url",
            "https://tracker.example.com",
            "--external-username",
            "sync",
            "--external-field",
            "2001=Subject:text",
            "--external-field",
            "2002=Deadline:date",
            "--external-field",
            "2003=Colour:option",
        ],
        &[],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let csv = std::fs::read_to_string(dir.path().join("fieldMappings.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        rows,
        [
            "jiraField,externalField,direction,type",
            "summary,2001,both,text",
            "duedate,2002,both,date",
        ]
    );
    let toml = std::fs::read_to_string(dir.path().join("tandem.toml")).unwrap();
    assert!(toml.contains("name = \"ops\""), "{toml}");
    let env: Vec<(&str, &str)> = ENV.iter().chain(LATER_ENV).copied().collect();
    let checked = tandem(&env)
        .args(["check", "--offline", "--config"])
        .arg(dir.path().join("tandem.toml"))
        .output()
        .await
        .unwrap();
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));
    // A malformed field is a usage error naming the flag.
    let out = init(
        &[
            "--yes",
            "--offline",
            "--force",
            "--dir",
            &d,
            "--jira-url",
            "https://x.example",
            "--jira-email",
            "me@example.com",
            "--jira-project",
            "OPS",
            "--external-url",
            "https://y.example",
            "--external-username",
            "sync",
            "--external-field",
            "2001",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--external-field `2001`: expected ID=NAME[:TYPE]"),
        "{}",
        text(&out.stderr)
    );
}

/// The same questions on a real terminal: `script` runs `tandem init` on a pseudo-terminal
/// and types the answers into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_on_a_pseudo_terminal() {
    let has_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_script {
        eprintln!(
            "NOTE: `script` (util-linux) is not installed; the pseudo-terminal run is skipped"
        );
        return;
    }
    let sb = sandboxes().await;
    let dir = tempfile::tempdir().unwrap();
    let command = format!(
        "{} init --dir {}",
        env!("CARGO_BIN_EXE_tandem"),
        dir.path().display()
    );
    let answers = [
        sb.jira.url(),
        String::new(),
        "tandem@example.com".into(),
        String::new(),
        "TEST".into(),
        String::new(),
        String::new(),
        sb.external.url(),
        "external".into(),
        String::new(),
        String::new(),
        "ptysync".into(),
        String::new(),
        String::new(),
    ];
    let mut cmd = Command::new("script");
    for (k, _) in ENV.iter().chain(LATER_ENV) {
        cmd.env_remove(k);
    }
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    let mut script = cmd
        .args(["-qec", &command, "/dev/null"])
        // The answers stay open until it is done (no early end of input); a run that asks
        // more than expected times out below and is killed.
        .kill_on_drop(true)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = script.stdin.take().unwrap();
    stdin
        .write_all(format!("{}\n", answers.join("\n")).as_bytes())
        .await
        .unwrap();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        script.wait_with_output(),
    )
    .await
    .expect("tandem init on a terminal finished")
    .unwrap();
    drop(stdin);
    let screen = text(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(screen.contains("Use this mapping? [Y/n]: "), "{screen}");
    assert!(screen.contains("  tandem serve --config "), "{screen}");
    let toml = std::fs::read_to_string(dir.path().join("tandem.toml")).unwrap();
    assert!(toml.contains("name = \"ptysync\""), "{toml}");
    let checked = check(&dir.path().join("tandem.toml"), &[]).await;
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stdout));
}
