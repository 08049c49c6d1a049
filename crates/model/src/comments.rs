//! A model of comment sync, checked with `stateright` around core's real
//! [`plan_comments`]: one linked pair of items, people adding, editing and deleting comments
//! on either side, webhooks for every change (people's and Tandem's own) delivered in any
//! order, twice, or lost (the poller then queues a reconcile), and the worker's comment step
//! cut at every store write and remote call — with a crash between any two, and a create
//! whose answer is lost although the comment landed.
//!
//! The worker step is the engine's (`crates/engine/src/worker/comments.rs`): list both
//! sides, plan, then carry the actions out in order; a create records its link as pending
//! before the call and its twin's id after. The model keeps, beside what the systems show,
//! the ground truth the planner cannot see — which comment each of Tandem's twins was made
//! from — so the properties can say "exactly one twin" and "never a twin of a twin".
//!
//! Contents are distinct per edit (a new word each time): two comments with identical text
//! written together are indistinguishable to a system that keeps no mark (see
//! docs/RELIABILITY.md), and the model does not claim more than that.

use chrono::{DateTime, Utc};
use stateright::{Model, Property};
use tandem_core::comment::{
    Comment, CommentAction, CommentInput, CommentLink, CommentLinkState, CommentSettings,
    NewComment, TandemMark, content_key, plan_comments, strip_header,
};
use tandem_core::{Doc, Side};

/// How much may happen in one history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommentBounds {
    /// Comments people add on the Jira side and on the external side.
    pub jira_adds: u8,
    pub external_adds: u8,
    /// Edits and deletions by people, of any comment (their own or a twin).
    pub edits: u8,
    pub deletes: u8,
    /// Worker crashes between any two steps.
    pub crashes: u8,
    /// Creates that land while the worker sees an error.
    pub lost_answers: u8,
    /// Webhooks delivered twice.
    pub duplicates: u8,
    /// Webhooks never delivered.
    pub losses: u8,
}

impl CommentBounds {
    /// People's comments only, no fault.
    pub fn adds(jira_adds: u8, external_adds: u8) -> Self {
        CommentBounds {
            jira_adds,
            external_adds,
            edits: 0,
            deletes: 0,
            crashes: 0,
            lost_answers: 0,
            duplicates: 0,
            losses: 0,
        }
    }
}

/// The model: its bounds and the connection's comment settings.
pub struct CommentModel {
    pub bounds: CommentBounds,
    pub settings: CommentSettings,
}

/// Side index: 0 Jira, 1 external.
fn ix(side: Side) -> usize {
    match side {
        Side::Jira => 0,
        Side::External => 1,
    }
}

const SIDES: [Side; 2] = [Side::Jira, Side::External];

/// One comment as its system holds it, with the model's ground truth beside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct C {
    pub id: u8,
    /// The body as plain text (a twin's includes its header).
    pub text: String,
    pub created: u8,
    pub updated: u8,
    /// Jira keeps Tandem's mark (a comment property); the external system keeps none.
    pub mark: Option<String>,
    /// Ground truth: the comment (side, id) this one is Tandem's twin of.
    pub twin_of: Option<(u8, u8)>,
}

/// A stored comment link (core's `CommentLink`, in a hashable form).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct L {
    pub id: u8,
    pub origin: u8,
    pub ids: [Option<u8>; 2],
    pub shadow: String,
    pub state: u8,
}

/// A queued request to reconcile the pair: the comment a webhook named as created, if any.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Trigger {
    pub created: Option<(u8, u8)>,
}

/// A planned action, in a hashable form, with how far it has got.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// Create on side `on` the twin of `origin` (its link `link`, 0 until recorded).
    Create {
        link: u8,
        origin: (u8, u8),
        on: u8,
        text: String,
        mark: Option<String>,
        shadow: String,
        /// 0: record pending; 1: call; 2: record linked (with `made`).
        stage: u8,
        made: Option<u8>,
    },
    Adopt {
        link: u8,
        on: u8,
        comment: u8,
    },
    Update {
        link: u8,
        on: u8,
        comment: u8,
        text: String,
        shadow: String,
        /// 0: call; 1: record.
        stage: u8,
    },
    Reshadow {
        link: u8,
        shadow: String,
    },
    Delete {
        link: u8,
        on: u8,
        comment: u8,
        stage: u8,
    },
    Keep {
        link: u8,
    },
    Forget {
        link: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CState {
    pub sides: [Vec<C>; 2],
    pub next_id: [u8; 2],
    pub links: Vec<L>,
    pub next_link: u8,
    pub queue: Vec<Trigger>,
    /// The worker's reconcile in progress: the trigger and the steps left.
    pub running: Option<(Trigger, Vec<Step>)>,
    /// Something changed that no queued trigger or poll has seen yet (the poller lists it).
    pub unpolled: bool,
    pub clock: u8,
    pub next_word: u8,
    pub spent: CommentBounds,
    /// Writes Tandem made, for the ping-pong bound.
    pub writes: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CAction {
    Add(u8),
    Edit(u8, u8),
    Delete(u8, u8),
    Duplicate(usize),
    Lose(usize),
    Poll,
    /// The worker lists both sides and plans.
    Reconcile(usize),
    /// The worker carries out the next stage of its first step.
    Work,
    /// The remote create lands but its answer is lost: the event fails and is retried.
    LoseAnswer,
    Crash,
}

fn at(t: u8) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + i64::from(t), 0).unwrap_or_default()
}

fn side_of(i: u8) -> Side {
    if i == 0 { Side::Jira } else { Side::External }
}

impl CommentModel {
    fn left(&self, s: &CState, f: impl Fn(&CommentBounds) -> u8) -> bool {
        f(&s.spent) < f(&self.bounds)
    }

    /// What the planner sees of one side.
    fn comments(s: &CState, side: usize) -> Vec<Comment> {
        s.sides[side]
            .iter()
            .map(|c| Comment {
                id: c.id.to_string(),
                author: if c.twin_of.is_some() { "tandem" } else { "Ann" }.into(),
                author_id: None,
                author_email: None,
                body: Doc::from_plain(&c.text),
                created: at(c.created),
                updated: at(c.updated),
                internal: false,
                mark: c
                    .mark
                    .as_ref()
                    .map(|of| TandemMark::TwinOf { of: of.clone() }),
            })
            .collect()
    }

    fn core_links(s: &CState) -> Vec<CommentLink> {
        s.links
            .iter()
            .map(|l| CommentLink {
                id: i64::from(l.id),
                origin: side_of(l.origin),
                jira_id: l.ids[0].map(|i| i.to_string()),
                external_id: l.ids[1].map(|i| i.to_string()),
                shadow: l.shadow.clone(),
                state: match l.state {
                    0 => CommentLinkState::Pending,
                    1 => CommentLinkState::Linked,
                    _ => CommentLinkState::Kept,
                },
            })
            .collect()
    }

    fn plan(&self, s: &CState) -> Vec<Step> {
        let jira = Self::comments(s, 0);
        let external = Self::comments(s, 1);
        let links = Self::core_links(s);
        let actions = plan_comments(&CommentInput {
            jira: &jira,
            external: &external,
            links: &links,
            settings: &self.settings,
            since: at(0),
            authors: &Default::default(),
        });
        let num = |x: &str| x.parse::<u8>().unwrap_or(u8::MAX);
        let lid = |id: i64| u8::try_from(id).unwrap_or(u8::MAX);
        let text = |c: &NewComment| c.body.to_plain();
        let mark = |c: &NewComment| match &c.mark {
            Some(TandemMark::TwinOf { of }) => Some(of.clone()),
            _ => None,
        };
        actions
            .into_iter()
            .filter_map(|a| {
                Some(match a {
                    CommentAction::Create { link, on, comment } => {
                        let origin_side = ix(link.origin) as u8;
                        let origin_id = num(link.id_on(link.origin).unwrap_or_default());
                        Step::Create {
                            link: lid(link.id),
                            origin: (origin_side, origin_id),
                            on: ix(on) as u8,
                            text: text(&comment),
                            mark: mark(&comment),
                            shadow: link.shadow,
                            stage: 0,
                            made: None,
                        }
                    }
                    CommentAction::Adopt {
                        link_id,
                        on,
                        comment_id,
                    } => Step::Adopt {
                        link: lid(link_id),
                        on: ix(on) as u8,
                        comment: num(&comment_id),
                    },
                    CommentAction::Update {
                        link_id,
                        on,
                        comment_id,
                        comment,
                        shadow,
                    } => Step::Update {
                        link: lid(link_id),
                        on: ix(on) as u8,
                        comment: num(&comment_id),
                        text: text(&comment),
                        shadow,
                        stage: 0,
                    },
                    CommentAction::Reshadow { link_id, shadow } => Step::Reshadow {
                        link: lid(link_id),
                        shadow,
                    },
                    CommentAction::Delete {
                        link_id,
                        on,
                        comment_id,
                    } => Step::Delete {
                        link: lid(link_id),
                        on: ix(on) as u8,
                        comment: num(&comment_id),
                        stage: 0,
                    },
                    CommentAction::Keep { link_id, .. } => Step::Keep { link: lid(link_id) },
                    CommentAction::Forget { link_id } => Step::Forget { link: lid(link_id) },
                    CommentAction::Skip { .. } => return None,
                })
            })
            .collect()
    }
}

impl CState {
    fn tick(&mut self) -> u8 {
        self.clock += 1;
        self.clock
    }

    /// A change on `side` to comment `id`: its webhook is sent, the poller will see it.
    fn changed(&mut self, created: Option<(u8, u8)>) {
        self.queue.push(Trigger { created });
        self.queue.sort();
        self.unpolled = true;
    }

    fn link_mut(&mut self, id: u8) -> Option<&mut L> {
        self.links.iter_mut().find(|l| l.id == id)
    }

    /// The reconcile fails: the event goes back to the queue, to be claimed again.
    fn fail(&mut self) {
        if let Some((trigger, _)) = self.running.take() {
            self.queue.push(trigger);
            self.queue.sort();
        }
    }

    pub fn quiet(&self) -> bool {
        self.queue.is_empty() && self.running.is_none() && !self.unpolled
    }

    /// Tandem's twins of person comment (side, id), on the other side.
    fn twins_of(&self, side: u8, id: u8) -> usize {
        self.sides[usize::from(1 - side)]
            .iter()
            .filter(|c| c.twin_of == Some((side, id)))
            .count()
    }

    fn alive(&self, side: u8, id: u8) -> bool {
        self.sides[usize::from(side)].iter().any(|c| c.id == id)
    }
}

impl Model for CommentModel {
    type State = CState;
    type Action = CAction;

    fn init_states(&self) -> Vec<CState> {
        vec![CState {
            sides: [Vec::new(), Vec::new()],
            next_id: [1, 1],
            links: Vec::new(),
            next_link: 1,
            queue: Vec::new(),
            running: None,
            unpolled: false,
            clock: 0,
            next_word: 0,
            spent: CommentBounds::adds(0, 0),
            writes: 0,
        }]
    }

    fn actions(&self, s: &CState, out: &mut Vec<CAction>) {
        if self.left(s, |b| b.jira_adds) {
            out.push(CAction::Add(0));
        }
        if self.left(s, |b| b.external_adds) {
            out.push(CAction::Add(1));
        }
        for side in 0..2u8 {
            for c in &s.sides[usize::from(side)] {
                if self.left(s, |b| b.edits) {
                    out.push(CAction::Edit(side, c.id));
                }
                if self.left(s, |b| b.deletes) {
                    out.push(CAction::Delete(side, c.id));
                }
            }
        }
        match &s.running {
            None => {
                for i in 0..s.queue.len() {
                    if i > 0 && s.queue[i] == s.queue[i - 1] {
                        continue;
                    }
                    out.push(CAction::Reconcile(i));
                    if self.left(s, |b| b.duplicates) {
                        out.push(CAction::Duplicate(i));
                    }
                    if self.left(s, |b| b.losses) {
                        out.push(CAction::Lose(i));
                    }
                }
                if s.unpolled {
                    out.push(CAction::Poll);
                }
            }
            Some((_, steps)) => {
                out.push(CAction::Work);
                if matches!(steps.first(), Some(Step::Create { stage: 1, .. }))
                    && self.left(s, |b| b.lost_answers)
                {
                    out.push(CAction::LoseAnswer);
                }
                if self.left(s, |b| b.crashes) {
                    out.push(CAction::Crash);
                }
            }
        }
    }

    fn next_state(&self, last: &CState, action: CAction) -> Option<CState> {
        let mut s = last.clone();
        match action {
            CAction::Add(side) => {
                if side == 0 {
                    s.spent.jira_adds += 1;
                } else {
                    s.spent.external_adds += 1;
                }
                let t = s.tick();
                let id = s.next_id[usize::from(side)];
                s.next_id[usize::from(side)] += 1;
                s.next_word += 1;
                s.sides[usize::from(side)].push(C {
                    id,
                    text: format!("w{}", s.next_word),
                    created: t,
                    updated: t,
                    mark: None,
                    twin_of: None,
                });
                s.changed(Some((side, id)));
            }
            CAction::Edit(side, id) => {
                s.spent.edits += 1;
                let t = s.tick();
                s.next_word += 1;
                let word = format!("w{}", s.next_word);
                let c = s.sides[usize::from(side)].iter_mut().find(|c| c.id == id)?;
                // A person edits the words; a twin's header stays as it was.
                c.text = match c.text.split_once("\n\n") {
                    Some((header, _)) if c.twin_of.is_some() => format!("{header}\n\n{word}"),
                    _ => word,
                };
                c.updated = t;
                s.changed(None);
            }
            CAction::Delete(side, id) => {
                s.spent.deletes += 1;
                s.tick();
                s.sides[usize::from(side)].retain(|c| c.id != id);
                s.changed(None);
            }
            CAction::Duplicate(i) => {
                s.spent.duplicates += 1;
                let t = s.queue.get(i)?.clone();
                s.queue.push(t);
                s.queue.sort();
            }
            CAction::Lose(i) => {
                s.spent.losses += 1;
                s.queue.remove(i);
            }
            CAction::Poll => {
                s.unpolled = false;
                s.queue.push(Trigger { created: None });
                s.queue.sort();
            }
            CAction::Reconcile(i) => {
                let trigger = s.queue.remove(i);
                // The fast path: a comment named as created that is linked already.
                if let Some((side, id)) = trigger.created
                    && s.links
                        .iter()
                        .any(|l| l.state == 1 && l.ids[usize::from(side)] == Some(id))
                {
                    return Some(s);
                }
                let steps = self.plan(&s);
                s.running = Some((trigger, steps));
            }
            CAction::Work => self.work(&mut s),
            CAction::LoseAnswer => {
                s.spent.lost_answers += 1;
                let Some((_, steps)) = &s.running else {
                    return None;
                };
                let Some(Step::Create {
                    origin,
                    on,
                    text,
                    mark,
                    ..
                }) = steps.first().cloned()
                else {
                    return None;
                };
                land_create(&mut s, origin, on, text, mark);
                s.fail();
            }
            CAction::Crash => {
                s.spent.crashes += 1;
                s.fail();
            }
        }
        Some(s)
    }

    fn within_boundary(&self, s: &CState) -> bool {
        s.writes <= 12
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("no second twin", |_: &CommentModel, s: &CState| {
                (0..2u8).all(|side| {
                    s.sides[usize::from(side)]
                        .iter()
                        .all(|c| c.twin_of.is_some() || s.twins_of(side, c.id) <= 1)
                })
            }),
            Property::always("no twin of a twin", |_: &CommentModel, s: &CState| {
                s.sides.iter().flatten().all(|c| match c.twin_of {
                    Some((side, id)) => s.sides[usize::from(side)]
                        .iter()
                        .all(|o| o.id != id || o.twin_of.is_none()),
                    None => true,
                })
            }),
            Property::always("no ping-pong", |m: &CommentModel, s: &CState| {
                // Each person's action justifies a few writes; more means a loop.
                let b = &s.spent;
                let acts = b.jira_adds + b.external_adds + b.edits + b.deletes;
                let _ = m;
                s.writes <= 2 * acts + b.crashes + b.lost_answers
            }),
            Property::always(
                "every comment has its twin once quiet",
                |_: &CommentModel, s: &CState| {
                    !s.quiet()
                        || (0..2u8).all(|side| {
                            s.sides[usize::from(side)].iter().all(|c| match c.twin_of {
                                None => s.twins_of(side, c.id) == 1,
                                Some((os, oid)) => s.alive(os, oid),
                            })
                        })
                },
            ),
            Property::always("texts agree once quiet", |m: &CommentModel, s: &CState| {
                !s.quiet()
                    || s.sides.iter().flatten().all(|c| match c.twin_of {
                        None => true,
                        Some((os, oid)) => s.sides[usize::from(os)]
                            .iter()
                            .filter(|o| o.id == oid)
                            .all(|o| {
                                let twin =
                                    strip_header(&Doc::from_plain(&c.text), &m.settings.header);
                                content_key(&twin) == content_key(&Doc::from_plain(&o.text))
                            }),
                    })
            }),
            Property::always("no step left undone", |m: &CommentModel, s: &CState| {
                let mut next = Vec::new();
                m.actions(s, &mut next);
                !next.is_empty() || s.quiet()
            }),
            Property::sometimes(
                "quiet with comments on both sides",
                |_: &CommentModel, s: &CState| {
                    s.quiet() && s.sides[0].len() >= 2 && s.sides[1].len() >= 2
                },
            ),
        ]
    }
}

/// A create lands on side `on`: the twin of `origin`, written by Tandem.
fn land_create(s: &mut CState, origin: (u8, u8), on: u8, text: String, mark: Option<String>) -> u8 {
    let t = s.tick();
    let id = s.next_id[usize::from(on)];
    s.next_id[usize::from(on)] += 1;
    s.sides[usize::from(on)].push(C {
        id,
        text,
        created: t,
        updated: t,
        // Only Jira keeps a mark out of the text.
        mark: if on == 0 { mark } else { None },
        twin_of: Some(origin),
    });
    s.writes += 1;
    s.changed(Some((on, id)));
    id
}

impl CommentModel {
    /// Carries out the next stage of the running reconcile's first step, as the engine's
    /// worker does: a store write or a remote call.
    fn work(&self, s: &mut CState) {
        let Some((_, steps)) = &mut s.running else {
            return;
        };
        let Some(step) = steps.first().cloned() else {
            s.running = None;
            return;
        };
        let advance = |s: &mut CState, next: Option<Step>| {
            if let Some((_, steps)) = &mut s.running {
                match next {
                    Some(n) => steps[0] = n,
                    None => {
                        steps.remove(0);
                    }
                }
            }
        };
        match step {
            Step::Create {
                link,
                origin,
                on,
                text,
                mark,
                shadow,
                stage,
                made,
            } => match stage {
                0 => {
                    let id = if link == 0 {
                        let id = s.next_link;
                        s.next_link += 1;
                        let mut ids = [None, None];
                        ids[usize::from(origin.0)] = Some(origin.1);
                        s.links.push(L {
                            id,
                            origin: origin.0,
                            ids,
                            shadow: shadow.clone(),
                            state: 0,
                        });
                        id
                    } else {
                        link
                    };
                    advance(
                        s,
                        Some(Step::Create {
                            link: id,
                            origin,
                            on,
                            text,
                            mark,
                            shadow,
                            stage: 1,
                            made,
                        }),
                    );
                }
                1 => {
                    let id = land_create(s, origin, on, text.clone(), mark.clone());
                    advance(
                        s,
                        Some(Step::Create {
                            link,
                            origin,
                            on,
                            text,
                            mark,
                            shadow,
                            stage: 2,
                            made: Some(id),
                        }),
                    );
                }
                _ => {
                    if let Some(l) = s.link_mut(link) {
                        l.ids[usize::from(on)] = made;
                        l.state = 1;
                    }
                    advance(s, None);
                }
            },
            Step::Adopt { link, on, comment } => {
                if let Some(l) = s.link_mut(link) {
                    l.ids[usize::from(on)] = Some(comment);
                    l.state = 1;
                }
                advance(s, None);
            }
            Step::Update {
                link,
                on,
                comment,
                text,
                shadow,
                stage,
            } => {
                if stage == 0 {
                    let t = s.tick();
                    let Some(c) = s.sides[usize::from(on)]
                        .iter_mut()
                        .find(|c| c.id == comment)
                    else {
                        // Deleted meanwhile: the call fails, the event is retried and the
                        // next plan sees the deletion.
                        s.fail();
                        return;
                    };
                    c.text = text.clone();
                    c.updated = t;
                    s.writes += 1;
                    s.changed(None);
                    advance(
                        s,
                        Some(Step::Update {
                            link,
                            on,
                            comment,
                            text,
                            shadow,
                            stage: 1,
                        }),
                    );
                } else {
                    if let Some(l) = s.link_mut(link) {
                        l.shadow = shadow;
                    }
                    advance(s, None);
                }
            }
            Step::Reshadow { link, shadow } => {
                if let Some(l) = s.link_mut(link) {
                    l.shadow = shadow;
                }
                advance(s, None);
            }
            Step::Delete {
                link,
                on,
                comment,
                stage,
            } => {
                if stage == 0 {
                    let before = s.sides[usize::from(on)].len();
                    s.sides[usize::from(on)].retain(|c| c.id != comment);
                    if s.sides[usize::from(on)].len() != before {
                        s.writes += 1;
                        s.tick();
                        s.changed(None);
                    }
                    advance(
                        s,
                        Some(Step::Delete {
                            link,
                            on,
                            comment,
                            stage: 1,
                        }),
                    );
                } else {
                    s.links.retain(|l| l.id != link);
                    advance(s, None);
                }
            }
            Step::Keep { link } => {
                if let Some(l) = s.link_mut(link) {
                    l.state = 2;
                }
                advance(s, None);
            }
            Step::Forget { link } => {
                s.links.retain(|l| l.id != link);
                advance(s, None);
            }
        }
        if let Some((_, steps)) = &s.running
            && steps.is_empty()
        {
            s.running = None;
        }
    }
}

/// The sides, for callers that print states.
pub fn side_name(i: u8) -> &'static str {
    SIDES[usize::from(i)].as_str()
}
