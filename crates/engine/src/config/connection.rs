//! `[[connection]]`: a Jira side, an external side, the mapping and the rules between them
//! (which sides get new twins, how often to poll, which issues take part, the rules script).

use super::comments::CommentsConfig;
use super::config_dir;
use super::duration::de_duration;
use super::jira::JiraConfig;
use super::rest::RestConfig;
use super::spans::SpanIndex;
use super::users::UsersConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use tandem_core::mapping::{ConflictPolicy, FieldMappingSpec, Location, Mapping};
use tandem_script::{FieldExpr, Script, ScriptLimits};

/// Which sides may receive newly created twins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreatePolicy {
    /// Items created on either side get a twin on the other.
    #[default]
    Both,
    /// Only items created outside get a twin in Jira.
    ToJira,
    /// Only issues created in Jira get a twin outside.
    ToExternal,
    /// No twins are created; only already linked items are synced.
    #[serde(rename = "none")]
    Never,
}

impl CreatePolicy {
    /// Whether Tandem may create a new item on `side`.
    pub fn allows_create_on(self, side: tandem_core::Side) -> bool {
        use tandem_core::Side;
        matches!(
            (self, side),
            (CreatePolicy::Both, _)
                | (CreatePolicy::ToJira, Side::Jira)
                | (CreatePolicy::ToExternal, Side::External)
        )
    }
}

/// Where a connection's field mapping is defined.
#[derive(Debug, Clone, PartialEq)]
pub enum MappingSource {
    /// A `.csv` or `.toml` mapping file, absolute after loading.
    File(PathBuf),
    /// `[[connection.field]]` tables in the config file itself (same keys as a TOML mapping
    /// file), each with the line it starts on.
    Inline(Vec<(FieldMappingSpec, Location)>),
}

/// `[[connection]]`: a Jira side, an external side, a mapping and the rules between them.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawConnection")]
pub struct ConnectionConfig {
    /// Unique name, `[a-z0-9_-]+`; appears in webhook URLs (`/webhooks/{name}/{side}`).
    pub name: String,
    /// Where the field mapping comes from (`mapping = "file"` or `[[connection.field]]`).
    pub mapping: MappingSource,
    /// Default conflict policy for the connection's fields.
    pub conflict: ConflictPolicy,
    /// Which sides may get new twins.
    pub create: CreatePolicy,
    /// How often each side is polled for changes webhooks missed; zero turns polling off.
    pub poll_interval: Duration,
    /// Which Jira issues take part.
    pub filter: FilterConfig,
    /// The Jira side.
    pub jira: JiraConfig,
    /// The other side.
    pub external: ExternalConfig,
    /// The validated mapping, filled in by [`load`](super::load()) /
    /// [`load_str`](super::load_str()).
    pub fields: Mapping,
    /// `script = "rules.rhai"`: the connection's rules script, absolute after loading.
    pub script_path: Option<PathBuf>,
    /// `[connection.script_limits]`: the limits every call of the script runs under.
    pub script_limits: ScriptLimits,
    /// The script, compiled by the semantic pass (so `tandem check` and a reload refuse a
    /// script that does not compile).
    pub script: Option<Script>,
    /// The mapping entries' `expr`s, compiled when the mapping is loaded, by mapping key
    /// (`jira|external`).
    pub exprs: FieldExprs,
    /// `comments`, `comment_deletes`, `internal_comments`, `comment_header`,
    /// `comments_history`, `external_name`.
    pub comments: CommentsConfig,
    /// `[connection.users]`: how people are matched across the sides; `None` when the
    /// table is absent (user values then cross as they are).
    pub users: Option<UsersConfig>,
    /// `attachments`, `attachment_max_bytes`, `attachment_types`, `attachment_deletes`.
    pub attachments: super::attachments::AttachmentsConfig,
}

/// Compiled per-field expressions, by mapping key.
pub type FieldExprs = BTreeMap<String, FieldExpr>;

impl ConnectionConfig {
    /// What serde cannot check in the connection at `at` (`connection[2]`) of the file at
    /// `path`; `first_with_name` is the earlier connection with the same name, if any. On
    /// the way it makes a relative mapping file absolute and gives inline mapping entries
    /// their lines.
    pub(super) fn check(
        &mut self,
        at: &str,
        first_with_name: Option<usize>,
        spans: &SpanIndex<'_>,
        path: &Path,
        issue: &mut impl FnMut(&str, String),
    ) {
        let valid_name = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid_name {
            issue(
                &format!("{at}.name"),
                format!(
                    "`{}` is not a valid name: use a-z, 0-9, `_` and `-`",
                    self.name
                ),
            );
        }
        if let Some(first) = first_with_name {
            issue(
                &format!("{at}.name"),
                format!(
                    "connection name `{}` is already used by connection[{first}]",
                    self.name
                ),
            );
        }

        let has_file = spans.entries.contains_key(&format!("{at}.mapping"));
        let has_inline = spans.entries.contains_key(&format!("{at}.field"));
        match (has_file, has_inline) {
            (true, true) => issue(
                &format!("{at}.field"),
                "give either `mapping = \"file\"` or [[connection.field]] tables, not both".into(),
            ),
            (false, false) => issue(
                at,
                "no field mapping: add `mapping = \"fieldMappings.csv\"` or [[connection.field]] tables".into(),
            ),
            _ => {}
        }
        match &mut self.mapping {
            MappingSource::File(p) => {
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                if ext != "csv" && ext != "toml" {
                    issue(
                        &format!("{at}.mapping"),
                        format!(
                            "`{}`: a mapping file must end in .csv or .toml",
                            p.display()
                        ),
                    );
                }
                if p.is_relative() {
                    *p = normalize(&config_dir(path).join(&*p));
                }
                // Reported here, at the `mapping =` line, rather than as an unreadable file
                // with no line when the mappings are loaded.
                if !p.is_file() {
                    issue(
                        &format!("{at}.mapping"),
                        format!("mapping file `{}` not found", p.display()),
                    );
                }
            }
            MappingSource::Inline(fields) => {
                // An entry may come from a preset's default mapping.
                for (j, (_, loc)) in fields.iter_mut().enumerate() {
                    let (file, line) = spans
                        .span_of(&format!("{at}.field[{j}]"))
                        .map(|s| spans.sources.locate(s.start))
                        .unwrap_or_else(|| (path.to_path_buf(), 0));
                    *loc = Location::new(file.display().to_string(), line);
                }
            }
        }

        if let Some(p) = &mut self.script_path {
            if p.is_relative() {
                *p = normalize(&config_dir(path).join(&*p));
            }
            // The script's own file:line:col leads the message, so the place to fix is named
            // even though the issue is placed at the `script =` line.
            match Script::load(&*p, self.script_limits) {
                Ok(script) => self.script = Some(script),
                Err(e) => issue(&format!("{at}.script"), e.to_string()),
            }
        }

        self.comments.check(at, issue);
        if let Some(users) = &mut self.users {
            users.check(&format!("{at}.users"), path, issue);
        }
        super::attachments::check(&self.attachments, at, issue);
        self.jira.check(&format!("{at}.jira"), issue);
        if self.jira.dynamic_webhook_url.is_some()
            && self
                .filter
                .jql
                .as_deref()
                .is_some_and(|q| !q.trim().is_empty())
        {
            // A dynamic webhook's jqlFilter only knows project/issuetype/status/... and the
            // worker scopes webhook events by project and issue type only, so extra JQL
            // would silently stop applying to webhook deliveries.
            issue(
                &format!("{at}.filter.jql"),
                "cannot be combined with jira.dynamic_webhook_url: a dynamic webhook filters \
                 only by project and issue type; use `projects`/`issue_types`, or an admin \
                 webhook (`tandem jira webhook register`)"
                    .into(),
            );
        }
        match &mut self.external {
            ExternalConfig::Jira(j) => {
                j.check(&format!("{at}.external"), issue);
                if j.dynamic_webhook_url.is_some() {
                    issue(
                        &format!("{at}.external.dynamic_webhook_url"),
                        "dynamic webhooks are only registered for [connection.jira]".into(),
                    );
                }
            }
            ExternalConfig::Rest(r) => {
                r.key_lines = spans.key_lines(&format!("{at}.external"), path);
                r.check(
                    self.create.allows_create_on(tandem_core::Side::External),
                    &format!("{at}.external"),
                    issue,
                )
            }
        }
    }
}

/// Removes `.` and `name/..` pairs without touching the file system, so messages show
/// `examples/seed/x.csv` rather than `conf/../../examples/seed/x.csv`.
pub(super) fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

/// The serde shape of `[[connection]]`; `mapping` and `field` become [`MappingSource`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    /// See [`ConnectionConfig::name`].
    name: String,
    /// Path of a `.csv` or `.toml` mapping file, relative to the config file.
    #[serde(default)]
    mapping: Option<PathBuf>,
    /// Inline mapping entries (`[[connection.field]]`), instead of `mapping`.
    #[serde(default)]
    field: Vec<FieldMappingSpec>,
    /// `later_wins` (default) | `jira_wins` | `external_wins`.
    #[serde(default)]
    conflict: ConflictPolicy,
    /// `both` (default) | `to_jira` | `to_external` | `none`.
    #[serde(default)]
    create: CreatePolicy,
    /// `"200ms"`, `"30s"`, `"5m"`, `"1h"`, `"0"` (off). Default `"60s"`.
    #[serde(default = "default_poll_interval", deserialize_with = "de_duration")]
    poll_interval: Duration,
    /// `[connection.filter]`
    #[serde(default)]
    filter: FilterConfig,
    /// `[connection.jira]`
    jira: JiraConfig,
    /// `[connection.external]`
    external: ExternalConfig,
    /// A Rhai rules script, relative to the config file.
    #[serde(default)]
    script: Option<PathBuf>,
    /// `[connection.script_limits]`; every key optional, unknown keys refused.
    #[serde(default)]
    script_limits: ScriptLimits,
    /// `both` (default) | `to_jira` | `to_external` | `none`.
    #[serde(default)]
    comments: tandem_core::comment::CommentSync,
    /// `delete` (default) | `keep`.
    #[serde(default)]
    comment_deletes: tandem_core::comment::CommentDeletes,
    /// `private` (default) | `skip` | `public`.
    #[serde(default)]
    internal_comments: tandem_core::comment::InternalComments,
    /// Default `"{author} ({system}) wrote:"`.
    #[serde(default)]
    comment_header: Option<String>,
    #[serde(default)]
    comments_history: bool,
    /// How the other system is named in comment headers.
    #[serde(default)]
    external_name: Option<String>,
    /// `[connection.users]`
    #[serde(default)]
    users: Option<UsersConfig>,
    /// `both` (default) | `to_jira` | `to_external` | `none`.
    #[serde(default)]
    attachments: tandem_core::attachment::AttachmentSync,
    /// Default 10 MiB.
    #[serde(default = "default_attachment_max_bytes")]
    attachment_max_bytes: u64,
    /// Allowed content types (`"image/*"`); default: any.
    #[serde(default)]
    attachment_types: Vec<String>,
    /// `delete` (default) | `keep`.
    #[serde(default)]
    attachment_deletes: tandem_core::attachment::AttachmentDeletes,
}

fn default_attachment_max_bytes() -> u64 {
    tandem_core::attachment::DEFAULT_MAX_BYTES
}

impl From<RawConnection> for ConnectionConfig {
    fn from(raw: RawConnection) -> Self {
        // Having both or neither is reported by the semantic pass, which knows the line.
        let mapping = match raw.mapping {
            Some(path) => MappingSource::File(path),
            // Locations are filled in by the semantic pass, which has the spans.
            None => MappingSource::Inline(
                raw.field
                    .into_iter()
                    .map(|spec| (spec, Location::default()))
                    .collect(),
            ),
        };
        ConnectionConfig {
            name: raw.name,
            mapping,
            conflict: raw.conflict,
            create: raw.create,
            poll_interval: raw.poll_interval,
            filter: raw.filter,
            jira: raw.jira,
            external: raw.external,
            fields: Mapping::default(),
            script_path: raw.script,
            script_limits: raw.script_limits,
            script: None,
            exprs: FieldExprs::new(),
            comments: CommentsConfig {
                sync: raw.comments,
                deletes: raw.comment_deletes,
                internal: raw.internal_comments,
                header: raw
                    .comment_header
                    .unwrap_or_else(|| tandem_core::comment::DEFAULT_HEADER.into()),
                history: raw.comments_history,
                external_name: raw.external_name,
            },
            users: raw.users,
            attachments: tandem_core::attachment::AttachmentSettings {
                sync: raw.attachments,
                deletes: raw.attachment_deletes,
                max_bytes: raw.attachment_max_bytes,
                types: raw.attachment_types,
            },
        }
    }
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(60)
}

/// `[connection.filter]`: which Jira issues take part. Empty lists mean "all".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Project keys.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Issue type names.
    #[serde(default)]
    pub issue_types: Vec<String>,
    /// Extra JQL, ANDed with the above.
    #[serde(default)]
    pub jql: Option<String>,
}

/// `[connection.external]`: the other side, chosen by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// Built once per process; boxing would only make every match on it noisier.
#[allow(clippy::large_enum_variant)]
pub enum ExternalConfig {
    /// A generic HTTP/JSON system (the seed's format by default).
    Rest(RestConfig),
    /// Another Jira site (Jira ↔ Jira).
    Jira(JiraConfig),
}

impl ExternalConfig {
    /// Short description for summaries: `rest seed`, `jira datacenter`.
    pub fn describe(&self) -> String {
        match self {
            ExternalConfig::Rest(r) => format!("rest {}", r.format.as_str()),
            ExternalConfig::Jira(j) => format!("jira {}", j.api.as_str()),
        }
    }
}

#[cfg(test)]
mod script_tests {
    //! `script` and `[connection.script_limits]`: loaded relative to the config file,
    //! compiled when the config is checked, errors naming the script's file:line:col.

    use super::super::{ConfigError, load_str};
    use std::path::Path;

    fn config(extra: &str) -> String {
        format!(
            r#"
[[connection]]
name = "seed"
{extra}

[[connection.field]]
jira = "summary"
external = "1001"

[connection.jira]
base_url = "https://example.atlassian.net"
email = "me@example.com"
api_token = "t"
project = "TEST"

[connection.external]
type = "rest"
base_url = "https://ext.example.com"
"#
        )
    }

    fn load_in(dir: &Path, extra: &str) -> Result<super::super::Config, ConfigError> {
        load_str(&config(extra), &dir.join("tandem.toml"), |_| None)
    }

    #[test]
    fn a_script_is_found_next_to_the_config_and_compiled() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.rhai"),
            "fn filter(event) { event.kind != \"commented\" }\n",
        )
        .unwrap();
        let cfg = load_in(
            dir.path(),
            "script = \"rules.rhai\"\n[connection.script_limits]\nmax_operations = 500\n",
        )
        .unwrap();
        let conn = &cfg.connections[0];
        assert_eq!(
            conn.script_path.as_deref(),
            Some(dir.path().join("rules.rhai").as_path())
        );
        let script = conn.script.as_ref().expect("compiled");
        assert_eq!(script.hooks(), vec!["filter"]);
        assert_eq!(script.limits().max_operations, 500);
    }

    #[test]
    fn a_script_that_does_not_compile_is_a_config_error_at_its_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.rhai"),
            "fn to_jira(fields, item) {\n    fields.summary = ;\n}\n",
        )
        .unwrap();
        let err = load_in(dir.path(), "script = \"rules.rhai\"").unwrap_err();
        assert_eq!(err.issues.len(), 1, "{err}");
        let issue = &err.issues[0];
        assert_eq!(issue.key, "connection[0].script");
        assert_eq!(issue.line, Some(4), "placed at the `script =` line");
        let at = format!("{}:2:", dir.path().join("rules.rhai").display());
        assert!(issue.message.starts_with(&at), "{}", issue.message);
    }

    #[test]
    fn a_missing_script_and_unknown_limits_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_in(dir.path(), "script = \"nope.rhai\"").unwrap_err();
        assert!(err.to_string().contains("nope.rhai"), "{err}");
        assert!(err.to_string().contains("cannot read the script"), "{err}");

        std::fs::write(dir.path().join("rules.rhai"), "").unwrap();
        let err = load_in(
            dir.path(),
            "script = \"rules.rhai\"\n[connection.script_limits]\nmax_ops = 5\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("max_ops"), "{err}");
    }

    #[test]
    fn without_a_script_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = load_in(dir.path(), "").unwrap();
        assert!(cfg.connections[0].script.is_none());
    }
}
