//! Reading the seed's `fieldMappings.csv`, optionally extended with
//! `direction,type,valueMap,default,conflict,expr` columns.

use super::error::{MappingError, MappingErrors};
use super::types::{FieldMapping, Location, Mapping};
use super::value_map::parse_value_map;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Jira,
    External,
    Direction,
    Type,
    ValueMap,
    Default,
    Conflict,
    Expr,
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
            "expr" | "expression" => Column::Expr,
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
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(line.as_bytes());
    let mut record = ::csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(_) => Ok(record.iter().map(|c| c.trim().to_string()).collect()),
        Err(e) => Err(format!("cannot read CSV: {e}")),
    }
}

/// Parses a `fieldMappings.csv`. `file` names it in errors. Does not
/// [`validate`](fn@super::validate).
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
             (optionally followed by direction,type,valueMap,default,conflict,expr)",
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
                         externalField, direction, type, valueMap, default, conflict, expr"
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
            Column::Expr if !cell.is_empty() => m.expr = Some(cell.to_string()),
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(m)
    } else {
        Err(errors)
    }
}
