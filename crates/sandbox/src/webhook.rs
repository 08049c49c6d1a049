//! Outgoing webhook delivery shared by both sandboxes.
//!
//! Real senders deliver asynchronously, retry on failure and keep the same delivery id on
//! every retry, so receivers can deduplicate. This module reproduces that: each delivery is
//! queued to a worker task owned by its ordering key (webhook + issue), so events about one
//! issue leave in order while a slow or failing receiver for one issue does not hold up the
//! rest. The fault switches can drop, duplicate or reorder deliveries.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::faults::Faults;

/// How deliveries are retried. Jira retries for about half an hour; the sandbox keeps the
/// shape (exponential backoff, bounded attempts) with short delays so tests stay fast.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled before each further one.
    pub base_delay: Duration,
    /// Per-attempt timeout; a receiver slower than this counts as failed.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
        }
    }
}

/// One webhook to send.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// Deliveries with the same key are sent in order.
    pub key: String,
    pub url: String,
    /// Headers sent on every attempt (auth, signature, delivery id).
    pub headers: Vec<(String, String)>,
    /// Header carrying the retry count, absent on the first attempt (Jira's convention).
    pub retry_header: Option<&'static str>,
    pub body: Vec<u8>,
}

/// Handle to the background delivery task. Dropping it stops delivery.
pub(crate) struct Dispatcher {
    tx: mpsc::UnboundedSender<Delivery>,
}

impl Dispatcher {
    pub fn start(policy: RetryPolicy, faults: Faults) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(route(rx, policy, faults));
        Self { tx }
    }

    pub fn send(&self, d: Delivery) {
        if self.tx.send(d).is_err() {
            tracing::debug!("webhook dispatcher stopped; delivery discarded");
        }
    }
}

/// Fans deliveries out to one worker per ordering key. The workers live in a `JoinSet` owned
/// here, so when the dispatcher handle is dropped and this loop ends, they are aborted too.
async fn route(mut rx: mpsc::UnboundedReceiver<Delivery>, policy: RetryPolicy, faults: Faults) {
    let client = reqwest::Client::builder()
        .timeout(policy.timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let mut workers: HashMap<String, mpsc::UnboundedSender<Delivery>> = HashMap::new();
    let mut tasks = JoinSet::new();
    while let Some(d) = rx.recv().await {
        while tasks.try_join_next().is_some() {}
        let fault = faults.decide_hook();
        if fault.drop {
            tracing::debug!(url = %d.url, "sandbox fault: webhook dropped");
            continue;
        }
        let copies = if fault.duplicate { 2 } else { 1 };
        for _ in 0..copies {
            if fault.reorder {
                // Leave the ordered queue: a random head start lets later events overtake.
                let (client, policy, d) = (client.clone(), policy.clone(), d.clone());
                let wait = Duration::from_millis(rand::rng().random_range(0..300));
                tasks.spawn(async move {
                    tokio::time::sleep(wait).await;
                    deliver(&client, &policy, &d).await;
                });
                continue;
            }
            let sender = workers.entry(d.key.clone()).or_insert_with(|| {
                let (wtx, mut wrx) = mpsc::unbounded_channel::<Delivery>();
                let (client, policy) = (client.clone(), policy.clone());
                tasks.spawn(async move {
                    while let Some(d) = wrx.recv().await {
                        deliver(&client, &policy, &d).await;
                    }
                });
                wtx
            });
            if let Err(mpsc::error::SendError(d)) = sender.send(d.clone()) {
                tracing::debug!(url = %d.url, "webhook worker gone; delivery discarded");
            }
        }
    }
}

/// Statuses after which Jira tries again (its documented retry policy).
fn retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 425 | 429) || (500..600).contains(&status)
}

async fn deliver(client: &reqwest::Client, policy: &RetryPolicy, d: &Delivery) {
    let mut delay = policy.base_delay;
    for attempt in 0..policy.max_attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
        let mut req = client
            .post(&d.url)
            .header("content-type", "application/json")
            .body(d.body.clone());
        for (k, v) in &d.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if attempt > 0
            && let Some(h) = d.retry_header
        {
            req = req.header(h, attempt.to_string());
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => return,
            Ok(resp) if !retryable(resp.status().as_u16()) => {
                tracing::debug!(url = %d.url, status = %resp.status(), "webhook rejected; not retried");
                return;
            }
            Ok(resp) => {
                tracing::debug!(url = %d.url, status = %resp.status(), attempt, "webhook failed; will retry");
            }
            Err(e) => {
                tracing::debug!(url = %d.url, error = %e, attempt, "webhook failed; will retry");
            }
        }
    }
    tracing::debug!(url = %d.url, "webhook given up after all attempts");
}

/// A random id for a delivery: stable across its retries because it is made once, here.
pub(crate) fn new_delivery_id() -> String {
    let mut rng = rand::rng();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        rng.random::<u32>(),
        rng.random::<u16>(),
        rng.random::<u16>() & 0x0fff,
        (rng.random::<u16>() & 0x3fff) | 0x8000,
        rng.random::<u64>() & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_statuses_match_jira() {
        for s in [408, 409, 425, 429, 500, 503] {
            assert!(retryable(s), "{s}");
        }
        for s in [400, 401, 404, 410, 422] {
            assert!(!retryable(s), "{s}");
        }
    }

    #[test]
    fn delivery_ids_look_like_uuids() {
        let id = new_delivery_id();
        assert_eq!(id.len(), 36);
        assert_ne!(id, new_delivery_id());
    }
}
