//! Serving a discovery document allocates nothing of the edge's own: per keep-alive request,
//! the real edge allocates no more than a bare hyper service answering a static `Bytes` body
//! with the same headers (`benches/floor_service.rs`, hyper's own floor).
//!
//! A counting global allocator sees every allocation in the process, so this file holds one
//! test only, and its client (a raw `TcpStream` on a std thread, a fixed request, a fixed read
//! buffer) allocates nothing while it counts. Each figure is a slope: allocations over 2N
//! requests minus those over N, divided by N, so anything paid once per window (a wake-up,
//! hyper's once-a-second `Date` render) cancels out.

#[path = "../benches/floor_service.rs"]
mod floor_service;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mcp_auth_edge::app::{self, Live, State};
use mcp_auth_edge::config::Config;
use mcp_auth_edge::config::Settings;
use mcp_auth_edge::shutdown;

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const ISSUER: &str = "https://as.example";
const AS_PATH: &str = "/.well-known/oauth-authorization-server";
const RESOURCE_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
const AS_DOCUMENT: &[u8] = br#"{"issuer":"https://as.example","authorization_endpoint":"https://as.example/oauth2/authorize","token_endpoint":"https://as.example/oauth2/token","registration_endpoint":"https://as.example/oauth2/register","jwks_uri":"https://as.example/.well-known/jwks.json","response_types_supported":["code"],"grant_types_supported":["authorization_code","refresh_token"],"code_challenge_methods_supported":["S256"],"token_endpoint_auth_methods_supported":["none","client_secret_basic"]}"#;

/// Requests per measuring window (and twice as many in the second).
const N: u64 = 1000;
const WARM_UP: u64 = 200;
/// Slack for work that happens per second rather than per request and lands in one window
/// only; a real per-request allocation adds a whole 1.0.
const NOISE: f64 = 0.05;

#[test]
fn discovery_requests_allocate_no_more_than_bare_hyper() {
    let args = ["--resource", "https://mcp.example/mcp", "--auth-server", ISSUER].map(String::from);
    let config =
        Config::from_settings(&Settings::load(args, |_| None).expect("settings load")).expect("a valid configuration");
    let state = Arc::new(State::new(&config));
    state.resources[0].snapshots.offer(Bytes::from_static(AS_DOCUMENT));

    // One current-thread runtime, as the edge runs with `--threads 1`, serves both.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let (trigger, shutdown) = shutdown::channel();
    let (edge, floor) = runtime.block_on(async {
        let edge = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the edge");
        let floor = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the floor");
        let addrs = (edge.local_addr().expect("edge address"), floor.local_addr().expect("floor address"));
        let limits = config.limits.clone();
        tokio::spawn(async move {
            app::serve(edge, Arc::new(Live::new(state)), &limits, None, shutdown, Duration::from_secs(1)).await
        });
        tokio::spawn(floor_service::serve(floor, Bytes::from_static(AS_DOCUMENT)));
        addrs
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        runtime.block_on(async {
            let _ = stopped.await;
        });
        trigger.fire();
        runtime.shutdown_timeout(Duration::from_secs(1));
    });

    let floor_get = per_request(floor, &request("GET", AS_PATH, ""), "HTTP/1.1 200 ");
    let etag = Client::connect(edge, &request("GET", AS_PATH, "")).header("etag");
    let if_none_match = format!("If-None-Match: {etag}\r\n");
    let cases = [
        ("GET authorization server metadata", request("GET", AS_PATH, ""), "HTTP/1.1 200 "),
        ("GET protected resource metadata", request("GET", RESOURCE_PATH, ""), "HTTP/1.1 200 "),
        ("HEAD authorization server metadata", request("HEAD", AS_PATH, ""), "HTTP/1.1 200 "),
        ("GET with matching If-None-Match", request("GET", AS_PATH, &if_none_match), "HTTP/1.1 304 "),
    ];
    println!("allocations per request, bare hyper floor (GET): {floor_get:.3}");
    let mut over = Vec::new();
    for (name, request, status) in &cases {
        let edge_figure = per_request(edge, request, status);
        println!("allocations per request, mcp-auth-edge ({name}): {edge_figure:.3}");
        if edge_figure > floor_get + NOISE {
            over.push(format!("{name}: {edge_figure:.3} > {floor_get:.3}"));
        }
    }

    let _ = stop.send(());
    server.join().expect("the server thread ends");
    assert!(over.is_empty(), "the edge allocates more per request than bare hyper: {over:?}");
}

/// A request as an MCP client sends it on a keep-alive connection. Both servers pay for
/// `MCP-Protocol-Version` alike: hyper copies a header name it does not know into a fresh
/// `Bytes` (one allocation per request, on top of the response's header map).
fn request(method: &str, path: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: mcp.example\r\nAccept: application/json\r\n\
         MCP-Protocol-Version: 2025-06-18\r\nConnection: keep-alive\r\n{extra_headers}\r\n"
    )
    .into_bytes()
}

/// Allocations per request on one keep-alive connection: the slope between N and 2N requests.
fn per_request(addr: SocketAddr, request: &[u8], status: &str) -> f64 {
    let mut client = Client::connect(addr, request);
    let mut window = |requests: u64| {
        let before = counting::allocations();
        for _ in 0..requests {
            client.exchange(status);
        }
        counting::allocations() - before
    };
    window(WARM_UP);
    let once = window(N);
    let twice = window(2 * N);
    (twice as f64 - once as f64) / N as f64
}

/// A keep-alive connection that sends one fixed request and reads one response of fixed length
/// into a fixed buffer, allocating nothing per exchange.
struct Client {
    stream: TcpStream,
    request: Vec<u8>,
    buffer: Box<[u8; 16 * 1024]>,
    /// Every response to the same request has the same length: the only header that changes
    /// is `Date`, whose width is fixed.
    length: usize,
}

impl Client {
    /// Connects and makes a first exchange, reading the response's head to learn its length.
    fn connect(addr: SocketAddr, request: &[u8]) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        let mut client = Client { stream, request: request.to_vec(), buffer: Box::new([0; 16 * 1024]), length: 0 };
        client.stream.write_all(&client.request).expect("send");
        let mut filled = 0;
        let head = loop {
            let n = client.stream.read(&mut client.buffer[filled..]).expect("receive");
            assert!(n > 0, "the server closed the connection");
            filled += n;
            if let Some(end) = client.buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
        };
        let bodiless = request.starts_with(b"HEAD ") || client.buffer.starts_with(b"HTTP/1.1 304 ");
        client.length = head;
        if !bodiless {
            client.length += client.header("content-length").parse::<usize>().expect("a content-length");
        }
        client.stream.read_exact(&mut client.buffer[filled..client.length]).expect("the body");
        client
    }

    /// The value of a header in the last response read (allocates; not for measured windows).
    fn header(&self, name: &str) -> String {
        let text = String::from_utf8_lossy(&self.buffer[..self.length]).into_owned();
        text.split("\r\n")
            .find_map(|line| line.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} header in {text:?}"))
    }

    fn exchange(&mut self, status: &str) {
        self.stream.write_all(&self.request).expect("send");
        self.stream.read_exact(&mut self.buffer[..self.length]).expect("receive");
        assert!(self.buffer.starts_with(status.as_bytes()), "expected {status}");
    }
}
