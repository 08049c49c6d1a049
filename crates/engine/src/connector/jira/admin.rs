//! Jira administration helpers: `tandem jira webhook register`.
//!
//! An admin webhook (`POST /rest/webhooks/1.0/webhook`, admin rights needed) is permanent and
//! may carry arbitrary JQL and a secret, so it is what a connection wants: it is named after
//! the connection, points at `{public_url}/webhooks/{connection}/jira`, listens to the events
//! the engine reads, is filtered by the same JQL the poller uses, and is signed with the
//! connection's `webhook_secret` when one is set (Jira then sends `X-Hub-Signature`).
//!
//! Dynamic webhooks (`/rest/api/3/webhook`, OAuth and Connect apps only, expiring after 30
//! days unless refreshed) are registered and kept alive by `tandem serve` instead; see
//! [`super::dynamic`].

use super::{JiraConnector, scope_jql};
use crate::config::ConnectionConfig;
use crate::connector::{ConnectorContext, ConnectorError, ConnectorResult};
use serde_json::{Value, json};
use tandem_core::Side;

/// The events an admin webhook for Tandem subscribes to.
pub const WEBHOOK_EVENTS: [&str; 3] = [
    "jira:issue_created",
    "jira:issue_updated",
    "comment_created",
];

/// What was registered, safe to print: the secret is only said to be set.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredWebhook {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub jql: String,
    pub signed: bool,
    /// Jira's URL for the new webhook (`self`), when it answered one.
    pub location: Option<String>,
}

/// The webhook's name for a connection.
pub fn webhook_name(connection: &str) -> String {
    format!("tandem-{connection}")
}

/// Where Jira should deliver a connection's events; the configuration checks
/// `dynamic_webhook_url` with the same function.
pub use crate::config::jira_webhook_url as webhook_url;

/// Registers the admin webhook for `conn` on its Jira side.
pub async fn register_webhook(
    conn: &ConnectionConfig,
    public_url: &str,
    http: reqwest::Client,
) -> ConnectorResult<RegisteredWebhook> {
    let url = webhook_url(public_url, &conn.name).map_err(ConnectorError::permanent)?;
    let jql = scope_jql(&conn.jira.project, &conn.filter);
    let connector = JiraConnector::new(
        &conn.jira,
        ConnectorContext::new(Side::Jira, conn.fields.clone(), http),
    )
    .map_err(|e| ConnectorError::permanent(e.to_string()))?;
    let secret = conn
        .jira
        .webhook_secret
        .as_ref()
        .map(|s| s.expose().to_string())
        .filter(|s| !s.is_empty());
    let mut body = json!({
        "name": webhook_name(&conn.name),
        "url": url,
        "events": WEBHOOK_EVENTS,
        "filters": { "issue-related-events-section": jql },
        "excludeBody": false,
    });
    if let (Some(s), Some(obj)) = (&secret, body.as_object_mut()) {
        obj.insert("secret".into(), json!(s));
    }
    let answer = connector.client().register_admin_webhook(&body).await?;
    Ok(RegisteredWebhook {
        name: webhook_name(&conn.name),
        url,
        events: WEBHOOK_EVENTS.iter().map(|e| e.to_string()).collect(),
        jql,
        signed: secret.is_some(),
        location: answer
            .get("self")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}
