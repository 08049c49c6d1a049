//! Script errors: what went wrong, in which file, at which line and column.
//!
//! Every error a script can cause — it cannot be read, it does not parse, a hook takes the
//! wrong arguments, it exceeded a limit, it threw, it returned a value of the wrong type —
//! becomes one [`ScriptError`] whose `Display` starts with `file:line:col:` when the position
//! is known, so `tandem check` and a dead letter point at the place to fix.

use crate::limits::{Limit, ScriptLimits};
use rhai::{EvalAltResult, LexError, ParseError, ParseErrorType, Position};
use std::fmt;

/// What kind of failure a [`ScriptError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The script file could not be read.
    Read,
    /// The script does not parse (or uses something the sandbox refuses, such as `eval`).
    Syntax,
    /// A hook is defined with the wrong number of parameters.
    Hook,
    /// A call exceeded one of the [`ScriptLimits`].
    Limit(Limit),
    /// The script failed while running: it threw, or an operation failed (type mismatch,
    /// unknown function, index out of bounds, division by zero...).
    Runtime,
    /// A hook returned a value Tandem cannot use (not a map, or a field of the wrong type).
    Value,
}

/// An error caused by a script, with the place in the script it comes from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScriptError {
    /// The script's file name as given to [`crate::Script::load`] (or the name given to
    /// [`crate::Script::compile`]).
    pub file: String,
    /// 1-based line, when the script engine knows it.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// The message, without the position.
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl ScriptError {
    /// An error at `pos` (which may be [`Position::NONE`]).
    pub(crate) fn at(
        file: &str,
        pos: Position,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        ScriptError {
            file: file.to_string(),
            line: pos.line(),
            column: pos.position(),
            kind,
            message: message.into(),
        }
    }

    /// An error at a known line and column.
    pub(crate) fn at_line(
        file: &str,
        line_col: Option<(usize, usize)>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        ScriptError {
            file: file.to_string(),
            line: line_col.map(|p| p.0),
            column: line_col.map(|p| p.1),
            kind,
            message: message.into(),
        }
    }

    /// A compile error.
    pub(crate) fn from_parse(file: &str, err: &ParseError, limits: &ScriptLimits) -> Self {
        let ParseError(kind, pos) = err;
        let (kind, message) = match kind.as_ref() {
            ParseErrorType::ExprTooDeep => (
                ErrorKind::Limit(Limit::ExprDepth),
                limit_message(
                    Limit::ExprDepth,
                    limits,
                    "expressions are nested too deeply",
                ),
            ),
            ParseErrorType::LiteralTooLarge(what, _) if what.contains("string") => (
                ErrorKind::Limit(Limit::StringSize),
                limit_message(Limit::StringSize, limits, "a string literal is too long"),
            ),
            ParseErrorType::LiteralTooLarge(what, _) if what.contains("array") => (
                ErrorKind::Limit(Limit::ArraySize),
                limit_message(Limit::ArraySize, limits, "an array literal is too long"),
            ),
            ParseErrorType::LiteralTooLarge(what, _) if what.contains("map") => (
                ErrorKind::Limit(Limit::MapSize),
                limit_message(Limit::MapSize, limits, "a map literal is too large"),
            ),
            ParseErrorType::BadInput(LexError::ImproperSymbol(word, _)) if word == "eval" => (
                ErrorKind::Syntax,
                "`eval` is not available in Tandem scripts".to_string(),
            ),
            other => (ErrorKind::Syntax, other.to_string()),
        };
        ScriptError::at(file, *pos, kind, message)
    }

    /// A run-time error of hook `context` (a hook name, or `expression`).
    pub(crate) fn from_eval(
        file: &str,
        context: &str,
        err: EvalAltResult,
        limits: &ScriptLimits,
    ) -> Self {
        // Errors inside functions the hook called arrive wrapped, once per call level; the
        // innermost error has the message and the position that matter, and the chain of
        // function names says how the script got there.
        let mut inner = err;
        let mut via: Vec<String> = Vec::new();
        while let EvalAltResult::ErrorInFunctionCall(name, _, next, _) = inner {
            if name != context {
                via.push(name);
            }
            inner = *next;
        }
        let pos = inner.position();
        let (kind, text) = match &inner {
            EvalAltResult::ErrorTooManyOperations(_) => (
                ErrorKind::Limit(Limit::Operations),
                limit_message(
                    Limit::Operations,
                    limits,
                    "the script ran too many operations (does a loop never end?)",
                ),
            ),
            EvalAltResult::ErrorTerminated(..) => (
                ErrorKind::Limit(Limit::WallTime),
                limit_message(Limit::WallTime, limits, "the script ran for too long"),
            ),
            EvalAltResult::ErrorStackOverflow(_) => (
                ErrorKind::Limit(Limit::CallLevels),
                limit_message(
                    Limit::CallLevels,
                    limits,
                    "functions are nested too deeply (does a function call itself without end?)",
                ),
            ),
            EvalAltResult::ErrorDataTooLarge(what, _) => {
                let (limit, text) = if what.contains("string") {
                    (Limit::StringSize, "a string grew too long")
                } else if what.contains("array") {
                    (Limit::ArraySize, "an array grew too long")
                } else {
                    (Limit::MapSize, "a map grew too large")
                };
                (ErrorKind::Limit(limit), limit_message(limit, limits, text))
            }
            // The sandbox's refusals come as errors raised by its stand-in functions.
            EvalAltResult::ErrorRuntime(value, _)
                if value.is_string() && value.to_string() == crate::sandbox::NO_SLEEP =>
            {
                (ErrorKind::Runtime, crate::sandbox::NO_SLEEP.to_string())
            }
            EvalAltResult::ErrorRuntime(value, _) => {
                let shown = if value.is_string() {
                    value.to_string()
                } else {
                    format!("{value:?}")
                };
                (ErrorKind::Runtime, format!("the script threw: {shown}"))
            }
            EvalAltResult::ErrorParsing(ParseErrorType::Reserved(word), _) if word == "eval" => (
                ErrorKind::Syntax,
                "`eval` is not available in Tandem scripts".to_string(),
            ),
            _ => {
                inner.clear_position();
                (ErrorKind::Runtime, inner.to_string())
            }
        };
        let mut message = format!("{context}: ");
        for name in via.iter().rev() {
            message.push_str(&format!("in function '{name}': "));
        }
        message.push_str(&text);
        ScriptError::at(file, pos, kind, message)
    }
}

fn limit_message(limit: Limit, limits: &ScriptLimits, what: &str) -> String {
    format!(
        "{what}: exceeded the {} limit ({} = {})",
        describe(limit),
        limit.key(),
        limit.value_in(limits)
    )
}

fn describe(limit: Limit) -> &'static str {
    match limit {
        Limit::Operations => "operation",
        Limit::CallLevels => "call-depth",
        Limit::StringSize => "string-size",
        Limit::ArraySize => "array-size",
        Limit::MapSize => "map-size",
        Limit::ExprDepth => "expression-depth",
        Limit::WallTime => "wall-time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_puts_the_position_first_when_known() {
        let e = ScriptError::at_line("rules.rhai", Some((12, 5)), ErrorKind::Hook, "bad");
        assert_eq!(e.to_string(), "rules.rhai:12:5: bad");
        let e = ScriptError::at_line("rules.rhai", None, ErrorKind::Read, "missing");
        assert_eq!(e.to_string(), "rules.rhai: missing");
    }
}
