//! `[connection.jira]` (and `[connection.external]` with `type = "jira"`): a Jira site, its
//! API flavour and credentials, and where new twins go.

use crate::secret::Secret;
use serde::Deserialize;

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
