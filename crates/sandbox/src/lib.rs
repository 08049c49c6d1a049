//! Sandboxes that speak the wire format of Jira (Cloud REST v3, Data Center REST v2, admin
//! webhooks) and of the seed's example external system, for the engine's tests, the demo and
//! the benchmarks.
//!
//! Both run in-process on loopback, keep their state in memory, record every request, send
//! webhooks for every change (including the engine's own, so echoes are real) and share one
//! set of fault switches ([`Faults`]).

pub mod external;
mod faults;
pub mod jira;
pub mod multipart;
mod net;
mod webhook;

pub use external::{ExternalSandbox, ExternalSandboxConfig};
pub use faults::Faults;
pub use jira::{JiraSandbox, JiraSandboxConfig};
pub use net::{STATUS_DROPPED, STATUS_LOST_RESPONSE};
pub use webhook::RetryPolicy;

/// One request as a sandbox received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The body parsed as JSON; `Null` when empty, a JSON string when not JSON.
    pub body: serde_json::Value,
    /// The status sent, or [`STATUS_DROPPED`] / [`STATUS_LOST_RESPONSE`] when a fault closed
    /// the connection instead (before handling / after handling).
    pub status: u16,
    /// The answer was held back by the slow-answer fault (see
    /// [`Faults::set_slow_answers`]); the request was handled, whatever the client saw.
    pub slow: bool,
}

async fn wait_for_ctrl_c() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!(error = %e, "cannot listen for Ctrl-C; running until killed");
        std::future::pending::<()>().await;
    }
}

/// `tandem sandbox jira --port N`: start the Jira sandbox, print where it is and how to log
/// in, and run until Ctrl-C.
pub async fn run_jira_cli(port: u16) -> anyhow::Result<()> {
    let cfg = JiraSandboxConfig::default();
    let sandbox =
        JiraSandbox::start_on(cfg, std::net::SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let cfg = sandbox.config();
    println!("Jira sandbox listening on {}", sandbox.url());
    println!(
        "  Cloud (REST v3): Basic auth, email {:?}, API token {:?}",
        cfg.email, cfg.api_token
    );
    println!("  Data Center (REST v2): Bearer PAT {:?}", cfg.pat);
    println!(
        "  OAuth 2.0 app: Bearer {:?} (needed for the dynamic webhook API, /rest/api/3/webhook)",
        cfg.oauth_token
    );
    let projects: Vec<&str> = cfg.projects.iter().map(|(k, _)| k.as_str()).collect();
    println!("  projects: {}", projects.join(", "));
    println!("  External ID field: {}", sandbox.external_id_field());
    println!(
        "  register webhooks with POST {}/rest/webhooks/1.0/webhook",
        sandbox.url()
    );
    println!("Press Ctrl-C to stop.");
    wait_for_ctrl_c().await;
    sandbox.shutdown().await;
    Ok(())
}

/// `tandem sandbox external --port N`: start the external-system sandbox, print where it is
/// and its credentials, and run until Ctrl-C.
pub async fn run_external_cli(
    port: u16,
    webhook_url: Option<String>,
    webhook_token: Option<String>,
) -> anyhow::Result<()> {
    let cfg = ExternalSandboxConfig {
        webhook_url,
        webhook_token,
        ..ExternalSandboxConfig::default()
    };
    let sandbox =
        ExternalSandbox::start_on(cfg, std::net::SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let cfg = sandbox.config();
    println!("External sandbox listening on {}", sandbox.url());
    println!(
        "  Basic auth: username {:?}, password {:?}",
        cfg.username, cfg.password
    );
    match &cfg.webhook_url {
        Some(url) => println!("  webhooks go to {url}"),
        None => println!("  no webhook URL configured (pass --webhook-url)"),
    }
    println!("Press Ctrl-C to stop.");
    wait_for_ctrl_c().await;
    sandbox.shutdown().await;
    Ok(())
}
