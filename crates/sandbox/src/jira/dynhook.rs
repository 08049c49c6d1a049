//! Dynamic webhooks, the ones Connect and OAuth 2.0 apps register through
//! `/rest/api/3/webhook`. They differ from admin webhooks in these ways:
//! - Their `jqlFilter` is limited to a subset of JQL (see [`jql::webhook_filter_errors`]).
//!   An unsupported filter does not fail the request: it gets an `errors` entry in the
//!   per-webhook results.
//! - They can narrow `jira:issue_updated` to changes of some fields (`fieldIdsFilter`).
//! - They expire 30 days after registration or the last refresh, and then stop delivering.
//! - An app has one URL. Deliveries are not HMAC-signed, and each one lists every matched
//!   webhook of the app in `matchedWebhookIds`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::model::Issue;
use super::{ApiError, Inner, State, jql};

/// How long a dynamic webhook lives after registration or refresh.
pub(crate) const LIFETIME_DAYS: i64 = 30;

/// Events an app may subscribe to (the spec's enum).
pub(crate) const EVENTS: &[&str] = &[
    "jira:issue_created",
    "jira:issue_updated",
    "jira:issue_deleted",
    "comment_created",
    "comment_updated",
    "comment_deleted",
    "issue_property_set",
    "issue_property_deleted",
];

/// A registered dynamic webhook.
#[derive(Debug, Clone)]
pub(crate) struct DynHook {
    pub id: u64,
    pub url: String,
    pub events: Vec<String>,
    pub jql: String,
    pub filter: jql::Query,
    pub field_ids: Option<Vec<String>>,
    pub expires: DateTime<Utc>,
}

impl DynHook {
    fn json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "jqlFilter": self.jql,
            "events": self.events,
            "expirationDate": self.expires.timestamp_millis(),
            "url": self.url,
        });
        if let Some(f) = &self.field_ids {
            v["fieldIdsFilter"] = json!(f);
        }
        v
    }
}

/// The live hooks that `event` on `issue` triggers, grouped by URL: (url, matched ids).
/// `changed` lists the changed field ids when the event has a changelog.
pub(crate) fn matching(
    st: &State,
    now: DateTime<Utc>,
    event: &str,
    changed: Option<&[String]>,
    issue: &Issue,
    ctx: &jql::Ctx,
) -> Vec<(String, Vec<u64>)> {
    let mut out: Vec<(String, Vec<u64>)> = Vec::new();
    for h in &st.dyn_hooks {
        if h.expires <= now || !h.events.iter().any(|e| e == event) {
            continue;
        }
        if event == "jira:issue_updated"
            && let Some(ids) = &h.field_ids
            && !changed.is_some_and(|c| c.iter().any(|f| ids.contains(f)))
        {
            continue;
        }
        if let Some(f) = &h.filter.filter
            && !jql::matches(f, issue, ctx)
        {
            continue;
        }
        match out.iter_mut().find(|(u, _)| *u == h.url) {
            Some((_, ids)) => ids.push(h.id),
            None => out.push((h.url.clone(), vec![h.id])),
        }
    }
    out
}

/// `{"webhookIds":[…]}` → the ids, or Jira's 400.
fn webhook_ids(body: &Value) -> Result<Vec<u64>, ApiError> {
    let missing = || ApiError::new(400, "The list of webhook IDs is missing.");
    let list = body
        .get("webhookIds")
        .and_then(Value::as_array)
        .ok_or_else(missing)?;
    list.iter()
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| ApiError::new(400, format!("Invalid webhook ID: {v}")))
        })
        .collect()
}

impl Inner {
    /// `POST /rest/api/3/webhook`.
    pub(crate) fn register_dyn_hooks(&self, body: &Value) -> Result<Value, ApiError> {
        let url = body
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::new(400, "The webhook URL is required."))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ApiError::new(400, format!("The URL '{url}' is not valid.")));
        }
        let hooks = body
            .get("webhooks")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::new(400, "The list of webhooks is required."))?;
        let mut st = self.lock();
        let now = st.now();
        st.dyn_hooks.retain(|h| h.expires > now);
        if st.dyn_hooks.iter().any(|h| h.url != url) {
            return Err(ApiError::new(
                400,
                "Only a single URL per app is allowed to be registered.",
            ));
        }
        let mut results = Vec::new();
        for spec in hooks {
            match self.check_dyn_hook(&st, spec) {
                Ok((events, jql_text, filter, field_ids)) => {
                    let id = st.next_dyn_hook_id;
                    st.next_dyn_hook_id += 1;
                    st.dyn_hooks.push(DynHook {
                        id,
                        url: url.to_string(),
                        events,
                        jql: jql_text,
                        filter,
                        field_ids,
                        expires: now + chrono::Duration::days(LIFETIME_DAYS),
                    });
                    results.push(json!({ "createdWebhookId": id }));
                }
                Err(errors) => results.push(json!({ "errors": errors })),
            }
        }
        Ok(json!({ "webhookRegistrationResult": results }))
    }

    /// Validate one entry of `webhooks`; errors are the messages of its `errors` entry.
    #[allow(clippy::type_complexity)]
    fn check_dyn_hook(
        &self,
        st: &State,
        spec: &Value,
    ) -> Result<(Vec<String>, String, jql::Query, Option<Vec<String>>), Vec<String>> {
        let mut errors = Vec::new();
        let events: Vec<String> = match spec.get("events").and_then(Value::as_array) {
            Some(list) if !list.is_empty() => list
                .iter()
                .map(|e| e.as_str().unwrap_or_default().to_string())
                .collect(),
            _ => {
                errors.push("The webhook must have at least one event.".to_string());
                vec![]
            }
        };
        for e in &events {
            if !EVENTS.contains(&e.as_str()) {
                errors.push(format!("The event {e} is unsupported"));
            }
        }
        let field_ids = match spec.get("fieldIdsFilter") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => Some(
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            ),
            Some(_) => {
                errors.push("fieldIdsFilter must be a list of field IDs.".to_string());
                None
            }
        };
        let jql_text = spec
            .get("jqlFilter")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let filter = if jql_text.trim().is_empty() {
            errors.push("The JQL filter must not be empty".to_string());
            None
        } else {
            match jql::parse(&jql_text) {
                Err(e) => {
                    errors.push(e);
                    None
                }
                Ok(q) => {
                    let subset = jql::webhook_filter_errors(&q);
                    if subset.is_empty() {
                        let keys = |_: &str| true;
                        let ctx = st.jql_ctx(&keys, "");
                        if let Err(e) = jql::validate(&q, &ctx) {
                            errors.extend(e);
                        }
                    } else {
                        errors.extend(subset);
                    }
                    Some(q)
                }
            }
        };
        match filter {
            Some(q) if errors.is_empty() => Ok((events, jql_text, q, field_ids)),
            _ => Err(errors),
        }
    }

    /// `GET /rest/api/3/webhook`: a page of the live hooks.
    pub(crate) fn list_dyn_hooks(&self, start: usize, max: usize) -> Value {
        let mut st = self.lock();
        let now = st.now();
        st.dyn_hooks.retain(|h| h.expires > now);
        let total = st.dyn_hooks.len();
        let values: Vec<Value> = st
            .dyn_hooks
            .iter()
            .skip(start)
            .take(max)
            .map(DynHook::json)
            .collect();
        json!({
            "startAt": start,
            "maxResults": max,
            "total": total,
            "isLast": start.saturating_add(values.len()) >= total,
            "values": values,
        })
    }

    /// `DELETE /rest/api/3/webhook`: unknown ids are ignored, like Jira.
    pub(crate) fn delete_dyn_hooks(&self, body: &Value) -> Result<(), ApiError> {
        let ids = webhook_ids(body)?;
        self.lock().dyn_hooks.retain(|h| !ids.contains(&h.id));
        Ok(())
    }

    /// `PUT /rest/api/3/webhook/refresh`: live hooks among `webhookIds` get 30 more days from
    /// now; expired ones are gone and stay gone.
    pub(crate) fn refresh_dyn_hooks(&self, body: &Value) -> Result<Value, ApiError> {
        let ids = webhook_ids(body)?;
        let mut st = self.lock();
        let now = st.now();
        st.dyn_hooks.retain(|h| h.expires > now);
        let expires = now + chrono::Duration::days(LIFETIME_DAYS);
        for h in st.dyn_hooks.iter_mut().filter(|h| ids.contains(&h.id)) {
            h.expires = expires;
        }
        Ok(json!({ "expirationDate": expires.timestamp_millis() }))
    }
}
