//! Jira's user search, for matching people across the sides: Cloud
//! `GET /rest/api/3/user/search?query=<e-mail>` (or `?accountId=`), Data Center
//! `GET /rest/api/2/user/search?username=<e-mail or name>`.
//!
//! Both searches match loosely (Cloud's `query` is a prefix match on display name and e-mail,
//! Data Center's `username` matches name, display name and e-mail), so every hit is checked
//! here for the exact address or id; several exact hits name no one in particular and count
//! as none.

use super::client::JiraClient;
use super::fields::Api;
use crate::connector::{ConnectorError, ConnectorResult, UserQuery, UserRecord};
use serde_json::Value;

/// The one user `query` names exactly, or `None`.
pub async fn find(
    client: &JiraClient,
    query: UserQuery<'_>,
) -> ConnectorResult<Option<UserRecord>> {
    let api = client.api();
    let params: Vec<(&str, String)> = match (api, query) {
        (Api::Cloud, UserQuery::Email(e)) => vec![("query", e.trim().to_string())],
        (Api::Cloud, UserQuery::Id(id)) => vec![("accountId", id.trim().to_string())],
        (Api::DataCenter, UserQuery::Email(v) | UserQuery::Id(v)) => {
            vec![("username", v.trim().to_string())]
        }
    };
    if params[0].1.is_empty() {
        return Ok(None);
    }
    let answer = client.user_search(&params).await?;
    let list = answer.as_array().ok_or_else(|| {
        ConnectorError::permanent("jira: user search answer is not an array of users")
    })?;
    let exact: Vec<UserRecord> = list
        .iter()
        .filter(|u| matches(u, api, query))
        .filter_map(|u| record(u, api))
        .collect();
    Ok(match exact.len() {
        1 => exact.into_iter().next(),
        _ => None,
    })
}

/// Whether search hit `u` is exactly the user `query` names.
fn matches(u: &Value, api: Api, query: UserQuery<'_>) -> bool {
    let field = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or_default();
    match query {
        UserQuery::Email(e) => field("emailAddress").eq_ignore_ascii_case(e.trim()),
        UserQuery::Id(id) => match api {
            Api::Cloud => field("accountId") == id.trim(),
            Api::DataCenter => {
                field("name").eq_ignore_ascii_case(id.trim())
                    || field("key").eq_ignore_ascii_case(id.trim())
            }
        },
    }
}

/// A search hit as a [`UserRecord`]: its id is what a user field holds on this API.
fn record(u: &Value, api: Api) -> Option<UserRecord> {
    let text = |k: &str| {
        u.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let id = match api {
        Api::Cloud => text("accountId"),
        Api::DataCenter => text("name").or_else(|| text("key")),
    }?;
    Some(UserRecord {
        id,
        email: text("emailAddress"),
        display_name: text("displayName"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_exact_hits_count_and_the_id_follows_the_api() {
        let alice = json!({"accountId": "acc-a", "name": "alice", "emailAddress": "Alice@Example.com", "displayName": "Alice"});
        let alicia =
            json!({"accountId": "acc-b", "name": "alicia", "emailAddress": "alicia@example.com"});
        assert!(matches(
            &alice,
            Api::Cloud,
            UserQuery::Email("alice@example.com")
        ));
        assert!(!matches(
            &alicia,
            Api::Cloud,
            UserQuery::Email("alice@example.com")
        ));
        assert!(matches(&alice, Api::Cloud, UserQuery::Id("acc-a")));
        assert!(matches(&alice, Api::DataCenter, UserQuery::Id("ALICE")));
        assert!(!matches(&alice, Api::DataCenter, UserQuery::Id("acc-a")));
        assert_eq!(record(&alice, Api::Cloud).unwrap().id, "acc-a");
        assert_eq!(record(&alice, Api::DataCenter).unwrap().id, "alice");
        assert_eq!(
            record(&alice, Api::Cloud).unwrap().email.as_deref(),
            Some("Alice@Example.com")
        );
        assert!(record(&json!({"name": ""}), Api::DataCenter).is_none());
    }
}
