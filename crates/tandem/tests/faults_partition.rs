//! A network partition between one instance and the database (DESIGN §2 invariants 1, 2 and
//! 4 across processes): three `tandem serve` processes share one PostgreSQL; instance 0
//! reaches it through a TCP relay the test can cut. While cut, the relay holds every byte
//! both ways and accepts new connections without answering them — what a partition looks
//! like to a client: no error, no answer, until the link is back. Users edit both sides
//! throughout; webhooks are spread over the three instances.
//!
//! While instance 0 is cut off, the other two must go on (events are applied, the cut-off
//! instance's leases are taken over); after the link is back, instance 0 must rejoin without
//! writing anything the others had already written; and at the end the usual checks hold:
//! every last edit on both sides, one twin per item, nothing written twice or back, per-link
//! order kept, no dead letter.
//!
//! Runs only when `TANDEM_TEST_POSTGRES_URL` is set (each run gets its own schema).
//! `TANDEM_PARTITION_SECS` sets how long the cut lasts (default 15).

mod faultkit;
mod reliability;

use faultkit::done_events;
use reliability::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP relay to `upstream` that can be cut: while cut, nothing passes either way and new
/// connections wait unanswered; bytes read before are held, not dropped.
struct Relay {
    addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let c = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let cut = c.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    wait_while_cut(&cut).await;
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, cut.clone()));
                    tokio::spawn(pump(sr, cw, cut));
                });
            }
        });
        Relay { addr, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

async fn wait_while_cut(cut: &AtomicBool) {
    while cut.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Copies one direction, holding each chunk while the relay is cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        wait_while_cut(&cut).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Users edit both sides for `d`, 20 edits a second.
async fn edit_for(
    load: &mut Load,
    jira: &tandem_sandbox::JiraSandbox,
    external: &tandem_sandbox::ExternalSandbox,
    d: Duration,
) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        load.edit(jira, external);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `host:port` of a `postgres://` URL (the default port when it gives none).
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_from_postgres_rejoins_without_harm_while_two_go_on() {
    let Ok(pg) = std::env::var("TANDEM_TEST_POSTGRES_URL") else {
        eprintln!("skipped: set TANDEM_TEST_POSTGRES_URL to run the partition test");
        return;
    };
    init_logging();
    let cut_for = Duration::from_secs(env_num("TANDEM_PARTITION_SECS", 15) as u64);
    let schema = format!(
        "tandem_partition_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let store = tandem::store::open_postgres_in_schema(&pg, &schema)
        .await
        .expect("schema for this run");
    let sep = if pg.contains('?') { '&' } else { '?' };
    let direct = format!("{pg}{sep}options=-c%20search_path%3D{schema}");
    let target = host_port(&pg);
    let relay = Relay::start(target.clone()).await;
    let relayed = direct.replacen(&target, &relay.addr.to_string(), 1);
    assert_ne!(relayed, direct, "the storage URL names {target}");

    let (jira, external) = sandboxes().await;
    let proxy = Proxy::start(3).await;
    let dir = keep_if_asked(tempfile::tempdir().unwrap());
    if std::env::var("TANDEM_TEST_KEEP").is_ok() {
        eprintln!("instance logs in {}", dir.path().display());
    }
    let worker = "concurrency = 4\nlease_seconds = 3\nbackoff_base_ms = 50\nbackoff_cap_ms = 1000\nmax_attempts = 60";
    let mut instances = Vec::new();
    for i in 0..3 {
        let sub = dir.path().join(format!("instance-{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        let storage = if i == 0 { &relayed } else { &direct };
        let config = write_config(
            &sub,
            storage,
            &jira,
            &external,
            worker,
            "poll_interval = \"2s\"",
        );
        instances.push(Instance::start(&config, sub.join("tandem.log")));
    }
    for (i, inst) in instances.iter().enumerate() {
        proxy.set(i, Some(inst.url.clone()));
    }
    point_webhooks_at(&proxy, &jira, &external);

    let mut load = Load::new();
    for i in 0..12usize {
        load.create(&jira, &external, i.is_multiple_of(2));
    }
    edit_for(&mut load, &jira, &external, Duration::from_secs(4)).await;

    relay.set_cut(true);
    let cut_at = Instant::now();
    let done_before = done_events(store.as_ref(), "seed").await;
    edit_for(&mut load, &jira, &external, cut_for).await;
    let done_during = done_events(store.as_ref(), "seed").await - done_before;
    relay.set_cut(false);
    let healed_at = Instant::now();
    edit_for(&mut load, &jira, &external, Duration::from_secs(4)).await;

    assert!(
        done_during > 0,
        "no event was applied while one instance of three was cut off"
    );
    let w = assert_converged_and_clean(&jira, &external, &load, store.as_ref()).await;
    for (i, inst) in instances.iter_mut().enumerate() {
        assert!(inst.alive(), "instance {i} died");
    }
    eprintln!(
        "faults_partition: cut {:.1} s; {done_during} events applied by the other two meanwhile; converged {:.1} s after the cut healed",
        (healed_at - cut_at).as_secs_f64(),
        healed_at.elapsed().as_secs_f64()
    );
    eprintln!(
        "{}",
        summary(
            "faults_partition",
            &load,
            &w,
            &HashMap::from([("instances", 3), ("cut_secs", cut_for.as_secs() as usize)])
        )
    );
    drop(instances);
    drop(store);
    tandem::store::drop_postgres_schema(&pg, &schema)
        .await
        .expect("drop the run's schema");
}
