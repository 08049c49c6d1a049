//! User fields across the sides: values read outside are brought into Jira terms before
//! planning ([`Engine::users_in`]), and the planned writes are given the target's own user
//! values ([`Engine::users_out`]), through the connection's [`UserResolver`].
//!
//! A user with no match never clears the field: under `keep` the field is not written (the
//! event's other fields are), under `default:<user>` that user is written, under `fail` the
//! event becomes a dead letter naming the user. Every miss is counted
//! (`tandem_user_unmatched_total`) and, unless it fails the event, leaves an audit row whose
//! actor reads `user:unmatched (…)`.
//!
//! Connections without `[connection.users]` have no resolver: their user values cross as
//! they are, as before.

use super::{ConnectionRuntime, Engine, Failure};
use crate::connector::Fields;
use crate::store::AuditEntry;
use crate::users::UserResolver;
use chrono::Utc;
use tandem_core::mapping::FieldType;
use tandem_core::plan::Plan;
use tandem_core::users::{Unmatched, unmatched_marker, unmatched_of};
use tandem_core::{FieldValue, Side};

/// The text of a user value, when it is one worth translating.
fn user_text(v: &FieldValue) -> Option<&str> {
    match v {
        FieldValue::User(s) | FieldValue::Text(s) | FieldValue::Option(s)
            if !s.trim().is_empty() =>
        {
            Some(s.as_str())
        }
        _ => None,
    }
}

impl Engine {
    /// `fields` read on `side`, with the user values of an external side in Jira terms (an
    /// unmatched one as its marker, see `tandem_core::users`). Jira's values are canonical
    /// already.
    pub(super) async fn users_in(
        &self,
        conn: &ConnectionRuntime,
        side: Side,
        mut fields: Fields,
    ) -> Result<Fields, Failure> {
        let Some(users) = &conn.users else {
            return Ok(fields);
        };
        if side == Side::Jira {
            return Ok(fields);
        }
        for m in user_entries(conn) {
            let Some(value) = fields.get_mut(&m.external_field) else {
                continue;
            };
            let Some(text) = user_text(value).map(str::to_string) else {
                continue;
            };
            *value = FieldValue::User(canonical(users, &text).await?);
        }
        Ok(fields)
    }

    /// Gives the writes of `plan` for `target` the target's user values, applying the
    /// unmatched rule to those with no match. Answers the audit rows of the misses.
    pub(super) async fn users_out(
        &self,
        conn: &ConnectionRuntime,
        target: Side,
        plan: &mut Plan,
        (jira_id, external_id): (&str, &str),
        event_id: i64,
    ) -> Result<Vec<AuditEntry>, Failure> {
        let Some(users) = &conn.users else {
            return Ok(Vec::new());
        };
        let mut audit = Vec::new();
        for m in user_entries(conn) {
            let field = m.field_on(target).to_string();
            let Some(text) = plan
                .writes
                .get(&field)
                .and_then(user_text)
                .map(str::to_string)
            else {
                continue;
            };
            // The user as their own side holds them, and their match on `target`.
            let (user, matched) = match (target, unmatched_of(&text)) {
                (_, Some(original)) => (original.to_string(), None),
                (Side::Jira, None) => continue,
                (Side::External, None) => {
                    let found = users.to_other(Side::Jira, &text).await?;
                    (text.clone(), found)
                }
            };
            if let Some(value) = matched {
                plan.writes.insert(field, FieldValue::User(value));
                continue;
            }
            let from = target.other();
            users.count_unmatched(from);
            let key = m.key();
            let what = format!(
                "`{user}` of the {from} side has no match on the {target} side (field {field})"
            );
            let (to, note) = match users.unmatched() {
                Unmatched::Fail => {
                    return Err(Failure::Permanent(format!(
                        "{what}, and unmatched_user = \"fail\": map them in the user map or \
                         give them the same e-mail on both sides"
                    )));
                }
                Unmatched::Keep => {
                    plan.writes.remove(&field);
                    plan.shadow_updates.remove(&key);
                    (FieldValue::Empty, format!("keep: {what}; not written"))
                }
                Unmatched::Default(d) => {
                    let value = users.default_on(target, d).await?;
                    plan.writes
                        .insert(field.clone(), FieldValue::User(value.clone()));
                    // The shadow holds the default as its echo will read, so that the echo
                    // is one and the default never travels back over the original user.
                    let echo = match target {
                        Side::Jira => value.clone(),
                        Side::External => canonical(users, &value).await?,
                    };
                    if let Some(entry) = plan.shadow_updates.get_mut(&key) {
                        entry.value = FieldValue::User(echo);
                    }
                    (
                        FieldValue::User(value),
                        format!("default: {what}; wrote the default `{d}`"),
                    )
                }
            };
            audit.push(AuditEntry {
                at: Utc::now(),
                connection: conn.name.clone(),
                event_id: Some(event_id),
                jira_id: jira_id.to_string(),
                external_id: external_id.to_string(),
                target,
                field,
                mapping_key: key,
                from: Some(FieldValue::User(user)),
                to,
                actor: format!("user:unmatched ({note})"),
            });
        }
        Ok(audit)
    }
}

/// The mapping entries of type `user`.
fn user_entries(conn: &ConnectionRuntime) -> impl Iterator<Item = &tandem_core::FieldMapping> {
    conn.mapping
        .fields
        .iter()
        .filter(|m| m.field_type == FieldType::User)
}

/// External user `text` in Jira terms: the matched Jira user, else the unmatched marker.
async fn canonical(users: &UserResolver, text: &str) -> Result<String, Failure> {
    Ok(match users.to_other(Side::External, text).await? {
        Some(jira) => jira,
        None => unmatched_marker(text),
    })
}
