//! `[storage]`: the store's URL, made absolute for SQLite, and shown without its password.

use crate::secret::redact_url;
use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// `[storage]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite://FILE` (default `sqlite://tandem.db`; a relative file is relative to the config
    /// file's folder, and after loading this holds the absolute form) or
    /// `postgres://user:password@host:port/db` to share one database between several
    /// `tandem serve` instances. Any `sqlx` connection options may follow as `?query`.
    #[serde(default = "default_storage_url")]
    pub url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: default_storage_url(),
        }
    }
}

fn default_storage_url() -> String {
    "sqlite://tandem.db".to_string()
}

impl StorageConfig {
    /// True for a PostgreSQL URL.
    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")
    }

    /// The URL with any password replaced by `***`, for logs and summaries.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// What serde cannot check in `[storage]`; a relative SQLite file is made absolute
    /// against `dir`, the config's folder, on the way.
    pub(super) fn check(&mut self, dir: &Path, issue: &mut impl FnMut(&str, String)) {
        match resolve_storage_url(&self.url, dir) {
            Ok(url) => self.url = url,
            Err(msg) => issue("storage.url", msg),
        }
    }
}

// A PostgreSQL URL may carry a password; Debug must not show it.
impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("url", &self.redacted_url())
            .finish()
    }
}

/// Makes a relative SQLite path absolute against the config folder, so the database does not
/// move with the working directory.
pub(super) fn resolve_storage_url(url: &str, dir: &Path) -> Result<String, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url.to_string());
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Err(format!(
            "`{}`: expected sqlite://FILE or postgres://...",
            redact_url(url)
        ));
    };
    if rest.starts_with(":memory:") {
        return Ok(url.to_string());
    }
    let (file, query) = match rest.find('?') {
        Some(q) => (&rest[..q], &rest[q..]),
        None => (rest, ""),
    };
    if file.is_empty() {
        return Err("sqlite URL names no file".into());
    }
    let file = Path::new(file);
    let abs = if file.is_absolute() {
        file.to_path_buf()
    } else {
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|cwd| cwd.join(dir))
                .unwrap_or_else(|_| dir.to_path_buf())
        };
        dir.join(file)
    };
    Ok(format!("sqlite://{}{query}", abs.display()))
}
