//! An MCP server stand-in for the forwarding tests, on a real loopback socket:
//!
//! - `POST /mcp`: JSON-RPC; answers `{"jsonrpc":"2.0","id":…,"result":{"echo":<request>}}`
//!   with an `Mcp-Session-Id` and some hop-by-hop fields of its own that must not pass the edge;
//! - `GET /mcp` with `Accept: text/event-stream`: an SSE stream the test drives through an
//!   [`EventStream`] taken with [`McpServer::next_stream`] (events when the test says, ending or
//!   failing when it says, and telling the test when the edge hung up);
//! - `DELETE /mcp`: `204`, as a session end;
//! - `POST /upload`: streams the body in, answers `{"bytes":N,"sha256":"…"}`;
//! - `GET /download?bytes=N` (`&chunked` for no `Content-Length`): a [`Pattern`] body of N bytes;
//! - `GET /slow` (`?secs=N`): waits a minute (N seconds) before answering; [`McpServer::slow`]
//!   counts the requests that arrived and those whose handler was dropped unanswered (cancelled
//!   by the edge).
//!
//! Every request is logged with its headers as they arrived ([`McpServer::requests`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::PATIENCE;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request as the MCP server saw it arrive.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
}

impl Seen {
    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().expect("a text header value")).unwrap_or("")
    }
}

/// Requests to `/slow` that arrived, and those dropped before their answer was made.
#[derive(Default)]
pub struct Slow {
    pub arrived: AtomicUsize,
    pub cancelled: AtomicUsize,
}

struct Shared {
    log: Mutex<Vec<Seen>>,
    streams: mpsc::UnboundedSender<EventStream>,
    slow: Slow,
}

pub struct McpServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    streams: tokio::sync::Mutex<mpsc::UnboundedReceiver<EventStream>>,
    accept: JoinHandle<()>,
}

impl McpServer {
    /// Starts the stand-in on `127.0.0.1:0`, speaking HTTP/1.1 (as the edge's pool does over
    /// cleartext).
    pub async fn start() -> McpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the MCP stand-in");
        let addr = listener.local_addr().expect("MCP stand-in address");
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared { log: Mutex::new(Vec::new()), streams: tx, slow: Slow::default() });
        let serving = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&serving);
                let service = service_fn(move |request| answer(Arc::clone(&shared), request));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        McpServer { addr, shared, streams: tokio::sync::Mutex::new(rx), accept }
    }

    /// The `--upstream` value for this server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.log.lock().expect("log lock").clone()
    }

    /// The SSE stream the next `GET /mcp` opened; fails the test after [`PATIENCE`].
    pub async fn next_stream(&self) -> EventStream {
        let mut streams = self.streams.lock().await;
        tokio::time::timeout(PATIENCE, streams.recv())
            .await
            .expect("an SSE request reaches the MCP server")
            .expect("the stand-in is running")
    }

    pub fn slow(&self) -> &Slow {
        &self.shared.slow
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The server's side of one SSE response: what the test sends is written as it is sent.
pub struct EventStream {
    pub request: Seen,
    tx: mpsc::Sender<Result<Bytes, BoxError>>,
}

impl EventStream {
    /// Sends one chunk (an SSE event, with its blank line); `false` once the response body is
    /// gone (the edge dropped the stream).
    pub async fn send(&self, chunk: &str) -> bool {
        self.tx.send(Ok(Bytes::copy_from_slice(chunk.as_bytes()))).await.is_ok()
    }

    /// Resolves when the response body was dropped: the connection to the edge ended.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    /// Breaks the response off mid-body, as a crashing server would.
    pub async fn fail(self) {
        let _ = self.tx.send(Err("the MCP server broke off".into())).await;
    }

    /// Ends the response cleanly.
    pub fn end(self) {}
}

/// The response bodies the stand-in sends.
pub enum McpBody {
    Full(Option<Bytes>),
    Events(mpsc::Receiver<Result<Bytes, BoxError>>),
    Pattern(Pattern),
}

impl http_body::Body for McpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            McpBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            McpBody::Events(rx) => rx.poll_recv(cx).map(|item| item.map(|chunk| chunk.map(Frame::data))),
            McpBody::Pattern(pattern) => Pin::new(pattern).poll_frame(cx).map_err(|never| match never {}),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            McpBody::Full(bytes) => http_body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            McpBody::Events(_) => http_body::SizeHint::default(),
            McpBody::Pattern(pattern) => pattern.size_hint(),
        }
    }
}

/// Marks a `/slow` request cancelled when its handler is dropped before it answered.
struct Unanswered(Arc<Shared>, bool);

impl Drop for Unanswered {
    fn drop(&mut self) {
        if !self.1 {
            self.0.slow.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<McpBody> {
    let mut response = Response::new(McpBody::Full(Some(body.into())));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    response
}

async fn answer(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<McpBody>, Infallible> {
    let seen = Seen {
        method: request.method().clone(),
        target: request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string(),
        headers: request.headers().clone(),
    };
    shared.log.lock().expect("log lock").push(seen.clone());
    let query = request.uri().query().unwrap_or("").to_string();
    let response = match (request.method().clone(), request.uri().path()) {
        (Method::POST, "/mcp") => {
            let body = request.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let echo: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let reply = serde_json::json!({"jsonrpc": "2.0", "id": echo["id"], "result": {"echo": echo}});
            let mut response = full(StatusCode::OK, reply.to_string());
            let h = response.headers_mut();
            h.insert("mcp-session-id", HeaderValue::from_static("session-1"));
            h.insert("connection", HeaderValue::from_static("x-upstream-hop"));
            h.insert("x-upstream-hop", HeaderValue::from_static("secret"));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            response
        }
        (Method::GET, "/mcp") if seen.header("accept").contains("text/event-stream") => {
            // Capacity 1: the test's next send waits until the previous event was taken.
            let (tx, rx) = mpsc::channel(1);
            let _ = shared.streams.send(EventStream { request: seen, tx });
            let mut response = Response::new(McpBody::Events(rx));
            let h = response.headers_mut();
            h.insert("content-type", HeaderValue::from_static("text/event-stream"));
            h.insert("cache-control", HeaderValue::from_static("no-cache"));
            h.insert("mcp-session-id", HeaderValue::from_static("session-1"));
            response
        }
        (Method::GET, "/mcp") => full(StatusCode::METHOD_NOT_ALLOWED, "{}"),
        (Method::DELETE, "/mcp") => full(StatusCode::NO_CONTENT, Bytes::new()),
        (Method::POST, "/upload") => {
            let mut body = request.into_body();
            let mut tally = Tally::default();
            let mut failed = None;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if let Some(data) = frame.data_ref() {
                            tally.add(data);
                        }
                    }
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
            let (bytes, sha256) = tally.finish();
            let reply = serde_json::json!({"bytes": bytes, "sha256": sha256, "error": failed});
            full(StatusCode::OK, reply.to_string())
        }
        (Method::GET, "/download") => {
            let bytes = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("bytes="))
                .and_then(|n| n.parse().ok())
                .expect("/download?bytes=N");
            let chunked = query.split('&').any(|pair| pair == "chunked");
            let mut response = Response::new(McpBody::Pattern(Pattern::new(bytes, !chunked)));
            response.headers_mut().insert("content-type", HeaderValue::from_static("application/octet-stream"));
            response
        }
        (Method::GET, "/slow") => {
            shared.slow.arrived.fetch_add(1, Ordering::SeqCst);
            let mut unanswered = Unanswered(Arc::clone(&shared), false);
            let secs = query.split('&').find_map(|pair| pair.strip_prefix("secs=")).and_then(|n| n.parse().ok());
            tokio::time::sleep(Duration::from_secs(secs.unwrap_or(60))).await;
            unanswered.1 = true;
            full(StatusCode::OK, "late")
        }
        _ => full(StatusCode::NOT_FOUND, "{}"),
    };
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Large bodies made and checked on the fly

/// The size of the pieces a [`Pattern`] is made in.
pub const PATTERN_CHUNK: usize = 64 * 1024;

/// A body of `len` bytes made on the fly, one 64 KiB piece at a time and only when the
/// receiver asks for more, so a test can send far more than it ever holds. Each piece is a
/// fixed pseudo-random block stamped with its index, so lost, repeated or reordered pieces
/// change the SHA-256.
pub struct Pattern {
    len: u64,
    sent: u64,
    exact: bool,
    block: Bytes,
}

impl Pattern {
    /// `exact`: the length is announced (`Content-Length`); otherwise it is chunked.
    pub fn new(len: u64, exact: bool) -> Pattern {
        let mut block = BytesMut::with_capacity(PATTERN_CHUNK);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while block.len() < PATTERN_CHUNK {
            // xorshift64: cheap, and enough to make every byte position differ.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            block.extend_from_slice(&x.to_le_bytes());
        }
        Pattern { len, sent: 0, exact, block: block.freeze() }
    }

    /// The byte count and SHA-256 of the whole body, computed here without sending it.
    pub fn expected(len: u64) -> (u64, String) {
        let mut pattern = Pattern::new(len, true);
        let mut tally = Tally::default();
        while let Some(piece) = pattern.next_piece() {
            tally.add(&piece);
        }
        tally.finish()
    }

    fn next_piece(&mut self) -> Option<Bytes> {
        let left = self.len - self.sent;
        if left == 0 {
            return None;
        }
        let n = left.min(PATTERN_CHUNK as u64) as usize;
        let index = self.sent / PATTERN_CHUNK as u64;
        let mut piece = BytesMut::from(&self.block[..n]);
        let stamp = index.to_le_bytes();
        let stamped = n.min(stamp.len());
        piece[..stamped].copy_from_slice(&stamp[..stamped]);
        self.sent += n as u64;
        Some(piece.freeze())
    }
}

impl http_body::Body for Pattern {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().next_piece().map(|piece| Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.len
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.exact {
            http_body::SizeHint::with_exact(self.len - self.sent)
        } else {
            http_body::SizeHint::default()
        }
    }
}

/// Counts bytes and hashes them as they go by, whatever the frame boundaries.
pub struct Tally {
    bytes: u64,
    sha: ring::digest::Context,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally { bytes: 0, sha: ring::digest::Context::new(&ring::digest::SHA256) }
    }
}

impl Tally {
    pub fn add(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        self.sha.update(data);
    }

    /// The count and the hex SHA-256.
    pub fn finish(self) -> (u64, String) {
        let digest = self.sha.finish();
        let hex = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        (self.bytes, hex)
    }
}
