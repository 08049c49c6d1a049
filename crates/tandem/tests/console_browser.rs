//! The operator console in a real browser: Debian's `chromium` driven by `chromedriver` over
//! the W3C WebDriver protocol (plain HTTP, spoken here with reqwest). A person signs in, sees
//! the overview update live, searches a link and reads its timeline after a synced edit,
//! watches an edit fail into a dead letter while the other system is down, presses Retry and
//! sees it done; both sides edit one field between syncs and the conflicts page shows the
//! decision with both values (reached and followed with the keyboard alone); then signs out,
//! signs in again with a one-time link such as `tandem demo` prints, and finds that link
//! spent on its second use. No page opens without signing in, and no secret of the
//! configuration appears in any page.
//!
//! Screenshots of every page are taken on the way; they are written to `docs/console/` when
//! `TANDEM_UPDATE_SCREENSHOTS=1` (the README shows them), else under the build directory, so
//! an ordinary test run leaves the repository untouched.
//!
//! Needs `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`).
//! Without them the test prints a notice and passes, unless `TANDEM_BROWSER_TESTS=1` (set by
//! CI), where a missing browser is a failure.

mod common;

use base64::Engine as _;
use common::{Options, eventually, ext_field, world};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// WebDriver's key codes.
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

/// A browser session driven over WebDriver.
struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    /// The HTML of every page visited, to check for secrets at the end.
    sources: Vec<(String, String)>,
}

/// `None` (with a notice) when the browser is not installed and the run does not require it.
fn browser_installed() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        let required = std::env::var("TANDEM_BROWSER_TESTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "TANDEM_BROWSER_TESTS=1 but {CHROMIUM} or {CHROMEDRIVER} is missing: \
             install them with `apt-get install -y chromium chromium-driver`"
        );
        println!(
            "console_browser: skipped, {CHROMIUM} or {CHROMEDRIVER} is missing \
             (apt-get install -y chromium chromium-driver; CI sets TANDEM_BROWSER_TESTS=1 to require it)"
        );
    }
    present
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .ok()
                    .map(|v| v["value"]["ready"] == json!(true)),
                Err(_) => None,
            };
            if ready == Some(true) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not become ready on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        // The machine may have no network: nothing in the browser may try to reach out.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1280,1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .unwrap();
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused the session: {answer}"))
            .to_string();
        let shots = if std::env::var("TANDEM_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/console")
        } else {
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
        };
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            http,
            session: format!("{base}/session/{id}"),
            driver,
            _profile: profile,
            shots,
            sources: Vec::new(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("WebDriver answers");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {v}"
        );
        v["value"].clone()
    }

    async fn open(&mut self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
        self.remember().await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn remember(&mut self) {
        let (url, source) = (self.url().await, self.source().await);
        self.sources.push((url, source));
    }

    /// The first element matching `css`, waiting for it to appear.
    async fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let resp = self
                .http
                .post(format!("{}/element", self.session))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap();
            if resp.status().is_success() {
                let v: Value = resp.json().await.unwrap();
                return v["value"][ELEMENT].as_str().unwrap().to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "no element `{css}` on {}:\n{}",
                self.url().await,
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the first element matching `css`. A page that navigates between finding
    /// the element and reading it (after a click) makes the element stale: find it again.
    async fn text(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let e = self.find(css).await;
            let resp = self
                .http
                .get(format!("{}/element/{e}/text", self.session))
                .send()
                .await
                .unwrap();
            let ok = resp.status().is_success();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            if ok {
                return v["value"].as_str().unwrap_or_default().to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "cannot read `{css}`: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the text of `css` contains `want`.
    async fn wait_text(&self, css: &str, want: &str) -> String {
        let started = Instant::now();
        loop {
            let got = self.text(css).await;
            if got.contains(want) {
                return got;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "`{css}` never showed `{want}`; it shows `{got}`"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn click(&mut self, css: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Presses one key (a WebDriver key code such as TAB or ENTER) on whatever has focus.
    async fn press(&self, key: &str) {
        self.call(
            reqwest::Method::POST,
            "/actions",
            Some(
                json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                    {"type": "keyDown", "value": key},
                    {"type": "keyUp", "value": key},
                ]}]}),
            ),
        )
        .await;
    }

    /// What has keyboard focus: its `id` property, tag name and text.
    async fn focused(&self) -> (String, String, String) {
        let e = self
            .call(reqwest::Method::GET, "/element/active", None)
            .await;
        let e = e[ELEMENT].as_str().unwrap_or_default().to_string();
        let mut got = Vec::new();
        for what in ["property/id", "name", "text"] {
            let v = self
                .call(reqwest::Method::GET, &format!("/element/{e}/{what}"), None)
                .await;
            got.push(v.as_str().unwrap_or_default().to_string());
        }
        let text = got.pop().unwrap_or_default();
        let tag = got.pop().unwrap_or_default();
        (got.pop().unwrap_or_default(), tag, text)
    }

    /// Presses Tab until `wanted` holds for what has focus, at most `limit` times: that
    /// element is reachable with the keyboard alone.
    async fn tab_to(&self, limit: usize, wanted: impl Fn(&(String, String, String)) -> bool) {
        let mut seen = Vec::new();
        for _ in 0..limit {
            self.press(TAB).await;
            let now = self.focused().await;
            if wanted(&now) {
                return;
            }
            seen.push(now);
        }
        panic!("not reached with {limit} presses of Tab; focus went through {seen:?}");
    }

    async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    async fn screenshot(&self, name: &str) {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_follows_a_change_and_fixes_a_failure_in_the_browser() {
    if !browser_installed() {
        return;
    }
    let w = world(Options {
        max_attempts: 2,
        ..Options::default()
    })
    .await;
    let base = w.base.clone();

    // A synced edit: created in Jira, twinned outside, then edited in Jira.
    let key = w
        .jira
        .user_create_issue("TEST", json!({"summary": "Quarterly report"}));
    let twin = eventually("twin", || w.twins_of(&key).into_iter().next()).await;
    let ext_id = twin["id"].as_str().unwrap().to_string();
    w.jira
        .user_edit_issue(&key, json!({"summary": "Quarterly report, final"}));
    eventually("edit synced", || {
        w.external
            .item(&ext_id)
            .filter(|i| ext_field(i, 1001).as_deref() == Some("Quarterly report, final"))
    })
    .await;

    let mut b = Browser::start().await;

    // Nothing opens without signing in: every page sends the browser to the sign-in page.
    for page in ["/", "/links", "/events?status=dead", "/conflicts", "/audit"] {
        b.open(&format!("{base}{page}")).await;
        assert_eq!(b.url().await, format!("{base}/login"), "{page}");
    }
    b.wait_text("h1", "Sign in").await;
    b.screenshot("login").await;

    // Sign in with the admin token.
    b.type_into("#token", "admin-token").await;
    b.click("form.login button[type=submit]").await;
    b.wait_text("h1", "Overview").await;
    b.wait_text("main", "seed").await;
    assert_eq!(b.text("[data-live=\"seed.links\"]").await, "1");
    // The script keeps the figures live.
    b.wait_text("[data-live-status]", "live, updated").await;
    b.remember().await;
    b.screenshot("overview").await;

    // Search the link by its Jira key and open its timeline.
    b.click("nav a[href=\"/links\"]").await;
    b.wait_text("h1", "Links").await;
    b.type_into("#q", &key).await;
    b.click("form.filters button[type=submit]").await;
    b.wait_text("main table", &ext_id).await;
    b.remember().await;
    b.screenshot("links").await;
    b.click("main table a[href^=\"/links/seed/\"]").await;
    b.wait_text("h1", &key).await;
    let timeline = b.text("main").await;
    assert!(
        timeline.contains("Quarterly report → Quarterly report, final"),
        "the edit with its old and new value:\n{timeline}"
    );
    b.remember().await;
    b.screenshot("timeline").await;

    // The other system goes down: the next edit fails into a dead letter.
    w.external.faults().set_error_rate(1.0);
    w.jira
        .user_edit_issue(&key, json!({"summary": "Quarterly report, signed off"}));
    let store = w.engine().store.clone();
    let started = Instant::now();
    let dead_id = loop {
        if let Some(d) = store
            .list_dead_letters(Some("seed"), 1)
            .await
            .unwrap()
            .first()
        {
            break d.event_id;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no dead letter"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    b.click("nav a[href=\"/events?status=dead\"]").await;
    b.wait_text("h1", "Dead letters").await;
    b.wait_text("main table", "dead").await;
    b.remember().await;
    b.screenshot("dead-letters").await;
    b.click(&format!("main table a[href=\"/events/{dead_id}\"]"))
        .await;
    b.wait_text("[data-status]", "dead").await;
    b.wait_text("main", "500").await;
    // Every attempt with its error: the first table right after a heading is the attempts..
    b.wait_text("h2 + .scroll table", "dead").await;
    b.wait_text("h2 + .scroll table", "500").await;
    b.remember().await;
    b.screenshot("event").await;

    // It comes back; Retry, and the event is done and the edit lands.
    w.external.faults().clear();
    b.click(&format!("form[action=\"/events/{dead_id}/retry\"] button"))
        .await;
    // The form's answer brings the event's page back, no longer dead (navigating away before
    // it arrives would cancel the retry).
    let started = Instant::now();
    while b.text("[data-status]").await == "dead" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Retry had no effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        if b.text("[data-status]").await == "done" {
            break;
        }
        let stored = store.get_event(dead_id).await.unwrap().map(|e| e.status);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never done; the store says {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.open(&format!("{base}/events/{dead_id}")).await;
    }
    b.wait_text("h2 + .scroll table", "done").await;
    b.screenshot("event-retried").await;
    eventually("the retried edit landed", || {
        w.external
            .item(&ext_id)
            .filter(|i| ext_field(i, 1001).as_deref() == Some("Quarterly report, signed off"))
    })
    .await;

    // The retry is in the audit trail with who did it.
    b.click("nav a[href=\"/audit\"]").await;
    b.wait_text("h1", "Audit").await;
    let audit = b.wait_text("main", "console:admin").await;
    assert!(audit.contains("retry"), "{audit}");
    b.remember().await;
    b.screenshot("audit").await;

    // Both sides edit the summary between two syncs: the other system fails every call
    // while the two edits are made, so neither is applied before both are in. The external
    // edit is the later one, and later_wins keeps it.
    let conflicts_before = store
        .list_conflicts(None, None, 100, 0)
        .await
        .unwrap()
        .len();
    w.external.faults().set_error_rate(1.0);
    w.jira
        .user_edit_issue(&key, json!({"summary": "Quarterly report (Jira's take)"}));
    // Only so that the two edits' times differ (they are compared to the millisecond).
    tokio::time::sleep(Duration::from_millis(50)).await;
    w.external.user_edit(
        &ext_id,
        vec![(1001, "Quarterly report (outside's take)".into())],
    );
    w.external.faults().clear();
    let started = Instant::now();
    while store
        .list_conflicts(None, None, 100, 0)
        .await
        .unwrap()
        .len()
        == conflicts_before
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no conflict recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.click("nav a[href=\"/conflicts\"]").await;
    b.wait_text("h1", "Conflicts").await;
    let conflicts = b
        .wait_text("main table", "Quarterly report (Jira's take)")
        .await;
    assert!(
        conflicts.contains("Quarterly report (outside's take)"),
        "both values:\n{conflicts}"
    );
    assert!(
        conflicts.contains("later_wins: external kept"),
        "which side won:\n{conflicts}"
    );
    b.remember().await;
    b.screenshot("conflicts").await;
    // With the keyboard alone: to the connection filter, submit it, then on to the link of
    // the conflict, which opens its timeline.
    b.tab_to(20, |(id, _, _)| id == "connection").await;
    b.tab_to(2, |(_, tag, text)| tag == "button" && text == "Filter")
        .await;
    b.press(ENTER).await;
    let started = Instant::now();
    while !b
        .url()
        .await
        .starts_with(&format!("{base}/conflicts?connection="))
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "Enter on Filter did not submit the form"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.wait_text("h1", "Conflicts").await;
    b.tab_to(30, |(_, tag, text)| tag == "a" && text.starts_with(&key))
        .await;
    b.press(ENTER).await;
    b.wait_text("h1", &key).await;
    b.wait_text("main", "Conflicts the policy settled for this link")
        .await;
    b.remember().await;

    // On a phone-sized screen.
    b.resize(390, 844).await;
    b.open(&format!("{base}/")).await;
    b.wait_text("h1", "Overview").await;
    b.screenshot("overview-phone").await;
    b.resize(1280, 1000).await;

    // No secret of the configuration in any page the browser saw.
    let secrets = [
        "admin-token",
        "sandbox-api-token",
        "external-secret",
        "jira-hook-secret",
        "ext-hook-token",
    ];
    assert!(b.sources.len() >= 10, "{} pages seen", b.sources.len());
    for (url, source) in &b.sources {
        for s in secrets {
            assert!(!source.contains(s), "{url} shows the secret `{s}`");
        }
    }

    // Sign out: back to the sign-in page, and the pages are closed again.
    b.click("form.signout button").await;
    b.wait_text("h1", "Sign in").await;
    b.open(&format!("{base}/events")).await;
    assert_eq!(b.url().await, format!("{base}/login"));

    // The link `tandem demo` prints signs in with one click, and lands on the overview with
    // the code gone from the address.
    let link = w
        .tandem
        .as_ref()
        .unwrap()
        .console_signin_link()
        .expect("a sign-in link");
    b.open(&link).await;
    b.wait_text("h1", "Overview").await;
    assert_eq!(b.url().await, format!("{base}/"));
    b.wait_text("header", "Signed in as admin").await;
    b.click("form.signout button").await;
    b.wait_text("h1", "Sign in").await;
    // Used once, it opens nothing the second time.
    b.open(&link).await;
    b.wait_text("main", "works once").await;
    b.wait_text("h1", "Sign in").await;
    b.open(&format!("{base}/conflicts")).await;
    assert_eq!(b.url().await, format!("{base}/login"));
    b.quit().await;
    w.stop().await;
}
