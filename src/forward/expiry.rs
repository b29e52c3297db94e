//! Streams end with their token: a forwarded response that streams (server-sent events, or a
//! body of unknown length) ends when the token that opened it expires, `exp` plus the leeway,
//! or, in introspection mode, when the authorization server asked again no longer vouches for
//! it; so a client cannot keep a stream going on a token it could no longer open one with. An
//! event stream ends cleanly between two events, so the client reconnects with a fresh token;
//! any other body breaks off, so it is never taken for complete. At shutdown an event stream
//! ends the same way, between two events, so that its client reconnects to another replica.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http_body::Frame;

use crate::common::activity::Streaming;
use crate::forward::pool::UpstreamBody;
use crate::telemetry::metrics::Metrics;

/// Where an event stream stands between events. An event ends at an empty line, and a line
/// ends at CRLF, LF or CR (the HTML standard's `text/event-stream` grammar), so a CRLF split
/// across two chunks is one line end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boundary {
    /// At the start of a line: the last byte ended one (or nothing came yet).
    line_start: bool,
    /// The last line was empty: an event (or the stream's start) ended there.
    event_end: bool,
    /// The last byte was CR, so an LF now belongs to the same line end.
    after_cr: bool,
}

impl Default for Boundary {
    fn default() -> Boundary {
        Boundary { line_start: true, event_end: true, after_cr: false }
    }
}

impl Boundary {
    /// Takes the next bytes of the stream into account.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    self.event_end = self.line_start;
                    self.line_start = true;
                    self.after_cr = b == b'\r';
                }
                _ => *self = Boundary { line_start: false, event_end: false, after_cr: false },
            }
        }
    }

    /// Whether the stream could end here without cutting an event.
    pub fn between_events(&self) -> bool {
        self.event_end
    }
}

/// How a response streams, when it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streams {
    /// `text/event-stream`: ended between events.
    Events,
    /// A body of unknown length: broken off.
    Other,
}

/// Whether a response streams: a body whose length is not known, an event stream or other. A
/// body of known length ends by itself (and the common JSON answer costs no header lookup).
pub fn streams(headers: &HeaderMap, exact_length: Option<u64>) -> Option<Streams> {
    if exact_length.is_some() {
        return None;
    }
    let events = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().get(..17).is_some_and(|t| t.eq_ignore_ascii_case(b"text/event-stream")));
    Some(if events { Streams::Events } else { Streams::Other })
}

/// How long from now until a token that expires at `expires_at` (Unix seconds) is past the
/// leeway; `None` when it never expires (an introspection answer without `exp`).
pub fn time_left(expires_at: u64, leeway: Duration, now: SystemTime) -> Option<Duration> {
    if expires_at == u64::MAX {
        return None;
    }
    let end = UNIX_EPOCH + Duration::from_secs(expires_at) + leeway;
    Some(end.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A streaming response that ends with its token, or, an event stream, at shutdown.
pub struct Expiring {
    body: UpstreamBody,
    streaming: Streaming,
    /// An event stream's wait for its connection to drain; made when first polled.
    drained: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// `exp` plus the leeway; `None` for a token without `exp`.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The periodic question to the authorization server, in introspection mode.
    revocation: Option<Revocation>,
    kind: Streams,
    boundary: Boundary,
    /// Why the stream is ending, once it is.
    ending: Option<Ending>,
    metrics: Arc<Metrics>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Expired,
    Revoked,
    /// Shutdown: the connection drains.
    Drained,
}

/// A task asking, every so often, whether a stream's token still holds; it wakes the stream
/// when it no longer does, and stops with the stream.
pub struct Revocation {
    refused: Pin<Box<tokio::sync::futures::OwnedNotified>>,
    task: tokio::task::AbortHandle,
}

impl Revocation {
    /// Asks `still_good` every `every`; the first `false` ends the stream.
    pub fn watch<F, Fut>(every: Duration, still_good: F) -> Revocation
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let notify = Arc::new(tokio::sync::Notify::new());
        let refused = Box::pin(Arc::clone(&notify).notified_owned());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if !still_good().await {
                    notify.notify_one();
                    return;
                }
            }
        });
        Revocation { refused, task: task.abort_handle() }
    }
}

impl Drop for Revocation {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a streamed body stopped early.
#[derive(Debug)]
pub enum StreamError {
    Upstream(hyper::Error),
    /// The token expired, or was revoked, while a body of unknown length was still coming.
    Expired,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Upstream(e) => write!(f, "the MCP server's answer broke off: {e}"),
            StreamError::Expired => f.write_str("the token that opened this stream no longer holds"),
        }
    }
}

impl std::error::Error for StreamError {}

impl Expiring {
    /// `left`: until the token's `exp` plus the leeway (`None`: it has none).
    pub fn new(
        body: UpstreamBody,
        streaming: Streaming,
        kind: Streams,
        left: Option<Duration>,
        revocation: Option<Revocation>,
        metrics: Arc<Metrics>,
    ) -> Expiring {
        let deadline = left.map(|left| Box::pin(tokio::time::sleep_until((Instant::now() + left).into())));
        let boundary = Boundary::default();
        Expiring { body, streaming, drained: None, deadline, revocation, kind, boundary, ending: None, metrics }
    }

    /// Whether shutdown asked this event stream to end (a stream of another kind runs on until
    /// it ends or the drain timeout).
    fn draining(&mut self, cx: &mut Context<'_>) -> bool {
        if self.kind != Streams::Events {
            return false;
        }
        let streaming = &self.streaming;
        let drained = self.drained.get_or_insert_with(|| Box::pin(streaming.drained()));
        drained.as_mut().poll(cx).is_ready()
    }

    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        if self.ending.is_none() {
            if self.deadline.as_mut().is_some_and(|d| d.as_mut().poll(cx).is_ready()) {
                self.ending = Some(Ending::Expired);
            } else if self.revocation.as_mut().is_some_and(|r| r.refused.as_mut().poll(cx).is_ready()) {
                self.ending = Some(Ending::Revoked);
            } else if self.draining(cx) {
                self.ending = Some(Ending::Drained);
            }
        }
        if let Some(ending) = self.ending {
            let count = || match ending {
                Ending::Expired => self.metrics.stream_expired(),
                Ending::Revoked => self.metrics.stream_revoked(),
                Ending::Drained => {}
            };
            match self.kind {
                Streams::Events if self.boundary.between_events() => {
                    count();
                    return Poll::Ready(None);
                }
                Streams::Other => {
                    count();
                    return Poll::Ready(Some(Err(StreamError::Expired)));
                }
                // Mid-event: the rest of the event passes, then the stream ends.
                Streams::Events => {}
            }
        }
        let frame = ready!(http_body::Body::poll_frame(Pin::new(&mut self.body), cx));
        if let (Some(Ok(frame)), Streams::Events) = (&frame, self.kind) {
            if let Some(data) = frame.data_ref() {
                self.boundary.feed(data);
            }
        }
        Poll::Ready(frame.map(|f| f.map_err(StreamError::Upstream)))
    }

    pub fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.body)
    }

    pub fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(chunks: &[&[u8]]) -> bool {
        let mut b = Boundary::default();
        chunks.iter().for_each(|c| b.feed(c));
        b.between_events()
    }

    #[test]
    fn events_end_at_an_empty_line_whatever_the_line_ends() {
        assert!(fed(&[]), "nothing sent yet");
        assert!(fed(&[b"data: a\n\n"]) && fed(&[b"data: a\r\n\r\n"]) && fed(&[b"data: a\r\r"]));
        assert!(fed(&[b"data: a\n", b"\n"]) && fed(&[b"data: a\r", b"\n\r", b"\n"]) && fed(&[b"data: a\n\r\n"]));
        assert!(fed(&[b": keep-alive\n\n"]), "a comment is an event's worth of lines too");
        assert!(!fed(&[b"data: a\n"]) && !fed(&[b"data: a\r\n"]) && !fed(&[b"data: a"]) && !fed(&[b"data: a\n\ndata"]));
        assert!(!fed(&[b"data: a\r", b"\n"]), "CRLF split over chunks is one line end");
        assert!(!fed(&[b"id: 1\nevent: x\n"]));
    }

    #[test]
    fn which_responses_stream_and_for_how_long() {
        let mut h = HeaderMap::new();
        assert_eq!(streams(&h, Some(10)), None);
        assert_eq!(streams(&h, None), Some(Streams::Other));
        h.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("Text/Event-Stream; charset=utf-8"));
        assert_eq!(streams(&h, None), Some(Streams::Events));
        assert_eq!(streams(&h, Some(10)), None, "a known length ends by itself");
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(time_left(1_010, Duration::from_secs(60), now), Some(Duration::from_secs(70)));
        assert_eq!(time_left(900, Duration::from_secs(60), now), Some(Duration::ZERO));
        assert_eq!(time_left(u64::MAX, Duration::from_secs(60), now), None);
    }
}
