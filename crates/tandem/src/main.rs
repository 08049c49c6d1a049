//! The `tandem` command line: one binary for the service, its checks, its tools and the demo.
//!
//! Each subcommand's body is one `cmd_*` function below, so the parts of the product can be
//! wired in one at a time. This is the only place that uses `anyhow`: library code returns
//! typed errors, and here they become messages and exit codes:
//!
//! - `0` success;
//! - `1` the command ran and found a problem (an invalid config, a failed round trip, ...);
//! - `2` bad usage, or a command that is not available yet.

mod init;
mod script_test;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tandem::config::{self, Config};

/// `tandem --version`: the version and the commit it was built from (see `build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TANDEM_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version = VERSION,
    about = "Bi-directional sync between Jira and the systems teams live in.",
    long_about = None,
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--config FILE`, shared by every command that needs one.
#[derive(Debug, Args)]
struct ConfigArg {
    /// The configuration file (see docs/CONFIG.md).
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        env = "TANDEM_CONFIG",
        default_value = "tandem.toml"
    )]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a working tandem.toml, fieldMappings.csv and .env.example, checking each answer
    /// against Jira and the other system.
    Init(Box<init::InitArgs>),
    /// Run Jira and external-system sandboxes and the engine on loopback, and play a round trip.
    Demo {
        /// Exit after one round trip (0 if every step succeeded).
        #[arg(long)]
        once: bool,
    },
    /// Run the service: webhook receivers, workers, poller, admin API.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Log line format on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Validate the configuration and mappings, then check each system's credentials and fields.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Only validate files; do not contact Jira or the external system.
        #[arg(long)]
        offline: bool,
        /// Also list the users seen on each side that do not match (read-only): the user
        /// map's Jira users Jira does not know, and the users of recent items.
        #[arg(long, conflicts_with = "offline")]
        users: bool,
    },
    /// Reconcile existing issues in bulk (initial sync); resumable.
    Sync {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this connection (default: all).
        #[arg(long, value_name = "NAME")]
        connection: Option<String>,
        /// Show what would be written without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Inspect the event queue and dead letters; replay them.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Show where creating twins is stopped (a create's answer could not be read); reset it.
    Creates {
        #[command(subcommand)]
        command: CreatesCommand,
    },
    /// Run one sandbox alone, to try mappings without touching production.
    Sandbox {
        #[command(subcommand)]
        command: SandboxCommand,
    },
    /// Jira administration helpers.
    Jira {
        #[command(subcommand)]
        command: JiraCommand,
    },
    /// Benchmark latency, throughput, calls per change and memory against the seed's strategy.
    Bench {
        /// A short run (seconds instead of minutes).
        #[arg(long)]
        quick: bool,
        /// Print results as JSON.
        #[arg(long)]
        json: bool,
        /// Run Tandem on this PostgreSQL database (a fresh schema, dropped afterwards)
        /// instead of SQLite.
        #[arg(long, value_name = "POSTGRES_URL")]
        store: Option<String>,
        #[command(flatten)]
        engine: BenchEngineArgs,
        #[command(flatten)]
        scale: BenchScaleArgs,
    },
    /// The shipped connector presets (`[connection.external] preset = "NAME"`).
    Presets {
        #[command(subcommand)]
        command: PresetsCommand,
    },
    /// Try a connection's rules script on one event, touching nothing.
    Script {
        #[command(subcommand)]
        command: ScriptCommand,
    },
    /// Print shell completions, e.g. `tandem completions bash > /etc/bash_completion.d/tandem`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The separate-process phases of `tandem bench` (the engine as its own `tandem serve`).
#[derive(Debug, clap::Args)]
struct BenchEngineArgs {
    /// Only the phases with the engine as its own process (on SQLite).
    #[arg(long, conflicts_with = "store")]
    engine_only: bool,
    /// Distinct items of those phases [default: 1000].
    #[arg(long, value_name = "N")]
    items: Option<usize>,
    /// Seconds each edit phase and the steady phase last at least [default: 30].
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Offered rate of their steady phase, edits per second [default: 200].
    #[arg(long, value_name = "EDITS_PER_SEC")]
    rate: Option<u32>,
}

/// The scale phases of `tandem bench` (a large store, a large initial import).
#[derive(Debug, clap::Args)]
struct BenchScaleArgs {
    /// Only the scale phases: latency with 1,000 links in the store and with `--links`, then
    /// `tandem sync` of `--sync-items` paired items per side (minutes; a release build).
    #[arg(long, conflicts_with_all = ["store", "engine_only", "quick"])]
    scale: bool,
    /// Links in the large store [default: 1000000].
    #[arg(long, value_name = "N", requires = "scale")]
    links: Option<usize>,
    /// Paired items on each side for `tandem sync` [default: 100000].
    #[arg(long, value_name = "N", requires = "scale")]
    sync_items: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum PresetsCommand {
    /// List the presets: name, version and what each is for.
    List,
    /// Print a preset's file: what it carries and cannot, its operations and default mapping.
    Show {
        /// The preset's name (see `tandem presets list`).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum CreatesCommand {
    /// List the sides where creating twins is stopped, and why.
    Status {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Create twins again: closes the circuits and lets go of the items held because they
    /// might be the twin of an unreadable create (delete or link any such twin first).
    Reset {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this connection (default: all).
        #[arg(long, value_name = "NAME")]
        connection: Option<String>,
        /// Only this side: `jira` or `external` (default: both).
        #[arg(long, value_name = "SIDE")]
        side: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// List queued events and dead letters.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only events in this state (e.g. queued, done, dead).
        #[arg(long, value_name = "S")]
        status: Option<String>,
    },
    /// Put dead letters back in the queue.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        /// The event to replay.
        #[arg(
            long,
            value_name = "N",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        id: Option<i64>,
        /// Replay every dead letter.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// A Jira sandbox (Cloud REST v3 and Data Center REST v2).
    Jira {
        #[arg(long, default_value_t = 8081)]
        port: u16,
    },
    /// The seed's external system.
    External {
        #[arg(long, default_value_t = 8082)]
        port: u16,
        /// Where to send webhooks (e.g. http://127.0.0.1:8080/webhooks/seed/external).
        #[arg(long, value_name = "URL")]
        webhook_url: Option<String>,
        /// Bearer token to send with them (the connection's `webhook_token`).
        #[arg(long, value_name = "TOKEN")]
        webhook_token: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum JiraCommand {
    /// Jira admin webhooks.
    Webhook {
        #[command(subcommand)]
        command: JiraWebhookCommand,
    },
}

#[derive(Debug, Subcommand)]
enum JiraWebhookCommand {
    /// Create Jira's admin webhook for a connection (JQL filter and secret included).
    Register {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_name = "NAME")]
        connection: String,
        /// Tandem's public URL for the connection's Jira webhooks.
        #[arg(long, value_name = "URL")]
        url: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `tandem script ...`
#[derive(Debug, Subcommand)]
enum ScriptCommand {
    /// Run the script's filter, the mapping and the hooks on the event in FILE (JSON, see
    /// docs/CONFIG.md) as for an item never synced, and print what would be written.
    Test {
        #[command(flatten)]
        config: ConfigArg,
        /// The connection whose script to run.
        #[arg(long, value_name = "NAME")]
        connection: String,
        /// The event: `{ "side": "jira"|"external", "fields": { ... } }`.
        #[arg(long, value_name = "FILE")]
        event: PathBuf,
    },
}

fn main() -> ExitCode {
    // Script hooks run on the runtime's worker threads and the Rhai interpreter recurses:
    // 8 MiB covers the deepest nesting the script limits accept (see tandem-script).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run(Cli::parse())),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Init(args) => init::run(*args).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "tandem", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Presets { command } => cmd_presets(command),
        Command::Demo { once } => cmd_demo(once).await,
        Command::Serve { config, log_format } => cmd_serve(&config.config, log_format).await,
        Command::Check {
            config,
            offline,
            users,
        } => cmd_check(&config.config, offline, users).await,
        Command::Sync {
            config,
            connection,
            dry_run,
        } => cmd_sync(&config.config, connection.as_deref(), dry_run).await,
        Command::Events {
            command: EventsCommand::List { config, status },
        } => cmd_events_list(&config.config, status.as_deref()).await,
        Command::Events {
            command: EventsCommand::Retry { config, id, all },
        } => cmd_events_retry(&config.config, id, all).await,
        Command::Creates {
            command: CreatesCommand::Status { config },
        } => cmd_creates(&config.config, None).await,
        Command::Creates {
            command:
                CreatesCommand::Reset {
                    config,
                    connection,
                    side,
                },
        } => cmd_creates(&config.config, Some((connection, side))).await,
        Command::Sandbox {
            command: SandboxCommand::Jira { port },
        } => cmd_sandbox_jira(port).await,
        Command::Sandbox {
            command:
                SandboxCommand::External {
                    port,
                    webhook_url,
                    webhook_token,
                },
        } => cmd_sandbox_external(port, webhook_url, webhook_token).await,
        Command::Jira {
            command:
                JiraCommand::Webhook {
                    command:
                        JiraWebhookCommand::Register {
                            config,
                            connection,
                            url,
                        },
                },
        } => cmd_jira_webhook_register(&config.config, &connection, &url).await,
        Command::Script {
            command:
                ScriptCommand::Test {
                    config,
                    connection,
                    event,
                },
        } => match load_config(&config.config) {
            Ok(c) => script_test::run(&c, &connection, &event),
            Err(code) => Ok(code),
        },
        Command::Bench {
            quick,
            json,
            store,
            engine,
            scale,
        } => {
            if scale.scale {
                cmd_bench_scale(json, scale).await
            } else {
                cmd_bench(quick, json, store.as_deref(), engine).await
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `tandem presets list|show`: the presets compiled into this binary.
fn cmd_presets(command: PresetsCommand) -> anyhow::Result<ExitCode> {
    use tandem::config::Preset;
    match command {
        PresetsCommand::List => {
            for preset in tandem::config::PRESETS {
                let info = preset
                    .info()
                    .map_err(|e| anyhow::anyhow!("preset {}: {e}", preset.name))?;
                println!("{:<10} v{:<3} {}", info.name, info.version, info.summary);
            }
            Ok(ExitCode::SUCCESS)
        }
        PresetsCommand::Show { name } => match Preset::find(&name) {
            Some(preset) => {
                print!("{}", preset.text);
                Ok(ExitCode::SUCCESS)
            }
            None => anyhow::bail!(
                "unknown preset `{name}`; the known presets are: {}",
                tandem::config::PRESETS
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

/// Logs go to stderr so stdout stays for a command's own output.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, embedding) is harmless, so its error is ignored.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Loads a config, printing every problem as `file:line: key: message` on failure.
fn load_config(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("{e}");
        eprintln!(
            "{}: {} problem{} found",
            path.display(),
            e.issues.len(),
            if e.issues.len() == 1 { "" } else { "s" }
        );
        ExitCode::FAILURE
    })
}

/// One line saying what a valid config contains, e.g.
/// `OK tandem.toml: 1 connection (seed: 4 fields, jira cloud ↔ rest seed); storage sqlite://…`.
fn summary(path: &Path, config: &Config) -> String {
    let n = config.connections.len();
    let conns: Vec<String> = config
        .connections
        .iter()
        .map(|c| {
            let fields = c.fields.fields.len();
            format!(
                "{}: {fields} field{}, jira {} ↔ {}",
                c.name,
                if fields == 1 { "" } else { "s" },
                c.jira.api.as_str(),
                c.external.describe()
            )
        })
        .collect();
    format!(
        "OK {}: {n} connection{} ({}); storage {}",
        path.display(),
        if n == 1 { "" } else { "s" },
        conns.join("; "),
        config.storage.redacted_url()
    )
}

/// Webhook routes that accept deliveries without credentials. That is allowed (Jira admin
/// webhooks may have no secret) but worth a warning: anyone who can reach such a route can
/// inject changes, since a delivery's values are used as sent.
fn unauthenticated_webhooks(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for c in &config.connections {
        let open = |side: &str, what: &str| {
            format!(
                "connection `{}`: no {what}, so POST /webhooks/{}/{side} accepts unauthenticated deliveries",
                c.name, c.name
            )
        };
        if c.jira.webhook_secret.as_ref().is_none_or(|s| s.is_empty()) {
            out.push(open("jira", "jira.webhook_secret"));
        }
        let external = match &c.external {
            config::ExternalConfig::Rest(r) => r.webhook_token.as_ref(),
            config::ExternalConfig::Jira(j) => j.webhook_secret.as_ref(),
        };
        if external.is_none_or(|s| s.is_empty()) {
            out.push(open("external", "external.webhook_token/webhook_secret"));
        }
    }
    out
}

async fn cmd_demo(once: bool) -> anyhow::Result<ExitCode> {
    // The demo prints its own story; logs only for warnings unless RUST_LOG says otherwise.
    if std::env::var_os("RUST_LOG").is_none() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(std::io::stderr)
            .try_init();
    }
    tandem::app::metrics_handle();
    match tandem::demo::run(once).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(_) => Ok(ExitCode::FAILURE),
    }
}

async fn cmd_serve(config_path: &Path, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    init_logging(log_format);
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let listen = config.server.listen;
    let metrics = tandem::app::metrics_handle();
    // Before the "listening" line: a SIGTERM sent as soon as that line appears must stop
    // Tandem cleanly, not kill it with the signal's default action; the same for SIGHUP,
    // whose default action would end the process.
    let stop = shutdown_signal();
    let mut hangup = ReloadSignal::install();
    let mut running = tandem::app::start(config, listen, metrics).await?;
    println!("tandem listening on http://{}", running.addr);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = hangup.recv() => {
                running = reload(config_path, running).await?;
            }
        }
    }
    tracing::info!("shutting down: no new work, finishing or releasing events in flight");
    running.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP (`systemctl reload tandem`): re-read and validate the configuration. A file with
/// problems is logged, problem by problem, and the running engine carries on untouched. A
/// valid one replaces it: the running engine stops the way SIGTERM stops it (no new
/// deliveries accepted, events in flight finish or give back their leases; every accepted
/// event is already in the store) and a new one starts on the new configuration, picking up
/// the queue where the old one left it. The listener keeps its port when `server.listen` did
/// not change (even an ephemeral `:0` one). Should the new configuration fail to start (its
/// store cannot be opened, its port is taken), the previous one is started again.
async fn reload(
    config_path: &Path,
    running: tandem::app::Running,
) -> anyhow::Result<tandem::app::Running> {
    // The recorder is installed once per process; this is the same handle `serve` started with.
    let metrics = tandem::app::metrics_handle();
    tracing::info!(config = %config_path.display(), "SIGHUP: reloading the configuration");
    let new = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            for issue in &e.issues {
                tracing::error!(problem = %issue, "configuration problem");
            }
            tracing::error!(
                config = %config_path.display(),
                problems = e.issues.len(),
                "the configuration was not reloaded: fix the problems above and send SIGHUP again; the previous configuration keeps running"
            );
            return Ok(running);
        }
    };
    let previous = running.config.clone();
    let previous_addr = running.addr;
    let listen = if new.server.listen == previous.server.listen {
        previous_addr
    } else {
        new.server.listen
    };
    running.shutdown().await;
    match tandem::app::start(new, listen, metrics.clone()).await {
        Ok(r) => {
            tracing::info!(addr = %r.addr, "configuration reloaded");
            println!(
                "tandem reloaded {}: listening on http://{}",
                config_path.display(),
                r.addr
            );
            Ok(r)
        }
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "the new configuration could not start; starting the previous one again"
            );
            let r = tandem::app::start(previous, previous_addr, metrics)
                .await
                .context("the previous configuration could not start again")?;
            println!(
                "tandem kept the previous configuration: listening on http://{}",
                r.addr
            );
            Ok(r)
        }
    }
}

/// SIGHUP, as a stream of reload requests; never fires where there is no such signal.
struct ReloadSignal {
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl ReloadSignal {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let hangup = signal(SignalKind::hangup())
                .map_err(|e| tracing::warn!(error = %e, "SIGHUP handler not installed: reload by restarting"))
                .ok();
            ReloadSignal { hangup }
        }
        #[cfg(not(unix))]
        {
            ReloadSignal {}
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(h) = self.hangup.as_mut()
            && h.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await
    }
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called (not when
/// the future is first polled), so a signal arriving in between is not lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (term, interrupt) {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Where a connection asks for comments that one of its connectors cannot carry.
fn comment_notes(config: &tandem::config::Config) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut notes = Vec::new();
    for conn in &config.connections {
        if conn.comments.sync == tandem_core::comment::CommentSync::Off {
            continue;
        }
        let build = |side, cfg: tandem::connector::SideConfig<'_>| {
            let ctx =
                tandem::connector::ConnectorContext::new(side, conn.fields.clone(), http.clone());
            tandem::connector::build(cfg, ctx).ok()
        };
        let jira = build(tandem_core::Side::Jira, (&conn.jira).into());
        let external = build(tandem_core::Side::External, (&conn.external).into());
        for (side, c) in [
            (tandem_core::Side::Jira, jira),
            (tandem_core::Side::External, external),
        ] {
            if let Some(c) = c
                && !c.supports_comments()
            {
                notes.push(format!(
                    "connection `{}`: comments are not synced: the {side} side ({}) has no comment operations{}",
                    conn.name,
                    c.kind(),
                    if c.kind() == "rest" {
                        " (configure list_comments and create_comment, see CONFIG.md)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    notes
}

async fn cmd_check(config_path: &Path, offline: bool, users: bool) -> anyhow::Result<ExitCode> {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    println!("{}", summary(config_path, &config));
    for warning in unauthenticated_webhooks(&config) {
        println!("WARNING {warning}");
    }
    for note in comment_notes(&config) {
        println!("NOTE {note}");
    }
    if offline {
        return Ok(ExitCode::SUCCESS);
    }
    // The files are valid; now contact each system: credentials, field names.
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()?;
    let mut problems = 0;
    for conn in &config.connections {
        let sides: [(tandem_core::Side, tandem::connector::SideConfig<'_>); 2] = [
            (tandem_core::Side::Jira, (&conn.jira).into()),
            (tandem_core::Side::External, (&conn.external).into()),
        ];
        for (side, side_config) in sides {
            let ctx =
                tandem::connector::ConnectorContext::new(side, conn.fields.clone(), http.clone());
            let connector = tandem::connector::build(side_config, ctx)?;
            let report = connector.check().await;
            println!(
                "{} / {side}: {}",
                conn.name,
                if report.identity.is_empty() {
                    "(no identity)"
                } else {
                    &report.identity
                }
            );
            for line in &report.fields {
                println!("  {line}");
            }
            for note in &report.notes {
                println!("  NOTE: {note}");
            }
            for p in &report.problems {
                println!("  PROBLEM: {p}");
                problems += 1;
            }
        }
    }
    if users {
        problems += check_users(&config, &http).await;
    }
    if problems == 0 {
        println!("all systems reachable, credentials valid, fields resolved");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{problems} problem{} found",
            if problems == 1 { "" } else { "s" }
        );
        Ok(ExitCode::FAILURE)
    }
}

/// `tandem check --users`: prints the users of each connection that do not match. They are
/// not problems (the field is kept, see `unmatched_user`); a side that cannot be read is.
async fn check_users(config: &tandem::config::Config, http: &reqwest::Client) -> usize {
    let mut problems = 0;
    for conn in &config.connections {
        if conn.users.is_none() {
            println!(
                "{} / users: no [connection.users] table; user values cross as they are",
                conn.name
            );
            continue;
        }
        match tandem::users::check_users(conn, http).await {
            Ok(list) if list.is_empty() => {
                println!("{} / users: every user seen matches", conn.name)
            }
            Ok(list) => {
                println!(
                    "{} / users: {} unmatched user{}",
                    conn.name,
                    list.len(),
                    if list.len() == 1 { "" } else { "s" }
                );
                for u in list {
                    println!("  UNMATCHED {} `{}`: {}", u.side, u.user, u.seen);
                }
            }
            Err(e) => {
                println!(
                    "{} / users:\n  PROBLEM: could not list users: {e:#}",
                    conn.name
                );
                problems += 1;
            }
        }
    }
    problems
}

async fn cmd_sync(
    config_path: &Path,
    connection: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    // Per-event logs would drown the progress; warnings only unless RUST_LOG says otherwise.
    if std::env::var_os("RUST_LOG").is_none() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(std::io::stderr)
            .try_init();
    } else {
        init_logging(LogFormat::Text);
    }
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    use std::io::IsTerminal;
    let opts = tandem::sync::SyncOptions {
        connection: connection.map(str::to_string),
        dry_run,
        progress: if std::io::stderr().is_terminal() {
            tandem::sync::Progress::Bar
        } else {
            tandem::sync::Progress::Lines
        },
    };
    // Ctrl-C / SIGTERM stop the run cleanly (leases released); running again resumes.
    let summary = tandem::sync::run(&config, &opts, shutdown_signal()).await?;
    for line in &summary.actions {
        println!("{line}");
    }
    println!("{}", summary.render());
    Ok(
        if summary.failed_total() > 0 || summary.interrupted || summary.unfinished > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

async fn cmd_events_list(config_path: &Path, status: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let store = tandem::store::open(&config.storage.url).await?;
    let status = match status {
        None => None,
        Some(s) => match serde_json::from_value::<tandem::store::EventStatus>(serde_json::json!(s))
        {
            Ok(st) => Some(st),
            Err(_) => {
                eprintln!("unknown status `{s}`: expected pending, leased, done, dead or ignored");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let events = store
        .list_events(&tandem::store::EventFilter {
            status,
            limit: 200,
            ..Default::default()
        })
        .await?;
    if events.is_empty() {
        println!("no events");
    }
    for q in &events {
        let e = &q.event;
        println!(
            "{:>6}  {:<8} {:<10} {:<8} {:<16} attempts={} {}",
            q.id,
            format!("{:?}", q.status).to_lowercase(),
            e.connection,
            e.source.as_str(),
            e.item_key.as_deref().unwrap_or(&e.item_id),
            q.attempts,
            q.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn cmd_events_retry(
    config_path: &Path,
    id: Option<i64>,
    all: bool,
) -> anyhow::Result<ExitCode> {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if id.is_none() && !all {
        eprintln!("say which dead letters to replay: --id N or --all");
        return Ok(ExitCode::from(2));
    }
    let store = tandem::store::open(&config.storage.url).await?;
    let n = store.retry_dead(id, chrono::Utc::now()).await?;
    println!(
        "{n} dead letter{} queued again; a running `tandem serve` picks {} up",
        if n == 1 { "" } else { "s" },
        if n == 1 { "it" } else { "them" }
    );
    Ok(if n == 0 && id.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `tandem creates status` (`reset: None`) and `tandem creates reset`.
async fn cmd_creates(
    config_path: &Path,
    reset: Option<(Option<String>, Option<String>)>,
) -> anyhow::Result<ExitCode> {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let store = tandem::store::open(&config.storage.url).await?;
    if let Some((connection, side)) = reset {
        let side = match side.as_deref().map(str::parse::<tandem_core::Side>) {
            None => None,
            Some(Ok(side)) => Some(side),
            Some(Err(e)) => {
                eprintln!("--side: {e}");
                return Ok(ExitCode::from(2));
            }
        };
        let n = store
            .close_create_circuits(connection.as_deref(), side, None)
            .await?;
        println!(
            "{n} create circuit{} closed; a running `tandem serve` creates twins there again",
            if n == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let open = store.create_circuits().await?;
    if open.is_empty() {
        println!("creating twins is not stopped anywhere");
    }
    for c in open {
        println!(
            "{} / {}: creating stopped since {}: {}",
            c.connection,
            c.side,
            c.opened_at.to_rfc3339(),
            c.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn cmd_sandbox_jira(port: u16) -> anyhow::Result<ExitCode> {
    init_logging(LogFormat::Text);
    tandem_sandbox::run_jira_cli(port)
        .await
        .with_context(|| format!("Jira sandbox on port {port}"))?;
    Ok(ExitCode::SUCCESS)
}

async fn cmd_sandbox_external(
    port: u16,
    webhook_url: Option<String>,
    webhook_token: Option<String>,
) -> anyhow::Result<ExitCode> {
    init_logging(LogFormat::Text);
    tandem_sandbox::run_external_cli(port, webhook_url, webhook_token)
        .await
        .with_context(|| format!("external sandbox on port {port}"))?;
    Ok(ExitCode::SUCCESS)
}

async fn cmd_jira_webhook_register(
    config_path: &Path,
    connection: &str,
    url: &str,
) -> anyhow::Result<ExitCode> {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(conn) = config.connections.iter().find(|c| c.name == connection) else {
        let names: Vec<&str> = config.connections.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "no connection named `{connection}` in {} (configured: {})",
            config_path.display(),
            names.join(", ")
        );
        return Ok(ExitCode::from(2));
    };
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    match tandem::connector::jira::admin::register_webhook(conn, url, http).await {
        Ok(hook) => {
            println!(
                "registered Jira webhook `{}` on {}",
                hook.name, conn.jira.base_url
            );
            println!("  delivers to: {}", hook.url);
            println!("  events:      {}", hook.events.join(", "));
            println!("  JQL filter:  {}", hook.jql);
            println!(
                "  signed:      {}",
                if hook.signed {
                    "yes (X-Hub-Signature with the connection's webhook_secret)"
                } else {
                    "no: set webhook_secret in [connection.jira] so deliveries can be verified"
                }
            );
            if let Some(loc) = hook.location {
                println!("  Jira:        {loc}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("could not register the webhook: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `tandem bench --scale`: the engine with a large store, and a large `tandem sync`.
async fn cmd_bench_scale(json: bool, args: BenchScaleArgs) -> anyhow::Result<ExitCode> {
    if std::env::var_os("RUST_LOG").is_none() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let defaults = tandem::bench::scale::ScaleOptions::default();
    let opts = tandem::bench::scale::ScaleOptions {
        links: args.links.unwrap_or(defaults.links),
        sync_items: args.sync_items.unwrap_or(defaults.sync_items),
        progress: !json,
        ..defaults
    };
    let binary = std::env::current_exe().context("cannot find this binary to start it")?;
    let report = tandem::bench::scale::run(&binary, opts).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", tandem::bench::scale::render(&report));
    }
    // Figures are never judged; a change or an import that did not land is a failure.
    let all = |s: &tandem::bench::scale::StoreLatency| s.landed == s.edits;
    let i = &report.import;
    Ok(
        if all(&report.small_store)
            && all(&report.large_store)
            && i.succeeded
            && i.differing_landed == i.differing
        {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

async fn cmd_bench(
    quick: bool,
    json: bool,
    store: Option<&str>,
    engine: BenchEngineArgs,
) -> anyhow::Result<ExitCode> {
    // The bench prints its own figures; logs only for warnings unless RUST_LOG says otherwise.
    if std::env::var_os("RUST_LOG").is_none() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let mut opts = if quick {
        tandem::bench::BenchOptions::quick()
    } else {
        tandem::bench::BenchOptions::full()
    };
    opts.progress = !json;
    // The separate-process phases: on by default in the full run; any of their flags turns
    // them on in a quick one.
    let given = engine.items.is_some() || engine.duration.is_some() || engine.rate.is_some();
    if given || engine.engine_only {
        opts.engine_process.get_or_insert_with(Default::default);
    }
    if let Some(e) = opts.engine_process.as_mut() {
        e.items = engine.items.unwrap_or(e.items);
        e.duration_secs = engine.duration.unwrap_or(e.duration_secs);
        e.rate = engine.rate.unwrap_or(e.rate);
        e.progress = !json;
    }
    // The engine phases start this same binary as `tandem serve`.
    let binary = std::env::current_exe().ok();
    if engine.engine_only {
        let binary = binary.context("cannot find this binary to start it as tandem serve")?;
        let report =
            tandem::bench::engine_process::run(&binary, opts.engine_process.unwrap_or_default())
                .await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", tandem::bench::render_engine(&report));
        }
        return Ok(if report.all_landed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let report = tandem::bench::run_with(opts, store, binary.as_deref()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", tandem::bench::render(&report));
    }
    // Figures are never judged here; only Tandem failing to carry every edit is a failure.
    let t = &report.tandem;
    let all_landed = t.jira_to_external.landed == t.jira_to_external.edits
        && t.external_to_jira.landed == t.external_to_jira.edits
        && t.throughput.links_landed == t.throughput.links
        && t.lost_edits == 0
        && report
            .engine_memory
            .as_ref()
            .is_none_or(|m| m.links_landed == m.creates)
        && report
            .engine_process
            .as_ref()
            .is_none_or(|e| e.all_landed());
    Ok(if all_landed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
