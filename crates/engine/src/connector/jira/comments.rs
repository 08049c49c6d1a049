//! Jira comments: reading an issue's comments into core's [`Comment`] and writing
//! [`NewComment`]s, on Cloud (REST v3, ADF bodies) and Data Center (REST v2, wiki bodies).
//!
//! Tandem's mark goes in the comment property `tandem` (set in the create call itself, so a
//! comment is never seen without it), never in the text: people may edit the text, and the
//! mark must survive that. An internal note is Jira Service Management's: the property
//! `sd.public.comment` holding `{"internal": true}`, which Jira reports as `jsdPublic: false`.

use super::client::JiraClient;
use super::fields::{Api, parse_jira_datetime};
use crate::connector::http::quote;
use crate::connector::{ConnectorError, ConnectorResult};
use serde_json::{Value, json};
use tandem_core::comment::{Comment, NewComment, TandemMark};
use tandem_core::richtext::Doc;

/// The comment property holding Tandem's [`TandemMark`].
pub const MARK_PROPERTY: &str = "tandem";
/// The comment property Jira Service Management keeps the internal flag in.
pub const JSM_PUBLIC_PROPERTY: &str = "sd.public.comment";

/// Comments per page asked for; Jira may answer fewer.
const PAGE_SIZE: u32 = 100;
/// At most this many pages are read (100 000 comments): a server whose `total` never runs
/// out cannot keep the worker listing forever.
const MAX_PAGES: usize = 1000;

/// Jira comment ids are numbers; anything else is refused before it reaches a URL.
pub fn check_comment_id(id: &str) -> ConnectorResult<&str> {
    if !id.is_empty() && id.len() <= 20 && id.chars().all(|c| c.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(ConnectorError::permanent(format!(
            "jira: `{}` is not a comment id",
            quote(id)
        )))
    }
}

/// Every comment of issue `id`, oldest first, across all pages.
pub async fn list(client: &JiraClient, id: &str) -> ConnectorResult<Vec<Comment>> {
    let mut out = Vec::new();
    let mut start: u64 = 0;
    for _ in 0..MAX_PAGES {
        let page = client.comments(id, start, PAGE_SIZE).await?;
        let list = page
            .get("comments")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ConnectorError::permanent("jira: comment list answer has no `comments` array")
            })?;
        for c in list {
            out.push(parse(c, client.api()).map_err(|e| {
                ConnectorError::permanent(format!("jira: issue {id}: unreadable comment: {e}"))
            })?);
        }
        let total = page.get("total").and_then(Value::as_u64).unwrap_or(0);
        let at = page.get("startAt").and_then(Value::as_u64).unwrap_or(start);
        let next = at + list.len() as u64;
        // An empty page ends the listing whatever `total` says, so a list shrinking under
        // us (a comment deleted meanwhile) cannot make us loop.
        if list.is_empty() || next >= total {
            return Ok(out);
        }
        start = next;
    }
    Err(ConnectorError::permanent(format!(
        "jira: issue {id} has more than {} comments; not listing further",
        MAX_PAGES as u64 * u64::from(PAGE_SIZE)
    )))
}

/// Reads one `Comment` bean (with its properties, `expand=properties`).
pub fn parse(c: &Value, api: Api) -> Result<Comment, String> {
    let id = match c.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("a comment without an id".into()),
    };
    let at = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .and_then(parse_jira_datetime)
    };
    let created = at("created").ok_or_else(|| format!("comment {id}: no readable `created`"))?;
    let updated = at("updated").unwrap_or(created);
    // Told apart by shape, like field values: ADF is an object, wiki markup a string. A v3
    // answer holds ADF, a v2 one wiki, but neither is assumed.
    let body = match c.get("body") {
        None | Some(Value::Null) => Doc::default(),
        Some(Value::String(s)) => Doc::from_wiki(s),
        Some(v @ Value::Object(_)) => {
            Doc::from_adf(v).map_err(|e| format!("comment {id}: body: {e}"))?
        }
        Some(_) => {
            return Err(format!(
                "comment {id}: body is neither ADF nor text ({} API)",
                api.prefix()
            ));
        }
    };
    let author = c
        .pointer("/author/displayName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    // The author as a user field holds them: the account id on Cloud, the name on Data
    // Center (which still shows an `accountId` on some versions; the name is what it writes).
    let text_at = |p: &str| {
        c.pointer(p)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let author_id = match api {
        Api::Cloud => text_at("/author/accountId"),
        Api::DataCenter => text_at("/author/name").or_else(|| text_at("/author/key")),
    };
    let author_email = text_at("/author/emailAddress");
    let property = |key: &str| {
        c.get("properties")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("key").and_then(Value::as_str) == Some(key))
            })
            .and_then(|p| p.get("value"))
    };
    let internal = property(JSM_PUBLIC_PROPERTY)
        .and_then(|v| v.get("internal"))
        .and_then(Value::as_bool)
        == Some(true)
        || c.get("jsdPublic").and_then(Value::as_bool) == Some(false);
    // A mark someone else wrote over (or a newer Tandem's kind) is not Tandem's mark: the
    // comment is then read as a person's, which at worst copies it once more.
    let mark = property(MARK_PROPERTY).and_then(|v| {
        serde_json::from_value::<TandemMark>(v.clone())
            .map_err(|e| tracing::warn!(comment = %id, error = %e, "jira: unreadable tandem mark"))
            .ok()
    });
    Ok(Comment {
        id,
        author,
        author_id,
        author_email,
        body,
        created,
        updated,
        internal,
        mark,
    })
}

/// The body of a comment in the API's form: ADF on Cloud, wiki markup on Data Center.
pub fn body(doc: &Doc, api: Api) -> Value {
    match api {
        Api::Cloud => doc.to_adf(),
        // Data Center names a mentioned person by user name (`[~name]`).
        Api::DataCenter => json!(doc.to_wiki_by_name()),
    }
}

/// The `properties` a create sets: the mark, and JSM's internal flag for a note.
pub fn properties(mark: Option<&TandemMark>, internal: bool) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(m) = mark {
        // A `TandemMark` is a plain tagged enum: it always serialises.
        let value = serde_json::to_value(m).unwrap_or(Value::Null);
        out.push(json!({ "key": MARK_PROPERTY, "value": value }));
    }
    if internal {
        out.push(json!({ "key": JSM_PUBLIC_PROPERTY, "value": { "internal": true } }));
    }
    out
}

/// The `CommentRequest` of a create.
pub fn create_request(c: &NewComment, api: Api) -> Value {
    let mut req = json!({ "body": body(&c.body, api) });
    let props = properties(c.mark.as_ref(), c.internal);
    if !props.is_empty() {
        req["properties"] = json!(props);
    }
    req
}

/// Adds `comment` to issue `id`; answers the new comment's id.
pub async fn create(
    client: &JiraClient,
    id: &str,
    comment: &NewComment,
) -> ConnectorResult<String> {
    let created = client
        .add_comment(id, &create_request(comment, client.api()))
        .await?;
    match created.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        // Jira answered 201: the comment exists but cannot be named, which the caller must
        // know so it does not write another (`ConnectorError::took_effect`).
        _ => Err(ConnectorError::Permanent {
            message: "jira: comment created but the answer has no comment id".into(),
            status: Some(201),
        }),
    }
}

/// Rewrites the body of comment `comment_id`; its properties (the mark, the internal
/// flag) stay as they are.
pub async fn update(
    client: &JiraClient,
    id: &str,
    comment_id: &str,
    comment: &NewComment,
) -> ConnectorResult<()> {
    let comment_id = check_comment_id(comment_id)?;
    let req = json!({ "body": body(&comment.body, client.api()) });
    client.edit_comment(id, comment_id, &req).await
}

/// Deletes comment `comment_id`; one already gone (404) is success.
pub async fn delete(client: &JiraClient, id: &str, comment_id: &str) -> ConnectorResult<()> {
    let comment_id = check_comment_id(comment_id)?;
    match client.delete_comment(id, comment_id).await {
        Err(ConnectorError::Permanent {
            status: Some(404), ..
        }) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_read_marks_and_internal_flags() {
        let c = json!({
            "id": "10001",
            "author": {"displayName": "Alice Human", "accountId": "acc-1",
                       "emailAddress": "alice@example.com"},
            "body": {"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "Hello"}]}]},
            "created": "2024-01-31T09:00:00.000+0000",
            "updated": "2024-01-31T10:30:00.000+0100",
            "jsdPublic": true,
            "properties": [
                {"key": "tandem", "value": {"kind": "twin_of", "of": "ext-7"}},
                {"key": "sd.public.comment", "value": {"internal": true}}
            ]
        });
        let parsed = parse(&c, Api::Cloud).unwrap();
        assert_eq!(parsed.id, "10001");
        assert_eq!(parsed.author, "Alice Human");
        assert_eq!(parsed.author_id.as_deref(), Some("acc-1"));
        assert_eq!(parsed.author_email.as_deref(), Some("alice@example.com"));
        assert_eq!(parsed.body.to_plain(), "Hello");
        assert_eq!(parsed.created.to_rfc3339(), "2024-01-31T09:00:00+00:00");
        assert_eq!(parsed.updated.to_rfc3339(), "2024-01-31T09:30:00+00:00");
        assert!(parsed.internal);
        assert_eq!(parsed.mark, Some(TandemMark::TwinOf { of: "ext-7".into() }));

        // Wiki bodies, jsdPublic false alone, a foreign value under `tandem`, no updated.
        let c = json!({
            "id": 10002, "body": "*bold*", "created": "2024-01-31T09:00:00.000+0000",
            "author": {"name": "alice", "accountId": "JIRAUSER10000"},
            "jsdPublic": false, "properties": [{"key": "tandem", "value": "mine"}]
        });
        let parsed = parse(&c, Api::DataCenter).unwrap();
        assert_eq!(parsed.id, "10002");
        assert_eq!(parsed.body.to_plain(), "bold");
        assert!(parsed.internal);
        assert_eq!(parsed.mark, None);
        assert_eq!(parsed.updated, parsed.created);
        assert_eq!(parsed.author, "");
        assert_eq!(parsed.author_id.as_deref(), Some("alice"));
        assert_eq!(parsed.author_email, None);

        assert!(parse(&json!({"body": "x"}), Api::Cloud).is_err());
        assert!(parse(&json!({"id": "1", "body": "x"}), Api::Cloud).is_err());
        assert!(
            parse(
                &json!({"id": "1", "body": 5, "created": "2024-01-31T09:00:00.000+0000"}),
                Api::Cloud
            )
            .is_err()
        );
    }

    #[test]
    fn creates_carry_the_mark_and_the_internal_flag() {
        let c = NewComment {
            body: Doc::from_plain("Hi"),
            internal: true,
            mark: Some(TandemMark::Notice),
        };
        let req = create_request(&c, Api::DataCenter);
        assert_eq!(
            req,
            json!({"body": "Hi", "properties": [
                {"key": "tandem", "value": {"kind": "notice"}},
                {"key": "sd.public.comment", "value": {"internal": true}}
            ]})
        );
        let plain = NewComment {
            body: Doc::from_plain("Hi"),
            internal: false,
            mark: None,
        };
        let req = create_request(&plain, Api::Cloud);
        assert!(req.get("properties").is_none());
        assert_eq!(req["body"]["type"], "doc");
    }

    #[test]
    fn comment_ids_are_checked() {
        assert!(check_comment_id("10001").is_ok());
        assert!(check_comment_id("../1").is_err());
        assert!(check_comment_id("").is_err());
    }
}
