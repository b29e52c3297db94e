//! criterion benches for the pieces of the request path, with adversarial inputs, and a full
//! request over loopback beside the bare hyper floor (`benches/floor_service.rs`).
//!
//! `cargo bench --bench edge` (add `-- NAME` to run a subset). Measurement times are short so
//! that the whole run takes a few minutes; compare figures within one run.

#[path = "floor_service.rs"]
mod floor_service;

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{Method, Request};
use mcp_auth_edge::config::Settings;
use mcp_auth_edge::route::{self, Paths};
use mcp_auth_edge::serve::shutdown_channel;
use mcp_auth_edge::{conditional, metadata, respond, Config, State};

const ISSUER: &str = "https://auth.example.com/tenant1";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const AS_PATH: &str = "/.well-known/oauth-authorization-server/tenant1";

/// The load benchmark's ~1.3 KB authorization server metadata, issued by [`ISSUER`].
fn document() -> Bytes {
    Bytes::from(include_str!("fixtures/as-metadata.json.in").replace("@ISSUER@", ISSUER))
}

fn config() -> Config {
    let args = ["--resource", RESOURCE, "--auth-server", ISSUER, "--scope", "mcp:tools", "--resource-name", "Example"];
    let settings = Settings::load(args.map(String::from), |_| None).expect("the bench's flags are valid");
    Config::from_settings(&settings).expect("the bench's configuration is valid")
}

/// The edge's state with the document in service, as after the first good fetch.
fn state() -> State {
    let state = State::new(&config());
    state.snapshots.offer(document());
    state
}

fn classify(c: &mut Criterion) {
    // An issuer with a path gives the longest list of paths: five for the authorization server.
    let paths = Paths::new("/tenant1", "/mcp");
    let long_miss = format!("/{}", "a".repeat(64 * 1024));
    let long_prefixed = format!("/.well-known/oauth-authorization-server/{}", "tenant1".repeat(8 * 1024));
    let cases: [(&str, &Method, &str); 9] = [
        ("resource", &Method::GET, "/.well-known/oauth-protected-resource/mcp"),
        ("auth_server_last_form", &Method::GET, "/tenant1/.well-known/openid-configuration"),
        ("preflight", &Method::OPTIONS, AS_PATH),
        ("mcp_endpoint_not_found", &Method::POST, "/mcp"),
        ("near_miss_short_by_one", &Method::GET, "/.well-known/oauth-authorization-server/tenant"),
        ("near_miss_one_extra", &Method::GET, "/.well-known/oauth-authorization-server/tenant1/"),
        ("near_miss_case", &Method::GET, "/.well-known/oauth-authorization-server/Tenant1"),
        ("long_64k_miss", &Method::GET, &long_miss),
        ("long_56k_shared_prefix", &Method::GET, &long_prefixed),
    ];
    let mut group = c.benchmark_group("classify");
    for (name, method, path) in cases {
        group.bench_function(name, |b| b.iter(|| route::classify(&paths, black_box(method), black_box(path))));
    }
    group.finish();
}

fn if_none_match(c: &mut Criterion) {
    let state = state();
    let etag = state.snapshots.auth_server().as_ref().expect("offered above").etag.clone();
    let matching = format!("W/\"other\", {}", etag.to_str().expect("ASCII"));
    // Tens of kilobytes of near misses (same length, last character differs), then the match.
    let near = format!("{}x\"", &etag.to_str().expect("ASCII")[..etag.len() - 2]);
    let mut long_list = vec![near.as_str(); 2000].join(", ");
    let long_miss = long_list.clone();
    long_list.push_str(", ");
    long_list.push_str(etag.to_str().expect("ASCII"));
    let unterminated = format!("\"{}", "x".repeat(16 * 1024));
    let cases: [(&str, &[u8]); 6] = [
        ("match", etag.as_bytes()),
        ("match_second_weak", matching.as_bytes()),
        ("miss", b"\"0-0000000000000000\""),
        ("long_list_miss", long_miss.as_bytes()),
        ("long_list_match_last", long_list.as_bytes()),
        ("unterminated_16k", unterminated.as_bytes()),
    ];
    let mut group = c.benchmark_group("if_none_match");
    for (name, field) in cases {
        group.bench_function(name, |b| {
            b.iter(|| conditional::if_none_match(black_box(field), black_box(etag.as_bytes())))
        });
    }
    group.finish();
}

fn validate(c: &mut Criterion) {
    let doc = document();
    metadata::validate(&doc, ISSUER).expect("the fixture is a valid document");
    let mut group = c.benchmark_group("metadata");
    group.throughput(Throughput::Bytes(doc.len() as u64));
    group.bench_function("validate", |b| b.iter(|| metadata::validate(black_box(&doc), black_box(ISSUER))));
    group.finish();
}

fn respond(c: &mut Criterion) {
    let state = state();
    let etag = state.snapshots.auth_server().as_ref().expect("offered above").etag.clone();
    let request = |method: Method, headers: &[(&str, &str)]| {
        let mut r = Request::builder().method(method).uri(AS_PATH);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).expect("valid request parts")
    };
    let etag_text = etag.to_str().expect("ASCII");
    let cases = [
        ("get_200", request(Method::GET, &[("accept", "application/json")]), 200),
        ("get_304", request(Method::GET, &[("if-none-match", etag_text)]), 304),
        ("head_200", request(Method::HEAD, &[]), 200),
        (
            "preflight_204",
            request(
                Method::OPTIONS,
                &[("origin", "https://app.example"), ("access-control-request-headers", "mcp-protocol-version")],
            ),
            204,
        ),
    ];
    let mut group = c.benchmark_group("respond");
    for (name, request, status) in &cases {
        let answered = match respond::handle(&state, request) {
            respond::Decision::Answer(response) => response.status(),
            respond::Decision::Forward => panic!("{name}: no upstream is configured, nothing is forwarded"),
        };
        assert_eq!(answered, *status, "{name}");
        group.bench_function(*name, |b| b.iter(|| respond::handle(black_box(&state), black_box(request))));
    }
    // The floor builds the same 200 the plain hyper way.
    let body = document();
    group.bench_function("floor_get_200", |b| b.iter(|| floor_service::response(black_box(&body), black_box(&etag))));
    group.finish();
}

/// A server on its own thread and current_thread runtime, stopped when dropped.
struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn edge() -> Server {
        Server::start(|listener, stop| async move {
            let (trigger, shutdown) = shutdown_channel();
            let state = Arc::new(state());
            let server = tokio::spawn(mcp_auth_edge::serve::run(listener, state, shutdown, Duration::from_secs(1)));
            let _ = stop.await;
            trigger.fire();
            let _ = server.await;
        })
    }

    fn floor() -> Server {
        Server::start(|listener, stop| async move {
            tokio::select! {
                _ = floor_service::serve(listener, document()) => {}
                _ = stop => {}
            }
        })
    }

    fn start<F, Fut>(serve: F) -> Server
    where
        F: FnOnce(tokio::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                serve(listener, stopped).await;
            });
        });
        Server { addr, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A keep-alive HTTP/1.1 client on a raw socket that reads each response whole.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the bench server");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
        Client { stream, buf: Vec::with_capacity(4096) }
    }

    /// Sends `request` and returns the length of the response body.
    fn round_trip(&mut self, request: &[u8]) -> usize {
        self.stream.write_all(request).expect("send the request");
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut chunk).expect("read the response");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let length = content_length(&self.buf[..end]);
                if self.buf.len() >= end + 4 + length {
                    assert!(self.buf.starts_with(b"HTTP/1.1 200 "), "status 200");
                    return length;
                }
            }
        }
    }
}

fn content_length(head: &[u8]) -> usize {
    let head = std::str::from_utf8(head).expect("ASCII response head");
    head.split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok()).flatten()
        })
        .expect("a content-length header")
}

fn loopback(c: &mut Criterion) {
    let request = format!(
        "GET {AS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nMCP-Protocol-Version: 2025-06-18\r\n\r\n"
    );
    let expected = document().len();
    let mut group = c.benchmark_group("loopback_keepalive_get");
    for (name, server) in [("edge", Server::edge()), ("floor", Server::floor())] {
        let mut client = Client::connect(server.addr);
        assert_eq!(client.round_trip(request.as_bytes()), expected, "{name} serves the document");
        group.bench_function(name, |b| b.iter(|| client.round_trip(black_box(request.as_bytes()))));
        drop(client);
        drop(server);
    }
    group.finish();
}

fn short() -> Criterion {
    Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = short();
    targets = classify, if_none_match, validate, respond, loopback
}
criterion_main!(benches);
