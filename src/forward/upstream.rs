//! The client for the MCP server: connections of our own for `http://`, hyper-util's pooled
//! client for `https://`.

use std::sync::Arc;
use std::time::Duration;

use http::header;
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use crate::common::client::https_client;
use crate::config::Upstream;
use crate::forward::pool::{self, Pool, UpstreamBody};
use crate::forward::upload::Upload;

/// The client for the MCP server.
pub enum UpstreamClient {
    /// `http://`: HTTP/1.1 connections of our own, cheaper per request than hyper-util's.
    Plain(Arc<Pool>),
    /// `https://`: hyper-util's pooled client, which speaks HTTP/2 when ALPN picks it (boxed:
    /// it is many times the size of the other).
    Tls(Box<Client<hyper_rustls::HttpsConnector<HttpConnector>, Upload>>),
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
            UpstreamClient::Plain(Pool::new(&upstream.authority, connect_timeout))
        } else {
            UpstreamClient::Tls(Box::new(https_client(connect_timeout)))
        }
    }

    /// Sends `request`, its URI in origin-form, to `upstream`; the response head, or why not.
    pub async fn send(
        &self,
        upstream: &Upstream,
        mut request: Request<Upload>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        match self {
            UpstreamClient::Plain(pool) => pool.send(request).await.map_err(UpstreamError::Pool),
            UpstreamClient::Tls(client) => {
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
