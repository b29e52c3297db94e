//! The client for the MCP server: connections of our own for `http://`, hyper-util's pooled
//! client for `https://`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};

use crate::common::client::{https_client, https_client_exact};
use crate::config::Upstream;
use crate::forward::pool::{self, Pool, Reads, Taken, Tried, UpstreamBody};
use crate::forward::upload::Upload;

/// The read buffer of an upstream HTTP/1.1 connection that carries a held stream, an eighth of
/// hyper's 8 KiB. It also bounds the answer's head (one larger fails the request: `502`), as
/// nginx's 4 KiB `proxy_buffer_size` bounds its own; an event stream's head is a few hundred
/// bytes. 2 KiB held 1 to 2 KiB more per stream (28.4 KiB over HTTP/1.1, 18.1 over h2c, 4,000
/// streams).
pub const STREAM_READ_BUF: usize = 1024;

/// What an exchange with the MCP server is expected to be, from the request alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// A call answered at once (one JSON answer, or a short event stream).
    Call,
    /// A stream the client holds open for as long as it runs: a `GET` for events (2025-11-25)
    /// or `subscriptions/listen` (2026-07-28).
    Held,
}

type Https = Client<hyper_rustls::HttpsConnector<HttpConnector>, Upload>;

/// The client for the MCP server: one set of connections for calls, another for held streams,
/// whose connections read through a small buffer since they mostly wait.
pub enum UpstreamClient {
    /// `http://`: HTTP/1.1 connections of our own, cheaper per request than hyper-util's.
    Plain { calls: Arc<Pool>, held: Arc<Pool> },
    /// `https://`: hyper-util's pooled client, which speaks HTTP/2 when ALPN picks it (boxed:
    /// it is many times the size of the other).
    Tls { calls: Box<Https>, held: Box<Https> },
}

/// Why the MCP server gave no response head.
#[derive(Debug)]
pub enum UpstreamError {
    Pool(pool::Error),
    Client(hyper_util::client::legacy::Error),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Pool(e) => write!(f, "{e}"),
            UpstreamError::Client(e) => write!(f, "{e}"),
        }
    }
}

impl UpstreamClient {
    pub fn new(upstream: &Upstream, connect_timeout: Duration) -> UpstreamClient {
        if upstream.scheme == http::uri::Scheme::HTTP {
            UpstreamClient::Plain {
                calls: Pool::new(&upstream.authority, connect_timeout, Reads::Adaptive),
                held: Pool::new(&upstream.authority, connect_timeout, Reads::Exact(STREAM_READ_BUF)),
            }
        } else {
            UpstreamClient::Tls {
                calls: Box::new(https_client(connect_timeout)),
                held: Box::new(https_client_exact(connect_timeout, STREAM_READ_BUF)),
            }
        }
    }

    /// The `Host` field requests to an `http://` MCP server carry, which [`UpstreamClient::send`]
    /// sets; the `https://` client sets its own.
    pub fn host(&self) -> Option<&HeaderValue> {
        match self {
            UpstreamClient::Plain { calls, .. } => Some(calls.host()),
            UpstreamClient::Tls { .. } => None,
        }
    }

    /// Sends `request`, its URI in origin-form, to `upstream` on a connection for `exchange`;
    /// `host_set`: the caller put [`UpstreamClient::host`] in the place of the client's `Host`.
    /// On an idle pooled connection the request is handed to it now and the future only waits
    /// for the answer's head; a new connection, and the `https://` client, are boxed, so that the
    /// common case's future stays small.
    /// `now`: the caller's clock reading, for the pool's idle connections. Inlined into the
    /// caller, so that the request is not copied once more as an argument.
    #[inline(always)]
    pub fn send(
        &self,
        upstream: &Upstream,
        mut request: Request<Upload>,
        exchange: Exchange,
        host_set: bool,
        now: Instant,
    ) -> Sending<impl Future<Output = Tried> + Send> {
        match self {
            UpstreamClient::Plain { calls, held } => {
                let pool = if exchange == Exchange::Held { held } else { calls };
                match pool.send_idle(request, host_set, now) {
                    Taken::Sent { answer, sender } => {
                        Sending::Idle { answer, sender: Some(sender), pool: Arc::clone(pool) }
                    }
                    Taken::NoneIdle(request) => Sending::new_connection(Arc::clone(pool), request),
                }
            }
            UpstreamClient::Tls { calls, held } => {
                let client = if exchange == Exchange::Held { held } else { calls };
                // hyper-util's client takes the absolute form and sets `Host` from it, when
                // the request has none (the pool replaces the client's instead).
                request.headers_mut().remove(header::HOST);
                let path = request.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
                let uri = Uri::builder()
                    .scheme(upstream.scheme.clone())
                    .authority(upstream.authority.clone())
                    .path_and_query(path)
                    .build();
                // Scheme, authority and path were each parsed already.
                if let Ok(uri) = uri {
                    *request.uri_mut() = uri;
                }
                Sending::Tls { future: client.request(request) }
            }
        }
    }
}

/// What [`Sending`] gives: the answer's head, or why there is none.
pub type Sent = Result<Response<UpstreamBody>, UpstreamError>;

pin_project_lite::pin_project! {
    /// A request on its way to the MCP server, until its answer's head. Dropping it drops the
    /// request, and the connection it is on.
    #[project = SendingProj]
    pub enum Sending<F> {
        /// On an idle pooled connection: hyper's wait for the answer, held in place.
        Idle { #[pin] answer: F, sender: Option<SendRequest<Upload>>, pool: Arc<Pool> },
        /// On a new connection (boxed: connecting is a large future, and rare).
        New { future: Pin<Box<dyn Future<Output = Sent> + Send>> },
        /// Through hyper-util's client (`https://`), whose future is boxed already.
        Tls { future: ResponseFuture },
    }
}

impl<F> Sending<F> {
    fn new_connection(pool: Arc<Pool>, request: Request<Upload>) -> Sending<F> {
        Sending::New { future: Box::pin(async move { pool.send_new(request).await.map_err(UpstreamError::Pool) }) }
    }
}

impl<F> Future for Sending<F>
where
    F: Future<Output = Tried>,
{
    type Output = Sent;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Sent> {
        let unsent = match self.as_mut().project() {
            SendingProj::New { future } => return future.as_mut().poll(cx),
            SendingProj::Tls { future } => {
                let response = ready!(Pin::new(future).poll(cx)).map_err(UpstreamError::Client)?;
                return Poll::Ready(Ok(response.map(UpstreamBody::unpooled)));
            }
            SendingProj::Idle { answer, sender, pool } => match ready!(answer.poll(cx)) {
                Ok(response) => return Poll::Ready(Ok(pool.attach(response, sender.take()))),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => (Arc::clone(pool), unsent),
                    None => return Poll::Ready(Err(UpstreamError::Pool(pool::Error::Http(e.into_error())))),
                },
            },
        };
        // An idle connection the MCP server closed just as it was taken hands the request
        // back unsent; it then goes on a new connection, as hyper-util's client does.
        self.set(Sending::new_connection(unsent.0, unsent.1));
        self.poll(cx)
    }
}
