//! The operator console's locks, over plain HTTP against a real `tandem serve`: sign-in sets
//! a hardened session cookie, nothing works without it, an action needs the session's CSRF
//! token and must come from this origin, a tampered cookie is refused, an action is written
//! to the audit trail with who did it (a per-user token signs in as that user), and signing
//! out ends the session for good. The JSON API keeps its Bearer token.

mod common;

use common::{Options, eventually, world};
use reqwest::redirect::Policy;
use serde_json::json;
use tandem::store::{DeadAction, EventStatus};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` part of the session cookie a sign-in answer sets, and the whole header.
fn session_cookie(resp: &reqwest::Response) -> (String, String) {
    let set = resp
        .headers()
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_string();
    (set.split(';').next().unwrap().to_string(), set)
}

/// The CSRF token of the first form on the page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_locked_and_its_actions_are_guarded() {
    let w = world(Options {
        server_extra:
            "console_users = [{ name = \"alice\", token = \"alice-token-0123456789\" }]\n".into(),
        ..Options::default()
    })
    .await;
    let http = client();
    let url = |p: &str| format!("{}{p}", w.base);
    let host = w.base.trim_start_matches("http://").to_string();

    // A dead letter to act on: a summary Jira refuses (longer than 255 characters).
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Guarded"}));
    let twin = eventually("twin", || w.twins_of(&key).into_iter().next()).await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    w.external.user_edit(&ext_id, vec![(1001, "x".repeat(300))]);
    let store = w.engine().store.clone();
    let mut dead_id = None;
    for _ in 0..200 {
        if let Some(d) = store.list_dead_letters(None, 1).await.unwrap().first() {
            dead_id = Some(d.event_id);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let dead_id = dead_id.expect("a dead letter");
    let status_of = |id| {
        let store = store.clone();
        async move { store.get_event(id).await.unwrap().unwrap().status }
    };

    // Sign-in: a wrong token sets nothing; the right one sets a hardened cookie.
    let wrong = http
        .post(url("/login"))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let from_elsewhere = http
        .post(url("/login"))
        .header("origin", "http://evil.example")
        .form(&[("token", "admin-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        from_elsewhere.status(),
        403,
        "a sign-in posted by another site"
    );
    assert!(from_elsewhere.headers().get("set-cookie").is_none());
    let signed_in = http
        .post(url("/login"))
        .header("origin", format!("http://{host}"))
        .form(&[("token", "admin-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/");
    let (cookie, set) = session_cookie(&signed_in);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let behind_tls = http
        .post(url("/login"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", "admin-token")])
        .send()
        .await
        .unwrap();
    assert!(session_cookie(&behind_tls).1.contains("; Secure"));

    // The pages open with the cookie.
    let page = |path: String, cookie: String| {
        let http = http.clone();
        let url = url(&path);
        async move {
            let r = http.get(url).header("cookie", cookie).send().await.unwrap();
            let status = r.status().as_u16();
            let location = r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string());
            (status, location, r.text().await.unwrap())
        }
    };
    let (status, _, overview) = page("/".into(), cookie.clone()).await;
    assert_eq!(status, 200);
    assert!(overview.contains("seed"), "{overview}");
    let (status, _, event_page) = page(format!("/events/{dead_id}"), cookie.clone()).await;
    assert_eq!(status, 200);
    assert!(event_page.contains("Retry") && event_page.contains("Discard"));
    // Its attempts, each with its outcome and error (Jira refuses the long summary).
    let attempts = &event_page[event_page.find("<h2>Attempts</h2>").expect("attempts")..];
    assert!(attempts.contains("status-dead"), "{attempts}");
    assert!(attempts.contains("255"), "the error is shown: {attempts}");
    let csrf = csrf_of(&event_page);

    // A tampered cookie is no session.
    let mut forged = cookie.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert_eq!(
        page("/events".into(), forged.clone()).await.1.as_deref(),
        Some("/login")
    );

    // Actions: refused without the CSRF token, from another origin or site, with a forged
    // cookie; the dead letter stays dead through all of them.
    let act =
        |path: String, cookie: String, csrf: String, extra: Option<(&'static str, String)>| {
            let http = http.clone();
            let url = url(&path);
            async move {
                let mut req = http
                    .post(url)
                    .header("cookie", cookie)
                    .form(&[("csrf", csrf)]);
                if let Some((name, value)) = extra {
                    req = req.header(name, value);
                }
                let r = req.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
    let retry = format!("/events/{dead_id}/retry");
    let (status, body) = act(retry.clone(), cookie.clone(), String::new(), None).await;
    assert_eq!(status, 403, "no CSRF token: {body}");
    let (status, _) = act(retry.clone(), cookie.clone(), "0".repeat(64), None).await;
    assert_eq!(status, 403, "a wrong CSRF token");
    let (status, body) = act(
        retry.clone(),
        cookie.clone(),
        csrf.clone(),
        Some(("origin", "http://evil.example".into())),
    )
    .await;
    assert_eq!(status, 403, "another origin: {body}");
    let (status, _) = act(
        retry.clone(),
        cookie.clone(),
        csrf.clone(),
        Some(("sec-fetch-site", "cross-site".into())),
    )
    .await;
    assert_eq!(status, 403, "another site");
    let (status, _) = act(
        "/events/retry-all".into(),
        cookie.clone(),
        csrf.clone(),
        Some(("origin", "http://evil.example".into())),
    )
    .await;
    assert_eq!(status, 403, "retry-all from another origin");
    let (status, _) = act(retry.clone(), forged.clone(), csrf.clone(), None).await;
    assert_eq!(status, 401, "a forged cookie");
    assert_eq!(status_of(dead_id).await, EventStatus::Dead);
    assert!(store.list_operator_actions(10).await.unwrap().is_empty());

    // The same action with everything in order goes through and is audited with who did it:
    // alice, signed in with her own token.
    assert!(overview.contains("Signed in as <strong>admin</strong>"));
    let alice = http
        .post(url("/login"))
        .form(&[("token", "alice-token-0123456789")])
        .send()
        .await
        .unwrap();
    assert_eq!(alice.status(), 303);
    let (alice_cookie, _) = session_cookie(&alice);
    let (_, _, alice_page) = page(format!("/events/{dead_id}"), alice_cookie.clone()).await;
    assert!(alice_page.contains("Signed in as <strong>alice</strong>"));
    let (status, _) = act(
        format!("/events/{dead_id}/discard"),
        alice_cookie.clone(),
        csrf.clone(),
        Some(("origin", format!("http://{host}"))),
    )
    .await;
    assert_eq!(status, 403, "the admin session's CSRF token is not alice's");
    let (status, _) = act(
        format!("/events/{dead_id}/discard"),
        alice_cookie.clone(),
        csrf_of(&alice_page),
        Some(("origin", format!("http://{host}"))),
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(status_of(dead_id).await, EventStatus::Ignored);
    let actions = store.list_operator_actions(10).await.unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(
        (
            actions[0].actor.as_str(),
            actions[0].action,
            actions[0].event_id
        ),
        ("console:alice", DeadAction::Discard, Some(dead_id))
    );
    let (_, _, audit) = page("/audit".into(), cookie.clone()).await;
    assert!(
        audit.contains("console:alice") && audit.contains("discard"),
        "{audit}"
    );

    // The events page filters by when events were received; a bad bound is named.
    let (status, _, recent) = page("/events?since=1h".into(), cookie.clone()).await;
    assert_eq!(status, 200);
    assert!(
        recent.contains(&format!("href=\"/events/{dead_id}\"")),
        "{recent}"
    );
    let (_, _, old) = page("/events?until=2000-01-01T00:00".into(), cookie.clone()).await;
    assert!(old.contains("No event matches."), "{old}");
    assert!(!old.contains(&format!("href=\"/events/{dead_id}\"")));
    let (status, _, bad) = page("/events?since=yesterday".into(), cookie.clone()).await;
    assert_eq!(status, 400);
    assert!(bad.contains("since=yesterday"), "{bad}");

    // The JSON API still takes the Bearer token, and only it.
    let api = http
        .get(url("/api/v1/events"))
        .header("authorization", "Bearer admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    let api_with_cookie = http
        .get(url("/api/v1/events"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api_with_cookie.status(), 401);

    // Sign-out clears the cookie and the old cookie opens nothing afterwards.
    let (status, _) = act("/logout".into(), cookie.clone(), String::new(), None).await;
    assert_eq!(status, 403, "signing out needs the CSRF token too");
    let out = http
        .post(url("/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(session_cookie(&out).1.contains("Max-Age=0"));
    assert_eq!(
        page("/".into(), cookie.clone()).await.1.as_deref(),
        Some("/login")
    );
    let json = http
        .get(url("/console/overview.json"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 401);
    w.stop().await;
}

/// Makes a conflict on `key`'s summary: the other system fails every call while both sides
/// edit the summary, so no event can be applied until both edits are in; the external edit is
/// the later one. Returns once the conflict is recorded.
async fn make_conflict(w: &common::World, key: &str, jira_says: &str, outside_says: &str) {
    let twin = eventually("twin", || w.twins_of(key).into_iter().next()).await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    let store = w.engine().store.clone();
    let before = store
        .list_conflicts(None, None, 1000, 0)
        .await
        .unwrap()
        .len();
    w.external.faults().set_error_rate(1.0);
    w.jira.user_edit_issue(key, json!({ "summary": jira_says }));
    // Only so that the two edits' times differ (they are compared to the millisecond).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    w.external
        .user_edit(&ext_id, vec![(1001, outside_says.to_string())]);
    w.external.faults().clear();
    for _ in 0..400 {
        if store
            .list_conflicts(None, None, 1000, 0)
            .await
            .unwrap()
            .len()
            > before
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no conflict was recorded for {key}");
}

const SECRETS: [&str; 5] = [
    "admin-token",
    "sandbox-api-token",
    "external-secret",
    "jira-hook-secret",
    "ext-hook-token",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conflicts_page_shows_both_values_and_a_one_time_link_signs_in_once() {
    let w = world(Options {
        max_attempts: 20,
        ..Options::default()
    })
    .await;
    let http = client();
    let url = |p: &str| format!("{}{p}", w.base);
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Budget"}));
    make_conflict(&w, &key, "Budget (Jira's)", "Budget (outside's)").await;
    let store = w.engine().store.clone();
    let recorded = store.list_conflicts(None, None, 10, 0).await.unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let k = &recorded[0];
    assert_eq!(
        (
            k.jira_key.as_deref(),
            k.winner,
            k.policy.as_str(),
            &k.jira_value,
            &k.external_value,
        ),
        (
            Some(key.as_str()),
            tandem_core::Side::External,
            "later_wins",
            &tandem_core::FieldValue::Text("Budget (Jira's)".into()),
            &tandem_core::FieldValue::Text("Budget (outside's)".into()),
        ),
        "{k:?}"
    );
    // The later edit won on both sides.
    eventually("both sides hold the later edit", || {
        (w.jira.issue(&key)?["fields"]["summary"] == json!("Budget (outside's)")).then_some(())
    })
    .await;

    // Without a session the page sends the browser to sign in; the JSON twin wants the token.
    let r = http.get(url("/conflicts")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    let api = http.get(url("/api/v1/conflicts")).send().await.unwrap();
    assert_eq!(api.status(), 401);
    let api: serde_json::Value = http
        .get(url("/api/v1/conflicts?connection=seed&limit=5"))
        .header("authorization", "Bearer admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = api["conflicts"].as_array().expect("conflicts");
    assert_eq!(rows.len(), 1, "{api}");
    assert_eq!(rows[0]["winner"], "external");
    assert!(rows[0].to_string().contains("Budget (Jira's)"), "{api}");
    assert!(rows[0].to_string().contains("Budget (outside's)"), "{api}");

    // A one-time link: it signs in once, then it is spent.
    let tandem = w.tandem.as_ref().unwrap();
    let link = tandem
        .console_signin_link()
        .expect("the admin token is set");
    let code = link.split("once=").nth(1).unwrap().to_string();
    assert!(
        link.starts_with(&format!("{}/signin?once=", w.base)),
        "{link}"
    );
    assert!(!link.contains("admin-token"), "{link}");
    let first = http.get(&link).send().await.unwrap();
    assert_eq!(first.status(), 303);
    assert_eq!(first.headers()["location"], "/");
    let (cookie, set) = session_cookie(&first);
    for attr in ["HttpOnly", "SameSite=Strict", "Max-Age=28800"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    let again = http.get(&link).send().await.unwrap();
    assert_eq!(again.status(), 401, "a link works once");
    assert!(again.headers().get("set-cookie").is_none());
    let refused = again.text().await.unwrap();
    assert!(refused.contains("works once"), "{refused}");
    assert!(
        refused.contains("action=\"/login\""),
        "the token form: {refused}"
    );
    let expired = tandem
        .console_signin_link_minted_at(chrono::Utc::now() - chrono::TimeDelta::minutes(11))
        .unwrap();
    let late = http.get(&expired).send().await.unwrap();
    assert_eq!(late.status(), 401, "an expired link");
    assert!(late.headers().get("set-cookie").is_none());
    for bogus in ["/signin", "/signin?once=", "/signin?once=00ff"] {
        let r = http.get(url(bogus)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{bogus}");
        assert!(r.headers().get("set-cookie").is_none(), "{bogus}");
    }

    // The session the link started opens the conflicts page: both values, which side won,
    // the link to the timeline and the event.
    let get = |path: &str| {
        let http = http.clone();
        let (url, cookie) = (url(path), cookie.clone());
        async move {
            let r = http.get(url).header("cookie", cookie).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, page) = get("/conflicts").await;
    assert_eq!(status, 200, "{page}");
    for want in [
        "<h1>Conflicts</h1>",
        "Budget (Jira&#39;s)",
        "Budget (outside&#39;s)",
        "<code>later_wins</code>: external kept",
        &format!("href=\"/links/seed/{}\"", k.jira_id),
        &format!("href=\"/events/{}\"", k.event_id.unwrap()),
        "<th scope=\"col\">Jira&#39;s value</th>",
        "<label for=\"connection\">Connection</label>",
        "<a href=\"/conflicts\" aria-current=\"page\">Conflicts</a>",
    ] {
        assert!(page.contains(want), "missing {want} in {page}");
    }
    let (_, other) = get("/conflicts?connection=elsewhere").await;
    assert!(other.contains("No conflict yet"), "{other}");
    let (status, beyond) = get("/conflicts?page=4294967295").await;
    assert_eq!(
        status, 200,
        "a page past the end is empty, not an error: {beyond}"
    );
    assert!(beyond.contains("No more conflicts."), "{beyond}");
    let (_, timeline) = get(&format!("/links/seed/{}", k.jira_id)).await;
    assert!(
        timeline.contains("<h2>Conflicts</h2>") && timeline.contains("Budget (Jira&#39;s)"),
        "{timeline}"
    );
    // No secret of the configuration, nor the spent code, in any of these pages.
    for page in [&page, &other, &timeline, &refused] {
        for s in SECRETS.iter().copied().chain([code.as_str()]) {
            assert!(!page.contains(s), "a page shows `{s}`");
        }
    }
    w.stop().await;
}
