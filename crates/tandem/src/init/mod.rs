//! `tandem init`: from nothing to a working configuration in a few answers.
//!
//! It asks for the Jira site, its flavour, credentials (as the names of the environment
//! variables holding them), the project and the other system, checking each answer against
//! the live systems as it goes ([`jira_probe`], [`external`]); proposes a field mapping from
//! the two field lists ([`mapping_proposal`]) for the person to confirm or edit; writes
//! `tandem.toml`, `fieldMappings.csv` and `.env.example` (secrets only ever as `${ENV}`
//! references, values never written); validates what it wrote exactly as `tandem check`
//! does; and prints the next two commands.
//!
//! The questions are asked on stdin/stdout ([`prompts`]); with `--yes` every answer comes
//! from a flag (or its default) and nothing is asked, for scripts. Files that exist are never
//! overwritten without `--force`, and that is checked before the first question.

pub mod external;
pub mod jira_probe;
pub mod mapping_proposal;
pub mod prompts;

use clap::Args;
use jira_probe::{Credentials, FieldInfo, Flavour, ProbeError, Site};
use mapping_proposal::Pair;
use prompts::Prompter;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use tandem_core::mapping::FieldType;

/// `tandem init [--yes] [flags]`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Ask nothing: take every answer from the flags below (or their defaults).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Overwrite tandem.toml, fieldMappings.csv and .env.example if they exist.
    #[arg(long)]
    pub force: bool,
    /// Skip the live checks (nothing is contacted; the mapping uses Jira's standard fields).
    #[arg(long)]
    pub offline: bool,
    /// Where to write the files.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Connection name, used in webhook URLs (default: the project key in lower case).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Tandem's listen address (`[server] listen`).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Tandem's public base URL, where the systems send webhooks (default: http://LISTEN).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,

    /// Jira base URL, e.g. https://example.atlassian.net.
    #[arg(long, value_name = "URL")]
    pub jira_url: Option<String>,
    /// `cloud` (REST v3, e-mail + API token) or `datacenter` (REST v2, personal access token).
    #[arg(long, value_name = "FLAVOUR", default_value = "cloud")]
    pub jira_flavour: String,
    /// The Jira account's e-mail (cloud).
    #[arg(long, value_name = "EMAIL")]
    pub jira_email: Option<String>,
    /// The environment variable holding the API token (cloud; default JIRA_API_TOKEN) or the
    /// personal access token (datacenter; default JIRA_PAT).
    #[arg(long, value_name = "VAR")]
    pub jira_token_env: Option<String>,
    /// The Jira project key, e.g. TEST.
    #[arg(long, value_name = "KEY")]
    pub jira_project: Option<String>,
    /// Issue type of new Jira issues (default: Task if the project has it).
    #[arg(long, value_name = "TYPE")]
    pub jira_issue_type: Option<String>,

    /// The other system: `seed` (the seed's _externalData REST API) or `jira` (another Jira
    /// site or project).
    #[arg(long, value_name = "SYSTEM", default_value = "seed")]
    pub external: String,
    /// The other system's base URL.
    #[arg(long, value_name = "URL")]
    pub external_url: Option<String>,
    /// `seed`: the Basic-auth user name.
    #[arg(long, value_name = "USER")]
    pub external_username: Option<String>,
    /// `seed`: the environment variable holding the password (default EXT_PASSWORD).
    #[arg(long, value_name = "VAR")]
    pub external_password_env: Option<String>,
    /// `seed`: one of the system's fields as ID=NAME[:TYPE] (repeatable; default: the seed
    /// example's fields 1001 Title, 1002 Description, 1003 Due date, 1004 Customer Reference).
    #[arg(long, value_name = "ID=NAME[:TYPE]")]
    pub external_field: Vec<String>,
    /// `jira`: the other site's flavour.
    #[arg(long, value_name = "FLAVOUR", default_value = "cloud")]
    pub external_flavour: String,
    /// `jira`: the other site's account e-mail (cloud).
    #[arg(long, value_name = "EMAIL")]
    pub external_email: Option<String>,
    /// `jira`: the environment variable holding the other site's token (default
    /// EXT_JIRA_API_TOKEN, or EXT_JIRA_PAT for datacenter).
    #[arg(long, value_name = "VAR")]
    pub external_token_env: Option<String>,
    /// `jira`: the other project's key.
    #[arg(long, value_name = "KEY")]
    pub external_project: Option<String>,
}

/// Variables named in the written files besides the credentials.
const ADMIN_TOKEN_ENV: &str = "TANDEM_ADMIN_TOKEN";
const JIRA_WEBHOOK_SECRET_ENV: &str = "JIRA_WEBHOOK_SECRET";
const EXT_WEBHOOK_TOKEN_ENV: &str = "EXT_WEBHOOK_TOKEN";
const EXT_JIRA_WEBHOOK_SECRET_ENV: &str = "EXT_JIRA_WEBHOOK_SECRET";
/// The Jira field holding the other side's id (the config's default `link_field`).
const LINK_FIELD: &str = "External ID";

/// Why `tandem init` stopped.
#[derive(Debug)]
enum InitError {
    /// An answer is missing or malformed (exit 2).
    Usage(String),
    /// A live check failed (exit 1).
    Check(ProbeError),
    /// Something else stopped it (exit 1).
    Problem(String),
}

impl From<std::io::Error> for InitError {
    fn from(e: std::io::Error) -> Self {
        InitError::Problem(e.to_string())
    }
}

/// Answers come from the flags (`--yes`) or from a person.
enum Asker<R, W> {
    Flags,
    Person(Prompter<R, W>),
}

impl<R: BufRead, W: Write> Asker<R, W> {
    fn say(&mut self, text: &str) -> Result<(), InitError> {
        match self {
            // Scripts see progress on stdout too.
            Asker::Flags => println!("{text}"),
            Asker::Person(p) => p.say(text)?,
        }
        Ok(())
    }

    /// A section heading, for a person only (a script's output stays results).
    fn heading(&mut self, text: &str) -> Result<(), InitError> {
        if let Asker::Person(p) = self {
            p.say(&format!("\n{text}"))?;
        }
        Ok(())
    }

    /// The answer to `question`: the flag's value (else the default) with `--yes`, else the
    /// person's answer with the flag's value as the offered default. `valid` checks both.
    fn text(
        &mut self,
        question: &str,
        flag: &str,
        given: Option<&str>,
        default: Option<&str>,
        valid: impl Fn(&str) -> Result<(), String>,
    ) -> Result<String, InitError> {
        let offered = given.or(default);
        match self {
            Asker::Flags => {
                let value = offered
                    .ok_or_else(|| InitError::Usage(format!("--yes needs {flag} ({question})")))?;
                valid(value).map_err(|e| InitError::Usage(format!("{flag}: {e}")))?;
                Ok(value.to_string())
            }
            Asker::Person(p) => {
                // A given value that does not pass is not offered as the default.
                let offered = offered.filter(|v| valid(v).is_ok());
                Ok(p.ask_valid(question, offered, valid)?)
            }
        }
    }

    fn choose(
        &mut self,
        question: &str,
        flag: &str,
        choices: &[&str],
        given: &str,
    ) -> Result<String, InitError> {
        match self {
            Asker::Flags => {
                if choices.iter().any(|c| c.eq_ignore_ascii_case(given)) {
                    Ok(given.to_ascii_lowercase())
                } else {
                    Err(InitError::Usage(format!(
                        "{flag}: `{given}` is not one of {}",
                        choices.join(", ")
                    )))
                }
            }
            Asker::Person(p) => {
                let default = if choices.iter().any(|c| c.eq_ignore_ascii_case(given)) {
                    given
                } else {
                    choices[0]
                };
                Ok(p.choose(question, choices, default)?)
            }
        }
    }

    /// A live check failed: a script stops; a person is asked whether to answer again.
    fn failed(&mut self, e: ProbeError) -> Result<(), InitError> {
        match self {
            Asker::Flags => Err(InitError::Check(e)),
            Asker::Person(p) => {
                p.say(&format!("  PROBLEM: {e}"))?;
                if p.confirm("Answer these questions again?", true)? {
                    Ok(())
                } else {
                    Err(InitError::Check(e))
                }
            }
        }
    }
}

fn valid_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("`{s}` is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') || s.contains(char::is_whitespace) {
        return Err(format!("`{s}` has no host"));
    }
    Ok(())
}

fn valid_env_name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not an environment variable name (letters, digits, _; e.g. JIRA_API_TOKEN)"
        ))
    }
}

fn valid_project(s: &str) -> Result<(), String> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!("`{s}` is not a Jira project key (e.g. TEST)"))
    }
}

fn valid_name(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        Ok(())
    } else {
        Err(format!("`{s}` is not a connection name ([a-z0-9_-]+)"))
    }
}

fn valid_email(s: &str) -> Result<(), String> {
    if s.contains('@') && !s.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(format!("`{s}` is not an e-mail address"))
    }
}

fn any(_: &str) -> Result<(), String> {
    Ok(())
}

/// A Jira side as answered.
#[derive(Debug, Clone)]
struct JiraAnswers {
    base_url: String,
    flavour: Flavour,
    email: Option<String>,
    token_env: String,
    project: String,
}

/// Where the answers for one Jira side come from: the `--jira-*` or `--external-*` flags.
struct JiraFlags<'a> {
    label: &'a str,
    flag: &'a str,
    url: Option<String>,
    flavour: String,
    email: Option<String>,
    token_env: Option<String>,
    project: Option<String>,
    /// Default token variables for cloud and datacenter.
    env_defaults: (&'a str, &'a str),
}

async fn ask_jira<R: BufRead, W: Write>(
    asker: &mut Asker<R, W>,
    http: &reqwest::Client,
    mut flags: JiraFlags<'_>,
    offline: bool,
) -> Result<(JiraAnswers, Option<Site>), InitError> {
    let f = flags.flag;
    loop {
        let base_url = asker.text(
            &format!("{} base URL", flags.label),
            &format!("--{f}-url"),
            flags.url.as_deref(),
            None,
            valid_url,
        )?;
        let flavour = asker.choose(
            &format!("{} flavour", flags.label),
            &format!("--{f}-flavour"),
            &["cloud", "datacenter"],
            &flags.flavour,
        )?;
        let flavour = Flavour::parse(&flavour).unwrap_or(Flavour::Cloud);
        let email = match flavour {
            Flavour::Cloud => Some(asker.text(
                &format!("{} account e-mail", flags.label),
                &format!("--{f}-email"),
                flags.email.as_deref(),
                None,
                valid_email,
            )?),
            Flavour::DataCenter => None,
        };
        let (env_default, what) = match flavour {
            Flavour::Cloud => (flags.env_defaults.0, "API token"),
            Flavour::DataCenter => (flags.env_defaults.1, "personal access token"),
        };
        let token_env = asker.text(
            &format!("Environment variable holding the {what}"),
            &format!("--{f}-token-env"),
            flags.token_env.as_deref(),
            Some(env_default),
            valid_env_name,
        )?;
        let project = asker.text(
            &format!("{} project key", flags.label),
            &format!("--{f}-project"),
            flags.project.as_deref(),
            None,
            valid_project,
        )?;
        let answers = JiraAnswers {
            base_url: base_url.trim_end_matches('/').to_string(),
            flavour,
            email,
            token_env,
            project,
        };
        // Answering again starts from these answers.
        flags.url = Some(answers.base_url.clone());
        flags.flavour = flavour.as_str().to_string();
        flags.email = answers.email.clone();
        flags.token_env = Some(answers.token_env.clone());
        flags.project = Some(answers.project.clone());
        if offline {
            return Ok((answers, None));
        }
        let Ok(token) = std::env::var(&answers.token_env) else {
            let e = ProbeError {
                what: format!("{} credentials check", flags.label),
                // No request was made.
                url: String::new(),
                status: None,
                detail: format!("the environment variable {} is not set", answers.token_env),
                hint: format!(
                    "Export it with the {what} (tandem reads it from there at run time too) and run tandem init again, or pass --offline to skip the live checks"
                ),
            };
            asker.failed(e)?;
            continue;
        };
        let creds = match (&answers.email, flavour) {
            (Some(email), Flavour::Cloud) => Credentials::Basic {
                email: email.clone(),
                token,
            },
            _ => Credentials::Bearer(token),
        };
        match jira_probe::probe(
            http,
            &answers.base_url,
            flavour,
            &creds,
            &answers.project,
            &answers.token_env,
        )
        .await
        {
            Ok(site) => {
                asker.say(&format!(
                    "  OK {}: signed in as {}; project {} ({}); {} fields",
                    answers.base_url,
                    site.user,
                    site.project_key,
                    site.project_name,
                    site.fields.len()
                ))?;
                return Ok((answers, Some(site)));
            }
            Err(e) => asker.failed(e)?,
        }
    }
}

/// The other side as answered.
#[derive(Debug, Clone)]
enum ExternalAnswers {
    Seed {
        base_url: String,
        username: String,
        password_env: String,
        fields: Vec<FieldInfo>,
    },
    Jira(JiraAnswers),
}

/// Jira's standard fields, for the proposal when the site was not read (`--offline`).
fn standard_jira_fields() -> Vec<FieldInfo> {
    [
        ("summary", "Summary", FieldType::Text),
        ("description", "Description", FieldType::RichText),
        ("duedate", "Due date", FieldType::Date),
        ("labels", "Labels", FieldType::Labels),
    ]
    .into_iter()
    .map(|(id, name, kind)| FieldInfo {
        id: id.into(),
        name: name.into(),
        kind: Some(kind),
    })
    .collect()
}

/// The id of a site's link field, when it has one.
fn link_field_id(site: Option<&Site>) -> Option<String> {
    site?
        .fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(LINK_FIELD) || f.id == LINK_FIELD)
        .map(|f| f.id.clone())
}

/// Shows the proposal; a person may drop rows and add their own.
fn confirm_mapping<R: BufRead, W: Write>(
    asker: &mut Asker<R, W>,
    mut pairs: Vec<Pair>,
    jira_fields: &[FieldInfo],
    external_fields: &[FieldInfo],
) -> Result<Vec<Pair>, InitError> {
    let show = |pairs: &[Pair]| -> String {
        let mut s = String::from("Proposed field mapping (Jira ↔ other system):\n");
        if pairs.is_empty() {
            s.push_str("  (no pair found)\n");
        }
        for (i, p) in pairs.iter().enumerate() {
            s.push_str(&format!(
                "  {}. {} ({}) ↔ {} ({}) as {}\n",
                i + 1,
                p.jira_id,
                p.jira_name,
                p.external_id,
                p.external_name,
                p.kind.as_str()
            ));
        }
        s.trim_end().to_string()
    };
    asker.say(&show(&pairs))?;
    let Asker::Person(p) = asker else {
        return Ok(pairs);
    };
    if !pairs.is_empty() && p.confirm("Use this mapping?", true)? {
        return Ok(pairs);
    }
    if !pairs.is_empty() {
        let n = pairs.len();
        let drop = p.ask_valid(
            "Numbers of the rows to drop, e.g. 2,3 (- for none)",
            Some("-"),
            |a| {
                if a == "-" {
                    return Ok(());
                }
                a.split(',')
                    .try_for_each(|x| match x.trim().parse::<usize>() {
                        Ok(i) if (1..=n).contains(&i) => Ok(()),
                        _ => Err(format!("`{}` is not a row number from 1 to {n}", x.trim())),
                    })
            },
        )?;
        if drop != "-" {
            let drop: Vec<usize> = drop
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect();
            pairs = pairs
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !drop.contains(&(i + 1)))
                .map(|(_, p)| p)
                .collect();
        }
    }
    let unused: Vec<String> = external_fields
        .iter()
        .filter(|f| !pairs.iter().any(|p| p.external_id == f.id))
        .map(|f| format!("{} ({})", f.id, f.name))
        .collect();
    if !unused.is_empty() {
        p.say(&format!(
            "Fields of the other system not mapped: {}",
            unused.join(", ")
        ))?;
    }
    loop {
        let row = p.ask_valid(
            "Add a row as jiraField,externalField[,type] (- when done)",
            Some("-"),
            |a| {
                if a == "-" {
                    return Ok(());
                }
                let pair = parse_row(a, jira_fields, external_fields)?;
                match pairs
                    .iter()
                    .find(|p| p.jira_id == pair.jira_id || p.external_id == pair.external_id)
                {
                    Some(p) => Err(format!(
                        "{} ↔ {} is mapped already: drop that row first",
                        p.jira_id, p.external_id
                    )),
                    None => Ok(()),
                }
            },
        )?;
        if row == "-" {
            break;
        }
        if let Ok(pair) = parse_row(&row, jira_fields, external_fields) {
            pairs.push(pair);
        }
    }
    asker.say(&show(&pairs))?;
    Ok(pairs)
}

/// A row typed by a person: the Jira field by id or name, the external one by id.
fn parse_row(
    row: &str,
    jira_fields: &[FieldInfo],
    external_fields: &[FieldInfo],
) -> Result<Pair, String> {
    let cells: Vec<&str> = row.split(',').map(str::trim).collect();
    let (jira, ext, ty) = match cells.as_slice() {
        [j, e] => (*j, *e, None),
        [j, e, t] => (*j, *e, Some(*t)),
        _ => return Err("expected jiraField,externalField[,type]".into()),
    };
    let j = jira_fields
        .iter()
        .find(|f| f.id == jira || f.name.eq_ignore_ascii_case(jira));
    let e = external_fields.iter().find(|f| f.id == ext);
    if !mapping_proposal::usable_id(ext) {
        return Err(format!(
            "`{ext}`: ids may only hold letters, digits and _ - . :"
        ));
    }
    let kind = match ty {
        Some(t) => mapping_proposal::parse_kind(t).ok_or_else(|| format!("unknown type `{t}`"))?,
        None => j
            .and_then(|f| f.kind)
            .or(e.and_then(|f| f.kind))
            .unwrap_or(FieldType::Text),
    };
    let jira_id = match j {
        Some(f) => f.id.clone(),
        None if mapping_proposal::usable_id(jira) => jira.to_string(),
        None => return Err(format!("no Jira field `{jira}`")),
    };
    Ok(Pair {
        jira_name: j.map(|f| f.name.clone()).unwrap_or_else(|| jira_id.clone()),
        jira_id,
        external_id: ext.to_string(),
        external_name: e.map(|f| f.name.clone()).unwrap_or_else(|| ext.to_string()),
        kind,
    })
}

/// A TOML basic string holding `s` as it is: JSON escapes are TOML escapes, and `${` is
/// doubled so the loader does not read it as a variable.
fn toml_str(s: &str) -> String {
    serde_json::to_string(&s.replace("${", "$${")).unwrap_or_else(|_| "\"\"".into())
}

/// A `${VAR}` reference.
fn toml_env(var: &str) -> String {
    format!("\"${{{var}}}\"")
}

/// Everything the files are written from.
struct Plan {
    name: String,
    listen: String,
    public_url: String,
    jira: JiraAnswers,
    issue_type: String,
    external: ExternalAnswers,
    external_issue_type: String,
    pairs: Vec<Pair>,
}

fn jira_table(out: &mut String, j: &JiraAnswers, issue_type: &str, secret_env: &str) {
    out.push_str(&format!("base_url = {}\n", toml_str(&j.base_url)));
    out.push_str(&format!("api = \"{}\"\n", j.flavour.as_str()));
    match (&j.email, j.flavour) {
        (Some(email), Flavour::Cloud) => {
            out.push_str(&format!("email = {}\n", toml_str(email)));
            out.push_str(&format!("api_token = {}\n", toml_env(&j.token_env)));
        }
        _ => out.push_str(&format!("pat = {}\n", toml_env(&j.token_env))),
    }
    out.push_str(&format!(
        "# Jira signs its webhooks with this (tandem jira webhook register sets it up).\nwebhook_secret = {}\n",
        toml_env(secret_env)
    ));
    out.push_str(&format!("project = {}\n", toml_str(&j.project)));
    out.push_str(&format!("issue_type = {}\n", toml_str(issue_type)));
    out.push_str(&format!(
        "# A text field holding the other side's id; create it in Jira if it is missing.\nlink_field = {}\n",
        toml_str(LINK_FIELD)
    ));
}

fn render_toml(plan: &Plan) -> String {
    let mut out = format!(
        "# Tandem configuration written by `tandem init`. Every key: docs/CONFIG.md.\n\
         # Secrets are read from the environment (${{VAR}}): see .env.example next to this file.\n\
         \n[server]\nlisten = {}\n\
         # Protects /api/v1 and is the console's sign-in.\nadmin_token = {}\n\
         \n[storage]\n# Relative to this file's folder.\nurl = \"sqlite://tandem.db\"\n\
         \n[[connection]]\nname = {}\nmapping = \"fieldMappings.csv\"\nconflict = \"later_wins\"\n\
         create = \"both\"\npoll_interval = \"60s\"\n\
         \n[connection.filter]\nprojects = [{}]\n\
         \n[connection.jira]\n",
        toml_str(&plan.listen),
        toml_env(ADMIN_TOKEN_ENV),
        toml_str(&plan.name),
        toml_str(&plan.jira.project),
    );
    jira_table(
        &mut out,
        &plan.jira,
        &plan.issue_type,
        JIRA_WEBHOOK_SECRET_ENV,
    );
    out.push_str("\n[connection.external]\n");
    match &plan.external {
        ExternalAnswers::Seed {
            base_url,
            username,
            password_env,
            ..
        } => {
            out.push_str("type = \"rest\"\nformat = \"seed\"\n");
            out.push_str(&format!("base_url = {}\n", toml_str(base_url)));
            out.push_str(&format!(
                "auth = {{ type = \"basic\", username = {}, password = {} }}\n",
                toml_str(username),
                toml_env(password_env)
            ));
            out.push_str(&format!(
                "# Its webhooks must carry `Authorization: Bearer <this>`.\nwebhook_token = {}\n",
                toml_env(EXT_WEBHOOK_TOKEN_ENV)
            ));
        }
        ExternalAnswers::Jira(j) => {
            out.push_str("type = \"jira\"\n");
            jira_table(
                &mut out,
                j,
                &plan.external_issue_type,
                EXT_JIRA_WEBHOOK_SECRET_ENV,
            );
        }
    }
    out
}

/// The variables the config names, each with what to put there.
fn env_vars(plan: &Plan) -> Vec<(String, String)> {
    let token_help = |j: &JiraAnswers, site: &str| match j.flavour {
        Flavour::Cloud => format!(
            "API token of {} on {site} (https://id.atlassian.com/manage-profile/security/api-tokens)",
            j.email.as_deref().unwrap_or("the account")
        ),
        Flavour::DataCenter => {
            format!("Personal access token on {site} (your profile > Personal Access Tokens)")
        }
    };
    let random = "a long random string, e.g. the output of `openssl rand -hex 32`";
    let mut vars = vec![
        (
            plan.jira.token_env.clone(),
            token_help(&plan.jira, &plan.jira.base_url),
        ),
        (
            JIRA_WEBHOOK_SECRET_ENV.to_string(),
            format!("Secret Jira signs its webhooks with: {random}"),
        ),
    ];
    match &plan.external {
        ExternalAnswers::Seed {
            base_url,
            username,
            password_env,
            ..
        } => {
            vars.push((
                password_env.clone(),
                format!("Password of `{username}` on {base_url}"),
            ));
            vars.push((
                EXT_WEBHOOK_TOKEN_ENV.to_string(),
                format!("Bearer token the other system sends with its webhooks: {random}"),
            ));
        }
        ExternalAnswers::Jira(j) => {
            vars.push((j.token_env.clone(), token_help(j, &j.base_url)));
            vars.push((
                EXT_JIRA_WEBHOOK_SECRET_ENV.to_string(),
                format!("Secret the other Jira signs its webhooks with: {random}"),
            ));
        }
    }
    vars.push((
        ADMIN_TOKEN_ENV.to_string(),
        format!("Token for the admin API and the console: {random}"),
    ));
    // Jira ↔ Jira on one site may share a token variable: list it once.
    let mut seen = std::collections::HashSet::new();
    vars.retain(|(name, _)| seen.insert(name.clone()));
    vars
}

fn render_env(vars: &[(String, String)]) -> String {
    let mut out = String::from(
        "# The environment tandem.toml reads its secrets from (written by `tandem init`).\n\
         # Copy it, fill in each value, and keep the copy private:\n\
         #   cp .env.example .env && chmod 600 .env\n\
         # Load it before running tandem (set -a; . ./.env; set +a), or name it in the systemd\n\
         # unit's EnvironmentFile= (packaging/tandem.service).\n",
    );
    for (name, help) in vars {
        out.push_str(&format!("\n# {help}\n{name}=\n"));
    }
    out
}

/// An argument as a shell reads it back: quoted when it holds anything but safe characters.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `tandem init`.
pub async fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let files = ["tandem.toml", "fieldMappings.csv", ".env.example"];
    let paths: Vec<PathBuf> = files.iter().map(|f| args.dir.join(f)).collect();
    if !args.force {
        let existing: Vec<String> = paths
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            eprintln!(
                "error: {} already exist{}; nothing was written. Pass --force to overwrite, or --dir to write elsewhere.",
                existing.join(", "),
                if existing.len() == 1 { "s" } else { "" }
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .user_agent(concat!("tandem-init/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let plan = if args.yes {
        plan(&args, &http, &mut Asker::<&[u8], Vec<u8>>::Flags).await
    } else {
        let mut asker = Asker::Person(Prompter::new(
            std::io::BufReader::new(std::io::stdin()),
            std::io::stdout(),
        ));
        println!("Tandem set-up: a few questions, each checked against the live system.");
        println!("Press Enter to take the [default].");
        plan(&args, &http, &mut asker).await
    };
    let plan = match plan {
        Ok(p) => p,
        Err(InitError::Usage(m)) => {
            eprintln!("error: {m}");
            return Ok(ExitCode::from(2));
        }
        Err(InitError::Check(e)) => {
            eprintln!("error: {e}");
            eprintln!("nothing was written");
            return Ok(ExitCode::FAILURE);
        }
        Err(InitError::Problem(m)) => {
            eprintln!("error: {m}");
            eprintln!("nothing was written");
            return Ok(ExitCode::FAILURE);
        }
    };
    write_and_validate(&args, &plan, &paths)
}

/// Asks everything, checking as it goes.
async fn plan<R: BufRead, W: Write>(
    args: &InitArgs,
    http: &reqwest::Client,
    asker: &mut Asker<R, W>,
) -> Result<Plan, InitError> {
    asker.heading("Jira")?;
    let (jira, site) = ask_jira(
        asker,
        http,
        JiraFlags {
            label: "Jira",
            flag: "jira",
            url: args.jira_url.clone(),
            flavour: args.jira_flavour.clone(),
            email: args.jira_email.clone(),
            token_env: args.jira_token_env.clone(),
            project: args.jira_project.clone(),
            env_defaults: ("JIRA_API_TOKEN", "JIRA_PAT"),
        },
        args.offline,
    )
    .await?;
    let issue_type = pick_issue_type(
        asker,
        site.as_ref(),
        args.jira_issue_type.as_deref(),
        "--jira-issue-type",
    )?;
    if site.is_some() && link_field_id(site.as_ref()).is_none() {
        asker.say(&format!(
            "  NOTE: project {} has no field named \"{LINK_FIELD}\": create a text custom field with that name (it holds the other side's id) before starting",
            jira.project
        ))?;
    }

    asker.heading(
        "The other system: seed (an HTTP/JSON system with the seed's API) or jira (another Jira)",
    )?;
    let kind = asker.choose(
        "Which system",
        "--external",
        external::CHOICES,
        &args.external,
    )?;
    let kind = external::Kind::parse(&kind).unwrap_or(external::Kind::Seed);
    let (external, ext_site, external_issue_type) = match kind {
        external::Kind::Seed => {
            let fields = if args.external_field.is_empty() {
                external::seed_fields()
            } else {
                args.external_field
                    .iter()
                    .map(|s| external::parse_field(s))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| InitError::Usage(format!("--external-field {e}")))?
            };
            let mut url = args.external_url.clone();
            let mut username = args.external_username.clone();
            let mut password_env = args.external_password_env.clone();
            loop {
                let base_url = asker.text(
                    "External system base URL",
                    "--external-url",
                    url.as_deref(),
                    None,
                    valid_url,
                )?;
                let user = asker.text(
                    "User name Tandem signs in with (Basic auth)",
                    "--external-username",
                    username.as_deref(),
                    None,
                    any,
                )?;
                let pw_env = asker.text(
                    "Environment variable holding its password",
                    "--external-password-env",
                    password_env.as_deref(),
                    Some("EXT_PASSWORD"),
                    valid_env_name,
                )?;
                url = Some(base_url.trim_end_matches('/').to_string());
                username = Some(user.clone());
                password_env = Some(pw_env.clone());
                let answers = ExternalAnswers::Seed {
                    base_url: base_url.trim_end_matches('/').to_string(),
                    username: user.clone(),
                    password_env: pw_env.clone(),
                    fields: fields.clone(),
                };
                if args.offline {
                    break (answers, None, String::new());
                }
                let password = std::env::var(&pw_env).ok();
                match external::probe_seed(
                    http,
                    &base_url,
                    password.as_deref().map(|p| (user.as_str(), p)),
                    &pw_env,
                )
                .await
                {
                    Ok(found) => {
                        asker.say(&format!("  OK {found}"))?;
                        break (answers, None, String::new());
                    }
                    Err(e) => asker.failed(e)?,
                }
            }
        }
        external::Kind::Jira => {
            let (answers, site) = ask_jira(
                asker,
                http,
                JiraFlags {
                    label: "Other Jira",
                    flag: "external",
                    url: args.external_url.clone(),
                    flavour: args.external_flavour.clone(),
                    email: args.external_email.clone(),
                    token_env: args.external_token_env.clone(),
                    project: args.external_project.clone(),
                    env_defaults: ("EXT_JIRA_API_TOKEN", "EXT_JIRA_PAT"),
                },
                args.offline,
            )
            .await?;
            let issue_type = pick_issue_type(asker, site.as_ref(), None, "")?;
            (ExternalAnswers::Jira(answers), site, issue_type)
        }
    };

    // The mapping: what both systems have, matched.
    let jira_fields = site
        .as_ref()
        .map(|s| s.fields.clone())
        .unwrap_or_else(standard_jira_fields);
    let external_fields = match &external {
        ExternalAnswers::Seed { fields, .. } => fields.clone(),
        ExternalAnswers::Jira(_) => ext_site
            .as_ref()
            .map(|s| s.fields.clone())
            .unwrap_or_else(standard_jira_fields),
    };
    let mut skip = vec![link_field_id(site.as_ref()).unwrap_or_default()];
    skip.push(LINK_FIELD.to_string());
    let skip_refs: Vec<&str> = skip.iter().map(String::as_str).collect();
    // The other Jira's own link field is not mapped either.
    let ext_link = link_field_id(ext_site.as_ref());
    let external_fields: Vec<FieldInfo> = external_fields
        .into_iter()
        .filter(|f| Some(&f.id) != ext_link.as_ref())
        .collect();
    let pairs = mapping_proposal::propose(&jira_fields, &external_fields, &skip_refs);
    let pairs = confirm_mapping(asker, pairs, &jira_fields, &external_fields)?;
    if pairs.is_empty() {
        return Err(InitError::Problem(
            "the mapping has no field pair, and Tandem needs at least one: name the other system's fields with --external-field ID=NAME[:TYPE]".into(),
        ));
    }

    asker.heading("Tandem")?;
    let default_name: String = jira
        .project
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let name = asker.text(
        "Connection name (in webhook URLs)",
        "--name",
        args.name.as_deref(),
        Some(&default_name),
        valid_name,
    )?;
    let listen = asker.text(
        "Address Tandem listens on",
        "--listen",
        Some(&args.listen),
        None,
        |s| {
            s.parse::<std::net::SocketAddr>()
                .map(|_| ())
                .map_err(|_| format!("`{s}` is not an IP:PORT address"))
        },
    )?;
    let default_public = format!("http://{listen}");
    let public_url = asker.text(
        "Tandem's public URL (where Jira sends webhooks)",
        "--public-url",
        args.public_url.as_deref(),
        Some(&default_public),
        valid_url,
    )?;
    Ok(Plan {
        name,
        listen,
        public_url: public_url.trim_end_matches('/').to_string(),
        jira,
        issue_type,
        external,
        external_issue_type,
        pairs,
    })
}

/// The issue type of new issues: the flag's, else Task when the project has it, else the
/// project's first; a person chooses among the project's types.
fn pick_issue_type<R: BufRead, W: Write>(
    asker: &mut Asker<R, W>,
    site: Option<&Site>,
    given: Option<&str>,
    flag: &str,
) -> Result<String, InitError> {
    let types: Vec<String> = site.map(|s| s.issue_types.clone()).unwrap_or_default();
    let default = if types.is_empty() || types.iter().any(|t| t == "Task") {
        "Task".to_string()
    } else {
        types[0].clone()
    };
    let valid = |t: &str| {
        if types.is_empty() || types.iter().any(|x| x.eq_ignore_ascii_case(t)) {
            Ok(())
        } else {
            Err(format!(
                "the project has no issue type `{t}` (it has: {})",
                types.join(", ")
            ))
        }
    };
    match (asker, flag.is_empty()) {
        // The other Jira's type has no flag: its default.
        (Asker::Flags, true) => Ok(default),
        (asker, _) => asker.text(
            &format!(
                "Issue type of new issues{}",
                if types.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", types.join(", "))
                }
            ),
            flag,
            given,
            Some(&default),
            valid,
        ),
    }
}

/// Writes each text to the staging folder under its final file name; returns the paths.
fn stage(
    staging: &std::path::Path,
    paths: &[PathBuf],
    texts: [&String; 3],
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(staging)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", staging.display()))?;
    let mut staged = Vec::new();
    for (path, text) in paths.iter().zip(texts) {
        let name = path.file_name().unwrap_or_default();
        let to = staging.join(name);
        std::fs::write(&to, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", to.display()))?;
        staged.push(to);
    }
    Ok(staged)
}

/// Writes the three files, validates them as `tandem check` does, and says what is next.
fn write_and_validate(args: &InitArgs, plan: &Plan, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let toml_text = render_toml(plan);
    let external_label = match plan.external {
        ExternalAnswers::Seed { .. } => "external",
        ExternalAnswers::Jira(_) => "other Jira",
    };
    let csv_text = mapping_proposal::render_csv(&plan.pairs, external_label);
    let vars = env_vars(plan);
    let env_text = render_env(&vars);

    std::fs::create_dir_all(&args.dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.dir.display()))?;
    let config_path = &paths[0];
    // The same validation as `tandem check --offline`. The loader reads the mapping from
    // disk, so the files are written to a staging folder next to their place first, checked
    // there, and only moved into place when they pass: a set of files that would not load is
    // never left behind. Variables that are not set yet (their values go in .env) stand in
    // as placeholders: the files' structure is what is checked here; `tandem check` in the
    // real environment then checks the values.
    let named: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .or_else(|| named.contains(&name).then(|| "set-in-env-file".to_string()))
    };
    let staging = args
        .dir
        .join(format!(".tandem-init-{}", std::process::id()));
    let staged = stage(&staging, paths, [&toml_text, &csv_text, &env_text]).and_then(|staged| {
        match tandem::config::load_str(&toml_text, &staged[0], env) {
            Ok(_) => Ok(staged),
            Err(e) => {
                for issue in &e.issues {
                    // Name the files by where they were going to be.
                    let line = issue.to_string().replace(
                        &format!("{}/", staging.display()),
                        &format!("{}/", args.dir.display()),
                    );
                    eprintln!("{line}");
                }
                Err(anyhow::anyhow!(
                    "the files to write do not pass `tandem check` ({} problem{}), so nothing was written",
                    e.issues.len(),
                    if e.issues.len() == 1 { "" } else { "s" }
                ))
            }
        }
    });
    let moved = staged.and_then(|staged| {
        for (from, to) in staged.iter().zip(paths) {
            // Also refuses a file that appeared while the questions were answered.
            if !args.force && to.exists() {
                anyhow::bail!(
                    "{} appeared while tandem init ran; pass --force to overwrite it",
                    to.display()
                );
            }
            std::fs::rename(from, to)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", to.display()))?;
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&staging);
    if let Err(e) = moved {
        eprintln!("error: {e:#}");
        return Ok(ExitCode::FAILURE);
    }
    let config = tandem::config::load_str(&toml_text, config_path, env)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!();
    for p in paths {
        println!("wrote {}", p.display());
    }
    println!("{}", crate::summary(config_path, &config));

    let unset: Vec<&str> = named
        .iter()
        .copied()
        .filter(|n| std::env::var_os(n).is_none())
        .collect();
    let env_file = args.dir.join(".env");
    println!();
    if !unset.is_empty() {
        println!(
            "Before starting, set {}: cp {} {} and fill it in, then load it (set -a; . {}; set +a).",
            unset.join(", "),
            shell_word(&paths[2].display().to_string()),
            shell_word(&env_file.display().to_string()),
            shell_word(&env_file.display().to_string()),
        );
    }
    match &plan.external {
        ExternalAnswers::Seed { .. } => println!(
            "Point the other system's webhooks at {}/webhooks/{}/external with the header `Authorization: Bearer ${EXT_WEBHOOK_TOKEN_ENV}`.",
            plan.public_url, plan.name
        ),
        ExternalAnswers::Jira(j) => println!(
            "Add a webhook on {} delivering to {}/webhooks/{}/external, signed with ${EXT_JIRA_WEBHOOK_SECRET_ENV}.",
            j.base_url, plan.public_url, plan.name
        ),
    }
    let config_arg = shell_word(&config_path.display().to_string());
    println!("\nNext:");
    println!(
        "  tandem jira webhook register --config {config_arg} --connection {} --url {}",
        plan.name,
        shell_word(&format!("{}/webhooks/{}/jira", plan.public_url, plan.name))
    );
    println!("  tandem serve --config {config_arg}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_escape_quotes_and_variable_syntax() {
        assert_eq!(toml_str(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_str("x${Y}"), "\"x$${Y}\"");
        assert_eq!(toml_env("JIRA_API_TOKEN"), "\"${JIRA_API_TOKEN}\"");
        assert_eq!(shell_word("/tmp/a b/tandem.toml"), "'/tmp/a b/tandem.toml'");
        assert_eq!(shell_word("./tandem.toml"), "./tandem.toml");
    }

    #[test]
    fn answers_are_validated() {
        assert!(valid_url("https://example.atlassian.net").is_ok());
        assert!(valid_url("example.atlassian.net").is_err());
        assert!(valid_url("https://").is_err());
        assert!(valid_env_name("JIRA_API_TOKEN").is_ok());
        assert!(valid_env_name("1X").is_err());
        assert!(valid_env_name("A-B").is_err());
        assert!(valid_project("TEST").is_ok());
        assert!(valid_project("TE ST").is_err());
        assert!(valid_name("test").is_ok());
        assert!(valid_name("Test").is_err());
    }
}
