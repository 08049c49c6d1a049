//! What a failed load reports: one [`ConfigIssue`] per problem, each placed at
//! `file:line: key`, gathered into a [`ConfigError`].

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found in a configuration or mapping file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The file the problem is in (the config file, or a mapping file it points at).
    pub file: PathBuf,
    /// 1-based line, when the problem can be pinned to one.
    pub line: Option<usize>,
    /// Dotted key path (`connection[0].jira.email`), or the mapping column; empty when the
    /// problem concerns the whole file.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything wrong with a configuration, one issue per line when displayed.
///
/// Several issues are collected where the passes allow it (all missing environment variables,
/// all semantic problems, all mapping problems) so that a user fixes them in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl ConfigError {
    pub(super) fn one(
        file: &Path,
        line: Option<usize>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        ConfigError {
            issues: vec![ConfigIssue {
                file: file.to_path_buf(),
                line,
                key: key.into(),
                message: msg.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
