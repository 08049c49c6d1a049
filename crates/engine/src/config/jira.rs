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

impl JiraConfig {
    /// What serde cannot check in a Jira table at `at`: credentials that fit the API flavour,
    /// and what a dynamic webhook needs.
    pub(super) fn check(&self, at: &str, issue: &mut impl FnMut(&str, String)) {
        super::check_url(&self.base_url, &format!("{at}.base_url"), issue);
        match self.api {
            JiraApi::Cloud if self.oauth_token.as_ref().is_some_and(|t| !t.is_empty()) => {
                if self.api_token.is_some() {
                    issue(
                        &format!("{at}.api_token"),
                        "give either `oauth_token` or `email` + `api_token`, not both".into(),
                    );
                }
                if self.pat.is_some() {
                    issue(
                        &format!("{at}.pat"),
                        "`pat` is for api = \"datacenter\"; cloud uses oauth_token".into(),
                    );
                }
            }
            JiraApi::Cloud => {
                if self.email.as_deref().is_none_or(str::is_empty) {
                    issue(
                        &format!("{at}.email"),
                        "api = \"cloud\" needs `email` (Basic auth with e-mail and API token)"
                            .into(),
                    );
                }
                if self.api_token.as_ref().is_none_or(Secret::is_empty) {
                    issue(
                        &format!("{at}.api_token"),
                        "api = \"cloud\" needs `api_token`".into(),
                    );
                }
                if self.pat.is_some() {
                    issue(
                        &format!("{at}.pat"),
                        "`pat` is for api = \"datacenter\"; cloud uses email + api_token".into(),
                    );
                }
            }
            JiraApi::Datacenter => {
                if self.pat.as_ref().is_none_or(Secret::is_empty) {
                    issue(
                        &format!("{at}.pat"),
                        "api = \"datacenter\" needs `pat` (a personal access token)".into(),
                    );
                }
                if self.api_token.is_some() {
                    issue(
                        &format!("{at}.api_token"),
                        "`api_token` is for api = \"cloud\"; datacenter uses `pat`".into(),
                    );
                }
                if self.oauth_token.is_some() {
                    issue(
                        &format!("{at}.oauth_token"),
                        "`oauth_token` is for api = \"cloud\"; datacenter uses `pat`".into(),
                    );
                }
            }
        }
        if let Some(url) = &self.dynamic_webhook_url {
            let key = format!("{at}.dynamic_webhook_url");
            // Jira answers 403 to API tokens and PATs on /rest/api/3/webhook.
            if self.oauth_token.as_ref().is_none_or(Secret::is_empty) {
                issue(
                    &key,
                    "needs `oauth_token`: only OAuth 2.0 apps may register dynamic webhooks \
                     (with an API token, use `tandem jira webhook register` for an admin webhook)"
                        .into(),
                );
            }
            if let Err(e) = jira_webhook_url(url, "x") {
                issue(&key, e);
            }
            // Jira never signs dynamic deliveries, so a secret would make Tandem refuse them all.
            if self.webhook_secret.as_ref().is_some_and(|s| !s.is_empty()) {
                issue(
                    &format!("{at}.webhook_secret"),
                    "cannot be used with dynamic_webhook_url: Jira does not sign dynamic webhook \
                     deliveries, so every one would be refused"
                        .into(),
                );
            }
        }
        if self.project.trim().is_empty() {
            issue(&format!("{at}.project"), "must not be empty".into());
        }
        if self.link_field.trim().is_empty() {
            issue(&format!("{at}.link_field"), "must not be empty".into());
        }
    }
}

fn default_issue_type() -> String {
    "Task".to_string()
}
fn default_link_field() -> String {
    "External ID".to_string()
}

/// Where Jira should deliver a connection's events, from Tandem's public base URL:
/// `{public_url}/webhooks/{connection}/jira`. Used to check `dynamic_webhook_url` when the
/// configuration loads, and to register admin and dynamic webhooks.
pub fn jira_webhook_url(public_url: &str, connection: &str) -> Result<String, String> {
    let base = public_url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(base).map_err(|e| format!("`{base}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "`{base}` must be an http:// or https:// URL with a host"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("`{base}` must not carry a query or fragment"));
    }
    Ok(format!("{base}/webhooks/{connection}/jira"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_built_from_a_clean_base() {
        assert_eq!(
            jira_webhook_url("https://sync.example.com/", "seed").unwrap(),
            "https://sync.example.com/webhooks/seed/jira"
        );
        assert_eq!(
            jira_webhook_url("http://10.0.0.1:8080/tandem", "a-b").unwrap(),
            "http://10.0.0.1:8080/tandem/webhooks/a-b/jira"
        );
        assert!(jira_webhook_url("sync.example.com", "seed").is_err());
        assert!(jira_webhook_url("ftp://x", "seed").is_err());
        assert!(jira_webhook_url("https://x/?a=1", "seed").is_err());
    }
}
