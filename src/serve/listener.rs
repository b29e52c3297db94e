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

/// The connection builders TLS chooses among by the protocol ALPN settled on.
struct Protocols {
    /// `h2` negotiated: HTTP/2 without reading the preface to decide.
    h2: auto::Builder<TokioExecutor>,
    /// `http/1.1` negotiated.
    h1: auto::Builder<TokioExecutor>,
    /// A client that sent no ALPN: detected from its first bytes, as on cleartext.
    detect: auto::Builder<TokioExecutor>,
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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No HTTP/1 timer: with one, hyper 1.12 boxes and registers a new header-read timer for
    // every request (an allocation and ~15% of the discovery path's instructions). The
    // per-connection watchdog below bounds slow and idle clients instead.
    let mut h1 = builder.http1();
    // hyper answers 431 to a head that fills this buffer while still incomplete.
    h1.max_buf_size(limits.max_header_bytes);
    if limits.max_headers != HYPER_MAX_HEADERS {
        h1.max_headers(limits.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let protocols = tls.as_ref().map(|_| {
        Arc::new(Protocols {
            h2: builder.clone().http2_only(),
            h1: builder.clone().http1_only(),
            detect: builder.clone(),
        })
    });
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
        if let (Some((acceptor, handshake_timeout)), Some(protocols)) = (&tls, &protocols) {
            let handshake = tokio::time::timeout(*handshake_timeout, acceptor.accept(stream));
            let protocols = Arc::clone(protocols);
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                let stream = tokio::select! {
                    biased;
                    done = handshake => match done {
                        Ok(Ok(stream)) => stream,
                        // A failed handshake has had its alert sent; a slow one is dropped.
                        Ok(Err(_)) | Err(_) => return,
                    },
                    // Nothing is in flight yet: shutdown drops the handshake.
                    _ = stop.wait() => return,
                };
                let builder = match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => {
                        activity.h2.store(true, Ordering::Relaxed);
                        &protocols.h2
                    }
                    Some(_) => &protocols.h1,
                    None => &protocols.detect,
                };
                let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
                let connection = builder.serve_connection(io, service);
                let outcome = watchdog(connection, |c| c.graceful_shutdown(), &activity, clock, stop).await;
                slot.counters.ended(&outcome);
            });
            continue;
        }
        let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
        let connection = builder.serve_connection(io, service).into_owned();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            // Errors are the client's doing (reset, bad request line); hyper has already
            // answered what could be answered. Those that hit a limit are counted.
            let outcome = watchdog(connection, |c| c.graceful_shutdown(), &activity, clock, stop).await;
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

// ---------------------------------------------------------------------------------------------
// The watchdog: slow request heads and idle connections
