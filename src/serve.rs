//! Listeners, connections and graceful shutdown.
//!
//! Each accepted connection is served by hyper-util's auto builder (HTTP/1.1, or HTTP/2 when
//! the client opens with the prior-knowledge preface). With TLS, the handshake runs on the
//! connection's own task and ALPN picks the protocol. On shutdown the listener closes at once
//! and open connections finish their in-flight requests, for at most the drain timeout.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::respond::{self, Decision, Reply};
use crate::State;

/// What a connection's idle watchdog reads: requests seen, and forwarded responses still
/// streaming (an SSE stream may stay quiet far longer than the idle period).
#[derive(Default)]
pub struct Activity {
    requests: AtomicU32,
    streaming: AtomicU32,
}

/// Marks one forwarded response as streaming for as long as it lives.
pub struct Streaming(Arc<Activity>);

impl Streaming {
    pub fn new(activity: Arc<Activity>) -> Streaming {
        activity.streaming.fetch_add(1, Ordering::Relaxed);
        Streaming(activity)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.0.streaming.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection a request arrived on.
pub struct Connection {
    pub peer: SocketAddr,
    pub activity: Arc<Activity>,
}

/// Fires shutdown for every [`Shutdown`] made from it.
pub struct Trigger(watch::Sender<bool>);

/// Resolves when shutdown has been asked for (or its trigger was dropped).
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and shutdown signal.
pub fn shutdown_channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also means stop.
        let _ = self.0.wait_for(|fired| *fired).await;
    }
}

/// Serves the edge on `listener` until `shutdown`, then drains.
pub async fn run(listener: TcpListener, state: Arc<State>, shutdown: Shutdown, drain: Duration) -> io::Result<()> {
    serve(listener, shutdown, drain, edge(state)).await
}

/// Like [`run`], with TLS on every connection.
pub async fn run_tls(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: Shutdown,
    drain: Duration,
    tls: &crate::tls::Tls,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls.server_config());
    accept(listener, shutdown, drain, Some((acceptor, tls.handshake_timeout)), edge(state)).await
}

/// The main listener's handler: answered here, or forwarded past the gate.
fn edge(state: Arc<State>) -> impl Fn(Request<Incoming>, &Connection) -> Reply + Send + Sync + 'static {
    move |request, connection| match respond::handle(&state, &request) {
        Decision::Answer(response) => Reply::Ready(Some(response)),
        Decision::Forward => Reply::Forward(Box::pin(crate::proxy::forward(
            Arc::clone(&state),
            request,
            connection.peer,
            Arc::clone(&connection.activity),
        ))),
    }
}

/// SECURITY: a connection on which no request arrives for a whole period is closed, which
/// cuts off clients that send headers byte by byte (slowloris) or hold idle keep-alive
/// connections forever. A request head may take at most two periods.
const IDLE_PERIOD: Duration = Duration::from_secs(30);

async fn watchdog<C: std::future::Future>(connection: C, activity: &Activity) -> Option<C::Output> {
    tokio::pin!(connection);
    let start = tokio::time::Instant::now() + IDLE_PERIOD;
    let mut tick = tokio::time::interval_at(start, IDLE_PERIOD);
    let mut seen = 0;
    loop {
        tokio::select! {
            biased;
            done = &mut connection => return Some(done),
            _ = tick.tick() => {
                let now = activity.requests.load(Ordering::Relaxed);
                if now == seen && activity.streaming.load(Ordering::Relaxed) == 0 {
                    return None;
                }
                seen = now;
            }
        }
    }
}

/// Accepts connections and answers each request with `handler`, whose [`Reply`] is ready at
/// once for answers the edge makes itself, so nothing is boxed per discovery request.
pub async fn serve<F>(listener: TcpListener, shutdown: Shutdown, drain: Duration, handler: F) -> io::Result<()>
where
    F: Fn(Request<Incoming>, &Connection) -> Reply + Send + Sync + 'static,
{
    accept(listener, shutdown, drain, None, handler).await
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

async fn accept<F>(
    listener: TcpListener,
    mut shutdown: Shutdown,
    drain: Duration,
    tls: Option<(TlsAcceptor, Duration)>,
    handler: F,
) -> io::Result<()>
where
    F: Fn(Request<Incoming>, &Connection) -> Reply + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No HTTP/1 timer: with one, hyper 1.12 boxes and registers a new header-read timer for
    // every request (an allocation and ~15% of the discovery path's instructions). The
    // per-connection watchdog below bounds slow and idle clients instead.
    builder.http2().timer(TokioTimer::new());
    let protocols = tls.as_ref().map(|_| {
        Arc::new(Protocols {
            h2: builder.clone().http2_only(),
            h1: builder.clone().http1_only(),
            detect: builder.clone(),
        })
    });
    let graceful = GracefulShutdown::new();
    loop {
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
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let activity = Arc::new(Activity::default());
        let info = Connection { peer, activity: Arc::clone(&activity) };
        let service = service_fn(move |request: Request<Incoming>| {
            // One writer per connection, so a plain load and store is enough (no locked add).
            let requests = &info.activity.requests;
            requests.store(requests.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            handler(request, &info)
        });
        if let (Some((acceptor, handshake_timeout)), Some(protocols)) = (&tls, &protocols) {
            let handshake = tokio::time::timeout(*handshake_timeout, acceptor.accept(stream));
            let protocols = Arc::clone(protocols);
            // Taken now, so a shutdown that fires during the handshake still reaches the
            // connection once it is served.
            let watcher = graceful.watcher();
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
                    Some(b"h2") => &protocols.h2,
                    Some(_) => &protocols.h1,
                    None => &protocols.detect,
                };
                let connection = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
                let _ = watchdog(connection, &activity).await;
            });
            continue;
        }
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors here are the client's doing (reset, bad request line); hyper has already
            // answered what could be answered.
            let _ = watchdog(connection, &activity).await;
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => crate::warn!("drain timeout reached; closing remaining connections"),
    }
    Ok(())
}
