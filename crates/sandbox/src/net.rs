//! HTTP plumbing shared by both sandboxes: serving on a socket whose connections can be
//! killed from inside a handler, the request log, and the fault-injection layer.
//!
//! Dropping a connection without an answer is the one fault a plain axum handler cannot
//! produce, yet it is the one that makes retries dangerous (did the write happen?). So each
//! accepted TCP stream is wrapped with a kill flag that travels to the request as connect
//! info; setting it makes every further read and write on that stream fail, and hyper then
//! closes the socket without sending a byte.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::RecordedRequest;
use crate::faults::{ApiFault, Faults};

/// Largest request body the sandboxes read; bigger bodies get 413 like a real proxy would.
pub(crate) const MAX_BODY: usize = 10 * 1024 * 1024;
/// The largest file upload (`multipart/form-data`) the sandboxes read.
pub(crate) const MAX_UPLOAD: usize = 256 * 1024 * 1024;

/// Connect info for one accepted connection: the peer and the kill switch of its stream.
#[derive(Clone, Debug)]
pub(crate) struct ConnHandle {
    #[allow(dead_code)] // kept for debugging output; handlers do not need it today
    pub remote: SocketAddr,
    kill: Arc<AtomicBool>,
}

impl ConnHandle {
    fn kill(&self) {
        self.kill.store(true, Ordering::SeqCst);
    }
}

/// A TCP listener whose streams carry a kill switch.
pub(crate) struct KillableListener {
    inner: TcpListener,
}

/// A TCP stream that starts failing every operation once its kill switch is set.
pub(crate) struct KillableStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

fn killed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "sandbox fault: connection dropped",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = ConnHandle;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, remote)) => {
                    // Small JSON exchanges: do not let Nagle add 40 ms to every answer.
                    let _ = stream.set_nodelay(true);
                    let kill = Arc::new(AtomicBool::new(false));
                    let io = KillableStream {
                        inner: stream,
                        kill: kill.clone(),
                    };
                    return (io, ConnHandle { remote, kill });
                }
                Err(e) => {
                    // Same policy as axum's own listener: back off briefly on errors such as
                    // "too many open files" instead of spinning.
                    tracing::debug!(error = %e, "sandbox accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(ConnHandle {
            remote: self.inner.local_addr()?,
            kill: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A server running in a background task.
pub(crate) struct Running {
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Graceful shutdown waits for open keep-alive connections; do not let a client that
        // holds one keep the test waiting.
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// Serve `router` on an already bound listener in a background task. Binding happens first
/// so the sandbox knows its own URL (for `self` links) before it builds its routes.
pub(crate) fn serve(router: Router, inner: TcpListener) -> anyhow::Result<Running> {
    let listener = KillableListener { inner };
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<ConnHandle>();
        let result = axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "sandbox server stopped with an error");
        }
    });
    Ok(Running {
        shutdown: Some(tx),
        task,
    })
}

/// The log of requests a sandbox received, shared between the middleware and inspectors.
#[derive(Clone, Default)]
pub(crate) struct RequestLog {
    entries: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl RequestLog {
    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.since(0)
    }
    /// The requests from the `start`-th on (cloning only those: a long log's bodies are
    /// costly to copy, and a benchmark polling it would measure its own copying).
    pub fn since(&self, start: usize) -> Vec<RecordedRequest> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(start..).unwrap_or_default().to_vec()
    }
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
    fn push(&self, r: RecordedRequest) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
    }
}

/// Status recorded for requests whose connection was dropped by a fault before they were
/// handled: no status was sent and nothing changed.
pub const STATUS_DROPPED: u16 = 0;

/// Status recorded for a lost response: the request was handled (a write changed state), then
/// the connection was closed without an answer. The client sees the same network error as for
/// [`STATUS_DROPPED`]; the log tells them apart so tests can count writes that happened.
pub const STATUS_LOST_RESPONSE: u16 = 1;

/// State for [`log_and_faults`].
#[derive(Clone)]
pub(crate) struct HttpLayer {
    pub log: RequestLog,
    pub faults: Faults,
}

/// Outermost middleware: records every request (with its parsed JSON body and final status)
/// and applies the API faults. It buffers the body once so handlers still see it.
pub(crate) async fn log_and_faults(
    State(layer): State<HttpLayer>,
    req: Request,
    next: Next,
) -> Response {
    let conn = req.extensions().get::<ConnectInfo<ConnHandle>>().cloned();
    let (parts, body) = req.into_parts();
    // A file upload is logged by its size, not its content.
    let multipart = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        });
    // The custom shape's uploads (`…/files`) may be JSON carrying the file in base64.
    let upload = multipart
        || (parts.method == axum::http::Method::POST && parts.uri.path().ends_with("/files"));
    let limit = if upload {
        MAX_UPLOAD / 3 * 4 + 4096
    } else {
        MAX_BODY
    };
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    };
    let json_body = if bytes.is_empty() {
        serde_json::Value::Null
    } else if upload {
        let what = if multipart { "multipart" } else { "upload" };
        serde_json::Value::String(format!("{what} body, {} bytes", bytes.len()))
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    let mut record = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        body: json_body,
        status: 0,
        slow: false,
    };
    let req = Request::from_parts(parts, Body::from(bytes));

    let latency = layer.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = layer.faults.decide_api();
    let response = match fault {
        ApiFault::None | ApiFault::LoseResponse | ApiFault::SlowAnswer(_) => next.run(req).await,
        ApiFault::ServerError => {
            let body = serde_json::json!({
                "errorMessages": ["Internal server error (sandbox fault injection)."],
                "errors": {}
            });
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
        }
        ApiFault::RateLimited(secs) => rate_limited_for(secs),
        ApiFault::Drop => (StatusCode::BAD_GATEWAY, "dropped").into_response(),
    };
    let dropped = matches!(fault, ApiFault::Drop | ApiFault::LoseResponse);
    if dropped {
        match &conn {
            Some(ConnectInfo(c)) => c.kill(),
            None => tracing::warn!("no connection handle; cannot drop the connection"),
        }
    }
    record.status = if fault == ApiFault::LoseResponse {
        STATUS_LOST_RESPONSE
    } else if dropped {
        STATUS_DROPPED
    } else {
        response.status().as_u16()
    };
    if let ApiFault::SlowAnswer(delay) = fault {
        // Logged before the wait: a client that gives up may close the connection, and the
        // request was handled either way.
        record.slow = true;
        layer.log.push(record);
        tokio::time::sleep(delay).await;
        return response;
    }
    layer.log.push(record);
    response
}

/// The 429 both sandboxes send, shaped like Jira's (`Retry-After` in seconds).
pub(crate) fn rate_limited_response() -> Response {
    rate_limited_for(1)
}

/// A 429 asking the client to wait `secs` seconds.
pub(crate) fn rate_limited_for(secs: u64) -> Response {
    let body = serde_json::json!({
        "errorMessages": ["Rate limit exceeded."],
        "errors": {}
    });
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert("retry-after", HeaderValue::from(secs));
    h.insert(
        "ratelimit-reason",
        HeaderValue::from_static("jira-burst-based"),
    );
    resp
}

/// A fixed one-second window counter: enough to reproduce "too many requests per second".
#[derive(Default)]
pub(crate) struct RateWindow {
    second: i64,
    count: u32,
}

impl RateWindow {
    /// Count one request; false when it exceeds `limit` within the current second.
    pub fn admit(&mut self, limit: u32) -> bool {
        let now = chrono::Utc::now().timestamp();
        if now != self.second {
            self.second = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count <= limit
    }
}

/// Constant-time comparison of secrets, so the sandboxes behave as we expect real servers to.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
