//! The connection's rules script in the worker: `filter` before an event is looked at,
//! the mapping entries' `expr`s and then `to_jira`/`to_external` on the planned writes of an
//! update, `on_create` on a new twin's fields. A script or expression error is permanent (the event becomes a dead letter with the script's
//! message and position): running it again would fail the same way until the script is fixed.

use super::{ConnectionRuntime, Engine, Failure};
use crate::connector::{Fields, Item};
use crate::store::QueuedEvent;
use tandem_core::plan::{Plan, record_script_writes};
use tandem_core::{Link, Side};
use tandem_script::{EventView, FilterDecision, ItemView, Script, ScriptError};

/// A script error as the event's failure.
pub(super) fn script_failure(e: ScriptError) -> Failure {
    Failure::Permanent(e.to_string())
}

/// The reason the ignore records for an event the script's `filter` skipped.
pub(super) fn skipped_reason(reason: &str) -> String {
    format!("skipped by script: {reason}")
}

impl Engine {
    /// Runs the script's `filter` on the event: `Some(reason)` when it is to be skipped.
    ///
    /// An event that carries no values (a poll or bulk-sync event, read again by the worker)
    /// is judged on the item as it is now, so a rule on a field value sees that value.
    pub(super) async fn script_filter(
        &self,
        conn: &ConnectionRuntime,
        queued: &QueuedEvent,
    ) -> Result<Option<String>, Failure> {
        let Some(script) = conn.script.as_ref().filter(|s| s.has_hook("filter")) else {
            return Ok(None);
        };
        let event = &queued.event;
        let mut view = EventView::from(event);
        if event.needs_fetch && event.fields.is_empty() {
            let item = conn.side(event.source).fetch(&event.item_id).await?;
            view.fields = item.fields;
        }
        match script.filter(&view).map_err(script_failure)? {
            FilterDecision::Keep => Ok(None),
            FilterDecision::Skip(reason) => Ok(Some(skipped_reason(&reason))),
        }
    }
}

/// The source item of an update as hooks see it.
pub(super) fn item_view(
    source: Side,
    link: &Link,
    key: Option<String>,
    values: &Fields,
) -> ItemView {
    ItemView {
        side: Some(source),
        id: link.id_on(source).to_string(),
        key: key.or_else(|| match source {
            Side::Jira => link.jira_key.clone(),
            Side::External => None,
        }),
        fields: values.clone(),
    }
}

/// The source item of a create as hooks see it.
pub(super) fn created_from(item: &Item, source: Side, values: &Fields) -> ItemView {
    ItemView {
        side: Some(source),
        id: item.id.clone(),
        key: item.key.clone(),
        fields: values.clone(),
    }
}

/// Applies the mapping entries' `expr`s and then the hook towards `target` (`to_jira` or
/// `to_external`) to the plan's writes and makes their result the plan's writes, recording
/// the values they changed (see [`record_script_writes`]). Without expressions or a script
/// the plan stays.
pub(super) fn transform_writes(
    conn: &ConnectionRuntime,
    plan: &mut Plan,
    target: Side,
    item: &ItemView,
) -> Result<(), Failure> {
    apply_exprs(conn, plan, target, item)?;
    let Some(script) = &conn.script else {
        return Ok(());
    };
    if plan.writes.is_empty() {
        return Ok(());
    }
    let written = run_towards(script, target, &plan.writes, item).map_err(script_failure)?;
    record_script_writes(plan, &written, target, &conn.mapping);
    Ok(())
}

/// Applies each mapping entry's `expr` to the value the plan writes to `target` for it
/// (`value` is that value, in the target's terms), before any hook, and records the values
/// it changed so that their echoes stay echoes.
pub(super) fn apply_exprs(
    conn: &ConnectionRuntime,
    plan: &mut Plan,
    target: Side,
    item: &ItemView,
) -> Result<(), Failure> {
    if conn.exprs.is_empty() || plan.writes.is_empty() {
        return Ok(());
    }
    let mut written = plan.writes.clone();
    for m in conn
        .mapping
        .fields
        .iter()
        .filter(|m| m.direction.writes_to(target))
    {
        let Some(expr) = conn.exprs.get(&m.key()) else {
            continue;
        };
        let field = m.field_on(target);
        let Some(value) = written.get(field) else {
            continue;
        };
        let value = expr.eval(value, item).map_err(script_failure)?;
        written.insert(field.to_string(), value);
    }
    record_script_writes(plan, &written, target, &conn.mapping);
    Ok(())
}

/// The hook that shapes writes to `target`.
pub(super) fn run_towards(
    script: &Script,
    target: Side,
    fields: &Fields,
    item: &ItemView,
) -> Result<Fields, ScriptError> {
    match target {
        Side::Jira => script.to_jira(fields, item),
        Side::External => script.to_external(fields, item),
    }
}
