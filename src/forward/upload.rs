//! A client's request body on its way upstream: bounded by `--max-body-bytes`, and noting when
//! it last moved so that the wait for the MCP server's answer starts when the upload ends.
//! Streamed as it arrives, or, when a policy read it first, the bytes it read, or streamed while
//! a policy checks that it says what the request's `Mcp-*` headers said.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;

use crate::mcp::agreement::Agreement;
use crate::telemetry::metrics::{Limit, MethodLabel, Metrics};

/// A client's request body on its way upstream, noting when it last moved: the wait for the
/// MCP server's answer starts when the upload ends or stalls, so a long upload is not cut off
/// by `--upstream-timeout`. A body that grows past `--max-body-bytes` ends in an error, which
/// makes the client abort the upstream request.
///
/// One pointer wide: hyper's client moves the request through its channel to the connection,
/// and the answer (or the request, given back) through a oneshot, some twenty copies in all;
/// with the body's state inline, each was a copy of over 256 bytes, which costs twice what one
/// under it does (about 500 instructions per request, against one allocation here).
pub struct Upload(Box<Moving>);

/// What an [`Upload`] keeps, behind its one pointer.
struct Moving {
    body: Inbound,
    progress: Arc<Progress>,
    /// Bytes the body may still bring.
    left: u64,
    /// Where a body cut off for its size is counted, whether or not the MCP server had
    /// answered by then.
    metrics: Arc<Metrics>,
}

impl Upload {
    #[inline]
    pub fn new(body: Inbound, progress: Arc<Progress>, left: u64, metrics: Arc<Metrics>) -> Upload {
        Upload(Box::new(Moving { body, progress, left, metrics }))
    }
}

/// A request body as it goes upstream.
pub enum Inbound {
    /// The client's stream, passed on as it arrives (every request without a policy).
    Client(Incoming),
    /// The whole body, read by the policy and sent as one frame; `None` once sent.
    Inspected(Option<Bytes>),
    /// The client's stream, passed on as it arrives while it is checked against the `Mcp-*`
    /// headers the policy decided on (2026-07-28).
    Checked(Box<Checked>),
}

impl From<Incoming> for Inbound {
    fn from(body: Incoming) -> Inbound {
        Inbound::Client(body)
    }
}

/// A body streamed upstream under a check. SECURITY: its last piece is held back until the
/// whole body has been checked, so a body that disagrees ends in an error before the MCP
/// server has all of it: the request it gets is incomplete, whatever its framing, and is
/// abandoned.
pub struct Checked {
    body: Incoming,
    agreement: Agreement,
    /// The announced method's label, counted again should the body disagree.
    label: MethodLabel,
    /// The latest non-empty piece, sent when the next arrives or the check passes.
    held: Option<Bytes>,
    ended: bool,
}

impl Checked {
    pub fn new(body: Incoming, agreement: Agreement, label: MethodLabel) -> Checked {
        Checked { body, agreement, label, held: None, ended: false }
    }

    /// The label of the method the headers announced.
    pub fn label(&self) -> MethodLabel {
        self.label
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, InboundError>>> {
        if self.ended {
            return Poll::Ready(self.held.take().map(|b| Ok(http_body::Frame::data(b))));
        }
        loop {
            let data = match ready!(http_body::Body::poll_frame(Pin::new(&mut self.body), cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    // Trailers carry no operation and are not forwarded.
                    Err(_) => continue,
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(InboundError::Client(e)))),
                None => {
                    self.ended = true;
                    if let Err(e) = self.agreement.finish() {
                        return Poll::Ready(Some(Err(self.refused(e))));
                    }
                    return Poll::Ready(self.held.take().map(|b| Ok(http_body::Frame::data(b))));
                }
            };
            if data.is_empty() {
                continue;
            }
            // The whole body in its first piece (its length reached), as a small one comes:
            // checked whole, at a fraction of the cost of the byte-wise checker, and concluded
            // now, sparing the MCP server's request a round of polling for its end.
            if self.held.is_none() && http_body::Body::is_end_stream(&self.body) {
                self.ended = true;
                if let Err(e) = self.agreement.whole(&data) {
                    return Poll::Ready(Some(Err(self.refused(e))));
                }
                return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
            }
            if let Err(e) = self.agreement.feed(&data) {
                return Poll::Ready(Some(Err(self.refused(e))));
            }
            if let Some(earlier) = self.held.replace(data) {
                return Poll::Ready(Some(Ok(http_body::Frame::data(earlier))));
            }
        }
    }

    fn refused(&mut self, e: crate::mcp::agreement::Disagreement) -> InboundError {
        self.held = None;
        self.ended = true;
        InboundError::Disagrees(Bytes::from(e.answer(self.agreement.id().as_ref())))
    }
}

/// Why a body could not go on.
#[derive(Debug)]
pub enum InboundError {
    /// Reading the client's body failed.
    Client(hyper::Error),
    /// The body disagrees with the headers it was decided on: the JSON-RPC answer to send.
    Disagrees(Bytes),
}

impl http_body::Body for Inbound {
    type Data = Bytes;
    type Error = InboundError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, InboundError>>> {
        match self.get_mut() {
            Inbound::Client(body) => Pin::new(body).poll_frame(cx).map_err(InboundError::Client),
            Inbound::Inspected(bytes) => Poll::Ready(bytes.take().map(|b| Ok(http_body::Frame::data(b)))),
            Inbound::Checked(checked) => checked.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Inbound::Client(body) => body.is_end_stream(),
            Inbound::Inspected(bytes) => bytes.is_none(),
            Inbound::Checked(checked) => checked.ended && checked.held.is_none(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Inbound::Client(body) => body.size_hint(),
            Inbound::Inspected(bytes) => http_body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Inbound::Checked(checked) => checked.body.size_hint(),
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
    /// The body disagrees with the `Mcp-*` headers it was decided on.
    Disagrees,
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadError::Client(e) => write!(f, "reading the client's body: {e}"),
            UploadError::TooLarge => f.write_str("the client's body is over --max-body-bytes"),
            UploadError::Disagrees => f.write_str("the client's body disagrees with its Mcp-* headers"),
        }
    }
}

impl std::error::Error for UploadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UploadError::Client(e) => Some(e),
            UploadError::TooLarge | UploadError::Disagrees => None,
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
    /// The answer to a body that disagreed with its `Mcp-*` headers, set when it did.
    disagreed: OnceLock<Bytes>,
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

    /// The JSON-RPC answer for a body that disagreed with its headers, if one did.
    pub fn disagreed(&self) -> Option<&Bytes> {
        self.disagreed.get()
    }
}

impl http_body::Body for Upload {
    type Data = bytes::Bytes;
    type Error = UploadError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, UploadError>>> {
        let this = &mut *self.get_mut().0;
        let polled = ready!(Pin::new(&mut this.body).poll_frame(cx));
        this.progress.mark();
        Poll::Ready(match polled {
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, |data| data.len() as u64);
                match this.left.checked_sub(len) {
                    Some(left) => {
                        this.left = left;
                        Some(Ok(frame))
                    }
                    None => {
                        this.progress.too_large.store(true, Ordering::Relaxed);
                        this.metrics.limit_hit(Limit::Body);
                        Some(Err(UploadError::TooLarge))
                    }
                }
            }
            Some(Err(InboundError::Client(e))) => Some(Err(UploadError::Client(e))),
            Some(Err(InboundError::Disagrees(answer))) => {
                let _ = this.progress.disagreed.set(answer);
                Some(Err(UploadError::Disagrees))
            }
            None => None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.0.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.body.size_hint()
    }
}
