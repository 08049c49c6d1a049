//! Connectors: how Tandem talks to one system.
//!
//! Each system gets one folder with the same inner shape (`mod.rs` the [`Connector`] impl,
//! `client.rs` the HTTP calls, `webhook.rs` delivery verification and parsing, `fields.rs`
//! value encoding). Adding a system means adding a folder and an arm in [`build`]; the
//! worker, server and poller only ever see `Arc<dyn Connector>`.
//!
//! A connector speaks in the mapping's field names for its side (`summary`, `dueDate`,
//! `"1001"`): it resolves them to the system's real ids itself and decodes native JSON into
//! canonical [`FieldValue`]s, so planning never sees a wire format.

pub mod files;
pub mod http;
pub mod jira;
pub mod rest;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tandem_core::attachment::Attachment;
use tandem_core::comment::{Comment, NewComment};
use tandem_core::mapping::Mapping;
use tandem_core::{ChangeEvent, FieldValue, Side};

use crate::config::{ExternalConfig, FilterConfig, JiraConfig, RestConfig};

/// What every connector is built with besides its own configuration.
#[derive(Debug, Clone)]
pub struct ConnectorContext {
    /// The side of the connection this connector serves; decides which mapping column names
    /// its fields.
    pub side: Side,
    /// The connection's mapping.
    pub mapping: tandem_core::mapping::Mapping,
    /// Shared HTTP client (connection pool, timeouts).
    pub http: reqwest::Client,
    /// The connection's `[connection.filter]`: which Jira issues take part. A Jira connector on
    /// the connection's Jira side lists (polls, bulk sync) only those.
    pub filter: FilterConfig,
}

impl ConnectorContext {
    pub fn new(side: Side, mapping: Mapping, http: reqwest::Client) -> Self {
        ConnectorContext {
            side,
            mapping,
            http,
            filter: FilterConfig::default(),
        }
    }

    /// The same context, restricted to the connection's filter.
    pub fn with_filter(mut self, filter: FilterConfig) -> Self {
        self.filter = filter;
        self
    }
}

/// The configuration of one side, whichever system it is.
#[derive(Debug, Clone, Copy)]
pub enum SideConfig<'a> {
    Jira(&'a JiraConfig),
    Rest(&'a RestConfig),
}

impl<'a> From<&'a JiraConfig> for SideConfig<'a> {
    fn from(c: &'a JiraConfig) -> Self {
        SideConfig::Jira(c)
    }
}

impl<'a> From<&'a RestConfig> for SideConfig<'a> {
    fn from(c: &'a RestConfig) -> Self {
        SideConfig::Rest(c)
    }
}

impl<'a> From<&'a ExternalConfig> for SideConfig<'a> {
    fn from(c: &'a ExternalConfig) -> Self {
        match c {
            ExternalConfig::Rest(r) => SideConfig::Rest(r),
            ExternalConfig::Jira(j) => SideConfig::Jira(j),
        }
    }
}

/// Builds the connector for one side: `build(&conn.jira, ctx)` or `build(&conn.external, ctx)`.
pub fn build<'a>(
    side_config: impl Into<SideConfig<'a>>,
    ctx: ConnectorContext,
) -> anyhow::Result<Arc<dyn Connector>> {
    Ok(match side_config.into() {
        SideConfig::Jira(c) => Arc::new(jira::JiraConnector::new(c, ctx)?),
        SideConfig::Rest(c) => Arc::new(rest::RestConnector::new(c, ctx)?),
    })
}

/// Field values keyed by the mapping's field names on one side.
pub type Fields = BTreeMap<String, FieldValue>;

/// One item as read from a system.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Stable id (Jira's numeric issue id; the external system's id).
    pub id: String,
    /// Human key where there is one (Jira's `TEST-12`).
    pub key: Option<String>,
    /// Last modification time, used to order concurrent edits.
    pub updated: Option<DateTime<Utc>>,
    /// Mapped field values (only fields the mapping names on this side).
    pub fields: Fields,
    /// The twin's id as recorded on this item, when the system records it (Jira's link field).
    pub link: Option<String>,
    /// Project and issue type, for filters (Jira only).
    pub project: Option<String>,
    pub issue_type: Option<String>,
}

/// A page of items changed since a cursor (for the poller and bulk sync).
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Item>,
    /// Opaque token for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Why a delivery was refused; maps one-to-one onto the webhook route's status codes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WebhookError {
    /// 401: missing or wrong credentials / signature.
    #[error("{0}")]
    Unauthorized(String),
    /// 400: not valid JSON.
    #[error("{0}")]
    Malformed(String),
    /// 422: valid JSON of the wrong shape; `path` is the JSON path that is wrong.
    #[error("{message}")]
    Shape { path: String, message: String },
}

/// How deep a delivery's JSON may nest: serde_json's own recursion limit, which keeps a
/// body of 100 000 `[` from overflowing the stack. Named here so the message can say it.
pub const MAX_JSON_DEPTH: usize = 128;

/// Reads a delivery body as JSON; the `400` message says what is wrong and where (serde's
/// line and column), and names the two cases serde words poorly: an empty body and nesting
/// beyond [`MAX_JSON_DEPTH`]. Never quotes the body itself.
pub fn parse_json_body(body: &[u8]) -> Result<serde_json::Value, WebhookError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(WebhookError::Malformed(
            "the body is empty: expected a JSON object".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.to_string().starts_with("recursion limit exceeded") {
            format!(
                "nested deeper than {MAX_JSON_DEPTH} levels at line {} column {}",
                e.line(),
                e.column()
            )
        } else {
            e.to_string()
        };
        WebhookError::Malformed(format!("body is not valid JSON: {what}"))
    })
}

/// A failed call to a system, classified for the retry schedule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectorError {
    /// Worth retrying: connect/timeout errors, 408, 409, 425, 429, 5xx.
    #[error("{message}")]
    Transient {
        message: String,
        status: Option<u16>,
        /// The server's `Retry-After`, to be honoured by the schedule.
        retry_after: Option<Duration>,
    },
    /// Retrying will not help: 400, 401, 403, 404, 422, a value that cannot be encoded.
    #[error("{message}")]
    Permanent {
        message: String,
        status: Option<u16>,
    },
    /// The write went through except for the `refused` fields (their names on this side),
    /// which the system turned down for good (Jira: a status no transition reaches).
    /// `created` is the new item when the write was a create: it exists, and must be linked.
    #[error("{message}")]
    PartlyApplied {
        message: String,
        refused: Vec<String>,
        created: Option<Box<Item>>,
    },
}

impl ConnectorError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ConnectorError::Transient { .. })
    }
    /// Whether the failed call took effect all the same: it was answered with a success
    /// status whose body could not be read (not JSON, or no id where the configuration says).
    /// A create that failed this way has made an item nobody knows the id of.
    pub fn took_effect(&self) -> bool {
        matches!(self, ConnectorError::Permanent { status: Some(s), .. } if (200..300).contains(s))
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        ConnectorError::Permanent {
            message: message.into(),
            status: None,
        }
    }
}

pub type ConnectorResult<T> = Result<T, ConnectorError>;

/// The error of a comment call on a connector that has no comments.
fn comments_unsupported(kind: &str) -> ConnectorError {
    ConnectorError::permanent(format!("the {kind} connector does not sync comments"))
}

/// A person as one system knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// What a user field there holds (Jira Cloud: the account id; Data Center: the name).
    pub id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

/// Whom to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserQuery<'a> {
    /// By e-mail address, exactly (any case).
    Email(&'a str),
    /// By what a user field holds (account id, user name).
    Id(&'a str),
}

/// The error of an attachment call on a connector that has no attachments.
fn attachments_unsupported(kind: &str) -> ConnectorError {
    ConnectorError::permanent(format!("the {kind} connector does not sync attachments"))
}

/// What `tandem check` learned about one side.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Who the credentials belong to.
    pub identity: String,
    /// `mapping name → resolved id (display name)` lines.
    pub fields: Vec<String>,
    /// Problems found; empty when all is well.
    pub problems: Vec<String>,
    /// What could not be checked, and why; not problems.
    pub notes: Vec<String>,
}

/// One system, as the engine needs it.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// `"jira"` or `"rest"`, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Resolves field names to the system's ids (Jira: `GET /rest/api/3/field`). Called once
    /// at start; until it succeeds the other calls fail with a transient error.
    async fn prepare(&self) -> ConnectorResult<()>;

    /// Verifies a delivery's credentials and parses it into change events for `connection`.
    /// An empty vector means "nothing we sync changed" (acknowledged, not queued).
    fn parse_webhook(
        &self,
        connection: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<ChangeEvent>, WebhookError>;

    /// Reads one item with its mapped fields.
    async fn fetch(&self, id: &str) -> ConnectorResult<Item>;

    /// Creates a twin holding `fields`; `link` is the other side's id, recorded on the new
    /// item when the system has a place for it (Jira's link field) in the same call.
    async fn create(&self, fields: &Fields, link: Option<&str>) -> ConnectorResult<Item>;

    /// Writes all `fields` to item `id` in one call.
    async fn update(&self, id: &str, fields: &Fields) -> ConnectorResult<()>;

    /// Records the twin's id on item `id` (Jira: writes the link field). No-op elsewhere.
    async fn set_link(&self, id: &str, other_id: &str) -> ConnectorResult<()>;

    /// Finds the item whose link field holds `other_id` (Jira: quoted JQL on the link field
    /// plus an exact client-side check). `Ok(None)` when not found or not supported.
    async fn find_by_link(&self, other_id: &str) -> ConnectorResult<Option<Item>>;

    /// Items changed since `since`, a page at a time.
    async fn changed_since(
        &self,
        since: DateTime<Utc>,
        page: Option<&str>,
    ) -> ConnectorResult<Page>;

    /// Adds a comment for people (Jira: "Tandem could not sync …"), marked as Tandem's notice
    /// where the system keeps marks so that it is never synced. No-op where unsupported.
    async fn comment(&self, id: &str, text: &str) -> ConnectorResult<()>;

    /// Whether this connector reads and writes comments (`comments = …` needs both sides).
    fn supports_comments(&self) -> bool {
        false
    }

    /// Whether a comment here can be an internal note (Jira Service Management's internal
    /// comments, a tracker's private notes), read into `Comment::internal` and written from
    /// `NewComment::internal`.
    fn supports_internal_comments(&self) -> bool {
        false
    }

    /// Every comment of item `id`, oldest first (all pages).
    async fn list_comments(&self, _id: &str) -> ConnectorResult<Vec<Comment>> {
        Err(comments_unsupported(self.kind()))
    }

    /// Adds `comment` to item `id` and answers the new comment's id. Stamps the comment's
    /// mark where the system keeps one out of the text (Jira: the comment property `tandem`,
    /// set in the same call), so the comment is recognised as Tandem's own.
    async fn create_comment(&self, _id: &str, _comment: &NewComment) -> ConnectorResult<String> {
        Err(comments_unsupported(self.kind()))
    }

    /// Rewrites comment `comment_id` of item `id`.
    async fn update_comment(
        &self,
        _id: &str,
        _comment_id: &str,
        _comment: &NewComment,
    ) -> ConnectorResult<()> {
        Err(comments_unsupported(self.kind()))
    }

    /// Deletes comment `comment_id` of item `id`; a comment already gone (404) is success.
    async fn delete_comment(&self, _id: &str, _comment_id: &str) -> ConnectorResult<()> {
        Err(comments_unsupported(self.kind()))
    }

    /// Whether [`Self::find_user`] asks the system (Jira's user search). Where it does not,
    /// a user value is what the map or an e-mail says, written as it is.
    fn supports_users(&self) -> bool {
        false
    }

    /// The one user `query` names exactly, or `Ok(None)`.
    async fn find_user(&self, _query: UserQuery<'_>) -> ConnectorResult<Option<UserRecord>> {
        Ok(None)
    }

    /// Whether this connector lists, reads and writes attachments (`attachments = …` needs
    /// both sides).
    fn supports_attachments(&self) -> bool {
        false
    }

    /// Every attachment of item `id`. `sha256` is filled where the system says.
    async fn list_attachments(&self, _id: &str) -> ConnectorResult<Vec<Attachment>> {
        Err(attachments_unsupported(self.kind()))
    }

    /// The content of `attachment` of item `id`, as a stream of chunks (never read whole).
    async fn download_attachment(
        &self,
        _id: &str,
        _attachment: &Attachment,
    ) -> ConnectorResult<files::Download> {
        Err(attachments_unsupported(self.kind()))
    }

    /// Attaches `file` to item `id` (a multipart upload streamed from disk) and answers the
    /// new attachment.
    async fn upload_attachment(
        &self,
        _id: &str,
        _file: &files::Upload<'_>,
    ) -> ConnectorResult<Attachment> {
        Err(attachments_unsupported(self.kind()))
    }

    /// Deletes attachment `attachment_id` of item `id`; one already gone (404) is success.
    async fn delete_attachment(&self, _id: &str, _attachment_id: &str) -> ConnectorResult<()> {
        Err(attachments_unsupported(self.kind()))
    }

    /// Online check for `tandem check`: credentials, field resolution.
    async fn check(&self) -> CheckReport;

    /// How the last write to item `id` set a field, when it took more than the field's
    /// value (Jira: the transitions walked to reach a status), as `(field, how)`; taken
    /// once, for the audit. Events of one item are processed one at a time, so the note
    /// read after a write is that write's.
    fn take_write_note(&self, _id: &str) -> Option<(String, String)> {
        None
    }
}
