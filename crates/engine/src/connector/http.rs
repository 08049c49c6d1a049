//! HTTP plumbing shared by the connectors: sending a request and turning every way it can fail
//! into a [`ConnectorError`] the retry schedule understands.
//!
//! The classification follows the design (§2 "Worker"): connection failures, timeouts, 408,
//! 409, 425, 429 and 5xx are transient and honour `Retry-After`; everything else is permanent.
//! Error messages quote the remote system's answer briefly so a person can act on a dead
//! letter, and are scrubbed of the credentials the connector holds, in case a server echoes
//! a header back.

use super::{ConnectorError, ConnectorResult};
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use std::time::Duration;

/// How much of an error body to quote in a message.
const BODY_QUOTE_CHARS: usize = 300;

/// A successful answer: status and raw body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON; an empty body reads as `null` (Jira's 204s).
    pub fn json(&self, what: &str) -> ConnectorResult<serde_json::Value> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            // A 2xx that is not JSON is not going to improve on retry.
            ConnectorError::Permanent {
                message: format!(
                    "{what}: answer is not JSON ({e}): {}",
                    quote(&String::from_utf8_lossy(&self.body))
                ),
                status: Some(self.status.as_u16()),
            }
        })
    }
}

/// Words that must never appear in an error message (the connector's credentials in every
/// form it sends them).
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        Redactor {
            // Very short values would blank out ordinary words; they are not worth hiding
            // at the cost of unreadable messages (and no real token is that short).
            secrets: secrets.into_iter().filter(|s| s.len() >= 4).collect(),
        }
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// Sends `req` and returns the answer when its status is 2xx; otherwise a classified error.
/// `what` names the call for messages (`"jira: PUT /rest/api/3/issue/10001"`); `describe`
/// turns an error body into a short human summary (Jira's `errorMessages`, say).
pub async fn send(
    req: RequestBuilder,
    what: &str,
    redactor: &Redactor,
    describe: fn(&[u8]) -> String,
) -> ConnectorResult<Answer> {
    // `what` starts with the system's name ("jira: PUT …"): the metric's `system` label.
    let system = what.split(':').next().unwrap_or("unknown").to_string();
    let started = std::time::Instant::now();
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            metrics::counter!("tandem_remote_calls_total", "system" => system, "status" => "error")
                .increment(1);
            return Err(transport_error(what, e, redactor));
        }
    };
    let status = resp.status();
    metrics::counter!("tandem_remote_calls_total", "system" => system.clone(), "status" => status.as_u16().to_string())
        .increment(1);
    metrics::histogram!("tandem_remote_call_seconds", "system" => system)
        .record(started.elapsed().as_secs_f64());
    let retry_after = parse_retry_after(resp.headers(), Utc::now());
    let body = match resp.bytes().await {
        Ok(b) => b.to_vec(),
        // The connection broke while reading: the write may or may not have happened, and
        // retrying is what gets us to a known state.
        Err(e) => return Err(transport_error(what, e, redactor)),
    };
    if status.is_success() {
        return Ok(Answer { status, body });
    }
    let summary = redactor.scrub(&describe(&body));
    let message = if summary.is_empty() {
        format!("{what} answered {status}")
    } else {
        format!("{what} answered {status}: {summary}")
    };
    Err(classify(status.as_u16(), message, retry_after))
}

/// Sends `req` and answers the response, its body unread, when its status is 2xx (for
/// downloads and uploads that must not be buffered); otherwise a classified error, like
/// [`send`].
pub async fn open(
    req: RequestBuilder,
    what: &str,
    redactor: &Redactor,
    describe: fn(&[u8]) -> String,
) -> ConnectorResult<reqwest::Response> {
    let system = what.split(':').next().unwrap_or("unknown").to_string();
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            metrics::counter!("tandem_remote_calls_total", "system" => system, "status" => "error")
                .increment(1);
            return Err(transport_error(what, e, redactor));
        }
    };
    let status = resp.status();
    metrics::counter!("tandem_remote_calls_total", "system" => system, "status" => status.as_u16().to_string())
        .increment(1);
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = parse_retry_after(resp.headers(), Utc::now());
    // An error answer is short; its body is read to quote it.
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    let summary = redactor.scrub(&describe(&body));
    let message = if summary.is_empty() {
        format!("{what} answered {status}")
    } else {
        format!("{what} answered {status}: {summary}")
    };
    Err(classify(status.as_u16(), message, retry_after))
}

/// A failure before any status arrived: connect, timeout, broken connection.
fn transport_error(what: &str, e: reqwest::Error, redactor: &Redactor) -> ConnectorError {
    // The URL may carry user info (`https://user:pass@host`); never print it.
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let detail = redactor.scrub(&error_chain(&e));
    let message = format!("{what} {kind}: {detail}");
    if e.is_builder() {
        // A request we could not even build will not build next time either.
        ConnectorError::Permanent {
            message,
            status: None,
        }
    } else {
        ConnectorError::Transient {
            message,
            status: None,
            retry_after: None,
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// The design's split: 408, 409, 425, 429 and 5xx are worth retrying.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 425 | 429) || (500..600).contains(&status)
}

/// Builds the error for a non-2xx status.
pub fn classify(status: u16, message: String, retry_after: Option<Duration>) -> ConnectorError {
    if is_transient_status(status) {
        ConnectorError::Transient {
            message,
            status: Some(status),
            retry_after,
        }
    } else {
        ConnectorError::Permanent {
            message,
            status: Some(status),
        }
    }
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3); an unreadable value is
/// ignored rather than trusted.
pub fn parse_retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The start of a text, cut at a character boundary, on one line.
pub fn quote(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= BODY_QUOTE_CHARS {
        flat.to_string()
    } else {
        let cut: String = flat.chars().take(BODY_QUOTE_CHARS).collect();
        format!("{cut}…")
    }
}

/// A body summary for systems with no known error shape: the body itself, briefly.
pub fn describe_plain(body: &[u8]) -> String {
    quote(&String::from_utf8_lossy(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    #[test]
    fn statuses_split_as_designed() {
        for s in [408, 409, 425, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 413, 422] {
            assert!(!is_transient_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:30 GMT"),
        );
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h, now), None);
    }

    #[test]
    fn quotes_are_short_and_secrets_scrubbed() {
        let long = "x".repeat(1000);
        assert!(quote(&long).chars().count() <= BODY_QUOTE_CHARS + 1);
        let r = Redactor::new(["s3cr3t-token".to_string(), "ab".to_string()]);
        assert_eq!(r.scrub("bad token s3cr3t-token ab"), "bad token *** ab");
    }
}
