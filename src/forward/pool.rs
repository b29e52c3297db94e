//! Kept-alive HTTP/1.1 connections to a plain-http MCP server.
//!
//! hyper-util's pooled `Client` costs about 11k instructions and 3-4 allocations per request
//! (a keyed pool checkout and return, an `Extensions` map per response, a task spawned per
//! HTTP/1 request to give the connection back). Here a connection is hyper's own
//! `SendRequest` in a short list behind a mutex: taken when idle and ready, given back by the
//! response body once it has been read to its end. A connection whose exchange is dropped
//! half-way is never given back: hyper closes it, which is how the MCP server learns that the
//! client went away.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{Request, Response};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::client::conn::TrySendError;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::forward::upload::Upload;

/// Idle connections kept at most; more are closed as they come back.
const MAX_IDLE: usize = 64;
/// An idle connection older than this is closed (the MCP server may have timed it out already).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How a pool's connections read from the MCP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// hyper's default: an 8 KiB buffer at first, grown or shrunk with what comes. Fewest
    /// system calls for answers read at once.
    Adaptive,
    /// A buffer of this many bytes, for connections that mostly wait (held event streams): an
    /// 8 KiB buffer per waiting stream is memory held for nothing. It also bounds the answer's
    /// head: one larger fails the request (hyper: "message head is too large").
    Exact(usize),
}

/// Connections to one `http://` authority.
pub struct Pool {
    host: String,
    port: u16,
    /// The `Host` field of every request (hyper's connections do not add one).
    host_header: HeaderValue,
    connect_timeout: Duration,
    reads: Reads,
    /// Idle connections, most recently returned last.
    idle: Mutex<Vec<Idle>>,
    /// Set once the task that closes expired idle connections runs.
    reaping: AtomicBool,
}

struct Idle {
    sender: SendRequest<Upload>,
    since: Instant,
}

/// What hyper's wait for an answer on an idle connection gives: the answer's head, or the
/// request back unsent when the connection closed just as it was taken.
pub type Tried = Result<Response<Incoming>, TrySendError<Request<Upload>>>;

/// What [`Pool::send_idle`] did with a request.
// The lint cannot see that `F`, hyper's future, holds the request too.
#[allow(clippy::large_enum_variant)]
pub enum Taken<F> {
    /// Sent on an idle connection: hyper's wait for its answer (a type named only through
    /// `send_idle`'s signature), and the connection, to go back with the answer's body.
    Sent { answer: F, sender: SendRequest<Upload> },
    /// No idle connection was ready: the request, with its `Host` set.
    NoneIdle(Request<Upload>),
}

/// Why a request got no response head.
#[derive(Debug)]
pub enum Error {
    Connect(std::io::Error),
    ConnectTimeout,
    /// The handshake or the exchange failed, or the connection closed before the answer.
    Http(hyper::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "connecting: {e}"),
            Error::ConnectTimeout => f.write_str("connecting: timed out"),
            Error::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl Pool {
    pub fn new(authority: &Authority, connect_timeout: Duration, reads: Reads) -> Arc<Pool> {
        // `Authority::host` keeps an IPv6 literal's brackets; the resolver wants it bare.
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        Arc::new(Pool {
            host,
            port: authority.port_u16().unwrap_or(80),
            // An `Authority` is valid header text.
            host_header: HeaderValue::from_str(authority.as_str()).unwrap_or(HeaderValue::from_static("")),
            connect_timeout,
            reads,
            idle: Mutex::new(Vec::new()),
            reaping: AtomicBool::new(false),
        })
    }

    /// Puts the `Host` field on `request` (unless `host_set`: the caller put [`Pool::host`] in
    /// the place of the client's one line already) and sends it, at once, on the most recently
    /// returned idle connection that is ready; `now` (the caller's clock reading) tells which
    /// are too old.
    #[inline(always)]
    pub fn send_idle(
        &self,
        mut request: Request<Upload>,
        host_set: bool,
        now: Instant,
    ) -> Taken<impl Future<Output = Tried> + Send> {
        if !host_set {
            request.headers_mut().insert(header::HOST, self.host_header.clone());
        }
        match self.checkout(now) {
            Some(mut sender) => Taken::Sent { answer: sender.try_send_request(request), sender },
            None => Taken::NoneIdle(request),
        }
    }

    /// Sends `request` (its URI in origin-form, its `Host` set) on a new connection and waits
    /// for the response head. Dropping the future drops the connection with it.
    pub async fn send_new(self: Arc<Self>, request: Request<Upload>) -> Result<Response<UpstreamBody>, Error> {
        let mut sender = self.connect().await?;
        match sender.send_request(request).await {
            Ok(response) => Ok(self.attach(response, Some(sender))),
            Err(e) => Err(Error::Http(e)),
        }
    }

    /// The `Host` field every request to this authority carries.
    pub fn host(&self) -> &HeaderValue {
        &self.host_header
    }

    /// The response with its connection attached, to come back here when the body ends.
    pub fn attach(
        self: &Arc<Self>,
        response: Response<Incoming>,
        sender: Option<SendRequest<Upload>>,
    ) -> Response<UpstreamBody> {
        let mut attached =
            response.map(|body| UpstreamBody { body, checkin: sender.map(|s| (Arc::clone(self), s)), ends_at: None });
        // An empty body (a 202 to a notification) may never be polled.
        attached.body_mut().check_end();
        attached
    }

    /// The most recently returned connection that is ready for a request. Closed or expired
    /// ones met on the way are dropped; busy ones (still finishing an upload) stay.
    fn checkout(&self, now: Instant) -> Option<SendRequest<Upload>> {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let conn = &idle[i];
            if conn.sender.is_closed() || now.duration_since(conn.since) > IDLE_TIMEOUT {
                idle.remove(i);
            } else if conn.sender.is_ready() {
                return Some(idle.remove(i).sender);
            }
        }
        None
    }

    /// Takes a connection back, idle from `since` (the clock read now when `None`).
    fn checkin(self: &Arc<Self>, sender: SendRequest<Upload>, since: Option<Instant>) {
        if sender.is_closed() {
            return;
        }
        let since = since.unwrap_or_else(Instant::now);
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.retain(|conn| !conn.sender.is_closed());
            if idle.len() >= MAX_IDLE {
                // The oldest goes: the newest is the likeliest to be warm on both ends.
                idle.remove(0);
            }
        }
        idle.push(Idle { sender, since });
    }

    /// A new connection, ready for a request: TCP with `TCP_NODELAY` within the connect
    /// timeout, then hyper's HTTP/1.1 handshake, its connection driven by a task of its own.
    async fn connect(self: &Arc<Self>) -> Result<SendRequest<Upload>, Error> {
        self.start_reaping();
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Error::Connect(e)),
            Err(_) => return Err(Error::ConnectTimeout),
        };
        stream.set_nodelay(true).map_err(Error::Connect)?;
        let mut builder = hyper::client::conn::http1::Builder::new();
        if let Reads::Exact(size) = self.reads {
            builder.read_buf_exact_size(Some(size));
        }
        let (mut sender, connection) = builder.handshake(TokioIo::new(stream)).await.map_err(Error::Http)?;
        // Spawned as it is: an `async` block awaiting it would hold it twice (the block's
        // capture and the awaited copy), some 700 bytes more per held stream. Its failure
        // reaches the request on it, which reports it.
        tokio::spawn(connection);
        sender.ready().await.map_err(Error::Http)?;
        Ok(sender)
    }

    /// Starts, once, the task that closes idle connections past `IDLE_TIMEOUT` when no
    /// request comes to do it; it ends with the pool.
    fn start_reaping(self: &Arc<Self>) {
        if self.reaping.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool: Weak<Pool> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(IDLE_TIMEOUT / 3);
            loop {
                every.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                let now = Instant::now();
                let mut idle = pool.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                idle.retain(|conn| !conn.sender.is_closed() && now.duration_since(conn.since) <= IDLE_TIMEOUT);
            }
        });
    }
}

/// A response body from a pooled connection. Read to its end, it gives the connection back;
/// dropped before (the client went away) or failed, the connection closes with it.
pub struct UpstreamBody {
    body: Incoming,
    checkin: Option<(Arc<Pool>, SendRequest<Upload>)>,
    /// When the body is expected to end, near enough for the idle connection's age, read by
    /// the caller already: a body of known length read as it comes ends moments after its head.
    ends_at: Option<Instant>,
}

impl UpstreamBody {
    /// A body from hyper-util's client, which gives its connections back itself.
    pub fn unpooled(body: Incoming) -> UpstreamBody {
        UpstreamBody { body, checkin: None, ends_at: None }
    }

    /// Notes that the body will end about `at` (a known length, read at once), so that its
    /// connection's idle time is counted from then without another clock reading. An idle
    /// connection that seems older than it is is closed sooner, never later.
    pub fn ends_about(&mut self, at: Instant) {
        self.ends_at = Some(at);
    }

    fn check_end(&mut self) {
        if self.body.is_end_stream() {
            if let Some((pool, sender)) = self.checkin.take() {
                pool.checkin(sender, self.ends_at);
            }
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, hyper::Error>>> {
        let polled = std::task::ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &polled {
            Some(Ok(_)) => self.check_end(),
            None => {
                if let Some((pool, sender)) = self.checkin.take() {
                    pool.checkin(sender, self.ends_at);
                }
            }
            Some(Err(_)) => self.checkin = None,
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
