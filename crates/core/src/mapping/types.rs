//! What a mapping is: its entries, their direction and conflict policy, and where each was
//! written.

use crate::ids::Side;
use crate::kind::{FieldType, keyword_enum};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Where a mapping entry was written: a file and a 1-based line (0 = the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
}

impl Location {
    pub fn new(file: impl Into<String>, line: usize) -> Self {
        Location {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

/// Which way values flow for one mapping entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    /// External → Jira only.
    ToJira,
    /// Jira → external only.
    ToExternal,
}

impl Direction {
    pub const ALL: [Direction; 3] = [Direction::Both, Direction::ToJira, Direction::ToExternal];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Both => "both",
            Direction::ToJira => "to_jira",
            Direction::ToExternal => "to_external",
        }
    }

    /// True when values flow *into* side `to`.
    pub fn writes_to(self, to: Side) -> bool {
        match self {
            Direction::Both => true,
            Direction::ToJira => to == Side::Jira,
            Direction::ToExternal => to == Side::External,
        }
    }
}

/// Who wins when both sides changed a field since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The edit with the later source time wins.
    #[default]
    LaterWins,
    JiraWins,
    ExternalWins,
}

impl ConflictPolicy {
    pub const ALL: [ConflictPolicy; 3] = [
        ConflictPolicy::LaterWins,
        ConflictPolicy::JiraWins,
        ConflictPolicy::ExternalWins,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::LaterWins => "later_wins",
            ConflictPolicy::JiraWins => "jira_wins",
            ConflictPolicy::ExternalWins => "external_wins",
        }
    }
}

keyword_enum!(Direction, "direction");
keyword_enum!(ConflictPolicy, "conflict policy");

/// One mapped pair of fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldMapping {
    /// Jira field id (`summary`, `customfield_10050`) or display name, resolved by the app.
    pub jira_field: String,
    /// The external system's field id.
    pub external_field: String,
    pub direction: Direction,
    pub field_type: FieldType,
    /// `(jira value, external value)` pairs, in file order.
    pub value_map: Vec<(String, String)>,
    /// Used (in Jira terms) when a value is empty or has no value-map entry.
    pub default: Option<String>,
    /// Overrides the connection's conflict policy for this field.
    pub conflict: Option<ConflictPolicy>,
    /// For Jira's status: the fields a transition's screen asks for, by the status the
    /// transition leads to (`"Done" → {"resolution": {"name": "Done"}}`), sent as the
    /// transition request's `fields`, in Jira's JSON.
    #[serde(default)]
    pub transition_fields: BTreeMap<String, serde_json::Value>,
    /// A one-line script expression applied to each value written to the target side
    /// (`value.to_upper()`); kept as text here and compiled by the engine.
    #[serde(default)]
    pub expr: Option<String>,
    pub location: Location,
}

impl FieldMapping {
    /// A plain text mapping in both directions; handy in code and tests.
    pub fn new(jira_field: impl Into<String>, external_field: impl Into<String>) -> Self {
        FieldMapping {
            jira_field: jira_field.into(),
            external_field: external_field.into(),
            direction: Direction::Both,
            field_type: FieldType::Text,
            value_map: Vec::new(),
            default: None,
            conflict: None,
            transition_fields: BTreeMap::new(),
            expr: None,
            location: Location::default(),
        }
    }

    /// The shadow key of this entry.
    pub fn key(&self) -> String {
        format!("{}|{}", self.jira_field, self.external_field)
    }

    /// True when a change on side `from` propagates to the other side.
    pub fn flows(&self, from: Side) -> bool {
        self.direction.writes_to(from.other())
    }

    /// This entry's field id on `side`.
    pub fn field_on(&self, side: Side) -> &str {
        match side {
            Side::Jira => &self.jira_field,
            Side::External => &self.external_field,
        }
    }

    /// The external value a Jira value maps to, if the value map names it.
    pub fn external_value_for(&self, jira_value: &str) -> Option<&str> {
        self.value_map
            .iter()
            .find(|(j, _)| j == jira_value)
            .map(|(_, e)| e.as_str())
    }

    /// The Jira value an external value maps to, if the value map names it.
    pub fn jira_value_for(&self, external_value: &str) -> Option<&str> {
        self.value_map
            .iter()
            .find(|(_, e)| e == external_value)
            .map(|(j, _)| j.as_str())
    }
}

/// All entries of one connection's mapping, in file order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Mapping {
    pub fields: Vec<FieldMapping>,
}

impl Mapping {
    /// Entries whose field on `side` is `field_id`.
    pub fn by_field<'a>(
        &'a self,
        side: Side,
        field_id: &'a str,
    ) -> impl Iterator<Item = &'a FieldMapping> + 'a {
        self.fields
            .iter()
            .filter(move |m| m.field_on(side) == field_id)
    }

    /// The distinct field ids used on `side`, in file order.
    pub fn fields_on(&self, side: Side) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for m in &self.fields {
            let f = m.field_on(side);
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }

    /// The entry with shadow key `key`.
    pub fn by_key(&self, key: &str) -> Option<&FieldMapping> {
        self.fields.iter().find(|m| m.key() == key)
    }
}
