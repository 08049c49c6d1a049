//! Configuration: one TOML file (`tandem.toml`) describing the server, the store, the workers
//! and each connection between Jira and another system.
//!
//! Loading happens in three passes so that every problem can be reported as
//! `file:line: key: message`:
//!
//! 1. the text is parsed into toml's *spanned* document tree, which remembers where each key
//!    and value sits in the file;
//! 2. `${ENV_VAR}` references inside string values are substituted in that tree (not in the raw
//!    text, so a value containing quotes or backslashes cannot break the TOML syntax and a
//!    `${...}` inside a comment is left alone), and the tree is deserialised into the structs
//!    below with `deny_unknown_fields` everywhere;
//! 3. semantic checks that serde cannot express (credentials for the chosen Jira flavour, unique
//!    connection names, operations for the custom REST format, ...) run against the structs
//!    and look their line numbers up in the same tree; then each connection's field mapping is
//!    read and validated by `tandem_core::mapping`.
//!
//! Every key is documented on its struct field; `docs/CONFIG.md` is the same text for people.

use crate::secret::Secret;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tandem_core::mapping::{
    self, ConflictPolicy, FieldMappingSpec, Location, Mapping, MappingErrors,
};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// One problem found in a configuration or mapping file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The file the problem is in (the config file, or a mapping file it points at).
    pub file: PathBuf,
    /// 1-based line, when the problem can be pinned to one.
    pub line: Option<usize>,
    /// Dotted key path (`connection[0].jira.email`), or the mapping column; empty when the
    /// problem concerns the whole file.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything wrong with a configuration, one issue per line when displayed.
///
/// Several issues are collected where the passes allow it (all missing environment variables,
/// all semantic problems, all mapping problems) so that a user fixes them in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl ConfigError {
    fn one(
        file: &Path,
        line: Option<usize>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        ConfigError {
            issues: vec![ConfigIssue {
                file: file.to_path_buf(),
                line,
                key: key.into(),
                message: msg.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: the HTTP listener (webhooks, health, metrics, admin API, dashboard).
    #[serde(default)]
    pub server: ServerConfig,
    /// `[storage]`: where links, the event queue and the audit log live.
    #[serde(default)]
    pub storage: StorageConfig,
    /// `[worker]`: how events are processed and retried.
    #[serde(default)]
    pub worker: WorkerConfig,
    /// `[[connection]]`: one entry per pair of synced systems; at least one is required.
    #[serde(default, rename = "connection")]
    pub connections: Vec<ConnectionConfig>,
    /// The file this configuration was read from; relative paths inside it are relative to
    /// its folder.
    #[serde(skip)]
    pub path: PathBuf,
}

impl Config {
    /// The folder relative paths in this configuration are resolved against.
    pub fn dir(&self) -> &Path {
        config_dir(&self.path)
    }

    /// The connection named `name`.
    pub fn connection(&self, name: &str) -> Option<&ConnectionConfig> {
        self.connections.iter().find(|c| c.name == name)
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Bearer token required on `/api/v1/...`. When absent the admin API refuses every
    /// request (the webhook, health and metrics routes still work).
    #[serde(default)]
    pub admin_token: Option<Secret>,
    /// Largest accepted request body in bytes; bigger webhook deliveries get `413`.
    /// Default 1 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long a client has to send a request's whole header, counted from when the
    /// connection opens or its previous answer was sent; so it also closes idle keep-alive
    /// connections. Default 10 s.
    #[serde(
        default = "default_header_read_timeout",
        deserialize_with = "de_duration"
    )]
    pub header_read_timeout: Duration,
    /// How long a client has to send a request's whole body once its header has arrived;
    /// a late body gets `408`. Default 30 s.
    #[serde(
        default = "default_body_read_timeout",
        deserialize_with = "de_duration"
    )]
    pub body_read_timeout: Duration,
    /// How long an answer may wait for a client that does not read it (one that pipelines
    /// requests and never reads the answers, say) before the connection is closed. Default 30 s.
    #[serde(default = "default_write_timeout", deserialize_with = "de_duration")]
    pub write_timeout: Duration,
    /// Connections served at once; one more is answered `503` with `Retry-After` and closed.
    /// Default 512, well under the usual open-file limit of 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            admin_token: None,
            max_body_bytes: default_max_body_bytes(),
            header_read_timeout: default_header_read_timeout(),
            body_read_timeout: default_body_read_timeout(),
            write_timeout: default_write_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

/// Largest `server.max_connections`: the connection cap is a semaphore whose permits are
/// all taken back at shutdown in one `u32` request.
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_body_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_write_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_connections() -> usize {
    512
}

/// `[storage]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite://FILE` (default `sqlite://tandem.db`; a relative file is relative to the config
    /// file's folder, and after loading this holds the absolute form) or
    /// `postgres://user:password@host:port/db` to share one database between several
    /// `tandem serve` instances. Any `sqlx` connection options may follow as `?query`.
    #[serde(default = "default_storage_url")]
    pub url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: default_storage_url(),
        }
    }
}

fn default_storage_url() -> String {
    "sqlite://tandem.db".to_string()
}

impl StorageConfig {
    /// True for a PostgreSQL URL.
    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")
    }

    /// The URL with any password replaced by `***`, for logs and summaries.
    pub fn redacted_url(&self) -> String {
        redact_url_password(&self.url)
    }
}

// A PostgreSQL URL may carry a password; Debug must not show it.
impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("url", &self.redacted_url())
            .finish()
    }
}

fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// `[worker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Events processed at the same time (different links run in parallel; events of one link
    /// always run in order). Default 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts before an event becomes a dead letter. Default 10.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles each attempt, with jitter. Default 500.
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    /// Longest retry delay in milliseconds. Default 300000 (5 minutes).
    #[serde(default = "default_backoff_cap_ms")]
    pub backoff_cap_ms: u64,
    /// How long a claimed event stays reserved for one worker; if that worker dies the event
    /// is picked up again after this. Default 60.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// How long one call to Jira or the external system may take, in milliseconds, before
    /// it counts as failed (transient: the event is retried). Default: 30000, or half the
    /// lease when that is shorter (see [`WorkerConfig::request_timeout`]).
    #[serde(default)]
    pub request_timeout_ms: Option<u64>,
}

impl WorkerConfig {
    /// The per-call timeout: `request_timeout_ms` when set, else 30 s or half the lease,
    /// whichever is shorter (a call still running when the lease ends lets another worker
    /// take the event).
    pub fn request_timeout(&self) -> Duration {
        match self.request_timeout_ms {
            Some(ms) => Duration::from_millis(ms.max(1)),
            None => Duration::from_millis(30_000.min(self.lease_seconds.max(1) * 500)),
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: default_concurrency(),
            max_attempts: default_max_attempts(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_cap_ms: default_backoff_cap_ms(),
            lease_seconds: default_lease_seconds(),
            request_timeout_ms: None,
        }
    }
}

fn default_concurrency() -> usize {
    8
}
fn default_max_attempts() -> u32 {
    10
}
fn default_backoff_base_ms() -> u64 {
    500
}
fn default_backoff_cap_ms() -> u64 {
    300_000
}
fn default_lease_seconds() -> u64 {
    60
}

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
    /// The validated mapping, filled in by [`load`] / [`load_str`].
    pub fields: Mapping,
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
        }
    }
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(60)
}

/// Parses `"0"`, `"Nms"`, `"Ns"`, `"Nm"` or `"Nh"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let invalid = || {
        format!(
            "invalid duration `{text}`: expected e.g. \"200ms\", \"30s\", \"5m\", \"1h\" or \"0\""
        )
    };
    // Milliseconds first: "ms" would otherwise read as minutes of "Nm" followed by junk.
    if let Some(digits) = t.strip_suffix("ms") {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        return digits
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("duration `{text}` is too large"));
    }
    // Split on the last *character*: slicing at a byte could land inside a multi-byte one.
    let mut chars = t.chars();
    let multiplier = match chars.next_back() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        _ => return Err(invalid()),
    };
    let digits = chars.as_str();
    // `u64::from_str` accepts a leading `+`; a duration should be digits only.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("duration `{text}` is too large"))?;
    n.checked_mul(multiplier)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration `{text}` is too large"))
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(de::Error::custom)
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

/// Which Jira API flavour a site speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JiraApi {
    /// Jira Cloud: REST v3, ADF rich text, Basic auth with e-mail + API token.
    #[default]
    Cloud,
    /// Jira Data Center / Server: REST v2, wiki markup, Bearer personal access token.
    Datacenter,
}

impl JiraApi {
    pub fn as_str(self) -> &'static str {
        match self {
            JiraApi::Cloud => "cloud",
            JiraApi::Datacenter => "datacenter",
        }
    }
}

/// `[connection.jira]` (and `[connection.external]` with `type = "jira"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// Site URL, e.g. `https://example.atlassian.net`.
    pub base_url: String,
    /// `cloud` (default) | `datacenter`.
    #[serde(default)]
    pub api: JiraApi,
    /// Account e-mail (cloud).
    #[serde(default)]
    pub email: Option<String>,
    /// API token (cloud).
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Personal access token (datacenter).
    #[serde(default)]
    pub pat: Option<Secret>,
    /// OAuth 2.0 access token (cloud): sent as `Authorization: Bearer` on every Jira call,
    /// instead of e-mail + API token. Only OAuth and Connect apps may use dynamic webhooks.
    #[serde(default)]
    pub oauth_token: Option<Secret>,
    /// Tandem's public base URL. With `oauth_token`, `tandem serve` registers a dynamic
    /// webhook at `{dynamic_webhook_url}/webhooks/{connection}/jira` and refreshes it before
    /// its 30-day expiry (see `connector::jira::dynamic`).
    #[serde(default)]
    pub dynamic_webhook_url: Option<String>,
    /// When set, incoming Jira webhooks must carry a valid `X-Hub-Signature: sha256=...`.
    #[serde(default)]
    pub webhook_secret: Option<Secret>,
    /// Project key new twins are created in.
    pub project: String,
    /// Issue type of new twins. Default `Task`.
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    /// Jira field (id or display name) that holds the external item's id. Default
    /// `External ID`.
    #[serde(default = "default_link_field")]
    pub link_field: String,
}

fn default_issue_type() -> String {
    "Task".to_string()
}
fn default_link_field() -> String {
    "External ID".to_string()
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

/// `[connection.external]` with `type = "rest"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// Base URL paths are appended to.
    pub base_url: String,
    /// How Tandem authenticates its calls. Default `{ type = "none" }`.
    #[serde(default)]
    pub auth: RestAuth,
    /// When set, incoming webhooks must carry `Authorization: Bearer <token>`.
    #[serde(default)]
    pub webhook_token: Option<Secret>,
    /// `seed` (default): the seed's `_externalData` API; `custom`: `operations` and `fields`.
    #[serde(default)]
    pub format: RestFormat,
    /// `full` (default): deliveries carry the values; `id_only`: they carry an id and Tandem
    /// fetches the item.
    #[serde(default)]
    pub webhook_payload: WebhookPayload,
    /// `[connection.external.operations]`: required for `format = "custom"`.
    #[serde(default)]
    pub operations: Option<RestOperations>,
    /// `[connection.external.webhook]`: where the id and event sit in a custom delivery.
    #[serde(default)]
    pub webhook: Option<RestWebhook>,
    /// `[[connection.external.fields]]`: where each external field lives (custom format).
    #[serde(default)]
    pub fields: Vec<RestField>,
    /// Where each key of this table sits in the file, so that problems found only when the
    /// system is contacted (`tandem check` reading a real item) are reported at their line.
    #[serde(skip)]
    pub key_lines: KeyLines,
}

/// The lines of the keys under one table, kept after loading. Keys are relative to the table
/// (`operations.fetch.item_pointer`, `fields[2].read`).
#[derive(Debug, Clone, Default)]
pub struct KeyLines {
    file: PathBuf,
    /// The table's own key path (`connection[0].external`).
    prefix: String,
    lines: std::collections::BTreeMap<String, usize>,
}

impl KeyLines {
    /// A problem at `key`, located at its line, or at its nearest parent's when the key is not
    /// in the file (a default applies); displayed as `file:line: key: message`.
    pub fn issue(&self, key: &str, message: impl Into<String>) -> ConfigIssue {
        let mut at = key;
        let line = loop {
            if let Some(line) = self.lines.get(at) {
                break Some(*line);
            }
            match at.rfind(['.', '[']) {
                Some(cut) => at = &at[..cut],
                None => break None,
            }
        };
        ConfigIssue {
            file: self.file.clone(),
            line,
            key: join_key(&self.prefix, key),
            message: message.into(),
        }
    }

    /// [`Self::issue`] as text; just `key: message` for a table that was not read from a file.
    pub fn describe(&self, key: &str, message: impl Into<String>) -> String {
        let issue = self.issue(key, message);
        if self.file.as_os_str().is_empty() {
            format!("{}: {}", issue.key, issue.message)
        } else {
            issue.to_string()
        }
    }
}

/// How Tandem authenticates to a REST system.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RestAuth {
    /// No credentials.
    #[default]
    None,
    /// HTTP Basic.
    Basic { username: String, password: Secret },
    /// `Authorization: Bearer <token>`.
    Bearer { token: Secret },
    /// A custom header, e.g. `X-API-Key`.
    Header { name: String, value: Secret },
}

impl RestAuth {
    pub fn as_str(&self) -> &'static str {
        match self {
            RestAuth::None => "none",
            RestAuth::Basic { .. } => "basic",
            RestAuth::Bearer { .. } => "bearer",
            RestAuth::Header { .. } => "header",
        }
    }
}

/// Wire format of a REST system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestFormat {
    /// The seed's `_externalData` API (`POST /API/issue[/{id}]`).
    #[default]
    Seed,
    /// Described by `operations`, `webhook` and `fields`.
    Custom,
}

impl RestFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            RestFormat::Seed => "seed",
            RestFormat::Custom => "custom",
        }
    }
}

/// What an incoming delivery from a REST system carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookPayload {
    /// The changed values.
    #[default]
    Full,
    /// Only an id and an event name; Tandem fetches the item.
    IdOnly,
}

/// `[connection.external.operations]`: the calls of a custom REST system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestOperations {
    /// Creates an item; needs `id_pointer` (where the new id is in the answer). Required when
    /// `create` allows new twins outside.
    #[serde(default)]
    pub create: Option<RestOperation>,
    /// Updates an item (`{id}` in the path). Required.
    pub update: RestOperation,
    /// Reads one item (`{id}` in the path); needed for `webhook_payload = "id_only"` and polls.
    #[serde(default)]
    pub fetch: Option<RestOperation>,
    /// Lists items changed since `{since}` (see `since_format`); needs `items_pointer` and
    /// `id_pointer`.
    #[serde(default)]
    pub list_changed: Option<RestOperation>,
}

/// One HTTP call of a custom REST system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestOperation {
    /// `GET` | `POST` | `PUT` | `PATCH` | `DELETE`.
    pub method: HttpMethod,
    /// Path after `base_url`; `{id}` and `{since}` are replaced (URL-encoded).
    pub path: String,
    /// JSON body template; `{{fields}}` becomes the object of written fields.
    #[serde(default)]
    pub body: Option<String>,
    /// JSON Pointer to the item id in the answer (create) or in each listed item.
    #[serde(default)]
    pub id_pointer: Option<String>,
    /// JSON Pointer to the item inside the answer (fetch). Default: the whole answer.
    #[serde(default)]
    pub item_pointer: Option<String>,
    /// JSON Pointer to the array of items (list_changed).
    #[serde(default)]
    pub items_pointer: Option<String>,
    /// JSON Pointer to each listed item's update time (list_changed).
    #[serde(default)]
    pub updated_pointer: Option<String>,
    /// How `{since}` is written (list_changed): `rfc3339_millis` (default,
    /// `2026-12-02T10:07:11.139Z`), `rfc3339` (whole seconds), `unix`, `unix_millis`, or a
    /// strftime pattern (UTC). Forms without milliseconds round down.
    #[serde(default)]
    pub since_format: Option<String>,
    /// How far `{since}` is moved back before it is written (list_changed), e.g. `"5s"`, for
    /// systems whose listing shows an item some time after its update time. Re-listed items
    /// cost no writes. Default `"0"`.
    #[serde(default)]
    pub since_overlap: Option<String>,
}

impl RestOperation {
    /// `since_overlap` as a duration (zero when unset; validated when the config loads).
    pub fn since_overlap(&self) -> Duration {
        self.since_overlap
            .as_deref()
            .and_then(|t| parse_duration(t).ok())
            .unwrap_or(Duration::ZERO)
    }
}

/// HTTP methods a REST operation may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HttpMethod {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "PATCH")]
    Patch,
    #[serde(rename = "DELETE")]
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// `[connection.external.webhook]`: where things sit in a custom incoming delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestWebhook {
    /// JSON Pointer to the item id.
    pub id_pointer: String,
    /// JSON Pointer to the event name (e.g. `created`, `updated`).
    #[serde(default)]
    pub event_pointer: Option<String>,
}

/// `[[connection.external.fields]]`: where one external field lives in the item JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestField {
    /// The external field id the mapping uses.
    pub id: String,
    /// Where to read it: a JSON Pointer (`/ticket/priority`) or a JSONPath
    /// (`$.custom_fields[?(@.id==2)].value`).
    pub read: String,
    /// JSON Pointer inside the body's `{{fields}}` object. Default: `read` when it is a
    /// pointer; required otherwise.
    #[serde(default)]
    pub write: Option<String>,
}

impl RestField {
    /// Where to write the field: `write`, or `read` when that is a plain pointer.
    pub fn write_pointer(&self) -> Option<&str> {
        self.write
            .as_deref()
            .or_else(|| self.read.starts_with('/').then_some(self.read.as_str()))
    }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Reads, checks and resolves a configuration file, with mappings, using the process
/// environment for `${VAR}` references.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::one(path, None, "", format!("cannot read: {e}")))?;
    load_str(&text, path, |name| std::env::var(name).ok())
}

/// Like [`load`], with the text given and `env` answering `${VAR}` lookups (for tests).
/// `path` names the file in messages and anchors relative paths.
pub fn load_str(
    text: &str,
    path: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut config = parse_str(text, path, env)?;
    load_mappings(&mut config)?;
    Ok(config)
}

/// Passes 1–3 without reading mapping files: syntax, `${VAR}`, schema and semantic checks.
pub fn parse_str(
    text: &str,
    path: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let issue = |span: Option<Range<usize>>, key: String, message: String| ConfigIssue {
        file: path.to_path_buf(),
        line: span.map(|s| mapping::line_at(text, s.start)),
        key,
        message,
    };

    // Pass 1: syntax.
    let mut doc = DeTable::parse(text).map_err(|e| ConfigError {
        issues: vec![issue(e.span(), String::new(), first_line(e.message()))],
    })?;

    // Pass 2a: environment substitution in string values, collecting every failure.
    let mut env_issues = Vec::new();
    substitute_table(doc.get_mut(), "", &env, &mut |span, key, msg| {
        env_issues.push((span.start, issue(Some(span), key, msg)))
    });
    if !env_issues.is_empty() {
        // The tree is walked in key order; people read files top to bottom.
        env_issues.sort_by_key(|(offset, _)| *offset);
        return Err(ConfigError {
            issues: env_issues.into_iter().map(|(_, i)| i).collect(),
        });
    }

    // Pass 2b: schema. The spans index outlives the tree serde consumes.
    let spans = SpanIndex::new(doc.get_ref(), text);
    let mut config: Config =
        Config::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| {
            let (span, key) = spans.locate_error(e.span(), e.message());
            ConfigError {
                issues: vec![issue(span, key, first_line(e.message()))],
            }
        })?;
    config.path = path.to_path_buf();

    // Pass 3: semantics.
    let mut issues = Vec::new();
    check_semantics(&mut config, &spans, &mut |key: String, message: String| {
        let span = spans.span_of(&key);
        issues.push(issue(span, key, message));
    });
    if !issues.is_empty() {
        issues.sort_by_key(|i| i.line);
        return Err(ConfigError { issues });
    }
    Ok(config)
}

/// Reads and validates each connection's mapping, storing it in `fields`. Problems of all
/// connections are reported together.
fn load_mappings(config: &mut Config) -> Result<(), ConfigError> {
    let mut issues = Vec::new();
    for conn in &mut config.connections {
        match load_mapping(&conn.mapping) {
            Ok(m) => conn.fields = m,
            Err(errors) => issues.extend(errors.errors.into_iter().map(|e| ConfigIssue {
                file: PathBuf::from(e.location.file),
                line: (e.location.line > 0).then_some(e.location.line),
                key: String::new(),
                message: e.message,
            })),
        }
    }
    // Custom REST systems must say where each mapped external field lives.
    for (i, conn) in config.connections.iter().enumerate() {
        if let ExternalConfig::Rest(r) = &conn.external
            && r.format == RestFormat::Custom
        {
            for m in &conn.fields.fields {
                if !r.fields.iter().any(|f| f.id == m.external_field) {
                    issues.push(ConfigIssue {
                        file: PathBuf::from(&m.location.file),
                        line: (m.location.line > 0).then_some(m.location.line),
                        key: String::new(),
                        message: format!(
                            "external field `{}` has no [[connection.external.fields]] entry \
                             in connection[{i}] ({}): add one saying where it is read and written",
                            m.external_field, conn.name
                        ),
                    });
                }
            }
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ConfigError { issues })
    }
}

/// Parses one mapping (file or inline) and validates it.
pub fn load_mapping(source: &MappingSource) -> Result<Mapping, MappingErrors> {
    let mapping = match source {
        MappingSource::File(path) => {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                mapping::MappingError::new(Location::new(&file, 0), format!("cannot read: {e}"))
            })?;
            if path.extension().is_some_and(|e| e == "toml") {
                mapping::parse_toml(&text, &file)?
            } else {
                mapping::parse_csv(&text, &file)?
            }
        }
        MappingSource::Inline(specs) => mapping::from_specs(specs.iter().cloned())?,
    };
    mapping::validate(&mapping)?;
    Ok(mapping)
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim().to_string()
}

/// Removes `.` and `name/..` pairs without touching the file system, so messages show
/// `examples/seed/x.csv` rather than `conf/../../examples/seed/x.csv`.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
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

fn config_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Replaces `${NAME}` in every string value of `table`; `$${` stands for a literal `${`.
fn substitute_table(
    table: &mut DeTable<'_>,
    prefix: &str,
    env: &impl Fn(&str) -> Option<String>,
    report: &mut impl FnMut(Range<usize>, String, String),
) {
    for (key, value) in table.iter_mut() {
        let path = join_key(prefix, key.get_ref());
        substitute_value(value, &path, env, report);
    }
}

fn substitute_value(
    value: &mut Spanned<DeValue<'_>>,
    path: &str,
    env: &impl Fn(&str) -> Option<String>,
    report: &mut impl FnMut(Range<usize>, String, String),
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if s.contains('$') => match expand_env(s, env) {
            Ok(expanded) => *s = expanded.into(),
            Err(msgs) => {
                for msg in msgs {
                    report(span.clone(), path.to_string(), msg);
                }
            }
        },
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{path}[{i}]"), env, report);
            }
        }
        DeValue::Table(t) => substitute_table(t, path, env, report),
        _ => {}
    }
}

/// Expands `${NAME}` references; `$${` is a literal `${`, any other `$` is kept as is.
/// Returns every problem in the string, not just the first.
pub fn expand_env(
    text: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                errors.push("unterminated `${` (write `$${` for a literal `${`)".to_string());
                rest = "";
                break;
            };
            let name = &tail[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                errors.push(format!(
                    "`${{{name}}}` is not a valid environment variable reference"
                ));
            } else {
                match env(name) {
                    Some(v) => out.push_str(&v),
                    None => errors.push(format!("environment variable `{name}` is not set")),
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Where each key and value sits in the file, by dotted path (`connection[0].jira.api`).
struct SpanIndex<'t> {
    /// path → (key span, value span)
    entries: HashMap<String, (Range<usize>, Range<usize>)>,
    text: &'t str,
}

impl<'t> SpanIndex<'t> {
    fn new(root: &DeTable<'_>, text: &'t str) -> Self {
        let mut entries = HashMap::new();
        Self::walk_table(root, "", &mut entries);
        SpanIndex { entries, text }
    }

    fn walk_table(
        table: &DeTable<'_>,
        prefix: &str,
        out: &mut HashMap<String, (Range<usize>, Range<usize>)>,
    ) {
        for (key, value) in table.iter() {
            let path = join_key(prefix, key.get_ref());
            out.insert(path.clone(), (key.span(), value.span()));
            Self::walk_value(value, &path, key.span(), out);
        }
    }

    fn walk_value(
        value: &Spanned<DeValue<'_>>,
        path: &str,
        key_span: Range<usize>,
        out: &mut HashMap<String, (Range<usize>, Range<usize>)>,
    ) {
        match value.get_ref() {
            DeValue::Table(t) => Self::walk_table(t, path, out),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    // An array element has no key of its own: its value span (for `[[x]]`,
                    // the element's own header) is what locates it.
                    out.insert(p.clone(), (item.span(), item.span()));
                    Self::walk_value(item, &p, key_span.clone(), out);
                }
            }
            _ => {}
        }
    }

    /// The span of `path`, or of its nearest existing parent (a missing key is reported at
    /// the table that should hold it).
    fn span_of(&self, path: &str) -> Option<Range<usize>> {
        let mut p = path;
        loop {
            if let Some((key, value)) = self.entries.get(p) {
                // Prefer the key: for `[table]` headers and multi-line values it is the line
                // people look at.
                return Some(if key.start <= value.start {
                    key.clone()
                } else {
                    value.clone()
                });
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// The lines of every key under `prefix`, relative to it (see [`KeyLines`]).
    fn key_lines(&self, prefix: &str, file: &Path) -> KeyLines {
        let inside = format!("{prefix}.");
        let lines = self
            .entries
            .iter()
            .filter_map(|(path, (key, _))| {
                let rel = path.strip_prefix(&inside)?;
                Some((rel.to_string(), mapping::line_at(self.text, key.start)))
            })
            .collect();
        KeyLines {
            file: file.to_path_buf(),
            prefix: prefix.to_string(),
            lines,
        }
    }

    /// The key path an error span belongs to: the innermost entry whose key or value
    /// contains it. serde's "unknown field `x`" errors may carry the span of the enclosing
    /// table (internally tagged enums buffer their content), so the named key is then looked
    /// up inside that table for an exact line.
    fn locate_error(
        &self,
        span: Option<Range<usize>>,
        message: &str,
    ) -> (Option<Range<usize>>, String) {
        let Some(span) = span else {
            return (None, String::new());
        };
        let mut best: Option<(&String, usize)> = None;
        for (path, (key, value)) in &self.entries {
            for r in [key, value] {
                if r.start <= span.start && span.start < r.end.max(r.start + 1) {
                    let width = r.end - r.start;
                    if best.is_none_or(|(_, w)| width < w) {
                        best = Some((path, width));
                    }
                }
            }
        }
        let Some((path, _)) = best else {
            return (Some(span), String::new());
        };
        let mut path = path.clone();
        if let Some(field) = backticked_after(message, "unknown field ") {
            // The key itself when the span already is it; else the shallowest key of that
            // name inside the table the span covers (nested tagged enums, like
            // `external.auth`, are buffered together).
            if path == field || path.ends_with(&format!(".{field}")) {
                return (Some(span), path);
            }
            let inside = format!("{path}.");
            // Several tables inside may hold a key of that name (`auth.name` is fine where
            // `fields[0].name` is not): the one whose table has a key serde expected there
            // is the culprit; else the shallowest, outside arrays of tables first.
            let expected = expected_fields(message);
            let beside_expected = |p: &str| {
                let parent = &p[..p.len() - field.len()];
                expected
                    .iter()
                    .any(|e| self.entries.contains_key(&format!("{parent}{e}")))
            };
            let found = self
                .entries
                .iter()
                .filter(|(p, _)| {
                    p.strip_prefix(&inside)
                        .is_some_and(|rest| rest == field || rest.ends_with(&format!(".{field}")))
                })
                .min_by_key(|(p, (key, _))| {
                    let rest = &p[inside.len()..];
                    (
                        !beside_expected(p),
                        rest.contains('['),
                        p.matches('.').count(),
                        key.start,
                    )
                });
            if let Some((p, (key, _))) = found {
                return (Some(key.clone()), p.clone());
            }
            path = join_key(&path, &field);
        } else if let Some(field) = backticked_after(message, "missing field ") {
            let span = self.span_of(&path).unwrap_or(span);
            return (Some(span), join_key(&path, &field));
        }
        (Some(span), path)
    }
}

/// The keys a serde "unknown field" message says were expected (`expected one of `a`, `b``
/// or `expected `a``), in order.
fn expected_fields(message: &str) -> Vec<String> {
    let Some(at) = message.find("expected ") else {
        return Vec::new();
    };
    message[at..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The text inside the backticks after `marker` in a serde message.
fn backticked_after(message: &str, marker: &str) -> Option<String> {
    let rest = &message[message.find(marker)? + marker.len()..];
    let rest = rest.strip_prefix('`')?;
    Some(rest[..rest.find('`')?].to_string())
}

// ---------------------------------------------------------------------------------------------
// Semantic checks
// ---------------------------------------------------------------------------------------------

/// Checks what serde cannot, reporting `(key path, message)`; on the way it resolves relative
/// paths (mapping files, the SQLite file) against the config's folder, since that is where
/// their existence is checked.
fn check_semantics(
    config: &mut Config,
    spans: &SpanIndex<'_>,
    report: &mut impl FnMut(String, String),
) {
    let mut issue = |key: &str, msg: String| report(key.to_string(), msg);

    let w = &config.worker;
    if w.concurrency == 0 {
        issue("worker.concurrency", "must be at least 1".into());
    }
    if w.max_attempts == 0 {
        issue("worker.max_attempts", "must be at least 1".into());
    }
    if w.lease_seconds == 0 {
        issue("worker.lease_seconds", "must be at least 1".into());
    }
    if w.request_timeout_ms == Some(0) {
        issue("worker.request_timeout_ms", "must be at least 1".into());
    } else if let Some(ms) = w.request_timeout_ms
        && w.lease_seconds > 0
        && ms >= w.lease_seconds.saturating_mul(1000)
    {
        // A call still running when the lease ends lets another worker take the event.
        issue(
            "worker.request_timeout_ms",
            format!(
                "{ms} ms is not shorter than the lease (lease_seconds = {})",
                w.lease_seconds
            ),
        );
    }
    if w.backoff_base_ms > w.backoff_cap_ms {
        issue(
            "worker.backoff_base_ms",
            format!(
                "{} is larger than backoff_cap_ms ({})",
                w.backoff_base_ms, w.backoff_cap_ms
            ),
        );
    }
    let server = &config.server;
    if server.max_body_bytes == 0 {
        issue("server.max_body_bytes", "must be at least 1".into());
    }
    for (key, timeout) in [
        ("server.header_read_timeout", server.header_read_timeout),
        ("server.body_read_timeout", server.body_read_timeout),
        ("server.write_timeout", server.write_timeout),
    ] {
        // "0" means "off" elsewhere; here off would let one slow client hold a connection
        // for ever, so it is refused rather than honoured.
        if timeout.is_zero() {
            issue(
                key,
                "must be longer than 0: without it a client that stops sending holds its connection for ever".into(),
            );
        }
    }
    if !(1..=MAX_CONNECTIONS_LIMIT).contains(&server.max_connections) {
        issue(
            "server.max_connections",
            format!(
                "{} is out of range: expected 1 to {MAX_CONNECTIONS_LIMIT}",
                server.max_connections
            ),
        );
    }

    let dir = config_dir(&config.path).to_path_buf();
    config.storage.url = match resolve_storage_url(&config.storage.url, &dir) {
        Ok(url) => url,
        Err(msg) => {
            issue("storage.url", msg);
            config.storage.url.clone()
        }
    };

    if config.connections.is_empty() {
        issue(
            "connection",
            "at least one [[connection]] is required".into(),
        );
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, conn) in config.connections.iter_mut().enumerate() {
        let at = format!("connection[{i}]");
        let valid_name = !conn.name.is_empty()
            && conn
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid_name {
            issue(
                &format!("{at}.name"),
                format!(
                    "`{}` is not a valid name: use a-z, 0-9, `_` and `-`",
                    conn.name
                ),
            );
        }
        if let Some(first) = seen.insert(conn.name.clone(), i) {
            issue(
                &format!("{at}.name"),
                format!(
                    "connection name `{}` is already used by connection[{first}]",
                    conn.name
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
                &at,
                "no field mapping: add `mapping = \"fieldMappings.csv\"` or [[connection.field]] tables".into(),
            ),
            _ => {}
        }
        match &mut conn.mapping {
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
                    *p = normalize(&dir.join(&*p));
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
                let file = config.path.display().to_string();
                for (j, (_, loc)) in fields.iter_mut().enumerate() {
                    let line = spans
                        .span_of(&format!("{at}.field[{j}]"))
                        .map(|s| mapping::line_at(spans.text, s.start))
                        .unwrap_or(0);
                    *loc = Location::new(file.clone(), line);
                }
            }
        }

        check_jira(&conn.jira, &format!("{at}.jira"), &mut issue);
        if conn.jira.dynamic_webhook_url.is_some()
            && conn
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
        match &mut conn.external {
            ExternalConfig::Jira(j) => {
                check_jira(j, &format!("{at}.external"), &mut issue);
                if j.dynamic_webhook_url.is_some() {
                    issue(
                        &format!("{at}.external.dynamic_webhook_url"),
                        "dynamic webhooks are only registered for [connection.jira]".into(),
                    );
                }
            }
            ExternalConfig::Rest(r) => {
                r.key_lines = spans.key_lines(&format!("{at}.external"), &config.path);
                check_rest(r, conn.create, &format!("{at}.external"), &mut issue)
            }
        }
    }
}

fn check_url(url: &str, key: &str, issue: &mut impl FnMut(&str, String)) {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && !url.contains(char::is_whitespace);
    if !ok {
        issue(key, format!("`{url}` is not an http:// or https:// URL"));
    }
}

fn check_jira(j: &JiraConfig, at: &str, issue: &mut impl FnMut(&str, String)) {
    check_url(&j.base_url, &format!("{at}.base_url"), issue);
    match j.api {
        JiraApi::Cloud if j.oauth_token.as_ref().is_some_and(|t| !t.is_empty()) => {
            if j.api_token.is_some() {
                issue(
                    &format!("{at}.api_token"),
                    "give either `oauth_token` or `email` + `api_token`, not both".into(),
                );
            }
            if j.pat.is_some() {
                issue(
                    &format!("{at}.pat"),
                    "`pat` is for api = \"datacenter\"; cloud uses oauth_token".into(),
                );
            }
        }
        JiraApi::Cloud => {
            if j.email.as_deref().is_none_or(str::is_empty) {
                issue(
                    &format!("{at}.email"),
                    "api = \"cloud\" needs `email` (Basic auth with e-mail and API token)".into(),
                );
            }
            if j.api_token.as_ref().is_none_or(Secret::is_empty) {
                issue(
                    &format!("{at}.api_token"),
                    "api = \"cloud\" needs `api_token`".into(),
                );
            }
            if j.pat.is_some() {
                issue(
                    &format!("{at}.pat"),
                    "`pat` is for api = \"datacenter\"; cloud uses email + api_token".into(),
                );
            }
        }
        JiraApi::Datacenter => {
            if j.pat.as_ref().is_none_or(Secret::is_empty) {
                issue(
                    &format!("{at}.pat"),
                    "api = \"datacenter\" needs `pat` (a personal access token)".into(),
                );
            }
            if j.api_token.is_some() {
                issue(
                    &format!("{at}.api_token"),
                    "`api_token` is for api = \"cloud\"; datacenter uses `pat`".into(),
                );
            }
            if j.oauth_token.is_some() {
                issue(
                    &format!("{at}.oauth_token"),
                    "`oauth_token` is for api = \"cloud\"; datacenter uses `pat`".into(),
                );
            }
        }
    }
    if let Some(url) = &j.dynamic_webhook_url {
        let key = format!("{at}.dynamic_webhook_url");
        // Jira answers 403 to API tokens and PATs on /rest/api/3/webhook.
        if j.oauth_token.as_ref().is_none_or(Secret::is_empty) {
            issue(
                &key,
                "needs `oauth_token`: only OAuth 2.0 apps may register dynamic webhooks \
                 (with an API token, use `tandem jira webhook register` for an admin webhook)"
                    .into(),
            );
        }
        if let Err(e) = crate::connector::jira::admin::webhook_url(url, "x") {
            issue(&key, e);
        }
        // Jira never signs dynamic deliveries, so a secret would make Tandem refuse them all.
        if j.webhook_secret.as_ref().is_some_and(|s| !s.is_empty()) {
            issue(
                &format!("{at}.webhook_secret"),
                "cannot be used with dynamic_webhook_url: Jira does not sign dynamic webhook \
                 deliveries, so every one would be refused"
                    .into(),
            );
        }
    }
    if j.project.trim().is_empty() {
        issue(&format!("{at}.project"), "must not be empty".into());
    }
    if j.link_field.trim().is_empty() {
        issue(&format!("{at}.link_field"), "must not be empty".into());
    }
}

fn check_pointer(p: &str, key: &str, issue: &mut impl FnMut(&str, String)) {
    if let Err(msg) = crate::connector::rest::fields::check_pointer(p) {
        issue(key, msg);
    }
}

fn check_rest(
    r: &RestConfig,
    create: CreatePolicy,
    at: &str,
    issue: &mut impl FnMut(&str, String),
) {
    check_url(&r.base_url, &format!("{at}.base_url"), issue);
    match r.format {
        RestFormat::Seed => {
            for (key, present) in [
                ("operations", r.operations.is_some()),
                ("webhook", r.webhook.is_some()),
                ("fields", !r.fields.is_empty()),
            ] {
                if present {
                    issue(
                        &format!("{at}.{key}"),
                        "only used with format = \"custom\"".into(),
                    );
                }
            }
        }
        RestFormat::Custom => {
            let Some(ops) = &r.operations else {
                issue(
                    &format!("{at}.operations"),
                    "format = \"custom\" needs [connection.external.operations] (at least `update`)"
                        .into(),
                );
                return;
            };
            let ops_at = format!("{at}.operations");
            let all = [
                ("create", ops.create.as_ref()),
                ("update", Some(&ops.update)),
                ("fetch", ops.fetch.as_ref()),
                ("list_changed", ops.list_changed.as_ref()),
            ];
            for (name, op) in all {
                let Some(op) = op else { continue };
                let k = format!("{ops_at}.{name}");
                if !op.path.starts_with('/') {
                    issue(
                        &format!("{k}.path"),
                        format!("`{}` must start with `/`", op.path),
                    );
                }
                for (pk, p) in [
                    ("id_pointer", &op.id_pointer),
                    ("item_pointer", &op.item_pointer),
                    ("items_pointer", &op.items_pointer),
                    ("updated_pointer", &op.updated_pointer),
                ] {
                    if let Some(p) = p {
                        check_pointer(p, &format!("{k}.{pk}"), issue);
                    }
                }
                if name == "list_changed" {
                    if let Err(msg) = crate::connector::rest::since::SinceFormat::parse(
                        op.since_format.as_deref(),
                    ) {
                        issue(&format!("{k}.since_format"), msg);
                    }
                    if let Some(Err(msg)) = op.since_overlap.as_deref().map(parse_duration) {
                        issue(&format!("{k}.since_overlap"), msg);
                    }
                } else {
                    for (key, present) in [
                        ("since_format", op.since_format.is_some()),
                        ("since_overlap", op.since_overlap.is_some()),
                    ] {
                        if present {
                            issue(&format!("{k}.{key}"), "only used by `list_changed`".into());
                        }
                    }
                }
                if let Some(body) = &op.body
                    && !body.contains("{{fields}}")
                    && matches!(name, "create" | "update")
                {
                    issue(
                        &format!("{k}.body"),
                        "the body template must contain `{{fields}}`".into(),
                    );
                }
            }
            if !ops.update.path.contains("{id}") {
                issue(
                    &format!("{ops_at}.update.path"),
                    "must contain `{id}`".into(),
                );
            }
            if let Some(f) = &ops.fetch
                && !f.path.contains("{id}")
            {
                issue(
                    &format!("{ops_at}.fetch.path"),
                    "must contain `{id}`".into(),
                );
            }
            match &ops.create {
                Some(c) if c.id_pointer.is_none() => issue(
                    &format!("{ops_at}.create.id_pointer"),
                    "create needs `id_pointer`: where the new item's id is in the answer".into(),
                ),
                None if create.allows_create_on(tandem_core::Side::External) => issue(
                    &format!("{ops_at}.create"),
                    "create = \"both\" or \"to_external\" needs an `operations.create` call (or set create = \"to_jira\" / \"none\")".into(),
                ),
                _ => {}
            }
            if let Some(l) = &ops.list_changed {
                if l.items_pointer.is_none() {
                    issue(
                        &format!("{ops_at}.list_changed.items_pointer"),
                        "list_changed needs `items_pointer`".into(),
                    );
                }
                if l.id_pointer.is_none() {
                    issue(
                        &format!("{ops_at}.list_changed.id_pointer"),
                        "list_changed needs `id_pointer`".into(),
                    );
                }
            }
            if r.webhook_payload == WebhookPayload::IdOnly && ops.fetch.is_none() {
                issue(
                    &format!("{at}.webhook_payload"),
                    "\"id_only\" needs an `operations.fetch` call to read the item".into(),
                );
            }
            if let Some(w) = &r.webhook {
                check_pointer(&w.id_pointer, &format!("{at}.webhook.id_pointer"), issue);
                if let Some(p) = &w.event_pointer {
                    check_pointer(p, &format!("{at}.webhook.event_pointer"), issue);
                }
            }
            let mut ids = HashMap::new();
            for (i, f) in r.fields.iter().enumerate() {
                let k = format!("{at}.fields[{i}]");
                if let Some(prev) = ids.insert(f.id.as_str(), i) {
                    issue(
                        &format!("{k}.id"),
                        format!("field `{}` is already described by fields[{prev}]", f.id),
                    );
                }
                if f.read.trim_start().starts_with('$') {
                    if let Err(e) = serde_json_path::JsonPath::parse(f.read.trim()) {
                        issue(&format!("{k}.read"), format!("invalid JSONPath: {e}"));
                    }
                } else {
                    check_pointer(f.read.trim(), &format!("{k}.read"), issue);
                }
                match &f.write {
                    Some(w) => check_pointer(w, &format!("{k}.write"), issue),
                    None if !f.read.starts_with('/') => issue(
                        &format!("{k}.write"),
                        "`read` is a JSONPath, so `write` (a JSON Pointer) is required".into(),
                    ),
                    None => {}
                }
            }
        }
    }
}

/// Makes a relative SQLite path absolute against the config folder, so the database does not
/// move with the working directory.
fn resolve_storage_url(url: &str, dir: &Path) -> Result<String, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url.to_string());
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Err(format!(
            "`{}`: expected sqlite://FILE or postgres://...",
            redact_url_password(url)
        ));
    };
    if rest.starts_with(":memory:") {
        return Ok(url.to_string());
    }
    let (file, query) = match rest.find('?') {
        Some(q) => (&rest[..q], &rest[q..]),
        None => (rest, ""),
    };
    if file.is_empty() {
        return Err("sqlite URL names no file".into());
    }
    let file = Path::new(file);
    let abs = if file.is_absolute() {
        file.to_path_buf()
    } else {
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|cwd| cwd.join(dir))
                .unwrap_or_else(|_| dir.to_path_buf())
        };
        dir.join(file)
    };
    Ok(format!("sqlite://{}{query}", abs.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
