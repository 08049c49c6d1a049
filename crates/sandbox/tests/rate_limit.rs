//! Jira's rate-limit headers: every 429 carries `Retry-After`, `X-RateLimit-Limit`,
//! `X-RateLimit-Remaining: 0`, `X-RateLimit-Reset` (ISO 8601 to the minute) and
//! `RateLimit-Reason`; answers under 20% of the budget carry `X-RateLimit-NearLimit: true`.

mod common;

use common::Jira;
use tandem_sandbox::{JiraSandbox, JiraSandboxConfig};

fn is_reset_format(s: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%MZ").is_ok() && s.len() == 17
}

#[tokio::test]
async fn limited_and_near_limit_answers_carry_jira_headers() {
    let cfg = JiraSandboxConfig {
        rate_limit_per_sec: Some(10),
        ..JiraSandboxConfig::default()
    };
    let sb = JiraSandbox::start(cfg).await.unwrap();
    let j = Jira::new(&sb.url());
    // Start at the beginning of a second so all 12 requests fall in one window.
    let ms = chrono::Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(std::time::Duration::from_millis(u64::from(1000 - ms) + 5)).await;
    let mut answers = Vec::new();
    for _ in 0..12 {
        let (s, _, h) = j
            .send(reqwest::Method::GET, "/rest/api/3/myself", None)
            .await;
        answers.push((s, h));
    }
    let near: Vec<bool> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, h)| h.get("x-ratelimit-nearlimit").is_some_and(|v| v == "true"))
        .collect();
    // Budget 10: remaining 9..0; under 20% (remaining 0 and 1) is near the limit.
    if near.len() == 10 {
        assert_eq!(near.iter().filter(|n| **n).count(), 2, "{near:?}");
        assert!(!near[0] && near[9]);
    }
    let (_, h) = answers
        .iter()
        .find(|(s, _)| *s == 429)
        .expect("a 429 within the window");
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(get("x-ratelimit-limit"), "10");
    assert_eq!(get("x-ratelimit-remaining"), "0");
    assert_eq!(get("ratelimit-reason"), "jira-burst-based");
    assert_eq!(get("retry-after"), "1");
    assert!(is_reset_format(get("x-ratelimit-reset")), "{h:?}");
    sb.shutdown().await;
}

#[tokio::test]
async fn injected_429s_carry_the_headers_too() {
    let sb = JiraSandbox::start(JiraSandboxConfig::default())
        .await
        .unwrap();
    sb.faults().set_rate_limit_rate(1.0);
    let (s, _, h) = Jira::new(&sb.url())
        .send(reqwest::Method::GET, "/rest/api/3/myself", None)
        .await;
    assert_eq!(s, 429);
    assert!(h.contains_key("x-ratelimit-limit"));
    assert_eq!(h["x-ratelimit-remaining"], "0");
    assert!(is_reset_format(h["x-ratelimit-reset"].to_str().unwrap()));
    assert_eq!(h["ratelimit-reason"], "jira-burst-based");
    sb.shutdown().await;
}

/// A server that asks for a longer wait: `Faults::set_retry_after` sets the `Retry-After` of
/// injected 429s (and Jira's `X-RateLimit-Reset` follows it), on both sandboxes.
#[tokio::test]
async fn injected_429s_can_ask_for_a_longer_wait() {
    let sb = JiraSandbox::start(JiraSandboxConfig::default())
        .await
        .unwrap();
    sb.faults().set_rate_limit_rate(1.0);
    sb.faults()
        .set_retry_after(std::time::Duration::from_secs(90));
    let before = chrono::Utc::now();
    let (s, _, h) = Jira::new(&sb.url())
        .send(reqwest::Method::GET, "/rest/api/3/myself", None)
        .await;
    assert_eq!(s, 429);
    assert_eq!(h["retry-after"], "90");
    let reset = chrono::NaiveDateTime::parse_from_str(
        h["x-ratelimit-reset"].to_str().unwrap(),
        "%Y-%m-%dT%H:%MZ",
    )
    .unwrap()
    .and_utc();
    assert!(
        reset >= before + chrono::Duration::seconds(90),
        "reset {reset} is not 90 s after {before}"
    );
    sb.shutdown().await;

    let ext = tandem_sandbox::ExternalSandbox::start(Default::default())
        .await
        .unwrap();
    ext.faults().set_rate_limit_rate(1.0);
    ext.faults()
        .set_retry_after(std::time::Duration::from_millis(2500));
    let resp = reqwest::Client::new()
        .get(format!("{}/API/issue/EXT-1", ext.url()))
        .basic_auth("external", Some("external-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    ext.shutdown().await;
}
