//! What the worker knows about one connection: its two connectors, mapping, conflict policy,
//! create rules, scope, rules script and comment settings, and the planner input built from them for everyone
//! who plans.

use crate::connector::{Connector, Fields, Item};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use tandem_core::attachment::{AttachmentSettings, AttachmentSync};
use tandem_core::comment::{CommentSettings, CommentSync};
use tandem_core::mapping::{ConflictPolicy, Mapping};
use tandem_core::plan::PlanInput;
use tandem_core::{Shadow, Side};
use tandem_script::{FieldExpr, Script};
use tokio::sync::Mutex;

/// Which sides may receive newly created twins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateRules {
    pub to_jira: bool,
    pub to_external: bool,
}

impl CreateRules {
    /// Whether a twin may be created on `target`.
    pub fn allows(&self, target: Side) -> bool {
        match target {
            Side::Jira => self.to_jira,
            Side::External => self.to_external,
        }
    }
}

/// Which Jira issues a connection covers. Empty lists mean "all".
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub projects: Vec<String>,
    pub issue_types: Vec<String>,
}

/// Whether `value` passes a scope list: an empty list admits everything, else a
/// case-insensitive match.
fn admits(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|v| v.eq_ignore_ascii_case(value))
}

impl Scope {
    /// `None` when the Jira item is in scope, else the reason it is not.
    pub fn excludes(&self, item: &Item) -> Option<String> {
        if let Some(project) = &item.project
            && !admits(&self.projects, project)
        {
            return Some(format!(
                "project {project} is outside the connection's projects"
            ));
        }
        if let Some(issue_type) = &item.issue_type
            && !admits(&self.issue_types, issue_type)
        {
            return Some(format!(
                "issue type {issue_type} is outside the connection's issue types"
            ));
        }
        None
    }
}

/// Everything the worker needs to know about one connection.
pub struct ConnectionRuntime {
    pub name: String,
    pub jira: Arc<dyn Connector>,
    pub external: Arc<dyn Connector>,
    pub mapping: Mapping,
    pub policy: ConflictPolicy,
    pub create: CreateRules,
    pub scope: Scope,
    /// The connection's rules script (`script = "rules.rhai"`), compiled.
    pub script: Option<Script>,
    /// The mapping entries' `expr`s, compiled, by mapping key.
    pub exprs: BTreeMap<String, FieldExpr>,
    /// How the pair's comments are kept in step (off unless [`Self::with_comments`] says).
    pub comments: CommentSettings,
    /// Matches people across the sides (`[connection.users]`); `None`: user values cross
    /// as they are.
    pub users: Option<Arc<crate::users::UserResolver>>,
    /// How the pair's files are kept in step (off unless [`Self::with_attachments`] says).
    pub attachments: AttachmentSettings,
    /// Serialises link discovery and twin creation: the echo of a twin being created waits
    /// here and then finds the new link instead of creating a second twin.
    pub(super) link_lock: Mutex<()>,
    /// Fingerprints of each side's configuration: a create circuit opened under one is
    /// closed when the process starts with another (the configuration was fixed).
    jira_fingerprint: String,
    external_fingerprint: String,
}

impl ConnectionRuntime {
    pub fn new(
        name: String,
        jira: Arc<dyn Connector>,
        external: Arc<dyn Connector>,
        mapping: Mapping,
        policy: ConflictPolicy,
        create: CreateRules,
        scope: Scope,
    ) -> Self {
        ConnectionRuntime {
            name,
            jira,
            external,
            mapping,
            policy,
            create,
            scope,
            script: None,
            exprs: BTreeMap::new(),
            comments: CommentSettings {
                sync: CommentSync::Off,
                ..CommentSettings::default()
            },
            users: None,
            attachments: AttachmentSettings {
                sync: AttachmentSync::Off,
                ..AttachmentSettings::default()
            },
            link_lock: Mutex::new(()),
            jira_fingerprint: String::new(),
            external_fingerprint: String::new(),
        }
    }

    /// The same runtime, knowing each side's configuration fingerprint (see
    /// [`Store::create_unreadable`]).
    pub fn with_fingerprints(mut self, jira: String, external: String) -> Self {
        self.jira_fingerprint = jira;
        self.external_fingerprint = external;
        self
    }

    /// The same runtime, running `script`'s hooks.
    pub fn with_script(mut self, script: Option<Script>) -> Self {
        self.script = script;
        self
    }

    /// The same runtime, applying the mapping entries' compiled `expr`s (by mapping key).
    pub fn with_exprs(mut self, exprs: BTreeMap<String, FieldExpr>) -> Self {
        self.exprs = exprs;
        self
    }

    /// The same runtime, syncing comments under `settings`.
    pub fn with_comments(mut self, settings: CommentSettings) -> Self {
        self.comments = settings;
        self
    }

    /// The same runtime, matching people through `users`.
    pub fn with_users(mut self, users: Option<Arc<crate::users::UserResolver>>) -> Self {
        self.users = users;
        self
    }

    /// The same runtime, syncing attachments under `settings`.
    pub fn with_attachments(mut self, settings: AttachmentSettings) -> Self {
        self.attachments = settings;
        self
    }

    pub fn fingerprint(&self, side: Side) -> &str {
        match side {
            Side::Jira => &self.jira_fingerprint,
            Side::External => &self.external_fingerprint,
        }
    }

    pub fn side(&self, side: Side) -> &Arc<dyn Connector> {
        match side {
            Side::Jira => &self.jira,
            Side::External => &self.external,
        }
    }

    /// What the planner is given for an update from `source` carrying `source_values` as of
    /// `source_ts`: the twin as read (`None` when it was not read, as when an event is first
    /// judged against the shadow alone), the pair's synced state (`shadow`, `pending`), and
    /// this connection's mapping and conflict policy. The one place the worker, the poller
    /// and bulk sync build it, so that they judge a change alike.
    pub fn plan_input<'a>(
        &'a self,
        source: Side,
        source_ts: DateTime<Utc>,
        source_values: &'a Fields,
        twin: Option<&'a Item>,
        shadow: &'a Shadow,
        pending: &'a Shadow,
    ) -> PlanInput<'a> {
        PlanInput {
            source,
            source_ts,
            source_values,
            target_values: twin.map(|t| &t.fields),
            target_ts: twin.and_then(|t| t.updated),
            shadow,
            pending,
            mapping: &self.mapping,
            policy: self.policy,
        }
    }
}
