//! Names of the two sides of a connection.
//!
//! Every connection joins a `jira` side and an `external` side; the names appear in webhook
//! routes (`/webhooks/{connection}/{side}`), in the store and in mapping columns
//! (`jiraField`, `externalField`), so they are spelled the same everywhere.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One side of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Jira,
    External,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Jira, Side::External];

    /// The side a change from `self` is written to.
    pub fn other(self) -> Side {
        match self {
            Side::Jira => Side::External,
            Side::External => Side::Jira,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Jira => "jira",
            Side::External => "external",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a side name that is neither `jira` nor `external`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown side `{0}`: expected `jira` or `external`")]
pub struct UnknownSide(pub String);

impl FromStr for Side {
    type Err = UnknownSide;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jira" => Ok(Side::Jira),
            "external" => Ok(Side::External),
            other => Err(UnknownSide(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_parse_print_and_flip() {
        for side in Side::BOTH {
            assert_eq!(side.as_str().parse::<Side>().unwrap(), side);
            assert_eq!(side.other().other(), side);
        }
        assert_eq!(
            "JIRA".parse::<Side>().unwrap_err().to_string(),
            "unknown side `JIRA`: expected `jira` or `external`"
        );
    }
}
