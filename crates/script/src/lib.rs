//! Tandem's scripting hooks: the rules a field mapping cannot express, in sandboxed Rhai.
//!
//! A connection may name a script (`[connection] script = "rules.rhai"`) whose optional hooks
//! decide which events to sync (`filter`), reshape the fields written to either side
//! (`to_jira`, `to_external`) and choose the fields of new twins (`on_create`); a mapping
//! entry may carry a one-line expression ([`FieldExpr`]) instead. Everything runs in a
//! sandbox without file, network, process or clock access, under [`ScriptLimits`], and every
//! failure is a [`ScriptError`] naming the script's file, line and column.
//!
//! This crate does no I/O beyond reading the script file in [`Script::load`] and knows
//! nothing of the engine: it takes and returns [`tandem_core::FieldValue`]s.

pub mod convert;
mod error;
mod expr;
mod limits;
mod sandbox;
mod script;

pub use convert::{EventView, ItemView};
pub use error::{ErrorKind, ScriptError};
pub use expr::FieldExpr;
pub use limits::{Limit, ScriptLimits};
pub use sandbox::capture_log;
pub use script::{FILTERED_BY_SCRIPT, FilterDecision, Script};
