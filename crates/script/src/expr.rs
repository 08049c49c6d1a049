//! One-line per-field expressions from the mapping (`expr = "value.to_upper()"`).
//!
//! For the common small case a whole script is too much: an expression computes one field's
//! new value from `value` (the field's value after the mapping, as a script value) and `item`
//! (the source item, as hooks see it). It runs in the same sandbox and under the same limits
//! as a script. Only an expression is accepted — no statements, no function definitions.

use crate::convert::{ItemView, from_dynamic, to_dynamic};
use crate::error::{ErrorKind, ScriptError};
use crate::limits::ScriptLimits;
use crate::sandbox;
use rhai::{AST, Dynamic, Engine, Scope};
use std::sync::Arc;
use tandem_core::FieldValue;

/// A compiled field expression. Cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct FieldExpr {
    inner: Arc<Inner>,
}

struct Inner {
    origin: String,
    source: String,
    engine: Engine,
    ast: AST,
    limits: ScriptLimits,
}

impl std::fmt::Debug for FieldExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldExpr")
            .field("origin", &self.inner.origin)
            .field("source", &self.inner.source)
            .finish()
    }
}

impl FieldExpr {
    /// Compiles `expr`. Errors name it as ``expression `EXPR` `` with the line and column
    /// inside the expression.
    pub fn compile(expr: &str, limits: ScriptLimits) -> Result<FieldExpr, ScriptError> {
        Self::compile_at(&format!("expression `{expr}`"), expr, limits)
    }

    /// Compiles `expr`; errors name `origin` (e.g. `fieldMappings.csv:3 expr`) as the file.
    pub fn compile_at(
        origin: &str,
        expr: &str,
        limits: ScriptLimits,
    ) -> Result<FieldExpr, ScriptError> {
        let engine = sandbox::engine(&limits);
        // Strict variables: only `value` and `item` exist, so a misspelt name fails here
        // rather than on the first event.
        let mut scope = Scope::new();
        scope.push("value", Dynamic::UNIT);
        scope.push("item", Dynamic::UNIT);
        let ast = engine
            .compile_expression_with_scope(&scope, expr)
            .map_err(|e| ScriptError::from_parse(origin, &e, &limits))?;
        Ok(FieldExpr {
            inner: Arc::new(Inner {
                origin: origin.to_string(),
                source: expr.to_string(),
                engine,
                ast,
                limits,
            }),
        })
    }

    /// The expression's text.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Evaluates the expression with `value` and `item` bound.
    ///
    /// The result is read back with `value`'s kind, as a hook's fields are (see
    /// [`crate::convert`]); `()` or `""` clears the field.
    pub fn eval(&self, value: &FieldValue, item: &ItemView) -> Result<FieldValue, ScriptError> {
        let inner = &*self.inner;
        let mut scope = Scope::new();
        scope.push("value", to_dynamic(value));
        scope.push("item", item.to_dynamic());
        let result = sandbox::with_deadline(&inner.limits, || {
            inner
                .engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, &inner.ast)
        })
        .map_err(|e| ScriptError::from_eval(&inner.origin, "expression", *e, &inner.limits))?;
        from_dynamic("value", &result, Some(value)).map_err(|message| {
            ScriptError::at_line(
                &inner.origin,
                None,
                ErrorKind::Value,
                message.replacen("field `value` must be", "the expression must return", 1),
            )
        })
    }
}
