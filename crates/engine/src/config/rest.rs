//! `[connection.external]` with `type = "rest"`: a generic HTTP/JSON system, in the seed's
//! format or described by operations, a webhook shape and field places (`format = "custom"`).

use super::duration::parse_duration;
use super::since::SinceFormat;
use super::spans::KeyLines;
use crate::secret::Secret;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// `[connection.external]` with `type = "rest"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// The shipped preset this table starts from (`redmine`); its keys were merged in under
    /// the user's at load (see `preset.rs`).
    #[serde(default)]
    pub preset: Option<String>,
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
    /// `[connection.external.comment]`: where a listed comment's parts are and how its text
    /// is written (custom format, with the comment operations).
    #[serde(default)]
    pub comment: Option<RestComment>,
    /// `[connection.external.attachment]`: how the system's files are listed, uploaded,
    /// downloaded and deleted (custom format).
    #[serde(default)]
    pub attachment: Option<super::rest_attachment::RestAttachment>,
    /// Where each key of this table sits in the file, so that problems found only when the
    /// system is contacted (`tandem check` reading a real item) are reported at their line.
    #[serde(skip)]
    pub key_lines: KeyLines,
}

impl RestConfig {
    /// What serde cannot check in a REST table at `at`: which keys each format uses, the
    /// operations a custom system needs (`creates_here`: the connection's `create` lets
    /// items be created on this side), and the syntax of every pointer.
    pub(super) fn check(&self, creates_here: bool, at: &str, issue: &mut impl FnMut(&str, String)) {
        super::check_url(&self.base_url, &format!("{at}.base_url"), issue);
        match self.format {
            RestFormat::Seed => {
                for (key, present) in [
                    ("operations", self.operations.is_some()),
                    ("webhook", self.webhook.is_some()),
                    ("fields", !self.fields.is_empty()),
                    ("comment", self.comment.is_some()),
                    ("attachment", self.attachment.is_some()),
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
                let Some(ops) = &self.operations else {
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
                    ("list_comments", ops.list_comments.as_ref()),
                    ("create_comment", ops.create_comment.as_ref()),
                    ("update_comment", ops.update_comment.as_ref()),
                    ("delete_comment", ops.delete_comment.as_ref()),
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
                        if let Err(msg) = SinceFormat::parse(op.since_format.as_deref()) {
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
                    None if creates_here => issue(
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
                if self.webhook_payload == WebhookPayload::IdOnly && ops.fetch.is_none() {
                    issue(
                        &format!("{at}.webhook_payload"),
                        "\"id_only\" needs an `operations.fetch` call to read the item".into(),
                    );
                }
                if let Some(w) = &self.webhook {
                    check_pointer(&w.id_pointer, &format!("{at}.webhook.id_pointer"), issue);
                    if let Some(p) = &w.event_pointer {
                        check_pointer(p, &format!("{at}.webhook.event_pointer"), issue);
                    }
                    if let Some(p) = &w.comment_id_pointer {
                        check_pointer(p, &format!("{at}.webhook.comment_id_pointer"), issue);
                    }
                    if let Some(p) = &w.attachment_id_pointer {
                        check_pointer(p, &format!("{at}.webhook.attachment_id_pointer"), issue);
                        if self.attachment.is_none() {
                            issue(
                                &format!("{at}.webhook.attachment_id_pointer"),
                                "only used with [connection.external.attachment]".into(),
                            );
                        }
                    }
                }
                if let Some(a) = &self.attachment {
                    a.check(&format!("{at}.attachment"), issue);
                }
                self.check_comments(ops, at, issue);
                let mut ids = HashMap::new();
                for (i, f) in self.fields.iter().enumerate() {
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
}

impl RestConfig {
    /// The comment operations of a custom system: all or nothing of `list_comments` +
    /// `create_comment` (updates and deletes need them), their placeholders, and the
    /// `[comment]` table that says where a listed comment's parts are.
    fn check_comments(&self, ops: &RestOperations, at: &str, issue: &mut impl FnMut(&str, String)) {
        let ops_at = format!("{at}.operations");
        let any = ops.list_comments.is_some()
            || ops.create_comment.is_some()
            || ops.update_comment.is_some()
            || ops.delete_comment.is_some();
        if !any {
            if self.comment.is_some() {
                issue(
                    &format!("{at}.comment"),
                    "only used with the comment operations (`operations.list_comments` and                      `operations.create_comment`)"
                        .into(),
                );
            }
            if self
                .webhook
                .as_ref()
                .is_some_and(|w| w.comment_id_pointer.is_some())
            {
                issue(
                    &format!("{at}.webhook.comment_id_pointer"),
                    "only used with the comment operations (`operations.list_comments` and                      `operations.create_comment`)"
                        .into(),
                );
            }
            return;
        }
        for (name, present) in [
            ("list_comments", ops.list_comments.is_some()),
            ("create_comment", ops.create_comment.is_some()),
        ] {
            if !present {
                issue(
                    &format!("{ops_at}.{name}"),
                    "comments need both `list_comments` and `create_comment` (or none of the                      comment operations)"
                        .into(),
                );
            }
        }
        let placeholders: [(&str, Option<&RestOperation>, &[&str]); 4] = [
            ("list_comments", ops.list_comments.as_ref(), &["{id}"]),
            ("create_comment", ops.create_comment.as_ref(), &["{id}"]),
            (
                "update_comment",
                ops.update_comment.as_ref(),
                &["{comment_id}"],
            ),
            (
                "delete_comment",
                ops.delete_comment.as_ref(),
                &["{comment_id}"],
            ),
        ];
        for (name, op, needs) in placeholders {
            let Some(op) = op else { continue };
            for p in needs {
                if !op.path.contains(p) {
                    issue(
                        &format!("{ops_at}.{name}.path"),
                        format!("must contain `{p}`"),
                    );
                }
            }
            if matches!(name, "create_comment" | "update_comment") {
                match &op.body {
                    Some(b) if b.contains("{{body}}") => {}
                    Some(_) => issue(
                        &format!("{ops_at}.{name}.body"),
                        "the body template must contain `{{body}}` (the comment's text)".into(),
                    ),
                    None => issue(
                        &format!("{ops_at}.{name}.body"),
                        "needs a body template containing `{{body}}`, e.g.                          '{\"comment\": {\"body\": {{body}}}}'"
                            .into(),
                    ),
                }
            }
        }
        if ops.list_comments.is_some() {
            match &self.comment {
                None => issue(
                    &format!("{at}.comment"),
                    "`list_comments` needs [connection.external.comment] with at least                      `body_pointer` and `created_pointer`"
                        .into(),
                ),
                Some(c) => c.check(&format!("{at}.comment"), issue),
            }
        }
    }
}

fn check_pointer(p: &str, key: &str, issue: &mut impl FnMut(&str, String)) {
    if let Err(msg) = check_json_pointer(p) {
        issue(key, msg);
    }
}

/// Checks RFC 6901 syntax: empty (the whole document) or `/`-separated tokens in which `~` is
/// only ever followed by `0` (`~`) or `1` (`/`). `serde_json` silently finds nothing at a
/// pointer with any other escape, so a typo like `~2` would only show as empty values.
pub fn check_json_pointer(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Ok(());
    }
    if !p.starts_with('/') {
        return Err(format!(
            "`{p}` is not a JSON Pointer: it must be empty or start with `/`"
        ));
    }
    let mut chars = p.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c == '~' && !matches!(chars.peek(), Some((_, '0' | '1'))) {
            let escape: String = p[at..].chars().take(2).collect();
            return Err(format!(
                "`{p}` is not a JSON Pointer: `{escape}` is not an escape (only `~0` for `~` \
                 and `~1` for `/` exist)"
            ));
        }
    }
    Ok(())
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
    /// Lists item `{id}`'s comments, oldest first: `items_pointer` (default: the whole
    /// answer) is the array, `id_pointer` (default `/id`) each comment's id. With
    /// `create_comment`, comments of this system are synced.
    #[serde(default)]
    pub list_comments: Option<RestOperation>,
    /// Adds a comment to item `{id}`; the body template holds `{{body}}` (the text, a JSON
    /// string) and may hold `{{internal}}` (a boolean). `id_pointer`: the new comment's id in
    /// the answer; without it the id is found by listing the comments (systems that answer
    /// `204`, like Redmine's notes).
    #[serde(default)]
    pub create_comment: Option<RestOperation>,
    /// Rewrites comment `{comment_id}` of item `{id}`; body as `create_comment`'s.
    #[serde(default)]
    pub update_comment: Option<RestOperation>,
    /// Deletes comment `{comment_id}` of item `{id}` (404 counts as deleted). Without it a
    /// deletion to carry here fails as a permanent error: set the connection's
    /// `comment_deletes = "keep"` for a system that cannot delete comments (Redmine).
    #[serde(default)]
    pub delete_comment: Option<RestOperation>,
}

/// `[connection.external.comment]`: where each part of a listed comment is (JSON Pointers
/// inside one element of `list_comments`' array), and its text's format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestComment {
    /// The comment's text. Required.
    pub body_pointer: String,
    /// When it was written (RFC 3339 or epoch seconds/milliseconds). Required.
    pub created_pointer: String,
    /// Its last edit; default: `created_pointer`'s time.
    #[serde(default)]
    pub updated_pointer: Option<String>,
    /// The author's display name; default: none ("").
    #[serde(default)]
    pub author_pointer: Option<String>,
    /// The author's user id or login (a string or a number), for naming them on the other
    /// side through `[connection.users]`; default: none (the display name is used).
    #[serde(default)]
    pub author_id_pointer: Option<String>,
    /// A boolean (or `"1"`/`"0"`) that is true for an internal/private note. When set, the
    /// system counts as having internal comments.
    #[serde(default)]
    pub internal_pointer: Option<String>,
    /// How the text is written: `plain` (default; the only form so far).
    #[serde(default)]
    pub format: Option<String>,
}

impl RestComment {
    fn check(&self, at: &str, issue: &mut impl FnMut(&str, String)) {
        for (k, p) in [
            ("body_pointer", Some(&self.body_pointer)),
            ("created_pointer", Some(&self.created_pointer)),
            ("updated_pointer", self.updated_pointer.as_ref()),
            ("author_pointer", self.author_pointer.as_ref()),
            ("author_id_pointer", self.author_id_pointer.as_ref()),
            ("internal_pointer", self.internal_pointer.as_ref()),
        ] {
            if let Some(p) = p {
                check_pointer(p, &format!("{at}.{k}"), issue);
            }
        }
        match self.format.as_deref() {
            None | Some("plain") => {}
            Some(f @ ("markdown" | "html")) => issue(
                &format!("{at}.format"),
                format!(
                    "\"{f}\" is not supported yet: comments are read and written as plain text \
                     (format = \"plain\")"
                ),
            ),
            Some(f) => issue(
                &format!("{at}.format"),
                format!("unknown format `{f}`: use \"plain\""),
            ),
        }
    }
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
    /// JSON Pointer to a comment id: a delivery with a value there is about that comment of
    /// the item (its event name saying created, updated or deleted), not about the item's
    /// fields.
    #[serde(default)]
    pub comment_id_pointer: Option<String>,
    /// JSON Pointer to an attachment id: a delivery with a value there is about the item's
    /// files (Tandem then reconciles them), not about its fields.
    #[serde(default)]
    pub attachment_id_pointer: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The issues `check` reports for a custom table with these extra TOML lines.
    fn comment_issues(extra: &str) -> Vec<(String, String)> {
        let text = format!(
            "base_url = \"http://x.local\"\nformat = \"custom\"\n\
             [operations.update]\nmethod = \"PUT\"\npath = \"/t/{{id}}\"\n{extra}"
        );
        let cfg: RestConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let mut out = Vec::new();
        cfg.check(false, "c", &mut |k: &str, m: String| {
            out.push((k.to_string(), m))
        });
        out
    }

    #[test]
    fn comment_operations_are_checked_at_load() {
        let list = "[operations.list_comments]\nmethod = \"GET\"\npath = \"/t/{id}/notes\"\n";
        let create = "[operations.create_comment]\nmethod = \"POST\"\npath = \"/t/{id}/notes\"\n\
                      body = '{\"text\": {{body}}}'\nid_pointer = \"/id\"\n";
        let place = "[comment]\nbody_pointer = \"/text\"\ncreated_pointer = \"/at\"\n";
        assert_eq!(comment_issues(""), vec![]);
        assert_eq!(comment_issues(&format!("{list}{create}{place}")), vec![]);
        let keys = |extra: &str| -> Vec<String> {
            comment_issues(extra).into_iter().map(|(k, _)| k).collect()
        };
        assert_eq!(
            keys(&format!("{list}{place}")),
            vec!["c.operations.create_comment"]
        );
        assert_eq!(keys(&format!("{list}{create}")), vec!["c.comment"]);
        assert_eq!(keys(place), vec!["c.comment"]);
        let no_body = create.replace("{{body}}", "\"x\"");
        assert_eq!(
            keys(&format!("{list}{no_body}{place}")),
            vec!["c.operations.create_comment.body"]
        );
        let update = "[operations.update_comment]\nmethod = \"PUT\"\npath = \"/notes\"\n\
                      body = '{\"text\": {{body}}}'\n";
        assert_eq!(
            keys(&format!("{list}{create}{place}{update}")),
            vec!["c.operations.update_comment.path"]
        );
        let issues = comment_issues(&format!("{list}{create}{place}format = \"html\"\n"));
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].0, "c.comment.format");
        assert!(issues[0].1.contains("not supported yet"), "{}", issues[0].1);
        assert_eq!(
            keys(&format!(
                "{list}{create}{place}internal_pointer = \"bad\"\n"
            )),
            vec!["c.comment.internal_pointer"]
        );
    }

    #[test]
    fn pointer_escapes_follow_rfc_6901() {
        for ok in ["", "/", "/a~0b", "/a~1b/c", "/~01", "/é/~1"] {
            assert_eq!(check_json_pointer(ok), Ok(()), "{ok}");
        }
        for bad in ["a", "/a~", "/a~2b", "/~~0", "/x~é"] {
            assert!(check_json_pointer(bad).is_err(), "{bad}");
        }
    }
}
