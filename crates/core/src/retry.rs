//! The retry schedule: which failures to retry, and when.
//!
//! Exponential backoff with *full jitter* (a uniform delay between zero and the exponential
//! bound) spreads retries of many events that failed together, so a recovering system is not
//! hit by a synchronised wave. A server's own hint (`Retry-After`, Jira's `X-RateLimit-Reset`)
//! is a floor: retrying earlier would only earn another 429. Randomness is supplied by the
//! caller so the schedule itself stays a pure, testable function.

use chrono::{DateTime, NaiveDateTime, Utc};
use std::time::Duration;

/// The longest server hint honoured; a bogus `Retry-After: 99999999` must not park an event
/// for years.
pub const MAX_SERVER_HINT: Duration = Duration::from_secs(60 * 60);

/// How often and how far apart to retry a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Bound of the first retry's delay.
    pub base: Duration,
    /// Largest bound, reached after a few doublings.
    pub cap: Duration,
    /// Attempts in total (the first try included) before the event is dead-lettered.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(5 * 60),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The exponential bound after `attempt` attempts: `min(cap, base * 2^(attempt-1))`.
    pub fn bound(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(63);
        // Even in u128 nanoseconds a large base times 2^63 overflows; an overflow is simply
        // "more than the cap".
        let base = self.base.as_nanos();
        let scaled = base.saturating_mul(1u128 << exp);
        let capped = scaled.min(self.cap.as_nanos());
        duration_from_nanos(capped)
    }

    /// The delay before the next attempt, after `attempt` attempts (1-based) have failed;
    /// `None` once `max_attempts` are used up. `jitter` is uniform in `[0, 1)` (values outside
    /// are clamped), `server_hint` a `Retry-After` the server sent.
    pub fn next_delay(
        &self,
        attempt: u32,
        jitter: f64,
        server_hint: Option<Duration>,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // Fixed-point in u128 nanoseconds: `Duration::mul_f64` panics when f64 rounding pushes
        // a huge bound past `Duration::MAX`. 32 fractional bits are plenty for a delay.
        let fraction = (jitter * 4_294_967_296.0) as u128; // ≤ 2^32
        let nanos = self.bound(attempt).as_nanos().saturating_mul(fraction) >> 32;
        let delay = duration_from_nanos(nanos);
        let floor = server_hint.map_or(Duration::ZERO, |h| h.min(MAX_SERVER_HINT));
        Some(delay.max(floor))
    }

    /// [`Self::next_delay`] as an instant after `now`.
    pub fn next_attempt_at(
        &self,
        now: DateTime<Utc>,
        attempt: u32,
        jitter: f64,
        server_hint: Option<Duration>,
    ) -> Option<DateTime<Utc>> {
        let delay = self.next_delay(attempt, jitter, server_hint)?;
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        Some(
            now.checked_add_signed(delay)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }
}

fn duration_from_nanos(n: u128) -> Duration {
    let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is < 1e9 and so fits a u32.
    let nanos = u32::try_from(n % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// Reads a `Retry-After` header: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, also the obsolete RFC 850 and asctime forms). ISO 8601
/// instants are accepted too. A date in the past gives zero.
pub fn parse_retry_after(header: &str, now: DateTime<Utc>) -> Option<Duration> {
    let h = header.trim();
    if !h.is_empty() && h.bytes().all(|b| b.is_ascii_digit()) {
        // Overlong digit strings are absurd but not malformed: saturate.
        return Some(Duration::from_secs(h.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = parse_http_date(h).or_else(|| parse_iso_instant(h))?;
    Some(until(at, now))
}

/// Reads Jira's `X-RateLimit-Reset` (ISO 8601 such as `2025-01-31T14:39Z`, or RFC 3339) as the
/// time left until then.
pub fn parse_rate_limit_reset(header: &str, now: DateTime<Utc>) -> Option<Duration> {
    parse_iso_instant(header.trim()).map(|at| until(at, now))
}

fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

fn parse_http_date(h: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc2822(h) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(h, fmt) {
            return Some(dt.and_utc());
        }
    }
    None
}

fn parse_iso_instant(h: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(h) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(h, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    // `Z` is not an offset `%z` reads; handle the common `...THH:MMZ` form directly.
    let naive = h.strip_suffix('Z').or_else(|| h.strip_suffix('z'))?;
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(naive, fmt).ok())
        .map(|dt| dt.and_utc())
}

/// Whether a failure may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// Retry with backoff.
    Transient,
    /// Dead-letter now: retrying the same request gives the same answer.
    Permanent,
}

impl FailureClass {
    pub fn is_transient(self) -> bool {
        self == FailureClass::Transient
    }
}

/// Classifies an HTTP status of a *failed* call. Transient: 408, 409 (Jira's conflicting
/// concurrent update), 425, 429 and every 5xx. Everything else (400, 401, 403, 404, 422, ...)
/// is permanent: a credential or a request that is wrong stays wrong.
pub fn classify_status(status: u16) -> FailureClass {
    match status {
        408 | 409 | 425 | 429 | 500..=599 => FailureClass::Transient,
        _ => FailureClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn full_jitter_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.next_delay(1, 0.5, None), Some(ms(250)));
        assert_eq!(p.next_delay(2, 0.5, None), Some(ms(500)));
        assert_eq!(p.next_delay(3, 0.75, None), Some(ms(1500)));
        let almost = p.next_delay(3, 0.999, None).unwrap();
        assert!(almost > ms(1997) && almost < ms(2000), "{almost:?}");
        assert_eq!(p.next_delay(1, 0.0, None), Some(Duration::ZERO));
        // 500ms * 2^9 = 256s is the last bound under the 300s cap; with 10 attempts in all,
        // the 9th failure is the last that gets a delay.
        assert_eq!(p.bound(9), Duration::from_secs(128));
        assert_eq!(p.bound(10), Duration::from_secs(256));
        assert_eq!(p.bound(11), Duration::from_secs(300));
        assert_eq!(p.next_delay(9, 1.0, None), Some(Duration::from_secs(128)));
        assert_eq!(p.next_delay(10, 0.5, None), None);
        assert_eq!(p.next_delay(u32::MAX, 0.5, None), None);
    }

    #[test]
    fn overflow_safe_and_odd_jitter() {
        let p = RetryPolicy {
            base: Duration::MAX,
            cap: Duration::MAX,
            max_attempts: u32::MAX,
        };
        assert_eq!(p.bound(u32::MAX - 1), Duration::MAX);
        assert!(p.next_delay(200, 0.5, None).is_some());
        let q = RetryPolicy::default();
        assert_eq!(q.next_delay(2, f64::NAN, None), Some(Duration::ZERO));
        assert_eq!(q.next_delay(2, -3.0, None), Some(Duration::ZERO));
        assert_eq!(q.next_delay(2, 7.0, None), Some(ms(1000)));
        assert_eq!(q.bound(0), ms(500));
        let now = Utc::now();
        assert!(p.next_attempt_at(now, 100, 1.0, None).is_some());
    }

    #[test]
    fn server_hint_is_a_capped_floor() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.next_delay(1, 0.5, Some(Duration::from_secs(30))),
            Some(Duration::from_secs(30))
        );
        assert_eq!(p.next_delay(3, 0.5, Some(ms(10))), Some(ms(1000)));
        assert_eq!(
            p.next_delay(1, 0.5, Some(Duration::from_secs(1_000_000))),
            Some(MAX_SERVER_HINT)
        );
        // Exhausted is exhausted, whatever the server says.
        assert_eq!(p.next_delay(10, 0.5, Some(ms(1))), None);
        let now = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            p.next_attempt_at(now, 1, 0.0, Some(Duration::from_secs(60))),
            Some(now + chrono::Duration::seconds(60))
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:00 2015", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Tue, 20 Oct 2015 07:28:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_rate_limit_reset("2015-10-21T07:29Z", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_rate_limit_reset("2015-10-21T07:27:30.500Z", now),
            Some(ms(30_500))
        );
        assert_eq!(
            parse_retry_after("2015-10-21T07:29+00:00", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_rate_limit_reset("garbage", now), None);
    }

    #[test]
    fn status_classes() {
        for s in [408, 409, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify_status(s), FailureClass::Transient, "{s}");
        }
        for s in [400, 401, 403, 404, 405, 410, 413, 415, 422, 600, 0] {
            assert_eq!(classify_status(s), FailureClass::Permanent, "{s}");
        }
        assert!(classify_status(503).is_transient());
    }
}
