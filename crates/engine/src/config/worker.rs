//! `[worker]`: how many events run at once, how they are retried and how long a claim lasts.

use serde::Deserialize;
use std::time::Duration;

/// `[worker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Events processed at the same time (different links run in parallel; events of one link
    /// always run in order). Default 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts before an event becomes a dead letter. Default 10.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles each attempt, with jitter. Default 500.
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    /// Longest retry delay in milliseconds. Default 300000 (5 minutes).
    #[serde(default = "default_backoff_cap_ms")]
    pub backoff_cap_ms: u64,
    /// How long a claimed event stays reserved for one worker; if that worker dies the event
    /// is picked up again after this. Default 60.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// How long one call to Jira or the external system may take, in milliseconds, before
    /// it counts as failed (transient: the event is retried). Default: 30000, or half the
    /// lease when that is shorter (see [`WorkerConfig::request_timeout`]).
    #[serde(default)]
    pub request_timeout_ms: Option<u64>,
}

impl WorkerConfig {
    /// The per-call timeout: `request_timeout_ms` when set, else 30 s or half the lease,
    /// whichever is shorter (a call still running when the lease ends lets another worker
    /// take the event).
    pub fn request_timeout(&self) -> Duration {
        match self.request_timeout_ms {
            Some(ms) => Duration::from_millis(ms.max(1)),
            None => Duration::from_millis(30_000.min(self.lease_seconds.max(1) * 500)),
        }
    }

    /// What serde cannot check in `[worker]`.
    pub(super) fn check(&self, issue: &mut impl FnMut(&str, String)) {
        if self.concurrency == 0 {
            issue("worker.concurrency", "must be at least 1".into());
        }
        if self.max_attempts == 0 {
            issue("worker.max_attempts", "must be at least 1".into());
        }
        if self.lease_seconds == 0 {
            issue("worker.lease_seconds", "must be at least 1".into());
        }
        if self.request_timeout_ms == Some(0) {
            issue("worker.request_timeout_ms", "must be at least 1".into());
        } else if let Some(ms) = self.request_timeout_ms
            && self.lease_seconds > 0
            && ms >= self.lease_seconds.saturating_mul(1000)
        {
            // A call still running when the lease ends lets another worker take the event.
            issue(
                "worker.request_timeout_ms",
                format!(
                    "{ms} ms is not shorter than the lease (lease_seconds = {})",
                    self.lease_seconds
                ),
            );
        }
        if self.backoff_base_ms > self.backoff_cap_ms {
            issue(
                "worker.backoff_base_ms",
                format!(
                    "{} is larger than backoff_cap_ms ({})",
                    self.backoff_base_ms, self.backoff_cap_ms
                ),
            );
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: default_concurrency(),
            max_attempts: default_max_attempts(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_cap_ms: default_backoff_cap_ms(),
            lease_seconds: default_lease_seconds(),
            request_timeout_ms: None,
        }
    }
}

fn default_concurrency() -> usize {
    8
}
fn default_max_attempts() -> u32 {
    10
}
fn default_backoff_base_ms() -> u64 {
    500
}
fn default_backoff_cap_ms() -> u64 {
    300_000
}
fn default_lease_seconds() -> u64 {
    60
}
