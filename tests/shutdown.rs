//! Graceful shutdown: of the binary on SIGTERM and SIGINT, and of `run` in-process, with
//! idle connections and with held event streams.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::jwt::{auth_server, claims, Signer};
use support::mcp::McpServer;
use support::{accepts, Edge, Running, Upstream, AS_PATH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts the binary, checks it serves, sends `signal`, and checks it exits 0 promptly and
/// its ports stop accepting.
async fn stops_on(signal: &str) {
    let upstream = Upstream::serving().await;
    // A drain timeout far above "promptly": exiting in time shows idle connections do not hold
    // shutdown up.
    let mut running = Running::start(&upstream, &["--drain-timeout", "30"]).await;
    assert_eq!(support::get(running.addr, AS_PATH).await.body, upstream.metadata(1));
    let idle = TcpStream::connect(running.addr).await.expect("an idle connection");

    let sent = Instant::now();
    running.process.signal(signal);
    let status = running.process.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?} after SIG{signal}");
    assert!(sent.elapsed() < Duration::from_secs(5), "took {:?} to stop", sent.elapsed());
    assert!(!accepts(running.addr).await, "the main port still accepts");
    assert!(!accepts(running.admin).await, "the admin port still accepts");
    drop(idle);
}

#[tokio::test]
async fn binary_exits_0_on_sigterm() {
    stops_on("TERM").await;
}

#[tokio::test]
async fn binary_exits_0_on_sigint() {
    stops_on("INT").await;
}

#[tokio::test]
async fn run_returns_after_shutdown_and_closes_idle_connections() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &["--drain-timeout", "30"]).await;
    let (addr, admin) = (edge.addr, edge.admin);

    // A keep-alive connection that has been answered once and is now idle.
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(format!("GET {AS_PATH} HTTP/1.1\r\nHost: edge.test\r\n\r\n").as_bytes()).await.expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let expected = upstream.metadata(1);
    while !seen.ends_with(&expected) {
        let n = tokio::time::timeout(support::PATIENCE, idle.read(&mut buf)).await.expect("answer").expect("read");
        assert!(n > 0, "closed before the answer: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 200 "));

    let started = Instant::now();
    edge.stop().await.expect("run returns Ok");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // The server closed the idle connection rather than wait out the drain timeout.
    let n = tokio::time::timeout(support::PATIENCE, idle.read(&mut buf)).await.expect("closed").unwrap_or(0);
    assert_eq!(n, 0, "no more bytes after shutdown");
    assert!(!accepts(addr).await);
    assert!(!accepts(admin).await);
}

#[tokio::test]
async fn dropping_the_edge_stops_it() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &[]).await;
    let addr = edge.addr;
    assert_eq!(edge.get(AS_PATH).await.status, StatusCode::OK);
    drop(edge);
    support::wait_until("the listener to close", || async move { !accepts(addr).await }).await;
}

const EVENT: &str = "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";

/// An SSE request through the edge, tagged so that its upstream end can be told apart.
fn sse(bearer: &str, tag: usize) -> Request<Empty<Bytes>> {
    Request::get("http://mcp.example.com/mcp")
        .header("host", "mcp.example.com")
        .header("authorization", bearer)
        .header("accept", "text/event-stream")
        .header("x-stream", tag.to_string())
        .body(Empty::new())
        .expect("a request")
}

/// The next data of `body`, `None` at its clean end; fails on an error or a wait past the
/// patience. Empty frames are skipped (HTTP/2 may end a stream with an empty DATA frame).
async fn next(body: &mut Incoming) -> Option<Bytes> {
    loop {
        let frame = tokio::time::timeout(support::PATIENCE, body.frame()).await.expect("a frame or the end in time");
        let data = frame.map(|f| f.expect("a clean stream, not an error").into_data().expect("a data frame"));
        if data.as_ref().is_none_or(|d| !d.is_empty()) {
            return data;
        }
    }
}

/// Shutdown with a few hundred event streams held over HTTP/1.1 and HTTP/2: new connections
/// stop at once, every stream ends cleanly at an event boundary (one that is mid-event when
/// shutdown comes gets the rest of its event first), well before the drain timeout, and `run`
/// returns Ok.
#[tokio::test]
async fn held_event_streams_end_at_an_event_boundary_on_shutdown() {
    const H1_STREAMS: usize = 240;
    const H2_STREAMS: usize = 60;
    const MID_EVENT: usize = 8;
    let key = Signer::ed25519("k1");
    let auth = auth_server(&[&key]).await;
    let mcp = McpServer::start().await;
    let edge =
        Edge::ready_for(&auth, &["--upstream", &mcp.url(), "--token-check", "jwt", "--drain-timeout", "30"]).await;
    let addr = edge.addr;
    let bearer = format!("Bearer {}", key.sign(&claims(&auth.issuer())));

    let mut pending = Vec::new();
    for tag in 0..H1_STREAMS {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("h1");
        tokio::spawn(connection);
        let request = sse(&bearer, tag);
        pending.push(tokio::spawn(async move { sender.send_request(request).await }));
    }
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (h2, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2");
    tokio::spawn(connection);
    for tag in H1_STREAMS..H1_STREAMS + H2_STREAMS {
        let (mut sender, request) = (h2.clone(), sse(&bearer, tag));
        pending.push(tokio::spawn(async move { sender.send_request(request).await }));
    }
    // The MCP server's ends, in the order of the clients' tags, each with its first event sent.
    let mut upstreams = Vec::new();
    for _ in 0..pending.len() {
        let upstream = mcp.next_stream().await;
        assert!(upstream.send(EVENT).await);
        upstreams.push(upstream);
    }
    upstreams.sort_by_key(|u| u.request.header("x-stream").parse::<usize>().expect("a tag"));
    let mut bodies = Vec::new();
    for answer in pending {
        let response = answer.await.expect("no panic").expect("a response");
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        assert_eq!(next(&mut body).await.as_deref(), Some(EVENT.as_bytes()));
        bodies.push(body);
    }
    // A few streams, over both protocols, are half-way through an event when shutdown comes.
    let mid: Vec<usize> = (0..MID_EVENT / 2).chain(H1_STREAMS..H1_STREAMS + MID_EVENT / 2).collect();
    for &i in &mid {
        assert!(upstreams[i].send("id: 2\ndata: half").await);
        assert_eq!(next(&mut bodies[i]).await.as_deref(), Some(&b"id: 2\ndata: half"[..]));
    }

    let started = Instant::now();
    let stopping = tokio::spawn(edge.stop());
    support::wait_until("the listener to stop accepting", || async move { !accepts(addr).await }).await;
    for (i, body) in bodies.iter_mut().enumerate() {
        if mid.contains(&i) {
            continue;
        }
        assert_eq!(next(body).await, None, "stream {i} ends cleanly after its whole event");
    }
    for &i in &mid {
        // The event's rest passes, then the stream ends; not before.
        let early = tokio::time::timeout(Duration::from_millis(200), bodies[i].frame()).await;
        assert!(early.is_err(), "stream {i} ended mid-event: {early:?}");
        assert!(upstreams[i].send("\n\n").await);
        assert_eq!(next(&mut bodies[i]).await.as_deref(), Some(&b"\n\n"[..]));
        assert_eq!(next(&mut bodies[i]).await, None, "stream {i} ends after the rest of its event");
    }
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("run returns well before the drain timeout")
        .expect("no panic")
        .expect("run returns Ok");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    for upstream in &upstreams {
        tokio::time::timeout(support::PATIENCE, upstream.closed()).await.expect("the edge let go of the MCP server");
    }
}
