//! People across the two systems: the user map (`jiraUser,externalUser`), how a user is
//! written and compared (e-mails case-insensitively, ids exactly), what an unmatched user
//! does (`unmatched_user`), and the lookup cache with its time to live.
//!
//! Pure: the map is parsed from text the caller read, the cache is told the time. The engine's
//! `UserResolver` puts these together with the Jira user search.
//!
//! A user field's canonical value is the Jira side's: the account id on Cloud, the user name on
//! Data Center. A user read outside is brought into Jira terms before planning; one that has
//! no Jira match becomes an *unmatched marker* ([`unmatched_marker`]), which compares equal
//! only to itself (so an echo stays an echo) and is never written anywhere: the write step
//! applies the `unmatched_user` rule to it instead.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The header the user map's first row must carry (case and spaces aside).
pub const HEADER: [&str; 2] = ["jiraUser", "externalUser"];

/// Whether `s` reads as an e-mail address: one `@` with something on each side, no spaces.
/// Account ids, logins and user names never contain an `@`, so this tells the kinds apart.
pub fn is_email(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// The form a user is compared in: trimmed, and lower-cased when it is an e-mail (mail
/// systems treat the address case-insensitively; ids are case-sensitive and kept as they are).
pub fn normalize(s: &str) -> String {
    let s = s.trim();
    if is_email(s) {
        s.to_lowercase()
    } else {
        s.to_string()
    }
}

/// The 1-based line of the record starting at byte `at`. The CSV reader's own line count
/// places a record after blank lines at the first of them, so the lines are counted here.
fn line_at(text: &str, at: usize) -> usize {
    let bytes = text.as_bytes();
    let mut at = at.min(bytes.len());
    while at < bytes.len() && (bytes[at] == b'\n' || bytes[at] == b'\r') {
        at += 1;
    }
    1 + bytes[..at].iter().filter(|&&b| b == b'\n').count()
}

/// One row of the map: a Jira user (e-mail or account id / user name) and the other side's
/// user (id, login or e-mail), as written, with the file line they are on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPair {
    pub jira: String,
    pub external: String,
    pub line: usize,
}

/// A bad row of the user map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMapError {
    /// 1-based line in the file.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for UserMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Every problem found in a user map, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMapErrors(pub Vec<UserMapError>);

impl fmt::Display for UserMapErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

impl std::error::Error for UserMapErrors {}

/// The user map: pairs of people, looked up from either side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserMap {
    pairs: Vec<UserPair>,
    by_jira: HashMap<String, usize>,
    by_external: HashMap<String, usize>,
}

impl UserMap {
    /// Parses `jiraUser,externalUser` CSV. The header row is required; empty lines are
    /// skipped; every bad row is reported (with its line), not only the first. A user may
    /// appear once per column: a second row for the same person would make the lookup
    /// depend on row order.
    pub fn parse_csv(text: &str) -> Result<UserMap, UserMapErrors> {
        let mut errors = Vec::new();
        let text = text.trim_start_matches('\u{feff}');
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut map = UserMap::default();
        let mut saw_header = false;
        for record in reader.records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                    errors.push(UserMapError {
                        line,
                        message: format!("not valid CSV: {e}"),
                    });
                    continue;
                }
            };
            let line = record
                .position()
                .map(|p| line_at(text, p.byte() as usize))
                .unwrap_or(0);
            if record.iter().all(str::is_empty) {
                continue;
            }
            if !saw_header {
                saw_header = true;
                let names: Vec<&str> = record.iter().collect();
                let fits = names.len() == 2
                    && names
                        .iter()
                        .zip(HEADER)
                        .all(|(got, want)| got.eq_ignore_ascii_case(want));
                if !fits {
                    errors.push(UserMapError {
                        line,
                        message: format!(
                            "the first row must be the header `{}`, found `{}`",
                            HEADER.join(","),
                            names.join(",")
                        ),
                    });
                    // Without the header the file is probably not a user map at all; the
                    // rows below would only repeat the same mistake.
                    return Err(UserMapErrors(errors));
                }
                continue;
            }
            if record.len() != 2 {
                errors.push(UserMapError {
                    line,
                    message: format!(
                        "expected 2 columns (jiraUser,externalUser), found {}",
                        record.len()
                    ),
                });
                continue;
            }
            let (jira, external) = (record[0].to_string(), record[1].to_string());
            let mut bad = false;
            for (what, v) in [("jiraUser", &jira), ("externalUser", &external)] {
                if v.is_empty() {
                    errors.push(UserMapError {
                        line,
                        message: format!("{what} is empty"),
                    });
                    bad = true;
                }
            }
            if bad {
                continue;
            }
            let index = map.pairs.len();
            for (what, key, seen) in [
                ("jiraUser", normalize(&jira), &mut map.by_jira),
                ("externalUser", normalize(&external), &mut map.by_external),
            ] {
                if let Some(&first) = seen.get(&key) {
                    errors.push(UserMapError {
                        line,
                        message: format!(
                            "{what} `{key}` is already mapped on line {}",
                            map.pairs[first].line
                        ),
                    });
                    bad = true;
                }
            }
            if bad {
                continue;
            }
            map.by_jira.insert(normalize(&jira), index);
            map.by_external.insert(normalize(&external), index);
            map.pairs.push(UserPair {
                jira,
                external,
                line,
            });
        }
        if !saw_header {
            errors.push(UserMapError {
                line: 1,
                message: format!(
                    "the file is empty: it needs the header `{}`",
                    HEADER.join(",")
                ),
            });
        }
        if errors.is_empty() {
            Ok(map)
        } else {
            Err(UserMapErrors(errors))
        }
    }

    /// The pair whose Jira column names `jira` (an e-mail in any case, or the exact id).
    pub fn by_jira(&self, jira: &str) -> Option<&UserPair> {
        self.by_jira.get(&normalize(jira)).map(|&i| &self.pairs[i])
    }

    /// The pair whose external column names `external`.
    pub fn by_external(&self, external: &str) -> Option<&UserPair> {
        self.by_external
            .get(&normalize(external))
            .map(|&i| &self.pairs[i])
    }

    /// The other side's user for Jira user `jira`, as the map writes it.
    pub fn external_for(&self, jira: &str) -> Option<&str> {
        self.by_jira(jira).map(|p| p.external.as_str())
    }

    /// The Jira user (e-mail or id, as the map writes it) for the other side's `external`.
    pub fn jira_for(&self, external: &str) -> Option<&str> {
        self.by_external(external).map(|p| p.jira.as_str())
    }

    pub fn pairs(&self) -> &[UserPair] {
        &self.pairs
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// What happens to a user with no match on the other side (`unmatched_user`). Whatever it
/// is, the field is never cleared.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Unmatched {
    /// The field is not written (the event's other fields are).
    #[default]
    Keep,
    /// This user is written instead (`default:<user>`).
    Default(String),
    /// The event becomes a dead letter naming the user.
    Fail,
}

impl fmt::Display for Unmatched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unmatched::Keep => f.write_str("keep"),
            Unmatched::Default(u) => write!(f, "default:{u}"),
            Unmatched::Fail => f.write_str("fail"),
        }
    }
}

impl FromStr for Unmatched {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("keep") {
            return Ok(Unmatched::Keep);
        }
        if t.eq_ignore_ascii_case("fail") {
            return Ok(Unmatched::Fail);
        }
        if let Some((head, user)) = t.split_once(':')
            && head.trim().eq_ignore_ascii_case("default")
        {
            let user = user.trim();
            if user.is_empty() {
                return Err("`default:` needs a user after the colon, e.g. \
                            `default:helpdesk@example.com`"
                    .into());
            }
            return Ok(Unmatched::Default(user.to_string()));
        }
        Err(format!(
            "unknown unmatched_user `{t}`: expected keep, default:<user> or fail"
        ))
    }
}

/// Starts every unmatched marker; no account id, user name, login or e-mail starts so.
const MARKER: &str = "\u{2047}unmatched:";

/// The canonical stand-in for user `id` of the other side that has no Jira match.
pub fn unmatched_marker(id: &str) -> String {
    format!("{MARKER}{}", id.trim())
}

/// The user an unmatched marker stands for; `None` for any other value.
pub fn unmatched_of(value: &str) -> Option<&str> {
    value.strip_prefix(MARKER)
}

/// Lookups remembered for a while: found users and misses alike (a miss asked again every
/// event would cost a remote call per event for a person who simply is not there).
#[derive(Debug, Clone)]
pub struct TtlCache<V> {
    ttl: Duration,
    entries: HashMap<String, (Instant, V)>,
    hits: u64,
    misses: u64,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            entries: HashMap::new(),
            hits: 0,
            misses: 0,
        }
    }

    /// The value stored under `key` at most the TTL before `now`; counts a hit or a miss.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<V> {
        let fresh = self
            .entries
            .get(key)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, v)| v.clone());
        match fresh {
            Some(v) => {
                self.hits += 1;
                Some(v)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    pub fn put(&mut self, key: String, value: V, now: Instant) {
        // Expired entries go when the cache grows past what one sweep costs little for.
        if self.entries.len() >= 10_000 {
            let ttl = self.ttl;
            self.entries
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
        }
        self.entries.insert(key, (now, value));
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests;
