//! Helpers shared by the integration tests: building fields, items and events.
#![allow(dead_code)]

use std::collections::BTreeMap;
use tandem_core::{ChangeKind, EventOrigin, FieldValue, Side};
use tandem_script::{EventView, ItemView};

pub fn text(s: &str) -> FieldValue {
    FieldValue::Text(s.to_string())
}

pub fn fields(pairs: &[(&str, FieldValue)]) -> BTreeMap<String, FieldValue> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

pub fn item(side: Side, pairs: &[(&str, FieldValue)]) -> ItemView {
    ItemView {
        side: Some(side),
        id: "42".to_string(),
        key: (side == Side::Jira).then(|| "TEST-42".to_string()),
        fields: fields(pairs),
    }
}

pub fn event(side: Side, pairs: &[(&str, FieldValue)]) -> EventView {
    EventView {
        side,
        id: "42".to_string(),
        key: None,
        kind: ChangeKind::Updated,
        origin: EventOrigin::Webhook,
        fields: fields(pairs),
    }
}
