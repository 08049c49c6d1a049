//! The comment keys of `[[connection]]`: which way comments travel, what a deletion does,
//! what becomes of internal notes, the attribution header and whether history is copied.

use serde::Deserialize;
use tandem_core::comment::{CommentDeletes, CommentSync, DEFAULT_HEADER, InternalComments};

/// A connection's comment settings, as written in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CommentsConfig {
    /// `comments = "both" | "to_jira" | "to_external" | "none"`; default `both`, which
    /// syncs comments where both connectors support them (`tandem check` says when not).
    pub sync: CommentSync,
    /// `comment_deletes = "delete" | "keep"`.
    pub deletes: CommentDeletes,
    /// `internal_comments = "private" | "skip" | "public"`.
    pub internal: InternalComments,
    /// `comment_header = "{author} ({system}) wrote:"`.
    pub header: String,
    /// `comments_history = true`: copy the comments written before a pair was first
    /// reconciled (bulk sync, discovery), in order.
    pub history: bool,
    /// `external_name = "Desk"`: how the other system is named in headers (`{system}`);
    /// default: the preset's name, else `External`.
    pub external_name: Option<String>,
}

impl Default for CommentsConfig {
    fn default() -> Self {
        Self {
            sync: CommentSync::Both,
            deletes: CommentDeletes::Delete,
            internal: InternalComments::Private,
            header: DEFAULT_HEADER.into(),
            history: false,
            external_name: None,
        }
    }
}

impl CommentsConfig {
    /// What serde cannot check, reported at `at` (`connection[0]`).
    pub(super) fn check(&self, at: &str, issue: &mut impl FnMut(&str, String)) {
        if self.header.trim().is_empty() {
            issue(
                &format!("{at}.comment_header"),
                "must not be empty: the header is how Tandem tells its twins from people's \
                 comments (default \"{author} ({system}) wrote:\")"
                    .into(),
            );
        } else if !self.header.contains("{author}") {
            issue(
                &format!("{at}.comment_header"),
                format!(
                    "`{}` does not name the author: include `{{author}}` (and `{{system}}`)",
                    self.header
                ),
            );
        }
        if let Some(bad) = unknown_placeholder(&self.header) {
            issue(
                &format!("{at}.comment_header"),
                format!("unknown placeholder `{{{bad}}}`: use `{{author}}` and `{{system}}`"),
            );
        }
        if self.header.contains('\n') {
            issue(&format!("{at}.comment_header"), "must be one line".into());
        }
    }
}

fn unknown_placeholder(template: &str) -> Option<&str> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let name = &after[..close];
        if name != "author" && name != "system" {
            return Some(name);
        }
        rest = &after[close + 1..];
    }
    None
}
