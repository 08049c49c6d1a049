//! `tandem script test`: runs a connection's rules script on one event from a file, as the
//! worker would for an item never synced before, and prints what it decided and what would be
//! written. Nothing else is touched: no store, no network.
//!
//! The event file is JSON:
//!
//! ```json
//! { "side": "external", "id": "42", "kind": "updated",
//!   "fields": { "1001": "Printer jammed", "1003": "2025-01-31" } }
//! ```
//!
//! `side` (`"jira"` or `"external"`) is where the change happened and `fields` the item's
//! fields keyed by that side's field ids, each read as the mapping's type for that field
//! (text otherwise), as a REST webhook's values are. `id` (default `"test"`), `key` and
//! `kind` (`"updated"` by default, `"created"` to see a new twin's fields with `on_create`)
//! are optional.

use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use tandem::connector::rest::fields::{decode_json, encode_json};
use tandem_core::mapping::FieldType;
use tandem_core::plan::{PlanInput, plan_create, plan_update};
use tandem_core::{ChangeKind, EventOrigin, FieldValue, Shadow, Side};
use tandem_script::{EventView, FilterDecision, ItemView, capture_log};

/// The event file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    side: Side,
    #[serde(default = "default_id")]
    id: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    kind: Kind,
    #[serde(default)]
    fields: BTreeMap<String, serde_json::Value>,
}

fn default_id() -> String {
    "test".to_string()
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Created,
    #[default]
    Updated,
}

/// Runs the script of `connection` in the config at `config_path` on the event in
/// `event_path`, printing the decision, the fields that would be written and the script's
/// `print`/`debug` lines.
pub fn run(
    config: &tandem::config::Config,
    connection: &str,
    event_path: &Path,
) -> anyhow::Result<ExitCode> {
    let Some(conn) = config.connections.iter().find(|c| c.name == connection) else {
        let names: Vec<&str> = config.connections.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "no connection `{connection}` in the config (it has: {})",
            names.join(", ")
        );
    };
    let script = conn.script.as_ref();
    if script.is_none() && conn.exprs.is_empty() {
        bail!(
            "connection `{connection}` has no script (add `script = \"rules.rhai\"`) and no \
             mapping expressions (`expr`)"
        );
    }
    let text = std::fs::read_to_string(event_path)
        .with_context(|| format!("cannot read {}", event_path.display()))?;
    let file: EventFile = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a valid event file", event_path.display()))?;
    let source = file.side;
    let target = source.other();

    let mut fields = BTreeMap::new();
    for (id, raw) in &file.fields {
        let ty = conn
            .fields
            .by_field(source, id)
            .next()
            .map_or(FieldType::Text, |m| m.field_type);
        let value = decode_json(raw, ty)
            .map_err(|e| anyhow::anyhow!("{}: field `{id}`: {e}", event_path.display()))?;
        fields.insert(id.clone(), value);
    }

    let kind = match file.kind {
        Kind::Created => ChangeKind::Created,
        Kind::Updated => ChangeKind::Updated,
    };
    let event = EventView {
        side: source,
        id: file.id.clone(),
        key: file.key.clone(),
        kind,
        origin: EventOrigin::Webhook,
        fields: fields.clone(),
    };
    let item = ItemView {
        side: Some(source),
        id: file.id,
        key: file.key,
        fields: fields.clone(),
    };

    let (result, log) = capture_log(|| -> anyhow::Result<Option<BTreeMap<String, FieldValue>>> {
        if let Some(script) = script {
            if let FilterDecision::Skip(reason) = script.filter(&event)? {
                println!("filter: skip (skipped by script: {reason})");
                return Ok(None);
            }
            println!("filter: keep");
        }
        let plan = if file.kind == Kind::Created {
            plan_create(source, chrono::Utc::now(), &fields, &conn.fields)
        } else {
            plan_update(&PlanInput {
                source,
                source_ts: chrono::Utc::now(),
                source_values: &fields,
                target_values: None,
                target_ts: None,
                shadow: &Shadow::default(),
                pending: &Shadow::default(),
                mapping: &conn.fields,
                policy: conn.conflict,
            })
        };
        if let Some(e) = plan.errors.first() {
            bail!("the mapping cannot convert the event: {e}");
        }
        // The mapping's expressions first, then the hooks: the order the worker runs them in.
        let mut writes = plan.writes.clone();
        for m in conn
            .fields
            .fields
            .iter()
            .filter(|m| m.direction.writes_to(target))
        {
            let (Some(expr), Some(value)) =
                (conn.exprs.get(&m.key()), writes.get(m.field_on(target)))
            else {
                continue;
            };
            let value = expr
                .eval(value, &item)
                .map_err(|e| anyhow::anyhow!("{}: {e}", m.location))?;
            writes.insert(m.field_on(target).to_string(), value);
        }
        let Some(script) = script else {
            return Ok(Some(writes));
        };
        let towards = match target {
            Side::Jira => script.to_jira(&writes, &item)?,
            Side::External => script.to_external(&writes, &item)?,
        };
        let written = if file.kind == Kind::Created {
            script.on_create(target, &towards, &item)?
        } else {
            towards
        };
        Ok(Some(written))
    });
    for line in &log {
        println!("log: {line}");
    }
    let Some(written) = result? else {
        return Ok(ExitCode::SUCCESS);
    };
    let what = if file.kind == Kind::Created {
        "create"
    } else {
        "write"
    };
    if written.is_empty() {
        println!("{what} on {target}: nothing");
    } else {
        println!("{what} on {target}:");
        for (field, value) in &written {
            println!("  {field} = {}", encode_json(value));
        }
    }
    Ok(ExitCode::SUCCESS)
}
