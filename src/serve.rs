//! Listeners, connections and graceful shutdown.
//!
//! Each accepted connection is served by hyper-util's auto builder (HTTP/1.1, or HTTP/2 when
//! the client opens with the prior-knowledge preface). On shutdown the listener closes at once
//! and open connections finish their in-flight requests, for at most the drain timeout.

use std::convert::Infallible;
use std::io;
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

/// Accepts connections and answers each request with `handler`, which is synchronous: every
/// answer the edge gives today is ready at once, so the service future is `Ready` and nothing
/// is boxed per request.
pub async fn serve<F>(listener: TcpListener, mut shutdown: Shutdown, drain: Duration, handler: F) -> io::Result<()>
where
    F: Fn(&Request<Incoming>) -> Response<Body> + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
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
        let service =
            service_fn(move |request: Request<Incoming>| std::future::ready(Ok::<_, Infallible>(handler(&request))));
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors here are the client's doing (reset, bad request line); hyper has already
            // answered what could be answered.
            let _ = connection.await;
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => crate::warn!("drain timeout reached; closing remaining connections"),
    }
    Ok(())
}
