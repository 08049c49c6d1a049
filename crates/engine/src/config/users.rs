//! `[connection.users]`: how people are matched between the two sides — the user map file,
//! automatic matching by e-mail, how long lookups are remembered, and what an unmatched user
//! does. The map is read and checked with the config, so `tandem check` and a reload refuse
//! a bad row (with its file and line) instead of the first event that needs it.

use super::config_dir;
use super::connection::normalize;
use super::duration::de_duration;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tandem_core::users::{Unmatched, UserMap};

/// A connection's user settings, as written in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersConfig {
    /// `map = "users.csv"`: `jiraUser,externalUser` rows, relative to the config file
    /// (absolute after loading).
    #[serde(default)]
    pub map: Option<PathBuf>,
    /// `match_by_email = true` (default): a user the map does not name is matched by e-mail
    /// through the Jira user search.
    #[serde(default = "yes")]
    pub match_by_email: bool,
    /// `cache_ttl = "1h"` (default): how long a lookup, found or not, is remembered.
    #[serde(default = "default_ttl", deserialize_with = "de_duration")]
    pub cache_ttl: Duration,
    /// `unmatched_user = "keep" | "default:<user>" | "fail"` (default `keep`).
    #[serde(default, deserialize_with = "de_unmatched")]
    pub unmatched_user: Unmatched,
    /// The map's rows, read when the config is checked.
    #[serde(skip)]
    pub user_map: UserMap,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            map: None,
            match_by_email: true,
            cache_ttl: default_ttl(),
            unmatched_user: Unmatched::Keep,
            user_map: UserMap::default(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_ttl() -> Duration {
    Duration::from_secs(3600)
}

fn de_unmatched<'de, D: Deserializer<'de>>(d: D) -> Result<Unmatched, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(de::Error::custom)
}

impl UsersConfig {
    /// Makes the map's path absolute (relative to the config file at `path`), reads and
    /// parses it; problems are reported at `at` (`connection[0].users`).
    pub(super) fn check(&mut self, at: &str, path: &Path, issue: &mut impl FnMut(&str, String)) {
        if let Some(p) = &mut self.map {
            if p.is_relative() {
                *p = normalize(&config_dir(path).join(&*p));
            }
            match std::fs::read_to_string(&*p) {
                Err(e) => issue(
                    &format!("{at}.map"),
                    format!("cannot read the user map `{}`: {e}", p.display()),
                ),
                Ok(text) => match UserMap::parse_csv(&text) {
                    Ok(map) => self.user_map = map,
                    // Each bad row leads with file:line, so the place to fix is named even
                    // though the issue sits at the `map =` line.
                    Err(errors) => {
                        for e in errors.0 {
                            issue(
                                &format!("{at}.map"),
                                format!("{}:{}: {}", p.display(), e.line, e.message),
                            );
                        }
                    }
                },
            }
        }
        if self.map.is_none() && !self.match_by_email {
            issue(
                &format!("{at}.match_by_email"),
                "with no `map` and match_by_email = false no user can ever match: give \
                 `map = \"users.csv\"` or drop the [connection.users] table"
                    .into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, load_str};
    use std::path::Path;
    use std::time::Duration;
    use tandem_core::users::Unmatched;

    fn config(users: &str) -> String {
        format!(
            r#"
[[connection]]
name = "seed"

[[connection.field]]
jira = "assignee"
external = "1005"
type = "user"

[connection.users]
{users}

[connection.jira]
base_url = "https://example.atlassian.net"
email = "me@example.com"
api_token = "t"
project = "TEST"

[connection.external]
type = "rest"
base_url = "https://ext.example.com"
"#
        )
    }

    fn load_in(dir: &Path, users: &str) -> Result<super::super::Config, ConfigError> {
        load_str(&config(users), &dir.join("tandem.toml"), |_| None)
    }

    #[test]
    fn the_map_is_read_next_to_the_config_with_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("users.csv"),
            "jiraUser,externalUser\nalice@example.com,ext-alice\n",
        )
        .unwrap();
        let cfg = load_in(dir.path(), "map = \"users.csv\"").unwrap();
        let users = cfg.connections[0].users.as_ref().expect("users table");
        assert_eq!(
            users.map.as_deref(),
            Some(dir.path().join("users.csv").as_path())
        );
        assert_eq!(
            users.user_map.jira_for("ext-alice"),
            Some("alice@example.com")
        );
        assert!(users.match_by_email);
        assert_eq!(users.cache_ttl, Duration::from_secs(3600));
        assert_eq!(users.unmatched_user, Unmatched::Keep);
    }

    #[test]
    fn keys_are_read_and_a_connection_without_the_table_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = load_in(
            dir.path(),
            "cache_ttl = \"5m\"\nunmatched_user = \"default:helpdesk@example.com\"",
        )
        .unwrap();
        let users = cfg.connections[0].users.as_ref().unwrap();
        assert_eq!(users.cache_ttl, Duration::from_secs(300));
        assert_eq!(
            users.unmatched_user,
            Unmatched::Default("helpdesk@example.com".into())
        );
        let cfg = load_str(
            &config("").replace("[connection.users]\n", ""),
            &dir.path().join("tandem.toml"),
            |_| None,
        )
        .unwrap();
        assert!(cfg.connections[0].users.is_none());
    }

    #[test]
    fn bad_rows_are_reported_at_the_map_line_with_the_files_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("users.csv"),
            "jiraUser,externalUser\na@x.io,ext-a\nb@x.io,ext-a\n",
        )
        .unwrap();
        let err = load_in(dir.path(), "map = \"users.csv\"").unwrap_err();
        assert_eq!(err.issues.len(), 1, "{err}");
        let issue = &err.issues[0];
        assert_eq!(issue.key, "connection[0].users.map");
        assert_eq!(issue.line, Some(11), "placed at the `map =` line");
        let at = format!("{}:3: ", dir.path().join("users.csv").display());
        assert!(issue.message.starts_with(&at), "{}", issue.message);
        assert!(
            issue.message.contains("already mapped on line 2"),
            "{}",
            issue.message
        );
    }

    #[test]
    fn a_missing_map_an_unknown_rule_and_an_unknown_key_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_in(dir.path(), "map = \"nope.csv\"").unwrap_err();
        assert!(
            err.to_string().contains("cannot read the user map"),
            "{err}"
        );
        assert!(err.to_string().contains("nope.csv"), "{err}");
        let err = load_in(dir.path(), "unmatched_user = \"clear\"").unwrap_err();
        assert!(
            err.to_string().contains("keep, default:<user> or fail"),
            "{err}"
        );
        let err = load_in(dir.path(), "match_by_mail = true").unwrap_err();
        assert!(err.to_string().contains("match_by_mail"), "{err}");
        let err = load_in(dir.path(), "cache_ttl = \"an hour\"").unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
        let err = load_in(dir.path(), "match_by_email = false").unwrap_err();
        assert!(err.to_string().contains("no user can ever match"), "{err}");
    }
}
