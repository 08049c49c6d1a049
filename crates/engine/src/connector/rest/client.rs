//! HTTP calls to a REST/JSON system: one method, path and optional JSON body at a time.
//!
//! Paths are appended to `base_url` as given; every value substituted into them goes
//! through [`encode_component`] first, so an id from a webhook cannot add path segments or a
//! query. Authentication is added here (Basic, Bearer or a custom header), marked sensitive,
//! and scrubbed from error messages.

use crate::config::RestAuth;
use crate::connector::ConnectorResult;
use crate::connector::http::{self, Answer, Redactor};
use base64::Engine;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::Value;

pub struct RestClient {
    http: reqwest::Client,
    base: String,
    auth: Option<(HeaderName, HeaderValue)>,
    redactor: Redactor,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("base", &self.base)
            .field("auth", &self.auth.as_ref().map(|(name, _)| name.as_str()))
            .finish_non_exhaustive()
    }
}

impl RestClient {
    /// The system's base URL, for messages and `tandem check`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// How requests authenticate, without the credential: `basic`, a header name, or `none`.
    pub fn auth_scheme(&self) -> &str {
        self.auth.as_ref().map_or("none", |(name, _)| name.as_str())
    }

    pub fn new(http: reqwest::Client, base_url: &str, auth: &RestAuth) -> anyhow::Result<Self> {
        let base = base_url.trim().trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| anyhow::anyhow!("rest base_url `{base}` is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!("rest base_url `{base}` must be http or https");
        }
        let bad = || anyhow::anyhow!("rest credentials contain characters not allowed in a header");
        let (auth, secrets) = match auth {
            RestAuth::None => (None, Vec::new()),
            RestAuth::Basic { username, password } => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()));
                let v = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| bad())?;
                (
                    Some((AUTHORIZATION, v)),
                    vec![password.expose().to_string(), encoded],
                )
            }
            RestAuth::Bearer { token } => {
                let v = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| bad())?;
                (Some((AUTHORIZATION, v)), vec![token.expose().to_string()])
            }
            RestAuth::Header { name, value } => {
                let n = HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|_| anyhow::anyhow!("rest auth header name `{name}` is not valid"))?;
                let v = HeaderValue::from_str(value.expose()).map_err(|_| bad())?;
                (Some((n, v)), vec![value.expose().to_string()])
            }
        };
        let auth = auth.map(|(n, mut v)| {
            v.set_sensitive(true);
            (n, v)
        });
        Ok(RestClient {
            http,
            base,
            auth,
            redactor: Redactor::new(secrets),
        })
    }

    /// `method {base}{path}` with an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> ConnectorResult<Answer> {
        let url = format!("{}{}", self.base, path);
        // Only the path goes into messages: the query may hold values we were given.
        let shown = path.split('?').next().unwrap_or(path);
        let what = format!("rest: {method} {shown}");
        let mut req = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some((n, v)) = &self.auth {
            req = req.header(n.clone(), v.clone());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        http::send(req, &what, &self.redactor, describe_error).await
    }
}

impl RestClient {
    /// `GET` of a file at `url`: a path (`/files/7`) or a URL under `base_url` gets the
    /// credentials, and so does a URL on one of `trusted` (origins the configuration names,
    /// `https://files.example.com`); a URL elsewhere (a pre-signed link to a file store) is
    /// fetched without them, so they never leave the configured systems. The body is left
    /// unread, to be streamed.
    pub async fn download(
        &self,
        url: &str,
        trusted: &[String],
        timeout: std::time::Duration,
    ) -> ConnectorResult<reqwest::Response> {
        let (full, mut ours) = if url.starts_with('/') {
            (format!("{}{url}", self.base), true)
        } else {
            let ours = url == self.base || url.starts_with(&format!("{}/", self.base));
            (url.to_string(), ours)
        };
        let parsed = reqwest::Url::parse(&full).map_err(|e| {
            crate::connector::ConnectorError::permanent(format!(
                "rest: the file's url `{}` is not a URL: {e}",
                http::quote(url)
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(crate::connector::ConnectorError::permanent(format!(
                "rest: the file's url `{}` is not http or https",
                http::quote(url)
            )));
        }
        if !ours && !trusted.is_empty() {
            let o = parsed.origin().ascii_serialization();
            ours = trusted.contains(&o);
        }
        let what = format!("rest: GET {}", parsed.path());
        let mut req = self.http.get(parsed).timeout(timeout);
        if ours && let Some((n, v)) = &self.auth {
            req = req.header(n.clone(), v.clone());
        }
        http::open(req, &what, &self.redactor, describe_error).await
    }

    /// `method {base}{path}` with a streamed body of `length` bytes and `content_type`.
    pub async fn send_body(
        &self,
        method: Method,
        path: &str,
        body: reqwest::Body,
        content_type: &str,
        length: u64,
        timeout: std::time::Duration,
    ) -> ConnectorResult<Answer> {
        let url = format!("{}{}", self.base, path);
        let shown = path.split('?').next().unwrap_or(path);
        let what = format!("rest: {method} {shown}");
        let mut req = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, length)
            .timeout(timeout)
            .body(body);
        if let Some((n, v)) = &self.auth {
            req = req.header(n.clone(), v.clone());
        }
        http::send(req, &what, &self.redactor, describe_error).await
    }
}

/// `{"error": "..."}` and `{"message": "..."}` bodies are quoted by their message.
fn describe_error(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        for key in ["error", "message", "detail"] {
            if let Some(s) = v.get(key).and_then(Value::as_str) {
                return http::quote(s);
            }
        }
    }
    http::describe_plain(body)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn components_are_encoded() {
        assert_eq!(encode_component("EXT-1"), "EXT-1");
        assert_eq!(
            encode_component("../a?b=c d/é"),
            "..%2Fa%3Fb%3Dc%20d%2F%C3%A9"
        );
        assert_eq!(
            encode_component("2025-01-31T10:00:00+00:00"),
            "2025-01-31T10%3A00%3A00%2B00%3A00"
        );
    }

    #[test]
    fn debug_hides_credentials() {
        let c = RestClient::new(
            reqwest::Client::new(),
            "http://x.local/",
            &RestAuth::Header {
                name: "X-API-Key".into(),
                value: Secret::new("k3y-value"),
            },
        )
        .unwrap();
        let d = format!("{c:?}");
        assert!(d.contains("x-api-key") && !d.contains("k3y"), "{d}");
    }
}
