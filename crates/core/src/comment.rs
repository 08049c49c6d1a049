//! Comments: the pure rules that keep the conversation of two linked items in step.
//!
//! Comments are synced by *state*, not by replaying deliveries: whatever told Tandem that a
//! comment changed (a webhook, a poll, a redelivery), the worker lists the comments of both
//! items and [`plan_comments`] compares them with the store's comment links (which comment
//! is the twin of which, and the content last synced between them). So a duplicated,
//! reordered or lost delivery cannot create a second twin or skip an edit: the next
//! reconcile of the pair sees the same state and plans the same, idempotent, actions.
//!
//! The rules, per pair of items:
//! - **A comment with no link** on a side allowed to send becomes a twin on the other side:
//!   the link is recorded *before* the create call, as `pending`, with the content being
//!   written; the twin's id is recorded after the call. A crash or a lost answer in between
//!   leaves the pending link, and the next reconcile recognises the twin (by Tandem's mark
//!   where the system keeps one, Jira's comment property, else by its header and content)
//!   instead of creating it again.
//! - **A linked pair**: each side's content (the twin's body without the attribution header)
//!   is compared with the link's shadow. Neither changed: nothing (this is how an echo of
//!   Tandem's own write is recognised: no write is planned). One changed: the other is
//!   updated. Both changed to different texts: the later edit wins.
//! - **A side of a pair gone**: the other is deleted (`comment_deletes = "delete"`) or kept
//!   and the link remembers it (`"keep"`), so it is never recreated.
//! - Comments written by Tandem itself (dead-letter notices) and twins whose link was lost
//!   are never copied back.
//!
//! Contents are compared as normalised plain text ([`content_key`]): systems differ in what
//! rich text they keep (a plain-text tracker drops bold), and comparing richer forms would
//! take such a loss for an edit and write it back. A change of formatting alone therefore
//! does not travel; a change of words does.

use crate::ids::Side;
use crate::richtext::{Block, Doc, Inline};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `[[connection]] comments`: which way comments travel.
pub type CommentSync = crate::direction::Travel;

/// `[[connection]] comment_deletes`: what a deletion on one side does to the twin.
pub type CommentDeletes = crate::direction::Deletes;

/// `[[connection]] internal_comments`: what becomes of an internal note (Jira Service
/// Management's "internal comment", a tracker's private note).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InternalComments {
    /// Sent as an internal/private comment where the other side has such a flag; not sent
    /// where it has none (an internal note never reaches a public channel by default).
    #[default]
    Private,
    /// Never sent.
    Skip,
    /// Sent as an ordinary, public comment.
    Public,
}

/// What Tandem stamped on a comment it wrote, where the system keeps such a stamp out of
/// the text (Jira: the comment property `tandem`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TandemMark {
    /// The twin of comment `of` on the other side.
    TwinOf { of: String },
    /// A notice for people (a dead letter's "Tandem could not sync …").
    Notice,
}

/// One comment as a connector reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// The comment's id on its side.
    pub id: String,
    /// The author's display name ("" when the system does not say).
    pub author: String,
    /// The author as a user field of their side holds them (Jira Cloud: the account id,
    /// Data Center: the user name, elsewhere the system's id or login), when the system
    /// says: what the user map matches to name them on the other side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_id: Option<String>,
    /// The author's e-mail, when the system shows it (a match by e-mail needs no lookup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_email: Option<String>,
    pub body: Doc,
    pub created: DateTime<Utc>,
    /// The last edit; `created` when never edited.
    pub updated: DateTime<Utc>,
    /// An internal note (JSM `jsdPublic: false`, a private note elsewhere).
    #[serde(default)]
    pub internal: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<TandemMark>,
}

/// A comment to write: the body with its attribution header, the visibility, and the mark
/// the connector stamps where its system keeps one.
#[derive(Debug, Clone, PartialEq)]
pub struct NewComment {
    pub body: Doc,
    pub internal: bool,
    /// `None` when the comment written is not Tandem's own (an edit carried back to the
    /// comment a person wrote).
    pub mark: Option<TandemMark>,
}

/// State of a comment link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommentLinkState {
    /// Recorded before the twin's create call; the twin's id is not known yet.
    Pending,
    Linked,
    /// One side was deleted and the other kept (`comment_deletes = "keep"`).
    Kept,
}

impl CommentLinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            CommentLinkState::Pending => "pending",
            CommentLinkState::Linked => "linked",
            CommentLinkState::Kept => "kept",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(CommentLinkState::Pending),
            "linked" => Some(CommentLinkState::Linked),
            "kept" => Some(CommentLinkState::Kept),
            _ => None,
        }
    }
}

/// A comment and its twin, as the store keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentLink {
    /// The store's row id; 0 for a link not stored yet.
    pub id: i64,
    /// The side the comment was first written on.
    pub origin: Side,
    pub jira_id: Option<String>,
    pub external_id: Option<String>,
    /// The content last synced ([`content_key`] of the body without its header).
    pub shadow: String,
    pub state: CommentLinkState,
}

impl CommentLink {
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

/// The connection's comment settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CommentSettings {
    pub sync: CommentSync,
    pub deletes: CommentDeletes,
    pub internal: InternalComments,
    /// The attribution line put above a twin: `{author}` and `{system}` are replaced.
    pub header: String,
    /// How each side is named in the header (`Jira`, `Redmine`, the connection's name …).
    pub jira_system: String,
    pub external_system: String,
    /// Whether each side has internal/private comments (Jira: JSM projects).
    pub jira_has_internal: bool,
    pub external_has_internal: bool,
    /// Copy comments written before the pair's first reconcile (`comments_history`).
    pub history: bool,
}

/// The default attribution header.
pub const DEFAULT_HEADER: &str = "{author} ({system}) wrote:";

impl Default for CommentSettings {
    fn default() -> Self {
        Self {
            sync: CommentSync::Both,
            deletes: CommentDeletes::Delete,
            internal: InternalComments::Private,
            header: DEFAULT_HEADER.into(),
            jira_system: "Jira".into(),
            external_system: "External".into(),
            jira_has_internal: false,
            external_has_internal: false,
            history: false,
        }
    }
}

impl CommentSettings {
    fn system(&self, side: Side) -> &str {
        match side {
            Side::Jira => &self.jira_system,
            Side::External => &self.external_system,
        }
    }
    fn has_internal(&self, side: Side) -> bool {
        match side {
            Side::Jira => self.jira_has_internal,
            Side::External => self.external_has_internal,
        }
    }
}

/// Everything [`plan_comments`] looks at.
#[derive(Debug, Clone)]
pub struct CommentInput<'a> {
    pub jira: &'a [Comment],
    pub external: &'a [Comment],
    pub links: &'a [CommentLink],
    pub settings: &'a CommentSettings,
    /// Comments created before this are history: copied only with `settings.history`.
    pub since: DateTime<Utc>,
    /// How a twin's header names the author of its origin on the twin's side, by the
    /// origin's side and id (the user map's match: a mention in Jira, the login elsewhere).
    /// An origin not in it is named by its author's display name.
    pub authors: &'a Authors,
}

/// The author of each origin comment as the other side names them: by (the origin's side,
/// its id), the inline that stands for `{author}` in the twin's header.
pub type Authors = BTreeMap<(Side, String), Inline>;

/// One step of keeping a pair's comments in step. Each names the link it concerns; a
/// `Create` carries the link to record (pending) before the call.
#[derive(Debug, Clone, PartialEq)]
pub enum CommentAction {
    /// Record `link` as pending (or keep its pending row), create `comment` on `on`, then
    /// record the new id as the link's id on `on`.
    Create {
        link: CommentLink,
        on: Side,
        comment: NewComment,
    },
    /// A pending link's twin exists already (its create went through but its answer or its
    /// record was lost): record `comment_id` as its id on `on`.
    Adopt {
        link_id: i64,
        on: Side,
        comment_id: String,
    },
    /// Write `comment` over comment `comment_id` on `on`; the link's shadow becomes `shadow`.
    Update {
        link_id: i64,
        on: Side,
        comment_id: String,
        comment: NewComment,
        shadow: String,
    },
    /// Both sides hold the same new content already: only the shadow moves.
    Reshadow { link_id: i64, shadow: String },
    /// Delete comment `comment_id` on `on` (its twin was deleted) and forget the link.
    Delete {
        link_id: i64,
        on: Side,
        comment_id: String,
    },
    /// The twin of a deleted comment stays (`comment_deletes = "keep"`): the link turns
    /// `Kept`, remembering `deleted_on`.
    Keep { link_id: i64, deleted_on: Side },
    /// Nothing is left on either side: the link row goes.
    Forget { link_id: i64 },
    /// A comment that is not copied, and why (visible in the audit and the logs).
    Skip {
        side: Side,
        comment_id: String,
        reason: &'static str,
    },
}

/// Plans the steps that bring the comments of a linked pair in step. Pure; the order of the
/// actions is the order to carry them out in (creates in the order the comments were
/// written).
pub fn plan_comments(input: &CommentInput<'_>) -> Vec<CommentAction> {
    let s = input.settings;
    let by_id = |side: Side| -> BTreeMap<&str, &Comment> {
        let list = match side {
            Side::Jira => input.jira,
            Side::External => input.external,
        };
        list.iter().map(|c| (c.id.as_str(), c)).collect()
    };
    let jira = by_id(Side::Jira);
    let external = by_id(Side::External);
    let lists = |side: Side| match side {
        Side::Jira => &jira,
        Side::External => &external,
    };
    // Ids some link names, per side: such comments are never "new".
    let mut linked: [BTreeSet<&str>; 2] = [BTreeSet::new(), BTreeSet::new()];
    for l in input.links {
        for side in Side::BOTH {
            if let Some(id) = l.id_on(side) {
                linked[idx(side)].insert(id);
            }
        }
    }
    let mut actions = Vec::new();
    let mut adopted: [BTreeSet<&str>; 2] = [BTreeSet::new(), BTreeSet::new()];

    for l in input.links {
        match l.state {
            CommentLinkState::Pending => {
                let twin_side = l.origin.other();
                let origin_id = l.id_on(l.origin).unwrap_or_default();
                let Some(origin) = lists(l.origin).get(origin_id).copied() else {
                    // The comment went before its twin was recorded. A twin that landed
                    // all the same (its answer lost) goes too; then the link is forgotten.
                    let landed = lists(twin_side).values().find(|c| {
                        !linked[idx(twin_side)].contains(c.id.as_str())
                            && is_twin_of(c, origin_id, &l.shadow, &s.header)
                    });
                    match landed {
                        Some(twin)
                            if s.deletes == CommentDeletes::Delete
                                && s.sync.writes_to(twin_side) =>
                        {
                            adopted[idx(twin_side)].insert(twin.id.as_str());
                            actions.push(CommentAction::Delete {
                                link_id: l.id,
                                on: twin_side,
                                comment_id: twin.id.clone(),
                            });
                        }
                        _ => actions.push(CommentAction::Forget { link_id: l.id }),
                    }
                    continue;
                };
                let free = |c: &&Comment| {
                    !linked[idx(twin_side)].contains(c.id.as_str())
                        && !adopted[idx(twin_side)].contains(c.id.as_str())
                };
                // By mark, or by header and content; failing that (a person edited the
                // twin before its link was completed), by the header naming the origin's
                // author and system, oldest first: a pairing of two such twins may swap,
                // but no second twin is made.
                let named = header_line(&s.header, &origin.author, s.system(l.origin));
                let attributed = author_of(input.authors, l.origin, origin)
                    .map(|a| header_line(&s.header, &a.plain(), s.system(l.origin)));
                let expected = |line: String| {
                    line == named || attributed.as_deref().is_some_and(|a| a == line)
                };
                let candidates: Vec<&Comment> =
                    lists(twin_side).values().copied().filter(free).collect();
                let found = candidates
                    .iter()
                    .find(|c| is_twin_of(c, origin_id, &l.shadow, &s.header))
                    .or_else(|| {
                        candidates
                            .iter()
                            .filter(|c| c.mark.is_none() && expected(first_line(&c.body)))
                            .min_by_key(|c| (c.created, c.id.as_str()))
                    })
                    .copied();
                match found {
                    Some(twin) => {
                        adopted[idx(twin_side)].insert(twin.id.as_str());
                        actions.push(CommentAction::Adopt {
                            link_id: l.id,
                            on: twin_side,
                            comment_id: twin.id.clone(),
                        });
                    }
                    None => actions.push(CommentAction::Create {
                        link: l.clone(),
                        on: twin_side,
                        comment: twin_comment_by(
                            origin,
                            l.origin,
                            s,
                            author_of(input.authors, l.origin, origin),
                        ),
                    }),
                }
            }
            CommentLinkState::Linked => {
                let j = l.jira_id.as_deref().and_then(|id| jira.get(id).copied());
                let e = l
                    .external_id
                    .as_deref()
                    .and_then(|id| external.get(id).copied());
                match (j, e) {
                    (Some(j), Some(e)) => plan_pair(l, j, e, s, input.authors, &mut actions),
                    (None, None) => actions.push(CommentAction::Forget { link_id: l.id }),
                    (None, Some(_)) => plan_deleted(l, Side::Jira, s, &mut actions),
                    (Some(_), None) => plan_deleted(l, Side::External, s, &mut actions),
                }
            }
            CommentLinkState::Kept => {
                let present = Side::BOTH
                    .iter()
                    .any(|&side| l.id_on(side).is_some_and(|id| lists(side).contains_key(id)));
                if !present {
                    actions.push(CommentAction::Forget { link_id: l.id });
                }
            }
        }
    }

    // Comments no link knows: new ones to copy, in the order they were written.
    let mut fresh: Vec<(Side, &Comment)> = Vec::new();
    for side in Side::BOTH {
        for c in lists(side).values() {
            if !linked[idx(side)].contains(c.id.as_str())
                && !adopted[idx(side)].contains(c.id.as_str())
            {
                fresh.push((side, c));
            }
        }
    }
    fresh.sort_by(|a, b| (a.1.created, &a.1.id).cmp(&(b.1.created, &b.1.id)));
    for (side, c) in fresh {
        if c.mark.is_some() || is_unmarked_twin(c, side, s) {
            // Tandem wrote it: a notice, or a twin whose link is gone. Copying it back
            // would be an echo.
            continue;
        }
        if !s.sync.sends_from(side) {
            continue;
        }
        if !s.history && c.created < input.since {
            continue;
        }
        let skip = |reason| CommentAction::Skip {
            side,
            comment_id: c.id.clone(),
            reason,
        };
        let mut comment = twin_comment_by(c, side, s, author_of(input.authors, side, c));
        if c.internal {
            match s.internal {
                InternalComments::Skip => {
                    actions.push(skip("an internal note (internal_comments = \"skip\")"));
                    continue;
                }
                InternalComments::Private if !s.has_internal(side.other()) => {
                    actions.push(skip(
                        "an internal note, and the other side has no internal comments",
                    ));
                    continue;
                }
                InternalComments::Private => comment.internal = true,
                InternalComments::Public => comment.internal = false,
            }
        }
        let mut link = CommentLink {
            id: 0,
            origin: side,
            jira_id: None,
            external_id: None,
            shadow: content_key(&c.body),
            state: CommentLinkState::Pending,
        };
        link.set_id_on(side, Some(c.id.clone()));
        actions.push(CommentAction::Create {
            link,
            on: side.other(),
            comment,
        });
    }
    actions
}

fn idx(side: Side) -> usize {
    match side {
        Side::Jira => 0,
        Side::External => 1,
    }
}

fn plan_pair(
    l: &CommentLink,
    j: &Comment,
    e: &Comment,
    s: &CommentSettings,
    authors: &Authors,
    out: &mut Vec<CommentAction>,
) {
    let key = |c: &Comment, side: Side| {
        let body = if side == l.origin {
            c.body.clone()
        } else {
            strip_header(&c.body, &s.header)
        };
        content_key(&body)
    };
    let kj = key(j, Side::Jira);
    let ke = key(e, Side::External);
    let changed_j = kj != l.shadow;
    let changed_e = ke != l.shadow;
    if !changed_j && !changed_e {
        return;
    }
    if kj == ke {
        out.push(CommentAction::Reshadow {
            link_id: l.id,
            shadow: kj,
        });
        return;
    }
    // Which side's text wins: the one that changed, or the later edit when both did.
    let from = match (changed_j, changed_e) {
        (true, false) => Side::Jira,
        (false, true) => Side::External,
        _ if e.updated > j.updated => Side::External,
        _ => Side::Jira,
    };
    let (winner, loser, shadow) = match from {
        Side::Jira => (j, e, kj),
        Side::External => (e, j, ke),
    };
    let to = from.other();
    if !s.sync.writes_to(to) {
        return;
    }
    // The winner's content, written the way the loser's side holds it: the origin gets the
    // text alone, a twin gets the header of the origin's author above it.
    let content = if from == l.origin {
        winner.body.clone()
    } else {
        strip_header(&winner.body, &s.header)
    };
    let body = if to == l.origin {
        inert(&content)
    } else {
        // The twin's author is Tandem; the header names the origin's author, which the
        // origin (the winner or the loser) carries.
        let origin = if from == l.origin { winner } else { loser };
        with_header(
            &content,
            &origin.author,
            author_of(authors, l.origin, origin),
            s.system(l.origin),
            &s.header,
        )
    };
    out.push(CommentAction::Update {
        link_id: l.id,
        on: to,
        comment_id: loser.id.clone(),
        comment: NewComment {
            body,
            internal: loser.internal,
            mark: (to != l.origin).then(|| mark_for(l, to)),
        },
        shadow,
    });
}

/// The mark of the comment on `on` of link `l`.
fn mark_for(l: &CommentLink, on: Side) -> TandemMark {
    let of = l.id_on(on.other()).unwrap_or_default().to_string();
    TandemMark::TwinOf { of }
}

fn plan_deleted(l: &CommentLink, gone: Side, s: &CommentSettings, out: &mut Vec<CommentAction>) {
    let left = gone.other();
    match s.deletes {
        CommentDeletes::Delete if s.sync.writes_to(left) => out.push(CommentAction::Delete {
            link_id: l.id,
            on: left,
            comment_id: l.id_on(left).unwrap_or_default().to_string(),
        }),
        _ => out.push(CommentAction::Keep {
            link_id: l.id,
            deleted_on: gone,
        }),
    }
}

/// Whether `c`, on `side` where the system keeps no mark, reads as a twin Tandem made: its
/// first paragraph is a header naming the other side's system.
fn is_unmarked_twin(c: &Comment, side: Side, s: &CommentSettings) -> bool {
    c.mark.is_none()
        && has_header(&c.body, &s.header)
        && first_line(&c.body).contains(s.system(side.other()))
}

/// The plain text of the first block of `body`.
fn first_line(body: &Doc) -> String {
    match body.normalized().blocks.first() {
        Some(Block::Paragraph { content }) => content
            .iter()
            .map(Inline::plain)
            .collect::<String>()
            .trim()
            .to_string(),
        _ => String::new(),
    }
}

/// Whether `c` is the twin Tandem made of comment `origin_id` whose content was `shadow`:
/// by its mark where the system keeps one, else by its header and content.
fn is_twin_of(c: &Comment, origin_id: &str, shadow: &str, header: &str) -> bool {
    match &c.mark {
        Some(TandemMark::TwinOf { of }) => of == origin_id,
        Some(TandemMark::Notice) => false,
        None => {
            has_header(&c.body, header) && content_key(&strip_header(&c.body, header)) == shadow
        }
    }
}

/// The twin of `origin` (written on `from`): the header naming its author and system, then
/// its content with mentions made inert.
pub fn twin_comment(origin: &Comment, from: Side, s: &CommentSettings) -> NewComment {
    twin_comment_by(origin, from, s, None)
}

/// [`twin_comment`] with the header naming the author by `author` (the user map's match on
/// the twin's side) instead of their display name, when given.
pub fn twin_comment_by(
    origin: &Comment,
    from: Side,
    s: &CommentSettings,
    author: Option<&Inline>,
) -> NewComment {
    NewComment {
        body: with_header(
            &origin.body,
            &origin.author,
            author,
            s.system(from),
            &s.header,
        ),
        internal: false,
        mark: Some(TandemMark::TwinOf {
            of: origin.id.clone(),
        }),
    }
}

/// How the other side names the author of `c` (on `side`), when the worker matched them.
fn author_of<'a>(authors: &'a Authors, side: Side, c: &Comment) -> Option<&'a Inline> {
    authors.get(&(side, c.id.clone()))
}

/// The header line for `author` on `system`.
pub fn header_line(template: &str, author: &str, system: &str) -> String {
    let author = if author.trim().is_empty() {
        "Someone"
    } else {
        author.trim()
    };
    template
        .replace("{author}", author)
        .replace("{system}", system)
}

/// `content` (made inert) under the header naming `name` (the display name) or, when
/// given, `author` (a mention or a login of the twin's side) in place of `{author}`.
fn with_header(
    content: &Doc,
    name: &str,
    author: Option<&Inline>,
    system: &str,
    template: &str,
) -> Doc {
    let header = match author {
        None => vec![Inline::text(header_line(template, name, system))],
        Some(author) => header_inlines(template, author, system),
    };
    let mut blocks = vec![Block::Paragraph { content: header }];
    blocks.extend(inert(content).blocks);
    Doc { blocks }
}

/// The header with `author` itself (a mention stays a mention) wherever the template says
/// `{author}`, the rest as text.
fn header_inlines(template: &str, author: &Inline, system: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut parts = template.split("{author}").peekable();
    while let Some(part) = parts.next() {
        let text = part.replace("{system}", system);
        if !text.is_empty() {
            out.push(Inline::text(text));
        }
        if parts.peek().is_some() {
            out.push(author.clone());
        }
    }
    out
}

/// Whether the first paragraph of `body` reads as a header made from `template` (its fixed
/// parts in order, whatever the author and system).
pub fn has_header(body: &Doc, template: &str) -> bool {
    let Some(first) = body.normalized().blocks.into_iter().next() else {
        return false;
    };
    let Block::Paragraph { content } = first else {
        return false;
    };
    let text: String = content.iter().map(Inline::plain).collect();
    matches_template(text.trim(), template)
}

fn matches_template(text: &str, template: &str) -> bool {
    let mut parts: Vec<&str> = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        match rest[open..].find('}') {
            Some(close) => {
                parts.push(&rest[..open]);
                rest = &rest[open + close + 1..];
            }
            None => break,
        }
    }
    parts.push(rest);
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return text == first;
    }
    if !text.starts_with(first) || !text.ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut middle = &text[first.len()..text.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match middle.find(p) {
            Some(at) => middle = &middle[at + p.len()..],
            None => return false,
        }
    }
    true
}

/// `body` without its first paragraph when that paragraph is a header.
pub fn strip_header(body: &Doc, template: &str) -> Doc {
    let mut doc = body.normalized();
    if has_header(&doc, template) {
        doc.blocks.remove(0);
    }
    doc
}

/// A word joiner put after `@` in text copied to the other side, so that a name written
/// for one system's people notifies no one in the other; removed again when comparing.
const INERT: char = '\u{2060}';

/// `doc` with mentions turned into their display text and every `@name` made inert.
pub fn inert(doc: &Doc) -> Doc {
    fn inlines(content: &[Inline]) -> Vec<Inline> {
        content
            .iter()
            .map(|i| match i {
                Inline::Mention { id, text } => {
                    let shown = if text.trim().is_empty() {
                        format!("@{id}")
                    } else if text.starts_with('@') {
                        text.clone()
                    } else {
                        format!("@{text}")
                    };
                    Inline::text(disarm(&shown))
                }
                Inline::Text { text, marks, link } => Inline::Text {
                    text: disarm(text),
                    marks: *marks,
                    link: link.clone(),
                },
                other => other.clone(),
            })
            .collect()
    }
    fn blocks(bs: &[Block]) -> Vec<Block> {
        bs.iter()
            .map(|b| match b {
                Block::Paragraph { content } => Block::Paragraph {
                    content: inlines(content),
                },
                Block::Heading { level, content } => Block::Heading {
                    level: *level,
                    content: inlines(content),
                },
                Block::BulletList { items } => Block::BulletList {
                    items: items.iter().map(|i| blocks(i)).collect(),
                },
                Block::OrderedList { items } => Block::OrderedList {
                    items: items.iter().map(|i| blocks(i)).collect(),
                },
                Block::Quote { blocks: inner } => Block::Quote {
                    blocks: blocks(inner),
                },
                other => other.clone(),
            })
            .collect()
    }
    Doc {
        blocks: blocks(&doc.blocks),
    }
}

/// Puts [`INERT`] after every `@` that starts a name (and in Jira wiki markup's `[~name]`).
fn disarm(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut prev: Option<char> = None;
    while let Some(c) = chars.next() {
        out.push(c);
        let starts_name = chars
            .peek()
            .is_some_and(|n| n.is_alphanumeric() || *n == '_' || *n == '[');
        if (c == '@' && starts_name) || (c == '~' && prev == Some('[')) {
            out.push(INERT);
        }
        prev = Some(c);
    }
    out
}

/// The form contents are compared in: plain text of the document with mentions as their
/// display text, the inert marks removed and runs of white space made one space.
pub fn content_key(doc: &Doc) -> String {
    let plain = inert(doc).to_plain().replace(INERT, "");
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
