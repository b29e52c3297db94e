//! The client for the MCP server: connections of our own for `http://`, hyper-util's pooled
//! client for `https://`.

use std::sync::Arc;
use std::time::Duration;

use http::header;
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use crate::common::client::{https_client, https_client_exact};
use crate::config::Upstream;
use crate::forward::pool::{self, Pool, Reads, UpstreamBody};
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

    /// Sends `request`, its URI in origin-form, to `upstream` on a connection for `exchange`;
    /// the response head, or why not.
    pub async fn send(
        &self,
        upstream: &Upstream,
        mut request: Request<Upload>,
        exchange: Exchange,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        match self {
            UpstreamClient::Plain { calls, held } => {
                let pool = if exchange == Exchange::Held { held } else { calls };
                pool.send(request).await.map_err(UpstreamError::Pool)
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
                let response = client.request(request).await.map_err(UpstreamError::Client)?;
                Ok(response.map(UpstreamBody::unpooled))
            }
        }
    }
}
