//! Test helpers: a webhook receiver that records what it gets (and can be told to fail), and
//! HTTP clients preset for the sandboxes.

#![allow(dead_code)] // each test file uses a different subset

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// One delivery the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub headers: HashMap<String, String>,
    pub raw: Vec<u8>,
    pub json: Value,
    /// What the receiver answered.
    pub status: u16,
}

#[derive(Clone, Default)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    fail_next: Arc<AtomicUsize>,
}

/// A webhook receiver bound on a free port.
pub struct Receiver {
    pub url: String,
    shared: Shared,
}

async fn receive(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let failing = s
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    s.hits.lock().unwrap().push(Hit {
        headers,
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
        status: status.as_u16(),
    });
    status
}

impl Receiver {
    pub async fn start() -> Receiver {
        let shared = Shared::default();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, shared }
    }

    /// Answer the next `n` deliveries with 503.
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Wait until at least `n` deliveries arrived (or panic after 5 s).
    pub async fn wait_for(&self, n: usize) -> Vec<Hit> {
        for _ in 0..250 {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("expected {n} webhook deliveries, got {:#?}", self.hits());
    }

    /// Successful deliveries whose JSON satisfies `pred`.
    pub fn ok_hits(&self, pred: impl Fn(&Value) -> bool) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.status == 200 && pred(&h.json))
            .collect()
    }
}

/// A client that talks to the Jira sandbox with Basic auth (Cloud style).
pub struct Jira {
    pub base: String,
    pub http: reqwest::Client,
    pub auth: String,
}

impl Jira {
    pub fn new(base: &str) -> Jira {
        use base64::Engine;
        let cfg = tandem_sandbox::JiraSandboxConfig::default();
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", cfg.email, cfg.api_token));
        Jira {
            base: base.to_string(),
            http: reqwest::Client::new(),
            auth: format!("Basic {token}"),
        }
    }

    /// A client that authenticates as an OAuth 2.0 app (Bearer access token).
    pub fn oauth(base: &str) -> Jira {
        let cfg = tandem_sandbox::JiraSandboxConfig::default();
        Jira::bearer(base, &cfg.oauth_token)
    }

    /// A client with `Authorization: Bearer <token>` (a DC PAT or an OAuth token).
    pub fn bearer(base: &str, token: &str) -> Jira {
        Jira {
            base: base.to_string(),
            http: reqwest::Client::new(),
            auth: format!("Bearer {token}"),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, HeaderMap) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &self.auth);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request failed");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json, headers)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::GET, path, None).await;
        (s, v)
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::POST, path, Some(body)).await;
        (s, v)
    }
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::PUT, path, Some(body)).await;
        (s, v)
    }
    pub async fn delete(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::DELETE, path, Some(body)).await;
        (s, v)
    }
}

/// Short retry delays so webhook retry tests take milliseconds.
pub fn fast_retry() -> tandem_sandbox::RetryPolicy {
    tandem_sandbox::RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        timeout: Duration::from_secs(2),
    }
}

/// A v3 ADF document with one paragraph.
pub fn adf(text: &str) -> Value {
    serde_json::json!({"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":text}]}]})
}
