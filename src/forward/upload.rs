//! A client's request body on its way upstream: bounded by `--max-body-bytes`, and noting when
//! it last moved so that the wait for the MCP server's answer starts when the upload ends.
//! Streamed as it arrives, or, when a policy read it first, the bytes it read.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;

use crate::telemetry::metrics::{Limit, Metrics};

/// A client's request body on its way upstream, noting when it last moved: the wait for the
/// MCP server's answer starts when the upload ends or stalls, so a long upload is not cut off
/// by `--upstream-timeout`. A body that grows past `--max-body-bytes` ends in an error, which
/// makes the client abort the upstream request.
pub struct Upload {
    body: Inbound,
    progress: Arc<Progress>,
    /// Bytes the body may still bring.
    left: u64,
    /// Where a body cut off for its size is counted, whether or not the MCP server had
    /// answered by then.
    metrics: Arc<Metrics>,
}

impl Upload {
    pub fn new(body: Inbound, progress: Arc<Progress>, left: u64, metrics: Arc<Metrics>) -> Upload {
        Upload { body, progress, left, metrics }
    }
}

/// A request body as it goes upstream.
pub enum Inbound {
    /// The client's stream, passed on as it arrives (every request without a policy).
    Client(Incoming),
    /// The whole body, read by the policy and sent as one frame; `None` once sent.
    Inspected(Option<Bytes>),
}

impl http_body::Body for Inbound {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Inbound::Client(body) => Pin::new(body).poll_frame(cx),
            Inbound::Inspected(bytes) => Poll::Ready(bytes.take().map(|b| Ok(http_body::Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Inbound::Client(body) => body.is_end_stream(),
            Inbound::Inspected(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Inbound::Client(body) => body.size_hint(),
            Inbound::Inspected(bytes) => http_body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// Why an upload stopped short.
#[derive(Debug)]
pub enum UploadError {
    /// Reading the client's body failed (it went away, or broke its framing).
    Client(hyper::Error),
    /// The body went past `--max-body-bytes`.
    TooLarge,
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadError::Client(e) => write!(f, "reading the client's body: {e}"),
            UploadError::TooLarge => f.write_str("the client's body is over --max-body-bytes"),
        }
    }
}

impl std::error::Error for UploadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UploadError::Client(e) => Some(e),
            UploadError::TooLarge => None,
        }
    }
}

/// Milliseconds from the start of the exchange to the upload's last frame, and whether the
/// upload was cut off for its size.
#[derive(Default)]
pub struct Progress {
    pub started: Option<Instant>,
    last_ms: AtomicU64,
    pub too_large: AtomicBool,
}

impl Progress {
    /// A fresh record for an exchange starting now.
    pub fn starting() -> Progress {
        Progress { started: Some(Instant::now()), ..Progress::default() }
    }

    fn mark(&self) {
        if let Some(started) = self.started {
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last_ms.store(ms, Ordering::Relaxed);
        }
    }

    pub fn last(&self) -> u64 {
        self.last_ms.load(Ordering::Relaxed)
    }
}

impl http_body::Body for Upload {
    type Data = bytes::Bytes;
    type Error = UploadError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, UploadError>>> {
        let polled = ready!(Pin::new(&mut self.body).poll_frame(cx));
        self.progress.mark();
        Poll::Ready(match polled {
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, |data| data.len() as u64);
                match self.left.checked_sub(len) {
                    Some(left) => {
                        self.left = left;
                        Some(Ok(frame))
                    }
                    None => {
                        self.progress.too_large.store(true, Ordering::Relaxed);
                        self.metrics.limit_hit(Limit::Body);
                        Some(Err(UploadError::TooLarge))
                    }
                }
            }
            Some(Err(e)) => Some(Err(UploadError::Client(e))),
            None => None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
