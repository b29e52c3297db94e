//! Forwarding past the gate, over real sockets: a client, the edge in jwt mode with a real
//! signed token, and an MCP server stand-in (JSON-RPC over `POST`, SSE streams the test
//! drives event by event). What reaches the MCP server, what comes back, streams that stay
//! open, clients that leave, and MCP servers that are slow, down or break off.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::jwt::{auth_server, claims, Signer};
use support::mcp::{EventStream, McpServer};
use support::{normalized, raw_exchange, Edge, Upstream, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long the MCP server may take to notice that the edge dropped its request.
const CANCEL_WITHIN: Duration = Duration::from_secs(5);

const EVENT_1: &str = "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
const EVENT_2: &str = "id: 2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n";

/// The edge in jwt mode in front of a fresh MCP server, and a valid token for it.
struct Setup {
    _auth: Upstream,
    key: Signer,
    issuer: String,
    mcp: McpServer,
    edge: Edge,
    bearer: String,
}

impl Setup {
    async fn new(extra: &[&str]) -> Setup {
        let mcp = McpServer::start().await;
        let upstream = mcp.url();
        Setup::in_front_of(&upstream, extra, mcp).await
    }

    /// The edge forwarding to `upstream`, which need not be `mcp`.
    async fn in_front_of(upstream: &str, extra: &[&str], mcp: McpServer) -> Setup {
        let key = Signer::ed25519("k1");
        let auth = auth_server(&[&key]).await;
        let mut args = vec!["--upstream", upstream, "--token-check", "jwt", "--scope", "mcp:tools"];
        // Every origin allowed, as the answers below are written, unless the test lists its own;
        // the default (the resource's own origin) is tested in tests/harden.rs.
        if !extra.contains(&"--cors-origin") {
            args.extend(["--cors-origin", "*"]);
        }
        args.extend_from_slice(extra);
        let edge = Edge::ready_for(&auth, &args).await;
        let bearer = format!("Bearer {}", key.sign(&claims(&auth.issuer())));
        let issuer = auth.issuer();
        Setup { _auth: auth, key, issuer, mcp, edge, bearer }
    }

    /// An SSE stream through the edge, opened with a token that expires at `exp` (Unix seconds),
    /// once the MCP server has sent `first`: its upstream end, the client's body, and the
    /// client connection's task (the connection lives while it does).
    async fn stream_until(&self, exp: u64, first: &str) -> (EventStream, Incoming, JoinHandle<()>) {
        let (mut sender, connection) = h1::<Empty<Bytes>>(self.edge.addr).await;
        let request = self.sse_until(exp);
        let pending = tokio::spawn(async move { sender.send_request(request).await });
        let stream = self.mcp.next_stream().await;
        assert!(stream.send(first).await);
        let response = within(PATIENCE, "the response head", pending).await.expect("no panic").expect("a response");
        (stream, response.into_body(), connection)
    }

    /// An SSE request with a token that expires at `exp` (Unix seconds).
    fn sse_until(&self, exp: u64) -> Request<Empty<Bytes>> {
        let mut claims = claims(&self.issuer);
        claims["exp"] = exp.into();
        Request::get("http://mcp.example.com/mcp")
            .header("host", "mcp.example.com")
            .header("authorization", format!("Bearer {}", self.key.sign(&claims)))
            .header("accept", "text/event-stream")
            .body(Empty::new())
            .expect("a request")
    }

    /// A request to the edge, with the token.
    fn request(&self, method: Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("http://mcp.example.com{path}"))
            .header("host", "mcp.example.com")
            .header("authorization", self.bearer.as_str())
    }

    fn sse(&self) -> Request<Empty<Bytes>> {
        self.request(Method::GET, "/mcp")
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .header("last-event-id", "0")
            .body(Empty::new())
            .expect("a request")
    }

    /// The whole response to `request` (written as is), date masked.
    async fn raw(&self, request: &str) -> String {
        normalized(&raw_exchange(self.edge.addr, request).await)
    }

    fn raw_get(&self, path: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: mcp.example.com\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            self.bearer
        )
    }
}

/// Opens an event stream through the edge over HTTP/1.1 and reads its first event: the
/// client's side of the held stream and the MCP server's.
async fn held_stream(
    s: &Setup,
    mut sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
) -> (Incoming, EventStream) {
    let request = s.sse();
    let pending = tokio::spawn(async move { sender.send_request(request).await });
    let stream = s.mcp.next_stream().await;
    assert!(stream.send(EVENT_1).await);
    let response = within(PATIENCE, "the response head", pending).await.expect("no panic").expect("a response");
    let mut body = response.into_body();
    assert_eq!(next_data(&mut body).await, EVENT_1.as_bytes());
    (body, stream)
}

/// An HTTP/1.1 client connection; aborting the handle closes the socket.
async fn h1<B>(addr: SocketAddr) -> (hyper::client::conn::http1::SendRequest<B>, JoinHandle<()>)
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.expect("connect to the edge");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    // The connection's own error is of no interest: the requests on it report theirs.
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, task)
}

/// An HTTP/2 client connection (prior knowledge); aborting the handle closes the socket.
async fn h2<B>(addr: SocketAddr) -> (hyper::client::conn::http2::SendRequest<B>, JoinHandle<()>)
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.expect("connect to the edge");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2 handshake");
    // The connection's own error is of no interest: the requests on it report theirs.
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, task)
}

/// The next data frame of a streamed body, within [`PATIENCE`].
async fn next_data(body: &mut Incoming) -> Bytes {
    let frame = tokio::time::timeout(PATIENCE, body.frame())
        .await
        .expect("a frame within the patience")
        .expect("the body has not ended")
        .expect("the body has no error");
    frame.into_data().expect("a data frame")
}

async fn within<F: std::future::Future>(limit: Duration, what: &str, future: F) -> F::Output {
    tokio::time::timeout(limit, future).await.unwrap_or_else(|_| panic!("{what}: not within {limit:?}"))
}

/// Waits until the MCP server counts `count` requests to `/slow` arrived.
async fn slow_arrived(mcp: &McpServer, count: usize) {
    support::wait_until("the request reaches the MCP server", || async {
        mcp.slow().arrived.load(Ordering::SeqCst) == count
    })
    .await;
}

/// Waits, at most [`CANCEL_WITHIN`], until `count` `/slow` handlers were dropped unanswered.
async fn slow_cancelled(mcp: &McpServer, count: usize) {
    within(CANCEL_WITHIN, "the MCP server's handler is dropped", async {
        while mcp.slow().cancelled.load(Ordering::SeqCst) < count {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Requests and answers as they pass

#[tokio::test]
async fn a_verified_call_reaches_the_mcp_server_as_specified() {
    let s = Setup::new(&[]).await;
    let (mut sender, _connection) = h1(s.edge.addr).await;
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}"#;
    let request = s
        .request(Method::POST, "/mcp?session=abc&x=%20y")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", "session-1")
        .header("mcp-protocol-version", "2025-06-18")
        // Hop-by-hop: what Connection names, and the fields that are hop-by-hop by definition.
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic cHJveHk6c2VjcmV0")
        // Whatever the client claims here is replaced or extended, never trusted.
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "evil.example")
        .header("x-auth-subject", "admin")
        .header("x-auth-scopes", "everything")
        .header("x-auth-client-id", "trusted-app")
        .body(Full::new(Bytes::from(body)))
        .expect("a request");
    let response = sender.send_request(request).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let reply: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.expect("a body").to_bytes()).expect("JSON");
    assert_eq!(reply["id"], 7);
    assert_eq!(reply["result"]["echo"]["params"]["name"], "echo", "the body arrived as sent");

    let seen = s.mcp.requests().pop().expect("the call reached the MCP server");
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.target, "/mcp?session=abc&x=%20y", "path and query kept as they are");
    assert_eq!(seen.header("authorization"), s.bearer, "the token is passed on");
    assert_eq!(seen.header("content-type"), "application/json");
    assert_eq!(seen.header("accept"), "application/json, text/event-stream");
    assert_eq!(seen.header("mcp-session-id"), "session-1");
    assert_eq!(seen.header("mcp-protocol-version"), "2025-06-18");
    assert_eq!(seen.header("content-length"), body.len().to_string());
    assert_eq!(seen.header("x-forwarded-for"), "203.0.113.9, 127.0.0.1", "the client's address is appended");
    assert_eq!(seen.header("x-forwarded-proto"), "https", "the scheme of --resource");
    assert_eq!(seen.header("x-forwarded-host"), "mcp.example.com", "the host the client asked for");
    for name in
        ["x-hop", "keep-alive", "te", "proxy-authorization", "x-auth-subject", "x-auth-scopes", "x-auth-client-id"]
    {
        assert!(seen.headers.get(name).is_none(), "{name} must not reach the MCP server: {:?}", seen.headers);
    }
    assert!(!seen.header("connection").contains("x-hop"), "{:?}", seen.headers);

    assert_eq!(headers["mcp-session-id"], "session-1");
    assert_eq!(headers["content-type"], "application/json");
    // No Origin, so no browser reads this across origins: no CORS fields, and caches are told
    // that an answer to a request with one differs.
    assert!(headers.get("access-control-allow-origin").is_none(), "{headers:?}");
    assert!(headers.get("access-control-expose-headers").is_none(), "{headers:?}");
    assert_eq!(headers["vary"], "Origin");
    for name in ["x-upstream-hop", "keep-alive"] {
        assert!(headers.get(name).is_none(), "the MCP server's {name} must not reach the client: {headers:?}");
    }

    // Other methods pass too, and the MCP server's own statuses come back as they are.
    let delete = s.request(Method::DELETE, "/mcp").header("mcp-session-id", "session-1").body(Full::default());
    assert_eq!(
        sender.send_request(delete.expect("a request")).await.expect("a response").status(),
        StatusCode::NO_CONTENT
    );
    let plain_get = s.request(Method::GET, "/mcp").body(Full::default());
    let response = sender.send_request(plain_get.expect("a request")).await.expect("a response");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let metrics = s.edge.metrics().await;
    for series in [
        "mcp_auth_edge_upstream_responses_total{class=\"2xx\"} 2\n",
        "mcp_auth_edge_upstream_responses_total{class=\"4xx\"} 1\n",
        "mcp_auth_edge_requests_total{route=\"mcp\",status=\"200\"} 1\n",
        "mcp_auth_edge_requests_total{route=\"mcp\",status=\"204\"} 1\n",
        "mcp_auth_edge_requests_total{route=\"mcp\",status=\"405\"} 1\n",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
}

#[tokio::test]
async fn an_http2_call_is_forwarded_with_its_authority_as_the_host() {
    let s = Setup::new(&[]).await;
    let (mut sender, _connection) = h2(s.edge.addr).await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let request = s
        .request(Method::POST, "/mcp")
        .version(Version::HTTP_2)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a request");
    let response = sender.send_request(request).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.headers()["mcp-session-id"], "session-1");
    let reply = response.into_body().collect().await.expect("a body").to_bytes();
    let reply: serde_json::Value = serde_json::from_slice(&reply).expect("JSON");
    assert_eq!(reply["id"], 1);
    assert_eq!(reply["result"]["echo"]["method"], "ping");
    let seen = s.mcp.requests().pop().expect("forwarded");
    assert_eq!(seen.header("x-forwarded-host"), "mcp.example.com");
    assert_eq!(seen.header("authorization"), s.bearer);
}

// ---------------------------------------------------------------------------------------------
// SSE

/// Reads the first event while the MCP server still holds the stream open, then a second one
/// sent later, then the clean end.
async fn first_event_before_the_end(response: Response<Incoming>, stream: EventStream) {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert!(response.headers().get("content-length").is_none());
    let mut body = response.into_body();
    // The MCP server has sent one event and keeps the stream open: the event must come now.
    assert_eq!(next_data(&mut body).await, EVENT_1.as_bytes(), "the first event, while the stream is open");
    let sent = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(stream.send(EVENT_2).await, "the stream is still open");
    assert_eq!(next_data(&mut body).await, EVENT_2.as_bytes());
    assert!(sent.elapsed() >= Duration::from_millis(300), "events keep their spacing");
    stream.end();
    // HTTP/2 may close the stream with an empty DATA frame; it carries nothing.
    let end = within(PATIENCE, "the end of the stream", async {
        loop {
            match body.frame().await {
                Some(Ok(frame)) if frame.data_ref().is_some_and(|d| d.is_empty()) => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(end.is_none(), "a clean end, got {end:?}");
}

#[tokio::test]
async fn the_first_sse_event_arrives_while_the_stream_is_open() {
    let s = Setup::new(&[]).await;
    let (mut sender, _connection) = h1(s.edge.addr).await;
    let request = s.sse();
    let pending = tokio::spawn(async move { sender.send_request(request).await });
    let stream = s.mcp.next_stream().await;
    assert_eq!(stream.request.header("last-event-id"), "0");
    assert_eq!(stream.request.header("accept"), "text/event-stream");
    assert!(stream.send(EVENT_1).await);
    let response = within(PATIENCE, "the response head", pending).await.expect("no panic").expect("a response");
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    first_event_before_the_end(response, stream).await;
}

#[tokio::test]
async fn the_first_sse_event_arrives_while_the_stream_is_open_over_http2() {
    let s = Setup::new(&[]).await;
    let (mut sender, _connection) = h2(s.edge.addr).await;
    let request = s.sse();
    let pending = tokio::spawn(async move { sender.send_request(request).await });
    let stream = s.mcp.next_stream().await;
    assert!(stream.send(EVENT_1).await);
    let response = within(PATIENCE, "the response head", pending).await.expect("no panic").expect("a response");
    assert_eq!(response.version(), Version::HTTP_2);
    first_event_before_the_end(response, stream).await;
}

/// A held stream's upstream connection reads through a small buffer (`STREAM_READ_BUF`): an event
/// several times that size still passes whole, and a call made meanwhile is answered.
#[tokio::test]
async fn an_event_larger_than_a_held_streams_read_buffer_passes_whole_beside_calls() {
    let s = Setup::new(&[]).await;
    let (sender, _connection) = h1(s.edge.addr).await;
    let (mut body, stream) = held_stream(&s, sender).await;
    // A call while the stream is held: answered.
    let (mut caller, _calls) = h1(s.edge.addr).await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let request = s
        .request(Method::POST, "/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(call)))
        .expect("a request");
    let answer = within(PATIENCE, "the call's answer", caller.send_request(request)).await.expect("a response");
    assert_eq!(answer.status(), StatusCode::OK);
    // An event some 6 reads of the held connection's buffer long.
    let large = format!("data: {}\n\n", "x".repeat(6 * mcp_auth_edge::forward::upstream::STREAM_READ_BUF));
    assert!(stream.send(&large).await, "the stream is still open");
    let mut got = Vec::new();
    while got.len() < large.len() {
        got.extend_from_slice(&next_data(&mut body).await);
    }
    assert_eq!(got, large.as_bytes(), "the event whole and alone");
    assert!(stream.send(EVENT_2).await, "the stream is still open");
    assert_eq!(next_data(&mut body).await, EVENT_2.as_bytes());
}

#[tokio::test]
async fn a_quiet_stream_outlives_the_upstream_timeout() {
    // The timeout bounds the wait for response headers only; streams have no total timeout.
    let s = Setup::new(&["--upstream-timeout", "0.3"]).await;
    let (sender, _connection) = h1(s.edge.addr).await;
    let (mut body, stream) = held_stream(&s, sender).await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(stream.send(EVENT_2).await, "the stream is still open");
        assert_eq!(next_data(&mut body).await, EVENT_2.as_bytes());
    }
    assert_eq!(s.edge.metric("mcp_auth_edge_upstream_timeouts_total").await, 0.0);
}

/// Waits until the Unix clock has passed `secs`.
async fn past(secs: u64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    tokio::time::sleep(Duration::from_secs(secs + 1).saturating_sub(now)).await;
}

/// A stream opened with a token ends when the token expires (`--token-leeway 0` here), between
/// two events, cleanly, so the client reconnects with a fresh token; the MCP server's side is
/// released and the end counted.
#[tokio::test]
async fn a_stream_ends_between_events_when_its_token_expires() {
    let s = Setup::new(&["--token-leeway", "0"]).await;
    let exp = support::jwt::now() + 3;
    let (stream, mut body, _connection) = s.stream_until(exp, EVENT_1).await;
    assert_eq!(next_data(&mut body).await, EVENT_1.as_bytes(), "the stream flows while the token is valid");
    past(exp).await;
    let end = within(PATIENCE, "the end of the stream", body.frame()).await;
    assert!(end.is_none(), "a clean end, not an error: {end:?}");
    within(CANCEL_WITHIN, "the MCP server's stream released", stream.closed()).await;
    assert_eq!(s.edge.metric("mcp_auth_edge_streams_ended_total{reason=\"expired\"}").await, 1.0);
}

/// A stream is never cut while its token is valid, however long it runs: past a minute (the
/// default leeway, a tempting constant) events still flow, and the end comes only at `exp`.
#[tokio::test]
async fn a_stream_runs_past_a_minute_while_its_token_is_valid() {
    let s = Setup::new(&["--token-leeway", "0"]).await;
    let exp = support::jwt::now() + 66;
    let (stream, mut body, _connection) = s.stream_until(exp, EVENT_1).await;
    assert_eq!(next_data(&mut body).await, EVENT_1.as_bytes());
    past(exp - 5).await;
    assert!(stream.send(EVENT_2).await, "the stream is still open upstream after a minute");
    assert_eq!(next_data(&mut body).await, EVENT_2.as_bytes(), "and still delivers");
    past(exp).await;
    let end = within(PATIENCE, "the end of the stream", body.frame()).await;
    assert!(end.is_none(), "a clean end at exp: {end:?}");
}

/// An event under way when the token expires is let through whole; then the stream ends.
#[tokio::test]
async fn an_event_under_way_at_expiry_is_finished_first() {
    let s = Setup::new(&["--token-leeway", "0"]).await;
    let exp = support::jwt::now() + 3;
    let (head, tail) = EVENT_2.split_at(20);
    let (stream, mut body, _connection) = s.stream_until(exp, head).await;
    assert_eq!(next_data(&mut body).await, head.as_bytes());
    past(exp).await;
    assert!(stream.send(tail).await);
    assert_eq!(next_data(&mut body).await, tail.as_bytes(), "the rest of the event");
    let end = within(PATIENCE, "the end of the stream", body.frame()).await;
    assert!(end.is_none(), "then a clean end: {end:?}");
}

// ---------------------------------------------------------------------------------------------
// Clients that leave

#[tokio::test]
async fn a_client_leaving_mid_stream_cancels_the_upstream_stream() {
    let s = Setup::new(&[]).await;
    let (sender, connection) = h1(s.edge.addr).await;
    let (body, stream) = held_stream(&s, sender).await;
    // The client goes away: its socket closes with the stream still open.
    connection.abort();
    drop(body);
    let left = Instant::now();
    within(CANCEL_WITHIN, "the MCP server sees the stream dropped", stream.closed()).await;
    println!("upstream stream dropped {:?} after the client left", left.elapsed());
    // The edge still forwards afterwards (nothing stuck in its pool).
    let reply = s.raw(&s.raw_get("/mcp")).await;
    assert!(reply.starts_with("HTTP/1.1 405 "), "{reply}");
}

#[tokio::test]
async fn an_http2_client_cancelling_a_stream_cancels_the_upstream_stream() {
    let s = Setup::new(&[]).await;
    let (mut sender, _connection) = h2::<Empty<Bytes>>(s.edge.addr).await;
    let request = s.sse();
    let mut again = sender.clone();
    let pending = tokio::spawn(async move { sender.send_request(request).await });
    let stream = s.mcp.next_stream().await;
    assert!(stream.send(EVENT_1).await);
    let response = within(PATIENCE, "the response head", pending).await.expect("no panic").expect("a response");
    let mut body = response.into_body();
    assert_eq!(next_data(&mut body).await, EVENT_1.as_bytes());
    // Dropping the body resets the one stream (RST_STREAM); the connection stays.
    drop(body);
    within(CANCEL_WITHIN, "the MCP server sees the stream dropped", stream.closed()).await;
    let request = s.request(Method::DELETE, "/mcp").body(Empty::new()).expect("a request");
    let response = within(PATIENCE, "a call on the same connection", again.send_request(request)).await;
    assert_eq!(response.expect("a response").status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_client_leaving_before_the_response_head_cancels_the_upstream_request() {
    let s = Setup::new(&[]).await;
    // HTTP/1.1: the client closes its socket.
    let mut client = TcpStream::connect(s.edge.addr).await.expect("connect");
    client.write_all(s.raw_get("/slow").as_bytes()).await.expect("send");
    slow_arrived(&s.mcp, 1).await;
    drop(client);
    slow_cancelled(&s.mcp, 1).await;

    // HTTP/2: the client drops the request future (RST_STREAM), keeping the connection.
    let (mut sender, _connection) = h2::<Empty<Bytes>>(s.edge.addr).await;
    let request = s.request(Method::GET, "/slow").body(Empty::new()).expect("a request");
    let pending = tokio::spawn(async move { sender.send_request(request).await });
    slow_arrived(&s.mcp, 2).await;
    pending.abort();
    slow_cancelled(&s.mcp, 2).await;
}

// ---------------------------------------------------------------------------------------------
// MCP servers that are slow, down or break off

fn json_error(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\naccess-control-allow-origin: *\r\n\
         cache-control: no-store\r\nx-request-id: <id>\r\nconnection: close\r\ncontent-length: {}\r\n\
         date: <date>\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn a_slow_upstream_gets_504_json_counted_and_is_cancelled() {
    let s = Setup::new(&["--upstream-timeout", "0.3"]).await;
    let started = Instant::now();
    let reply = s.raw(&s.raw_get("/slow")).await;
    let took = started.elapsed();
    assert_eq!(
        reply,
        json_error(
            "504 Gateway Timeout",
            r#"{"error":"gateway_timeout","error_description":"The MCP server did not answer in time"}"#
        )
    );
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5), "answered after {took:?}");
    let metrics = s.edge.metrics().await;
    assert!(metrics.contains("mcp_auth_edge_upstream_timeouts_total 1\n"), "{metrics}");
    assert!(metrics.contains("mcp_auth_edge_requests_total{route=\"mcp\",status=\"504\"} 1\n"), "{metrics}");
    assert!(metrics.contains("mcp_auth_edge_upstream_errors_total 0\n"), "{metrics}");
    // Having answered 504, the edge does not leave the request running at the MCP server.
    slow_cancelled(&s.mcp, 1).await;
}

const BODY_502: &str = r#"{"error":"bad_gateway","error_description":"The MCP server could not be reached"}"#;

#[tokio::test]
async fn an_unreachable_upstream_gets_502_json_counted() {
    // A port that was free a moment ago: nothing listens there.
    let down = format!("http://127.0.0.1:{}", support::free_port());
    let s = Setup::in_front_of(&down, &[], McpServer::start().await).await;
    let started = Instant::now();
    for _ in 0..2 {
        assert_eq!(s.raw(&s.raw_get("/mcp")).await, json_error("502 Bad Gateway", BODY_502));
    }
    assert!(started.elapsed() < Duration::from_secs(5), "refused connections answer at once: {:?}", started.elapsed());
    let metrics = s.edge.metrics().await;
    assert!(metrics.contains("mcp_auth_edge_upstream_errors_total 2\n"), "{metrics}");
    assert!(metrics.contains("mcp_auth_edge_requests_total{route=\"mcp\",status=\"502\"} 2\n"), "{metrics}");
    assert!(metrics.contains("mcp_auth_edge_upstream_timeouts_total 0\n"), "{metrics}");
}

#[tokio::test]
async fn an_upstream_closing_without_an_answer_gets_502() {
    // Accepts, reads the request head, and hangs up.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
        }
    });
    let s = Setup::in_front_of(&format!("http://{addr}"), &[], McpServer::start().await).await;
    assert_eq!(s.raw(&s.raw_get("/mcp")).await, json_error("502 Bad Gateway", BODY_502));
    assert_eq!(s.edge.metric("mcp_auth_edge_upstream_errors_total").await, 1.0);
}

#[tokio::test]
async fn an_upstream_breaking_off_mid_stream_is_not_passed_off_as_complete() {
    let s = Setup::new(&[]).await;
    let (sender, _connection) = h1(s.edge.addr).await;
    let (mut body, stream) = held_stream(&s, sender).await;
    stream.fail().await;
    // The client must see an error, not the end of a complete response.
    let next = within(PATIENCE, "the stream's end", body.frame()).await;
    assert!(matches!(next, Some(Err(_))), "a broken-off stream must end in an error, got {next:?}");
}

/// With `--cors-origin`, the edge's own answers on the MCP endpoint (502, 504, and the 503 of
/// a token check that cannot run) must follow the list as the challenge and forwarded answers
/// do: only a listed origin may read them.
#[tokio::test]
async fn the_edges_own_errors_follow_the_cors_origin_list() {
    let down = format!("http://127.0.0.1:{}", support::free_port());
    let s = Setup::in_front_of(&down, &["--cors-origin", "https://app.example"], McpServer::start().await).await;
    let ask = |origin: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: mcp.example.com\r\nOrigin: {origin}\r\nAuthorization: {}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            s.bearer
        )
    };
    let listed = s.raw(&ask("https://app.example")).await;
    assert!(listed.starts_with("HTTP/1.1 502 "), "{listed}");
    assert!(listed.contains("\r\naccess-control-allow-origin: https://app.example\r\n"), "{listed}");
    // An unlisted origin is refused before anything is forwarded, and may not read why.
    let other = s.raw(&ask("https://evil.example")).await;
    assert!(other.starts_with("HTTP/1.1 403 "), "{other}");
    assert!(!other.contains("access-control-allow-origin"), "an unlisted origin may not read it: {other}");
}

/// A call the MCP server takes its time over (a long tool run answered as plain JSON), within
/// `--upstream-timeout`: the client's connection must stay open while the edge waits for the
/// response head, well past the idle timeout.
#[tokio::test]
async fn a_call_slower_than_the_idle_period_but_within_the_upstream_timeout_is_answered() {
    let s = Setup::new(&["--upstream-timeout", "10", "--idle-timeout", "0.4", "--header-read-timeout", "0.4"]).await;
    let (mut sender, _connection) = h1::<Empty<Bytes>>(s.edge.addr).await;
    let request = s.request(Method::GET, "/slow?secs=2").body(Empty::new()).expect("a request");
    let started = Instant::now();
    let response = sender.send_request(request).await;
    let response = response.unwrap_or_else(|e| panic!("the connection closed after {:?}: {e}", started.elapsed()));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.into_body().collect().await.expect("a body").to_bytes(), "late");
}

/// `--upstream-timeout` bounds the wait for the MCP server's answer, not the client's upload:
/// a body that keeps arriving for longer than the timeout is forwarded whole and answered.
#[tokio::test]
async fn an_upload_longer_than_the_upstream_timeout_is_not_cut_off() {
    let s = Setup::new(&["--upstream-timeout", "0.4"]).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let body = Fed(rx);
    let (mut sender, _connection) = h1(s.edge.addr).await;
    let request = s.request(Method::POST, "/upload").body(body).expect("a request");
    let feed = tokio::spawn(async move {
        // Five chunks 250 ms apart: about 1.2 s of upload against a 0.4 s timeout.
        for _ in 0..5 {
            tx.send(Bytes::from(vec![b'x'; 1000])).await.expect("the edge reads the upload");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request)).await.expect("an answer in time");
    let response = response.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.expect("a body").to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(answer["bytes"], 5000, "{answer}");
    feed.await.expect("the feeder finished");
}

/// A request body fed by a channel, one frame per message.
struct Fed(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Fed {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(http_body::Frame::data(c))))
    }
}
