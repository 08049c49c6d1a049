//! Field mappings: which Jira field pairs with which external field, in which direction, as
//! which kind of value, and how option values translate.
//!
//! Two file formats produce the same [`Mapping`]:
//! - the seed's `fieldMappings.csv` (header `jiraField,externalField`, `#` comments anywhere,
//!   blank lines ignored), optionally extended with `direction,type,valueMap,default,conflict`
//!   columns;
//! - TOML `[[field]]` tables (see [`FieldMappingSpec`]), which the application's config can also
//!   embed inline.
//!
//! Parsing only checks syntax and spelling; [`validate`] checks that a mapping can actually
//! work (no duplicate pairs, no ambiguous routing, sane value maps and defaults). Every error
//! carries the file and line it points at, because a person has to go and fix it.

use crate::ids::Side;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Where a mapping entry was written: a file and a 1-based line (0 = the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
}

impl Location {
    pub fn new(file: impl Into<String>, line: usize) -> Self {
        Location {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

/// The 1-based line holding byte `offset` of `text` (for turning TOML spans into lines).
pub fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    // Count on bytes: a span may point inside a multi-byte character, and '\n' is one byte.
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Which way values flow for one mapping entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    /// External → Jira only.
    ToJira,
    /// Jira → external only.
    ToExternal,
}

impl Direction {
    pub const ALL: [Direction; 3] = [Direction::Both, Direction::ToJira, Direction::ToExternal];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Both => "both",
            Direction::ToJira => "to_jira",
            Direction::ToExternal => "to_external",
        }
    }

    /// True when values flow *into* side `to`.
    pub fn writes_to(self, to: Side) -> bool {
        match self {
            Direction::Both => true,
            Direction::ToJira => to == Side::Jira,
            Direction::ToExternal => to == Side::External,
        }
    }
}

/// A field's value kind; decides parsing, comparison and conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    #[default]
    Text,
    #[serde(rename = "richtext")]
    RichText,
    Number,
    Date,
    #[serde(rename = "datetime")]
    DateTime,
    Option,
    OptionList,
    Labels,
    User,
}

impl FieldType {
    pub const ALL: [FieldType; 9] = [
        FieldType::Text,
        FieldType::RichText,
        FieldType::Number,
        FieldType::Date,
        FieldType::DateTime,
        FieldType::Option,
        FieldType::OptionList,
        FieldType::Labels,
        FieldType::User,
    ];

    /// Spelled as in mapping files and as [`crate::FieldValue::kind`].
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::RichText => "richtext",
            FieldType::Number => "number",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Option => "option",
            FieldType::OptionList => "option_list",
            FieldType::Labels => "labels",
            FieldType::User => "user",
        }
    }

    /// Kinds whose values are names that a value map can translate.
    pub fn takes_value_map(self) -> bool {
        matches!(
            self,
            FieldType::Text
                | FieldType::Number
                | FieldType::Option
                | FieldType::OptionList
                | FieldType::Labels
                | FieldType::User
        )
    }
}

/// Who wins when both sides changed a field since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The edit with the later source time wins.
    #[default]
    LaterWins,
    JiraWins,
    ExternalWins,
}

impl ConflictPolicy {
    pub const ALL: [ConflictPolicy; 3] = [
        ConflictPolicy::LaterWins,
        ConflictPolicy::JiraWins,
        ConflictPolicy::ExternalWins,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::LaterWins => "later_wins",
            ConflictPolicy::JiraWins => "jira_wins",
            ConflictPolicy::ExternalWins => "external_wins",
        }
    }
}

macro_rules! keyword_enum {
    ($ty:ty, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = String;
            /// Case-insensitive; `-` and spaces are read as `_` so `to-jira` works too.
            fn from_str(s: &str) -> Result<Self, String> {
                let norm: String = s
                    .trim()
                    .chars()
                    .map(|c| match c {
                        '-' | ' ' => '_',
                        c => c.to_ascii_lowercase(),
                    })
                    .collect();
                <$ty>::ALL
                    .into_iter()
                    .find(|v| v.as_str() == norm)
                    .ok_or_else(|| {
                        let allowed: Vec<&str> = <$ty>::ALL.iter().map(|v| v.as_str()).collect();
                        format!(
                            "unknown {} `{}`: expected one of {}",
                            $what,
                            s.trim(),
                            allowed.join(", ")
                        )
                    })
            }
        }
    };
}

keyword_enum!(Direction, "direction");
keyword_enum!(FieldType, "type");
keyword_enum!(ConflictPolicy, "conflict policy");

/// One mapped pair of fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldMapping {
    /// Jira field id (`summary`, `customfield_10050`) or display name, resolved by the app.
    pub jira_field: String,
    /// The external system's field id.
    pub external_field: String,
    pub direction: Direction,
    pub field_type: FieldType,
    /// `(jira value, external value)` pairs, in file order.
    pub value_map: Vec<(String, String)>,
    /// Used (in Jira terms) when a value is empty or has no value-map entry.
    pub default: Option<String>,
    /// Overrides the connection's conflict policy for this field.
    pub conflict: Option<ConflictPolicy>,
    /// For Jira's status: the fields a transition's screen asks for, by the status the
    /// transition leads to (`"Done" → {"resolution": {"name": "Done"}}`), sent as the
    /// transition request's `fields`, in Jira's JSON.
    #[serde(default)]
    pub transition_fields: BTreeMap<String, serde_json::Value>,
    pub location: Location,
}

impl FieldMapping {
    /// A plain text mapping in both directions; handy in code and tests.
    pub fn new(jira_field: impl Into<String>, external_field: impl Into<String>) -> Self {
        FieldMapping {
            jira_field: jira_field.into(),
            external_field: external_field.into(),
            direction: Direction::Both,
            field_type: FieldType::Text,
            value_map: Vec::new(),
            default: None,
            conflict: None,
            transition_fields: BTreeMap::new(),
            location: Location::default(),
        }
    }

    /// The shadow key of this entry.
    pub fn key(&self) -> String {
        format!("{}|{}", self.jira_field, self.external_field)
    }

    /// True when a change on side `from` propagates to the other side.
    pub fn flows(&self, from: Side) -> bool {
        self.direction.writes_to(from.other())
    }

    /// This entry's field id on `side`.
    pub fn field_on(&self, side: Side) -> &str {
        match side {
            Side::Jira => &self.jira_field,
            Side::External => &self.external_field,
        }
    }

    /// The external value a Jira value maps to, if the value map names it.
    pub fn external_value_for(&self, jira_value: &str) -> Option<&str> {
        self.value_map
            .iter()
            .find(|(j, _)| j == jira_value)
            .map(|(_, e)| e.as_str())
    }

    /// The Jira value an external value maps to, if the value map names it.
    pub fn jira_value_for(&self, external_value: &str) -> Option<&str> {
        self.value_map
            .iter()
            .find(|(_, e)| e == external_value)
            .map(|(j, _)| j.as_str())
    }
}

/// All entries of one connection's mapping, in file order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Mapping {
    pub fields: Vec<FieldMapping>,
}

impl Mapping {
    /// Entries whose field on `side` is `field_id`.
    pub fn by_field<'a>(
        &'a self,
        side: Side,
        field_id: &'a str,
    ) -> impl Iterator<Item = &'a FieldMapping> + 'a {
        self.fields
            .iter()
            .filter(move |m| m.field_on(side) == field_id)
    }

    /// The distinct field ids used on `side`, in file order.
    pub fn fields_on(&self, side: Side) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for m in &self.fields {
            let f = m.field_on(side);
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }

    /// The entry with shadow key `key`.
    pub fn by_key(&self, key: &str) -> Option<&FieldMapping> {
        self.fields.iter().find(|m| m.key() == key)
    }
}

/// One problem in a mapping, at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    pub location: Location,
    pub message: String,
}

impl MappingError {
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        MappingError {
            location,
            message: message.into(),
        }
    }
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for MappingError {}

/// All problems found in a mapping; printed one `file:line: message` per line.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct MappingErrors {
    pub errors: Vec<MappingError>,
}

impl fmt::Display for MappingErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<MappingError> for MappingErrors {
    fn from(e: MappingError) -> Self {
        MappingErrors { errors: vec![e] }
    }
}

impl From<Vec<MappingError>> for MappingErrors {
    fn from(errors: Vec<MappingError>) -> Self {
        MappingErrors { errors }
    }
}

impl MappingErrors {
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &MappingError> {
        self.errors.iter()
    }
}

// ---------------------------------------------------------------------------------------------
// Value maps: `High=3;Medium=2`
// ---------------------------------------------------------------------------------------------

/// Parses `High=3;Medium=2` (Jira value on the left). `\;`, `\=`, `\#` and `\\` escape.
pub fn parse_value_map(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    // One pass: characters go to the key until the first unescaped `=`, then to the value,
    // until an unescaped `;` finishes the entry.
    let mut key = String::new();
    let mut val = String::new();
    let mut in_val = false;
    let mut chars = text.chars();
    let mut finish = |key: &mut String, val: &mut String, in_val: &mut bool| {
        let k = key.trim().to_string();
        let v = val.trim().to_string();
        let had_eq = *in_val;
        key.clear();
        val.clear();
        *in_val = false;
        if k.is_empty() && v.is_empty() && !had_eq {
            return Ok(()); // empty entry, e.g. a trailing `;`
        }
        if !had_eq {
            return Err(format!(
                "value map entry `{k}` has no `=`: write `jira value=external value`"
            ));
        }
        if k.is_empty() {
            return Err(format!("value map entry `={v}` has an empty Jira value"));
        }
        out.push((k, v));
        Ok(())
    };
    while let Some(c) = chars.next() {
        let target = if in_val { &mut val } else { &mut key };
        match c {
            '\\' => match chars.next() {
                Some(n) => target.push(n),
                None => target.push('\\'),
            },
            ';' => finish(&mut key, &mut val, &mut in_val)?,
            '=' if !in_val => in_val = true,
            c => target.push(c),
        }
    }
    finish(&mut key, &mut val, &mut in_val)?;
    Ok(out)
}

/// Writes a value map back in the `High=3;Medium=2` form, escaping as needed.
pub fn format_value_map(map: &[(String, String)]) -> String {
    fn esc(s: &str) -> String {
        let mut o = String::with_capacity(s.len());
        for c in s.chars() {
            if matches!(c, ';' | '=' | '\\' | '#') {
                o.push('\\');
            }
            o.push(c);
        }
        o
    }
    map.iter()
        .map(|(j, e)| format!("{}={}", esc(j), esc(e)))
        .collect::<Vec<_>>()
        .join(";")
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Jira,
    External,
    Direction,
    Type,
    ValueMap,
    Default,
    Conflict,
}

impl Column {
    fn from_header(name: &str) -> Option<Column> {
        let norm: String = name
            .trim()
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Some(match norm.as_str() {
            "jirafield" | "jira" => Column::Jira,
            "externalfield" | "external" => Column::External,
            "direction" => Column::Direction,
            "type" => Column::Type,
            "valuemap" | "values" => Column::ValueMap,
            "default" => Column::Default,
            "conflict" => Column::Conflict,
            _ => return None,
        })
    }
}

/// Removes a `#` comment from one line, ignoring `#` inside double quotes or after `\`.
fn strip_comment(line: &str) -> Result<&str, String> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if !in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '#' if !in_quotes => return Ok(&line[..i]),
            _ => {}
        }
    }
    if in_quotes {
        return Err(
            "unterminated quoted cell: a `\"` opens a cell that never closes \
                    (cells cannot span lines)"
                .to_string(),
        );
    }
    Ok(line)
}

/// Splits one (comment-free) line into trimmed cells with the `csv` crate.
fn split_cells(line: &str) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(_) => Ok(record.iter().map(|c| c.trim().to_string()).collect()),
        Err(e) => Err(format!("cannot read CSV: {e}")),
    }
}

/// Parses a `fieldMappings.csv`. `file` names it in errors. Does not [`validate`].
pub fn parse_csv(text: &str, file: &str) -> Result<Mapping, MappingErrors> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut errors = Vec::new();
    let mut header: Option<Vec<Column>> = None;
    let mut fields = Vec::new();

    // `lines()` splits on '\n' and drops a trailing '\r', so indices are true file lines.
    for (idx, raw) in text.lines().enumerate() {
        let loc = Location::new(file, idx + 1);
        let line = match strip_comment(raw) {
            Ok(l) => l,
            Err(msg) => {
                errors.push(MappingError::new(loc, msg));
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let cells = match split_cells(line) {
            Ok(c) => c,
            Err(msg) => {
                errors.push(MappingError::new(loc, msg));
                continue;
            }
        };
        let Some(columns) = &header else {
            match parse_header(&cells, &loc) {
                Ok(cols) => header = Some(cols),
                // Without a usable header no row can be read; report just that.
                Err(e) => return Err(e.into()),
            }
            continue;
        };
        match parse_row(columns, &cells, loc) {
            Ok(m) => fields.push(m),
            Err(mut es) => errors.append(&mut es),
        }
    }
    if header.is_none() {
        errors.push(MappingError::new(
            Location::new(file, 0),
            "no header line: the first line must be `jiraField,externalField` \
             (optionally followed by direction,type,valueMap,default,conflict)",
        ));
    }
    if errors.is_empty() {
        Ok(Mapping { fields })
    } else {
        Err(errors.into())
    }
}

fn parse_header(cells: &[String], loc: &Location) -> Result<Vec<Column>, MappingError> {
    let parsed: Vec<Option<Column>> = cells.iter().map(|c| Column::from_header(c)).collect();
    // A missing jiraField/externalField usually means the header line itself is missing, so
    // say that before complaining about individual names.
    if !parsed.contains(&Some(Column::Jira)) || !parsed.contains(&Some(Column::External)) {
        return Err(MappingError::new(
            loc.clone(),
            format!(
                "the header `{}` must name the columns jiraField and externalField",
                cells.join(",")
            ),
        ));
    }
    let mut cols = Vec::with_capacity(cells.len());
    for (cell, col) in cells.iter().zip(parsed) {
        match col {
            Some(c) if cols.contains(&c) => {
                return Err(MappingError::new(
                    loc.clone(),
                    format!("column `{cell}` appears twice in the header"),
                ));
            }
            Some(c) => cols.push(c),
            None => {
                return Err(MappingError::new(
                    loc.clone(),
                    format!(
                        "unknown column `{cell}` in the header: expected jiraField, \
                         externalField, direction, type, valueMap, default, conflict"
                    ),
                ));
            }
        }
    }
    Ok(cols)
}

fn parse_row(
    columns: &[Column],
    cells: &[String],
    loc: Location,
) -> Result<FieldMapping, Vec<MappingError>> {
    let mut errors = Vec::new();
    if cells.len() > columns.len() {
        errors.push(MappingError::new(
            loc.clone(),
            format!(
                "{} cells but the header names {} columns (quote a cell that contains a comma)",
                cells.len(),
                columns.len()
            ),
        ));
        return Err(errors);
    }
    let mut m = FieldMapping::new("", "");
    m.location = loc.clone();
    for (col, cell) in columns.iter().zip(cells) {
        let cell = cell.as_str();
        match col {
            Column::Jira => m.jira_field = cell.to_string(),
            Column::External => m.external_field = cell.to_string(),
            Column::Direction if !cell.is_empty() => match cell.parse() {
                Ok(d) => m.direction = d,
                Err(e) => errors.push(MappingError::new(loc.clone(), e)),
            },
            Column::Type if !cell.is_empty() => match cell.parse() {
                Ok(t) => m.field_type = t,
                Err(e) => errors.push(MappingError::new(loc.clone(), e)),
            },
            Column::Conflict if !cell.is_empty() => match cell.parse() {
                Ok(c) => m.conflict = Some(c),
                Err(e) => errors.push(MappingError::new(loc.clone(), e)),
            },
            Column::ValueMap => match parse_value_map(cell) {
                Ok(v) => m.value_map = v,
                Err(e) => errors.push(MappingError::new(loc.clone(), e)),
            },
            Column::Default if !cell.is_empty() => m.default = Some(cell.to_string()),
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(m)
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------------------------
// TOML
// ---------------------------------------------------------------------------------------------

/// One `[[field]]` table as written in TOML (also embeddable as `[[connection.field]]` in the
/// app's config). Enumerations stay strings here so that a bad one is reported with the list
/// of allowed values, next to the other problems of the same entry.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMappingSpec {
    #[serde(deserialize_with = "de_scalar")]
    pub jira: String,
    /// The external field id; `external = 123456789` (a number) is accepted too.
    #[serde(deserialize_with = "de_scalar")]
    pub external: String,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default, rename = "type")]
    pub field_type: Option<String>,
    /// `{ "High" = "3" }` (Jira → external, in file order) or the CSV form `"High=3;Low=1"`.
    #[serde(default, deserialize_with = "de_value_map")]
    pub values: Vec<(String, String)>,
    #[serde(default, deserialize_with = "de_opt_scalar")]
    pub default: Option<String>,
    #[serde(default)]
    pub conflict: Option<String>,
    /// Jira status only: `{ "Done" = { resolution = { name = "Done" } } }`, the fields sent
    /// with the transition into each named status.
    #[serde(default)]
    pub transition_fields: BTreeMap<String, serde_json::Value>,
}

impl FieldMappingSpec {
    /// Checks the spelling of direction, type and conflict and builds the entry.
    pub fn into_field_mapping(self, location: Location) -> Result<FieldMapping, Vec<MappingError>> {
        let mut errors = Vec::new();
        let mut m = FieldMapping::new(self.jira.trim(), self.external.trim());
        m.location = location.clone();
        m.value_map = self.values;
        for (status, fields) in self.transition_fields {
            if fields.is_object() {
                m.transition_fields
                    .insert(status.trim().to_string(), fields);
            } else {
                errors.push(MappingError::new(
                    location.clone(),
                    format!(
                        "transition_fields.{status}: expected a table of Jira fields, e.g. \
                         {{ resolution = {{ name = \"Done\" }} }}"
                    ),
                ));
            }
        }
        // `default = ""` means "no default", as an empty CSV cell does.
        m.default = self.default.filter(|d| !d.trim().is_empty());
        if let Some(d) = &self.direction {
            match d.parse() {
                Ok(d) => m.direction = d,
                Err(e) => errors.push(MappingError::new(location.clone(), e)),
            }
        }
        if let Some(t) = &self.field_type {
            match t.parse() {
                Ok(t) => m.field_type = t,
                Err(e) => errors.push(MappingError::new(location.clone(), e)),
            }
        }
        if let Some(c) = &self.conflict {
            match c.parse() {
                Ok(c) => m.conflict = Some(c),
                Err(e) => errors.push(MappingError::new(location.clone(), e)),
            }
        }
        if errors.is_empty() {
            Ok(m)
        } else {
            Err(errors)
        }
    }
}

/// Builds a mapping from specs that the caller located (e.g. `toml::Spanned` + [`line_at`]).
pub fn from_specs(
    specs: impl IntoIterator<Item = (FieldMappingSpec, Location)>,
) -> Result<Mapping, MappingErrors> {
    let mut errors = Vec::new();
    let mut fields = Vec::new();
    for (spec, loc) in specs {
        match spec.into_field_mapping(loc) {
            Ok(m) => fields.push(m),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(Mapping { fields })
    } else {
        Err(errors.into())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    field: Vec<toml::Spanned<FieldMappingSpec>>,
}

/// Parses a file of `[[field]]` tables. Does not [`validate`].
pub fn parse_toml(text: &str, file: &str) -> Result<Mapping, MappingErrors> {
    let parsed: TomlFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_at(text, s.start)).unwrap_or(0);
        MappingError::new(Location::new(file, line), e.message().trim().to_string())
    })?;
    from_specs(parsed.field.into_iter().map(|s| {
        let line = line_at(text, s.span().start);
        (s.into_inner(), Location::new(file, line))
    }))
}

/// Accepts a string, integer, float or boolean and keeps its text.
struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor).map(Scalar)
    }
}

fn de_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

fn de_opt_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(ScalarVisitor).map(Some)
}

fn de_value_map<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table of Jira value = external value, or a string `High=3;Low=1`")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse_value_map(v).map_err(E::custom)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, Scalar>()? {
                out.push((k, v.0));
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Checks that a mapping can work: no empty names, no duplicate pairs, no ambiguous routing,
/// value maps without duplicates, defaults of the right type. Reports every problem found.
pub fn validate(mapping: &Mapping) -> Result<(), MappingErrors> {
    let mut errors = Vec::new();

    for m in &mapping.fields {
        let loc = &m.location;
        if m.jira_field.trim().is_empty() {
            errors.push(MappingError::new(
                loc.clone(),
                "the Jira field name is empty",
            ));
        }
        if m.external_field.trim().is_empty() {
            errors.push(MappingError::new(
                loc.clone(),
                "the external field name is empty",
            ));
        }
        check_value_map(m, &mut errors);
        if let Some(d) = &m.default
            && let Err(e) = crate::convert::from_text(d, m.field_type)
        {
            errors.push(MappingError::new(
                loc.clone(),
                format!(
                    "default `{d}` of {} is not a valid {} value: {}",
                    m.jira_field,
                    m.field_type,
                    e.reason()
                ),
            ));
        }
    }

    // Duplicate pairs: reported at the later line, naming the first.
    let mut seen: BTreeMap<(&str, &str), &FieldMapping> = BTreeMap::new();
    for m in &mapping.fields {
        let pair = (m.jira_field.as_str(), m.external_field.as_str());
        if let Some(first) = seen.get(&pair) {
            errors.push(MappingError::new(
                m.location.clone(),
                format!(
                    "duplicate mapping {} ↔ {}: already mapped at {}",
                    m.jira_field, m.external_field, first.location
                ),
            ));
        } else {
            seen.insert(pair, m);
        }
    }

    check_routing(mapping, Side::External, &mut errors);
    check_routing(mapping, Side::Jira, &mut errors);

    errors.sort_by(|a, b| a.location.cmp(&b.location));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.into())
    }
}

fn check_value_map(m: &FieldMapping, errors: &mut Vec<MappingError>) {
    if m.value_map.is_empty() {
        return;
    }
    if !m.field_type.takes_value_map() {
        errors.push(MappingError::new(
            m.location.clone(),
            format!(
                "a value map does not apply to {} fields ({}); use it with text, number, \
                 option, option_list, labels or user",
                m.field_type, m.jira_field
            ),
        ));
        return;
    }
    for (i, (j, e)) in m.value_map.iter().enumerate() {
        if m.value_map[..i].iter().any(|(j2, _)| j2 == j) {
            errors.push(MappingError::new(
                m.location.clone(),
                format!("value map of {} names Jira value `{j}` twice", m.jira_field),
            ));
        }
        // Two Jira values for one external value only matter when values come back to Jira:
        // the way back would be ambiguous.
        if m.direction.writes_to(Side::Jira)
            && let Some((j2, _)) = m.value_map[..i].iter().find(|(_, e2)| e2 == e)
        {
            errors.push(MappingError::new(
                m.location.clone(),
                format!(
                    "value map of {} maps both `{j2}` and `{j}` to external value `{e}`, so \
                     `{e}` coming back could not be mapped; make the external values distinct \
                     or set direction = to_external",
                    m.jira_field
                ),
            ));
        }
    }
}

/// A field on side `hub` that several fields of the other side are routed to/from in the
/// direction that writes to the other side (for `hub` = External: the `to_jira` direction).
fn check_routing(mapping: &Mapping, hub: Side, errors: &mut Vec<MappingError>) {
    let spoke = hub.other();
    let mut groups: BTreeMap<&str, Vec<&FieldMapping>> = BTreeMap::new();
    for m in &mapping.fields {
        if m.direction.writes_to(spoke) {
            groups.entry(m.field_on(hub)).or_default().push(m);
        }
    }
    for (hub_field, entries) in groups {
        // Distinct spoke fields, keeping the first entry of each.
        let mut distinct: Vec<&FieldMapping> = Vec::new();
        for m in entries {
            if !distinct
                .iter()
                .any(|d| d.field_on(spoke) == m.field_on(spoke))
            {
                distinct.push(m);
            }
        }
        if distinct.len() < 2 {
            continue;
        }
        let list = distinct
            .iter()
            .map(|m| format!("{} at line {}", m.field_on(spoke), m.location.line))
            .collect::<Vec<_>>()
            .join(", ");
        let message = match hub {
            Side::External => format!(
                "external field {hub_field} is fed by several Jira fields in the to_jira \
                 direction ({list}): an incoming value could not be routed; give each Jira \
                 field its own external field, or set direction = to_external on all but one"
            ),
            Side::Jira => format!(
                "Jira field {hub_field} is fed by several external fields in the to_external \
                 direction ({list}): an outgoing value could not be routed; give each external \
                 field its own Jira field, or set direction = to_jira on all but one"
            ),
        };
        errors.push(MappingError::new(distinct[1].location.clone(), message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's file exactly as the guide prints it.
    const SEED: &str = "jiraField,externalField
summary,123456789 # Maps Jira's summary field to external ID 123456789
description,123456789 # Maps Jira's description field to same external ID
dueDate,123456789 # Maps Jira's dueDate field to same external ID
customfield_123456,123456789 # Maps a Jira custom field to same external ID
";

    #[test]
    fn seed_file_parses() {
        let m = parse_csv(SEED, "fieldMappings.csv").unwrap();
        let pairs: Vec<(&str, &str)> = m
            .fields
            .iter()
            .map(|f| (f.jira_field.as_str(), f.external_field.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("summary", "123456789"),
                ("description", "123456789"),
                ("dueDate", "123456789"),
                ("customfield_123456", "123456789")
            ]
        );
        assert_eq!(m.fields[0].location, Location::new("fieldMappings.csv", 2));
        assert_eq!(m.fields[3].location.line, 5);
        assert!(
            m.fields
                .iter()
                .all(|f| f.direction == Direction::Both && f.field_type == FieldType::Text)
        );
        assert_eq!(m.fields[0].key(), "summary|123456789");
    }

    #[test]
    fn seed_file_is_refused_by_validate_with_file_and_line() {
        let m = parse_csv(SEED, "fieldMappings.seed.csv").unwrap();
        let err = validate(&m).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "fieldMappings.seed.csv:3: external field 123456789 is fed by several Jira \
                 fields in the to_jira direction (summary at line 2, description at line 3, \
                 dueDate at line 4, customfield_123456 at line 5): an incoming value could not \
                 be routed"
            ),
            "{text}"
        );
        // The Jira → external direction is fine: each Jira field goes to one place.
        assert_eq!(err.errors.len(), 1, "{text}");
    }

    #[test]
    fn seed_fixed_by_directions_validates() {
        let text = "jiraField,externalField,direction
summary,123456789
description,123456789,to_external
dueDate,123456789,to-external
";
        let m = parse_csv(text, "f.csv").unwrap();
        validate(&m).unwrap();
        assert!(m.fields[0].flows(Side::External));
        assert!(!m.fields[1].flows(Side::External));
        assert!(m.fields[1].flows(Side::Jira));
    }

    #[test]
    fn symmetric_routing_error_for_a_jira_field() {
        let text = "jiraField,externalField\nsummary,1\nsummary,2\n";
        let err = validate(&parse_csv(text, "f.csv").unwrap()).unwrap_err();
        assert_eq!(err.errors.len(), 1);
        assert!(err.errors[0].message.starts_with(
            "Jira field summary is fed by several external fields in the to_external direction (1 at line 2, 2 at line 3)"
        ), "{err}");
        assert_eq!(err.errors[0].location.line, 3);
    }

    #[test]
    fn extended_columns_comments_quotes_and_crlf() {
        let text = "\u{feff}# leading comment\r\n\r\nJiraField , ExternalField,Direction,Type,valueMap,Default,Conflict\r\n\
priority,5,both,option,High=3;Medium=2;Low=1,Medium,jira_wins # trailing\r\n\
labels,tags,to_external,labels\r\n\
customfield_1,\"7\",to_jira,option,\"A=x;B\\=y=z\"\r\n\
status,9,,,,,\r\n";
        let m = parse_csv(text, "f.csv").unwrap();
        assert_eq!(m.fields.len(), 4);
        let p = &m.fields[0];
        assert_eq!(p.location.line, 4);
        assert_eq!(p.field_type, FieldType::Option);
        assert_eq!(
            p.value_map,
            vec![
                ("High".into(), "3".into()),
                ("Medium".into(), "2".into()),
                ("Low".into(), "1".into())
            ]
        );
        assert_eq!(p.default.as_deref(), Some("Medium"));
        assert_eq!(p.conflict, Some(ConflictPolicy::JiraWins));
        assert_eq!(p.external_value_for("High"), Some("3"));
        assert_eq!(p.jira_value_for("1"), Some("Low"));
        assert_eq!(m.fields[1].direction, Direction::ToExternal);
        assert_eq!(
            m.fields[2].value_map,
            vec![("A".into(), "x".into()), ("B=y".into(), "z".into())]
        );
        assert_eq!(m.fields[3].direction, Direction::Both);
        validate(&m).unwrap();
        assert_eq!(m.by_field(Side::External, "5").count(), 1);
        assert_eq!(m.fields_on(Side::Jira)[0], "priority");
    }

    #[test]
    fn bad_values_name_the_value_and_the_allowed_ones() {
        let text = "jiraField,externalField,direction,type,conflict
summary,1,sideways,text
description,2,both,blob,first_wins
";
        let err = parse_csv(text, "m.csv").unwrap_err();
        let lines: Vec<String> = err.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            [
                "m.csv:2: unknown direction `sideways`: expected one of both, to_jira, to_external",
                "m.csv:3: unknown type `blob`: expected one of text, richtext, number, date, datetime, option, option_list, labels, user",
                "m.csv:3: unknown conflict policy `first_wins`: expected one of later_wins, jira_wins, external_wins",
            ]
        );
        assert_eq!(err.to_string(), lines.join("\n"));
    }

    #[test]
    fn header_problems() {
        assert!(
            parse_csv("", "e.csv")
                .unwrap_err()
                .to_string()
                .starts_with("e.csv: no header line")
        );
        assert!(
            parse_csv("# only a comment\nsummary,1\n", "e.csv")
                .unwrap_err()
                .to_string()
                .starts_with("e.csv:2: the header `summary,1` must name")
        );
        assert!(
            parse_csv("jiraField,externalField,colour\n", "e.csv")
                .unwrap_err()
                .to_string()
                .contains("unknown column `colour`")
        );
        let err = parse_csv("jiraField,externalField\na,b,c\n\"open,x\n", "e.csv").unwrap_err();
        assert_eq!(err.errors.len(), 2);
        assert_eq!(err.errors[0].location.line, 2);
        assert!(err.errors[1].message.contains("unterminated"));
    }

    #[test]
    fn validate_finds_duplicates_empty_names_value_map_and_default_problems() {
        let text = "jiraField,externalField,direction,type,valueMap,default
summary,1
summary,1
,2
priority,3,both,option,High=1;Low=1;High=2
duedate,4,both,date,,tomorrow
description,5,both,richtext,a=b
";
        let m = parse_csv(text, "v.csv").unwrap();
        let err = validate(&m).unwrap_err();
        let msgs: Vec<String> = err.errors.iter().map(|e| e.to_string()).collect();
        let all = msgs.join("\n");
        assert!(
            all.contains("v.csv:3: duplicate mapping summary ↔ 1: already mapped at v.csv:2"),
            "{all}"
        );
        assert!(
            all.contains("v.csv:4: the Jira field name is empty"),
            "{all}"
        );
        assert!(all.contains("names Jira value `High` twice"), "{all}");
        assert!(
            all.contains("maps both `High` and `Low` to external value `1`"),
            "{all}"
        );
        assert!(
            all.contains("v.csv:6: default `tomorrow` of duedate is not a valid date value"),
            "{all}"
        );
        assert!(
            all.contains("v.csv:7: a value map does not apply to richtext"),
            "{all}"
        );
    }

    #[test]
    fn value_map_syntax() {
        assert_eq!(parse_value_map("").unwrap(), vec![]);
        assert_eq!(
            parse_value_map(" a = 1 ; b=2;").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(
            parse_value_map(r"x\;y=1\=2;z=").unwrap(),
            vec![("x;y".into(), "1=2".into()), ("z".into(), "".into())]
        );
        assert!(parse_value_map("novalue").unwrap_err().contains("no `=`"));
        assert!(
            parse_value_map("=3")
                .unwrap_err()
                .contains("empty Jira value")
        );
        let map = vec![("a;b".to_string(), "c=d\\".to_string())];
        assert_eq!(parse_value_map(&format_value_map(&map)).unwrap(), map);
    }

    #[test]
    fn toml_tables() {
        let text = r#"
# priorities
[[field]]
jira = "priority"
external = 5
type = "option"
values = { "High" = "3", "Medium" = 2, Low = "1" }
default = "Medium"
conflict = "external_wins"

[[field]]
jira = "summary"
external = "1"
direction = "to_jira"
"#;
        let m = parse_toml(text, "map.toml").unwrap();
        assert_eq!(m.fields.len(), 2);
        let p = &m.fields[0];
        assert_eq!(p.location, Location::new("map.toml", 3));
        assert_eq!(p.external_field, "5");
        assert_eq!(p.jira_value_for("2"), Some("Medium"));
        assert_eq!(p.value_map.len(), 3);
        assert_eq!(p.conflict, Some(ConflictPolicy::ExternalWins));
        assert_eq!(m.fields[1].location.line, 11);
        assert_eq!(m.fields[1].direction, Direction::ToJira);
        validate(&m).unwrap();
    }

    #[test]
    fn toml_errors_have_lines() {
        let text = "[[field]]\njira = \"a\"\nexternal = \"b\"\ncolour = \"red\"\n";
        let err = parse_toml(text, "m.toml").unwrap_err();
        assert_eq!(err.errors.len(), 1);
        assert_eq!(err.errors[0].location.line, 4, "{err}");
        assert!(err.errors[0].message.contains("colour"), "{err}");

        let text = "[[field]]\njira = \"a\"\nexternal = \"b\"\ntype = \"nope\"\n";
        let err = parse_toml(text, "m.toml").unwrap_err();
        assert_eq!(err.to_string().lines().count(), 1);
        assert!(
            err.to_string().starts_with("m.toml:1: unknown type `nope`"),
            "{err}"
        );

        let err = parse_toml("[[field]]\njira = \"a\"\n", "m.toml").unwrap_err();
        assert!(err.to_string().contains("external"), "{err}");
        assert!(parse_toml("[[field]\n", "m.toml").is_err());
        assert_eq!(parse_toml("", "m.toml").unwrap().fields.len(), 0);
    }

    #[test]
    fn line_at_counts_lines() {
        assert_eq!(line_at("a\nb\nc", 0), 1);
        assert_eq!(line_at("a\nb\nc", 2), 2);
        assert_eq!(line_at("a\nb\nc", 99), 3);
    }
}
