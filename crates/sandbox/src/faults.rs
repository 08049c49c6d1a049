//! Fault switches shared by both sandboxes.
//!
//! The engine's invariants (nothing lost, no duplicates, convergence) only mean something if
//! they hold while the remote systems misbehave. `Faults` is the one knob box that tests, the
//! demo and the benchmarks turn to make a sandbox slow, flaky, rate limited, or make its
//! webhooks go missing, arrive twice or out of order. It is cheap to clone: every clone
//! controls the same running sandbox.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

/// The current settings. Rates are shares in `0.0..=1.0` and are clamped on the way in.
#[derive(Debug, Clone, Default, PartialEq)]
struct Settings {
    latency: Duration,
    error_rate: f64,
    rate_limit_rate: f64,
    /// `Retry-After` of the injected 429s, in seconds; 0 stands for the default, 1.
    retry_after_secs: u64,
    drop_rate: f64,
    lost_response_rate: f64,
    slow_answer_rate: f64,
    slow_answer_delay: Duration,
    webhook_drop_rate: f64,
    webhook_duplicate_rate: f64,
    webhook_reorder: bool,
}

/// Shared fault switches; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<Settings>>,
}

/// What the API fault layer decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiFault {
    /// Handle the request normally.
    None,
    /// Answer 500 without touching state.
    ServerError,
    /// Answer 429 with `Retry-After` of this many seconds without touching state.
    RateLimited(u64),
    /// Close the connection before handling (the write never happened).
    Drop,
    /// Handle the request, then close the connection instead of answering (the write
    /// happened but the client cannot know: the case that makes retried creates dangerous).
    LoseResponse,
    /// Handle the request, then hold the answer back for the given time: a client with a
    /// shorter timeout gives up on a write that happened.
    SlowAnswer(Duration),
}

/// What the webhook fault layer decided for one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HookFault {
    pub drop: bool,
    pub duplicate: bool,
    pub reorder: bool,
}

fn clamp(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

fn roll(rate: f64) -> bool {
    rate > 0.0 && rand::rng().random_bool(rate)
}

impl Faults {
    /// A fresh set of switches with every fault off.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Settings) -> R) -> R {
        // A poisoned lock only means a panic elsewhere while holding it; the settings are
        // plain values, so carrying on with them is safe.
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Delay every API request by this long before it is handled.
    pub fn set_latency(&self, latency: Duration) {
        self.with(|s| s.latency = latency);
    }
    /// Share of API requests answered `500` (state untouched).
    pub fn set_error_rate(&self, rate: f64) {
        self.with(|s| s.error_rate = clamp(rate));
    }
    /// Share of API requests answered `429` with `Retry-After: 1` (state untouched; see
    /// [`Self::set_retry_after`] for a longer wait).
    pub fn set_rate_limit_rate(&self, rate: f64) {
        self.with(|s| s.rate_limit_rate = clamp(rate));
    }
    /// The `Retry-After` the injected 429s carry, in whole seconds (rounded up, at least 1):
    /// a server asking clients to stay away for a while, not only for the next second.
    pub fn set_retry_after(&self, after: Duration) {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.with(|s| s.retry_after_secs = secs.max(1));
    }
    /// Share of API connections closed without any response, before the request is handled.
    pub fn set_drop_rate(&self, rate: f64) {
        self.with(|s| s.drop_rate = clamp(rate));
    }
    /// Share of API requests that are handled (state changes!) but whose connection is then
    /// closed without a response: the client sees a network error after a successful write.
    pub fn set_lost_response_rate(&self, rate: f64) {
        self.with(|s| s.lost_response_rate = clamp(rate));
    }
    /// Share of API requests that are handled (state changes) but answered only after
    /// `delay`: with a client timeout shorter than that, a timed-out write that landed.
    pub fn set_slow_answers(&self, rate: f64, delay: Duration) {
        self.with(|s| {
            s.slow_answer_rate = clamp(rate);
            s.slow_answer_delay = delay;
        });
    }
    /// Share of webhook deliveries silently never sent.
    pub fn set_webhook_drop_rate(&self, rate: f64) {
        self.with(|s| s.webhook_drop_rate = clamp(rate));
    }
    /// Share of webhook deliveries sent twice (same delivery id both times).
    pub fn set_webhook_duplicate_rate(&self, rate: f64) {
        self.with(|s| s.webhook_duplicate_rate = clamp(rate));
    }
    /// When on, deliveries leave the per-issue order: each is sent after a random delay
    /// (0–300 ms) so later events regularly overtake earlier ones.
    pub fn set_webhook_reorder(&self, on: bool) {
        self.with(|s| s.webhook_reorder = on);
    }
    /// Turn every fault off.
    pub fn clear(&self) {
        self.with(|s| *s = Settings::default());
    }

    pub(crate) fn latency(&self) -> Duration {
        self.with(|s| s.latency)
    }

    pub(crate) fn decide_api(&self) -> ApiFault {
        let s = self.with(|s| s.clone());
        if roll(s.drop_rate) {
            ApiFault::Drop
        } else if roll(s.error_rate) {
            ApiFault::ServerError
        } else if roll(s.rate_limit_rate) {
            ApiFault::RateLimited(s.retry_after_secs.max(1))
        } else if roll(s.lost_response_rate) {
            ApiFault::LoseResponse
        } else if roll(s.slow_answer_rate) {
            ApiFault::SlowAnswer(s.slow_answer_delay)
        } else {
            ApiFault::None
        }
    }

    pub(crate) fn decide_hook(&self) -> HookFault {
        let s = self.with(|s| s.clone());
        HookFault {
            drop: roll(s.webhook_drop_rate),
            duplicate: roll(s.webhook_duplicate_rate),
            reorder: s.webhook_reorder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_clamped_and_clear_resets() {
        let f = Faults::new();
        f.set_error_rate(7.0);
        f.set_drop_rate(f64::NAN);
        assert_eq!(f.decide_api(), ApiFault::ServerError);
        f.clear();
        assert_eq!(f.decide_api(), ApiFault::None);
        f.set_rate_limit_rate(1.0);
        assert_eq!(f.decide_api(), ApiFault::RateLimited(1));
        f.set_retry_after(Duration::from_millis(4500));
        assert_eq!(f.decide_api(), ApiFault::RateLimited(5));
        f.clear();
        let clone = f.clone();
        clone.set_webhook_reorder(true);
        assert!(f.decide_hook().reorder);
    }
}
