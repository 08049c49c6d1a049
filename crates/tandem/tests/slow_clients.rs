//! Slow and stalled clients against a running Tandem, over raw TCP: half-sent headers, a body
//! shorter than its `Content-Length`, idle keep-alive connections, a client that pipelines
//! requests and never reads the answers, and more connections than `server.max_connections`.
//! Each must be closed by the server within `[server]`'s timeouts, and real deliveries must
//! still get `202` while they are held, or a clear `503` past the cap.
//!
//! No assertion is about speed: closures are awaited with a generous bound and the test
//! asserts that they happened.

mod common;

use common::{Options, World};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the test waits for something that should happen within a few seconds.
const BOUND: Duration = Duration::from_secs(60);
const TOKEN: &str = "ext-hook-token";

/// A Tandem whose `[server]` section also holds `server_keys`.
async fn tandem_with(server_keys: &str) -> World {
    common::world(Options {
        server_extra: server_keys.to_string(),
        ..Options::default()
    })
    .await
}

fn addr(world: &World) -> SocketAddr {
    world.tandem.as_ref().unwrap().addr
}

fn delivery_body(n: usize) -> String {
    json!({"sourceIssueId": format!("slow-{n}"), "fields": [{"fieldName": "summary", "fieldId": 1001, "value": format!("value {n}")}]})
        .to_string()
}

/// A delivery from the external system through a real HTTP client: its status and headers.
async fn deliver(world: &World, n: usize) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/webhooks/seed/external", world.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(delivery_body(n))
        .send()
        .await
        .expect("the delivery gets an answer")
}

/// A delivery on its own connection (`Connection: close`), read until the server closes it.
async fn deliver_raw(addr: SocketAddr, n: usize) -> String {
    let body = delivery_body(n);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /webhooks/seed/external HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = until_closed(&mut stream)
        .await
        .expect("the server closes a Connection: close exchange");
    String::from_utf8_lossy(&answer).into_owned()
}

/// A connection that sends the start of a header and then nothing.
async fn partial_header(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /webhooks/seed/external HTTP/1.1\r\nHost: tandem\r\nContent-Ty")
        .await
        .unwrap();
    stream
}

/// A connection whose header promises 1000 bytes of body, of which it sends 17.
async fn short_body(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /webhooks/seed/external HTTP/1.1\r\nHost: tandem\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"sourceIssueId\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// A keep-alive connection that made one request, read its answer, and stays open idle.
async fn idle_after_request(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tandem\r\n\r\n")
        .await
        .unwrap();
    let answer = read_one_answer(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stream
}

/// Reads one answer with a `Content-Length` body, leaving the connection open.
async fn read_one_answer(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("an answer")
            .expect("read");
        assert!(n > 0, "closed before the answer was complete");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// Reads until the server closes the connection (end of stream or reset) and returns what it
/// sent; `None` if it was still open after [`BOUND`].
async fn until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status line and JSON body of an answer read whole.
fn status_and_json(answer: &str) -> (String, Value) {
    let status = answer.lines().next().unwrap_or("").to_string();
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// `tandem_http_timeouts_total{phase="…"}` as `/metrics` shows it.
async fn timeouts_counted(world: &World, phase: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", world.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("tandem_http_timeouts_total{{phase=\"{phase}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_are_closed_within_the_timeouts_while_deliveries_get_202() {
    let world = tandem_with(
        "header_read_timeout = \"2s\"\nbody_read_timeout = \"2s\"\nwrite_timeout = \"2s\"\nmax_connections = 64",
    )
    .await;
    let addr = addr(&world);

    let mut partial = Vec::new();
    let mut short = Vec::new();
    let mut idle = Vec::new();
    for _ in 0..10 {
        partial.push(partial_header(addr).await);
        short.push(short_body(addr).await);
        idle.push(idle_after_request(addr).await);
    }
    // A client that pipelines requests and never reads an answer: once the socket buffers
    // are full the server's answers cannot be written, and only `write_timeout` ends it.
    let pipeliner = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let requests = b"GET /healthz HTTP/1.1\r\nHost: tandem\r\n\r\n".repeat(256);
        // A write fails once the server has closed the connection.
        let closed = async { while stream.write_all(&requests).await.is_ok() {} };
        tokio::time::timeout(BOUND, closed).await.is_ok()
    });

    // Meanwhile, real deliveries are accepted.
    for n in 0..5 {
        let answer = deliver(&world, n).await;
        assert_eq!(answer.status(), 202, "{:?}", answer.text().await);
    }

    for mut stream in partial {
        let sent = until_closed(&mut stream)
            .await
            .expect("a connection that sent half a header is closed by the server");
        // Closed without an answer: there is no request to answer.
        assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
    }
    for mut stream in short {
        let sent = until_closed(&mut stream)
            .await
            .expect("a connection whose body never completes is closed by the server");
        let (status, body) = status_and_json(&String::from_utf8_lossy(&sent));
        assert_eq!(status, "HTTP/1.1 408 Request Timeout");
        assert_eq!(
            body["error"],
            "the request body did not arrive in full within 2s (server.body_read_timeout)"
        );
    }
    for mut stream in idle {
        let sent = until_closed(&mut stream)
            .await
            .expect("an idle keep-alive connection is closed by the server");
        assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
    }
    assert!(
        pipeliner.await.unwrap(),
        "a client that never reads its answers is closed by the server"
    );

    // What an operator sees. (Other tests in this process may add to the counters.)
    assert!(timeouts_counted(&world, "header").await >= 10.0);
    assert!(timeouts_counted(&world, "body").await >= 10.0);
    assert!(timeouts_counted(&world, "idle").await >= 10.0);
    assert!(timeouts_counted(&world, "write").await >= 1.0);
    // And the server still serves.
    assert_eq!(deliver(&world, 99).await.status(), 202);
    world.stop().await;
}

/// The lockout of the report: slow clients fill every slot; once their timeouts close them,
/// deliveries are accepted again without anyone restarting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_filling_the_cap_are_timed_out_and_deliveries_resume() {
    let world = tandem_with(
        "header_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\nmax_connections = 4",
    )
    .await;
    let addr = addr(&world);
    let mut slow = vec![
        partial_header(addr).await,
        partial_header(addr).await,
        short_body(addr).await,
        idle_after_request(addr).await,
    ];
    for stream in &mut slow {
        until_closed(stream)
            .await
            .expect("the server closes each slow connection");
    }
    // A slot is free again before a client sees its connection end, so no retry is needed.
    let answer = deliver(&world, 1).await;
    assert_eq!(answer.status(), 202, "{:?}", answer.text().await);
    world.stop().await;
}

/// Up to the cap deliveries get `202` while slow clients hold connections; past it a client
/// is answered `503` with `Retry-After` and its connection closed; freed slots are used
/// again; and shutdown does not wait for the slow clients' (long) timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_cap_clients_get_503_and_shutdown_does_not_wait_for_slow_ones() {
    // Timeouts far longer than the test: only the cap and shutdown can end these connections.
    let world = tandem_with(
        "header_read_timeout = \"10m\"\nbody_read_timeout = \"10m\"\nmax_connections = 4",
    )
    .await;
    let addr = addr(&world);
    let mut slow = vec![
        partial_header(addr).await,
        short_body(addr).await,
        idle_after_request(addr).await,
    ];
    // Three of four slots are held: a delivery still gets through.
    let answer = deliver_raw(addr, 1).await;
    assert_eq!(
        status_and_json(&answer).0,
        "HTTP/1.1 202 Accepted",
        "{answer}"
    );

    slow.push(partial_header(addr).await);
    // All four slots are held. A client over the cap is answered at once and closed.
    let answer = deliver_raw(addr, 2).await;
    let (status, body) = status_and_json(&answer);
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable", "{answer}");
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
    assert_eq!(
        body["error"],
        "the server is serving its maximum of 4 connections (server.max_connections); retry shortly"
    );
    // A real HTTP client sees the same.
    let answer = deliver(&world, 3).await;
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "1");

    // A slow client goes away: its slot serves deliveries again (the server notices the close
    // on its own time, hence the wait).
    drop(slow.pop());
    let deadline = Instant::now() + BOUND;
    loop {
        let answer = deliver_raw(addr, 4).await;
        let (status, _) = status_and_json(&answer);
        if status == "HTTP/1.1 202 Accepted" {
            break;
        }
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable", "{answer}");
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Shutdown with three slow clients still connected and ten minutes left on their clocks.
    let stop = tokio::spawn(world.stop());
    tokio::time::timeout(BOUND, stop)
        .await
        .expect("shutdown does not wait for slow clients' timeouts")
        .unwrap();
    for stream in &mut slow {
        until_closed(stream)
            .await
            .expect("shutdown closes the slow connections");
    }
}
