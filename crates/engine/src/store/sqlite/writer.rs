//! Group commit for the SQLite store: one task runs the process's writes, and the writes that
//! arrived while the previous commit was on its way to disk go into the next transaction
//! together, so many callers share one fsync.
//!
//! Why: with `synchronous=FULL` every commit waits for an fsync of the WAL, and SQLite takes
//! one writer at a time. One transaction per write capped the store at the disk's fsync rate
//! (about 4,800 a second on the machine in `docs/BENCHMARKS.md`) shared by every webhook
//! accepted, event claimed and outcome recorded. Batching needs no waiting: a batch is simply
//! whatever queued up during the last commit, so an idle store commits a lone write at once and
//! a busy one commits hundreds per fsync.
//!
//! What a caller sees does not change:
//! - **Durable before answered.** A caller hears its result only after the transaction holding
//!   its write committed; if the commit fails, every caller of the batch gets the error and none
//!   of their writes happened.
//! - **Atomic per caller.** A write of several statements runs inside its own `SAVEPOINT` and,
//!   when it fails, is rolled back alone; the others of its batch still commit. A write of one
//!   statement needs no savepoint: SQLite undoes a failed statement by itself. But a statement
//!   that failed on a full disk or an I/O error may have rolled back the whole transaction
//!   (SQLite does that for `SQLITE_FULL`, `SQLITE_IOERR`, `SQLITE_NOMEM`), and the writes
//!   after it would then run in autocommit: so such a failure abandons the batch, and every
//!   caller in it hears an error (an error may be retried; a false success loses a write).
//! - **Serialised.** The writes of a batch run one after another on one connection, in the order
//!   they were queued, exactly as they did under the old per-write lock.

use super::super::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc, oneshot};

/// What a write returns: a future borrowing the batch's connection.
pub(crate) type WriteFuture<'c, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'c>>;

/// Hands a write's result to its caller once the batch's commit is known.
type Deliver = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// A queued write, type-erased. Called with the batch's connection (or the error that kept the
/// batch from starting), it runs the write and says how it went.
type Job = Box<
    dyn for<'c> FnOnce(
            Result<&'c mut SqliteConnection, StoreError>,
        ) -> Pin<Box<dyn Future<Output = (Written, Deliver)> + Send + 'c>>
        + Send,
>;

/// How a write went, as far as the batch around it needs to know.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Written {
    Ok,
    /// The write refused itself (a link changed under it, a lease was lost): the database is
    /// as the write found it.
    Refused,
    /// The database failed the write: it may have rolled back more than the write.
    DbFailed,
}

struct Queued {
    job: Job,
    /// More than one statement: run it inside a savepoint of its own.
    savepoint: bool,
}

/// Most writes in one transaction: bounds how long the first caller of a batch waits on the
/// others (a few milliseconds of statements at most).
const MAX_BATCH: usize = 256;

/// The handle callers queue writes on; the task behind it stops when the handle is dropped.
/// When a transaction of the store last failed to begin or commit (a full disk, a file made
/// read-only, an I/O error). The pool retires every connection opened before it: sqlx can
/// hand back a connection still inside the transaction whose `COMMIT` failed, and SQLite
/// keeps a connection opened while the file could not be written read-only for good, so
/// without this the store would not recover when the disk does.
#[derive(Clone)]
pub(crate) struct WriteFailures {
    base: Instant,
    /// Milliseconds since `base` of the last failure, plus one; 0 when none happened.
    last: Arc<AtomicU64>,
}

impl WriteFailures {
    pub(crate) fn new() -> WriteFailures {
        WriteFailures {
            base: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    fn now_mark(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn mark(&self) {
        self.last.store(self.now_mark(), Ordering::Relaxed);
    }

    /// True for a connection of this age when it was opened no later than the last failure.
    pub(crate) fn predates_failure(&self, age: Duration) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        if last == 0 {
            return false;
        }
        let opened = self.base.elapsed().saturating_sub(age);
        u64::try_from(opened.as_millis()).unwrap_or(u64::MAX - 1) < last
    }
}

pub(crate) struct Writer {
    jobs: mpsc::Sender<Queued>,
}

fn writer_gone() -> StoreError {
    StoreError::Db("the store's writer has stopped; the write was not made".into())
}

impl Writer {
    /// Starts the writing task. `lock` is the store's write lock: the task holds it for each
    /// batch, so the writes that do not go through here (migrations, maintenance) still take
    /// turns with it.
    pub(crate) fn start(pool: SqlitePool, lock: Arc<Mutex<()>>, failures: WriteFailures) -> Writer {
        // Bounded, so a flood of callers waits here rather than growing memory without end.
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(pool, lock, queue, failures));
        Writer { jobs }
    }

    /// Runs `write` in the next batch and returns its result once that batch has committed.
    /// `several_statements`: the write runs inside its own savepoint, so a failure midway
    /// undoes its earlier statements without touching the rest of the batch.
    pub(crate) async fn write<T, F>(&self, several_statements: bool, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = match conn {
                    Ok(conn) => write(conn).await,
                    Err(e) => Err(e),
                };
                let written = match &result {
                    Ok(_) => Written::Ok,
                    Err(StoreError::Db(_)) => Written::DbFailed,
                    Err(_) => Written::Refused,
                };
                let deliver: Deliver = Box::new(move |committed: StoreResult<()>| {
                    // The caller may have gone (its request was cancelled); nothing to do then.
                    let _ = answer.send(committed.and(result));
                });
                (written, deliver)
            })
        });
        self.jobs
            .send(Queued {
                job,
                savepoint: several_statements,
            })
            .await
            .map_err(|_| writer_gone())?;
        answered.await.map_err(|_| writer_gone())?
    }
}

async fn run(
    pool: SqlitePool,
    lock: Arc<Mutex<()>>,
    mut queue: mpsc::Receiver<Queued>,
    failures: WriteFailures,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        metrics::histogram!("tandem_store_writes_per_commit").record(batch.len() as f64);
        let _turn = lock.lock().await;
        commit_batch(&pool, &mut batch, &failures).await;
    }
}

/// A write with nothing queued beside it runs in a transaction of its own.
///
/// Never in SQLite's autocommit, not even for one statement: there the commit happens when
/// the statement steps to its end, and a statement read with `fetch_optional` (an `INSERT ...
/// RETURNING id`) is dropped after its first row, so sqlx never sees that step, and a commit
/// that failed (a full disk) would be swallowed: the caller would hear the id of a row that
/// was rolled back. An explicit `COMMIT` reports its failure.
async fn commit_alone(pool: &SqlitePool, queued: Queued, failures: &WriteFailures) {
    match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(mut tx) => {
            let (written, deliver) = (queued.job)(Ok(&mut *tx)).await;
            // A failed write is rolled back whole by dropping the transaction; its caller
            // hears its own error.
            let committed = if written == Written::Ok {
                tx.commit().await.map_err(StoreError::from)
            } else {
                Ok(())
            };
            if committed.is_err() {
                failures.mark();
            }
            deliver(committed);
        }
        Err(e) => {
            failures.mark();
            let e = StoreError::from(e);
            let (_, deliver) = (queued.job)(Err(e.clone())).await;
            deliver(Err(e));
        }
    }
}

/// One control statement on the batch's connection. Boxed: the future of an `Executor` call
/// on a reborrowed connection is not `Send` for every lifetime, which `tokio::spawn` needs.
fn run_sql<'c>(
    conn: &'c mut SqliteConnection,
    sql: &'static str,
) -> Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'c>> {
    Box::pin(async move { sqlx::query(sql).execute(conn).await.map(|_| ()) })
}

/// Runs and commits one batch, then answers every caller in it.
async fn commit_batch(pool: &SqlitePool, batch: &mut Vec<Queued>, failures: &WriteFailures) {
    if batch.len() == 1
        && let Some(queued) = batch.pop()
    {
        return commit_alone(pool, queued, failures).await;
    }
    let mut delivers: Vec<Deliver> = Vec::with_capacity(batch.len());
    let mut jobs = batch.drain(..);
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => {
            failures.mark();
            let e = StoreError::from(e);
            for queued in jobs {
                let (_, deliver) = (queued.job)(Err(e.clone())).await;
                deliver(Err(e.clone()));
            }
            return;
        }
    };
    // Set when a failed write could not be undone alone: the whole batch is then abandoned.
    let mut broken: Option<StoreError> = None;
    for queued in jobs.by_ref() {
        if queued.savepoint
            && let Err(e) = run_sql(&mut tx, "SAVEPOINT write").await
        {
            let e = StoreError::from(e);
            let (_, deliver) = (queued.job)(Err(e.clone())).await;
            delivers.push(deliver);
            broken = Some(e);
            break;
        }
        let (written, deliver) = (queued.job)(Ok(&mut *tx)).await;
        delivers.push(deliver);
        let close: &[&'static str] = match (queued.savepoint, written) {
            (true, Written::Ok) => &["RELEASE write"],
            // If SQLite rolled the whole transaction back, the savepoint is gone and the
            // `ROLLBACK TO` fails: the batch is abandoned below.
            (true, _) => &["ROLLBACK TO write", "RELEASE write"],
            (false, Written::Ok | Written::Refused) => &[],
            // SQLite undid the statement, but perhaps the whole transaction with it; which
            // one cannot be told from here, so the batch is abandoned.
            (false, Written::DbFailed) => {
                broken = Some(StoreError::Db(
                    "a write of the same commit failed; the commit was abandoned".into(),
                ));
                break;
            }
        };
        for sql in close {
            if let Err(e) = run_sql(&mut tx, sql).await {
                broken = Some(e.into());
                break;
            }
        }
        if broken.is_some() {
            break;
        }
    }
    let committed = match broken {
        Some(e) => {
            // The writes not run yet hear the same error without running.
            for queued in jobs {
                let (_, deliver) = (queued.job)(Err(e.clone())).await;
                delivers.push(deliver);
            }
            // Dropping the transaction rolls every write of the batch back.
            drop(tx);
            Err(e)
        }
        None => tx.commit().await.map_err(StoreError::from),
    };
    if committed.is_err() {
        failures.mark();
    }
    for deliver in delivers {
        deliver(committed.clone());
    }
}
