//! 100 MiB each way through the edge with memory bounded: an upload streamed to an MCP server
//! stand-in that counts and hashes what arrives, and a download streamed from it to a client
//! that counts and hashes what arrives. Neither end holds a body: they are made and checked
//! 64 KiB at a time ([`support::mcp::Pattern`], [`support::mcp::Tally`]).
//!
//! A global allocator keeps the live heap bytes of the whole process (client, edge and MCP
//! server all run in it) and their high-water mark, so an edge that buffered a body would
//! show its size here. This file holds one test only: the figures are process-wide.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use support::jwt::{auth_server, claims, Signer};
use support::mcp::{McpServer, Pattern, Tally};
use support::Edge;
use tokio::net::TcpStream;

/// Counts live heap bytes and their peak, then hands every call to the system allocator.
struct Measuring;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(by: usize) {
    LIVE.fetch_sub(by, Ordering::Relaxed);
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the only additions are relaxed atomic updates, which neither
// allocate nor touch the memory handed out.
unsafe impl GlobalAlloc for Measuring {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = System.realloc(ptr, layout, new_size);
        if !moved.is_null() {
            if new_size > layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        moved
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        shrank(layout.size());
    }
}

#[global_allocator]
static GLOBAL: Measuring = Measuring;

/// The figure: 100 MB each way.
const SIZE: u64 = 100 * 1024 * 1024;
/// The most the live heap may grow while a body passes: an edge that held even a sixth of
/// one would go over.
const BOUND: usize = 16 * 1024 * 1024;
/// Generous for a debug build on a busy machine; the transfer takes a few seconds.
const LIMIT: Duration = Duration::from_secs(120);

/// Starts a measuring window: the peak restarts from what is live now.
fn window() -> usize {
    let live = LIVE.load(Ordering::SeqCst);
    PEAK.store(live, Ordering::SeqCst);
    live
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[test]
fn a_hundred_megabytes_each_way_stream_through_in_bounded_memory() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let key = Signer::ed25519("k1");
        let auth = auth_server(&[&key]).await;
        let mcp = McpServer::start().await;
        let upstream = mcp.url();
        // The body limit is raised to the test's size: the default (16 MiB) would cut it off.
        let max_body = SIZE.to_string();
        let edge =
            Edge::ready_for(&auth, &["--upstream", &upstream, "--token-check", "jwt", "--max-body-bytes", &max_body])
                .await;
        let bearer = format!("Bearer {}", key.sign(&claims(&auth.issuer())));
        let expected = Pattern::expected(SIZE);

        // A small exchange each way first, so connection pools, buffers and the verified-token
        // cache exist before measuring.
        upload(&edge, &bearer, 1024 * 1024, true).await;
        download(&edge, &bearer, 1024 * 1024, true).await;

        for exact in [true, false] {
            let framing = if exact { "Content-Length" } else { "chunked" };

            let base = window();
            let started = Instant::now();
            let received = upload(&edge, &bearer, SIZE, exact).await;
            let (took, growth) = (started.elapsed(), PEAK.load(Ordering::SeqCst).saturating_sub(base));
            println!("upload ({framing}): {SIZE} bytes in {took:.2?}, peak heap growth {:.2} MiB", mib(growth));
            assert_eq!(received, expected, "upload ({framing}): what the MCP server got");
            let seen = mcp.requests().pop().expect("the upload reached the MCP server");
            if exact {
                assert_eq!(seen.header("content-length"), SIZE.to_string());
            } else {
                assert_eq!(seen.header("transfer-encoding"), "chunked");
            }
            assert!(growth < BOUND, "upload ({framing}): the heap grew by {:.1} MiB", mib(growth));

            let base = window();
            let started = Instant::now();
            let got = download(&edge, &bearer, SIZE, exact).await;
            let (took, growth) = (started.elapsed(), PEAK.load(Ordering::SeqCst).saturating_sub(base));
            println!("download ({framing}): {SIZE} bytes in {took:.2?}, peak heap growth {:.2} MiB", mib(growth));
            assert_eq!(got, expected, "download ({framing}): what the client got");
            assert!(growth < BOUND, "download ({framing}): the heap grew by {:.1} MiB", mib(growth));
        }
    });
}

/// Sends `len` bytes to the MCP server's `/upload` through the edge; its count and SHA-256.
async fn upload(edge: &Edge, bearer: &str, len: u64, exact: bool) -> (u64, String) {
    let exchange = async {
        let stream = TcpStream::connect(edge.addr).await.expect("connect");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(connection);
        let request = Request::post("/upload")
            .header("host", "mcp.example.com")
            .header("authorization", bearer)
            .header("content-type", "application/octet-stream")
            .body(Pattern::new(len, exact))
            .expect("a request");
        let response = sender.send_request(request).await.expect("a response");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.expect("the answer").to_bytes();
        let reply: serde_json::Value = serde_json::from_slice(&body).expect("a JSON answer");
        assert_eq!(reply["error"], serde_json::Value::Null, "the MCP server read the body without error");
        let bytes = reply["bytes"].as_u64().expect("a count");
        (bytes, reply["sha256"].as_str().expect("a digest").to_string())
    };
    tokio::time::timeout(LIMIT, exchange).await.expect("the upload finishes")
}

/// Reads `len` bytes from the MCP server's `/download` through the edge, frame by frame; the
/// count and SHA-256 of what arrived.
async fn download(edge: &Edge, bearer: &str, len: u64, exact: bool) -> (u64, String) {
    let exchange = async {
        let stream = TcpStream::connect(edge.addr).await.expect("connect");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(connection);
        let path = if exact { format!("/download?bytes={len}") } else { format!("/download?bytes={len}&chunked") };
        let request = Request::get(path)
            .header("host", "mcp.example.com")
            .header("authorization", bearer)
            .body(Empty::<bytes::Bytes>::new())
            .expect("a request");
        let response = sender.send_request(request).await.expect("a response");
        assert_eq!(response.status(), StatusCode::OK);
        if exact {
            assert_eq!(response.headers()["content-length"], len.to_string().as_str());
        } else {
            assert!(response.headers().get("content-length").is_none());
        }
        let mut body = response.into_body();
        let mut tally = Tally::default();
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.expect("the body streams without error").data_ref() {
                tally.add(data);
            }
        }
        tally.finish()
    };
    tokio::time::timeout(LIMIT, exchange).await.expect("the download finishes")
}
