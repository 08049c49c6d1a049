//! Reading a configuration: the passes (syntax, `${VAR}`, schema, semantic checks) and then
//! each connection's field mapping and its per-field expressions, with every problem placed
//! at its line.

use super::env::substitute_table;
use super::error::{ConfigError, ConfigIssue};
use super::preset::{self, Sources};
use super::rest::RestFormat;
use super::spans::SpanIndex;
use super::{Config, ExternalConfig, FieldExprs, MappingSource};
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use tandem_core::mapping::{self, Location, Mapping, MappingErrors};
use tandem_script::{FieldExpr, ScriptLimits};
use toml::de::DeTable;

/// Reads, checks and resolves a configuration file, with mappings, using the process
/// environment for `${VAR}` references.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::one(path, None, "", format!("cannot read: {e}")))?;
    load_str(&text, path, |name| std::env::var(name).ok())
}

/// Like [`load`], with the text given and `env` answering `${VAR}` lookups (for tests).
/// `path` names the file in messages and anchors relative paths.
pub fn load_str(
    text: &str,
    path: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut config = parse_str(text, path, env)?;
    load_mappings(&mut config)?;
    Ok(config)
}

/// Passes 1–3 without reading mapping files: syntax, `${VAR}`, schema and semantic checks.
pub fn parse_str(
    text: &str,
    path: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    // Spans point into the user's text, or past its end into a preset's (see `preset.rs`).
    let mut sources = Sources::new(text, path);

    // Pass 1: syntax.
    let mut doc = DeTable::parse(text).map_err(|e| ConfigError {
        issues: vec![sources.issue(e.span(), String::new(), first_line(e.message()))],
    })?;

    // Pass 1b: presets, merged under the user's keys.
    preset::apply(doc.get_mut(), &mut sources).map_err(|issues| ConfigError { issues })?;
    let issue = |span: Option<Range<usize>>, key: String, message: String| {
        sources.issue(span, key, message)
    };

    // Pass 2a: environment substitution in string values, collecting every failure.
    let mut env_issues = Vec::new();
    substitute_table(doc.get_mut(), "", &env, &mut |span, key, msg| {
        env_issues.push((span.start, issue(Some(span), key, msg)))
    });
    if !env_issues.is_empty() {
        // The tree is walked in key order; people read files top to bottom.
        env_issues.sort_by_key(|(offset, _)| *offset);
        return Err(ConfigError {
            issues: env_issues.into_iter().map(|(_, i)| i).collect(),
        });
    }

    // Pass 2b: schema. The spans index outlives the tree serde consumes.
    let spans = SpanIndex::new(doc.get_ref(), &sources);
    let mut config: Config =
        Config::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| {
            let (span, key) = spans.locate_error(e.span(), e.message());
            ConfigError {
                issues: vec![issue(span, key, first_line(e.message()))],
            }
        })?;
    config.path = path.to_path_buf();

    // Pass 3: semantics.
    let mut issues = Vec::new();
    config.check(&spans, &mut |key: &str, message: String| {
        let span = spans.span_of(key);
        issues.push(issue(span, key.to_string(), message));
    });
    if !issues.is_empty() {
        issues.sort_by_key(|i| i.line);
        return Err(ConfigError { issues });
    }
    Ok(config)
}

/// Reads and validates each connection's mapping, storing it in `fields`. Problems of all
/// connections are reported together.
fn load_mappings(config: &mut Config) -> Result<(), ConfigError> {
    let mut issues = Vec::new();
    for conn in &mut config.connections {
        match load_mapping(&conn.mapping) {
            Ok(m) => {
                match compile_exprs(&m, conn.script_limits) {
                    Ok(exprs) => conn.exprs = exprs,
                    Err(mut es) => issues.append(&mut es),
                }
                conn.fields = m;
            }
            Err(errors) => issues.extend(errors.errors.into_iter().map(|e| ConfigIssue {
                file: PathBuf::from(e.location.file),
                line: (e.location.line > 0).then_some(e.location.line),
                key: String::new(),
                message: e.message,
            })),
        }
    }
    // Custom REST systems must say where each mapped external field lives.
    for (i, conn) in config.connections.iter().enumerate() {
        if let ExternalConfig::Rest(r) = &conn.external
            && r.format == RestFormat::Custom
        {
            for m in &conn.fields.fields {
                if !r.fields.iter().any(|f| f.id == m.external_field) {
                    issues.push(ConfigIssue {
                        file: PathBuf::from(&m.location.file),
                        line: (m.location.line > 0).then_some(m.location.line),
                        key: String::new(),
                        message: format!(
                            "external field `{}` has no [[connection.external.fields]] entry \
                             in connection[{i}] ({}): add one saying where it is read and written",
                            m.external_field, conn.name
                        ),
                    });
                }
            }
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ConfigError { issues })
    }
}

/// Compiles every entry's `expr`, under the connection's script limits. A compile error is
/// placed at the entry's line (CSV row, `[[field]]` table), with the expression's text and
/// the column inside it.
pub fn compile_exprs(
    mapping: &Mapping,
    limits: ScriptLimits,
) -> Result<FieldExprs, Vec<ConfigIssue>> {
    let mut exprs = FieldExprs::new();
    let mut issues = Vec::new();
    for m in &mapping.fields {
        let Some(text) = &m.expr else {
            continue;
        };
        // Runtime errors name the entry the same way: `fieldMappings.csv:3 expr:1:7: ...`.
        let origin = format!("{} expr", m.location);
        match FieldExpr::compile_at(&origin, text, limits) {
            Ok(e) => {
                exprs.insert(m.key(), e);
            }
            Err(e) => {
                let at = e
                    .column
                    .map(|c| format!(" (column {c})"))
                    .unwrap_or_default();
                issues.push(ConfigIssue {
                    file: PathBuf::from(&m.location.file),
                    line: (m.location.line > 0).then_some(m.location.line),
                    key: "expr".into(),
                    message: format!("`{text}` does not compile{at}: {}", e.message),
                });
            }
        }
    }
    if issues.is_empty() {
        Ok(exprs)
    } else {
        Err(issues)
    }
}

/// Parses one mapping (file or inline) and validates it.
pub fn load_mapping(source: &MappingSource) -> Result<Mapping, MappingErrors> {
    let mapping = match source {
        MappingSource::File(path) => {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                mapping::MappingError::new(Location::new(&file, 0), format!("cannot read: {e}"))
            })?;
            if path.extension().is_some_and(|e| e == "toml") {
                mapping::parse_toml(&text, &file)?
            } else {
                mapping::parse_csv(&text, &file)?
            }
        }
        MappingSource::Inline(specs) => mapping::from_specs(specs.iter().cloned())?,
    };
    mapping::validate(&mapping)?;
    Ok(mapping)
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim().to_string()
}
