//! Serving the HTTP application over TCP with limits that slow or stalled clients cannot outlast.
//!
//! `axum::serve` puts no time limit on a client: one that sends half a header, keeps an idle
//! keep-alive connection, or never reads its answers holds its connection (and a file
//! descriptor) for ever, and enough of them lock everyone out. So each connection is served
//! by hyper's HTTP/1 server directly, with:
//!
//! - **`server.header_read_timeout`**: hyper's header read timeout, which runs from when the
//!   connection opens or finishes an answer until a whole request header has arrived, so it
//!   also closes idle keep-alive connections. Such a connection is closed without an answer.
//! - **`server.body_read_timeout`**: enforced where bodies are read ([`super::read_body`]),
//!   which answers `408`.
//! - **`server.write_timeout`**: [`LimitedStream`] fails a write once an answer has waited that
//!   long for the client to take it.
//! - **`server.max_connections`**: a semaphore whose permit each connection's stream holds
//!   until it closes. A connection over the cap is still accepted, answered `503` with
//!   `Retry-After` and closed, so a client can tell a full server from a dead one (connections
//!   left in the kernel's backlog would just hang).
//!
//! Shutdown stops accepting, lets each connection finish the request it is serving (hyper's
//! graceful shutdown closes idle ones at once) and closes whatever is left after
//! [`SHUTDOWN_GRACE`].

use crate::config::ServerConfig;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Sleep;
use tracing::{debug, warn};

/// How long connections still open at shutdown may take to finish their request.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Over-cap connections being answered `503` at once; past this a connection over the cap is
/// closed without an answer (a flood is not worth more file descriptors).
const REFUSALS_IN_FLIGHT: usize = 64;

/// How long answering an over-cap connection may take, reading the client's request included;
/// a client that sends no header in that time is closed without an answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// At most one warning per this interval about a full server or a failing `accept`.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The per-connection limits of `[server]`. (The body read timeout lives in
/// [`super::AppState`], because bodies are read by handlers.)
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_config(server: &ServerConfig) -> Limits {
        Limits {
            header_read_timeout: server.header_read_timeout,
            write_timeout: server.write_timeout,
            max_connections: server.max_connections.max(1),
        }
    }
}

/// What the accept loop tells every open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Finish the request in progress, then close.
    Draining,
    /// Close now.
    Closing,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains the open connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
    let mut full_warned: Option<Instant> = None;
    let mut accept_warned: Option<Instant> = None;
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    accept_failed(e, &mut accept_warned).await;
                    continue;
                }
            },
        };
        // Small JSON answers: do not let Nagle's algorithm hold them back.
        let _ = stream.set_nodelay(true);
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(serve_connection(
                    stream,
                    app.clone(),
                    limits,
                    phase_rx.clone(),
                    permit,
                ));
            }
            Err(_) => {
                metrics::counter!("tandem_http_connections_refused_total").increment(1);
                if due(&mut full_warned) {
                    warn!(
                        max_connections = limits.max_connections,
                        "connection cap reached: new connections are answered 503 until some close (server.max_connections)"
                    );
                }
                refuse(stream, &refusals, limits.max_connections);
            }
        }
    }
    // New connections are now refused by the kernel; open ones finish what they are doing.
    drop(listener);
    let _ = phase_tx.send(Phase::Draining);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all))
        .await
        .is_err()
    {
        let open = limits.max_connections - permits.available_permits();
        warn!(
            open,
            "closing connections still busy {SHUTDOWN_GRACE:?} after shutdown began"
        );
        let _ = phase_tx.send(Phase::Closing);
        let _ = permits.acquire_many(all).await;
    }
}

/// `accept` fails for two reasons: the peer gave up before we took its connection (ignore),
/// or the process is out of file descriptors or memory (back off, or we would spin).
async fn accept_failed(e: io::Error, warned: &mut Option<Instant>) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    if due(warned) {
        warn!(error = %e, "cannot accept connections; is the open-file limit (ulimit -n) below server.max_connections?");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// True at most once per [`WARN_EVERY`], so a flood does not flood the log too.
fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
        return false;
    }
    *last = Some(now);
    true
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    limits: Limits,
    mut phase: watch::Receiver<Phase>,
    permit: OwnedSemaphorePermit,
) {
    let open = metrics::gauge!("tandem_http_connections_open");
    open.increment(1.0);
    let stream = LimitedStream::new(stream, permit, limits.write_timeout);
    let client_sent = stream.client_sent.clone();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut conn =
        pin!(builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app)));
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break Some(result),
            changed = phase.changed() => {
                let now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Closing };
                match now {
                    Phase::Serving => {}
                    Phase::Draining => conn.as_mut().graceful_shutdown(),
                    Phase::Closing => break None,
                }
            }
        }
    };
    if let Some(Err(e)) = result {
        let timed_out = if e.is_timeout() {
            // The same timer closes a connection that is sending a header too slowly and an
            // idle keep-alive one; only the first is a client misbehaving.
            Some(if client_sent.load(Ordering::Relaxed) {
                "header"
            } else {
                "idle"
            })
        } else if is_write_timeout(&e) {
            Some("write")
        } else {
            None
        };
        match timed_out {
            Some(phase) => {
                metrics::counter!("tandem_http_timeouts_total", "phase" => phase).increment(1);
                debug!(phase, "closed a connection that ran out of time");
            }
            None => debug!(error = %e, "connection ended with an error"),
        }
    }
    open.decrement(1.0);
}

fn is_write_timeout(e: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Answers a connection over the cap with `503` once its request header is in, and closes
/// it, in the background.
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>, max_connections: usize) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return; // dropped: closed without an answer
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_LINGER, answer_busy(stream, max_connections)).await;
    });
}

async fn answer_busy(mut stream: TcpStream, max_connections: usize) -> io::Result<()> {
    let body = json!({
        "error": format!(
            "the server is serving its maximum of {max_connections} connections (server.max_connections); retry shortly"
        )
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // Answer only once the request's header is in: an HTTP client takes an answer that comes
    // before its request for a broken connection (hyper's says "unexpected message").
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(()); // gone before asking anything
        }
        head.extend_from_slice(&buf[..n]);
    }
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await?;
    // Read the rest until the client closes: closing a socket with unread bytes makes the
    // kernel reset it, and a reset can destroy the answer before the client has read it.
    while stream.read(&mut buf).await? > 0 {}
    Ok(())
}

/// One served connection's TCP stream, with its place under the connection cap.
///
/// - Writes fail once an answer has waited `write_timeout` for the client to read it: the
///   clock starts when a write first has to wait and stops when everything written has been
///   handed to the kernel (a flush completes).
/// - The cap's permit goes back *before* the socket is shut down or closed, so a client that
///   has seen its connection end can count on its slot being free again.
/// - It notes whether the client sent anything since the last answer, to tell a slow header
///   from an idle connection.
struct LimitedStream {
    // Declared before `inner`: fields drop in order, so the permit is released first.
    permit: Option<OwnedSemaphorePermit>,
    inner: TcpStream,
    write_timeout: Duration,
    waiting_since: Option<Pin<Box<Sleep>>>,
    client_sent: Arc<AtomicBool>,
}

impl LimitedStream {
    fn new(inner: TcpStream, permit: OwnedSemaphorePermit, write_timeout: Duration) -> Self {
        LimitedStream {
            permit: Some(permit),
            inner,
            write_timeout,
            waiting_since: None,
            client_sent: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Called when the socket cannot take more bytes: pending, or an error once the client
    /// has left the answer unread for `write_timeout`.
    fn wait_or_time_out<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.write_timeout;
        let deadline = self
            .waiting_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client did not read the answer within {timeout:?} (server.write_timeout)"
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// What a write of the inner stream came to, with the deadline applied.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Pending => self.wait_or_time_out(cx),
            Poll::Ready(Ok(n)) if n > 0 => {
                self.client_sent.store(false, Ordering::Relaxed);
                Poll::Ready(Ok(n))
            }
            ready => ready,
        }
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.client_sent.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after_write(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // hyper flushes the socket once its own buffer is written out: the answer so far has
        // been taken, so the clock stops.
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        if result.is_ready() {
            self.waiting_since = None;
        }
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.permit = None;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
