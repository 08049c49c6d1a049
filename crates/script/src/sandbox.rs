//! The sandboxed Rhai engine every script and expression runs in.
//!
//! Rhai has no file, network, process or clock functions of its own once `no_module` (no
//! `import` of script files) and `no_time` (no `timestamp()`) are set; what is left is pure
//! computation on values. This module closes the remaining doors and applies the limits:
//! `eval` is refused at compile time, `print` and `debug` go to a per-thread capture instead
//! of stdout (see [`capture_log`]), undefined variables are compile errors, and every call
//! runs against an operation count, a call depth, string/array/map sizes and a wall-time
//! deadline.
//!
//! The deadline lives in a thread-local because Rhai's progress callback only receives the
//! operation count and the engine is shared by concurrent calls: a script call is synchronous
//! and cannot move threads while it runs, so the thread identifies the call.

use crate::limits::ScriptLimits;
use rhai::{Dynamic, Engine, EvalAltResult};
use std::cell::{Cell, RefCell};
use std::time::Instant;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static LOG: RefCell<Option<Log>> = const { RefCell::new(None) };
}

/// How often (in operations) the progress callback looks at the clock: reading it on every
/// operation would cost more than the operation.
const CLOCK_EVERY: u64 = 64;
/// Lines kept per capture, and characters per line: a script printing in a loop must not
/// fill memory with its output.
const MAX_LOG_LINES: usize = 200;
const MAX_LOG_LINE: usize = 2000;

pub(crate) const NO_SLEEP: &str = "`sleep` is not available in Tandem scripts";

struct Log {
    lines: Vec<String>,
    dropped: usize,
}

/// A Rhai engine with Tandem's sandbox and `limits` applied.
pub(crate) fn engine(limits: &ScriptLimits) -> Engine {
    let mut engine = Engine::new();
    engine.disable_symbol("eval");
    // The standard library's one way to touch the outside: `sleep` blocks the worker thread
    // past any wall-time check (the progress callback does not run while it sleeps).
    // Functions registered on the engine are found before the standard packages'.
    engine.register_fn("sleep", |_: rhai::INT| -> Result<(), Box<EvalAltResult>> {
        Err(NO_SLEEP.into())
    });
    engine.register_fn(
        "sleep",
        |_: rhai::FLOAT| -> Result<(), Box<EvalAltResult>> { Err(NO_SLEEP.into()) },
    );
    engine.set_strict_variables(true);
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    engine.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
    engine.on_print(|text| log_line(text.to_string()));
    engine.on_debug(|text, _source, pos| {
        log_line(match (pos.line(), pos.position()) {
            (Some(line), Some(col)) => format!("{line}:{col}: {text}"),
            _ => text.to_string(),
        })
    });
    engine.on_progress(|ops| {
        if !ops.is_multiple_of(CLOCK_EVERY) {
            return None;
        }
        let deadline = DEADLINE.with(Cell::get)?;
        (Instant::now() >= deadline).then(|| Dynamic::from("wall_time"))
    });
    engine
}

fn log_line(mut line: String) {
    LOG.with(|log| {
        if let Some(log) = log.borrow_mut().as_mut() {
            if log.lines.len() >= MAX_LOG_LINES {
                log.dropped += 1;
                return;
            }
            if line.chars().count() > MAX_LOG_LINE {
                line = line.chars().take(MAX_LOG_LINE).collect::<String>() + "...";
            }
            log.lines.push(line);
        }
    });
}

/// Runs `f` with the wall-time deadline `limits.wall_time` from now, restoring whatever
/// deadline was set before (none, outside a call).
pub(crate) fn with_deadline<R>(limits: &ScriptLimits, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEADLINE.with(|d| d.set(self.0));
        }
    }
    let deadline = Instant::now() + limits.wall_time;
    let _restore = Restore(DEADLINE.with(|d| d.replace(Some(deadline))));
    f()
}

/// Runs `f` and returns, with its result, the lines that scripts called inside `f` wrote
/// with `print` or `debug` on this thread.
///
/// Outside a capture, script output is discarded: scripts never write to stdout. At most
/// 200 lines of 2000 characters are kept; a last line says how many more were dropped.
pub fn capture_log<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    // Put back the enclosing capture (if any) even when `f` panics.
    struct Restore(Option<Log>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            LOG.with(|log| *log.borrow_mut() = previous);
        }
    }
    let fresh = Log {
        lines: Vec::new(),
        dropped: 0,
    };
    let restore = Restore(LOG.with(|log| log.borrow_mut().replace(fresh)));
    let result = f();
    let captured = LOG.with(|log| log.borrow_mut().take());
    drop(restore);
    let mut lines = Vec::new();
    if let Some(log) = captured {
        lines = log.lines;
        if log.dropped > 0 {
            lines.push(format!("... {} more lines dropped", log.dropped));
        }
    }
    (result, lines)
}
