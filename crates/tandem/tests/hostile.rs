//! The hostile input catalogue (issue 6, part 5): a table of bad requests sent over raw TCP to
//! the webhook routes of a running Tandem, each with the exact status and `error` message a
//! sender would see (and, for 422, the JSON path).
//!
//! Raw TCP rather than an HTTP client, because several cases are things a well-behaved client
//! refuses to send: bodies larger than declared limits sent chunked, invalid UTF-8, header
//! bytes outside ASCII. After the catalogue the process must still be healthy and every event
//! it accepted (`202`) must have reached a final state in the store — none vanished.
//!
//! A second connection, `ids`, has a tiny in-test external system that knows any id, so ids
//! full of JQL syntax travel all the way to Tandem's Jira search; the Jira sandbox's request
//! log then shows whether the JQL kept them inside a quoted literal.

mod common;

use axum::extract::Path;
use axum::routing::get;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tandem::app::{self, Running};
use tandem::store::EventStatus;
use tandem_sandbox::jira::jql::{self, Expr, Op, Operand};
use tandem_sandbox::{ExternalSandbox, ExternalSandboxConfig, JiraSandbox, JiraSandboxConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const JIRA_SECRET: &str = "hostile-jira-secret";
const EXT_TOKEN: &str = "hostile-ext-token";
const LIMIT: usize = 1024 * 1024;

const MAPPING: &str = "jiraField,externalField,direction,type\n\
summary,1001,both,text\n\
description,1002,both,richtext\n\
dueDate,1003,both,date\n\
customfield_123456,1004,both,text\n";

/// What to send as the body.
#[derive(Clone)]
enum Body {
    /// With an exact `Content-Length`.
    Sized(Vec<u8>),
    /// Declares `Content-Length: n` but sends only the first bytes: the server must refuse
    /// on the declaration alone.
    Declared(usize),
    /// `Transfer-Encoding: chunked`, no length announced.
    Chunked(Vec<u8>),
}

/// How the request authenticates.
#[derive(Clone)]
enum Auth {
    None,
    /// `Authorization: Bearer <EXT_TOKEN>`.
    Token,
    /// A raw `Authorization` value.
    Authorization(Vec<u8>),
    /// `X-Hub-Signature: sha256=<hmac(JIRA_SECRET, body)>`.
    Signed,
    /// A raw `X-Hub-Signature` value.
    Signature(String),
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    auth: Auth,
    extra_headers: Vec<(&'static str, String)>,
    body: Body,
    status: u16,
    /// The exact `error` for failures, or the `status` field (`queued`, `duplicate`,
    /// `ignored`) for successes.
    answer: String,
    /// The exact `path` of a 422.
    json_path: Option<&'static str>,
}

impl Case {
    fn new(name: &'static str, route: &str, body: impl Into<Vec<u8>>) -> Self {
        let auth = if route.ends_with("/jira") {
            Auth::Signed
        } else {
            Auth::Token
        };
        Case {
            name,
            method: "POST",
            path: route.to_string(),
            content_type: Some("application/json"),
            auth,
            extra_headers: Vec::new(),
            body: Body::Sized(body.into()),
            status: 0,
            answer: String::new(),
            json_path: None,
        }
    }
    fn jira(name: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Case::new(name, "/webhooks/seed/jira", body)
    }
    fn ext(name: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Case::new(name, "/webhooks/seed/external", body)
    }
    fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
    fn content_type(mut self, ct: Option<&'static str>) -> Self {
        self.content_type = ct;
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra_headers.push((name, value.into()));
        self
    }
    fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
    fn fails(mut self, status: u16, error: impl Into<String>) -> Self {
        self.status = status;
        self.answer = error.into();
        self
    }
    fn shape(mut self, path: &'static str, error: impl Into<String>) -> Self {
        self.status = 422;
        self.answer = error.into();
        self.json_path = Some(path);
        self
    }
    fn ok(mut self, status: u16, what: &str) -> Self {
        self.status = status;
        self.answer = what.to_string();
        self
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A Jira `issue_updated` delivery changing `summary`.
fn jira_update(id: &str, key: &str, summary: &str) -> Vec<u8> {
    json!({
        "timestamp": 1_767_000_000_000_i64,
        "webhookEvent": "jira:issue_updated",
        "issue": {"id": id, "key": key, "fields": {"summary": summary}},
        "changelog": {"items": [{"fieldId": "summary", "field": "summary"}]}
    })
    .to_string()
    .into_bytes()
}

/// The seed's `_externalData` setting field 1001.
fn ext_update(id: &str, value: &str) -> Vec<u8> {
    json!({"sourceIssueId": id, "fields": [{"fieldName": "summary", "fieldId": 1001, "value": value}]})
        .to_string()
        .into_bytes()
}

/// A status, the parsed JSON body, and the raw body.
struct Reply {
    status: u16,
    json: Value,
    raw: String,
}

/// One HTTP/1.1 request over a fresh connection. The body is written concurrently with
/// reading, so a server that answers early (413) and closes is seen, not a broken pipe.
async fn send(addr: SocketAddr, c: &Case) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n",
        c.method, c.path
    )
    .into_bytes();
    let mut line = |name: &str, value: &[u8]| {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    };
    if let Some(ct) = c.content_type {
        line("Content-Type", ct.as_bytes());
    }
    let body_bytes: &[u8] = match &c.body {
        Body::Sized(b) | Body::Chunked(b) => b,
        Body::Declared(_) => b"{\"sourceIssueId\":",
    };
    match &c.auth {
        Auth::None => {}
        Auth::Token => line("Authorization", format!("Bearer {EXT_TOKEN}").as_bytes()),
        Auth::Authorization(v) => line("Authorization", v),
        Auth::Signed => line("X-Hub-Signature", sign(JIRA_SECRET, body_bytes).as_bytes()),
        Auth::Signature(s) => line("X-Hub-Signature", s.as_bytes()),
    }
    for (name, value) in &c.extra_headers {
        line(name, value.as_bytes());
    }
    match &c.body {
        Body::Sized(b) => line("Content-Length", b.len().to_string().as_bytes()),
        Body::Declared(n) => line("Content-Length", n.to_string().as_bytes()),
        Body::Chunked(_) => line("Transfer-Encoding", b"chunked"),
    }
    head.extend_from_slice(b"\r\n");
    let payload = c.body.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&head).await?;
        match payload {
            Body::Sized(b) => wr.write_all(&b).await?,
            Body::Declared(_) => wr.write_all(b"{\"sourceIssueId\":").await?,
            Body::Chunked(b) => {
                for chunk in b.chunks(64 * 1024) {
                    wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .await?;
                    wr.write_all(chunk).await?;
                    wr.write_all(b"\r\n").await?;
                }
                wr.write_all(b"0\r\n\r\n").await?;
            }
        }
        wr.flush().await?;
        // Keep the write half open: closing it early would look like an abort.
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<_, std::io::Error>(())
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let reply = loop {
        match tokio::time::timeout(Duration::from_secs(20), rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break parse_reply(&buf),
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(r) = parse_reply(&buf) {
                    break Some(r);
                }
            }
            Err(_) => panic!("{}: no answer within 20 s", c.name),
        }
    };
    writer.abort();
    reply.unwrap_or_else(|| {
        panic!(
            "{}: incomplete answer: {:?}",
            c.name,
            String::from_utf8_lossy(&buf)
        )
    })
}

/// A complete response (status line, headers, `Content-Length` body), if `buf` holds one.
fn parse_reply(buf: &[u8]) -> Option<Reply> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let body = buf.get(end + 4..end + 4 + length)?;
    let raw = String::from_utf8_lossy(body).to_string();
    let json = serde_json::from_slice(body).unwrap_or(Value::Null);
    Some(Reply { status, json, raw })
}

/// A stand-in external system for the `ids` connection: every id exists, so the worker goes
/// on to look for its Jira twin with a JQL search.
async fn any_id_system() -> SocketAddr {
    let app = axum::Router::new().route(
        "/API/issue/{id}",
        get(|Path(id): Path<String>| async move {
            axum::Json(json!({
                "id": id, "sourceIssueId": "",
                "fields": [{"fieldId": 1001, "fieldName": "summary", "value": "from the id system"}]
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

struct World {
    jira: JiraSandbox,
    _external: ExternalSandbox,
    tandem: Running,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let jira = JiraSandbox::start(JiraSandboxConfig::default())
        .await
        .expect("jira sandbox");
    let external = ExternalSandbox::start(ExternalSandboxConfig::default())
        .await
        .expect("external sandbox");
    let ids = any_id_system().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fieldMappings.csv"), MAPPING).unwrap();
    let jira_table = |secret: &str| {
        format!(
            r#"base_url = "{}"
api = "cloud"
email = "tandem@example.com"
api_token = "sandbox-api-token"
project = "TEST"
issue_type = "Task"
{secret}"#,
            jira.url()
        )
    };
    let config = format!(
        r#"
[server]
admin_token = "hostile-admin"
[storage]
url = "sqlite://tandem.db"
[worker]
concurrency = 2
max_attempts = 2
backoff_base_ms = 20
backoff_cap_ms = 100
[[connection]]
name = "seed"
mapping = "fieldMappings.csv"
[connection.jira]
{seed_jira}
[connection.external]
type = "rest"
base_url = "{ext}"
auth = {{ type = "basic", username = "external", password = "external-secret" }}
webhook_token = "{EXT_TOKEN}"

[[connection]]
name = "ids"
mapping = "fieldMappings.csv"
create = "none"
[connection.jira]
{ids_jira}
[connection.external]
type = "rest"
base_url = "http://{ids}"
auth = {{ type = "basic", username = "x", password = "y" }}
webhook_token = "{EXT_TOKEN}"
"#,
        seed_jira = jira_table(&format!("webhook_secret = \"{JIRA_SECRET}\"")),
        ids_jira = jira_table(""),
        ext = external.url(),
    );
    std::fs::write(dir.path().join("tandem.toml"), config).unwrap();
    let config = tandem::config::load(&dir.path().join("tandem.toml")).expect("config loads");
    assert_eq!(config.server.max_body_bytes, LIMIT, "the default limit");
    let tandem = app::start(config, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .expect("tandem starts");
    World {
        jira,
        _external: external,
        tandem,
        _dir: dir,
    }
}

/// Ids that try to end a JQL string literal or the text-search phrase inside it.
const JQL_IDS: [&str; 6] = [
    r#"X" OR project = TEST OR summary ~ ""#,
    r#"ACME-1") OR (key != "NOPE"#,
    r#"\" OR 1=1 --"#,
    r"trailing\",
    "new\nline OR key = TEST-1",
    "قضية \u{202e}RTL\u{202c} 🚒 'single' \"double\"",
];

fn catalogue() -> Vec<Case> {
    let unsigned = |b: &[u8]| sign("some-other-secret", b);
    let good_ext = ext_update("900", "fine");
    let good_jira = jira_update("10900", "TEST-900", "fine");
    let deep_arrays = "[".repeat(100_000);
    let deep_objects = "{\"a\":".repeat(200) + "1" + "}".repeat(200).as_str();
    let recursion = |col: usize| {
        format!("body is not valid JSON: nested deeper than 128 levels at line 1 column {col}")
    };
    let huge_string = "x".repeat(LIMIT - 200);
    let many_fields: Vec<Value> = (0..25_000)
        .map(|i| json!({"fieldId": 5_000_000 + i, "value": "v"}))
        .collect();
    let mut many_fields_bad = many_fields.clone();
    many_fields_bad.push(json!({"fieldId": null, "value": "v"}));
    let not_a_bearer = "Authorization must be `Bearer <token>`";
    let sig_form = "X-Hub-Signature is not of the form sha256=<64 hex digits>";
    let bad_sig = "bad X-Hub-Signature: the body was not signed with the configured webhook secret";
    let not_json = |got: &str| format!("expected Content-Type: application/json, got `{got}`");
    let too_large =
        format!("request body is larger than the limit of {LIMIT} bytes (server.max_body_bytes)");
    let mut cases = vec![
        // ---- routing: 404 / 405 ----------------------------------------------------------
        Case::ext("unknown connection", good_ext.clone())
            .fails(404, "unknown connection `nope`"),
        Case::ext("unknown side", good_ext.clone()).fails(
            404,
            "unknown side `jirra`: expected `jira` or `external`",
        ),
        Case::ext("side in capitals", good_ext.clone()).fails(
            404,
            "unknown side `JIRA`: expected `jira` or `external`",
        ),
        Case::ext("connection name with JQL and quotes", good_ext.clone())
            .fails(404, r#"unknown connection `a" OR 1=1`"#),
        Case::ext("connection name of 300 characters is echoed cut short", good_ext.clone())
            .fails(404, format!("unknown connection `{}`", "c".repeat(80))),
        Case::ext("GET on a webhook route", "").fails(
            405,
            "GET is not allowed on this route: webhooks take POST, health, metrics and the admin API take GET (retry takes POST)",
        ),
        Case::ext("PUT on a webhook route", good_ext.clone()).fails(
            405,
            "PUT is not allowed on this route: webhooks take POST, health, metrics and the admin API take GET (retry takes POST)",
        ),
        Case::ext("missing side", good_ext.clone()).fails(
            404,
            "no such route; webhooks go to POST /webhooks/{connection}/{side}",
        ),
        Case::ext("extra path segment", good_ext.clone()).fails(
            404,
            "no such route; webhooks go to POST /webhooks/{connection}/{side}",
        ),
        // ---- content type: 415 ------------------------------------------------------------
        Case::ext("no content type", good_ext.clone())
            .content_type(None)
            .fails(415, not_json("(none)")),
        Case::ext("text/plain", good_ext.clone())
            .content_type(Some("text/plain"))
            .fails(415, not_json("text/plain")),
        Case::ext("form encoded", good_ext.clone())
            .content_type(Some("application/x-www-form-urlencoded"))
            .fails(415, not_json("application/x-www-form-urlencoded")),
        Case::ext("application/jsonx", good_ext.clone())
            .content_type(Some("application/jsonx"))
            .fails(415, not_json("application/jsonx")),
        Case::jira("multipart to the Jira side", good_jira.clone())
            .content_type(Some("multipart/form-data; boundary=x"))
            .fails(415, not_json("multipart/form-data; boundary=x")),
        // ---- size: 413 --------------------------------------------------------------------
        Case::ext("declared one byte over the limit", "")
            .body(Body::Declared(LIMIT + 1))
            .fails(413, too_large.clone()),
        Case::ext("declared a terabyte", "")
            .body(Body::Declared(1 << 40))
            .fails(413, too_large.clone()),
        Case::ext("chunked, undeclared, twice the limit", vec![b' '; 2 * LIMIT])
            .body(Body::Chunked(vec![b' '; 2 * LIMIT]))
            .fails(413, too_large.clone()),
        Case::jira("chunked over the limit to the Jira side", "")
            .body(Body::Chunked(vec![b'['; LIMIT + 1]))
            .fails(413, too_large.clone()),
        // ---- bearer token: 401 ------------------------------------------------------------
        Case::ext("no Authorization", good_ext.clone())
            .auth(Auth::None)
            .fails(401, "missing Authorization: Bearer token"),
        Case::ext("wrong token", good_ext.clone())
            .auth(Auth::Authorization(b"Bearer nope".to_vec()))
            .fails(401, "bad bearer token"),
        Case::ext("token missing its last character", good_ext.clone())
            .auth(Auth::Authorization(
                format!("Bearer {}", &EXT_TOKEN[..EXT_TOKEN.len() - 1]).into_bytes(),
            ))
            .fails(401, "bad bearer token"),
        Case::ext("token with a suffix", good_ext.clone())
            .auth(Auth::Authorization(format!("Bearer {EXT_TOKEN}x").into_bytes()))
            .fails(401, "bad bearer token"),
        Case::ext("Jira's secret as the token", good_ext.clone())
            .auth(Auth::Authorization(format!("Bearer {JIRA_SECRET}").into_bytes()))
            .fails(401, "bad bearer token"),
        Case::ext("Basic instead of Bearer", good_ext.clone())
            .auth(Auth::Authorization(
                format!("Basic {EXT_TOKEN}").into_bytes(),
            ))
            .fails(401, not_a_bearer),
        Case::ext("Bearer with no token", good_ext.clone())
            .auth(Auth::Authorization(b"Bearer ".to_vec()))
            .fails(401, not_a_bearer),
        Case::ext("token with bytes outside ASCII", good_ext.clone())
            .auth(Auth::Authorization(b"Bearer \xff\xfe".to_vec()))
            .fails(401, "bad bearer token"),
        Case::ext("a signature instead of a token", good_ext.clone())
            .auth(Auth::Signed)
            .fails(401, "missing Authorization: Bearer token"),
        // ---- Jira signature: 401 ----------------------------------------------------------
        Case::jira("no signature", good_jira.clone())
            .auth(Auth::None)
            .fails(
                401,
                "missing X-Hub-Signature header: this webhook has a secret, so Jira must sign deliveries",
            ),
        Case::jira("signature without sha256=", good_jira.clone())
            .auth(Auth::Signature(
                sign(JIRA_SECRET, &good_jira).trim_start_matches("sha256=").into(),
            ))
            .fails(401, sig_form),
        Case::jira("sha1= signature", good_jira.clone())
            .auth(Auth::Signature(format!("sha1={}", "ab".repeat(20))))
            .fails(401, sig_form),
        Case::jira("signature not hex", good_jira.clone())
            .auth(Auth::Signature(format!("sha256={}", "zz".repeat(32))))
            .fails(401, sig_form),
        Case::jira("signature too short", good_jira.clone())
            .auth(Auth::Signature("sha256=abcd".into()))
            .fails(401, sig_form),
        Case::jira("signature too long", good_jira.clone())
            .auth(Auth::Signature(format!("{}00", sign(JIRA_SECRET, &good_jira))))
            .fails(401, sig_form),
        Case::jira("empty signature", good_jira.clone())
            .auth(Auth::Signature(String::new()))
            .fails(401, sig_form),
        Case::jira("signed with another secret", good_jira.clone())
            .auth(Auth::Signature(unsigned(&good_jira)))
            .fails(401, bad_sig),
        Case::jira("signature of a different body", good_jira.clone())
            .auth(Auth::Signature(sign(JIRA_SECRET, b"{}")))
            .fails(401, bad_sig),
        Case::jira("a bearer token instead of a signature", good_jira.clone())
            .auth(Auth::Token)
            .fails(
                401,
                "missing X-Hub-Signature header: this webhook has a secret, so Jira must sign deliveries",
            ),
        // ---- malformed JSON: 400 ----------------------------------------------------------
        Case::ext("empty body", "").fails(400, "the body is empty: expected a JSON object"),
        Case::ext("whitespace body", "  \n ")
            .fails(400, "the body is empty: expected a JSON object"),
        Case::ext("lone brace", "{").fails(
            400,
            "body is not valid JSON: EOF while parsing an object at line 1 column 1",
        ),
        Case::ext("truncated delivery", good_ext[..good_ext.len() / 2].to_vec()).fails(
            400,
            format!(
                "body is not valid JSON: EOF while parsing a string at line 1 column {}",
                good_ext.len() / 2
            ),
        ),
        Case::jira("truncated Jira delivery", good_jira[..40].to_vec()).fails(
            400,
            "body is not valid JSON: EOF while parsing a string at line 1 column 40",
        ),
        Case::ext("trailing garbage", "{}x")
            .fails(400, "body is not valid JSON: trailing characters at line 1 column 3"),
        Case::ext("single quotes", "{'sourceIssueId': 1}")
            .fails(400, "body is not valid JSON: key must be a string at line 1 column 2"),
        Case::ext("trailing comma", r#"{"sourceIssueId": "1", "fields": [],}"#)
            .fails(400, "body is not valid JSON: trailing comma at line 1 column 37"),
        Case::ext("NaN", r#"{"sourceIssueId": NaN}"#)
            .fails(400, "body is not valid JSON: expected value at line 1 column 19"),
        Case::ext("number out of range", r#"{"sourceIssueId": 1e400}"#)
            .fails(400, "body is not valid JSON: number out of range at line 1 column 23"),
        Case::ext("byte order mark", "\u{feff}{}".as_bytes().to_vec())
            .fails(400, "body is not valid JSON: expected value at line 1 column 1"),
        Case::ext("invalid UTF-8 in a string", b"{\"sourceIssueId\": \"\xff\xfe\"}".to_vec())
            .fails(
                400,
                "body is not valid JSON: invalid unicode code point at line 1 column 20",
            ),
        Case::ext("invalid UTF-8 outside strings", b"{\xc3\x28: 1}".to_vec())
            .fails(400, "body is not valid JSON: key must be a string at line 1 column 2"),
        Case::ext("lone leading surrogate", r#"{"sourceIssueId": "\ud800", "fields": []}"#)
            .fails(
                400,
                "body is not valid JSON: unexpected end of hex escape at line 1 column 26",
            ),
        Case::ext("lone trailing surrogate", r#"{"sourceIssueId": "\udc00", "fields": []}"#)
            .fails(
                400,
                "body is not valid JSON: lone leading surrogate in hex escape at line 1 column 25",
            ),
        Case::ext("100 000 nested arrays", deep_arrays.clone()).fails(400, recursion(128)),
        Case::jira("100 000 nested arrays, signed, to Jira", deep_arrays)
            .fails(400, recursion(128)),
        Case::ext("200 nested objects", deep_objects).fails(400, recursion(636)),
        // ---- wrong shape, Jira side: 422 --------------------------------------------------
        Case::jira("Jira: an array", "[]").shape("", "the body must be a JSON object"),
        Case::jira("Jira: a string", "\"jira:issue_updated\"")
            .shape("", "the body must be a JSON object"),
        Case::jira("Jira: null", "null").shape("", "the body must be a JSON object"),
        Case::jira("Jira: no webhookEvent", "{}")
            .shape("/webhookEvent", "missing webhookEvent: is this a Jira webhook?"),
        Case::jira("Jira: webhookEvent a number", r#"{"webhookEvent": 5}"#)
            .shape("/webhookEvent", "webhookEvent must be a string"),
        Case::jira("Jira: no issue", r#"{"webhookEvent": "jira:issue_updated"}"#)
            .shape("/issue", "missing issue"),
        Case::jira("Jira: issue an array", r#"{"webhookEvent": "jira:issue_created", "issue": []}"#)
            .shape("/issue", "issue must be an object"),
        Case::jira("Jira: no issue id", r#"{"webhookEvent": "jira:issue_updated", "issue": {"key": "TEST-1"}}"#)
            .shape("/issue/id", "issue.id must be a non-empty string or number"),
        Case::jira("Jira: empty issue id", jira_update("  ", "TEST-1", "x"))
            .shape("/issue/id", "issue.id must be a non-empty string or number"),
        Case::jira("Jira: issue id with JQL", jira_update("1 OR 1=1", "TEST-1", "x")).shape(
            "/issue/id",
            "issue.id must be a Jira issue id: letters, digits, `-` or `_`, at most 255 characters",
        ),
        Case::jira("Jira: issue id with NUL", jira_update("10\u{0}1", "TEST-1", "x")).shape(
            "/issue/id",
            "issue.id must be a Jira issue id: letters, digits, `-` or `_`, at most 255 characters",
        ),
        Case::jira("Jira: fractional issue id", r#"{"webhookEvent": "jira:issue_updated", "issue": {"id": 1.5, "key": "TEST-1"}}"#)
            .shape(
                "/issue/id",
                "issue.id must be a Jira issue id: letters, digits, `-` or `_`, at most 255 characters",
            ),
        Case::jira("Jira: issue key with quotes", jira_update("10001", "TEST-1\" OR \"", "x")).shape(
            "/issue/key",
            "issue.key must be a Jira issue key: letters, digits, `-` or `_`, at most 255 characters",
        ),
        Case::jira("Jira: issue key a number", r#"{"webhookEvent": "jira:issue_updated", "issue": {"id": "1", "key": 7}}"#)
            .shape("/issue/key", "issue.key must be a non-empty string"),
        Case::jira("Jira: fields a string", r#"{"webhookEvent": "jira:issue_updated", "issue": {"id": "1", "key": "TEST-1", "fields": "x"}}"#)
            .shape("/issue/fields", "issue.fields must be an object"),
        Case::jira("Jira: changelog an array", r#"{"webhookEvent": "jira:issue_updated", "issue": {"id": "1", "key": "TEST-1"}, "changelog": []}"#)
            .shape("/changelog", "changelog must be an object"),
        Case::jira("Jira: changelog items an object", r#"{"webhookEvent": "jira:issue_updated", "issue": {"id": "1", "key": "TEST-1"}, "changelog": {"items": {}}}"#)
            .shape("/changelog/items", "changelog.items must be an array"),
        Case::jira("Jira: a changelog item a number", r#"{"webhookEvent": "jira:issue_updated", "issue": {"id": "1", "key": "TEST-1"}, "changelog": {"items": [{"field": "summary"}, 3]}}"#)
            .shape("/changelog/items/1", "changelog items must be objects"),
        // ---- wrong shape, external side: 422 ---------------------------------------------
        Case::ext("ext: an array", "[]")
            .shape("", "the body must be a JSON object (_externalData)"),
        Case::ext("ext: no sourceIssueId", r#"{"fields": []}"#)
            .shape("/sourceIssueId", "missing sourceIssueId"),
        Case::ext("ext: sourceIssueId a boolean", r#"{"sourceIssueId": true, "fields": []}"#)
            .shape("/sourceIssueId", "sourceIssueId must be a non-empty string or a number"),
        Case::ext("ext: sourceIssueId an object", r#"{"sourceIssueId": {"$ne": 1}, "fields": []}"#)
            .shape("/sourceIssueId", "sourceIssueId must be a non-empty string or a number"),
        Case::ext("ext: blank sourceIssueId", ext_update(" \t ", "x"))
            .shape("/sourceIssueId", "sourceIssueId must be a non-empty string or a number"),
        Case::ext("ext: sourceIssueId with NUL", ext_update("A\u{0}B", "x")).shape(
            "/sourceIssueId",
            "sourceIssueId must not contain control characters",
        ),
        Case::ext("ext: sourceIssueId with a newline", ext_update("A\nB", "x")).shape(
            "/sourceIssueId",
            "sourceIssueId must not contain control characters",
        ),
        Case::ext("ext: sourceIssueId of 256 characters", ext_update(&"7".repeat(256), "x"))
            .shape("/sourceIssueId", "sourceIssueId is longer than 255 characters"),
        Case::ext("ext: sourceIssueId of almost a mebibyte", ext_update(&huge_string, "x"))
            .shape("/sourceIssueId", "sourceIssueId is longer than 255 characters"),
        Case::ext("ext: no fields", r#"{"sourceIssueId": "1"}"#)
            .shape("/fields", "missing fields"),
        Case::ext("ext: fields an object", r#"{"sourceIssueId": "1", "fields": {"1001": "x"}}"#)
            .shape("/fields", "fields must be an array"),
        Case::ext("ext: a field a number", r#"{"sourceIssueId": "1", "fields": [1]}"#)
            .shape("/fields/0", "each field must be an object"),
        Case::ext("ext: no fieldId", r#"{"sourceIssueId": "1", "fields": [{"value": "x"}]}"#)
            .shape("/fields/0/fieldId", "missing fieldId"),
        Case::ext("ext: fieldId an array", r#"{"sourceIssueId": "1", "fields": [{"fieldId": 1001, "value": "a"}, {"fieldId": 1002, "value": "b"}, {"fieldId": [], "value": "c"}]}"#)
            .shape("/fields/2/fieldId", "fieldId must be a number or a non-empty string"),
        Case::ext("ext: value an object", r#"{"sourceIssueId": "1", "fields": [{"fieldId": 1001, "value": {"a": 1}}]}"#)
            .shape("/fields/0/value", "value must be a string, number, boolean or null"),
        Case::ext("ext: value an array", r#"{"sourceIssueId": "1", "fields": [{"fieldId": 1001, "value": []}]}"#)
            .shape("/fields/0/value", "value must be a string, number, boolean or null"),
        Case::ext("ext: a date that is not a date", r#"{"sourceIssueId": "1", "fields": [{"fieldId": 1003, "value": "next Tuesday"}]}"#)
            .shape("/fields/0/value", "field 1003: expected a date such as 2025-01-31"),
        Case::ext(
            "ext: 25 000 fields, the last without an id",
            json!({"sourceIssueId": "1", "fields": many_fields_bad}).to_string(),
        )
        .shape("/fields/25000/fieldId", "fieldId must be a number or a non-empty string"),
        // ---- accepted, duplicates and ignored ---------------------------------------------
        Case::ext("ext: 25 000 unmapped fields", json!({"sourceIssueId": "1", "fields": many_fields}).to_string())
            .ok(200, "ignored"),
        Case::ext("ext: a huge unmapped value", json!({"sourceIssueId": "1", "fields": [{"fieldId": 9, "value": huge_string}]}).to_string())
            .ok(200, "ignored"),
        Case::ext("ext: a good delivery", good_ext.clone())
            .header("X-Delivery-Id", "hostile-1")
            .ok(202, "queued"),
        Case::ext("ext: the same X-Delivery-Id again", ext_update("900", "a different body"))
            .header("X-Delivery-Id", "hostile-1")
            .ok(200, "duplicate"),
        Case::ext("ext: Idempotency-Key", ext_update("901", "once"))
            .header("Idempotency-Key", "hostile-2")
            .ok(202, "queued"),
        Case::ext("ext: the same Idempotency-Key again", ext_update("901", "once"))
            .header("Idempotency-Key", "hostile-2")
            .ok(200, "duplicate"),
        Case::ext("ext: the same body without an id, first", ext_update("902", "same"))
            .ok(202, "queued"),
        Case::ext("ext: the same body without an id, again", ext_update("902", "same"))
            .ok(200, "duplicate"),
        Case::ext("ext: charset parameter and capitals", ext_update("903", "x"))
            .content_type(Some("Application/JSON; charset=utf-8"))
            .ok(202, "queued"),
        Case::ext("ext: vendor +json type", ext_update("904", "x"))
            .content_type(Some("application/vnd.acme+json"))
            .ok(202, "queued"),
        Case::ext("ext: lower-case bearer", ext_update("905", "x"))
            .auth(Auth::Authorization(format!("bearer {EXT_TOKEN}").into_bytes()))
            .ok(202, "queued"),
        Case::ext("ext: NUL, RTL override and emoji in a value", ext_update("906", "a\u{0}b \u{202e}txet 🚒👩‍🚒"))
            .ok(202, "queued"),
        Case::ext("ext: escaped surrogate pair in a value", r#"{"sourceIssueId": "907", "fields": [{"fieldId": 1001, "value": "\ud83d\ude92"}]}"#)
            .ok(202, "queued"),
        Case::ext("ext: a number as a text value", r#"{"sourceIssueId": 908, "fields": [{"fieldId": 1001, "value": 42}]}"#)
            .ok(202, "queued"),
        Case::ext("ext: chunked, within the limit", "")
            .body(Body::Chunked(ext_update("909", "chunked")))
            .ok(202, "queued"),
        Case::jira("Jira: a good delivery", good_jira.clone())
            .header("X-Atlassian-Webhook-Identifier", "hostile-jira-1")
            .ok(202, "queued"),
        Case::jira("Jira: the same identifier again", jira_update("10900", "TEST-900", "changed"))
            .header("X-Atlassian-Webhook-Identifier", "hostile-jira-1")
            .ok(200, "duplicate"),
        Case::jira("Jira: upper-case hex and spaces around the signature", jira_update("10901", "TEST-901", "x"))
            .auth(Auth::Signature(format!(
                "  sha256={}  ",
                sign(JIRA_SECRET, &jira_update("10901", "TEST-901", "x"))[7..].to_uppercase()
            )))
            .ok(202, "queued"),
        Case::jira("Jira: RTL and emoji summary", jira_update("10902", "TEST-902", "\u{202e}שלום 🚒"))
            .ok(202, "queued"),
        Case::jira("Jira: an event we do not sync", r#"{"webhookEvent": "worklog_created", "worklog": {}}"#)
            .ok(200, "ignored"),
        Case::jira("Jira: a comment event without its issue", r#"{"webhookEvent": "comment_created", "comment": {}}"#)
            .shape("/issue", "missing issue"),
        Case::jira("Jira: a change to an unmapped field", json!({
            "webhookEvent": "jira:issue_updated",
            "issue": {"id": "10903", "key": "TEST-903", "fields": {"labels": ["a"]}},
            "changelog": {"items": [{"fieldId": "labels", "field": "labels"}]}
        }).to_string())
            .ok(200, "ignored"),
    ];
    // Paths that need a different route than their constructor gave them.
    for c in &mut cases {
        match c.name {
            "GET on a webhook route" => c.method = "GET",
            "PUT on a webhook route" => c.method = "PUT",
            "unknown connection" => c.path = "/webhooks/nope/external".into(),
            "unknown side" => c.path = "/webhooks/seed/jirra".into(),
            "side in capitals" => c.path = "/webhooks/seed/JIRA".into(),
            "connection name with JQL and quotes" => {
                c.path = "/webhooks/a%22%20OR%201%3D1/external".into()
            }
            "connection name of 300 characters is echoed cut short" => {
                c.path = format!("/webhooks/{}/external", "c".repeat(300))
            }
            "missing side" => c.path = "/webhooks/seed".into(),
            "extra path segment" => c.path = "/webhooks/seed/external/more".into(),
            _ => {}
        }
    }
    // Ids full of JQL syntax: accepted (they are legal external ids) on both connections.
    for (i, id) in JQL_IDS.iter().enumerate() {
        if id.contains('\n') {
            continue;
        }
        let mut c = Case::new(
            "ext: an id full of JQL syntax",
            "/webhooks/ids/external",
            ext_update(id, "x"),
        )
        .ok(202, "queued");
        c.extra_headers.push(("X-Delivery-Id", format!("jql-{i}")));
        cases.push(c);
    }
    cases
}

/// Polls until no event is pending or leased.
async fn quiesce(t: &Running) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let depth = t.engine.store.queue_depth().await.unwrap();
        if common::busy(&depth) == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "queue did not drain: {depth:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_catalogue_gets_exact_answers_and_loses_nothing() {
    let w = world().await;
    let addr = w.tandem.addr;
    let cases = catalogue();
    assert!(cases.len() >= 60, "the catalogue has {} cases", cases.len());

    let mut failures = Vec::new();
    let mut accepted: Vec<(String, i64)> = Vec::new();
    for c in &cases {
        let r = send(addr, c).await;
        let got = if r.status < 300 {
            r.json["status"].as_str().map(str::to_string)
        } else {
            r.json["error"].as_str().map(str::to_string)
        };
        let path = r.json.get("path").and_then(Value::as_str);
        if r.status != c.status
            || got.as_deref() != Some(c.answer.as_str())
            || (c.status == 422 && path != c.json_path)
        {
            failures.push(format!(
                "{}: expected {} {:?} (path {:?}), got {} {}",
                c.name,
                c.status,
                c.answer,
                c.json_path,
                r.status,
                r.raw.chars().take(300).collect::<String>()
            ));
        }
        // No answer may quote a credential back.
        for secret in [JIRA_SECRET, EXT_TOKEN] {
            assert!(
                !r.raw.contains(secret),
                "{}: answer echoes a secret",
                c.name
            );
        }
        if r.status == 202 {
            for id in r.json["events"].as_array().into_iter().flatten() {
                accepted.push((
                    c.name.to_string(),
                    id.as_i64().expect("event ids are numbers"),
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases answered differently:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // The process is still healthy.
    let http = reqwest::Client::new();
    for route in ["/healthz", "/readyz"] {
        let status = http
            .get(format!("http://{addr}{route}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{route} after the catalogue");
    }

    // Every accepted event reached a final state; none vanished.
    quiesce(&w.tandem).await;
    assert!(accepted.len() >= 15, "accepted: {accepted:?}");
    for (name, id) in &accepted {
        let ev = w.tandem.engine.store.get_event(*id).await.unwrap();
        let ev = ev.unwrap_or_else(|| panic!("{name}: accepted event {id} vanished"));
        assert!(
            matches!(
                ev.status,
                EventStatus::Done | EventStatus::Ignored | EventStatus::Dead
            ),
            "{name}: event {id} ended {:?}",
            ev.status
        );
    }

    // Ids full of JQL syntax stayed inside one quoted literal: each search Tandem sent is
    // `project = "TEST" AND cf[N] ~ <phrase>` and the phrase is exactly the id, quoted.
    let searches: Vec<String> = w
        .jira
        .request_log()
        .into_iter()
        .filter(|r| r.path.ends_with("/search/jql"))
        .filter_map(|r| r.body["jql"].as_str().map(str::to_string))
        .collect();
    for id in JQL_IDS.iter().filter(|id| !id.contains('\n')) {
        let phrase = format!("\"{}\"", id.replace('\\', "\\\\").replace('"', "\\\""));
        let found = searches.iter().any(|text| {
            let Ok(q) = jql::parse(text) else {
                return false;
            };
            match q.filter {
                Some(Expr::And(left, right)) => {
                    matches!(*left, Expr::Clause { ref field, op: Op::Eq, operand: Operand::Value(ref p) } if field == "project" && p == "TEST")
                        && matches!(*right, Expr::Clause { ref field, op: Op::Like, operand: Operand::Value(ref v) } if field.starts_with("cf[") && *v == phrase)
                }
                _ => false,
            }
        });
        assert!(
            found,
            "no search kept {id:?} inside one quoted phrase; searches sent:\n{}",
            searches.join("\n")
        );
    }
    w.tandem.shutdown().await;
}
