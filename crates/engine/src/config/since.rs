//! How `{since}` is written into a custom system's `list_changed` path (`since_format`):
//! parsed when the configuration loads, so a bad form is reported at its line, and rendered
//! by the REST connector on each listing.
//!
//! Trackers disagree on the form of "changed since": Redmine refuses anything but whole
//! seconds (`updated_on=>=2026-12-02T10:07:11Z`), others want Unix seconds, milliseconds or
//! a date pattern of their own. `since_format` names the form; `since_overlap` moves the
//! time back before it is written, for systems whose listing lags behind their clock.
//!
//! Every form that drops precision rounds *down*: a listing from an earlier instant only
//! re-lists items, which the poller dedupes (same `updated` → same idempotency key; values
//! equal to the link's shadow → not queued at all), while a later instant would skip them.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, SecondsFormat, Utc};
use std::time::Duration;

/// The form of `{since}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinceFormat {
    /// RFC 3339 in UTC with milliseconds: `2026-12-02T10:07:11.139Z` (the default).
    Rfc3339Millis,
    /// RFC 3339 in UTC in whole seconds: `2026-12-02T10:07:11Z`.
    Rfc3339,
    /// Seconds since 1970-01-01 UTC: `1796292431`.
    Unix,
    /// Milliseconds since 1970-01-01 UTC: `1796292431139`.
    UnixMillis,
    /// A strftime pattern applied to the UTC time, e.g. `%Y-%m-%d %H:%M:%S`.
    Pattern(String),
}

impl SinceFormat {
    /// `rfc3339_millis` (or nothing), `rfc3339`, `unix`, `unix_millis`, or a strftime pattern
    /// (anything containing `%`).
    pub fn parse(spec: Option<&str>) -> Result<SinceFormat, String> {
        let Some(spec) = spec else {
            return Ok(SinceFormat::Rfc3339Millis);
        };
        match spec {
            "rfc3339_millis" => Ok(SinceFormat::Rfc3339Millis),
            "rfc3339" => Ok(SinceFormat::Rfc3339),
            "unix" => Ok(SinceFormat::Unix),
            "unix_millis" => Ok(SinceFormat::UnixMillis),
            p if p.contains('%') => {
                // chrono reports a bad specifier only when formatting (as a fmt::Error that
                // would panic inside `to_string`), so the pattern is validated up front.
                if StrftimeItems::new(p).any(|i| matches!(i, Item::Error)) {
                    Err(format!("`{p}` is not a valid strftime pattern"))
                } else {
                    Ok(SinceFormat::Pattern(p.to_string()))
                }
            }
            other => Err(format!(
                "`{other}` is not a since_format: use \"rfc3339\", \"rfc3339_millis\", \"unix\", \
                 \"unix_millis\" or a strftime pattern such as \"%Y-%m-%dT%H:%M:%SZ\""
            )),
        }
    }

    /// `since`, moved back by `overlap`, in this form (UTC). The overlap never moves it before
    /// 1970: a bulk sync lists from the Unix epoch, and `-5` is no time a system accepts.
    pub fn render(&self, since: DateTime<Utc>, overlap: Duration) -> String {
        let floor = since.min(DateTime::UNIX_EPOCH);
        let since = chrono::Duration::from_std(overlap)
            .ok()
            .and_then(|o| since.checked_sub_signed(o))
            .map_or(floor, |t| t.max(floor));
        match self {
            SinceFormat::Rfc3339Millis => since.to_rfc3339_opts(SecondsFormat::Millis, true),
            // `Secs` truncates the fraction: 10:07:11.999 is written 10:07:11, never 10:07:12.
            SinceFormat::Rfc3339 => since.to_rfc3339_opts(SecondsFormat::Secs, true),
            // `timestamp()` floors, also before 1970.
            SinceFormat::Unix => since.timestamp().to_string(),
            SinceFormat::UnixMillis => since.timestamp_millis().to_string(),
            SinceFormat::Pattern(p) => since.format(p).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 10, 7, 11).unwrap() + chrono::Duration::milliseconds(999)
    }

    #[test]
    fn each_form_rounds_down() {
        let none = Duration::ZERO;
        let render = |spec: Option<&str>| SinceFormat::parse(spec).unwrap().render(at(), none);
        assert_eq!(render(None), "2026-12-02T10:07:11.999Z");
        assert_eq!(render(Some("rfc3339")), "2026-12-02T10:07:11Z");
        assert_eq!(render(Some("unix")), "1796206031");
        assert_eq!(render(Some("unix_millis")), "1796206031999");
        assert_eq!(render(Some("%Y-%m-%d %H:%M:%S")), "2026-12-02 10:07:11");
        let back = SinceFormat::Rfc3339.render(at(), Duration::from_secs(5));
        assert_eq!(back, "2026-12-02T10:07:06Z");
    }

    #[test]
    fn unknown_forms_and_bad_patterns_are_refused() {
        assert!(
            SinceFormat::parse(Some("iso"))
                .unwrap_err()
                .contains("`iso`")
        );
        assert!(SinceFormat::parse(Some("%Y-%Q")).is_err());
        // A huge overlap cannot panic, and stops at the Unix epoch.
        let far = SinceFormat::Unix.render(at(), Duration::from_secs(u64::MAX));
        assert_eq!(far, "0");
        let epoch = SinceFormat::Rfc3339.render(DateTime::UNIX_EPOCH, Duration::from_secs(5));
        assert_eq!(epoch, "1970-01-01T00:00:00Z");
    }
}
