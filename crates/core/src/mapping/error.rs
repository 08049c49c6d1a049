//! A mapping's problems: each one at a file and line, because a person has to go and fix it.

use super::types::Location;
use std::fmt;

/// One problem in a mapping, at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    pub location: Location,
    pub message: String,
}

impl MappingError {
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        MappingError {
            location,
            message: message.into(),
        }
    }
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for MappingError {}

/// All problems found in a mapping; printed one `file:line: message` per line.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct MappingErrors {
    pub errors: Vec<MappingError>,
}

impl fmt::Display for MappingErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<MappingError> for MappingErrors {
    fn from(e: MappingError) -> Self {
        MappingErrors { errors: vec![e] }
    }
}

impl From<Vec<MappingError>> for MappingErrors {
    fn from(errors: Vec<MappingError>) -> Self {
        MappingErrors { errors }
    }
}

impl MappingErrors {
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &MappingError> {
        self.errors.iter()
    }
}
