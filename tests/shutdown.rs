//! Graceful shutdown: of the binary on SIGTERM and SIGINT, and of `run` in-process.

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
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
