//! Atlassian's Jira OpenAPI spec as a validator, shared by the sandbox's contract test
//! (`crates/sandbox/tests/contract.rs`) and the Jira connector's request contract
//! (`crates/tandem/tests/connector_jira.rs`), which include this file with `#[path]`.
//!
//! The spec is vendored at `vendor/openapi/jira-cloud-platform.openapi.json` (where it came
//! from and how to refresh it: `vendor/openapi/README.md`).
//! OpenAPI 3.0 schemas are not quite JSON Schema, so they are translated first: `nullable: true`
//! becomes a `null` alternative, and the OpenAPI-only keywords (`example`, `xml`,
//! `discriminator`, `externalDocs`) are dropped. Formats are not asserted.

use std::path::PathBuf;
use std::sync::OnceLock;

use jsonschema::{Draft, Validator};
use serde_json::{Map, Value, json};

fn spec_path() -> PathBuf {
    // Both crates sit at `crates/<name>`, so the path is the same from either.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../vendor/openapi/jira-cloud-platform.openapi.json")
}

/// The parsed spec, read once.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = spec_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the Jira OpenAPI spec is missing at {} ({e}); it is vendored in the \
                 repository (vendor/openapi/README.md)",
                path.display()
            )
        });
        serde_json::from_str(&text).expect("the Jira OpenAPI spec is not valid JSON")
    })
}

/// Translate an OpenAPI 3.0 schema object into JSON Schema (draft 4 semantics, which OpenAPI
/// 3.0 is based on). Only schema positions are rewritten, so a property that happens to be
/// called `example` survives.
pub fn translate(schema: &Value) -> Value {
    let Some(obj) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "example" | "xml" | "discriminator" | "externalDocs" | "nullable" => {}
            "properties" | "patternProperties" | "definitions" => {
                let map = v
                    .as_object()
                    .map(|m| m.iter().map(|(n, s)| (n.clone(), translate(s))).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(map));
            }
            "items" | "additionalProperties" | "not" => {
                out.insert(k.clone(), translate(v));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let list = v
                    .as_array()
                    .map(|a| a.iter().map(translate).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Array(list));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if obj.get("nullable") == Some(&Value::Bool(true)) {
        match out.get("type").cloned() {
            Some(Value::String(t)) => {
                out.insert("type".into(), json!([t, "null"]));
                if let Some(Value::Array(e)) = out.get_mut("enum") {
                    e.push(Value::Null);
                }
            }
            _ => return json!({ "anyOf": [Value::Object(out), { "type": "null" }] }),
        }
    }
    Value::Object(out)
}

/// A validator for `schema` (which may `$ref` into `#/components/schemas`).
pub fn validator_for(schema: &Value) -> Validator {
    let components: Map<String, Value> = spec()["components"]["schemas"]
        .as_object()
        .expect("components.schemas")
        .iter()
        .map(|(k, v)| (k.clone(), translate(v)))
        .collect();
    // The schema sits under allOf so that a root `$ref` has no siblings to ignore.
    let doc = json!({
        "components": { "schemas": components },
        "allOf": [translate(schema)],
    });
    jsonschema::options()
        .with_draft(Draft::Draft4)
        .should_validate_formats(false)
        .build(&doc)
        .unwrap_or_else(|e| panic!("cannot compile schema {schema}: {e}"))
}

/// Every way `body` breaks `schema`, each with its location; empty when it conforms.
pub fn violations(schema: &Value, body: &Value) -> Vec<String> {
    validator_for(schema)
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect()
}
