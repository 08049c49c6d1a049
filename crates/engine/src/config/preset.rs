//! Presets: named, versioned connector configurations shipped in the binary (the files under
//! `presets/` at the repository root), so that `[connection.external] preset = "redmine"`
//! with a base URL and credentials is a whole external side.
//!
//! A preset file has three parts: `[preset]` (name, version, summary, the keys the user must
//! give in `requires`, and `params`: keys of the user's table that are not connector keys but
//! are put into the preset's strings where `{{name}}` stands), `[external]` (the
//! `[connection.external]` table), and `[[field]]` (the default mapping).
//!
//! Applying a preset is a deep merge of TOML trees done right after the syntax pass, before
//! `${VAR}` substitution and validation, so the rest of loading sees one document. The
//! preset's spans are moved past the end of the user's text (each preset gets its own range
//! of offsets, see [`Sources`]) so that a problem is reported at the user's line when the key
//! came from the user's file, and at the preset's file and line when it came from the preset.

use super::error::ConfigIssue;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use tandem_core::mapping;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One shipped preset: its name and the text of `presets/{name}.toml`.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub text: &'static str,
}

/// Every preset the binary knows, by name.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "redmine",
        text: include_str!("../../../../presets/redmine.toml"),
    },
    Preset {
        name: "github",
        text: include_str!("../../../../presets/github.toml"),
    },
    Preset {
        name: "gitlab",
        text: include_str!("../../../../presets/gitlab.toml"),
    },
    Preset {
        name: "zendesk",
        text: include_str!("../../../../presets/zendesk.toml"),
    },
];

/// The `[preset]` table of a preset file.
#[derive(Debug, Clone, Deserialize)]
pub struct PresetInfo {
    pub name: String,
    pub version: u32,
    pub summary: String,
    /// Key (dotted, inside the user's `[connection.external]`) → what to give there.
    #[serde(default)]
    pub requires: BTreeMap<String, String>,
    /// Parameter name → what it is for.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct PresetHead {
    preset: PresetInfo,
}

impl Preset {
    /// The preset named `name`.
    pub fn find(name: &str) -> Option<&'static Preset> {
        PRESETS.iter().find(|p| p.name == name)
    }

    /// Its `[preset]` table.
    pub fn info(&self) -> Result<PresetInfo, String> {
        // The rest of the file is checked when a configuration uses it.
        let head: toml::Value = toml::from_str(self.text).map_err(|e| e.to_string())?;
        let head = toml::Value::Table(
            head.as_table()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k == "preset")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        PresetHead::deserialize(head)
            .map(|h| h.preset)
            .map_err(|e| e.to_string())
    }

    /// How problems in it are named: the preset and the file it ships as.
    pub fn file_label(&self) -> PathBuf {
        PathBuf::from(format!("preset {} (presets/{}.toml)", self.name, self.name))
    }
}

/// The names of all presets, for messages: `redmine, github`.
pub fn known_names() -> String {
    PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The texts a loaded document's spans point into: the user's file at offset 0, then each
/// applied preset at its own base offset.
pub(super) struct Sources<'t> {
    regions: Vec<Region<'t>>,
}

struct Region<'t> {
    base: usize,
    text: &'t str,
    file: PathBuf,
}

impl<'t> Sources<'t> {
    pub(super) fn new(text: &'t str, file: &Path) -> Self {
        Sources {
            regions: vec![Region {
                base: 0,
                text,
                file: file.to_path_buf(),
            }],
        }
    }

    /// Adds a text; returns the offset its spans must be moved by.
    fn push(&mut self, text: &'t str, file: PathBuf) -> usize {
        let last = self
            .regions
            .last()
            .expect("the user's file is always there");
        // One byte of gap so that an end-of-text span of one region is not the next's start.
        let base = last.base + last.text.len() + 1;
        self.regions.push(Region { base, text, file });
        base
    }

    /// The file and 1-based line of a document offset.
    pub(super) fn locate(&self, offset: usize) -> (PathBuf, usize) {
        let r = self
            .regions
            .iter()
            .rev()
            .find(|r| r.base <= offset)
            .unwrap_or(&self.regions[0]);
        let local = (offset - r.base).min(r.text.len());
        (r.file.clone(), mapping::line_at(r.text, local))
    }

    /// A [`ConfigIssue`] at `span` (or at the whole file when there is none).
    pub(super) fn issue(
        &self,
        span: Option<Range<usize>>,
        key: String,
        message: String,
    ) -> ConfigIssue {
        match span {
            Some(s) => {
                let (file, line) = self.locate(s.start);
                ConfigIssue {
                    file,
                    line: Some(line),
                    key,
                    message,
                }
            }
            None => ConfigIssue {
                file: self.regions[0].file.clone(),
                line: None,
                key,
                message,
            },
        }
    }
}

/// Applies the preset each `[connection.external]` names (`preset = "..."`), in place.
/// Problems (an unknown preset, a required key missing, a broken preset file) are returned
/// together.
pub(super) fn apply<'t>(
    doc: &mut DeTable<'t>,
    sources: &mut Sources<'t>,
) -> Result<(), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let Some(conns) = doc.get_mut("connection") else {
        return Ok(());
    };
    let DeValue::Array(conns) = conns.get_mut() else {
        return Ok(());
    };
    for (i, conn) in conns.iter_mut().enumerate() {
        let DeValue::Table(conn) = conn.get_mut() else {
            continue;
        };
        let at = format!("connection[{i}].external");
        let Some((name, name_span)) = conn
            .get("external")
            .and_then(|e| e.get_ref().as_table())
            .and_then(|e| e.get("preset"))
            .and_then(|p| match p.get_ref() {
                DeValue::String(s) => Some((s.to_string(), p.span())),
                _ => None,
            })
        else {
            continue;
        };
        let Some(preset) = Preset::find(&name) else {
            issues.push(sources.issue(
                Some(name_span),
                format!("{at}.preset"),
                format!(
                    "unknown preset `{name}`; the known presets are: {} (`tandem presets list`)",
                    known_names()
                ),
            ));
            continue;
        };
        if let Err(e) = apply_one(preset, conn, &at, sources) {
            issues.push(e);
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

/// Merges `preset` into one `[[connection]]` table.
fn apply_one<'t>(
    preset: &'static Preset,
    conn: &mut DeTable<'t>,
    at: &str,
    sources: &mut Sources<'t>,
) -> Result<(), ConfigIssue> {
    let label = preset.file_label();
    let broken = |e: String| ConfigIssue {
        file: label.clone(),
        line: None,
        key: String::new(),
        message: format!("the preset is broken (please report it): {e}"),
    };
    let info = preset.info().map_err(broken)?;
    let parsed = DeTable::parse(preset.text).map_err(|e| broken(e.message().to_string()))?;
    let base = sources.push(preset.text, label.clone());
    let mut root = shift_table(parsed.into_inner(), base);

    let ext_span = conn.get("external").map(|e| e.span());
    let user_ext = match conn.get_mut("external").map(|e| e.get_mut()) {
        Some(DeValue::Table(t)) => t,
        _ => return Ok(()),
    };
    // The keys the preset needs from the user, said in its words.
    for (key, what) in &info.requires {
        if lookup(user_ext, key).is_none() {
            return Err(sources.issue(
                ext_span.clone(),
                format!("{at}.{key}"),
                format!("preset `{}` needs {what}", preset.name),
            ));
        }
    }
    // Parameters leave the user's table (they are no connector keys) and go into the
    // preset's strings.
    let mut params = Vec::new();
    for name in info.params.keys() {
        if let Some(v) = user_ext.remove(name.as_str()) {
            let text = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(n) => n.as_str().to_string(),
                _ => {
                    return Err(sources.issue(
                        Some(v.span()),
                        format!("{at}.{name}"),
                        "must be a string or an integer".into(),
                    ));
                }
            };
            params.push((format!("{{{{{name}}}}}"), text));
        }
    }
    if let Some(ext) = root.remove("external") {
        let mut ext = ext.into_inner();
        substitute_params(&mut ext, &params);
        if let DeValue::Table(preset_ext) = ext {
            merge_tables(user_ext, preset_ext);
        }
    }
    // The default mapping, unless the connection gives its own.
    if !conn.contains_key("mapping")
        && !conn.contains_key("field")
        && let Some((k, v)) = root.remove_entry("field")
    {
        conn.insert(k, v);
    }
    Ok(())
}

/// The value at a dotted key (`auth.value`) inside `table`.
fn lookup<'a, 't>(table: &'a DeTable<'t>, key: &str) -> Option<&'a Spanned<DeValue<'t>>> {
    let (first, rest) = match key.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (key, None),
    };
    let v = table.get(first)?;
    match rest {
        None => Some(v),
        Some(rest) => lookup(v.get_ref().as_table()?, rest),
    }
}

/// Deep merge: the user's keys win. Tables are merged key by key, except when both say a
/// different `type` (another kind of `auth`, say), where the user's table replaces the
/// preset's; arrays of tables with `id`s (`fields`) are merged by id; any other value of the
/// user's replaces the preset's.
fn merge_tables<'t>(user: &mut DeTable<'t>, preset: DeTable<'t>) {
    for (key, pv) in preset {
        let Some(uv) = user.get_mut(key.get_ref().as_ref()) else {
            user.insert(key, pv);
            continue;
        };
        match (uv.get_mut(), pv.into_inner()) {
            (DeValue::Table(u), DeValue::Table(p)) => {
                let tag = |t: &DeTable<'_>| match t.get("type").map(|v| v.get_ref()) {
                    Some(DeValue::String(s)) => Some(s.to_string()),
                    _ => None,
                };
                let (ut, pt) = (tag(u), tag(&p));
                if ut.is_none() || pt.is_none() || ut == pt {
                    merge_tables(u, p);
                }
            }
            (DeValue::Array(u), DeValue::Array(p)) => {
                let id_of = |v: &Spanned<DeValue<'_>>| {
                    v.get_ref()
                        .as_table()
                        .and_then(|t| t.get("id"))
                        .map(|id| match id.get_ref() {
                            DeValue::String(s) => s.to_string(),
                            DeValue::Integer(n) => n.as_str().to_string(),
                            _ => String::new(),
                        })
                };
                if p.iter().all(|v| id_of(v).is_some()) && u.iter().all(|v| id_of(v).is_some()) {
                    let mine: Vec<Option<String>> = u.iter().map(id_of).collect();
                    // The preset's entries the user did not replace come first, in the
                    // preset's order; then the user's.
                    let mut merged = toml::de::DeArray::new();
                    for item in p.iter() {
                        if !mine.contains(&id_of(item)) {
                            merged.push(item.clone());
                        }
                    }
                    for item in u.iter() {
                        merged.push(item.clone());
                    }
                    *u = merged;
                }
            }
            _ => {}
        }
    }
}

/// Replaces each `{{param}}` in the string values of `value`.
fn substitute_params(value: &mut DeValue<'_>, params: &[(String, String)]) {
    match value {
        DeValue::String(s) if params.iter().any(|(k, _)| s.contains(k.as_str())) => {
            let mut out = s.to_string();
            for (k, v) in params {
                out = out.replace(k.as_str(), v);
            }
            *s = out.into();
        }
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                substitute_params(item.get_mut(), params);
            }
        }
        DeValue::Table(t) => {
            for (_, v) in t.iter_mut() {
                substitute_params(v.get_mut(), params);
            }
        }
        _ => {}
    }
}

fn shift(span: Range<usize>, by: usize) -> Range<usize> {
    span.start + by..span.end + by
}

/// `table` with every span moved by `by` (into the preset's range of offsets).
fn shift_table(table: DeTable<'_>, by: usize) -> DeTable<'_> {
    let mut out = DeTable::new();
    for (k, v) in table {
        let k = Spanned::new(shift(k.span(), by), k.into_inner());
        out.insert(k, shift_value(v, by));
    }
    out
}

fn shift_value(v: Spanned<DeValue<'_>>, by: usize) -> Spanned<DeValue<'_>> {
    let span = shift(v.span(), by);
    let inner = match v.into_inner() {
        DeValue::Table(t) => DeValue::Table(shift_table(t, by)),
        DeValue::Array(mut items) => {
            // In place, so the array keeps its kind (inline or array of tables).
            for item in items.iter_mut() {
                let taken = std::mem::replace(item, Spanned::new(0..0, DeValue::Boolean(false)));
                *item = shift_value(taken, by);
            }
            DeValue::Array(items)
        }
        other => other,
    };
    Spanned::new(span, inner)
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ConfigError, ExternalConfig, RestAuth, RestConfig, load_str};
    use super::*;

    /// A connection whose external side is the Redmine preset; `external_extra` goes into
    /// `[connection.external]`, `after` after it.
    fn config(external_extra: &str, after: &str) -> String {
        format!(
            r#"
[[connection]]
name = "redmine"

[connection.jira]
base_url = "https://example.atlassian.net"
email = "me@example.com"
api_token = "jira-token"
project = "TEST"

[connection.external]
preset = "redmine"
base_url = "https://redmine.example.com"
project = "ops"
{external_extra}
{after}"#
        )
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        load_str(text, Path::new("/etc/tandem/tandem.toml"), |n| {
            (n == "REDMINE_KEY").then(|| "redmine-key-value".to_string())
        })
    }

    fn rest(config: &Config) -> &RestConfig {
        match &config.connections[0].external {
            ExternalConfig::Rest(r) => r,
            other => panic!("not a REST side: {other:?}"),
        }
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}` not in the text"))
            + 1
    }

    #[test]
    fn every_shipped_preset_has_a_head_matching_its_name() {
        for p in PRESETS {
            let info = p.info().unwrap();
            assert_eq!(info.name, p.name);
            assert!(info.version >= 1);
            assert!(
                p.text.starts_with("# Preset"),
                "{} has no header comment",
                p.name
            );
        }
    }

    #[test]
    fn base_url_project_and_key_are_a_whole_redmine_side() {
        let c = load(&config(r#"auth = { value = "${REDMINE_KEY}" }"#, "")).unwrap();
        let r = rest(&c);
        assert_eq!(r.preset.as_deref(), Some("redmine"));
        assert_eq!(r.base_url, "https://redmine.example.com");
        match &r.auth {
            RestAuth::Header { name, value } => {
                assert_eq!(name, "X-Redmine-API-Key");
                assert_eq!(value.expose(), "redmine-key-value");
            }
            other => panic!("auth {other:?}"),
        }
        let ops = r.operations.as_ref().unwrap();
        // The project parameter is put where the preset says, and is no connector key.
        assert_eq!(
            ops.create.as_ref().unwrap().path,
            "/projects/ops/issues.json"
        );
        assert!(
            ops.list_changed
                .as_ref()
                .unwrap()
                .path
                .contains("project_id=ops&")
        );
        let mapped: Vec<(&str, &str)> = c.connections[0]
            .fields
            .fields
            .iter()
            .map(|f| (f.jira_field.as_str(), f.external_field.as_str()))
            .collect();
        assert_eq!(
            mapped,
            [
                ("summary", "subject"),
                ("description", "description"),
                ("status", "status"),
                ("duedate", "due_date")
            ]
        );
        // The preset's mapping entries are placed in the preset's file.
        let status = &c.connections[0].fields.fields[2];
        let preset = Preset::find("redmine").unwrap();
        assert_eq!(
            status.location.file,
            preset.file_label().display().to_string()
        );
        assert_eq!(
            status.location.line,
            line_of(preset.text, "jira = \"status\"") - 1
        );
    }

    #[test]
    fn the_users_keys_win_and_fields_merge_by_id() {
        let text = config(
            r#"auth = { value = "k" }
webhook_token = "hook"

[connection.external.operations.list_changed]
since_overlap = "30s"

[[connection.external.fields]]
id = "status"
read = "/status/name"
write = "/status_id"

[[connection.external.fields]]
id = "jira_key"
read = "$.custom_fields[?(@.id==1)].value"
write = "/custom_field_values/1"
"#,
            "",
        );
        let c = load(&text).unwrap();
        let r = rest(&c);
        let lc = r
            .operations
            .as_ref()
            .unwrap()
            .list_changed
            .as_ref()
            .unwrap();
        assert_eq!(lc.since_overlap.as_deref(), Some("30s"));
        // The rest of the table the user touched stays the preset's.
        assert_eq!(lc.since_format.as_deref(), Some("rfc3339"));
        assert!(r.webhook_token.is_some());
        let ids: Vec<&str> = r.fields.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "subject",
                "description",
                "due_date",
                "priority",
                "tracker",
                "status",
                "jira_key"
            ]
        );
        let status = r.fields.iter().find(|f| f.id == "status").unwrap();
        assert_eq!(status.read, "/status/name");
    }

    #[test]
    fn another_kind_of_auth_replaces_the_presets() {
        let text = config(
            r#"auth = { type = "basic", username = "sync", password = "pw" }"#,
            "",
        );
        let c = load(&text).unwrap();
        assert!(matches!(rest(&c).auth, RestAuth::Basic { .. }));
    }

    #[test]
    fn an_own_mapping_replaces_the_default_one() {
        let text = config(
            r#"auth = { value = "k" }"#,
            "[[connection.field]]\njira = \"summary\"\nexternal = \"subject\"\n",
        );
        let c = load(&text).unwrap();
        assert_eq!(c.connections[0].fields.fields.len(), 1);
    }

    #[test]
    fn an_unknown_preset_lists_the_known_ones_at_its_line() {
        let text = config(r#"auth = { value = "k" }"#, "").replace("\"redmine\"", "\"redmin\"");
        let err = load(&text).unwrap_err();
        assert_eq!(err.issues.len(), 1, "{err}");
        let i = &err.issues[0];
        assert_eq!(i.line, Some(line_of(&text, "preset = ")));
        assert_eq!(i.key, "connection[0].external.preset");
        assert!(
            i.message.contains("unknown preset `redmin`"),
            "{}",
            i.message
        );
        assert!(i.message.contains("redmine"), "{}", i.message);
    }

    #[test]
    fn a_missing_required_key_says_what_to_give() {
        let err = load(&config("", "")).unwrap_err();
        let i = &err.issues[0];
        assert_eq!(i.key, "connection[0].external.auth");
        assert_eq!(i.file, Path::new("/etc/tandem/tandem.toml"));
        assert!(i.message.contains("Redmine API key"), "{}", i.message);
    }

    #[test]
    fn problems_point_at_the_user_line_or_at_the_preset_they_come_from() {
        // A bad value the user wrote: the user's file and line.
        let text = config(
            "auth = { value = \"k\" }\n[connection.external.operations.list_changed]\nsince_format = \"%Q-bogus\"\n",
            "",
        );
        let err = load(&text).unwrap_err();
        let i = &err.issues[0];
        assert_eq!(i.file, Path::new("/etc/tandem/tandem.toml"), "{err}");
        assert_eq!(i.line, Some(line_of(&text, "since_format")), "{err}");

        // A key of the preset's that the user's choice makes wrong: the preset's line.
        let text = config("auth = { value = \"k\" }\nformat = \"seed\"\n", "");
        let err = load(&text).unwrap_err();
        let preset = Preset::find("redmine").unwrap();
        let ops = err
            .issues
            .iter()
            .find(|i| i.key == "connection[0].external.operations")
            .unwrap_or_else(|| panic!("{err}"));
        assert_eq!(ops.file, preset.file_label());
        assert_eq!(
            ops.line,
            Some(line_of(preset.text, "[external.operations.create]"))
        );
        assert!(
            ops.to_string()
                .starts_with("preset redmine (presets/redmine.toml):"),
            "{ops}"
        );
    }
}
