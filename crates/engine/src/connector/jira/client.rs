//! The Jira REST calls the connector makes, and nothing else.
//!
//! One method per endpoint of JIRA_FACTS §1–2, for Cloud (`/rest/api/3`, Basic
//! `email:api_token`) and Data Center (`/rest/api/2`, Bearer PAT). Ids are pushed into URLs as
//! encoded path segments, so an id from a webhook can never change which endpoint is called.
//! Errors are classified by [`crate::connector::http`]; their messages quote Jira's
//! `ErrorCollection` and never the credentials.

use super::fields::Api;
use crate::connector::http::{self, Answer, Redactor};
use crate::connector::{ConnectorError, ConnectorResult};
use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Value, json};

/// How the client authenticates.
pub enum JiraAuth {
    /// Cloud: `Authorization: Basic base64(email:api_token)`.
    Basic { email: String, token: String },
    /// Data Center (`Bearer <pat>`) or a Cloud OAuth 2.0 app (`Bearer <access token>`).
    Bearer { token: String },
}

/// Where a search page starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Cursor {
    /// Cloud `search/jql`: the opaque `nextPageToken` (absent on the first page).
    Token(Option<String>),
    /// Data Center `search`: an offset.
    StartAt(u64),
}

/// One page of a search.
#[derive(Debug, Default)]
pub struct SearchPage {
    pub issues: Vec<Value>,
    /// The next page's cursor; `None` on the last page.
    pub next: Option<Cursor>,
}

pub struct JiraClient {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    api: Api,
    redactor: Redactor,
}

impl std::fmt::Debug for JiraClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The auth header is deliberately absent.
        f.debug_struct("JiraClient")
            .field("base", &self.base.as_str())
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl JiraClient {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        api: Api,
        auth: JiraAuth,
    ) -> anyhow::Result<Self> {
        let base = Url::parse(base_url.trim()).map_err(|e| {
            anyhow::anyhow!("jira base_url `{}` is not a URL: {e}", base_url.trim())
        })?;
        if base.cannot_be_a_base() {
            anyhow::bail!("jira base_url `{base_url}` cannot hold a path");
        }
        let (value, secrets) = match auth {
            JiraAuth::Basic { email, token } => {
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}"));
                (format!("Basic {encoded}"), vec![token, encoded])
            }
            JiraAuth::Bearer { token } => (format!("Bearer {token}"), vec![token]),
        };
        let mut auth = HeaderValue::from_str(&value).map_err(|_| {
            anyhow::anyhow!("jira credentials contain characters not allowed in a header")
        })?;
        // Keeps the value out of reqwest's and hyper's debug output.
        auth.set_sensitive(true);
        Ok(JiraClient {
            http,
            base,
            auth,
            api,
            redactor: Redactor::new(secrets),
        })
    }

    pub fn api(&self) -> Api {
        self.api
    }

    /// `base` + `/rest/api/N/` + the given segments, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(self.api.prefix().trim_start_matches('/').split('/'));
            path.extend(segments);
        }
        url
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> ConnectorResult<Answer> {
        self.call_url(method, self.url(segments), query, body).await
    }

    /// `base` + the given segments from the site root (APIs outside `/rest/api/N`).
    fn root_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// `POST /rest/webhooks/1.0/webhook`: registers an admin webhook (admin rights needed).
    pub async fn register_admin_webhook(&self, body: &Value) -> ConnectorResult<Value> {
        let url = self.root_url(&["rest", "webhooks", "1.0", "webhook"]);
        self.call_url(Method::POST, url, &[], Some(body))
            .await?
            .json("jira: registered webhook")
    }

    /// `GET /rest/webhooks/1.0/webhook`: the admin webhooks.
    pub async fn admin_webhooks(&self) -> ConnectorResult<Value> {
        let url = self.root_url(&["rest", "webhooks", "1.0", "webhook"]);
        self.call_url(Method::GET, url, &[], None)
            .await?
            .json("jira: webhook list")
    }

    /// `GET /rest/api/3/webhook?startAt&maxResults=100`: one page of this app's dynamic
    /// webhooks.
    pub async fn dynamic_webhooks(&self, start_at: u64) -> ConnectorResult<Value> {
        let query = [
            ("startAt", start_at.to_string()),
            ("maxResults", "100".to_string()),
        ];
        self.call(Method::GET, &["webhook"], &query, None)
            .await?
            .json("jira: dynamic webhook list")
    }

    /// `POST /rest/api/3/webhook`: registers dynamic webhooks (OAuth and Connect apps only).
    pub async fn register_dynamic_webhooks(&self, body: &Value) -> ConnectorResult<Value> {
        self.call(Method::POST, &["webhook"], &[], Some(body))
            .await?
            .json("jira: dynamic webhook registration")
    }

    /// `PUT /rest/api/3/webhook/refresh` → `{"expirationDate": …}`.
    pub async fn refresh_dynamic_webhooks(&self, ids: &[u64]) -> ConnectorResult<Value> {
        let body = json!({ "webhookIds": ids });
        self.call(Method::PUT, &["webhook", "refresh"], &[], Some(&body))
            .await?
            .json("jira: dynamic webhook refresh")
    }

    /// `DELETE /rest/api/3/webhook` (202).
    pub async fn delete_dynamic_webhooks(&self, ids: &[u64]) -> ConnectorResult<()> {
        let body = json!({ "webhookIds": ids });
        self.call(Method::DELETE, &["webhook"], &[], Some(&body))
            .await
            .map(|_| ())
    }

    /// `GET /rest/api/N/issue/{id}?fields=attachment`: the issue's attachment list.
    pub async fn issue_attachments(&self, id: &str) -> ConnectorResult<Value> {
        let query = [("fields", "attachment".to_string())];
        self.call(Method::GET, &["issue", id], &query, None)
            .await?
            .json("jira: issue attachments")
    }

    /// `GET` of an attachment's content: `url` when it is on this site (the listing's
    /// `content`), else `/rest/api/N/attachment/content/{id}`. The answer's body is left
    /// unread, to be streamed; Jira Cloud's redirect to its media store is followed (reqwest
    /// drops the credentials when a redirect leaves the site).
    pub async fn attachment_content(
        &self,
        attachment_id: &str,
        url: Option<&str>,
        timeout: std::time::Duration,
    ) -> ConnectorResult<reqwest::Response> {
        let same_site = |u: &Url| {
            u.scheme() == self.base.scheme()
                && u.host_str() == self.base.host_str()
                && u.port_or_known_default() == self.base.port_or_known_default()
        };
        let url = match url.and_then(|u| Url::parse(u).ok()) {
            // Credentials go only where the configured site is.
            Some(u) if same_site(&u) => u,
            _ => self.url(&["attachment", "content", attachment_id]),
        };
        let what = format!("jira: GET {}", url.path());
        let req = self
            .http
            .get(url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(reqwest::header::ACCEPT, "*/*")
            .timeout(timeout);
        http::open(req, &what, &self.redactor, describe_error).await
    }

    /// `POST /rest/api/N/issue/{id}/attachments` with a multipart body (`X-Atlassian-Token:
    /// no-check`, which Jira requires against XSRF): the list of attachments added.
    pub async fn add_attachment(
        &self,
        id: &str,
        body: reqwest::Body,
        content_type: &str,
        length: u64,
        timeout: std::time::Duration,
    ) -> ConnectorResult<Value> {
        let url = self.url(&["issue", id, "attachments"]);
        let what = format!("jira: POST {}", url.path());
        let req = self
            .http
            .post(url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header("X-Atlassian-Token", "no-check")
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, length)
            .timeout(timeout)
            .body(body);
        http::send(req, &what, &self.redactor, describe_error)
            .await?
            .json("jira: added attachments")
    }

    /// `DELETE /rest/api/N/attachment/{id}` (204).
    pub async fn delete_attachment(&self, attachment_id: &str) -> ConnectorResult<()> {
        self.call(Method::DELETE, &["attachment", attachment_id], &[], None)
            .await
            .map(|_| ())
    }

    async fn call_url(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> ConnectorResult<Answer> {
        let what = format!("jira: {method} {}", url.path());
        let mut req = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        http::send(req, &what, &self.redactor, describe_error).await
    }

    /// `GET /field`: the site's field catalogue.
    pub async fn fields(&self) -> ConnectorResult<Value> {
        self.call(Method::GET, &["field"], &[], None)
            .await?
            .json("jira: field list")
    }

    /// `GET /myself`: who the credentials belong to.
    pub async fn myself(&self) -> ConnectorResult<Value> {
        self.call(Method::GET, &["myself"], &[], None)
            .await?
            .json("jira: myself")
    }

    /// `GET /issue/{id}?fields=…`.
    pub async fn get_issue(&self, id: &str, fields: &[String]) -> ConnectorResult<Value> {
        self.call(
            Method::GET,
            &["issue", id],
            &[("fields", fields.join(","))],
            None,
        )
        .await?
        .json("jira: issue")
    }

    /// `POST /issue` → `{id, key, self}`.
    pub async fn create_issue(&self, body: &Value) -> ConnectorResult<Value> {
        self.call(Method::POST, &["issue"], &[], Some(body))
            .await?
            .json("jira: created issue")
    }

    /// `PUT /issue/{id}` (204).
    pub async fn edit_issue(&self, id: &str, body: &Value) -> ConnectorResult<()> {
        self.call(Method::PUT, &["issue", id], &[], Some(body))
            .await
            .map(|_| ())
    }

    /// `POST /issue/{id}/comment` (201) → the new `Comment`.
    pub async fn add_comment(&self, id: &str, body: &Value) -> ConnectorResult<Value> {
        self.call(Method::POST, &["issue", id, "comment"], &[], Some(body))
            .await?
            .json("jira: created comment")
    }

    /// `GET /issue/{id}/comment?startAt&maxResults&orderBy=created&expand=properties`: one
    /// page of the issue's comments, oldest first, each with its properties.
    pub async fn comments(&self, id: &str, start_at: u64, max: u32) -> ConnectorResult<Value> {
        let query = [
            ("startAt", start_at.to_string()),
            ("maxResults", max.to_string()),
            ("orderBy", "created".to_string()),
            ("expand", "properties".to_string()),
        ];
        self.call(Method::GET, &["issue", id, "comment"], &query, None)
            .await?
            .json("jira: comment list")
    }

    /// `PUT /issue/{id}/comment/{commentId}` (200).
    pub async fn edit_comment(
        &self,
        id: &str,
        comment_id: &str,
        body: &Value,
    ) -> ConnectorResult<()> {
        self.call(
            Method::PUT,
            &["issue", id, "comment", comment_id],
            &[],
            Some(body),
        )
        .await
        .map(|_| ())
    }

    /// `DELETE /issue/{id}/comment/{commentId}` (204).
    pub async fn delete_comment(&self, id: &str, comment_id: &str) -> ConnectorResult<()> {
        self.call(
            Method::DELETE,
            &["issue", id, "comment", comment_id],
            &[],
            None,
        )
        .await
        .map(|_| ())
    }

    /// `GET /issue/{id}/transitions?expand=transitions.fields`: the transitions available
    /// from the issue's current status, each with the fields its screen asks for.
    pub async fn transitions(&self, id: &str) -> ConnectorResult<Value> {
        self.call(
            Method::GET,
            &["issue", id, "transitions"],
            &[("expand", "transitions.fields".to_string())],
            None,
        )
        .await?
        .json("jira: transitions")
    }

    /// `POST /issue/{id}/transitions` (204), with the screen's `fields` when there are any.
    pub async fn transition(
        &self,
        id: &str,
        transition_id: &str,
        fields: Option<&Value>,
    ) -> ConnectorResult<()> {
        let mut body = json!({ "transition": { "id": transition_id } });
        if let Some(f) = fields {
            body["fields"] = f.clone();
        }
        self.call(
            Method::POST,
            &["issue", id, "transitions"],
            &[],
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// `GET /user/search?…`: users matching `query` (Cloud: `query=` or `accountId=`; Data
    /// Center: `username=`), as a JSON array.
    pub async fn user_search(&self, query: &[(&str, String)]) -> ConnectorResult<Value> {
        self.call(Method::GET, &["user", "search"], query, None)
            .await?
            .json("jira: user search")
    }

    /// `GET /status/{idOrName}`: one status of the site (404 when there is none by that name).
    pub async fn status(&self, id_or_name: &str) -> ConnectorResult<Value> {
        self.call(Method::GET, &["status", id_or_name], &[], None)
            .await?
            .json("jira: status")
    }

    /// One page of a JQL search: `POST /rest/api/3/search/jql` on Cloud (token paging),
    /// `POST /rest/api/2/search` on Data Center (offset paging).
    pub async fn search(
        &self,
        jql: &str,
        fields: &[String],
        max_results: u32,
        cursor: &Cursor,
    ) -> ConnectorResult<SearchPage> {
        match (self.api, cursor) {
            (Api::Cloud, Cursor::Token(token)) => {
                let mut body = json!({ "jql": jql, "fields": fields, "maxResults": max_results });
                if let Some(t) = token {
                    body["nextPageToken"] = json!(t);
                }
                let v = self
                    .call(Method::POST, &["search", "jql"], &[], Some(&body))
                    .await?
                    .json("jira: search")?;
                let issues = issues_of(&v)?;
                // `isLast` is authoritative when present; a missing token also ends paging.
                let last = v.get("isLast").and_then(Value::as_bool).unwrap_or(false);
                let next = match v.get("nextPageToken").and_then(Value::as_str) {
                    Some(t) if !last && !t.is_empty() => Some(Cursor::Token(Some(t.to_string()))),
                    _ => None,
                };
                Ok(SearchPage { issues, next })
            }
            (Api::DataCenter, Cursor::StartAt(start)) => {
                let body = json!({
                    "jql": jql, "fields": fields, "maxResults": max_results, "startAt": start
                });
                let v = self
                    .call(Method::POST, &["search"], &[], Some(&body))
                    .await?
                    .json("jira: search")?;
                let issues = issues_of(&v)?;
                let total = v.get("total").and_then(Value::as_u64).unwrap_or(0);
                let start_at = v.get("startAt").and_then(Value::as_u64).unwrap_or(*start);
                let after = start_at + issues.len() as u64;
                // An empty page ends paging even if `total` says otherwise, so a shrinking
                // result set cannot make us loop.
                let next = (!issues.is_empty() && after < total).then_some(Cursor::StartAt(after));
                Ok(SearchPage { issues, next })
            }
            (api, cursor) => Err(ConnectorError::permanent(format!(
                "jira: a {cursor:?} page cursor does not fit the {api:?} search"
            ))),
        }
    }
}

fn issues_of(v: &Value) -> ConnectorResult<Vec<Value>> {
    v.get("issues")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ConnectorError::permanent("jira: search answer has no `issues` array"))
}

/// Summarises Jira's `ErrorCollection` (`{"errorMessages":[…],"errors":{"field":"msg"}}`);
/// any other body is quoted briefly.
pub fn describe_error(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return http::describe_plain(body);
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(msgs) = v.get("errorMessages").and_then(Value::as_array) {
        parts.extend(msgs.iter().filter_map(Value::as_str).map(str::to_string));
    }
    if let Some(errs) = v.get("errors").and_then(Value::as_object) {
        for (field, msg) in errs {
            let msg = msg.as_str().map_or_else(|| msg.to_string(), str::to_string);
            parts.push(format!("{field}: {msg}"));
        }
    }
    if parts.is_empty() {
        http::describe_plain(body)
    } else {
        http::quote(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_collections_are_summarised() {
        let body = br#"{"errorMessages":["Field 'priority' is required"],"errors":{"duedate":"bad date"}}"#;
        assert_eq!(
            describe_error(body),
            "Field 'priority' is required; duedate: bad date"
        );
        assert_eq!(describe_error(b"<html>oops</html>"), "<html>oops</html>");
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        let c = JiraClient::new(
            reqwest::Client::new(),
            "http://jira.local/ctx/",
            Api::Cloud,
            JiraAuth::Bearer {
                token: "t0ken-value".into(),
            },
        )
        .unwrap();
        let url = c.url(&["issue", "../../myself?x=1"]);
        assert_eq!(
            url.as_str(),
            "http://jira.local/ctx/rest/api/3/issue/..%2F..%2Fmyself%3Fx=1"
        );
        assert!(!format!("{c:?}").contains("t0ken"));
    }
}
