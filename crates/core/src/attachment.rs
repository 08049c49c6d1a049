//! Attachments: the pure rules that keep the files of two linked items in step.
//!
//! Like comments (see [`crate::comment`]), attachments are synced by *state*: whatever told
//! Tandem that a file changed (a webhook, a poll, a redelivery, an echo of Tandem's own
//! upload), the worker lists the attachments of both items and [`plan_attachments`] compares
//! them with the store's attachment links. A duplicated, reordered or lost delivery therefore
//! plans the same, idempotent, actions.
//!
//! An attachment's **identity** is the SHA-256 of its content plus its file name. Systems
//! give attachments new ids when they are copied, and some (Jira) do not say what a file
//! holds, so an id cannot recognise a twin; the content and the name can.
//!
//! The rules, per pair of items:
//! - **A file with no link** on a side allowed to send: if the other side holds an unlinked
//!   file of the same identity, the two are paired (a resync, or a store that lost its links,
//!   never makes a second copy). Otherwise it is uploaded to the other side: the link is
//!   recorded *before* the upload, as `pending`, with the identity being written; the twin's
//!   id is recorded after. A crash, a `kill -9` mid-upload or a lost answer leaves the pending
//!   link, and the next reconcile finds the twin by its identity (adopts it) instead of
//!   uploading it again, or uploads again when nothing landed.
//! - **A file over `attachment_max_bytes`, or of a content type outside the allow-list**, is
//!   a visible skip: a `skipped` link remembers it (one audit row, not one per reconcile); it
//!   is reconsidered when the settings change.
//! - **A side of a pair gone**: the other is deleted (`attachment_deletes = "delete"`) or kept
//!   and the link remembers it (`"keep"`), so it is never uploaded again.
//! - Files are never edited in place by these systems: a changed file is a new attachment.
//!
//! Planning needs the content hash of every unlinked file; listings of some systems give it
//! (the seed's `sha256`), others do not (Jira). [`needs_hash`] names the files the worker must
//! hash (streaming them to a temporary file) before planning; files already linked by id are
//! never downloaded.

use crate::ids::Side;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// `[[connection]] attachments`: which way files travel.
pub type AttachmentSync = crate::direction::Travel;

/// `[[connection]] attachment_deletes`: what a deletion on one side does to the twin.
pub type AttachmentDeletes = crate::direction::Deletes;

/// The default `attachment_max_bytes`: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// One attachment as a connector lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The attachment's id on its side.
    pub id: String,
    pub filename: String,
    /// Size in bytes, as the system reports it.
    pub size: u64,
    /// Lower-case hex SHA-256 of the content, when the system says (or the worker hashed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Where the content is downloaded from, when the listing says (Jira's `content`, the
    /// seed's `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// State of an attachment link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentLinkState {
    /// Recorded before the upload; the twin's id is not known yet.
    Pending,
    Linked,
    /// One side was deleted and the other kept (`attachment_deletes = "keep"`).
    Kept,
    /// Not copied (over the size limit, or a content type not allowed); remembered so the
    /// skip is reported once.
    Skipped,
}

impl AttachmentLinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentLinkState::Pending => "pending",
            AttachmentLinkState::Linked => "linked",
            AttachmentLinkState::Kept => "kept",
            AttachmentLinkState::Skipped => "skipped",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(AttachmentLinkState::Pending),
            "linked" => Some(AttachmentLinkState::Linked),
            "kept" => Some(AttachmentLinkState::Kept),
            "skipped" => Some(AttachmentLinkState::Skipped),
            _ => None,
        }
    }
}

/// An attachment and its twin, as the store keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentLink {
    /// The store's row id; 0 for a link not stored yet.
    pub id: i64,
    /// The side the file was first attached on.
    pub origin: Side,
    pub jira_id: Option<String>,
    pub external_id: Option<String>,
    /// The identity: content hash ("" for a skipped file that was never hashed) and name.
    pub sha256: String,
    pub filename: String,
    pub size: u64,
    pub state: AttachmentLinkState,
}

impl AttachmentLink {
    pub fn id_on(&self, side: Side) -> Option<&str> {
        match side {
            Side::Jira => self.jira_id.as_deref(),
            Side::External => self.external_id.as_deref(),
        }
    }
    pub fn set_id_on(&mut self, side: Side, id: Option<String>) {
        match side {
            Side::Jira => self.jira_id = id,
            Side::External => self.external_id = id,
        }
    }
}

/// The connection's attachment settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentSettings {
    pub sync: AttachmentSync,
    pub deletes: AttachmentDeletes,
    pub max_bytes: u64,
    /// Allowed content types (`image/png`, `image/*`); empty: any.
    pub types: Vec<String>,
}

impl Default for AttachmentSettings {
    fn default() -> Self {
        AttachmentSettings {
            sync: AttachmentSync::Both,
            deletes: AttachmentDeletes::Delete,
            max_bytes: DEFAULT_MAX_BYTES,
            types: Vec::new(),
        }
    }
}

impl AttachmentSettings {
    /// Why `a` may not be copied, if it may not: too large, or a type not allowed.
    pub fn refusal(&self, a: &Attachment) -> Option<String> {
        if a.size > self.max_bytes {
            return Some(format!(
                "{} bytes, over attachment_max_bytes ({})",
                a.size, self.max_bytes
            ));
        }
        if !self.types.is_empty() {
            let Some(ct) = a.content_type.as_deref() else {
                return Some("no content type, and attachment_types is set".into());
            };
            if !self.types.iter().any(|t| type_matches(t, ct)) {
                return Some(format!(
                    "content type `{}` is not in attachment_types",
                    base_type(ct)
                ));
            }
        }
        None
    }
}

/// `image/png; charset=…` → `image/png`, lower case.
fn base_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether allow-list entry `pattern` (`image/png`, `image/*`, `*/*`) admits `ct`.
pub fn type_matches(pattern: &str, ct: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    let ct = base_type(ct);
    if pattern == "*/*" || pattern == "*" || pattern == ct {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(major) => ct.split('/').next() == Some(major),
        None => false,
    }
}

/// Everything [`plan_attachments`] looks at.
#[derive(Debug, Clone)]
pub struct AttachmentInput<'a> {
    pub jira: &'a [Attachment],
    pub external: &'a [Attachment],
    pub links: &'a [AttachmentLink],
    pub settings: &'a AttachmentSettings,
}

/// One step of keeping a pair's files in step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentAction {
    /// Record `link` as pending (a new row, or its pending/skipped row rewritten), copy
    /// attachment `from_id` of `link.origin` to `on`, then record the new id on `on`.
    Upload {
        link: AttachmentLink,
        on: Side,
        from_id: String,
    },
    /// A pending link's twin exists already (its upload went through but the answer or its
    /// record was lost): record `attachment_id` as its id on `on`.
    Adopt {
        link_id: i64,
        on: Side,
        attachment_id: String,
    },
    /// Two unlinked files of the same identity, one on each side: record `link` as linked.
    Pair { link: AttachmentLink },
    /// Delete attachment `attachment_id` on `on` (its twin was deleted) and forget the link.
    Delete {
        link_id: i64,
        on: Side,
        attachment_id: String,
    },
    /// The twin of a deleted file stays (`attachment_deletes = "keep"`).
    Keep { link_id: i64, deleted_on: Side },
    /// Nothing is left to remember: the link row goes.
    Forget { link_id: i64 },
    /// A file that is not copied: `link` (state `Skipped`) is recorded, with `reason`, for
    /// the audit.
    Skip {
        link: AttachmentLink,
        reason: String,
    },
}

fn idx(side: Side) -> usize {
    match side {
        Side::Jira => 0,
        Side::External => 1,
    }
}

fn identity(a: &Attachment) -> Option<(&str, &str)> {
    a.sha256.as_deref().map(|h| (h, a.filename.as_str()))
}

/// The files whose content hash planning needs and the listing did not give: the unlinked
/// files that may travel or be paired. Files over the limit or of a refused type are never
/// among them, so they are never downloaded; files linked by id need no hash either.
pub fn needs_hash(input: &AttachmentInput<'_>) -> Vec<(Side, String)> {
    if input.settings.sync == AttachmentSync::Off {
        return Vec::new();
    }
    let linked = linked_ids(input.links);
    let mut out = Vec::new();
    for side in Side::BOTH {
        for a in list(input, side) {
            if a.sha256.is_none()
                && !linked[idx(side)].contains(a.id.as_str())
                && input.settings.refusal(a).is_none()
            {
                out.push((side, a.id.clone()));
            }
        }
    }
    out
}

fn list<'a>(input: &AttachmentInput<'a>, side: Side) -> &'a [Attachment] {
    match side {
        Side::Jira => input.jira,
        Side::External => input.external,
    }
}

fn linked_ids(links: &[AttachmentLink]) -> [BTreeSet<&str>; 2] {
    let mut linked: [BTreeSet<&str>; 2] = [BTreeSet::new(), BTreeSet::new()];
    for l in links {
        for side in Side::BOTH {
            if let Some(id) = l.id_on(side) {
                linked[idx(side)].insert(id);
            }
        }
    }
    linked
}

/// Plans the steps that bring the files of a linked pair in step. Pure; the actions are in
/// the order to carry them out.
pub fn plan_attachments(input: &AttachmentInput<'_>) -> Vec<AttachmentAction> {
    let s = input.settings;
    let find = |side: Side, id: &str| list(input, side).iter().find(|a| a.id == id);
    let linked = linked_ids(input.links);
    // Files claimed in this plan (adopted or paired), per side.
    let mut claimed: [BTreeSet<String>; 2] = [BTreeSet::new(), BTreeSet::new()];
    let free = |side: Side, a: &Attachment, claimed: &[BTreeSet<String>; 2]| {
        !linked[idx(side)].contains(a.id.as_str()) && !claimed[idx(side)].contains(&a.id)
    };
    let mut actions = Vec::new();

    for l in input.links {
        match l.state {
            AttachmentLinkState::Pending => {
                let twin_side = l.origin.other();
                let origin_id = l.id_on(l.origin).unwrap_or_default();
                let landed = list(input, twin_side)
                    .iter()
                    .find(|a| {
                        free(twin_side, a, &claimed)
                            && identity(a) == Some((l.sha256.as_str(), l.filename.as_str()))
                    })
                    .map(|a| a.id.clone());
                match (find(l.origin, origin_id), landed) {
                    (Some(_), Some(twin)) => {
                        claimed[idx(twin_side)].insert(twin.clone());
                        actions.push(AttachmentAction::Adopt {
                            link_id: l.id,
                            on: twin_side,
                            attachment_id: twin,
                        });
                    }
                    (Some(origin), None) => {
                        if let Some(reason) = s.refusal(origin) {
                            let mut link = l.clone();
                            link.state = AttachmentLinkState::Skipped;
                            actions.push(AttachmentAction::Skip { link, reason });
                        } else if s.sync.writes_to(twin_side) {
                            actions.push(AttachmentAction::Upload {
                                link: l.clone(),
                                on: twin_side,
                                from_id: origin_id.to_string(),
                            });
                        } else {
                            actions.push(AttachmentAction::Forget { link_id: l.id });
                        }
                    }
                    // The origin went before its twin was recorded: a twin that landed all
                    // the same goes too (or stays, by setting); the link is forgotten.
                    (None, Some(twin))
                        if s.deletes == AttachmentDeletes::Delete
                            && s.sync.writes_to(twin_side) =>
                    {
                        claimed[idx(twin_side)].insert(twin.clone());
                        actions.push(AttachmentAction::Delete {
                            link_id: l.id,
                            on: twin_side,
                            attachment_id: twin,
                        });
                    }
                    (None, twin) => {
                        if let Some(t) = twin {
                            claimed[idx(twin_side)].insert(t);
                        }
                        actions.push(AttachmentAction::Forget { link_id: l.id });
                    }
                }
            }
            AttachmentLinkState::Linked => {
                let j = l.jira_id.as_deref().and_then(|id| find(Side::Jira, id));
                let e = l
                    .external_id
                    .as_deref()
                    .and_then(|id| find(Side::External, id));
                match (j, e) {
                    (Some(_), Some(_)) => {}
                    (None, None) => actions.push(AttachmentAction::Forget { link_id: l.id }),
                    (None, Some(_)) => deleted(l, Side::Jira, s, &mut actions),
                    (Some(_), None) => deleted(l, Side::External, s, &mut actions),
                }
            }
            AttachmentLinkState::Kept => {
                let present = Side::BOTH
                    .iter()
                    .any(|&side| l.id_on(side).is_some_and(|id| find(side, id).is_some()));
                if !present {
                    actions.push(AttachmentAction::Forget { link_id: l.id });
                }
            }
            AttachmentLinkState::Skipped => {
                let origin_id = l.id_on(l.origin).unwrap_or_default();
                match find(l.origin, origin_id) {
                    None => actions.push(AttachmentAction::Forget { link_id: l.id }),
                    // Admitted now (the limit was raised, the allow-list widened): the file
                    // is considered afresh below, as if never seen.
                    Some(a) if s.refusal(a).is_none() && s.sync.sends_from(l.origin) => {
                        actions.push(AttachmentAction::Forget { link_id: l.id });
                    }
                    Some(_) => {}
                }
            }
        }
    }
    // Skipped links that were just forgotten free their file for the pass below.
    let reconsidered: BTreeSet<i64> = actions
        .iter()
        .filter_map(|a| match a {
            AttachmentAction::Forget { link_id } => Some(*link_id),
            _ => None,
        })
        .collect();
    let still_linked = |side: Side, id: &str| {
        input.links.iter().any(|l| {
            !(l.state == AttachmentLinkState::Skipped && reconsidered.contains(&l.id))
                && l.id_on(side) == Some(id)
        })
    };

    // Files no link knows.
    for side in Side::BOTH {
        for a in list(input, side) {
            if still_linked(side, &a.id) || claimed[idx(side)].contains(&a.id) {
                continue;
            }
            let refusal = s.refusal(a);
            let Some((sha, name)) = identity(a) else {
                // Unknown content: a refused file is skipped without ever being read; any
                // other is never planned on a guess (the worker hashes what `needs_hash`
                // names; a file it could not hash waits for the next reconcile).
                if let Some(reason) = refusal.filter(|_| s.sync.sends_from(side)) {
                    claimed[idx(side)].insert(a.id.clone());
                    let mut link = AttachmentLink {
                        id: 0,
                        origin: side,
                        jira_id: None,
                        external_id: None,
                        sha256: String::new(),
                        filename: a.filename.clone(),
                        size: a.size,
                        state: AttachmentLinkState::Skipped,
                    };
                    link.set_id_on(side, Some(a.id.clone()));
                    actions.push(AttachmentAction::Skip { link, reason });
                }
                continue;
            };
            let other = side.other();
            let twin = list(input, other).iter().find(|b| {
                !still_linked(other, &b.id)
                    && !claimed[idx(other)].contains(&b.id)
                    && identity(b) == Some((sha, name))
            });
            let mut link = AttachmentLink {
                id: 0,
                origin: side,
                jira_id: None,
                external_id: None,
                sha256: sha.to_string(),
                filename: name.to_string(),
                size: a.size,
                state: AttachmentLinkState::Pending,
            };
            link.set_id_on(side, Some(a.id.clone()));
            if let Some(b) = twin {
                claimed[idx(side)].insert(a.id.clone());
                claimed[idx(other)].insert(b.id.clone());
                link.set_id_on(other, Some(b.id.clone()));
                link.state = AttachmentLinkState::Linked;
                actions.push(AttachmentAction::Pair { link });
                continue;
            }
            if !s.sync.sends_from(side) {
                continue;
            }
            claimed[idx(side)].insert(a.id.clone());
            if let Some(reason) = refusal {
                link.state = AttachmentLinkState::Skipped;
                actions.push(AttachmentAction::Skip { link, reason });
                continue;
            }
            actions.push(AttachmentAction::Upload {
                link,
                on: other,
                from_id: a.id.clone(),
            });
        }
    }
    actions
}

fn deleted(
    l: &AttachmentLink,
    gone: Side,
    s: &AttachmentSettings,
    out: &mut Vec<AttachmentAction>,
) {
    let left = gone.other();
    match s.deletes {
        AttachmentDeletes::Delete if s.sync.writes_to(left) => out.push(AttachmentAction::Delete {
            link_id: l.id,
            on: left,
            attachment_id: l.id_on(left).unwrap_or_default().to_string(),
        }),
        _ => out.push(AttachmentAction::Keep {
            link_id: l.id,
            deleted_on: gone,
        }),
    }
}

#[cfg(test)]
mod tests;
