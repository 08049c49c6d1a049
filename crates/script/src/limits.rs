//! The resource limits every script call runs under, and how they are read from configuration.
//!
//! A script is user code running inside the sync worker: a loop that never ends, a recursion
//! without a base case or a string doubled in a loop must fail that one event, not stall or
//! exhaust the process. Each limit has a default that is generous for field rules (a typical
//! hook runs a few hundred operations) and small enough that a runaway script is stopped in
//! milliseconds. The engine's configuration embeds [`ScriptLimits`] as
//! `[connection.script_limits]`; every key is optional and unknown keys are refused.

use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// Limits applied to every call of a script hook or field expression.
///
/// Every limit is at least 1: there is no "unlimited" setting, since a script without limits
/// could stall a worker for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawLimits")]
pub struct ScriptLimits {
    /// Operations (expressions evaluated, loop iterations, function calls) per call.
    /// Default 100 000; a typical hook needs a few hundred.
    pub max_operations: u64,
    /// Depth of nested function calls, the hook itself included. Default 32, at most 64.
    pub max_call_levels: usize,
    /// Most bytes of string in one value: a string, or all the strings inside an array or
    /// map together (Rhai counts containers as a whole). Default 1 MiB, so that the `fields`
    /// of an issue with a long description (Jira allows 32 767 characters, up to ~96 KiB of
    /// UTF-8) can still be edited.
    pub max_string_size: usize,
    /// Most elements in one array, nested arrays' elements included. Default 10 000.
    pub max_array_size: usize,
    /// Most entries in one object map, nested maps' entries included. Default 10 000.
    pub max_map_size: usize,
    /// Deepest nesting of expressions and statements, checked when the script is compiled.
    /// Default 64, at most 64.
    pub max_expr_depth: usize,
    /// Longest time one call may run. Default 50 ms, at most 1 s.
    pub wall_time: Duration,
}

impl ScriptLimits {
    /// The defaults, as a constant.
    pub const DEFAULT: ScriptLimits = ScriptLimits {
        max_operations: 100_000,
        max_call_levels: 32,
        max_string_size: 1024 * 1024,
        max_array_size: 10_000,
        max_map_size: 10_000,
        max_expr_depth: 64,
        wall_time: Duration::from_millis(50),
    };
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One of the limits, to say which one a script exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    Operations,
    CallLevels,
    StringSize,
    ArraySize,
    MapSize,
    ExprDepth,
    WallTime,
}

impl Limit {
    /// The configuration key of this limit.
    pub fn key(self) -> &'static str {
        match self {
            Limit::Operations => "max_operations",
            Limit::CallLevels => "max_call_levels",
            Limit::StringSize => "max_string_size",
            Limit::ArraySize => "max_array_size",
            Limit::MapSize => "max_map_size",
            Limit::ExprDepth => "max_expr_depth",
            Limit::WallTime => "wall_time",
        }
    }

    /// The value of this limit in `limits`, written as in the configuration.
    pub fn value_in(self, limits: &ScriptLimits) -> String {
        match self {
            Limit::Operations => limits.max_operations.to_string(),
            Limit::CallLevels => limits.max_call_levels.to_string(),
            Limit::StringSize => format!("{} bytes", limits.max_string_size),
            Limit::ArraySize => format!("{} elements", limits.max_array_size),
            Limit::MapSize => format!("{} entries", limits.max_map_size),
            Limit::ExprDepth => limits.max_expr_depth.to_string(),
            Limit::WallTime => format_duration(limits.wall_time),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// `"50ms"` for whole milliseconds, otherwise microseconds (`"1500us"`).
pub(crate) fn format_duration(d: Duration) -> String {
    if d.as_micros().is_multiple_of(1000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

/// The configuration's spelling of the limits; every key optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_operations: Option<u64>,
    max_call_levels: Option<u64>,
    max_string_size: Option<u64>,
    max_array_size: Option<u64>,
    max_map_size: Option<u64>,
    max_expr_depth: Option<u64>,
    wall_time: Option<String>,
}

impl TryFrom<RawLimits> for ScriptLimits {
    type Error = String;

    fn try_from(raw: RawLimits) -> Result<Self, String> {
        let d = ScriptLimits::DEFAULT;
        // Upper bounds keep a typo (an extra 0 or three) from turning a limit into none. Call
        // levels times expression depth is what the interpreter's recursion needs of the
        // thread's stack: 64 x 64 was measured to fit a 2 MiB thread even in a debug build.
        // Wall time also bounds how deeply a script can nest containers in a call (each
        // level copies the ones inside), which Rhai's size checks and drops walk
        // recursively: 1 s keeps that well within an 8 MiB stack.
        let count = |key: &str, v: Option<u64>, default: usize, max: u64| match v {
            None => Ok(default),
            Some(0) => Err(format!("{key} must be at least 1")),
            Some(n) if n > max => Err(format!("{key} must be at most {max}, got {n}")),
            Some(n) => Ok(n as usize),
        };
        let max_operations = match raw.max_operations {
            None => d.max_operations,
            Some(0) => return Err("max_operations must be at least 1".into()),
            Some(n) => n,
        };
        let wall_time = match raw.wall_time {
            None => d.wall_time,
            Some(text) => {
                let t = parse_duration(&text)?;
                if t.is_zero() {
                    return Err("wall_time must be more than 0".into());
                }
                if t > Duration::from_secs(1) {
                    return Err(format!("wall_time must be at most 1s, got `{text}`"));
                }
                t
            }
        };
        Ok(ScriptLimits {
            max_operations,
            max_call_levels: count(
                "max_call_levels",
                raw.max_call_levels,
                d.max_call_levels,
                64,
            )?,
            max_string_size: count(
                "max_string_size",
                raw.max_string_size,
                d.max_string_size,
                64 << 20,
            )?,
            max_array_size: count(
                "max_array_size",
                raw.max_array_size,
                d.max_array_size,
                10_000_000,
            )?,
            max_map_size: count("max_map_size", raw.max_map_size, d.max_map_size, 10_000_000)?,
            max_expr_depth: count("max_expr_depth", raw.max_expr_depth, d.max_expr_depth, 64)?,
            wall_time,
        })
    }
}

/// `"Nms"` or `"Ns"`, as the rest of the configuration writes durations.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let invalid = || format!("invalid duration `{text}`: expected e.g. \"50ms\" or \"1s\"");
    let (digits, unit_ms) = if let Some(d) = t.strip_suffix("ms") {
        (d, true)
    } else if let Some(d) = t.strip_suffix('s') {
        (d, false)
    } else if t == "0" {
        return Ok(Duration::ZERO);
    } else {
        return Err(invalid());
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("duration `{text}` is too large"))?;
    Ok(if unit_ms {
        Duration::from_millis(n)
    } else {
        Duration::from_secs(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<ScriptLimits, String> {
        toml::from_str::<ScriptLimits>(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn an_empty_table_gives_the_defaults() {
        assert_eq!(read("").unwrap(), ScriptLimits::default());
        assert_eq!(ScriptLimits::default().max_operations, 100_000);
        assert_eq!(ScriptLimits::default().wall_time, Duration::from_millis(50));
    }

    #[test]
    fn keys_override_their_default_only() {
        let l = read("max_operations = 500\nwall_time = \"1s\"").unwrap();
        assert_eq!(l.max_operations, 500);
        assert_eq!(l.wall_time, Duration::from_secs(1));
        assert_eq!(l.max_call_levels, 32);
        assert_eq!(
            read("wall_time = \"20ms\"").unwrap().wall_time.as_millis(),
            20
        );
    }

    #[test]
    fn unknown_keys_zero_and_bad_durations_are_refused() {
        assert!(
            read("max_ops = 5")
                .unwrap_err()
                .contains("unknown field `max_ops`")
        );
        assert_eq!(
            read("max_call_levels = 0").unwrap_err(),
            "max_call_levels must be at least 1"
        );
        assert_eq!(
            read("wall_time = \"0\"").unwrap_err(),
            "wall_time must be more than 0"
        );
        assert!(
            read("wall_time = \"5 minutes\"")
                .unwrap_err()
                .contains("invalid duration")
        );
        assert_eq!(
            read("max_expr_depth = 100").unwrap_err(),
            "max_expr_depth must be at most 64, got 100"
        );
        assert_eq!(
            read("wall_time = \"5s\"").unwrap_err(),
            "wall_time must be at most 1s, got `5s`"
        );
    }

    #[test]
    fn limits_print_as_configured() {
        let l = ScriptLimits::default();
        assert_eq!(Limit::WallTime.value_in(&l), "50ms");
        assert_eq!(Limit::StringSize.value_in(&l), "1048576 bytes");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1500us");
    }
}
