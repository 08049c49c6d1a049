//! PostgreSQL fails under load (DESIGN §2 invariants 1, 2 and 4 across processes): two
//! `tandem serve` processes share one database while users edit both sides; the database is
//! restarted in immediate mode (every session dropped, mid-transaction ones included, and
//! crash recovery on start), and later stopped for `TANDEM_PG_OUTAGE_SECS` seconds (30) and
//! started again.
//!
//! While the database is down, every webhook answer must be a `503`, given within a few
//! seconds; every event id a `202` named must be in the database at the end; neither instance
//! may die; and afterwards the usual checks hold: every last edit on both sides, one twin per
//! item, nothing written twice or back, per-link order kept, no dead letter.
//!
//! The database is a private cluster the test makes itself (`initdb` and `pg_ctl` of the
//! PostgreSQL found under `/usr/lib/postgresql/*/bin`, run as user `postgres` when the test
//! runs as root), on a free port, in a temporary directory: never a shared server, which the
//! test must be free to stop. Without those binaries the test says why and passes without
//! running.

mod faultkit;
mod reliability;

use faultkit::*;
use reliability::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use tandem_sandbox::{ExternalSandbox, JiraSandbox};

/// How long the database stays stopped (`TANDEM_PG_OUTAGE_SECS`).
const OUTAGE_SECS: usize = 30;
/// Edits per second during the run.
const EDITS_PER_SEC: u64 = 20;

/// A PostgreSQL cluster of the test's own, stopped and removed when dropped.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run the server's tools as `postgres` (they refuse to run as root).
    as_postgres: bool,
}

fn newest_bin() -> Option<PathBuf> {
    let mut bins: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    bins.sort();
    bins.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    // `id -u` says who we are without a libc binding.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let bin = newest_bin().ok_or("no PostgreSQL under /usr/lib/postgresql/*/bin")?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("tandem-pg-")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?
            .keep();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            l.local_addr().map_err(|e| e.to_string())?.port()
        };
        let cluster = Cluster {
            bin,
            dir,
            port,
            as_postgres,
        };
        if as_postgres {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.dir)
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "chown to postgres: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        let data = cluster.data();
        cluster.tool(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        cluster.pg_ctl(&["start", "-w", "-t", "30"])?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn tool(&self, name: &str, args: &[&str]) -> Result<String, String> {
        let path = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        // The tools change into their working directory; the repository may not be readable
        // by `postgres`.
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| format!("{name}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{name} {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// `pg_ctl` with the cluster's data directory, port, socket directory and log.
    fn pg_ctl(&self, args: &[&str]) -> Result<String, String> {
        let data = self.data();
        let log = self.dir.join("postgres.log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60",
            self.port,
            self.dir.display()
        );
        let mut all = vec!["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap()];
        all.extend_from_slice(args);
        if matches!(args.first(), Some(&"start") | Some(&"restart")) {
            all.extend_from_slice(&["-o", &opts]);
            return self.tool("pg_ctl", &all);
        }
        self.tool("pg_ctl", &all)
    }

    /// Every session dropped at once, open transactions with them, and crash recovery on
    /// the way up: what a crashed or killed server does to its clients.
    fn restart_immediately(&self) -> Result<String, String> {
        self.pg_ctl(&["restart", "-m", "immediate", "-w", "-t", "30"])
    }

    fn stop(&self) -> Result<String, String> {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"])
    }

    fn start_again(&self) -> Result<String, String> {
        self.pg_ctl(&["start", "-w", "-t", "30"])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "30"]);
        if std::env::var("TANDEM_TEST_KEEP").is_ok() {
            eprintln!("PostgreSQL cluster kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Edits for `d` at [`EDITS_PER_SEC`].
async fn edit_for(load: &mut Load, jira: &JiraSandbox, external: &ExternalSandbox, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        load.edit(jira, external);
        tokio::time::sleep(Duration::from_millis(1000 / EDITS_PER_SEC)).await;
    }
}

/// Runs a blocking `pg_ctl` off the runtime while users keep editing; returns its result.
async fn while_editing(
    load: &mut Load,
    jira: &JiraSandbox,
    external: &ExternalSandbox,
    what: impl FnOnce() -> Result<String, String> + Send + 'static,
) -> Result<String, String> {
    let task = tokio::task::spawn_blocking(what);
    while !task.is_finished() {
        edit_for(load, jira, external, Duration::from_millis(100)).await;
    }
    task.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_survive_postgres_restarting_and_going_away() {
    init_logging();
    let outage = Duration::from_secs(env_num("TANDEM_PG_OUTAGE_SECS", OUTAGE_SECS) as u64);
    let cluster = match Cluster::start() {
        Ok(c) => std::sync::Arc::new(c),
        Err(e) => {
            eprintln!("skipped: cannot start a private PostgreSQL cluster ({e})");
            return;
        }
    };
    let url = cluster.url();
    let store = tandem::store::open(&url)
        .await
        .expect("migrate the database");
    let (jira, external) = sandboxes().await;
    let proxy = RecordingProxy::start(2).await;
    let dir = keep_if_asked(tempfile::tempdir().unwrap());
    if std::env::var("TANDEM_TEST_KEEP").is_ok() {
        eprintln!("instance logs in {}", dir.path().display());
    }
    let config = write_config(
        dir.path(),
        &url,
        &jira,
        &external,
        "concurrency = 4\nlease_seconds = 5\nbackoff_base_ms = 100\nbackoff_cap_ms = 2000\nmax_attempts = 60",
        "poll_interval = \"2s\"",
    );
    let mut instances: Vec<Instance> = (0..2)
        .map(|i| Instance::start(&config, dir.path().join(format!("tandem-{i}.log"))))
        .collect();
    for (i, inst) in instances.iter().enumerate() {
        proxy.set(i, Some(inst.url.clone()));
    }
    proxy.point("seed", &jira, &external);

    let mut load = Load::new();
    for i in 0..12usize {
        load.create(&jira, &external, i.is_multiple_of(2));
    }
    edit_for(&mut load, &jira, &external, Duration::from_secs(4)).await;

    // 1. Restarted under load: sessions dropped mid-transaction.
    let c = cluster.clone();
    let restart_at = Instant::now();
    while_editing(&mut load, &jira, &external, move || c.restart_immediately())
        .await
        .expect("restart PostgreSQL");
    let restart_took = restart_at.elapsed();
    edit_for(&mut load, &jira, &external, Duration::from_secs(4)).await;

    // 2. Gone for a while.
    let c = cluster.clone();
    while_editing(&mut load, &jira, &external, move || c.stop())
        .await
        .expect("stop PostgreSQL");
    let down_at = Instant::now();
    edit_for(&mut load, &jira, &external, outage).await;
    let c = cluster.clone();
    let up_at = Instant::now();
    while_editing(&mut load, &jira, &external, move || c.start_again())
        .await
        .expect("start PostgreSQL again");
    edit_for(&mut load, &jira, &external, Duration::from_secs(4)).await;

    for inst in instances.iter_mut() {
        assert!(inst.alive(), "an instance died with the database");
    }
    let answers = proxy.answers();
    // A delivery still waiting for the store when it came back may be accepted then: only
    // those that arrived well before count as answered during the outage.
    let during = proxy.answers_between(down_at, up_at - Duration::from_secs(6));
    let counts_during = status_counts(&during);
    let not_503: Vec<_> = during.iter().filter(|a| a.status != Some(503)).collect();
    assert!(
        not_503.is_empty(),
        "answers other than 503 while the database was down: {not_503:?}"
    );
    assert!(!during.is_empty(), "no delivery arrived during the outage");
    let slowest = during.iter().map(|a| a.took).max().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(5),
        "a delivery waited {slowest:?} for its 503 while the database was down"
    );
    let unexpected: Vec<_> = answers
        .iter()
        .filter(|a| !matches!(a.status, Some(200 | 202 | 503)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "answers other than 200, 202 and 503: {unexpected:?}"
    );
    let accepted: Vec<i64> = answers.iter().flat_map(|a| a.events.clone()).collect();
    for id in &accepted {
        assert!(
            store.get_event(*id).await.unwrap().is_some(),
            "event {id} was answered 202 but is not in the database"
        );
    }
    let w = assert_converged_and_clean(&jira, &external, &load, store.as_ref()).await;
    for inst in instances.iter_mut() {
        assert!(inst.alive(), "an instance died");
    }
    eprintln!(
        "faults_postgres: restart took {:.1} s; down {:.1} s, answers while down {counts_during:?}, slowest {} ms; {} events accepted",
        restart_took.as_secs_f64(),
        (up_at - down_at).as_secs_f64(),
        slowest.as_millis(),
        accepted.len()
    );
    eprintln!(
        "{}",
        summary(
            "faults_postgres",
            &load,
            &w,
            &HashMap::from([("instances", 2), ("outage_secs", outage.as_secs() as usize)])
        )
    );
    drop(instances);
    drop(store);
}
