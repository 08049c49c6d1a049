//! A connection's rules script (`rules.rhai`): compiled once, its hooks called per event.
//!
//! The hooks, all optional:
//!
//! | hook | called with | returns |
//! | --- | --- | --- |
//! | `filter(event)` | the event (see [`EventView`]) | `true` to keep it; `false`, or a string giving the reason, to skip it |
//! | `to_jira(fields, item)` | the fields about to be written to Jira, after the mapping and value maps; the source item ([`ItemView`]) | the fields to write |
//! | `to_external(fields, item)` | the same, towards the external side | the fields to write |
//! | `on_create(side, fields, item)` | the side the new twin is created on (`"jira"` or `"external"`), its fields, the source item | the new twin's fields |
//!
//! A hook the script does not define keeps everything as it is. Other top-level functions are
//! helpers the hooks may call; top-level statements outside functions are not run.

use crate::convert::{EventView, ItemView, fields_to_dynamic, from_dynamic, side_value};
use crate::error::{ErrorKind, ScriptError};
use crate::limits::ScriptLimits;
use crate::sandbox;
use rhai::{AST, CallFnOptions, Dynamic, Engine, FuncArgs, Scope};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tandem_core::{FieldValue, Side};

/// The hooks Tandem calls, with the parameters each must take.
const HOOKS: [(&str, &[&str]); 4] = [
    ("filter", &["event"]),
    ("to_external", &["fields", "item"]),
    ("to_jira", &["fields", "item"]),
    ("on_create", &["side", "fields", "item"]),
];

/// What `filter` decided about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterDecision {
    /// Process the event.
    Keep,
    /// Skip it; the reason shows in the audit and in `tandem events list`.
    Skip(String),
}

/// The reason recorded when `filter` returns `false`.
pub const FILTERED_BY_SCRIPT: &str = "filtered by script";

/// A compiled rules script. Cheap to clone (the compiled form is shared) and safe to call
/// from several threads at once; every call starts from a fresh scope.
///
/// Calls are synchronous and bounded by [`ScriptLimits::wall_time`], so an async caller may
/// make them inline. The interpreter recurses (into nested calls, expressions and nested
/// containers), so run calls on threads with a generous stack: 8 MiB covers the largest
/// limits accepted (tokio: `Builder::thread_stack_size`).
#[derive(Clone)]
pub struct Script {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    engine: Engine,
    ast: AST,
    limits: ScriptLimits,
    /// Each defined hook's line and column (of its name), for errors about what it returned.
    hooks: BTreeMap<&'static str, Option<(usize, usize)>>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("name", &self.inner.name)
            .field("hooks", &self.hooks())
            .field("limits", &self.inner.limits)
            .finish()
    }
}

impl Script {
    /// Reads and compiles the script at `path`. Errors name the file by the path as given.
    pub fn load(path: impl AsRef<Path>, limits: ScriptLimits) -> Result<Script, ScriptError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| {
            ScriptError::at_line(
                &name,
                None,
                ErrorKind::Read,
                format!("cannot read the script: {e}"),
            )
        })?;
        Script::compile(&name, &source, limits)
    }

    /// Compiles `source`; `name` is the file name errors give.
    ///
    /// Fails on a syntax error, on use of something the sandbox refuses (`eval`, an
    /// undefined variable), on a literal or nesting beyond the limits, and on a hook defined
    /// with the wrong number of parameters.
    pub fn compile(name: &str, source: &str, limits: ScriptLimits) -> Result<Script, ScriptError> {
        let engine = sandbox::engine(&limits);
        let ast = engine
            .compile(source)
            .map_err(|e| ScriptError::from_parse(name, &e, &limits))?;
        let definitions = find_fn_definitions(source);
        let position = |fn_name: &str, arity: usize| {
            definitions
                .iter()
                .find(|d| d.name == fn_name && d.arity == arity)
                .map(|d| (d.line, d.column))
        };
        let mut hooks = BTreeMap::new();
        for f in ast.iter_functions() {
            let Some((hook, params)) = HOOKS.iter().find(|(h, _)| *h == f.name) else {
                continue;
            };
            if f.params.len() != params.len() {
                let plural = if params.len() == 1 { "" } else { "s" };
                return Err(ScriptError::at_line(
                    name,
                    position(f.name, f.params.len()),
                    ErrorKind::Hook,
                    format!(
                        "function '{hook}' takes {} argument{plural} ({}), found {}",
                        params.len(),
                        params.join(", "),
                        f.params.len()
                    ),
                ));
            }
            hooks.insert(*hook, position(f.name, f.params.len()));
        }
        Ok(Script {
            inner: Arc::new(Inner {
                name: name.to_string(),
                engine,
                ast,
                limits,
                hooks,
            }),
        })
    }

    /// The file name errors give.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The limits the script runs under.
    pub fn limits(&self) -> &ScriptLimits {
        &self.inner.limits
    }

    /// The hooks the script defines, in alphabetical order.
    pub fn hooks(&self) -> Vec<&'static str> {
        self.inner.hooks.keys().copied().collect()
    }

    /// Whether the script defines `hook`.
    pub fn has_hook(&self, hook: &str) -> bool {
        self.inner.hooks.contains_key(hook)
    }

    /// Runs `filter(event)`: whether to process the event.
    ///
    /// `true` keeps it, `false` skips it with the reason [`FILTERED_BY_SCRIPT`], a string
    /// skips it with that string as the reason (an empty string counts as `false`).
    /// Anything else is an error. Without a `filter` hook every event is kept.
    pub fn filter(&self, event: &EventView) -> Result<FilterDecision, ScriptError> {
        if !self.has_hook("filter") {
            return Ok(FilterDecision::Keep);
        }
        let result = self.call("filter", (event.to_dynamic(),))?;
        if let Ok(keep) = result.as_bool() {
            return Ok(if keep {
                FilterDecision::Keep
            } else {
                FilterDecision::Skip(FILTERED_BY_SCRIPT.to_string())
            });
        }
        if result.is_string() {
            let reason = result.into_string().unwrap_or_default();
            let reason = reason.trim();
            return Ok(FilterDecision::Skip(if reason.is_empty() {
                FILTERED_BY_SCRIPT.to_string()
            } else {
                reason.to_string()
            }));
        }
        Err(self.value_error(
            "filter",
            format!(
                "filter must return true (keep), false or a reason string (skip), got {}",
                describe(&result)
            ),
        ))
    }

    /// Runs `to_jira(fields, item)`: the fields to write to Jira.
    ///
    /// `fields` are the Jira fields the mapping produced; `item` is the external item the
    /// change comes from. See [`Script::to_external`] for what the hook returns.
    pub fn to_jira(
        &self,
        fields: &BTreeMap<String, FieldValue>,
        item: &ItemView,
    ) -> Result<BTreeMap<String, FieldValue>, ScriptError> {
        self.transform("to_jira", fields, item)
    }

    /// Runs `to_external(fields, item)`: the fields to write to the external side.
    ///
    /// The hook returns a map of fields. A field it returns unchanged is written as it came;
    /// one it changes is converted back to the field's kind (an error names the field if
    /// the type is wrong); one it adds is written too; one it sets to `()` or removes is
    /// left out of the write (an empty field, which arrives as `()`, stays as it is unless
    /// removed). To clear a field, set it to `""` or `[]`. Without the hook the fields are
    /// written as the mapping made them.
    pub fn to_external(
        &self,
        fields: &BTreeMap<String, FieldValue>,
        item: &ItemView,
    ) -> Result<BTreeMap<String, FieldValue>, ScriptError> {
        self.transform("to_external", fields, item)
    }

    /// Runs `on_create(side, fields, item)`: the fields of a new twin created on `side`.
    ///
    /// `fields` are those the mapping produced for the new item, `item` is the source item on
    /// the other side; the result is read as for [`Script::to_external`].
    pub fn on_create(
        &self,
        side: Side,
        fields: &BTreeMap<String, FieldValue>,
        item: &ItemView,
    ) -> Result<BTreeMap<String, FieldValue>, ScriptError> {
        if !self.has_hook("on_create") {
            return Ok(fields.clone());
        }
        let result = self.call(
            "on_create",
            (
                side_value(Some(side)),
                fields_to_dynamic(fields),
                item.to_dynamic(),
            ),
        )?;
        self.fields_result("on_create", &result, fields)
    }

    fn transform(
        &self,
        hook: &'static str,
        fields: &BTreeMap<String, FieldValue>,
        item: &ItemView,
    ) -> Result<BTreeMap<String, FieldValue>, ScriptError> {
        if !self.has_hook(hook) {
            return Ok(fields.clone());
        }
        let result = self.call(hook, (fields_to_dynamic(fields), item.to_dynamic()))?;
        self.fields_result(hook, &result, fields)
    }

    /// Calls `hook` with a fresh scope, under the limits and the wall-time deadline.
    fn call(&self, hook: &str, args: impl FuncArgs) -> Result<Dynamic, ScriptError> {
        let inner = &*self.inner;
        let mut scope = Scope::new();
        // Top-level statements are not run: hooks are pure functions of their arguments.
        let options = CallFnOptions::new().eval_ast(false);
        sandbox::with_deadline(&inner.limits, || {
            inner
                .engine
                .call_fn_with_options::<Dynamic>(options, &mut scope, &inner.ast, hook, args)
        })
        .map_err(|e| {
            let mut err = ScriptError::from_eval(&inner.name, hook, *e, &inner.limits);
            // Rhai moves a limit error's position to each call site on its way out, and the
            // outermost call (from here) has none: point at the hook that was running.
            if err.line.is_none()
                && let Some((line, column)) = inner.hooks.get(hook).copied().flatten()
            {
                err.line = Some(line);
                err.column = Some(column);
            }
            err
        })
    }

    /// Reads a hook's returned map of fields against the fields it was given.
    fn fields_result(
        &self,
        hook: &'static str,
        result: &Dynamic,
        before: &BTreeMap<String, FieldValue>,
    ) -> Result<BTreeMap<String, FieldValue>, ScriptError> {
        let Some(map) = result.read_lock::<rhai::Map>() else {
            return Err(self.value_error(
                hook,
                format!(
                    "{hook} must return the map of fields to write (e.g. `fields`), got {}",
                    describe(result)
                ),
            ));
        };
        let mut out = BTreeMap::new();
        for (name, value) in map.iter() {
            let name = name.as_str();
            let old = before.get(name);
            if value.is_unit() && !matches!(old, Some(FieldValue::Empty)) {
                continue;
            }
            let new = from_dynamic(name, value, old)
                .map_err(|message| self.value_error(hook, format!("{hook}: {message}")))?;
            out.insert(name.to_string(), new);
        }
        Ok(out)
    }

    /// An error about what `hook` returned, placed at the hook's definition.
    fn value_error(&self, hook: &str, message: String) -> ScriptError {
        let at = self.inner.hooks.get(hook).copied().flatten();
        ScriptError::at_line(&self.inner.name, at, ErrorKind::Value, message)
    }
}

/// A script value described for an error message: its type and a short rendering.
fn describe(value: &Dynamic) -> String {
    if value.is_unit() {
        return "nothing (did the function forget to return a value?)".to_string();
    }
    format!("{} {}", value.type_name(), crate::convert::short(value))
}

/// One `fn name(params)` in a script's source.
#[derive(Debug, PartialEq)]
struct FnDefinition {
    name: String,
    arity: usize,
    line: usize,
    column: usize,
}

/// The function definitions of a script that Rhai has already parsed, with the line and
/// column of each name.
///
/// Rhai's compiled form does not keep where a function was defined, so this scans the
/// source: it skips comments and string literals and looks for `fn` followed by a name and
/// a parameter list. The source is valid Rhai by then, so the scan need not validate it.
fn find_fn_definitions(source: &str) -> Vec<FnDefinition> {
    let chars: Vec<char> = source.chars().collect();
    // (line, column) of every char index, both 1-based.
    let mut positions = Vec::with_capacity(chars.len() + 1);
    let (mut line, mut col) = (1, 1);
    for &c in &chars {
        positions.push((line, col));
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    positions.push((line, col));
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                // Rhai block comments nest.
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' && c != '`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '#' if matches!(next, Some('"' | '#')) => {
                // A raw string: `#"..."#`, with as many `#` on each side.
                let mut hashes = 0;
                while chars.get(i) == Some(&'#') {
                    hashes += 1;
                    i += 1;
                }
                i += 1;
                while i < chars.len() {
                    if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                        i += 1 + hashes;
                        break;
                    }
                    i += 1;
                }
            }
            c if is_ident(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word != "fn" || (start > 0 && is_ident(chars[start - 1])) {
                    continue;
                }
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let name_start = j;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                if name_start == j {
                    continue;
                }
                let name: String = chars[name_start..j].iter().collect();
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                if chars.get(j) != Some(&'(') {
                    continue;
                }
                let close = (j..chars.len()).find(|&k| chars[k] == ')');
                let Some(close) = close else { continue };
                let params: String = chars[j + 1..close].iter().collect();
                let arity = params.split(',').filter(|p| !p.trim().is_empty()).count();
                let (line, column) = positions[name_start];
                out.push(FnDefinition {
                    name,
                    arity,
                    line,
                    column,
                });
                i = close + 1;
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_found_past_comments_and_strings() {
        let src = "// fn filter(a, b)\n/* fn x() /* nested */ fn y() */\nlet s = \"fn no(a)\";\n\
                   let r = #\"fn raw()\"#;\n  fn  to_jira ( fields,\n item ) { fields }\nfn f() {}";
        let found = find_fn_definitions(src);
        assert_eq!(
            found,
            vec![
                FnDefinition {
                    name: "to_jira".into(),
                    arity: 2,
                    line: 5,
                    column: 7
                },
                FnDefinition {
                    name: "f".into(),
                    arity: 0,
                    line: 7,
                    column: 4
                },
            ]
        );
    }

    #[test]
    fn script_is_send_sync_and_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Script>();
    }
}
