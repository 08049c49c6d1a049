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
//!
//! One file per concern: `error.rs` (the issues a load reports), `load.rs` (the passes),
//! `spans.rs` (where keys sit in the file), `preset.rs` (shipped connector presets merged
//! in before validation), `env.rs` (`${VAR}` substitution), `duration.rs`,
//! and one file per section with its struct, defaults and check (`server.rs`, `storage.rs`,
//! `worker.rs`, `connection.rs`, `jira.rs`, `rest.rs`). Everything public is re-exported
//! here, so `config::JiraConfig` and `config::load` stay the paths callers use.

mod attachments;
mod comments;
mod connection;
mod duration;
mod env;
mod error;
mod jira;
mod load;
mod preset;
mod rest;
mod rest_attachment;
mod server;
mod since;
mod spans;
mod storage;
mod users;
mod worker;

#[cfg(test)]
mod tests;

pub use self::attachments::AttachmentsConfig;
pub use self::comments::CommentsConfig;
pub use self::connection::{
    ConnectionConfig, CreatePolicy, ExternalConfig, FieldExprs, FilterConfig, MappingSource,
};
pub use self::duration::parse_duration;
pub use self::env::expand_env;
pub use self::error::{ConfigError, ConfigIssue};
pub use self::jira::{JiraApi, JiraConfig, jira_webhook_url};
pub use self::load::{load, load_mapping, load_str, parse_str};
pub use self::preset::{PRESETS, Preset, PresetInfo};
pub use self::rest::{
    HttpMethod, RestAuth, RestComment, RestConfig, RestField, RestFormat, RestOperation,
    RestOperations, RestWebhook, WebhookPayload, check_json_pointer,
};
pub use self::rest_attachment::{
    AttachmentDelete, AttachmentDownload, AttachmentEncoding, AttachmentList, AttachmentUpload,
    RestAttachment, origin as attachment_origin,
};
pub use self::server::{ADMIN_USER, ConsoleUser, MAX_CONNECTIONS_LIMIT, ServerConfig};
pub use self::since::SinceFormat;
pub use self::spans::KeyLines;
pub use self::storage::StorageConfig;
pub use self::users::UsersConfig;
pub use self::worker::WorkerConfig;

use self::spans::SpanIndex;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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

    /// The semantic pass: what serde cannot check, reporting `(key path, message)`. Each
    /// section checks itself; here are the checks across sections. On the way relative paths
    /// (mapping files, the SQLite file) are resolved against the config's folder, since that
    /// is where their existence is checked.
    fn check(&mut self, spans: &SpanIndex<'_>, issue: &mut impl FnMut(&str, String)) {
        self.worker.check(issue);
        self.server.check(issue);
        self.storage.check(config_dir(&self.path), issue);
        if self.connections.is_empty() {
            issue(
                "connection",
                "at least one [[connection]] is required".into(),
            );
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, conn) in self.connections.iter_mut().enumerate() {
            let first_with_name = seen.insert(conn.name.clone(), i);
            conn.check(
                &format!("connection[{i}]"),
                first_with_name,
                spans,
                &self.path,
                issue,
            );
        }
    }
}

/// A base URL must be http(s) with something after the scheme; shared by the Jira and REST
/// checks.
fn check_url(url: &str, key: &str, issue: &mut impl FnMut(&str, String)) {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && !url.contains(char::is_whitespace);
    if !ok {
        issue(key, format!("`{url}` is not an http:// or https:// URL"));
    }
}

/// The folder of the file at `path`: relative paths inside it are resolved against it.
fn config_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
