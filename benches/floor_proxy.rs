//! The bare hyper forwarding floor (`hyper-floor proxy ADDR UPSTREAM`): what hyper itself costs
//! to pass one HTTP/1.1 request to an MCP server and stream its answer back, with nothing of
//! the edge's around it: no token check, no header rewrite, no request id, no log, no metrics.
//! `benches/callgrind.sh` counts it as the `hfwd` kind beside the edge's `fwd` and nginx's
//! `ngx`, so the forwarding bar can be read against what hyper leaves to spend.
//!
//! It is written the way the hyper guides write a proxy, and leaner than a general one where
//! that costs nothing here: each client connection owns one upstream connection (opened at its
//! first request, kept for the next, since HTTP/1.1 requests on one connection come one at a
//! time), so there is no pool; the upstream connection runs in a task of its own, as hyper's
//! documentation spawns it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Answer = Response<BoxBody<Bytes, hyper::Error>>;

/// Serves every connection accepted from `listener` by forwarding its requests to `upstream`,
/// until the task running this future is dropped.
pub async fn serve(listener: TcpListener, upstream: SocketAddr) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            // The client connection's upstream connection, idle between its requests.
            let idle: Arc<Mutex<Option<SendRequest<Incoming>>>> = Arc::new(Mutex::new(None));
            let service = service_fn(move |request| forward(Arc::clone(&idle), upstream, request));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn forward(
    idle: Arc<Mutex<Option<SendRequest<Incoming>>>>,
    upstream: SocketAddr,
    request: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let taken = idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    let sender = match taken {
        Some(sender) => Ok(sender),
        None => connect(upstream).await,
    };
    let Ok(mut sender) = sender else { return Ok(bad_gateway()) };
    if sender.ready().await.is_err() {
        return Ok(bad_gateway());
    }
    match sender.send_request(request).await {
        Ok(response) => {
            *idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(sender);
            Ok(response.map(BodyExt::boxed))
        }
        Err(_) => Ok(bad_gateway()),
    }
}

async fn connect(upstream: SocketAddr) -> Result<SendRequest<Incoming>, ()> {
    let stream = TcpStream::connect(upstream).await.map_err(drop)?;
    stream.set_nodelay(true).map_err(drop)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(drop)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn bad_gateway() -> Answer {
    let mut answer = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *answer.status_mut() = StatusCode::BAD_GATEWAY;
    answer
}
