//! Listeners, connections and graceful shutdown.
//!
//! Each accepted connection is served by hyper-util's auto builder (HTTP/1.1, or HTTP/2 when
//! the client opens with the prior-knowledge preface). On shutdown the listener closes at once
//! and open connections finish their in-flight requests, for at most the drain timeout.

use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::respond::{self, Body};
use crate::State;

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

/// Serves the discovery edge on `listener` until `shutdown`, then drains.
pub async fn run(listener: TcpListener, state: Arc<State>, shutdown: Shutdown, drain: Duration) -> io::Result<()> {
    serve(listener, shutdown, drain, move |request| respond::handle(&state, request)).await
}

/// SECURITY: a connection on which no request arrives for a whole period is closed, which
/// cuts off clients that send headers byte by byte (slowloris) or hold idle keep-alive
/// connections forever. A request head may take at most two periods.
const IDLE_PERIOD: Duration = Duration::from_secs(30);

async fn watchdog<C: std::future::Future>(connection: C, progress: &AtomicU32) -> Option<C::Output> {
    tokio::pin!(connection);
    let start = tokio::time::Instant::now() + IDLE_PERIOD;
    let mut tick = tokio::time::interval_at(start, IDLE_PERIOD);
    let mut seen = 0;
    loop {
        tokio::select! {
            biased;
            done = &mut connection => return Some(done),
            _ = tick.tick() => {
                let now = progress.load(Ordering::Relaxed);
                if now == seen {
                    return None;
                }
                seen = now;
            }
        }
    }
}

/// Accepts connections and answers each request with `handler`, which is synchronous: every
/// answer the edge gives today is ready at once, so the service future is `Ready` and nothing
/// is boxed per request.
pub async fn serve<F>(listener: TcpListener, mut shutdown: Shutdown, drain: Duration, handler: F) -> io::Result<()>
where
    F: Fn(&Request<Incoming>) -> Response<Body> + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No HTTP/1 timer: with one, hyper 1.12 boxes and registers a new header-read timer for
    // every request (an allocation and ~15% of the discovery path's instructions). The
    // per-connection watchdog below bounds slow and idle clients instead.
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
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
        let progress = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&progress);
        let service = service_fn(move |request: Request<Incoming>| {
            // One writer per connection, so a plain load and store is enough (no locked add).
            counted.store(counted.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            std::future::ready(Ok::<_, Infallible>(handler(&request)))
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors here are the client's doing (reset, bad request line); hyper has already
            // answered what could be answered.
            let _ = watchdog(connection, &progress).await;
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => crate::warn!("drain timeout reached; closing remaining connections"),
    }
    Ok(())
}
