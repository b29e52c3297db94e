//! The limits on clients, each hit by a real misbehaving client over a raw socket: a slowloris
//! trickling its request head (408), a connection that sends nothing, an idle keep-alive
//! connection, oversized and overcrowded header blocks (431, on HTTP/1.1 and HTTP/2), a flood
//! of HTTP/2 streams (refused), more connections than allowed (they wait, then are served),
//! and bodies over the limit (413, the upstream never reached or its request aborted). Each
//! checks its counter in `/metrics`. Timeouts are set to fractions of a second so the suite
//! stays quick.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{head_value, split_head, Edge, Upstream, PATIENCE, PRM_PATH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The header read timeout in the timing tests: short, and well above a loopback exchange.
const HEAD_TIMEOUT: &str = "0.4";
const HEAD_SECS: f64 = 0.4;

fn hits(limit: &str) -> String {
    format!("mcp_auth_edge_limit_hits_total{{limit=\"{limit}\"}}")
}

const OPEN: &str = "mcp_auth_edge_connections_open";

const GET: &str = "GET /.well-known/oauth-protected-resource HTTP/1.1\r\nhost: mcp.example.com\r\n\r\n";

/// Reads what the server sends until it closes the connection, failing after [`PATIENCE`]; a
/// reset after data counts as the close.
async fn read_to_close(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server did not close the connection within {PATIENCE:?}; got {out:?}"),
        }
    }
}

/// Reads one response head and a `Content-Length` body from a kept-alive connection.
async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(got[..end].to_vec()).expect("a text head");
            let length: usize = head_value(&head, "content-length").map_or(0, |v| v.parse().expect("a length"));
            if got.len() >= end + 4 + length {
                return (head, got[end + 4..end + 4 + length].to_vec());
            }
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read a response");
        assert!(n > 0, "the connection closed before a whole response; got {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Writes `head` a byte every 50 ms and never finishes it, until the server answers or
/// closes; what came back, and how long after the first byte.
async fn trickle(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), head: &[u8]) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    for byte in head.iter().cycle() {
        assert!(started.elapsed() < PATIENCE, "no answer to a trickled head within {PATIENCE:?}");
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        if let Ok(read) = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
            let mut out = match read {
                Ok(n) => buf[..n].to_vec(),
                Err(_) => Vec::new(),
            };
            if !out.is_empty() {
                out.extend(read_to_close(stream).await);
            }
            return (out, started.elapsed());
        }
    }
    (Vec::new(), started.elapsed())
}

fn assert_408(raw: &[u8]) {
    let (head, body) = split_head(raw);
    assert!(head.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{head}");
    assert_eq!(head_value(&head, "connection"), Some("close"), "{head}");
    assert_eq!(head_value(&head, "content-type"), Some("application/json"), "{head}");
    assert_eq!(head_value(&head, "cache-control"), Some("no-store"), "{head}");
    assert!(head_value(&head, "date").is_some_and(|d| d.ends_with(" GMT")), "{head}");
    let json: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
    assert_eq!(json["error"], "request_timeout");
}

fn assert_timed(took: Duration, at_least: f64, what: &str) {
    let secs = took.as_secs_f64();
    // The watchdog looks four times per timeout, so it acts within half a timeout after.
    assert!(secs >= at_least * 0.9 && secs < at_least * 1.5 + 0.5, "{what} after {secs:.3} s, expected {at_least} s");
}

// ---------------------------------------------------------------------------------------------
// Slow heads and idle connections

#[tokio::test]
async fn a_slowloris_head_gets_408_after_the_header_read_timeout() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &["--header-read-timeout", HEAD_TIMEOUT, "--idle-timeout", "30"]).await;

    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    let (raw, took) = trickle(&mut stream, b"GET /.well-known/oauth-protected-resource HTTP/1.1\r\nx-slow: ").await;
    assert_408(&raw);
    assert_timed(took, HEAD_SECS, "408");
    assert_eq!(edge.metric(&hits("header_read_timeout")).await, 1.0);
    // The edge itself is unmoved.
    assert_eq!(edge.get(PRM_PATH).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_slow_head_on_a_kept_alive_connection_gets_408_not_the_idle_timeout() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &["--header-read-timeout", HEAD_TIMEOUT, "--idle-timeout", "30"]).await;

    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    stream.write_all(GET.as_bytes()).await.expect("send a request");
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    // Quiet a moment (an idle connection, not a head), then the next head comes byte by byte.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (raw, took) = trickle(&mut stream, b"GET / HTTP/1.1\r\nx-slow: ").await;
    assert_408(&raw);
    assert_timed(took, HEAD_SECS, "408 on the second head");
    assert_eq!(edge.metric(&hits("header_read_timeout")).await, 1.0);
    assert_eq!(edge.metric(&hits("idle_timeout")).await, 0.0);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_without_an_answer() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &["--header-read-timeout", HEAD_TIMEOUT, "--idle-timeout", "30"]).await;

    let started = Instant::now();
    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    let raw = read_to_close(&mut stream).await;
    assert!(raw.is_empty(), "nothing is said to a client that said nothing: {raw:?}");
    assert_timed(started.elapsed(), HEAD_SECS, "close");
    assert_eq!(edge.metric(&hits("header_read_timeout")).await, 1.0);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_quietly_but_a_long_exchange_is_not() {
    let auth = Upstream::serving().await;
    let mcp = support::mcp::McpServer::start().await;
    let upstream = mcp.url();
    let edge = Edge::ready_for(
        &auth,
        &["--idle-timeout", "0.4", "--header-read-timeout", "5", "--upstream", &upstream, "--token-check", "presence"],
    )
    .await;

    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    stream.write_all(GET.as_bytes()).await.expect("send a request");
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let started = Instant::now();
    let raw = read_to_close(&mut stream).await;
    assert!(raw.is_empty(), "an idle connection is closed without a word: {raw:?}");
    assert_timed(started.elapsed(), 0.4, "idle close");
    assert_eq!(edge.metric(&hits("idle_timeout")).await, 1.0);

    // An idle HTTP/2 connection is told with GOAWAY, and hyper's client ends it cleanly.
    let stream = TcpStream::connect(edge.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("handshake");
    let connection = tokio::spawn(connection);
    let request = Request::get(format!("http://{}{PRM_PATH}", edge.addr)).body(Empty::<Bytes>::new());
    let response = sender.send_request(request.expect("a request")).await.expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);
    let started = Instant::now();
    let ended = tokio::time::timeout(PATIENCE, connection).await.expect("the connection ends").expect("no panic");
    assert!(ended.is_ok(), "a GOAWAY, not a broken connection: {ended:?}");
    assert_timed(started.elapsed(), 0.4, "h2 idle close");
    assert_eq!(edge.metric(&hits("idle_timeout")).await, 2.0);

    // A forwarded exchange quiet for longer than the idle timeout is busy, not idle.
    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    let slow = "GET /slow?secs=1 HTTP/1.1\r\nhost: mcp.example.com\r\nauthorization: Bearer t\r\n\r\n";
    stream.write_all(slow.as_bytes()).await.expect("send a request");
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, b"late");
    assert_eq!(edge.metric(&hits("idle_timeout")).await, 2.0);
}

// ---------------------------------------------------------------------------------------------
// Header blocks

/// A request for the resource document with `extra` header lines.
fn get_with(extra: &str) -> String {
    format!("GET /.well-known/oauth-protected-resource HTTP/1.1\r\nhost: mcp.example.com\r\n{extra}connection: close\r\n\r\n")
}

#[tokio::test]
async fn oversized_and_overcrowded_header_blocks_get_431() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &["--max-header-bytes", "8192", "--max-headers", "10"]).await;

    // Within both limits: served.
    let fits = get_with(&format!("x-big: {}\r\n", "a".repeat(6000)));
    let raw = support::raw_exchange(edge.addr, &fits).await;
    assert!(raw.starts_with(b"HTTP/1.1 200 OK"), "{:?}", String::from_utf8_lossy(&raw));

    // One header of 9000 bytes: the head is over 8 KiB.
    let big = get_with(&format!("x-big: {}\r\n", "a".repeat(9000)));
    let raw = support::raw_exchange(edge.addr, &big).await;
    let (head, _) = split_head(&raw);
    assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large"), "{head}");

    // Twelve fields in all, with host and connection: over ten.
    let many: String = (0..10).map(|i| format!("x-h{i}: v\r\n")).collect();
    let raw = support::raw_exchange(edge.addr, &get_with(&many)).await;
    let (head, _) = split_head(&raw);
    assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large"), "{head}");

    // A flood: header lines sent without end on one connection are cut off at the limit.
    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    let mut sent = 0usize;
    stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.expect("send a request line");
    let line = b"x-flood: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    while stream.write_all(line).await.is_ok() && sent < 1 << 20 {
        sent += line.len();
    }
    let raw = read_to_close(&mut stream).await;
    assert!(raw.starts_with(b"HTTP/1.1 431 "), "after {sent} bytes: {:?}", String::from_utf8_lossy(&raw));

    assert_eq!(edge.metric(&hits("headers")).await, 3.0);
}

/// An HTTP/2 connection with prior knowledge, as a hyper client.
async fn h2_client<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    sender
}

#[tokio::test]
async fn an_h2_header_list_over_the_limit_gets_431_and_the_connection_goes_on() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &["--max-header-bytes", "8192"]).await;
    let mut sender = h2_client(edge.addr).await;
    let uri = format!("http://{}{PRM_PATH}", edge.addr);

    // hyper's client sends a header list over the server's SETTINGS_MAX_HEADER_LIST_SIZE as
    // it is: the misbehaving client is real.
    let big = Request::get(&uri).header("x-big", "a".repeat(9000)).body(Empty::new()).expect("a request");
    let response = sender.send_request(big).await.expect("an answer");
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    let fine = Request::get(&uri).body(Empty::new()).expect("a request");
    let response = sender.send_request(fine).await.expect("an answer on the same connection");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
}

/// An HTTP/2 frame header: length, type, flags, stream.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn h2_streams_over_the_limit_are_refused() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &["--h2-max-concurrent-streams", "2"]).await;

    // Written by hand, since a well-behaved client (hyper's) waits for a free stream: the
    // preface, empty SETTINGS, then three requests opened at once and left open (no
    // END_STREAM). HPACK 0x82 0x86 0x84 is GET, http, / from the static table.
    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    for id in [1, 3, 5] {
        out.extend(frame(0x1, 0x4, id, &[0x82, 0x86, 0x84]));
    }
    stream.write_all(&out).await.expect("send the frames");

    // Read frames until stream 5 is reset; the first two are answered.
    let mut answered = Vec::new();
    let refused = tokio::time::timeout(PATIENCE, async {
        loop {
            let mut header = [0u8; 9];
            stream.read_exact(&mut header).await.expect("a frame header");
            let len = (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
            let id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            stream.read_exact(&mut payload).await.expect("a frame payload");
            match header[3] {
                0x1 => answered.push(id),
                0x3 if id == 5 => return u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]),
                _ => {}
            }
        }
    })
    .await
    .expect("stream 5 reset in time");
    assert_eq!(refused, 0x7, "RST_STREAM with REFUSED_STREAM (RFC 9113 §8.7: safe to retry)");
    assert!(!answered.contains(&5), "{answered:?}");

    // The connection and the edge go on.
    assert_eq!(edge.get(PRM_PATH).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Connections

#[tokio::test]
async fn excess_connections_wait_in_the_backlog_and_are_served_when_one_closes() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &["--max-connections", "2"]).await;

    // Two kept-alive connections take both places.
    let mut first = TcpStream::connect(edge.addr).await.expect("connect");
    let mut second = TcpStream::connect(edge.addr).await.expect("connect");
    for stream in [&mut first, &mut second] {
        stream.write_all(GET.as_bytes()).await.expect("send a request");
        assert!(read_response(stream).await.0.starts_with("HTTP/1.1 200 OK"));
    }
    assert_eq!(edge.metric(OPEN).await, 2.0);

    // A third connects (the kernel completes the handshake into the backlog) but is not
    // served while both places are taken; nor are twenty more.
    let mut third = TcpStream::connect(edge.addr).await.expect("connect");
    third.write_all(GET.as_bytes()).await.expect("send a request");
    let mut flood = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
        stream.write_all(get_with("").as_bytes()).await.expect("send a request");
        flood.push(stream);
    }
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await;
    assert!(waited.is_err(), "the third connection was served while two were open");
    assert!(edge.metric(&hits("connections")).await >= 1.0);
    assert_eq!(edge.metric(OPEN).await, 2.0);
    // The admin listener is not under the main listener's limit, and the process is well.
    assert_eq!(edge.admin_get("/healthz").await.status, StatusCode::OK);

    // One closes: the third is served.
    drop(first);
    let (head, _) = read_response(&mut third).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    // Another closes: the flood (Connection: close) goes through one at a time.
    drop(second);
    for mut stream in flood {
        let raw = read_to_close(&mut stream).await;
        assert!(raw.starts_with(b"HTTP/1.1 200 OK"), "{:?}", String::from_utf8_lossy(&raw));
    }
    support::wait_until("the flood's connections to close", || async { edge.metric(OPEN).await == 1.0 }).await;
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// A stand-in MCP server that keeps every byte each connection sends, so a test can see
/// whether a request reached it and whether its body was cut off. It never answers, or, when
/// started [`Recorder::answering`], starts a streamed answer as soon as a request arrives and
/// never ends it.
struct Recorder {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<Arc<Mutex<Recorded>>>>>,
}

#[derive(Default)]
struct Recorded {
    bytes: Vec<u8>,
    closed: bool,
}

impl Recorder {
    async fn start() -> Recorder {
        Recorder::serve(false).await
    }

    async fn answering() -> Recorder {
        Recorder::serve(true).await
    }

    async fn serve(answer: bool) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the recorder");
        let addr = listener.local_addr().expect("address");
        let connections: Arc<Mutex<Vec<Arc<Mutex<Recorded>>>>> = Arc::default();
        let list = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let recorded = Arc::new(Mutex::new(Recorded::default()));
                list.lock().expect("lock").push(Arc::clone(&recorded));
                tokio::spawn(async move {
                    let mut buf = [0u8; 16 * 1024];
                    let mut answered = !answer;
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        recorded.lock().expect("lock").bytes.extend_from_slice(&buf[..n]);
                        if !answered {
                            answered = true;
                            let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";
                            let _ = stream.write_all(head.as_bytes()).await;
                        }
                    }
                    recorded.lock().expect("lock").closed = true;
                });
            }
        });
        Recorder { addr, connections }
    }

    fn connections(&self) -> usize {
        self.connections.lock().expect("lock").len()
    }

    /// What the first connection got, and whether it has ended.
    fn first(&self) -> (Vec<u8>, bool) {
        let list = self.connections.lock().expect("lock");
        let recorded = list.first().expect("a connection reached the recorder").lock().expect("lock");
        (recorded.bytes.clone(), recorded.closed)
    }
}

#[tokio::test]
async fn a_declared_body_over_the_limit_gets_413_and_never_reaches_the_upstream() {
    let auth = Upstream::serving().await;
    let recorder = Recorder::start().await;
    let upstream = format!("http://{}", recorder.addr);
    let edge = Edge::ready_for(
        &auth,
        &[
            "--upstream",
            &upstream,
            "--token-check",
            "presence",
            "--max-body-bytes",
            "1024",
            "--cors-origin",
            "https://app.example",
        ],
    )
    .await;

    // Content-Length over the limit, with Expect: 100-continue: the 413 comes before the body.
    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    let head =
        "POST /mcp HTTP/1.1\r\nhost: mcp.example.com\r\nauthorization: Bearer t\r\norigin: https://app.example\r\n\
                content-type: application/json\r\ncontent-length: 1025\r\nexpect: 100-continue\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("send the head");
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 413 Payload Too Large"), "{head}");
    assert_eq!(head_value(&head, "content-type"), Some("application/json"));
    assert_eq!(head_value(&head, "cache-control"), Some("no-store"));
    assert_eq!(head_value(&head, "access-control-allow-origin"), Some("https://app.example"));
    let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
    assert_eq!(json["error"], "content_too_large");

    // Over HTTP/2 the same, from the declared length.
    let request = Request::post(format!("http://{}/mcp", edge.addr))
        .header("authorization", "Bearer t")
        .header("content-length", "5000")
        .body(Full::new(Bytes::from(vec![b'z'; 5000])))
        .expect("a request");
    let response = h2_client(edge.addr).await.send_request(request).await.expect("an answer");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.version(), Version::HTTP_2);

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(recorder.connections(), 0, "the MCP server was never asked");
    assert_eq!(edge.metric(&hits("body")).await, 2.0);
    assert_eq!(edge.metric("mcp_auth_edge_requests_total{route=\"mcp\",status=\"413\"}").await, 2.0);
}

#[tokio::test]
async fn a_chunked_body_growing_over_the_limit_is_cut_off_upstream_and_gets_413() {
    let auth = Upstream::serving().await;
    let recorder = Recorder::start().await;
    let upstream = format!("http://{}", recorder.addr);
    let edge =
        Edge::ready_for(&auth, &["--upstream", &upstream, "--token-check", "presence", "--max-body-bytes", "4096"])
            .await;

    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    let head = "POST /upload HTTP/1.1\r\nhost: mcp.example.com\r\nauthorization: Bearer t\r\n\
                transfer-encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("send the head");
    // 1 KiB chunks, a little apart, until the edge answers: the fifth goes over 4 KiB.
    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    let answer = loop {
        assert!(sent < 64, "no answer after {sent} KiB");
        if stream.write_all(chunk.as_bytes()).await.is_ok() {
            sent += 1;
        }
        if let Ok(read) = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
            let mut raw = buf[..read.expect("read the answer")].to_vec();
            raw.extend(read_to_close(&mut stream).await);
            break raw;
        }
    };
    let (head, body) = split_head(&answer);
    assert!(head.starts_with("HTTP/1.1 413 Payload Too Large"), "{head}");
    let json: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
    assert_eq!(json["error"], "content_too_large");

    // The MCP server got the head and part of the body, then its connection was cut: the
    // chunked body never ended.
    support::wait_until("the upstream connection to be cut", || async { recorder.first().1 }).await;
    let (seen, _) = recorder.first();
    let (upstream_head, upstream_body) = split_head(&seen);
    assert!(upstream_head.starts_with("POST /upload HTTP/1.1"), "{upstream_head}");
    assert!(!upstream_body.ends_with(b"0\r\n\r\n"), "the body was not ended as if complete");
    assert!(upstream_body.len() < 5 * 1024 + 64, "{} bytes went upstream", upstream_body.len());
    assert_eq!(edge.metric(&hits("body")).await, 1.0);
}

#[tokio::test]
async fn a_body_over_the_limit_after_the_answer_began_breaks_the_answer_off() {
    let auth = Upstream::serving().await;
    let recorder = Recorder::answering().await;
    let upstream = format!("http://{}", recorder.addr);
    let edge =
        Edge::ready_for(&auth, &["--upstream", &upstream, "--token-check", "presence", "--max-body-bytes", "4096"])
            .await;

    let mut stream = TcpStream::connect(edge.addr).await.expect("connect");
    let head = "POST /upload HTTP/1.1\r\nhost: mcp.example.com\r\nauthorization: Bearer t\r\n\
                transfer-encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("send the head");
    // The MCP server answers at once; the client goes on sending, past the limit.
    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..64 {
        let _ = stream.write_all(chunk.as_bytes()).await;
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    got.extend(read_to_close(&mut stream).await);
    let (head, body) = split_head(&got);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(body.starts_with(b"5\r\nhello\r\n"), "{body:?}");
    assert!(!body.ends_with(b"0\r\n\r\n"), "the answer was broken off, not ended: {body:?}");
    support::wait_until("the upstream connection to be cut", || async { recorder.first().1 }).await;
    assert_eq!(edge.metric(&hits("body")).await, 1.0);
}

#[tokio::test]
async fn a_body_at_the_limit_passes() {
    let auth = Upstream::serving().await;
    let mcp = support::mcp::McpServer::start().await;
    let upstream = mcp.url();
    let edge =
        Edge::ready_for(&auth, &["--upstream", &upstream, "--token-check", "presence", "--max-body-bytes", "4096"])
            .await;
    let body = "y".repeat(4096);
    let request = format!(
        "POST /upload HTTP/1.1\r\nhost: mcp.example.com\r\nauthorization: Bearer t\r\ncontent-length: 4096\r\n\
         connection: close\r\n\r\n{body}"
    );
    let raw = support::raw_exchange(edge.addr, &request).await;
    let (head, answer) = split_head(&raw);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let json: serde_json::Value = serde_json::from_slice(answer).expect("a JSON answer");
    assert_eq!(json["bytes"], 4096);
    assert_eq!(edge.metric(&hits("body")).await, 0.0);
}

// ---------------------------------------------------------------------------------------------
// The same limits on the TLS listener

#[tokio::test]
async fn a_slowloris_over_tls_gets_408_over_tls() {
    use rustls::pki_types::ServerName;

    let tls = TestTls::new();
    let upstream = Upstream::serving().await;
    let issuer = upstream.issuer();
    let args = [
        "--resource",
        support::RESOURCE,
        "--auth-server",
        &issuer,
        "--tls-cert",
        tls.cert.path(),
        "--tls-key",
        tls.key.path(),
        "--header-read-timeout",
        HEAD_TIMEOUT,
        "--idle-timeout",
        "30",
    ];
    let edge = Edge::start(&args).await;
    edge.wait_ready().await;

    let tcp = TcpStream::connect(edge.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("a DNS name");
    let mut stream = tls.connector.connect(name, tcp).await.expect("a TLS handshake");
    let (raw, took) = trickle(&mut stream, b"GET / HTTP/1.1\r\nx-slow: ").await;
    assert_408(&raw);
    assert_timed(took, HEAD_SECS, "408 over TLS");
    assert_eq!(edge.metric(&hits("header_read_timeout")).await, 1.0);
}

/// A CA, a certificate for `localhost` it signs (in files for `--tls-cert` and `--tls-key`),
/// and a client that trusts the CA and speaks HTTP/1.1.
struct TestTls {
    cert: support::TempFile,
    key: support::TempFile,
    connector: tokio_rustls::TlsConnector,
}

impl TestTls {
    fn new() -> TestTls {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "limits test CA");
        let ca_key = rcgen::KeyPair::generate().expect("a CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("the CA certificate");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("leaf parameters");
        let key = rcgen::KeyPair::generate().expect("a server key");
        let cert = leaf.signed_by(&key, &issuer).expect("a server certificate");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).expect("the CA is a trust anchor");
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS 1.2 and 1.3")
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = format!("limits-{:?}", std::thread::current().id());
        TestTls {
            cert: support::TempFile::new(&format!("{name}-cert.pem"), &cert.pem()),
            key: support::TempFile::new(&format!("{name}-key.pem"), &key.serialize_pem()),
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }
}
