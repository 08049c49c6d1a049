//! Which way a kind of synced object travels (`comments = …`, `attachments = …`) and what a
//! deletion on one side does to its twin: the same two settings, read the same way, for
//! every kind of object that has twins of its own.

use crate::ids::Side;
use serde::{Deserialize, Serialize};

/// `both` | `to_jira` | `to_external` | `none`: which way objects of one kind travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Travel {
    #[default]
    Both,
    /// Objects made outside get a twin in Jira; Jira's stay in Jira.
    ToJira,
    /// Jira's objects get a twin outside.
    ToExternal,
    #[serde(rename = "none")]
    Off,
}

impl Travel {
    /// Whether an object made on `from` is copied to the other side.
    pub fn sends_from(self, from: Side) -> bool {
        matches!(
            (self, from),
            (Travel::Both, _) | (Travel::ToJira, Side::External) | (Travel::ToExternal, Side::Jira)
        )
    }

    /// Whether Tandem writes objects of this kind to `to` at all.
    pub fn writes_to(self, to: Side) -> bool {
        self.sends_from(to.other())
    }
}

/// `delete` | `keep`: what a deletion on one side does to the twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deletes {
    /// The twin is deleted too.
    #[default]
    Delete,
    /// The twin stays; the link remembers the deletion (audit row), and the twin is never
    /// made again.
    Keep,
}
