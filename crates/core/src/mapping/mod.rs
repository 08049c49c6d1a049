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
//! Parsing only checks syntax and spelling; [`validate`](fn@validate) checks that a mapping can
//! actually work (no duplicate pairs, no ambiguous routing, sane value maps and defaults). Every
//! error carries the file and line it points at, because a person has to go and fix it.
//!
//! One file a concern: `types` (what a mapping is), `error` (its problems, by file and line),
//! `value_map` (the `High=3;Medium=2` syntax both formats share), `csv` and `toml` (the two
//! readers) and `validate` (whether a parsed mapping can work). Everything public is
//! re-exported here, so callers name it `mapping::X` whichever file holds it. A field's kind,
//! [`FieldType`], belongs to [`crate::kind`] and is re-exported here too.

mod csv;
mod error;
mod toml;
mod types;
mod validate;
mod value_map;

pub use self::csv::parse_csv;
pub use self::error::{MappingError, MappingErrors};
pub use self::toml::{FieldMappingSpec, from_specs, line_at, parse_toml};
pub use self::types::{ConflictPolicy, Direction, FieldMapping, Location, Mapping};
pub use self::validate::validate;
pub use self::value_map::{format_value_map, parse_value_map};
pub use crate::kind::FieldType;

#[cfg(test)]
mod tests;
