//! The store's disk fails under load (DESIGN §2 invariant 1, and the webhook contract of
//! DESIGN §1): `tandem serve` on SQLite while users edit both sides, then
//!
//! - **disk full**: the store's directory is a small tmpfs of its own, filled to the last page
//!   by a ballast file, and later freed by deleting it;
//! - **read-only**: the database and its WAL are made immutable (`chattr +i`: as root,
//!   `chmod` changes nothing, and a read-only remount is refused while the files are open for
//!   writing), and later writable again.
//!
//! While the disk is broken, the webhook route must answer `503` (the sender retries), never
//! `500`, and never `202` for an event it could not store: every event id a `202` named must
//! be in the store at the end. (A full disk need not refuse every delivery: SQLite reuses its
//! WAL's space, so a small write may still be stored; read-only files refuse them all.) Once the disk is back, the same process (no restart) must
//! accept webhooks again and catch up by itself, and the usual checks hold: every last edit on
//! both sides, one twin per item, nothing written twice or back, no dead letter.
//!
//! Both need root (mount, chattr); without it, or on a filesystem without `chattr +i`, the
//! test says why and passes without running.

mod faultkit;
mod reliability;

use faultkit::*;
use reliability::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tandem_sandbox::{ExternalSandbox, JiraSandbox};

/// Size of the store's own filesystem in the disk-full test.
const TMPFS_SIZE: &str = "8m";
/// Edits per second during the run.
const EDITS_PER_SEC: u64 = 20;
/// How long the disk stays broken.
const BROKEN_FOR: Duration = Duration::from_secs(10);

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Files made immutable, made mutable again when dropped (or the temporary directory could
/// not be removed).
struct Immutable(Vec<PathBuf>);

fn chattr(flag: &str, path: &Path) -> Result<(), String> {
    let out = Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run chattr: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

impl Immutable {
    fn set(paths: Vec<PathBuf>) -> Result<Immutable, String> {
        let mut guard = Immutable(Vec::new());
        for p in paths {
            chattr("+i", &p)?;
            guard.0.push(p);
        }
        Ok(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = chattr("-i", p);
        }
    }
}

/// Fills the filesystem holding `path` until a write fails for want of space.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("ballast file");
    for chunk in [1 << 20, 4096, 512] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    let _ = f.sync_all();
    f.metadata().map(|m| m.len()).unwrap_or(0)
}

enum Breakage {
    Full {
        ballast: PathBuf,
    },
    ReadOnly {
        files: Vec<PathBuf>,
        guard: Option<Immutable>,
    },
}

impl Breakage {
    fn name(&self) -> &'static str {
        match self {
            Breakage::Full { .. } => "disk full",
            Breakage::ReadOnly { .. } => "read-only",
        }
    }

    /// Breaks the disk; `Err` when this machine cannot (the test is then skipped).
    fn apply(&mut self) -> Result<String, String> {
        match self {
            Breakage::Full { ballast } => Ok(format!("ballast of {} bytes", fill(ballast))),
            Breakage::ReadOnly { files, guard } => {
                *guard = Some(Immutable::set(files.clone())?);
                Ok(format!("{} files immutable", files.len()))
            }
        }
    }

    /// Whether every write must fail while broken. A full disk need not refuse every write:
    /// SQLite reuses the WAL's space after a checkpoint, so small writes may still be stored
    /// (and then their `202` is right); immutable files refuse all of them.
    fn must_refuse(&self) -> bool {
        matches!(self, Breakage::ReadOnly { .. })
    }

    fn undo(&mut self) {
        match self {
            Breakage::Full { ballast } => std::fs::remove_file(ballast).expect("remove ballast"),
            Breakage::ReadOnly { guard, .. } => *guard = None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_loses_nothing_and_recovers() {
    let dir = keep_if_asked(tempfile::tempdir().unwrap());
    let store_dir = dir.path().join("store");
    let _mount = match Tmpfs::mount(&store_dir, TMPFS_SIZE) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: cannot mount a tmpfs for the store ({e}); run as root");
            return;
        }
    };
    let ballast = store_dir.join("ballast");
    run(dir, &store_dir, Breakage::Full { ballast }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_answers_503_loses_nothing_and_recovers() {
    let dir = keep_if_asked(tempfile::tempdir().unwrap());
    let store_dir = dir.path().join("store");
    std::fs::create_dir_all(&store_dir).unwrap();
    // Can this filesystem make a file immutable at all?
    let probe = store_dir.join("probe");
    std::fs::write(&probe, b"x").unwrap();
    if let Err(e) = chattr("+i", &probe) {
        eprintln!("skipped: `chattr +i` does not work here ({e}); run as root on ext4/xfs/tmpfs");
        return;
    }
    chattr("-i", &probe).unwrap();
    std::fs::remove_file(&probe).unwrap();
    let files = ["tandem.db", "tandem.db-wal"]
        .iter()
        .map(|f| store_dir.join(f))
        .collect();
    run(dir, &store_dir, Breakage::ReadOnly { files, guard: None }).await;
}

async fn run(dir: Kept, store_dir: &Path, mut breakage: Breakage) {
    init_logging();
    let what = breakage.name();
    if std::env::var("TANDEM_TEST_KEEP").is_ok() {
        eprintln!("instance logs in {}", dir.path().display());
    }
    let (jira, external) = sandboxes().await;
    let proxy = RecordingProxy::start(1).await;
    let url = format!("sqlite://{}", store_dir.join("tandem.db").display());
    let config = write_config(
        dir.path(),
        &url,
        &jira,
        &external,
        // A short lease: an event whose outcome could not be recorded stays leased (the
        // store cannot take the retry either) and is claimed again when the lease ends.
        "lease_seconds = 6\nbackoff_base_ms = 100\nbackoff_cap_ms = 2000\nmax_attempts = 60",
        "poll_interval = \"1s\"",
    );
    // The log lives outside the broken filesystem.
    let mut instance = Instance::start(&config, dir.path().join("tandem.log"));
    proxy.set(0, Some(instance.url.clone()));
    proxy.point("seed", &jira, &external);

    let mut load = Load::new();
    for i in 0..8usize {
        load.create(&jira, &external, i.is_multiple_of(2));
    }
    for _ in 0..6 {
        step(&mut load, &jira, &external).await;
    }

    let broken_at = Instant::now();
    let how = match breakage.apply() {
        Ok(how) => how,
        Err(e) => {
            eprintln!("skipped: cannot make the store {what} ({e})");
            return;
        }
    };
    // Users keep editing while the disk stays broken.
    while broken_at.elapsed() < BROKEN_FOR {
        step(&mut load, &jira, &external).await;
    }
    assert!(instance.alive(), "tandem serve died with the store {what}");
    let fixed_at = Instant::now();
    breakage.undo();
    for _ in 0..8 {
        step(&mut load, &jira, &external).await;
    }
    assert!(
        instance.alive(),
        "tandem serve died after the store came back"
    );

    let during = proxy.answers_between(broken_at, fixed_at);
    let answers = proxy.answers();
    let counts_during = status_counts(&during);
    let unexpected: Vec<_> = answers
        .iter()
        .filter(|a| !matches!(a.status, Some(200 | 202 | 503)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "answers other than 200, 202 and 503 with the store {what}: {unexpected:?}"
    );
    let slowest = during.iter().map(|a| a.took).max().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(5),
        "a delivery waited {slowest:?} for its answer while the store was {what}"
    );
    let refused = during.iter().filter(|a| a.status == Some(503)).count();
    if breakage.must_refuse() {
        assert!(
            refused > 0,
            "no delivery refused with the store {what} ({how}): {counts_during:?}"
        );
    }
    let recovered = answers
        .iter()
        .filter(|a| a.at > fixed_at && a.status == Some(202))
        .count();
    assert!(
        recovered > 0,
        "no delivery accepted after the store came back: {:?}",
        status_counts(&proxy.answers_between(fixed_at, Instant::now()))
    );

    let store = tandem::store::open(&url)
        .await
        .expect("open the store read-side");
    // A 202 is a promise that the event is on disk.
    let accepted: Vec<i64> = answers.iter().flat_map(|a| a.events.clone()).collect();
    for id in &accepted {
        assert!(
            store.get_event(*id).await.unwrap().is_some(),
            "event {id} was answered 202 but is not in the store"
        );
    }
    let w = assert_converged_and_clean(&jira, &external, &load, store.as_ref()).await;
    assert!(instance.alive(), "tandem serve died");
    let slug = what.replace(' ', "_");
    eprintln!(
        "faults_disk {what}: {how}; broken {:.1} s; answers while broken {counts_during:?}, slowest {} ms; {} deliveries accepted after it came back",
        (fixed_at - broken_at).as_secs_f64(),
        slowest.as_millis(),
        recovered
    );
    eprintln!(
        "{}",
        summary(
            &format!("faults_disk_{slug}"),
            &load,
            &w,
            &HashMap::from([("accepted_events", accepted.len())])
        )
    );
}

/// Half a second of user edits at [`EDITS_PER_SEC`].
async fn step(load: &mut Load, jira: &JiraSandbox, external: &ExternalSandbox) {
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        load.edit(jira, external);
        tokio::time::sleep(Duration::from_millis(1000 / EDITS_PER_SEC)).await;
    }
}
