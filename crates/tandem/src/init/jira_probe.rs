//! The live checks `tandem init` makes against a Jira site: the credentials work
//! (`GET /rest/api/{2|3}/myself`), the project exists (`GET /rest/api/{2|3}/project/{key}`,
//! which also lists its issue types) and which fields there are (`GET /rest/api/{2|3}/field`),
//! for the mapping proposal.
//!
//! Each failure is a [`ProbeError`] that says what was being checked, the URL, Jira's status
//! and message, and what to do about it, because a person reads it at set-up time.

use serde_json::Value;
use std::fmt;
use tandem_core::mapping::FieldType;

/// Cloud (REST v3, e-mail + API token) or Data Center (REST v2, personal access token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Cloud,
    DataCenter,
}

impl Flavour {
    pub fn parse(s: &str) -> Option<Flavour> {
        match s.to_ascii_lowercase().as_str() {
            "cloud" => Some(Flavour::Cloud),
            "datacenter" | "data-center" | "dc" | "server" => Some(Flavour::DataCenter),
            _ => None,
        }
    }
    /// As `api = "…"` in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Cloud => "cloud",
            Flavour::DataCenter => "datacenter",
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            Flavour::Cloud => "/rest/api/3",
            Flavour::DataCenter => "/rest/api/2",
        }
    }
}

/// How the probe authenticates; the secret is only held in memory for the checks.
#[derive(Clone)]
pub enum Credentials {
    /// Cloud: Basic `email:api_token`.
    Basic { email: String, token: String },
    /// Data Center: Bearer personal access token.
    Bearer(String),
}

/// A check that failed, worded for the person running `tandem init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeError {
    /// What was checked: "Jira credentials check", "Jira project check for `TEST`".
    pub what: String,
    /// The URL asked; empty when the check failed before any request.
    pub url: String,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// The server's message, or the transport error.
    pub detail: String,
    /// What to do about it.
    pub hint: String,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            _ if self.url.is_empty() => write!(f, "{} failed", self.what)?,
            Some(status) => write!(
                f,
                "{} failed: GET {} answered {status}",
                self.what, self.url
            )?,
            None => write!(f, "{} failed: GET {} got no answer", self.what, self.url)?,
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail.trim_end_matches('.'))?;
        }
        if !self.hint.is_empty() {
            write!(f, ". {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for ProbeError {}

/// A field as a system lists it, for the mapping proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldInfo {
    pub id: String,
    pub name: String,
    /// How Tandem would carry its values; `None` for fields it cannot write (status,
    /// created, …), which are never proposed.
    pub kind: Option<FieldType>,
}

/// What the checks found on a site.
#[derive(Debug, Clone)]
pub struct Site {
    /// Who the credentials belong to, e.g. `Tandem Integration <tandem@example.com>`.
    pub user: String,
    pub project_key: String,
    pub project_name: String,
    /// The project's issue types (subtask types left out).
    pub issue_types: Vec<String>,
    pub fields: Vec<FieldInfo>,
}

/// The text of a Jira error answer: its `errorMessages` and `errors`, or the start of the body.
pub fn error_text(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let mut parts: Vec<String> = v["errorMessages"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(errors) = v["errors"].as_object() {
            parts.extend(
                errors
                    .iter()
                    .map(|(k, m)| format!("{k}: {}", m.as_str().unwrap_or(""))),
            );
        }
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(200).collect()
}

/// `GET url` with the credentials; the JSON of a 2xx answer, or the [`ProbeError`] built by
/// `on_status` for any other status.
async fn get_json(
    http: &reqwest::Client,
    url: &str,
    creds: &Credentials,
    what: &str,
    on_status: impl Fn(u16) -> String,
) -> Result<Value, ProbeError> {
    let req = http.get(url).header("accept", "application/json");
    let req = match creds {
        Credentials::Basic { email, token } => req.basic_auth(email, Some(token)),
        Credentials::Bearer(token) => req.bearer_auth(token),
    };
    let fail = |status: Option<u16>, detail: String, hint: String| ProbeError {
        what: what.to_string(),
        url: url.to_string(),
        status,
        detail,
        hint,
    };
    let resp = req.send().await.map_err(|e| {
        fail(
            None,
            transport_error(&e),
            "Check the base URL and that this machine can reach it".into(),
        )
    })?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(fail(Some(status), error_text(&text), on_status(status)));
    }
    serde_json::from_str(&text).map_err(|e| {
        fail(
            Some(status),
            format!("the answer is not JSON ({e})"),
            "Is this the base URL of a Jira site (no /jira/… path after it)?".into(),
        )
    })
}

/// A transport error with its causes ("error sending request: … connection refused").
pub fn transport_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Checks the credentials, the project and reads the field list.
pub async fn probe(
    http: &reqwest::Client,
    base_url: &str,
    flavour: Flavour,
    creds: &Credentials,
    project: &str,
    token_env: &str,
) -> Result<Site, ProbeError> {
    let api = format!("{}{}", base_url.trim_end_matches('/'), flavour.prefix());
    let cred_hint = |status: u16| {
        match (status, flavour) {
        (401, Flavour::Cloud) => format!(
            "Jira did not accept the e-mail and the API token in ${token_env}: check both (a token is made at https://id.atlassian.com/manage-profile/security/api-tokens)"
        ),
        (401, Flavour::DataCenter) => format!(
            "Jira did not accept the personal access token in ${token_env}: check it, and that the site is Data Center (a Cloud site needs --jira-flavour cloud)"
        ),
        (403, _) => "The account may not use the REST API (CAPTCHA after failed logins, or no Jira access)".into(),
        (404, _) => "No Jira REST API at this address: check the base URL (and the flavour: Cloud speaks REST v3, Data Center REST v2)".into(),
        _ => "Jira answered with an error".into(),
    }
    };
    let me = get_json(
        http,
        &format!("{api}/myself"),
        creds,
        "Jira credentials check",
        cred_hint,
    )
    .await?;
    let name = me["displayName"].as_str().unwrap_or("(no name)");
    let user = match me["emailAddress"].as_str() {
        Some(mail) if !mail.is_empty() => format!("{name} <{mail}>"),
        _ => name.to_string(),
    };

    let project_url = format!("{api}/project/{}", url_segment(project));
    let what = format!("Jira project check for `{project}`");
    let p = get_json(http, &project_url, creds, &what, |status| match status {
        404 => "Check the key (it is case-sensitive) and that the account may browse the project"
            .into(),
        _ => "Jira answered with an error".into(),
    })
    .await?;
    let issue_types = p["issueTypes"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|t| t["subtask"].as_bool() != Some(true))
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();

    let fields = get_json(
        http,
        &format!("{api}/field"),
        creds,
        "Jira field list check",
        |_| "Jira answered with an error".into(),
    )
    .await?;
    let fields = fields
        .as_array()
        .map(|l| l.iter().filter_map(field_info).collect())
        .unwrap_or_default();
    Ok(Site {
        user,
        project_key: p["key"].as_str().unwrap_or(project).to_string(),
        project_name: p["name"].as_str().unwrap_or("").to_string(),
        issue_types,
        fields,
    })
}

/// A path segment with everything but unreserved characters percent-encoded.
fn url_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One entry of `GET /field`, with the kind Tandem would carry it as.
pub fn field_info(f: &Value) -> Option<FieldInfo> {
    let id = f["id"].as_str()?.to_string();
    let name = f["name"].as_str().unwrap_or(&id).to_string();
    // Jira marks fields that can be set on create/edit as orderable; the others (status,
    // created, votes, …) cannot be written, so they are never proposed.
    let writable = f["orderable"].as_bool().unwrap_or(true);
    let schema = &f["schema"];
    let ty = schema["type"].as_str().unwrap_or("");
    let custom = schema["custom"].as_str().unwrap_or("");
    let system = schema["system"].as_str().unwrap_or("");
    let kind = match ty {
        _ if !writable => None,
        "string" if system == "description" || custom.ends_with(":textarea") => {
            Some(FieldType::RichText)
        }
        "string" => Some(FieldType::Text),
        "number" => Some(FieldType::Number),
        "date" => Some(FieldType::Date),
        "datetime" => Some(FieldType::DateTime),
        "option" | "priority" => Some(FieldType::Option),
        "user" => Some(FieldType::User),
        "array" => match schema["items"].as_str() {
            Some("option") => Some(FieldType::OptionList),
            Some("string") if system == "labels" || custom.ends_with(":labels") => {
                Some(FieldType::Labels)
            }
            _ => None,
        },
        _ => None,
    };
    Some(FieldInfo { id, name, kind })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_kinds_follow_jiras_schema() {
        let kind = |f: Value| field_info(&f).unwrap().kind;
        assert_eq!(
            kind(
                json!({"id": "description", "orderable": true, "schema": {"type": "string", "system": "description"}})
            ),
            Some(FieldType::RichText)
        );
        assert_eq!(
            kind(
                json!({"id": "labels", "orderable": true, "schema": {"type": "array", "items": "string", "system": "labels"}})
            ),
            Some(FieldType::Labels)
        );
        assert_eq!(
            kind(json!({"id": "status", "orderable": false, "schema": {"type": "status"}})),
            None
        );
        assert_eq!(
            kind(json!({"id": "customfield_1", "schema": {"type": "any"}})),
            None
        );
    }

    #[test]
    fn errors_read_as_one_sentence_with_url_and_status() {
        let e = ProbeError {
            what: "Jira project check for `NOPE`".into(),
            url: "http://jira/rest/api/3/project/NOPE".into(),
            status: Some(404),
            detail: error_text(
                r#"{"errorMessages":["No project could be found with key 'NOPE'."],"errors":{}}"#,
            ),
            hint: "Check the key".into(),
        };
        assert_eq!(
            e.to_string(),
            "Jira project check for `NOPE` failed: GET http://jira/rest/api/3/project/NOPE answered 404: No project could be found with key 'NOPE'. Check the key"
        );
        assert_eq!(url_segment("A B/C"), "A%20B%2FC");
    }
}
