//! `[server]`: the HTTP listener and the limits that keep slow or greedy clients from
//! holding it.

use super::duration::de_duration;
use crate::secret::Secret;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Bearer token required on `/api/v1/...`. When absent the admin API refuses every
    /// request (the webhook, health and metrics routes still work).
    #[serde(default)]
    pub admin_token: Option<Secret>,
    /// People who may sign in to the console with a token of their own (besides
    /// `admin_token`); their actions are recorded under their names.
    #[serde(default)]
    pub console_users: Vec<ConsoleUser>,
    /// Largest accepted request body in bytes; bigger webhook deliveries get `413`.
    /// Default 1 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long a client has to send a request's whole header, counted from when the
    /// connection opens or its previous answer was sent; so it also closes idle keep-alive
    /// connections. Default 10 s.
    #[serde(
        default = "default_header_read_timeout",
        deserialize_with = "de_duration"
    )]
    pub header_read_timeout: Duration,
    /// How long a client has to send a request's whole body once its header has arrived;
    /// a late body gets `408`. Default 30 s.
    #[serde(
        default = "default_body_read_timeout",
        deserialize_with = "de_duration"
    )]
    pub body_read_timeout: Duration,
    /// How long an answer may wait for a client that does not read it (one that pipelines
    /// requests and never reads the answers, say) before the connection is closed. Default 30 s.
    #[serde(default = "default_write_timeout", deserialize_with = "de_duration")]
    pub write_timeout: Duration,
    /// Connections served at once; one more is answered `503` with `Retry-After` and closed.
    /// Default 512, well under the usual open-file limit of 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            admin_token: None,
            console_users: Vec::new(),
            max_body_bytes: default_max_body_bytes(),
            header_read_timeout: default_header_read_timeout(),
            body_read_timeout: default_body_read_timeout(),
            write_timeout: default_write_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

impl ServerConfig {
    /// What serde cannot check in `[server]`.
    pub(super) fn check(&self, issue: &mut impl FnMut(&str, String)) {
        if self.max_body_bytes == 0 {
            issue("server.max_body_bytes", "must be at least 1".into());
        }
        for (key, timeout) in [
            ("server.header_read_timeout", self.header_read_timeout),
            ("server.body_read_timeout", self.body_read_timeout),
            ("server.write_timeout", self.write_timeout),
        ] {
            // "0" means "off" elsewhere; here off would let one slow client hold a connection
            // for ever, so it is refused rather than honoured.
            if timeout.is_zero() {
                issue(
                    key,
                    "must be longer than 0: without it a client that stops sending holds its connection for ever".into(),
                );
            }
        }
        self.check_console_users(issue);
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections) {
            issue(
                "server.max_connections",
                format!(
                    "{} is out of range: expected 1 to {MAX_CONNECTIONS_LIMIT}",
                    self.max_connections
                ),
            );
        }
    }
}

impl ServerConfig {
    /// Names unique and plain (they appear in the audit trail and in the session cookie),
    /// tokens long enough not to be guessed and distinct (a token names one person).
    fn check_console_users(&self, issue: &mut impl FnMut(&str, String)) {
        let mut names = std::collections::HashSet::new();
        for (i, u) in self.console_users.iter().enumerate() {
            let key = |field: &str| format!("server.console_users[{i}].{field}");
            let plain = !u.name.is_empty()
                && u.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
                });
            if !plain {
                issue(
                    &key("name"),
                    format!(
                        "`{}` is not a valid user name: use lower-case letters, digits, `_`, `.` and `-`",
                        u.name
                    ),
                );
            } else if u.name == ADMIN_USER {
                issue(
                    &key("name"),
                    "`admin` is the name of whoever signs in with server.admin_token; choose another"
                        .into(),
                );
            } else if !names.insert(u.name.as_str()) {
                issue(
                    &key("name"),
                    format!("`{}` is named twice in server.console_users", u.name),
                );
            }
            if u.token.expose().chars().count() < MIN_USER_TOKEN_CHARS {
                issue(
                    &key("token"),
                    format!(
                        "too short: a console token needs at least {MIN_USER_TOKEN_CHARS} characters"
                    ),
                );
            } else if self
                .admin_token
                .as_ref()
                .is_some_and(|a| a.expose() == u.token.expose())
                || self.console_users[..i]
                    .iter()
                    .any(|o| o.token.expose() == u.token.expose())
            {
                issue(
                    &key("token"),
                    "is the same as another console token: each person needs a token of their own"
                        .into(),
                );
            }
        }
    }
}

/// One entry of `server.console_users`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    /// Shown in the console and recorded with the person's actions (`console:<name>`).
    pub name: String,
    /// What the person signs in with.
    pub token: Secret,
}

/// The console user who signed in with `server.admin_token`.
pub const ADMIN_USER: &str = "admin";

/// Shortest accepted `server.console_users[].token`.
pub const MIN_USER_TOKEN_CHARS: usize = 16;

/// Largest `server.max_connections`: the connection cap is a semaphore whose permits are
/// all taken back at shutdown in one `u32` request.
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_body_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_write_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_connections() -> usize {
    512
}
