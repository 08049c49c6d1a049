//! Fuzz target bodies, shared by the cargo-fuzz crate (`fuzz/`) and the stable-Rust smoke
//! test (`tests/fuzz_smoke.rs`), so both exercise exactly the same code.
//!
//! Each target takes arbitrary bytes and must return without panicking; where a round trip
//! is part of the contract (a value read from text writes back to text that reads the same;
//! a rich-text document survives ADF) the target asserts it, so a fuzzer finds wrong answers
//! as well as crashes. Nothing here touches the network: connectors are built from a fixed
//! configuration with an unused HTTP client. Not part of the public API.

use crate::connector::{self, Connector, ConnectorContext};
use axum::http::{HeaderMap, HeaderValue};
use chrono::{TimeZone, Utc};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use tandem_core::Side;
use tandem_core::convert::{from_text, to_text};
use tandem_core::mapping::{FieldType, parse_csv, validate};
use tandem_core::richtext::Doc;

/// A connection with every field type mapped, pointing at an address nothing listens on.
const CONFIG: &str = r#"
[storage]
url = "sqlite://fuzz.db"
[[connection]]
name = "fuzz"
[[connection.field]]
jira = "summary"
external = "1001"
[[connection.field]]
jira = "description"
external = "1002"
type = "richtext"
[[connection.field]]
jira = "duedate"
external = "1003"
type = "date"
[[connection.field]]
jira = "customfield_10001"
external = "1004"
type = "number"
[[connection.field]]
jira = "labels"
external = "1005"
type = "labels"
[[connection.field]]
jira = "priority"
external = "1006"
type = "option"
[connection.jira]
base_url = "http://127.0.0.1:9"
api = "cloud"
email = "fuzz@example.com"
api_token = "fuzz-token"
project = "FUZZ"
[connection.external]
type = "rest"
base_url = "http://127.0.0.1:9"
auth = { type = "basic", username = "u", password = "p" }
"#;

/// The two connectors of the fuzz connection, built once per process.
fn connectors() -> &'static (Arc<dyn Connector>, Arc<dyn Connector>) {
    static BUILT: OnceLock<(Arc<dyn Connector>, Arc<dyn Connector>)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let config = crate::config::load_str(CONFIG, Path::new("fuzz.toml"), |_| None)
            .expect("the fuzz configuration is valid");
        let conn = &config.connections[0];
        let http = reqwest::Client::new();
        let ctx = |side| ConnectorContext::new(side, conn.fields.clone(), http.clone());
        let jira = connector::build(&conn.jira, ctx(Side::Jira)).expect("jira connector");
        let external =
            connector::build(&conn.external, ctx(Side::External)).expect("rest connector");
        (jira, external)
    })
}

/// Headers a delivery might carry; the first line of the input becomes the delivery id so
/// the fuzzer can reach header handling too.
fn headers(data: &[u8], name: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let first = data.split(|b| *b == b'\n').next().unwrap_or_default();
    if let Ok(v) = HeaderValue::from_bytes(first) {
        h.insert(name, v);
    }
    h
}

fn now() -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_767_000_000, 0)
        .single()
        .unwrap_or_default()
}

/// A Jira delivery through the Jira connector's `parse_webhook` (no secret, so parsing is
/// reached), then the signature check against arbitrary header bytes.
pub fn webhook_jira(data: &[u8]) {
    let (jira, _) = connectors();
    let h = headers(data, connector::jira::webhook::IDENTIFIER_HEADER);
    if let Ok(events) = jira.parse_webhook("fuzz", &h, data, now()) {
        for e in events {
            assert_eq!(e.connection, "fuzz");
            assert!(!e.item_id.is_empty(), "an accepted event names its item");
        }
    }
    let secret = crate::secret::Secret::new("fuzz-secret");
    let h = headers(data, connector::jira::webhook::SIGNATURE_HEADER);
    // Only a correct HMAC may pass; the fuzzer cannot forge one.
    assert!(connector::jira::webhook::verify_signature(&secret, &h, data).is_err());
}

/// A delivery through the REST connector's `parse_webhook` (seed format), then bearer-token
/// checks against arbitrary header bytes and the id-only reader.
pub fn webhook_rest(data: &[u8]) {
    let (_, rest) = connectors();
    let h = headers(data, "x-delivery-id");
    if let Ok(events) = rest.parse_webhook("fuzz", &h, data, now()) {
        for e in events {
            assert!(
                !e.item_id.trim().is_empty(),
                "an accepted event names its item"
            );
            assert!(!e.item_id.chars().any(char::is_control));
        }
    }
    let token = crate::secret::Secret::new("fuzz-token");
    let h = headers(data, "authorization");
    assert!(connector::rest::webhook::verify_bearer(&token, &h).is_err());
    if let Ok(v) = connector::rest::webhook::parse_json(data) {
        let _ = connector::rest::webhook::parse_id_only(&v, "/id", Some("/event"));
    }
}

/// A mapping file: parse, and validate what parses.
pub fn mapping_csv(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_csv(text, "fuzz.csv") {
        Ok(m) => {
            let _ = validate(&m);
        }
        Err(errors) => assert!(!errors.to_string().is_empty(), "errors say something"),
    }
}

/// Text read as each field type, written back and read again: the same value.
pub fn convert(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for ty in FieldType::ALL {
        let Ok(value) = from_text(&text, ty) else {
            continue;
        };
        let written = to_text(&value);
        match from_text(&written, ty) {
            Ok(again) => assert!(
                value == again,
                "{ty:?}: {text:?} read as {value:?}, written as {written:?}, read back as {again:?}"
            ),
            Err(e) => panic!("{ty:?}: {text:?} written as {written:?} does not read back: {e}"),
        }
    }
}

/// Arbitrary JSON read as ADF and arbitrary text read as wiki markup; what is read must
/// survive a write and a read in the same format.
pub fn richtext(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(doc) = Doc::from_adf(&v)
    {
        let again = Doc::from_adf(&doc.to_adf()).expect("our own ADF reads back");
        assert!(
            doc == again,
            "ADF round trip changed {doc:?} into {again:?}"
        );
        let _ = doc.to_wiki();
        let _ = doc.to_plain();
    }
    let text = String::from_utf8_lossy(data);
    let doc = Doc::from_wiki(&text);
    let _ = doc.to_adf();
    let _ = Doc::from_wiki(&doc.to_wiki());
}

/// A target: arbitrary bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target by name, for drivers that pick one at run time.
pub const TARGETS: [(&str, Target); 5] = [
    ("webhook_jira", webhook_jira),
    ("webhook_rest", webhook_rest),
    ("mapping_csv", mapping_csv),
    ("convert", convert),
    ("richtext", richtext),
];
