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
