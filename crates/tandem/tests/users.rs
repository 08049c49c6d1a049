//! People end to end, on the sandboxes with `tandem serve` running: an assignee crosses both
//! ways through the user map and by e-mail (Jira's user search), Cloud is written
//! `{"accountId": …}` and Data Center `{"name": …}`, and a user with no match never clears
//! the field: `keep` leaves it (with an audit row and a metric), `default:<user>` writes the
//! default without it coming back, `fail` makes a dead letter naming the user.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use tandem_sandbox::RecordedRequest;

/// The seed mapping plus the assignee, a user field outside with id 1005.
fn mapping() -> (&'static str, String) {
    (
        "fieldMappings.csv",
        format!("{MAPPING}assignee,1005,both,user\n"),
    )
}

const ALICE: &str = "5b10ac8d82e05b22cc7d4ef5";
const BOB: &str = "5b10a2844c20165700ede21g";

/// A world whose connection has `[connection.users]` with `users` (its keys) and the user
/// map `map` as users.csv.
async fn people(users: &str, map: &str, datacenter: bool) -> World {
    world(Options {
        mapping: Some(mapping()),
        files: vec![("users.csv", map.to_string())],
        connection_extra: format!("[connection.users]\nmap = \"users.csv\"\n{users}\n"),
        datacenter,
        ..Options::default()
    })
    .await
}

const MAP: &str = "jiraUser,externalUser\nalice@example.com,ext-alice\n";

/// The Jira issue's assignee, as its account id.
fn jira_assignee(w: &World, key: &str) -> Option<String> {
    w.jira.issue(key).and_then(|i| {
        i["fields"]["assignee"]["accountId"]
            .as_str()
            .map(str::to_string)
    })
}

/// Issue edits Tandem sent to Jira with an assignee in them: the assignee objects.
fn jira_assignee_writes(w: &World) -> Vec<Value> {
    w.jira_writes()
        .into_iter()
        .filter_map(|r: RecordedRequest| r.body["fields"].get("assignee").cloned())
        .collect()
}

fn user_searches(w: &World) -> Vec<RecordedRequest> {
    w.jira
        .request_log()
        .into_iter()
        .filter(|r| r.path.ends_with("/user/search"))
        .collect()
}

/// Waits for the engine to settle, then a little longer for late webhooks of Tandem's own
/// writes, and settles again.
async fn settle(w: &World) {
    quiesce(w).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    quiesce(w).await;
}

async fn linked_pair(w: &World, fields: Value) -> (String, String) {
    let key = w.jira.user_create_issue("TEST", fields);
    let twin = eventually("twin outside", || w.twins_of(&key).into_iter().next()).await;
    settle(w).await;
    (key, twin["id"].as_str().unwrap().to_string())
}

fn ext_assignee(w: &World, id: &str) -> Option<String> {
    w.external.item(id).and_then(|i| ext_field(&i, 1005))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assignee_crosses_both_ways_through_the_map_and_by_e_mail() {
    let w = people("", MAP, false).await;

    // Jira → outside: Alice through the map, Bob (not in it) by his e-mail.
    let (key, ext) = linked_pair(
        &w,
        json!({"summary": "Printer on fire", "assignee": {"accountId": ALICE}}),
    )
    .await;
    assert_eq!(ext_assignee(&w, &ext).as_deref(), Some("ext-alice"));
    w.jira
        .user_edit_issue(&key, json!({"assignee": {"accountId": BOB}}));
    eventually("Bob outside", || {
        ext_assignee(&w, &ext).filter(|a| a == "bob@example.com")
    })
    .await;

    // Outside → Jira: the map's login, then an e-mail Jira knows.
    assert!(w.external.user_edit(&ext, vec![(1005, "ext-alice".into())]));
    eventually("Alice in Jira", || {
        jira_assignee(&w, &key).filter(|a| a == ALICE)
    })
    .await;
    assert!(
        w.external
            .user_edit(&ext, vec![(1005, "Bob@Example.com".into())])
    );
    eventually("Bob in Jira", || {
        jira_assignee(&w, &key).filter(|a| a == BOB)
    })
    .await;
    settle(&w).await;

    // Cloud writes account ids; each of Tandem's writes came back as an echo only.
    assert_eq!(
        jira_assignee_writes(&w),
        [json!({"accountId": ALICE}), json!({"accountId": BOB})]
    );
    let writes = (w.jira_writes().len(), w.external_writes().len());
    settle(&w).await;
    assert_eq!(
        (w.jira_writes().len(), w.external_writes().len()),
        writes,
        "no write after the echoes"
    );
    // The address stays as the person typed it: Jira's echo is an echo, not a rewrite.
    assert_eq!(ext_assignee(&w, &ext).as_deref(), Some("Bob@Example.com"));

    // The user search is asked once per person and question, then answered from the cache.
    let searches = user_searches(&w);
    let queries: Vec<String> = searches
        .iter()
        .map(|r| r.query.clone().unwrap_or_default())
        .collect();
    let users = w.engine().connections["seed"].users.clone().unwrap();
    let (hits, misses) = users.cache_stats();
    println!(
        "user searches sent: {} ({queries:?}); resolver cache: {hits} hits, {misses} misses",
        searches.len()
    );
    let mut unique = queries.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        queries.len(),
        "no question asked twice: {queries:?}"
    );
    assert!(hits > 0, "the cache answered some lookups");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_user_keeps_the_field_and_is_audited_and_counted() {
    let w = people("", MAP, false).await;
    let (key, ext) = linked_pair(
        &w,
        json!({"summary": "Printer on fire", "assignee": {"accountId": ALICE}}),
    )
    .await;

    // Nobody in Jira has this address: the summary crosses, the assignee stays Alice.
    assert!(w.external.user_edit(
        &ext,
        vec![
            (1001, "Printer on fire again".into()),
            (1005, "zed@nowhere.example".into())
        ]
    ));
    eventually("the summary in Jira", || {
        w.jira
            .issue(&key)
            .filter(|i| i["fields"]["summary"] == "Printer on fire again")
    })
    .await;
    settle(&w).await;
    assert_eq!(jira_assignee(&w, &key).as_deref(), Some(ALICE), "kept");
    assert!(
        jira_assignee_writes(&w).is_empty(),
        "{:?}",
        jira_assignee_writes(&w)
    );
    let store = &w.engine().store;
    let audit = store.list_audit(Some("seed"), 50).await.unwrap();
    let miss = audit
        .iter()
        .find(|a| a.actor.starts_with("user:unmatched"))
        .expect("an audit row for the miss");
    assert_eq!(miss.field, "assignee");
    assert_eq!(
        miss.from,
        Some(tandem_core::FieldValue::User("zed@nowhere.example".into()))
    );
    assert!(miss.actor.contains("keep"), "{}", miss.actor);
    if let Some(metrics) = tandem::app::metrics_handle() {
        let text = metrics.render();
        let series = "tandem_user_unmatched_total{connection=\"seed\",side=\"external\"}";
        assert!(text.contains(series), "no {series} in:\n{text}");
    }
    // Jira's assignee did not travel back over the unmatched one either.
    assert_eq!(
        ext_assignee(&w, &ext).as_deref(),
        Some("zed@nowhere.example")
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_user_is_written_for_an_unmatched_one_and_does_not_come_back() {
    let w = people("unmatched_user = \"default:bob@example.com\"", MAP, false).await;
    let (key, ext) = linked_pair(&w, json!({"summary": "Printer on fire"})).await;
    assert!(w.external.user_edit(&ext, vec![(1005, "zed".into())]));
    eventually("the default in Jira", || {
        jira_assignee(&w, &key).filter(|a| a == BOB)
    })
    .await;
    settle(&w).await;
    // Jira's echo of the default is an echo: the unmatched user stays outside.
    assert_eq!(ext_assignee(&w, &ext).as_deref(), Some("zed"));
    assert_eq!(jira_assignee_writes(&w), [json!({"accountId": BOB})]);
    let audit = w.engine().store.list_audit(Some("seed"), 50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.actor.starts_with("user:unmatched (default")),
        "{audit:?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_fail_an_unmatched_user_makes_a_dead_letter_naming_them() {
    let w = people("unmatched_user = \"fail\"", MAP, false).await;
    let (key, ext) = linked_pair(&w, json!({"summary": "Printer on fire"})).await;
    assert!(
        w.external
            .user_edit(&ext, vec![(1001, "Renamed".into()), (1005, "zed".into())])
    );
    let dead = eventually("a dead letter", || {
        let store = w.engine().store.clone();
        let list = futures_block(async move { store.list_dead_letters(Some("seed"), 10).await });
        list.ok().and_then(|l| l.into_iter().next())
    })
    .await;
    assert!(dead.reason.contains("`zed`"), "{}", dead.reason);
    assert!(dead.reason.contains("unmatched_user"), "{}", dead.reason);
    assert_eq!(
        w.jira.issue(&key).unwrap()["fields"]["summary"],
        "Printer on fire",
        "nothing of the event was written"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_center_writes_users_by_name() {
    // On Data Center the map's Jira column holds user names.
    let map = "jiraUser,externalUser\nbob,ext-bob\n";
    let w = people("", map, true).await;
    let (key, ext) = linked_pair(&w, json!({"summary": "Printer on fire"})).await;
    assert!(w.external.user_edit(&ext, vec![(1005, "ext-bob".into())]));
    eventually("Bob in Jira", || {
        jira_assignee(&w, &key).filter(|a| a == BOB)
    })
    .await;
    assert!(
        w.external
            .user_edit(&ext, vec![(1005, "alice@example.com".into())])
    );
    eventually("Alice in Jira", || {
        jira_assignee(&w, &key).filter(|a| a == ALICE)
    })
    .await;
    settle(&w).await;
    assert_eq!(
        jira_assignee_writes(&w),
        [json!({"name": "bob"}), json!({"name": "alice"})]
    );
    assert!(
        user_searches(&w)
            .iter()
            .all(|r| r.path == "/rest/api/2/user/search"),
        "Data Center searches by username on REST v2"
    );

    // And back: Jira's name becomes the map's login outside.
    w.jira
        .user_edit_issue(&key, json!({"assignee": {"accountId": BOB}}));
    eventually("Bob outside", || {
        ext_assignee(&w, &ext).filter(|a| a == "ext-bob")
    })
    .await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_users_lists_who_does_not_match() {
    let map = "jiraUser,externalUser\nalice@example.com,ext-alice\ncarol@example.com,ext-carol\n";
    let w = world(Options {
        mapping: Some(mapping()),
        files: vec![("users.csv", map.to_string())],
        connection_extra: "[connection.users]\nmap = \"users.csv\"\n".into(),
        serve: false,
        ..Options::default()
    })
    .await;
    w.jira.user_create_issue(
        "TEST",
        json!({"summary": "Mapped", "assignee": {"accountId": ALICE}}),
    );
    w.jira.user_create_issue(
        "TEST",
        json!({"summary": "By e-mail", "assignee": {"accountId": BOB}}),
    );
    w.external
        .user_create(vec![(1001, "Nobody's".into()), (1005, "zed".into())]);
    w.external
        .user_create(vec![(1001, "Alice's".into()), (1005, "ext-alice".into())]);
    let config = tandem::config::load(&w.config_path()).unwrap();
    let list = tandem::users::check_users(&config.connections[0], &reqwest::Client::new())
        .await
        .unwrap();
    let got: Vec<(String, String, String)> = list
        .iter()
        .map(|u| (u.side.to_string(), u.user.clone(), u.seen.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "jira".to_string(),
                "carol@example.com".to_string(),
                "users.csv:3, not a Jira user".to_string()
            ),
            (
                "external".to_string(),
                "zed".to_string(),
                "1005 of 1 item changed in the last 30 days, no match on the jira side".to_string()
            ),
        ]
    );

    // The command line says the same.
    let path = w.config_path();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["check", "--users", "--config"])
            .arg(&path)
            .env_remove("TANDEM_CONFIG")
            .output()
            .expect("run tandem")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("seed / users: 2 unmatched users"), "{text}");
    assert!(
        text.contains("  UNMATCHED jira `carol@example.com`: users.csv:3, not a Jira user"),
        "{text}"
    );
    assert!(
        text.contains("  UNMATCHED external `zed`: 1005 of 1 item"),
        "{text}"
    );

    // Read-only: nothing was written on either side.
    assert!(w.jira_writes().is_empty());
    assert!(w.external_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jira_user_without_a_match_keeps_the_field_outside() {
    // Without matching by e-mail only the map's people cross; Bob is not in it.
    let w = people("match_by_email = false", MAP, false).await;
    let (key, ext) = linked_pair(
        &w,
        json!({"summary": "Printer on fire", "assignee": {"accountId": ALICE}}),
    )
    .await;
    assert_eq!(ext_assignee(&w, &ext).as_deref(), Some("ext-alice"));
    w.jira.user_edit_issue(
        &key,
        json!({"summary": "Printer still on fire", "assignee": {"accountId": BOB}}),
    );
    eventually("the summary outside", || {
        w.external
            .item(&ext)
            .and_then(|i| ext_field(&i, 1001))
            .filter(|s| s == "Printer still on fire")
    })
    .await;
    settle(&w).await;
    assert_eq!(ext_assignee(&w, &ext).as_deref(), Some("ext-alice"), "kept");
    let audit = w.engine().store.list_audit(Some("seed"), 50).await.unwrap();
    let miss = audit
        .iter()
        .find(|a| a.actor.starts_with("user:unmatched"))
        .expect("an audit row for the miss");
    assert_eq!(miss.target, tandem_core::Side::External);
    assert_eq!(miss.from, Some(tandem_core::FieldValue::User(BOB.into())));
    w.stop().await;
}

/// Runs a store call from a synchronous probe.
fn futures_block<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    let handle = tokio::runtime::Handle::current();
    std::thread::spawn(move || handle.block_on(f))
        .join()
        .expect("store call")
}

// ---- comment authors ------------------------------------------------------------------------

/// The words of each external comment of item `id`.
fn ext_comment_texts(w: &World, id: &str) -> Vec<String> {
    w.external
        .comments(id)
        .iter()
        .map(|c| c["body"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The first paragraph's ADF nodes of each Jira comment of issue `key`.
fn jira_comment_headers(w: &World, key: &str) -> Vec<Value> {
    w.jira
        .comments(key)
        .iter()
        .map(|c| c["body"]["content"][0]["content"].clone())
        .collect()
}

/// Comment writes Tandem sent to either sandbox (method, path).
fn comment_writes(w: &World) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for log in [w.jira.request_log(), w.external.request_log()] {
        out.extend(
            log.into_iter()
                .filter(|r| r.path.contains("/comment") && r.method != "GET")
                .map(|r| (r.method, r.path)),
        );
    }
    out
}

const AUTHORS_MAP: &str = "jiraUser,externalUser\nalice@example.com,ext-alice\n\
                           5b10a2844c20165700ede21g,ext-bob\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_authors_are_named_by_the_user_map_on_the_other_side() {
    let w = people("", AUTHORS_MAP, false).await;
    let (key, ext) = linked_pair(&w, json!({"summary": "Printer on fire"})).await;

    // Jira → outside: Alice (matched by her e-mail's map row) is named by her login.
    w.jira
        .user_add_comment("alice", &key, "Can you reproduce it?");
    eventually("Alice's comment outside", || {
        Some(ext_comment_texts(&w, &ext)).filter(|t| !t.is_empty())
    })
    .await;
    assert_eq!(
        ext_comment_texts(&w, &ext),
        ["ext-alice (Jira) wrote:\n\nCan you reproduce it?"]
    );

    // Outside → Jira: ext-bob (the map's row by account id) is a mention of Bob's account.
    w.external
        .user_comment_as(&ext, "ext-bob", "Bob Outside", "Yes, on firmware 5.2")
        .expect("item exists");
    eventually("Bob's comment in Jira", || {
        Some(jira_comment_headers(&w, &key)).filter(|h| h.len() == 2)
    })
    .await;
    let header = &jira_comment_headers(&w, &key)[1];
    assert_eq!(header[0]["type"], "mention", "{header}");
    assert_eq!(header[0]["attrs"]["id"], BOB, "{header}");
    assert_eq!(header[1]["text"], " (External) wrote:", "{header}");
    settle(&w).await;

    // One twin each way; their echoes and the mapped headers made nothing more.
    let writes = comment_writes(&w);
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(w.jira.comments(&key).len(), 2);
    assert_eq!(w.external.comments(&ext).len(), 2);

    // An edit of Bob's comment rewrites the Jira twin under the same mention, and an edit
    // of the Jira twin reaches Bob's comment without a header.
    let bob = w.external.comments(&ext)[1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        w.external
            .user_edit_comment(&ext, &bob, "Yes, on firmware 5.3")
    );
    eventually("the edit in Jira", || {
        w.jira
            .comments(&key)
            .get(1)
            .filter(|c| c.to_string().contains("5.3"))
            .cloned()
    })
    .await;
    assert_eq!(jira_comment_headers(&w, &key)[1][0]["attrs"]["id"], BOB);
    settle(&w).await;
    assert_eq!(w.jira.comments(&key).len(), 2, "no second twin");
    assert_eq!(w.external.comments(&ext).len(), 2, "no second twin");
    // Every match was made: nothing counted as unmatched.
    let audit = w.engine().store.list_audit(Some("seed"), 50).await.unwrap();
    assert!(
        !audit.iter().any(|a| a.actor.starts_with("user:unmatched")),
        "{audit:?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_comment_author_is_named_by_display_name_and_counted() {
    let w = people("match_by_email = false", MAP, false).await;
    let (key, ext) = linked_pair(&w, json!({"summary": "Printer on fire"})).await;

    // Nobody maps ext-zed: the twin is written all the same, under the display name.
    w.external
        .user_comment_as(&ext, "ext-zed", "Zed Outside", "Smoke on floor 2")
        .expect("item exists");
    eventually("Zed's comment in Jira", || {
        Some(jira_comment_headers(&w, &key)).filter(|h| !h.is_empty())
    })
    .await;
    let header = &jira_comment_headers(&w, &key)[0];
    assert_eq!(
        header,
        &json!([{"type": "text", "text": "Zed Outside (External) wrote:"}])
    );
    settle(&w).await;
    let audit = w.engine().store.list_audit(Some("seed"), 50).await.unwrap();
    let miss = audit
        .iter()
        .find(|a| a.actor.starts_with("user:unmatched"))
        .expect("an audit row for the unmatched author");
    assert_eq!(miss.mapping_key, "comment:author");
    assert_eq!(miss.target, tandem_core::Side::Jira);
    assert_eq!(
        miss.from,
        Some(tandem_core::FieldValue::User("ext-zed".into()))
    );
    if let Some(metrics) = tandem::app::metrics_handle() {
        let text = metrics.render();
        let series = "tandem_user_unmatched_total{connection=\"seed\",side=\"external\"}";
        assert!(text.contains(series), "no {series} in:\n{text}");
    }
    // A Jira author the map does not name (Bob, without matching by e-mail): display name.
    w.jira.user_add_comment("bob", &key, "On it");
    eventually("Bob's comment outside", || {
        Some(ext_comment_texts(&w, &ext)).filter(|t| t.len() == 2)
    })
    .await;
    assert_eq!(
        ext_comment_texts(&w, &ext)[1],
        "Bob Human (Jira) wrote:\n\nOn it"
    );
    settle(&w).await;
    assert_eq!(comment_writes(&w).len(), 2, "{:?}", comment_writes(&w));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_center_names_comment_authors_by_user_name() {
    let map = "jiraUser,externalUser\nbob,ext-bob\nalice,ext-alice\n";
    let w = people("", map, true).await;
    let (key, ext) = linked_pair(&w, json!({"summary": "Printer on fire"})).await;
    w.external
        .user_comment_as(&ext, "ext-bob", "Bob Outside", "Yes, on firmware 5.2")
        .expect("item exists");
    eventually("Bob's comment in Jira", || {
        Some(jira_comment_headers(&w, &key)).filter(|h| !h.is_empty())
    })
    .await;
    // Written `[~bob]` in wiki markup, which Jira holds as a mention of Bob.
    let posted: Vec<Value> = w
        .jira
        .request_log()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/comment"))
        .map(|r| r.body)
        .collect();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert!(
        posted[0]["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("[~bob] (External) wrote:")),
        "{posted:?}"
    );
    assert_eq!(jira_comment_headers(&w, &key)[0][0]["attrs"]["id"], "bob");

    // And Alice's Jira comment is named ext-alice outside (her user name in the map).
    w.jira.user_add_comment("alice", &key, "Thanks");
    eventually("Alice's comment outside", || {
        Some(ext_comment_texts(&w, &ext)).filter(|t| t.len() == 2)
    })
    .await;
    assert_eq!(
        ext_comment_texts(&w, &ext)[1],
        "ext-alice (Jira) wrote:\n\nThanks"
    );
    w.stop().await;
}
