//! The body of every response on the main listener: bytes the edge holds, or the MCP server's
//! stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::Full;

use crate::common::activity::Streaming;
use crate::forward::expiry::{Expiring, StreamError};
use crate::forward::lists::Listed;
use crate::forward::pool::UpstreamBody;

pub enum Body {
    Full(Full<Bytes>),
    /// A forwarded response, streamed as it arrives. The guard tells the connection's idle
    /// watchdog that a response is still flowing.
    Upstream(UpstreamBody, Streaming),
    /// A forwarded stream that ends when the token that opened it expires, or, an event
    /// stream, between two events at shutdown.
    Expiring(Box<Expiring>),
    /// The answer to a list request, filtered by the resource's policy (around one of the others).
    Listed(Box<Listed<Body>>),
}

impl Body {
    pub fn full(bytes: Bytes) -> Body {
        Body::Full(Full::new(bytes))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = StreamError;

    #[inline]
    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        match self.get_mut() {
            Body::Full(full) => Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            Body::Upstream(body, _) => Pin::new(body).poll_frame(cx).map_err(StreamError::Upstream),
            Body::Expiring(body) => body.poll_frame(cx),
            Body::Listed(body) => Pin::new(&mut **body).poll_frame(cx),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(full) => full.is_end_stream(),
            Body::Upstream(body, _) => body.is_end_stream(),
            Body::Expiring(body) => body.is_end_stream(),
            Body::Listed(body) => body.is_end_stream(),
        }
    }

    #[inline]
    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Body::Full(full) => full.size_hint(),
            Body::Upstream(body, _) => body.size_hint(),
            Body::Expiring(body) => body.size_hint(),
            Body::Listed(body) => body.size_hint(),
        }
    }
}
