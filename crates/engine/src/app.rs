//! Wiring: from a loaded [`Config`] to a running service (store, connectors, workers, HTTP).
//!
//! `tandem serve`, `tandem demo` and the integration tests all start Tandem through
//! [`start`], so what the tests exercise is exactly what users run.

use crate::config::{Config, ConnectionConfig};
use crate::connector::jira::dynamic::{self, DynamicWebhook};
use crate::connector::{self, Connector, ConnectorContext};
use crate::server::{AppState, connections, router};
use crate::worker::{ConnectionRuntime, CreateRules, Engine, Scope, WorkerSettings};
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tandem_core::Side;
use tandem_core::comment::{CommentSettings, CommentSync};
use tandem_core::retry::RetryPolicy;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// A running Tandem: its address, its engine, and the handles to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub config: Config,
    pub engine: Arc<Engine>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    worker: JoinHandle<()>,
    /// The per-side pollers (see [`crate::poller`]).
    poller: JoinHandle<()>,
    /// The connections' dynamic webhooks (OAuth apps), checked by the `dynamic` task.
    pub dynamic_webhooks: Vec<Arc<DynamicWebhook>>,
    dynamic: JoinHandle<()>,
    signin_links: Arc<crate::server::SigninLinks>,
}

impl Running {
    /// A one-time link that signs a browser into the console as the admin, valid for ten
    /// minutes (see `server::console::once`); `None` when no admin token is configured.
    pub fn console_signin_link(&self) -> Option<String> {
        self.console_signin_link_minted_at(chrono::Utc::now())
    }

    /// [`Self::console_signin_link`] as if minted at `at`: tests mint one long ago to see an
    /// expired link refused without waiting for it.
    #[doc(hidden)]
    pub fn console_signin_link_minted_at(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Option<String> {
        self.config
            .server
            .admin_token
            .as_ref()
            .filter(|t| !t.is_empty())?;
        let code = self.signin_links.mint(crate::config::ADMIN_USER, at);
        Some(format!("http://{}/signin?once={code}", self.addr))
    }

    /// Graceful stop: no new deliveries, in-flight events finish or release their leases.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.poller.await;
        let _ = self.dynamic.await;
        let _ = self.worker.await;
    }
}

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .clone()
}

/// A name for this process's leases: host, pid and a random suffix.
pub(crate) fn owner_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "tandem".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Builds both connectors of a connection and resolves their field names.
pub(crate) async fn connection_runtime(
    conn: &ConnectionConfig,
    http: &reqwest::Client,
) -> anyhow::Result<ConnectionRuntime> {
    let make = |side: Side, cfg: connector::SideConfig<'_>| -> anyhow::Result<Arc<dyn Connector>> {
        connector::build(
            cfg,
            ConnectorContext::new(side, conn.fields.clone(), http.clone())
                .with_filter(conn.filter.clone()),
        )
        .with_context(|| format!("connection `{}`, {side} side", conn.name))
    };
    let jira = make(Side::Jira, (&conn.jira).into())?;
    let external = make(Side::External, (&conn.external).into())?;
    for (side, c) in [(Side::Jira, &jira), (Side::External, &external)] {
        // A system that is down at start is not fatal: events queue up and are retried.
        if let Err(e) = c.prepare().await {
            warn!(connection = %conn.name, %side, error = %e, "could not prepare connector yet; will retry on use");
        }
    }
    let create = CreateRules {
        to_jira: conn.create.allows_create_on(Side::Jira),
        to_external: conn.create.allows_create_on(Side::External),
    };
    let comments = comment_settings(conn, &*jira, &*external);
    let users = conn.users.as_ref().map(|u| {
        Arc::new(crate::users::UserResolver::new(
            &conn.name,
            u,
            jira.clone(),
            external.clone(),
        ))
    });
    let attachments = attachment_settings(conn, &*jira, &*external);
    Ok(ConnectionRuntime::new(
        conn.name.clone(),
        jira,
        external,
        conn.fields.clone(),
        conn.conflict,
        create,
        Scope {
            projects: conn.filter.projects.clone(),
            issue_types: conn.filter.issue_types.clone(),
        },
    )
    .with_fingerprints(
        fingerprint(&format!("{:?}", conn.jira)),
        fingerprint(&format!("{:?}", conn.external)),
    )
    .with_script(conn.script.clone())
    .with_exprs(conn.exprs.clone())
    .with_comments(comments)
    .with_users(users)
    .with_attachments(attachments))
}

/// The connection's attachment settings, with what its two connectors can do: files travel
/// only when both sides list, read and write them.
pub(crate) fn attachment_settings(
    conn: &ConnectionConfig,
    jira: &dyn Connector,
    external: &dyn Connector,
) -> tandem_core::attachment::AttachmentSettings {
    let mut settings = conn.attachments.clone();
    if settings.sync != tandem_core::attachment::AttachmentSync::Off
        && !(jira.supports_attachments() && external.supports_attachments())
    {
        info!(
            connection = %conn.name,
            "attachments are not synced: a connector of this connection has no attachments"
        );
        settings.sync = tandem_core::attachment::AttachmentSync::Off;
    }
    settings
}

/// The connection's comment settings, with what its two connectors can do: comments travel
/// only when both sides read and write them.
pub(crate) fn comment_settings(
    conn: &ConnectionConfig,
    jira: &dyn Connector,
    external: &dyn Connector,
) -> CommentSettings {
    let c = &conn.comments;
    let mut sync = c.sync;
    if sync != CommentSync::Off && !(jira.supports_comments() && external.supports_comments()) {
        let without = if jira.supports_comments() {
            Side::External
        } else {
            Side::Jira
        };
        info!(connection = %conn.name, side = %without, "comments are not synced: this side's connector has no comments");
        sync = CommentSync::Off;
    }
    let external_name = c
        .external_name
        .clone()
        .unwrap_or_else(|| match &conn.external {
            crate::config::ExternalConfig::Rest(r) => r
                .preset
                .as_deref()
                .map(capitalised)
                .unwrap_or_else(|| "External".into()),
            crate::config::ExternalConfig::Jira(_) => "Jira (other site)".into(),
        });
    CommentSettings {
        sync,
        deletes: c.deletes,
        internal: c.internal,
        header: c.header.clone(),
        jira_system: "Jira".into(),
        external_system: external_name,
        jira_has_internal: jira.supports_internal_comments(),
        external_has_internal: external.supports_internal_comments(),
        history: c.history,
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(f) => f.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A short fingerprint of one side's configuration (its `Debug` form, in which secrets are
/// redacted): a create circuit opened under one configuration is closed once the process
/// runs with another, since the configuration was presumably fixed.
fn fingerprint(config: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    config.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Closes the create circuits that were opened under another configuration of their side
/// (see [`crate::store::Store::create_unreadable`]), and says which stay open.
async fn close_fixed_circuits(engine: &Engine) -> anyhow::Result<()> {
    for conn in engine.connections.values() {
        for side in [Side::Jira, Side::External] {
            let closed = engine
                .store
                .close_create_circuits(Some(&conn.name), Some(side), Some(conn.fingerprint(side)))
                .await?;
            if closed > 0 {
                info!(connection = %conn.name, %side, "the side's configuration changed: creating there again");
            }
        }
    }
    for open in engine.store.create_circuits().await? {
        warn!(connection = %open.connection, side = %open.side, since = %open.opened_at, reason = %open.reason, "creating twins is stopped on this side until its configuration changes or `tandem creates reset` runs");
    }
    Ok(())
}

/// Opens the store, builds the engine and starts the HTTP server and the workers.
/// `listen` overrides `server.listen` (tests and the demo pass port 0).
pub async fn start(
    config: Config,
    listen: SocketAddr,
    metrics: Option<PrometheusHandle>,
) -> anyhow::Result<Running> {
    let store = crate::store::open(&config.storage.url)
        .await
        .with_context(|| {
            format!(
                "cannot open the store at {}",
                redact_url(&config.storage.url)
            )
        })?;
    let http = http_client(&config)?;
    let mut connections = HashMap::new();
    for conn in &config.connections {
        let runtime = connection_runtime(conn, &http).await?;
        connections.insert(conn.name.clone(), Arc::new(runtime));
    }
    let mut dynamic_webhooks = Vec::new();
    for conn in &config.connections {
        if let Some(hook) = DynamicWebhook::for_connection(conn, http.clone())? {
            dynamic_webhooks.push(Arc::new(hook));
        }
    }
    let engine = Engine::new(store, connections, worker_settings(&config));
    close_fixed_circuits(&engine)
        .await
        .context("cannot read the create circuits from the store")?;
    let signin_links = Arc::new(crate::server::SigninLinks::new());
    let state = Arc::new(AppState {
        engine: engine.clone(),
        max_body_bytes: config.server.max_body_bytes,
        body_read_timeout: config.server.body_read_timeout,
        admin_token: config.server.admin_token.clone(),
        console_users: config.server.console_users.clone(),
        metrics,
        signin_links: signin_links.clone(),
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);

    let mut server_stop = stopped.clone();
    let limits = connections::Limits::from_config(&config.server);
    let server = tokio::spawn(connections::serve(
        listener,
        router(state),
        limits,
        async move {
            let _ = server_stop.wait_for(|s| *s).await;
        },
    ));
    let poller = crate::poller::spawn(
        engine.clone(),
        config
            .connections
            .iter()
            .map(|c| (c.name.clone(), c.poll_interval))
            .collect(),
        stopped.clone(),
    );
    let dynamic = dynamic::spawn(
        dynamic_webhooks.clone(),
        dynamic::Settings::default(),
        stopped.clone(),
    );
    let mut worker_stop = stopped;
    let worker = tokio::spawn(engine.clone().run(async move {
        let _ = worker_stop.wait_for(|s| *s).await;
    }));
    info!(%addr, store = engine.store.backend(), connections = engine.connections.len(), "tandem started");
    Ok(Running {
        addr,
        config,
        engine,
        stop,
        server,
        worker,
        poller,
        dynamic_webhooks,
        dynamic,
        signin_links,
    })
}

/// The HTTP client every connector shares (pool, timeouts, user agent); `[worker]
/// request_timeout_ms` bounds each call.
pub(crate) fn http_client(config: &Config) -> reqwest::Result<reqwest::Client> {
    let timeout = config.worker.request_timeout();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The worker settings `[worker]` describes (shared with `tandem sync`'s own engine).
pub(crate) fn worker_settings(config: &Config) -> WorkerSettings {
    WorkerSettings {
        concurrency: config.worker.concurrency.max(1),
        lease: Duration::from_secs(config.worker.lease_seconds.max(1)),
        retry: RetryPolicy {
            base: Duration::from_millis(config.worker.backoff_base_ms),
            cap: Duration::from_millis(config.worker.backoff_cap_ms),
            max_attempts: config.worker.max_attempts,
        },
        owner: owner_id(),
        idle_poll: Duration::from_millis(200),
    }
}

/// A storage URL fit for messages: any password is replaced by `***`.
pub use crate::secret::redact_url;

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_in_storage_urls_are_hidden() {
        assert_eq!(
            redact_url("postgres://tandem:s3cret@db:5432/tandem"),
            "postgres://tandem:***@db:5432/tandem"
        );
        assert_eq!(redact_url("sqlite://tandem.db"), "sqlite://tandem.db");
    }
}
