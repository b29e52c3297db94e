//! The one outbound HTTP client (metadata, key sets, introspection, an `https` MCP server), and
//! the one bounded exchange with an authorization server: a time limit on the whole of it and
//! a size limit on the body.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// hyper-util's pooled client over http and https.
pub type HttpsClient<B> = Client<hyper_rustls::HttpsConnector<HttpConnector>, B>;

/// Builds the HTTP client used for upstream calls: http and https (with the bundled Mozilla
/// roots, so a minimal container image needs no CA store), HTTP/1.1 and HTTP/2 by ALPN.
pub fn https_client<B>(connect_timeout: Duration) -> HttpsClient<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new()).build(https_connector(connect_timeout))
}

/// The same client, its HTTP/1.1 connections reading through a buffer of `read_buf` bytes
/// rather than hyper's 8 KiB, which also bounds an answer's head: for connections that mostly
/// wait, such as held event streams.
pub fn https_client_exact<B>(connect_timeout: Duration, read_buf: usize) -> HttpsClient<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new()).http1_read_buf_exact_size(read_buf).build(https_connector(connect_timeout))
}

fn https_connector(connect_timeout: Duration) -> hyper_rustls::HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http)
}

/// Why a bounded exchange brought no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchFailure {
    /// No response head: the connection or the request failed (the causes, on one line).
    Connect(String),
    /// No complete answer within the time limit.
    Timeout(Duration),
    /// The body is (or says it is) larger than the size limit.
    TooLarge(usize),
    /// Reading the body failed.
    Body(String),
}

impl fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchFailure::Connect(reason) => write!(f, "cannot connect ({reason})"),
            FetchFailure::Timeout(after) => write!(f, "no complete answer within {after:?}"),
            FetchFailure::TooLarge(limit) => write!(f, "answer larger than {limit} bytes"),
            FetchFailure::Body(reason) => write!(f, "reading the body failed ({reason})"),
        }
    }
}

impl std::error::Error for FetchFailure {}

/// Sends `request` and reads the answer's body, up to `max_bytes`, all within `timeout`. The
/// body of an answer whose status `wanted` refuses is not read (the status is the answer).
pub async fn fetch<B>(
    client: &HttpsClient<B>,
    request: Request<B>,
    timeout: Duration,
    max_bytes: usize,
    wanted: impl FnOnce(StatusCode) -> bool,
) -> Result<(StatusCode, Bytes), FetchFailure>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let exchange = async {
        let response = client.request(request).await.map_err(|e| FetchFailure::Connect(error_chain(&e)))?;
        let status = response.status();
        if !wanted(status) {
            return Ok((status, Bytes::new()));
        }
        if let Some(len) = response.headers().get(header::CONTENT_LENGTH) {
            if len.to_str().ok().and_then(|l| l.parse::<u64>().ok()).is_some_and(|l| l > max_bytes as u64) {
                return Err(FetchFailure::TooLarge(max_bytes));
            }
        }
        match Limited::new(response.into_body(), max_bytes).collect().await {
            Ok(collected) => Ok((status, collected.to_bytes())),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(FetchFailure::TooLarge(max_bytes)),
            Err(e) => Err(FetchFailure::Body(e.to_string())),
        }
    };
    tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(FetchFailure::Timeout(timeout)))
}

/// An error and its causes on one line: hyper's outer errors ("client error (Connect)") say
/// little without the inner ones.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        out.push_str(": ");
        out.push_str(&inner.to_string());
        source = inner.source();
    }
    out
}
