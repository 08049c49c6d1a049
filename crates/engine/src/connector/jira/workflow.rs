//! Moving a Jira issue to a status. Jira changes status only through the transitions its
//! workflow offers from the issue's current status (`GET …/transitions`), so a target that
//! no single transition reaches needs a walk through the workflow.
//!
//! Each `GET …/transitions` answer shows one status's way out, and what it shows is kept
//! (per issue type and status), so the connector learns the workflow as it goes. A walk is
//! planned breadth-first over what is known: the shortest path to the target when there is
//! one, else a step towards the nearest status not seen yet, to look at its way out. Every
//! step is taken from a fresh `GET …/transitions` of where the issue is, at most
//! [`MAX_STEPS`] of them. A status name the site does not know is refused before anything
//! moves (`GET /status/{name}`), so a typo in a value map never sends issues wandering.

use super::client::JiraClient;
use crate::connector::{ConnectorError, ConnectorResult};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

/// Most transitions one walk may take, exploring included.
pub const MAX_STEPS: usize = 8;

/// One transition as `GET …/transitions` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub id: String,
    pub name: String,
    pub to_id: String,
    pub to_name: String,
    /// Ids of the fields its screen shows, and which of them it requires.
    pub screen: Vec<String>,
    pub required: Vec<String>,
}

impl Edge {
    fn label(&self) -> String {
        format!("{} → {}", self.name, self.to_name)
    }
}

/// The transitions taken, in order; empty when the issue already had the status.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Walk {
    pub from: String,
    pub steps: Vec<Edge>,
}

impl Walk {
    /// `To Do → Start progress → In Progress → Done → Done`, for logs and messages.
    pub fn describe(&self) -> String {
        let mut s = self.from.clone();
        for e in &self.steps {
            s.push_str(&format!(" → {} → {}", e.name, e.to_name));
        }
        s
    }
}

/// What the connector has learnt of the site's workflows.
#[derive(Debug, Default)]
pub struct Workflows {
    /// (issue type, status id) → the transitions out of that status.
    known: Mutex<HashMap<(String, String), Vec<Edge>>>,
    /// Status names (lower case) the site confirmed it has.
    statuses: Mutex<HashSet<String>>,
}

/// Reads a `TransitionsMeta` answer; transitions without an id or a target are left out.
pub fn parse_transitions(v: &Value) -> Vec<Edge> {
    let list = v.get("transitions").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(|t| {
            let to = t.get("to")?;
            let fields = t.get("fields").and_then(Value::as_object);
            let screen: Vec<String> = fields.into_iter().flat_map(|f| f.keys().cloned()).collect();
            let required = fields
                .into_iter()
                .flatten()
                .filter(|(_, m)| m.get("required").and_then(Value::as_bool) == Some(true))
                .map(|(k, _)| k.clone())
                .collect();
            Some(Edge {
                id: text(t.get("id")?)?,
                name: t.get("name").and_then(Value::as_str).unwrap_or("?").into(),
                to_id: text(to.get("id")?)?,
                to_name: to.get("name")?.as_str()?.to_string(),
                screen,
                required,
            })
        })
        .collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// The first transition to take from `from` towards the status named `target`, over the
/// `known` graph: the first step of a shortest path, else of the shortest path to a status
/// whose way out is not known yet (to be looked at). `None` when neither exists.
pub fn next_step(
    known: &HashMap<String, Vec<Edge>>,
    from: &str,
    target: &str,
) -> Option<(Edge, bool)> {
    let mut queue: VecDeque<(String, Option<Edge>)> = VecDeque::from([(from.to_string(), None)]);
    let mut seen = HashSet::from([from.to_string()]);
    let mut explore: Option<Edge> = None;
    while let Some((at, first)) = queue.pop_front() {
        let Some(edges) = known.get(&at) else {
            // Not looked at yet: the nearest such status is where exploring would go.
            if explore.is_none() {
                explore = first;
            }
            continue;
        };
        for e in edges {
            let first = first.clone().unwrap_or_else(|| e.clone());
            if same(&e.to_name, target) {
                return Some((first, true));
            }
            if seen.insert(e.to_id.clone()) {
                queue.push_back((e.to_id.clone(), Some(first)));
            }
        }
    }
    explore.map(|e| (e, false))
}

impl Workflows {
    /// Moves issue `id` to the status named `target` and says which way it went.
    /// `transition_fields` (target status → fields) fills in the screens on the way.
    pub async fn walk_to(
        &self,
        client: &JiraClient,
        id: &str,
        target: &str,
        transition_fields: &BTreeMap<String, Value>,
    ) -> ConnectorResult<Walk> {
        let fields = ["status".to_string(), "issuetype".to_string()];
        let issue = client.get_issue(id, &fields).await?;
        let f = issue.get("fields");
        let status = f.and_then(|f| f.get("status"));
        let (mut at_id, mut at_name) = (
            status
                .and_then(|s| s.get("id"))
                .and_then(text)
                .unwrap_or_default(),
            status
                .and_then(|s| s.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        );
        let mut walk = Walk {
            from: at_name.clone(),
            steps: Vec::new(),
        };
        if same(&at_name, target) {
            return Ok(walk);
        }
        if !self.status_exists(client, target).await? {
            let edges = parse_transitions(&client.transitions(id).await?);
            return Err(ConnectorError::permanent(format!(
                "jira: status changes through transitions, and this site has no status `{}` for issue {id} to move to (available from `{at_name}`: {})",
                target.trim(),
                labels(&edges)
            )));
        }
        let issue_type = f
            .and_then(|f| f.get("issuetype"))
            .and_then(|t| t.get("id").or_else(|| t.get("name")))
            .and_then(text)
            .unwrap_or_default();
        loop {
            let edges = parse_transitions(&client.transitions(id).await?);
            let graph = self.learn(&issue_type, &at_id, edges.clone());
            let step = next_step(&graph, &at_id, target);
            let Some((edge, _)) = step.filter(|_| walk.steps.len() < MAX_STEPS) else {
                let walked = if walk.steps.is_empty() {
                    String::new()
                } else {
                    format!(" after walking {};", walk.describe())
                };
                return Err(ConnectorError::permanent(format!(
                    "jira: status changes through transitions, and issue {id} cannot reach `{}` from `{at_name}`:{walked} no path through the workflow (available from `{at_name}`: {})",
                    target.trim(),
                    labels(&edges)
                )));
            };
            let screen = screen_fields(&edge, transition_fields, id)?;
            client.transition(id, &edge.id, screen.as_ref()).await?;
            at_id = edge.to_id.clone();
            at_name = edge.to_name.clone();
            walk.steps.push(edge);
            if same(&at_name, target) {
                return Ok(walk);
            }
        }
    }

    /// Records the way out of one status; returns what is known for the issue type.
    fn learn(
        &self,
        issue_type: &str,
        status: &str,
        edges: Vec<Edge>,
    ) -> HashMap<String, Vec<Edge>> {
        let mut known = match self.known.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        known.insert((issue_type.to_string(), status.to_string()), edges);
        known
            .iter()
            .filter(|((t, _), _)| t == issue_type)
            .map(|((_, s), e)| (s.clone(), e.clone()))
            .collect()
    }

    /// Whether the site has a status of that name (`GET /status/{name}`; 404 when not),
    /// asked before anything moves; a confirmed name is not asked about again.
    async fn status_exists(&self, client: &JiraClient, name: &str) -> ConnectorResult<bool> {
        let key = name.trim().to_lowercase();
        let mut confirmed = match self.statuses.lock() {
            Ok(g) => g.contains(&key),
            Err(p) => p.into_inner().contains(&key),
        };
        if !confirmed {
            confirmed = match client.status(name.trim()).await {
                Ok(_) => true,
                Err(ConnectorError::Permanent {
                    status: Some(404), ..
                }) => false,
                Err(e) => return Err(e),
            };
            if confirmed {
                match self.statuses.lock() {
                    Ok(mut g) => g.insert(key),
                    Err(p) => p.into_inner().insert(key),
                };
            }
        }
        Ok(confirmed)
    }
}

/// `Start progress → In Progress, Done → Done`, or `none`.
fn labels(edges: &[Edge]) -> String {
    if edges.is_empty() {
        return "none".to_string();
    }
    edges.iter().map(Edge::label).collect::<Vec<_>>().join(", ")
}

/// The `fields` to send with transition `edge`: what the mapping gives for its target
/// status, limited to the fields on its screen (Jira refuses the others). A required field
/// the mapping does not give is refused here, with the way to give it.
fn screen_fields(
    edge: &Edge,
    transition_fields: &BTreeMap<String, Value>,
    id: &str,
) -> ConnectorResult<Option<Value>> {
    let given = transition_fields
        .iter()
        .find(|(status, _)| same(status, &edge.to_name))
        .and_then(|(_, v)| v.as_object());
    let mut out = Map::new();
    for (k, v) in given.into_iter().flatten() {
        if edge.screen.iter().any(|s| s == k) {
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some(missing) = edge.required.iter().find(|r| !out.contains_key(*r)) {
        return Err(ConnectorError::permanent(format!(
            "jira: the transition `{}` of issue {id} to `{}` requires `{missing}`, which the mapping does not give: add it to the status entry's transition_fields, e.g. transition_fields = {{ \"{}\" = {{ {missing} = {{ name = \"…\" }} }} }}",
            edge.name, edge.to_name, edge.to_name
        )));
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn edge(id: &str, to_id: &str, to_name: &str) -> Edge {
        Edge {
            id: id.into(),
            name: format!("to {to_name}"),
            to_id: to_id.into(),
            to_name: to_name.into(),
            screen: vec![],
            required: vec![],
        }
    }

    #[test]
    fn the_shortest_known_path_is_taken_and_unknown_statuses_are_explored() {
        let mut known = HashMap::new();
        known.insert("1".to_string(), vec![edge("21", "3", "In Progress")]);
        // In Progress not looked at yet: step there to look.
        let (e, reaches) = next_step(&known, "1", "Done").unwrap();
        assert_eq!((e.id.as_str(), reaches), ("21", false));
        known.insert(
            "3".to_string(),
            vec![edge("11", "1", "To Do"), edge("31", "5", "done")],
        );
        let (e, reaches) = next_step(&known, "1", "Done").unwrap();
        assert_eq!((e.id.as_str(), reaches), ("21", true));
        known.insert("5".to_string(), vec![edge("41", "1", "To Do")]);
        // Everything known and no way to `Nirvana`.
        assert!(next_step(&known, "1", "Nirvana").is_none());
    }

    #[test]
    fn screens_take_the_mapping_fields_and_name_what_is_missing() {
        let mut done = edge("31", "5", "Done");
        done.screen = vec!["resolution".into()];
        done.required = vec!["resolution".into()];
        let none = BTreeMap::new();
        let err = screen_fields(&done, &none, "10001").unwrap_err();
        assert!(err.to_string().contains("requires `resolution`"), "{err}");
        let given = BTreeMap::from([(
            "done".to_string(),
            json!({"resolution": {"name": "Done"}, "comment": "not on the screen"}),
        )]);
        assert_eq!(
            screen_fields(&done, &given, "10001").unwrap(),
            Some(json!({"resolution": {"name": "Done"}}))
        );
        assert_eq!(
            screen_fields(&edge("21", "3", "In Progress"), &given, "1").unwrap(),
            None
        );
    }

    #[test]
    fn transitions_are_read_with_their_screens() {
        let v = json!({"transitions": [
            {"id": "31", "name": "Done", "to": {"id": "10001", "name": "Done"},
             "fields": {"resolution": {"required": true}, "comment": {"required": false}}},
            {"id": 7, "name": "Odd", "to": {"id": 3, "name": "In Progress"}},
            {"name": "no id", "to": {"id": "1", "name": "X"}}
        ]});
        let edges = parse_transitions(&v);
        assert_eq!(edges.len(), 2);
        assert_eq!(edges[0].required, vec!["resolution".to_string()]);
        assert_eq!(edges[0].screen.len(), 2);
        assert_eq!(edges[1].id, "7");
    }
}
