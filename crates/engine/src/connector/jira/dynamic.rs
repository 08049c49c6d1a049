//! Dynamic webhooks for OAuth 2.0 apps: registered at start, refreshed before they expire.
//!
//! Jira lets OAuth and Connect apps (not API tokens or PATs: 403) register webhooks through
//! `POST /rest/api/3/webhook`. Unlike admin webhooks they need no admin rights, but they stop
//! delivering 30 days after registration or the last `PUT /rest/api/3/webhook/refresh`, and
//! their `jqlFilter` only understands a subset of JQL (project, issuetype, status, … with
//! `= != IN NOT IN`). So for a connection with `oauth_token` and `dynamic_webhook_url`:
//!
//! - at start the app's hooks are listed (paged) and one pointing at our URL with our spec is
//!   reused, so a restart never piles up duplicates; hooks at our URL with an outdated spec
//!   (the mapping or filter changed) are deleted and a fresh one registered;
//! - every [`CHECK_INTERVAL`] the hook is looked up again and refreshed once less than
//!   [`REFRESH_MARGIN_DAYS`] remain; a hook that is gone (expired while Tandem was down, or
//!   deleted by someone) is registered anew. Jira answers a refresh of an expired id with a
//!   date anyway, which is why the check lists rather than trusting that answer;
//! - a failed check is retried with doubling delays (from [`RETRY_BASE`] up to the interval),
//!   so a Jira outage near expiry does not cost a whole interval.
//!
//! Deliveries are not HMAC-signed (OAuth apps get a JWT bearer instead), so the Jira route
//! accepts them unsigned when no `webhook_secret` is set, as for any unsigned webhook. The
//! poller remains the safety net for anything a webhook misses.

use super::{JiraConnector, fields, jql_list, jql_string};
use crate::config::{ConnectionConfig, FilterConfig};
use crate::connector::{ConnectorContext, ConnectorError, ConnectorResult};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tandem_core::Side;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// The events a dynamic webhook for Tandem subscribes to.
pub const EVENTS: [&str; 2] = ["jira:issue_created", "jira:issue_updated"];
/// A hook is refreshed once fewer than this many days remain of its 30.
pub const REFRESH_MARGIN_DAYS: i64 = 7;
/// How often the hook is checked.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// First retry delay after a failed check; doubles up to the check interval.
pub const RETRY_BASE: Duration = Duration::from_secs(30);
/// Pages of `GET /webhook` read at most (100 hooks each), so a misbehaving server that
/// never says "last page" cannot keep us listing.
const MAX_PAGES: u64 = 50;

/// What Tandem knows about its registered hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookState {
    pub ids: Vec<u64>,
    pub expires: DateTime<Utc>,
}

/// What one check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No hook of ours existed yet: one was registered.
    Registered,
    /// A hook registered earlier (e.g. before a restart) was taken over.
    Reused,
    /// The hook was close to expiry and got 30 more days.
    Refreshed,
    /// The hook we knew was gone or expired: a new one was registered.
    Reregistered,
    /// Nothing to do yet.
    NotDue,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Registered => "registered",
            Outcome::Reused => "reused",
            Outcome::Refreshed => "refreshed",
            Outcome::Reregistered => "reregistered",
            Outcome::NotDue => "not_due",
        }
    }
}

/// One hook as `GET /webhook` lists it.
#[derive(Debug, Clone)]
struct Listed {
    id: u64,
    url: String,
    jql: String,
    events: Vec<String>,
    field_ids: Vec<String>,
    expires: Option<DateTime<Utc>>,
}

/// What we register: events, filter and watched fields.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    jql: String,
    field_ids: Vec<String>,
}

/// The dynamic webhook of one connection.
pub struct DynamicWebhook {
    connection: String,
    url: String,
    jql: String,
    connector: JiraConnector,
    /// Also serialises checks: the periodic task and a test's `refresh_once` never interleave.
    state: Mutex<Option<HookState>>,
}

impl std::fmt::Debug for DynamicWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicWebhook")
            .field("connection", &self.connection)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The `jqlFilter` for a connection: its projects (the filter's, else the Jira `project`) and
/// issue types, the part of the scope a dynamic webhook can express. Extra `filter.jql` is
/// refused with `dynamic_webhook_url` by the config check.
pub fn subset_jql(project: &str, filter: &FilterConfig) -> String {
    let projects = if filter.projects.is_empty() {
        jql_string(project.trim())
    } else {
        jql_list(&filter.projects)
    };
    let mut jql = format!("project IN ({projects})");
    if !filter.issue_types.is_empty() {
        jql.push_str(&format!(
            " AND issuetype IN ({})",
            jql_list(&filter.issue_types)
        ));
    }
    jql
}

impl DynamicWebhook {
    /// The dynamic webhook a connection asks for, or `None` when it has no
    /// `dynamic_webhook_url` (or no `oauth_token`, which the config check already refuses).
    pub fn for_connection(
        conn: &ConnectionConfig,
        http: reqwest::Client,
    ) -> anyhow::Result<Option<Self>> {
        let (Some(base), Some(_)) = (&conn.jira.dynamic_webhook_url, &conn.jira.oauth_token) else {
            return Ok(None);
        };
        let url = super::admin::webhook_url(base, &conn.name)
            .map_err(|e| anyhow::anyhow!("connection `{}`: dynamic_webhook_url {e}", conn.name))?;
        let connector = JiraConnector::new(
            &conn.jira,
            ConnectorContext::new(Side::Jira, conn.fields.clone(), http),
        )?;
        Ok(Some(DynamicWebhook {
            connection: conn.name.clone(),
            url,
            jql: subset_jql(&conn.jira.project, &conn.filter),
            connector,
            state: Mutex::new(None),
        }))
    }

    pub fn connection(&self) -> &str {
        &self.connection
    }

    /// Where Jira delivers: `{dynamic_webhook_url}/webhooks/{connection}/jira`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The registered hook, once a check has found or registered it.
    pub async fn state(&self) -> Option<HookState> {
        self.state.lock().await.clone()
    }

    /// One check at time `now`: find or register the hook, refresh it when due. Counted in
    /// `tandem_dynamic_webhook_refresh_total{connection,outcome}` (checks with nothing to do
    /// are not counted).
    pub async fn refresh_once(&self, now: DateTime<Utc>) -> ConnectorResult<Outcome> {
        let result = self.check(now).await;
        match &result {
            Ok(Outcome::NotDue) => {}
            Ok(outcome) => count(&self.connection, outcome.as_str()),
            Err(_) => count(&self.connection, "failed"),
        }
        result
    }

    async fn check(&self, now: DateTime<Utc>) -> ConnectorResult<Outcome> {
        let mut state = self.state.lock().await;
        let spec = Spec {
            jql: self.jql.clone(),
            field_ids: self.connector.mapped_field_ids().await?,
        };
        let ours: Vec<Listed> = self
            .list()
            .await?
            .into_iter()
            .filter(|h| h.url == self.url && h.expires.is_none_or(|e| e > now))
            .collect();
        let known = state.as_ref().map(|s| s.ids.clone()).unwrap_or_default();
        // The hook we registered, else (after a restart) one with our spec.
        let chosen = ours
            .iter()
            .find(|h| known.contains(&h.id))
            .or_else(|| ours.iter().find(|h| matches_spec(h, &spec)))
            .cloned();
        let extra: Vec<u64> = ours
            .iter()
            .map(|h| h.id)
            .filter(|id| chosen.as_ref().is_none_or(|c| c.id != *id))
            .collect();
        if !extra.is_empty() {
            // Ours by URL, but duplicates or registered with an outdated spec.
            info!(connection = %self.connection, ids = ?extra, "deleting surplus or outdated dynamic webhooks");
            self.connector
                .client()
                .delete_dynamic_webhooks(&extra)
                .await?;
        }
        let Some(hook) = chosen else {
            let new = self.register(&spec, now).await?;
            let outcome = if state.is_some() {
                warn!(connection = %self.connection, old = ?known, new = ?new.ids, "dynamic webhook was gone or expired; registered a new one");
                Outcome::Reregistered
            } else {
                info!(connection = %self.connection, url = %self.url, ids = ?new.ids, "dynamic webhook registered");
                Outcome::Registered
            };
            *state = Some(new);
            return Ok(outcome);
        };
        let first = state.is_none();
        // A listing without an expiry is refreshed, which tells us the expiry.
        let expires = hook.expires.unwrap_or(now);
        *state = Some(HookState {
            ids: vec![hook.id],
            expires,
        });
        if expires - now >= chrono::Duration::days(REFRESH_MARGIN_DAYS) {
            if first {
                info!(connection = %self.connection, id = hook.id, %expires, "reusing the dynamic webhook registered earlier");
                return Ok(Outcome::Reused);
            }
            debug!(connection = %self.connection, %expires, "dynamic webhook not due for refresh");
            return Ok(Outcome::NotDue);
        }
        let answer = match self
            .connector
            .client()
            .refresh_dynamic_webhooks(&[hook.id])
            .await
        {
            Ok(a) => a,
            // Jira forgot the id between our listing and the refresh: start over.
            Err(ConnectorError::Permanent {
                status: Some(400 | 404),
                ..
            }) => {
                let new = self.register(&spec, now).await?;
                warn!(connection = %self.connection, old = hook.id, new = ?new.ids, "dynamic webhook vanished during refresh; registered a new one");
                *state = Some(new);
                return Ok(Outcome::Reregistered);
            }
            Err(e) => return Err(e),
        };
        let expires = answer
            .get("expirationDate")
            .and_then(parse_date)
            .ok_or_else(|| {
                ConnectorError::permanent("jira: webhook refresh answer has no expirationDate")
            })?;
        info!(connection = %self.connection, id = hook.id, %expires, "dynamic webhook refreshed");
        *state = Some(HookState {
            ids: vec![hook.id],
            expires,
        });
        Ok(Outcome::Refreshed)
    }

    /// Every dynamic webhook of the app, through all pages.
    async fn list(&self) -> ConnectorResult<Vec<Listed>> {
        let mut out = Vec::new();
        let mut start = 0u64;
        for _ in 0..MAX_PAGES {
            let page = self.connector.client().dynamic_webhooks(start).await?;
            let values = page
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    ConnectorError::permanent("jira: webhook list answer has no `values` array")
                })?;
            out.extend(values.iter().filter_map(parse_listed));
            let last = page.get("isLast").and_then(Value::as_bool).unwrap_or(true);
            if last || values.is_empty() {
                break;
            }
            start += values.len() as u64;
        }
        Ok(out)
    }

    /// Registers one hook with `spec`; its expiry is read back from the listing.
    async fn register(&self, spec: &Spec, now: DateTime<Utc>) -> ConnectorResult<HookState> {
        let body = json!({
            "url": self.url,
            "webhooks": [{
                "events": EVENTS,
                "jqlFilter": spec.jql,
                "fieldIdsFilter": spec.field_ids,
            }],
        });
        let answer = self
            .connector
            .client()
            .register_dynamic_webhooks(&body)
            .await?;
        let result = answer
            .get("webhookRegistrationResult")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .cloned()
            .unwrap_or(Value::Null);
        let Some(id) = result.get("createdWebhookId").and_then(Value::as_u64) else {
            let errors: Vec<String> = result
                .get("errors")
                .and_then(Value::as_array)
                .map(|e| {
                    e.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            return Err(ConnectorError::permanent(format!(
                "jira refused the dynamic webhook (jqlFilter `{}`): {}",
                spec.jql,
                if errors.is_empty() {
                    "no webhook id in the answer".to_string()
                } else {
                    errors.join("; ")
                }
            )));
        };
        // Jira does not say when a new hook expires; the listing does.
        let expires = self
            .list()
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|h| h.id == id))
            .and_then(|h| h.expires)
            .unwrap_or(now + chrono::Duration::days(30));
        Ok(HookState {
            ids: vec![id],
            expires,
        })
    }
}

/// True when a listed hook subscribes to exactly what we would register.
fn matches_spec(h: &Listed, spec: &Spec) -> bool {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let events: Vec<String> = EVENTS.iter().map(|e| e.to_string()).collect();
    h.jql.trim() == spec.jql.trim()
        && sorted(&h.events) == sorted(&events)
        && sorted(&h.field_ids) == sorted(&spec.field_ids)
}

fn parse_listed(v: &Value) -> Option<Listed> {
    let strings = |key: &str| -> Vec<String> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(Listed {
        id: v.get("id").and_then(Value::as_u64)?,
        url: v.get("url").and_then(Value::as_str)?.to_string(),
        jql: v
            .get("jqlFilter")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        events: strings("events"),
        field_ids: strings("fieldIdsFilter"),
        expires: v.get("expirationDate").and_then(parse_date),
    })
}

/// Jira gives epoch milliseconds; a date string is accepted too.
fn parse_date(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => Utc.timestamp_millis_opt(n.as_i64()?).single(),
        Value::String(s) => fields::parse_jira_datetime(s),
        _ => None,
    }
}

/// A source of "now"; tests substitute a clock that follows the Jira sandbox's.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How the refresh task paces itself.
#[derive(Clone)]
pub struct Settings {
    pub interval: Duration,
    pub retry_base: Duration,
    pub clock: Clock,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval: CHECK_INTERVAL,
            retry_base: RETRY_BASE,
            clock: Arc::new(Utc::now),
        }
    }
}

/// Starts one task per hook: a check right away, then every `interval` (sooner after a
/// failure). The returned task ends once `stop` turns true and every check loop has stopped.
pub fn spawn(
    hooks: Vec<Arc<DynamicWebhook>>,
    settings: Settings,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut tasks = Vec::new();
    for hook in hooks {
        let settings = settings.clone();
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut failures: u32 = 0;
            loop {
                let connection = hook.connection().to_string();
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    result = hook.refresh_once((settings.clock)()) => match result {
                        Ok(_) => failures = 0,
                        Err(e) => {
                            failures = failures.saturating_add(1);
                            warn!(%connection, error = %e, attempt = failures, "dynamic webhook check failed; will retry");
                        }
                    },
                }
                let delay = next_delay(&settings, failures);
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }));
    }
    tokio::spawn(async move {
        for t in tasks {
            let _ = t.await;
        }
    })
}

fn count(connection: &str, outcome: &'static str) {
    let labels = [
        ("connection", connection.to_string()),
        ("outcome", outcome.to_string()),
    ];
    metrics::counter!("tandem_dynamic_webhook_refresh_total", &labels).increment(1);
}

/// The interval after a success; `retry_base * 2^(failures-1)`, capped by it, after failures.
fn next_delay(settings: &Settings, failures: u32) -> Duration {
    if failures == 0 {
        return settings.interval;
    }
    let factor = 1u32 << failures.saturating_sub(1).min(20);
    settings
        .retry_base
        .saturating_mul(factor)
        .min(settings.interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_keeps_to_the_webhook_subset() {
        let f = FilterConfig {
            projects: vec!["TEST".into(), "OPS".into()],
            issue_types: vec!["Bug".into()],
            jql: None,
        };
        assert_eq!(
            subset_jql("X", &f),
            r#"project IN ("TEST", "OPS") AND issuetype IN ("Bug")"#
        );
        assert_eq!(
            subset_jql("X", &FilterConfig::default()),
            r#"project IN ("X")"#
        );
    }

    #[test]
    fn failed_checks_back_off_up_to_the_interval() {
        let s = Settings {
            interval: Duration::from_secs(3600),
            retry_base: Duration::from_secs(30),
            clock: Arc::new(Utc::now),
        };
        assert_eq!(next_delay(&s, 0), Duration::from_secs(3600));
        assert_eq!(next_delay(&s, 1), Duration::from_secs(30));
        assert_eq!(next_delay(&s, 3), Duration::from_secs(120));
        assert_eq!(next_delay(&s, 40), Duration::from_secs(3600));
    }

    #[test]
    fn listed_hooks_are_read_leniently() {
        let v = json!({"id": 7, "url": "https://t/webhooks/a/jira", "jqlFilter": "project = A",
            "events": ["jira:issue_updated", "jira:issue_created"], "fieldIdsFilter": ["summary"],
            "expirationDate": 1_700_000_000_000_i64});
        let h = parse_listed(&v).unwrap();
        assert_eq!(h.expires.unwrap().timestamp_millis(), 1_700_000_000_000);
        let spec = Spec {
            jql: "project = A".into(),
            field_ids: vec!["summary".into()],
        };
        assert!(matches_spec(&h, &spec));
        assert!(parse_listed(&json!({"url": "x"})).is_none());
        assert!(parse_listed(&json!("junk")).is_none());
    }
}
