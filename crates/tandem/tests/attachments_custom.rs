//! Attachments of a `format = "custom"` REST system, end to end: the external sandbox's
//! second file shape (`/issues/{n}/files`, no hash in the listing, relative download links,
//! uploads as `multipart/form-data` with the part `upload` or as JSON with the content in
//! base64) reached through `[connection.external.attachment]`, with Tandem serving and the
//! Redmine-style items polled. Files cross both ways byte-identical, deletions follow, and
//! uploads whose answer was lost make no second copy.

mod common;

use common::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A file's worth of bytes that no two seeds share.
fn content(seed: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x: u32 = 0x85EB_CA6B ^ u32::from(seed);
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push((x >> 24) as u8);
    }
    out
}

fn identities(files: &[(String, String, Vec<u8>)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = files.iter().map(|(_, n, d)| (n.clone(), sha(d))).collect();
    v.sort();
    v
}

/// The attachment table for the sandbox's custom file shape, uploading with `upload`.
fn attachment_table(upload: &str) -> String {
    format!(
        r#"
[connection.external.attachment.list]
path = "/issues/{{id}}/files"
items_pointer = "/files"
id_pointer = "/file_id"
filename_pointer = "/name"
size_pointer = "/bytes"
content_type_pointer = "/mime"
url_pointer = "/links/raw"

[connection.external.attachment.upload]
path = "/issues/{{id}}/files"
attachment_pointer = "/file"
{upload}

[connection.external.attachment.delete]
path = "/files/{{attachment_id}}"
"#
    )
}

const MULTIPART: &str = "encoding = \"multipart\"\nfield = \"upload\"\n";
const BASE64: &str = "encoding = \"base64\"\n\
    body = '{\"upload\": {\"name\": {{filename}}, \"mime\": {{content_type}}, \"data\": {{content}}}}'\n";

async fn custom_world(upload: &str, max_attempts: u32) -> World {
    world(Options {
        external: Some(format!("{}{}", REDMINE, attachment_table(upload))),
        poll_interval: Some("1s"),
        max_attempts,
        ..Options::default()
    })
    .await
}

/// An item made in the tracker and its Jira twin (found by the poll): (Jira key, item id).
async fn linked_pair(w: &World, summary: &str) -> (String, String) {
    let ext_id = w.external.user_create(vec![(1001, summary.into())]);
    let number = ext_id.trim_start_matches("EXT-").to_string();
    let link_field = w.jira.external_id_field().to_string();
    let issue = eventually("Jira twin of the tracker item", || {
        w.jira
            .issues()
            .into_iter()
            .find(|i| i["fields"][&link_field] == json!(number))
    })
    .await;
    quiesce(w).await;
    (issue["key"].as_str().expect("key").to_string(), ext_id)
}

/// Upload calls Tandem made: (to Jira, to the tracker).
fn uploads(w: &World) -> (usize, usize) {
    let jira = w
        .jira
        .request_log()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/attachments"))
        .count();
    let ext = w
        .external
        .request_log()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/files"))
        .count();
    (jira, ext)
}

/// Lets several polls pass (the tracker sends no webhooks) and the queue drain.
async fn settle(w: &World) {
    quiesce(w).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    quiesce(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_multipart_files_cross_both_ways_and_deletions_follow() {
    let w = custom_world(MULTIPART, 4).await;
    let (key, ext) = linked_pair(&w, "Broken printer").await;

    // Jira → tracker, through the multipart part `upload`.
    let manual = content(1, 300 * 1024);
    let jira_att = w.jira.user_attach(
        "alice",
        &key,
        "manual.pdf",
        "application/pdf",
        manual.clone(),
    );
    let outside = eventually("the manual in the tracker", || {
        Some(w.external.attachments(&ext)).filter(|l| !l.is_empty())
    })
    .await;
    assert_eq!(
        identities(&outside),
        vec![("manual.pdf".to_string(), sha(&manual))]
    );
    let sent = w
        .external
        .request_log()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/files"))
        .expect("the upload");
    assert!(
        sent.body
            .as_str()
            .is_some_and(|b| b.starts_with("multipart")),
        "{:?}",
        sent.body
    );

    // Tracker → Jira: the listing has no hash, so Tandem downloads (the relative link) and
    // hashes it.
    let photo = content(2, 70_000);
    let ext_att = w
        .external
        .user_attach(&ext, "photo.png", "image/png", photo.clone());
    eventually("the photo in Jira", || {
        Some(w.jira.attachments(&key)).filter(|l| l.len() == 2)
    })
    .await;
    settle(&w).await;
    let both = vec![
        ("manual.pdf".to_string(), sha(&manual)),
        ("photo.png".to_string(), sha(&photo)),
    ];
    assert_eq!(identities(&w.jira.attachments(&key)), both);
    assert_eq!(identities(&w.external.attachments(&ext)), both);
    assert_eq!(
        uploads(&w),
        (1, 1),
        "one upload each way, polls re-listing notwithstanding"
    );
    assert!(
        w.external
            .request_log()
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with("/raw")),
        "the tracker's file was read through its relative link"
    );

    // Deletions follow both ways, through `attachment.delete`.
    assert!(w.jira.user_delete_attachment("alice", &jira_att));
    eventually("the manual deleted in the tracker", || {
        Some(()).filter(|_| w.external.attachments(&ext).len() == 1)
    })
    .await;
    assert!(w.external.user_delete_attachment(&ext, &ext_att));
    eventually("the photo deleted in Jira", || {
        Some(()).filter(|_| w.jira.attachments(&key).is_empty())
    })
    .await;
    settle(&w).await;
    assert!(w.external.attachments(&ext).is_empty());
    assert_eq!(uploads(&w), (1, 1), "nothing uploaded back");
    assert!(
        w.external
            .request_log()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.starts_with("/files/")),
        "deleted through the configured path"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_base64_uploads_whose_answers_are_lost_make_no_second_copy() {
    let w = custom_world(BASE64, 40).await;
    let (key, ext) = linked_pair(&w, "Logs attached").await;

    // Half the tracker's answers lost after it acted, uploads included.
    w.external.faults().set_lost_response_rate(0.5);
    // 200_001 bytes: a length that is no multiple of 3, over several encoding buffers.
    let files: Vec<Vec<u8>> = (0..3u8)
        .map(|i| content(10 + i, 200_001 + usize::from(i)))
        .collect();
    for (i, f) in files.iter().enumerate() {
        w.jira.user_attach(
            "bob",
            &key,
            &format!("log-{i}.txt"),
            "text/plain",
            f.clone(),
        );
    }
    eventually("three files in the tracker", || {
        Some(()).filter(|_| w.external.attachments(&ext).len() >= 3)
    })
    .await;
    w.external.faults().clear();
    settle(&w).await;
    let outside = w.external.attachments(&ext);
    let expected: Vec<(String, String)> = {
        let mut v: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("log-{i}.txt"), sha(f)))
            .collect();
        v.sort();
        v
    };
    assert_eq!(identities(&outside), expected, "once each, byte-identical");
    assert_eq!(identities(&w.jira.attachments(&key)), expected);
    assert_eq!(uploads(&w).0, 0, "nothing came back to Jira");
    let sent = w
        .external
        .request_log()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/files"))
        .expect("an upload");
    assert!(
        sent.body
            .as_str()
            .is_some_and(|b| b.starts_with("upload body")),
        "a JSON body, not multipart: {:?}",
        sent.body
    );
    let depth = w.engine().store.queue_depth().await.unwrap();
    assert!(
        depth
            .iter()
            .all(|(_, s, _)| *s != tandem::store::EventStatus::Dead),
        "{depth:?}"
    );
    w.stop().await;
}

/// A custom connector on `base_url`, with `extra` lines for the attachment download table.
fn custom_connector(base: &str, download_extra: &str) -> tandem::connector::rest::RestConnector {
    let text = format!(
        r#"
base_url = "{base}"
format = "custom"
auth = {{ type = "bearer", token = "file-token-1" }}
[operations.update]
method = "PUT"
path = "/t/{{id}}"
[attachment.list]
path = "/t/{{id}}/files"
url_pointer = "/href"
[attachment.upload]
path = "/t/{{id}}/files"
encoding = "multipart"
[attachment.download]
{download_extra}
[webhook]
id_pointer = "/ticket/id"
event_pointer = "/action"
attachment_id_pointer = "/file/id"
"#
    );
    let cfg: tandem::config::RestConfig =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    tandem::connector::rest::RestConnector::new(
        &cfg,
        tandem::connector::ConnectorContext::new(
            tandem_core::Side::External,
            tandem_core::mapping::Mapping { fields: vec![] },
            reqwest::Client::new(),
        ),
    )
    .expect("connector")
}

/// A file URL on another host is fetched without the connection's credentials, unless its
/// origin is named in `download.credentials_for`; a delivery naming a file is one
/// `Attached` event for its item.
#[tokio::test]
async fn file_urls_elsewhere_get_no_credentials_unless_configured() {
    use std::sync::{Arc, Mutex};
    use tandem::connector::Connector;
    // The "file store": answers bytes and remembers each request's Authorization header.
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/f",
        axum::routing::get(move |h: axum::http::HeaderMap| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(
                    h.get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                );
                "abc"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let file = tandem_core::attachment::Attachment {
        id: "1".into(),
        filename: "a.txt".into(),
        size: 3,
        sha256: None,
        content_type: None,
        url: Some(format!("{store}/f")),
    };
    // base_url is another host (never contacted here).
    let c = custom_connector("http://127.0.0.1:9", "");
    let mut d = c.download_attachment("7", &file).await.expect("download");
    while d.next_chunk().await.expect("chunk").is_some() {}
    let trusted = custom_connector(
        "http://127.0.0.1:9",
        &format!("credentials_for = [\"{store}\"]"),
    );
    let mut d = trusted
        .download_attachment("7", &file)
        .await
        .expect("download");
    while d.next_chunk().await.expect("chunk").is_some() {}
    assert_eq!(
        *seen.lock().unwrap(),
        vec![None, Some("Bearer file-token-1".to_string())]
    );

    let events = c
        .parse_webhook(
            "conn",
            &axum::http::HeaderMap::new(),
            json!({"action": "file_added", "ticket": {"id": 7}, "file": {"id": 12}})
                .to_string()
                .as_bytes(),
            chrono::Utc::now(),
        )
        .expect("file delivery");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, tandem_core::ChangeKind::Attached);
    assert_eq!(events[0].item_id, "7");
    let events = c
        .parse_webhook(
            "conn",
            &axum::http::HeaderMap::new(),
            json!({"action": "updated", "ticket": {"id": 7}})
                .to_string()
                .as_bytes(),
            chrono::Utc::now(),
        )
        .expect("item delivery");
    assert!(
        events
            .iter()
            .all(|e| e.kind != tandem_core::ChangeKind::Attached)
    );
}
