//! Where each key sits in the configuration file, so that every problem, whichever pass finds
//! it, is reported at its line: the [`SpanIndex`] of the whole document while loading, and the
//! [`KeyLines`] a table keeps afterwards for problems found only when a system is contacted.

use super::error::ConfigIssue;
use super::preset::Sources;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The lines of the keys under one table, kept after loading. Keys are relative to the table
/// (`operations.fetch.item_pointer`, `fields[2].read`).
#[derive(Debug, Clone, Default)]
pub struct KeyLines {
    file: PathBuf,
    /// The table's own key path (`connection[0].external`).
    prefix: String,
    /// Key → (file, line): a key may come from a preset rather than the user's file.
    lines: std::collections::BTreeMap<String, (PathBuf, usize)>,
}

impl KeyLines {
    /// A problem at `key`, located at its line, or at its nearest parent's when the key is not
    /// in the file (a default applies); displayed as `file:line: key: message`.
    pub fn issue(&self, key: &str, message: impl Into<String>) -> ConfigIssue {
        let mut at = key;
        let (file, line) = loop {
            if let Some((file, line)) = self.lines.get(at) {
                break (file.clone(), Some(*line));
            }
            match at.rfind(['.', '[']) {
                Some(cut) => at = &at[..cut],
                None => break (self.file.clone(), None),
            }
        };
        ConfigIssue {
            file,
            line,
            key: join_key(&self.prefix, key),
            message: message.into(),
        }
    }

    /// [`Self::issue`] as text; just `key: message` for a table that was not read from a file.
    pub fn describe(&self, key: &str, message: impl Into<String>) -> String {
        let issue = self.issue(key, message);
        if self.file.as_os_str().is_empty() {
            format!("{}: {}", issue.key, issue.message)
        } else {
            issue.to_string()
        }
    }
}

pub(super) fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Where each key and value sits in the file, by dotted path (`connection[0].jira.api`).
pub(super) struct SpanIndex<'t> {
    /// path → (key span, value span)
    pub(super) entries: HashMap<String, (Range<usize>, Range<usize>)>,
    /// The texts the spans point into (the user's file, presets).
    pub(super) sources: &'t Sources<'t>,
}

impl<'t> SpanIndex<'t> {
    pub(super) fn new(root: &DeTable<'_>, sources: &'t Sources<'t>) -> Self {
        let mut entries = HashMap::new();
        Self::walk_table(root, "", &mut entries);
        SpanIndex { entries, sources }
    }

    fn walk_table(
        table: &DeTable<'_>,
        prefix: &str,
        out: &mut HashMap<String, (Range<usize>, Range<usize>)>,
    ) {
        for (key, value) in table.iter() {
            let path = join_key(prefix, key.get_ref());
            out.insert(path.clone(), (key.span(), value.span()));
            Self::walk_value(value, &path, key.span(), out);
        }
    }

    fn walk_value(
        value: &Spanned<DeValue<'_>>,
        path: &str,
        key_span: Range<usize>,
        out: &mut HashMap<String, (Range<usize>, Range<usize>)>,
    ) {
        match value.get_ref() {
            DeValue::Table(t) => Self::walk_table(t, path, out),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    // An array element has no key of its own: its value span (for `[[x]]`,
                    // the element's own header) is what locates it.
                    out.insert(p.clone(), (item.span(), item.span()));
                    Self::walk_value(item, &p, key_span.clone(), out);
                }
            }
            _ => {}
        }
    }

    /// The span of `path`, or of its nearest existing parent (a missing key is reported at
    /// the table that should hold it).
    pub(super) fn span_of(&self, path: &str) -> Option<Range<usize>> {
        let mut p = path;
        loop {
            if let Some((key, value)) = self.entries.get(p) {
                // Prefer the key: for `[table]` headers and multi-line values it is the line
                // people look at.
                return Some(if key.start <= value.start {
                    key.clone()
                } else {
                    value.clone()
                });
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// The lines of every key under `prefix`, relative to it (see [`KeyLines`]).
    pub(super) fn key_lines(&self, prefix: &str, file: &Path) -> KeyLines {
        let inside = format!("{prefix}.");
        let lines = self
            .entries
            .iter()
            .filter_map(|(path, (key, _))| {
                let rel = path.strip_prefix(&inside)?;
                Some((rel.to_string(), self.sources.locate(key.start)))
            })
            .collect();
        KeyLines {
            file: file.to_path_buf(),
            prefix: prefix.to_string(),
            lines,
        }
    }

    /// The key path an error span belongs to: the innermost entry whose key or value
    /// contains it. serde's "unknown field `x`" errors may carry the span of the enclosing
    /// table (internally tagged enums buffer their content), so the named key is then looked
    /// up inside that table for an exact line.
    pub(super) fn locate_error(
        &self,
        span: Option<Range<usize>>,
        message: &str,
    ) -> (Option<Range<usize>>, String) {
        let Some(span) = span else {
            return (None, String::new());
        };
        let mut best: Option<(&String, usize)> = None;
        for (path, (key, value)) in &self.entries {
            for r in [key, value] {
                if r.start <= span.start && span.start < r.end.max(r.start + 1) {
                    let width = r.end - r.start;
                    if best.is_none_or(|(_, w)| width < w) {
                        best = Some((path, width));
                    }
                }
            }
        }
        let Some((path, _)) = best else {
            return (Some(span), String::new());
        };
        let mut path = path.clone();
        if let Some(field) = backticked_after(message, "unknown field ") {
            // The key itself when the span already is it; else the shallowest key of that
            // name inside the table the span covers (nested tagged enums, like
            // `external.auth`, are buffered together).
            if path == field || path.ends_with(&format!(".{field}")) {
                return (Some(span), path);
            }
            let inside = format!("{path}.");
            // Several tables inside may hold a key of that name (`auth.name` is fine where
            // `fields[0].name` is not): the one whose table has a key serde expected there
            // is the culprit; else the shallowest, outside arrays of tables first.
            let expected = expected_fields(message);
            let beside_expected = |p: &str| {
                let parent = &p[..p.len() - field.len()];
                expected
                    .iter()
                    .any(|e| self.entries.contains_key(&format!("{parent}{e}")))
            };
            let found = self
                .entries
                .iter()
                .filter(|(p, _)| {
                    p.strip_prefix(&inside)
                        .is_some_and(|rest| rest == field || rest.ends_with(&format!(".{field}")))
                })
                .min_by_key(|(p, (key, _))| {
                    let rest = &p[inside.len()..];
                    (
                        !beside_expected(p),
                        rest.contains('['),
                        p.matches('.').count(),
                        key.start,
                    )
                });
            if let Some((p, (key, _))) = found {
                return (Some(key.clone()), p.clone());
            }
            path = join_key(&path, &field);
        } else if let Some(field) = backticked_after(message, "missing field ") {
            let span = self.span_of(&path).unwrap_or(span);
            return (Some(span), join_key(&path, &field));
        }
        (Some(span), path)
    }
}

/// The keys a serde "unknown field" message says were expected (`expected one of `a`, `b``
/// or `expected `a``), in order.
fn expected_fields(message: &str) -> Vec<String> {
    let Some(at) = message.find("expected ") else {
        return Vec::new();
    };
    message[at..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The text inside the backticks after `marker` in a serde message.
fn backticked_after(message: &str, marker: &str) -> Option<String> {
    let rest = &message[message.find(marker)? + marker.len()..];
    let rest = rest.strip_prefix('`')?;
    Some(rest[..rest.find('`')?].to_string())
}
