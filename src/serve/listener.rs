//! The accept loop: connections served with their limits, cleartext or TLS, and graceful
//! shutdown.
//!
//! The limits ([`Limits`]) are enforced here, the same on cleartext and TLS: hyper bounds the
//! request head (431) and HTTP/2's streams and header lists; a semaphore bounds the open
//! connections by pausing `accept`; and a per-connection watchdog closes connections whose
//! request head is too slow (408) or that sit idle too long.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::common::activity::Activity;
use crate::config::{Limits, HYPER_MAX_HEADERS};
use crate::serve::socket::Watched;
use crate::serve::tls::Tls;
use crate::serve::watchdog::{watchdog, Clock, Closed};
use crate::shutdown::Shutdown;
use crate::telemetry::metrics::{Limit, Metrics};

/// The connection a request arrived on.
pub struct Connection {
    pub peer: SocketAddr,
    /// The peer's IP as a header value, made once per connection for `X-Forwarded-For`.
    pub peer_ip: HeaderValue,
    pub activity: Arc<Activity>,
}

/// How the main listener runs: its limits, where it counts what they did, and TLS.
pub struct Options<'a> {
    pub limits: &'a Limits,
    /// `None` counts nothing (the admin listener, the demo's servers).
    pub metrics: Option<Arc<Metrics>>,
    /// TLS on every connection; `None` serves cleartext.
    pub tls: Option<&'a Tls>,
    /// How long shutdown waits for in-flight requests.
    pub drain: Duration,
}

/// Serves `listener` until `shutdown`, then drains, answering each request with `handler`.
/// The handler's future is its own type, so an answer ready at once needs no box.
pub async fn run<F, R, B>(listener: TcpListener, shutdown: Shutdown, options: Options<'_>, handler: F) -> io::Result<()>
where
    F: Fn(Request<Incoming>, &Connection) -> R + Send + Sync + 'static,
    R: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls = options.tls.map(|tls| (TlsAcceptor::from(tls.server_config()), tls.handshake_timeout));
    let counters = Counters(options.metrics);
    accept(listener, shutdown, options.drain, tls, options.limits, counters, handler).await
}

/// [`run`] for the admin listener and the demo's servers: the default limits without a
/// connection bound, cleartext, and nothing counted.
pub async fn serve<F, R, B>(listener: TcpListener, shutdown: Shutdown, drain: Duration, handler: F) -> io::Result<()>
where
    F: Fn(Request<Incoming>, &Connection) -> R + Send + Sync + 'static,
    R: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = Limits { max_connections: None, ..Limits::default() };
    run(listener, shutdown, Options { limits: &limits, metrics: None, tls: None, drain }, handler).await
}

/// Where a listener counts what its limits did: the main listener's metrics, or nowhere.
#[derive(Clone)]
struct Counters(Option<Arc<Metrics>>);

impl Counters {
    fn hit(&self, limit: Limit) {
        if let Some(metrics) = &self.0 {
            metrics.limit_hit(limit);
        }
    }

    /// Counts what ended a connection, when a limit did.
    fn ended(&self, outcome: &Result<Result<(), ConnectionError>, Closed>) {
        match outcome {
            // hyper answered 431 itself: the head was over the buffer or the header count.
            Ok(Err(e)) if e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_parse_too_large) => {
                self.hit(Limit::Headers)
            }
            Ok(_) => {}
            Err(Closed::HeaderRead) => self.hit(Limit::HeaderReadTimeout),
            Err(Closed::Idle) => self.hit(Limit::IdleTimeout),
        }
    }
}

/// How hyper-util reports a connection that ended in error.
type ConnectionError = Box<dyn std::error::Error + Send + Sync>;

/// One open connection, for as long as its task lives: its place under `--max-connections`,
/// what graceful shutdown waits for, and the gauge counting it.
struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    _draining: Watcher,
    counters: Counters,
}

impl Slot {
    fn new(permit: Option<OwnedSemaphorePermit>, draining: Watcher, counters: Counters) -> Slot {
        if let Some(metrics) = &counters.0 {
            metrics.connection_opened();
        }
        Slot { _permit: permit, _draining: draining, counters }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(metrics) = &self.counters.0 {
            metrics.connection_closed();
        }
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4): a cleartext client that starts with it
/// speaks HTTP/2 with prior knowledge.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How a connection is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
    /// A TLS client that negotiated no ALPN: told from its first bytes by hyper-util.
    Detect,
}

/// What a cleartext connection speaks, from its first bytes: `None` while they are still a
/// prefix of the HTTP/2 preface.
fn protocol(first: &[u8]) -> Option<Protocol> {
    let n = first.len().min(PREFACE.len());
    if first[..n] != PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// Peeks at a cleartext connection's first bytes until they tell its protocol (the bytes stay
/// for hyper to read); `None` when the client closed or failed first.
async fn sniff(stream: &tokio::net::TcpStream) -> Option<Protocol> {
    let mut first = [0u8; PREFACE.len()];
    loop {
        let n = stream.peek(&mut first).await.ok()?;
        if n == 0 {
            return None;
        }
        if let Some(protocol) = protocol(&first[..n]) {
            return Some(protocol);
        }
        // Part of the preface so far; peeking again would return at once with the same bytes.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The connection builders, made once from the limits. The protocol is settled before a
/// connection is served (ALPN, or the first bytes on cleartext), so that an HTTP/1 connection's
/// task holds hyper's HTTP/1 state only: hyper-util's auto connection is as large as its
/// HTTP/2 state, several KiB copied into every connection's task, which a held stream pays for.
struct Builders {
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
    /// TLS without ALPN.
    detect: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &Limits) -> Builders {
        // No HTTP/1 timer: with one, hyper 1.12 boxes and registers a new header-read timer for
        // every request (an allocation and ~15% of the discovery path's instructions). The
        // per-connection watchdog bounds slow and idle clients instead.
        let mut h1 = hyper::server::conn::http1::Builder::new();
        let mut detect = auto::Builder::new(TokioExecutor::new());
        let mut h1_detect = detect.http1();
        // hyper answers 431 to a head that fills this buffer while still incomplete.
        h1.max_buf_size(limits.max_header_bytes);
        h1_detect.max_buf_size(limits.max_header_bytes);
        if limits.max_headers != HYPER_MAX_HEADERS {
            h1.max_headers(limits.max_headers);
            h1_detect.max_headers(limits.max_headers);
        }
        let header_list = u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX);
        let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_concurrent_streams)
            .max_header_list_size(header_list);
        detect
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_concurrent_streams)
            .max_header_list_size(header_list);
        Builders { h1, h2, detect }
    }
}

/// Serves one connection in `protocol` under its watchdog until it ends.
///
/// Not an `async fn`: an async fn's future keeps its arguments for its whole life, beside
/// what they were moved into, so `io` (a TLS stream is several KiB) would be held twice by
/// every connection's task. Here it moves into the connection before the future is made, and
/// the future holds the connection once, where it is polled.
fn serve_io<'a, I, S, B>(
    io: I,
    service: S,
    protocol: Protocol,
    builders: &'a Builders,
    activity: &'a Activity,
    clock: Clock,
    stop: Shutdown,
) -> impl Future<Output = Result<Result<(), ConnectionError>, Closed>> + Send + 'a
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Unpin + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = match protocol {
        Protocol::Http1 => Serving::Http1(builders.h1.serve_connection(io, service)),
        // Boxed, so that the HTTP/1 connections' tasks are not as large as these.
        Protocol::Http2 => Serving::Http2(Box::pin(builders.h2.serve_connection(io, service))),
        Protocol::Detect => Serving::Detect(Box::pin(builders.detect.serve_connection(io, service))),
    };
    async move {
        match &mut connection {
            Serving::Http1(c) => {
                let outcome = watchdog(Pin::new(c), |c| c.graceful_shutdown(), activity, clock, stop).await;
                outcome.map(|done| done.map_err(Into::into))
            }
            Serving::Http2(c) => {
                let outcome =
                    watchdog(Pin::new(c), |c| c.get_mut().as_mut().graceful_shutdown(), activity, clock, stop).await;
                outcome.map(|done| done.map_err(Into::into))
            }
            Serving::Detect(c) => {
                watchdog(Pin::new(c), |c| c.get_mut().as_mut().graceful_shutdown(), activity, clock, stop).await
            }
        }
    }
}

/// A connection being served, in its protocol.
enum Serving<H1, H2, D> {
    Http1(H1),
    Http2(H2),
    Detect(D),
}

/// How long to wait between warnings that the connection limit was reached.
const LIMIT_WARNING_EVERY: Duration = Duration::from_secs(60);

async fn accept<F, R, B>(
    listener: TcpListener,
    mut shutdown: Shutdown,
    drain: Duration,
    tls: Option<(TlsAcceptor, Duration)>,
    limits: &Limits,
    counters: Counters,
    handler: F,
) -> io::Result<()>
where
    F: Fn(Request<Incoming>, &Connection) -> R + Send + Sync + 'static,
    R: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let handler = Arc::new(handler);
    let clock = Clock::new(limits);
    let builders = Arc::new(Builders::new(limits));
    let header_read = limits.header_read_timeout;
    let slots = limits.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let mut warned: Option<Instant> = None;
    let graceful = GracefulShutdown::new();
    loop {
        // SECURITY: at the limit, accepting pauses: new connections wait in the listen backlog
        // (and beyond it, in the clients' SYN retries) until one closes, costing the process
        // nothing.
        let permit = match &slots {
            None => None,
            Some(slots) => match Arc::clone(slots).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    counters.hit(Limit::Connections);
                    if warned.is_none_or(|at| at.elapsed() >= LIMIT_WARNING_EVERY) {
                        warned = Some(Instant::now());
                        crate::warn!(
                            "connection limit reached ({} open); new connections wait until one closes",
                            limits.max_connections.unwrap_or_default()
                        );
                    }
                    tokio::select! {
                        // The semaphore is never closed; were it, serving without a bound
                        // would beat stopping.
                        permit = Arc::clone(slots).acquire_owned() => permit.ok(),
                        _ = shutdown.wait() => break,
                    }
                }
            },
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors or a connection reset before accept: keep serving the
                // connections we have and try again shortly rather than exit.
                crate::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Taken now, so that shutdown waits for this connection (its handshake included).
        let slot = Slot::new(permit, graceful.watcher(), counters.clone());
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let activity = Arc::new(Activity::default());
        let peer_ip = HeaderValue::try_from(peer.ip().to_string()).unwrap_or(HeaderValue::from_static("unknown"));
        let info = Connection { peer, peer_ip, activity: Arc::clone(&activity) };
        let service = service_fn(move |request: Request<Incoming>| {
            // Called on the connection's own task only, so a plain load and store is enough.
            info.activity.mark(&info.activity.active);
            handler(request, &info)
        });
        let builders = Arc::clone(&builders);
        let mut stop = shutdown.clone();
        if let Some((acceptor, handshake_timeout)) = &tls {
            // The handshake is made inside the task: a future the task took with it would stay
            // in it, a TLS connection's worth of bytes, for as long as the connection lives.
            let (acceptor, handshake_timeout) = (acceptor.clone(), *handshake_timeout);
            tokio::spawn(async move {
                let stream = tokio::select! {
                    biased;
                    done = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)) => match done {
                        Ok(Ok(stream)) => stream,
                        // A failed handshake has had its alert sent; a slow one is dropped.
                        Ok(Err(_)) | Err(_) => return,
                    },
                    // Nothing is in flight yet: shutdown drops the handshake.
                    _ = stop.wait() => return,
                };
                let protocol = match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => {
                        activity.h2.store(true, Ordering::Relaxed);
                        Protocol::Http2
                    }
                    Some(_) => Protocol::Http1,
                    None => Protocol::Detect,
                };
                let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
                let outcome = serve_io(io, service, protocol, &builders, &activity, clock, stop).await;
                slot.counters.ended(&outcome);
            });
            continue;
        }
        tokio::spawn(async move {
            // SECURITY: the first bytes come within the header read timeout, as a request head
            // must; nothing is in flight yet, so shutdown drops the connection.
            let sniffed = tokio::select! {
                biased;
                sniffed = tokio::time::timeout(header_read, sniff(&stream)) => sniffed,
                _ = stop.wait() => return,
            };
            let protocol = match sniffed {
                Ok(Some(protocol)) => protocol,
                Ok(None) => return,
                Err(_) => {
                    slot.counters.hit(Limit::HeaderReadTimeout);
                    return;
                }
            };
            let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
            // Errors are the client's doing (reset, bad request line); hyper has already
            // answered what could be answered. Those that hit a limit are counted.
            let outcome = serve_io(io, service, protocol, &builders, &activity, clock, stop).await;
            slot.counters.ended(&outcome);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => crate::warn!("drain timeout reached; closing remaining connections"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_tell_http2_prior_knowledge_from_http1() {
        assert_eq!(protocol(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(protocol(b"P"), None, "could still be the preface");
        assert_eq!(protocol(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(protocol(b"POST /mcp HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(protocol(PREFACE), Some(Protocol::Http2));
        assert_eq!(protocol(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00"), Some(Protocol::Http2));
    }
}
