//! Links between twin items and their shadows.
//!
//! A link pairs an item on the Jira side with its twin on the external side. Its *shadow*
//! remembers, per mapping entry, the value last synced and the source time of the edit that
//! set it. Comparing an incoming value with the shadow is how Tandem tells a real edit from
//! the echo of its own write, and how it refuses to let an old, re-delivered state overwrite
//! a newer one.

use crate::ids::Side;
use crate::value::FieldValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The last synced state of one mapped field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowEntry {
    /// The canonical value both sides held after the last sync.
    pub value: FieldValue,
    /// Source time of the edit that produced `value`.
    pub source_ts: DateTime<Utc>,
    /// The side whose edit produced `value`.
    pub source: Side,
    /// The value as written to the other side (`source.other()`), in that side's terms, when
    /// a connection's script made it differ from what the mapping produced (`to_jira`
    /// appending a suffix). Its echo then holds this value, not `value`'s, and
    /// [`crate::plan::restore_written`] takes it back to `value` before planning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<FieldValue>,
}

/// Last synced values, keyed by mapping key (see `mapping::FieldMapping::key`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Shadow(pub BTreeMap<String, ShadowEntry>);

impl Shadow {
    pub fn get(&self, mapping_key: &str) -> Option<&ShadowEntry> {
        self.0.get(mapping_key)
    }
    pub fn set(&mut self, mapping_key: impl Into<String>, entry: ShadowEntry) {
        self.0.insert(mapping_key.into(), entry);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A pair of twin items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub connection: String,
    /// Jira's numeric issue id (stable across moves).
    pub jira_id: String,
    /// Jira's issue key at the time of linking, for people to read.
    pub jira_key: Option<String>,
    pub external_id: String,
    pub shadow: Shadow,
    /// Writes Tandem has started but not seen answered, keyed by mapping key: each entry is
    /// the canonical value being written to the other side of `source`, with the edit's time
    /// and side. Stored before the write, so that a retry whose write went through although
    /// its answer was lost recognises the value on the twin as its own (see
    /// `plan::PlanInput::pending`). Cleared once a later plan has read the twin.
    #[serde(default, skip_serializing_if = "Shadow::is_empty")]
    pub pending: Shadow,
    /// Incremented on every shadow update; lets a store detect a concurrent writer.
    pub version: i64,
}

impl Link {
    pub fn id_on(&self, side: Side) -> &str {
        match side {
            Side::Jira => &self.jira_id,
            Side::External => &self.external_id,
        }
    }
}
