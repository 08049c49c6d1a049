//! Reading `[[field]]` tables, from a mapping file or embedded in the application's config.

use super::error::{MappingError, MappingErrors};
use super::types::{FieldMapping, Location, Mapping};
use super::value_map::parse_value_map;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

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
    /// A one-line script expression applied to the value written to the target side.
    #[serde(default)]
    pub expr: Option<String>,
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
        // Likewise `expr = ""` means "no expression".
        m.expr = self
            .expr
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty());
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
    field: Vec<::toml::Spanned<FieldMappingSpec>>,
}

/// Parses a file of `[[field]]` tables. Does not [`validate`](fn@super::validate).
pub fn parse_toml(text: &str, file: &str) -> Result<Mapping, MappingErrors> {
    let parsed: TomlFile = ::toml::from_str(text).map_err(|e| {
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
