//! The other system in `tandem init`: which kinds it offers, the fields each brings to the
//! mapping proposal, and the live check that its base URL answers (and, with credentials,
//! accepts them).
//!
//! - `seed`: an HTTP/JSON system speaking the seed's `_externalData` API (`POST /API/issue`,
//!   `GET /API/issues?updatedSince=`). That API has no field listing, so its fields are the
//!   seed example's (`examples/seed/fieldMappings.csv`) unless `--external-field` names them.
//! - `jira`: another Jira site or project (Jira ↔ Jira), probed like the Jira side.

use super::jira_probe::{FieldInfo, ProbeError, error_text, transport_error};
use tandem_core::mapping::FieldType;

/// The kinds of other system `tandem init` can set up.
pub const CHOICES: &[&str] = &["seed", "jira"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Seed,
    Jira,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s.to_ascii_lowercase().as_str() {
            "seed" | "rest" => Some(Kind::Seed),
            "jira" => Some(Kind::Jira),
            _ => None,
        }
    }
}

/// The seed example's external fields: id, name, kind.
pub fn seed_fields() -> Vec<FieldInfo> {
    [
        ("1001", "Title", FieldType::Text),
        ("1002", "Description", FieldType::RichText),
        ("1003", "Due date", FieldType::Date),
        ("1004", "Customer Reference", FieldType::Text),
    ]
    .into_iter()
    .map(|(id, name, kind)| FieldInfo {
        id: id.into(),
        name: name.into(),
        kind: Some(kind),
    })
    .collect()
}

/// `--external-field ID=NAME[:TYPE]`, e.g. `2001=Subject:text`.
pub fn parse_field(spec: &str) -> Result<FieldInfo, String> {
    let (id, rest) = spec
        .split_once('=')
        .ok_or_else(|| format!("`{spec}`: expected ID=NAME[:TYPE], e.g. 2001=Subject:text"))?;
    let (name, kind) = match rest.rsplit_once(':') {
        Some((name, ty)) => (
            name,
            super::mapping_proposal::parse_kind(ty)
                .ok_or_else(|| format!("`{spec}`: unknown type `{ty}`"))?,
        ),
        None => (rest, FieldType::Text),
    };
    let id = id.trim();
    if !super::mapping_proposal::usable_id(id) {
        return Err(format!(
            "`{spec}`: the id may only hold letters, digits and _ - . :"
        ));
    }
    Ok(FieldInfo {
        id: id.to_string(),
        name: name.trim().to_string(),
        kind: Some(kind),
    })
}

/// Checks that a seed-format system answers at `base_url`. With a password, the listing the
/// poller uses (`GET /API/issues?updatedSince=now`) must succeed with it; without one, any
/// HTTP answer at the base URL will do. Returns what was found, for the person to read.
pub async fn probe_seed(
    http: &reqwest::Client,
    base_url: &str,
    credentials: Option<(&str, &str)>,
    password_env: &str,
) -> Result<String, ProbeError> {
    let base = base_url.trim_end_matches('/');
    let Some((user, password)) = credentials else {
        let url = format!("{base}/");
        return match http.get(&url).send().await {
            Ok(resp) => Ok(format!(
                "{base} answers ({}); credentials not tried: ${password_env} is not set",
                resp.status().as_u16()
            )),
            Err(e) => Err(ProbeError {
                what: "external system check".into(),
                url,
                status: None,
                detail: transport_error(&e),
                hint: "Check the external base URL and that this machine can reach it".into(),
            }),
        };
    };
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let url = format!(
        "{base}/API/issues?updatedSince={}",
        since.replace(':', "%3A")
    );
    let fail = |status: Option<u16>, detail: String, hint: &str| ProbeError {
        what: "external system check".into(),
        url: url.clone(),
        status,
        detail,
        hint: hint.to_string(),
    };
    let resp = http
        .get(&url)
        .basic_auth(user, Some(password))
        .send()
        .await
        .map_err(|e| {
            fail(
                None,
                transport_error(&e),
                "Check the external base URL and that this machine can reach it",
            )
        })?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    match status {
        200..=299 => Ok(format!(
            "{base} answers the seed's API; credentials of `{user}` accepted"
        )),
        401 | 403 => Err(fail(
            Some(status),
            error_text(&body),
            &format!(
                "The system did not accept the user `{user}` with the password in ${password_env}"
            ),
        )),
        _ => Err(fail(
            Some(status),
            error_text(&body),
            "This does not look like the seed's API (GET /API/issues): check the base URL",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_specs_parse_with_and_without_a_type() {
        let f = parse_field("2001=Subject:text").unwrap();
        assert_eq!((f.id.as_str(), f.name.as_str()), ("2001", "Subject"));
        let f = parse_field("due=Due: date:date").unwrap();
        assert_eq!(f.name, "Due: date");
        assert_eq!(f.kind, Some(FieldType::Date));
        assert_eq!(parse_field("x=Notes").unwrap().kind, Some(FieldType::Text));
        assert!(parse_field("nothing").is_err());
        assert!(parse_field("a,b=Name").is_err());
        assert!(parse_field("a=Name:colour").is_err());
    }
}
