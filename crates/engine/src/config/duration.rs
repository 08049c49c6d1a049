//! Durations in configuration: `"0"`, `"200ms"`, `"30s"`, `"5m"`, `"1h"`.

use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::time::Duration;

/// Parses `"0"`, `"Nms"`, `"Ns"`, `"Nm"` or `"Nh"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let invalid = || {
        format!(
            "invalid duration `{text}`: expected e.g. \"200ms\", \"30s\", \"5m\", \"1h\" or \"0\""
        )
    };
    // Milliseconds first: "ms" would otherwise read as minutes of "Nm" followed by junk.
    if let Some(digits) = t.strip_suffix("ms") {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        return digits
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("duration `{text}` is too large"));
    }
    // Split on the last *character*: slicing at a byte could land inside a multi-byte one.
    let mut chars = t.chars();
    let multiplier = match chars.next_back() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        _ => return Err(invalid()),
    };
    let digits = chars.as_str();
    // `u64::from_str` accepts a leading `+`; a duration should be digits only.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("duration `{text}` is too large"))?;
    n.checked_mul(multiplier)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration `{text}` is too large"))
}

pub(super) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(de::Error::custom)
}
