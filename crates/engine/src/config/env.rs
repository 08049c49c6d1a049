//! `${VAR}` substitution in string values of the parsed document (not the raw text, so a
//! value with quotes cannot break the syntax and a comment is left alone); `$${` is a
//! literal `${`.

use super::spans::join_key;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Replaces `${NAME}` in every string value of `table`; `$${` stands for a literal `${`.
pub(super) fn substitute_table(
    table: &mut DeTable<'_>,
    prefix: &str,
    env: &impl Fn(&str) -> Option<String>,
    report: &mut impl FnMut(Range<usize>, String, String),
) {
    for (key, value) in table.iter_mut() {
        let path = join_key(prefix, key.get_ref());
        substitute_value(value, &path, env, report);
    }
}

fn substitute_value(
    value: &mut Spanned<DeValue<'_>>,
    path: &str,
    env: &impl Fn(&str) -> Option<String>,
    report: &mut impl FnMut(Range<usize>, String, String),
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if s.contains('$') => match expand_env(s, env) {
            Ok(expanded) => *s = expanded.into(),
            Err(msgs) => {
                for msg in msgs {
                    report(span.clone(), path.to_string(), msg);
                }
            }
        },
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{path}[{i}]"), env, report);
            }
        }
        DeValue::Table(t) => substitute_table(t, path, env, report),
        _ => {}
    }
}

/// Expands `${NAME}` references; `$${` is a literal `${`, any other `$` is kept as is.
/// Returns every problem in the string, not just the first.
pub fn expand_env(
    text: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                errors.push("unterminated `${` (write `$${` for a literal `${`)".to_string());
                rest = "";
                break;
            };
            let name = &tail[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                errors.push(format!(
                    "`${{{name}}}` is not a valid environment variable reference"
                ));
            } else {
                match env(name) {
                    Some(v) => out.push_str(&v),
                    None => errors.push(format!("environment variable `{name}` is not set")),
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
