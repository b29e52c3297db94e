//! The MCP server's answer to a request that asked for lists (`tools/list`, `prompts/list`,
//! `resources/list`) on a resource with a policy: filtered by what the caller may use
//! ([`crate::mcp::lists`]), and marked private to it.
//!
//! A JSON answer is read whole, up to `--max-inspect-bytes`, and sent as the MCP server's bytes
//! when nothing is removed. An event stream flows as it arrives, each event held only until it
//! is complete. SECURITY: what cannot be filtered (larger than the bound, compressed, of another
//! media type, unreadable) is answered with a JSON-RPC error for the lists, never passed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};

use crate::config::policy::Policy;
use crate::gate::jwt::Claims as TokenClaims;
use crate::mcp::decide::{self, Claims, NoClaims, Verdict};
use crate::mcp::lists::{self, EventFilter, Filtered, Lists, Permits, Unfilterable};
use crate::mcp::Call;

/// What the caller may use, as the policy decides it for the caller's token; with the lists
/// its answer must be filtered for.
pub struct Lister {
    pub policy: Arc<Policy>,
    pub claims: Option<Arc<TokenClaims>>,
    /// The resource's required scopes (what the policy's default of allow needs).
    pub required: Arc<[String]>,
    pub lists: Lists,
    /// `--max-inspect-bytes`: the largest JSON answer, or event, read.
    pub bound: u64,
    /// How long the MCP server's JSON answer may pause.
    pub stall: Duration,
}

impl Permits for Lister {
    fn permits(&self, call: Call<'_>) -> bool {
        let (held, payload): (&[String], &dyn Claims) = match &self.claims {
            Some(c) => (&c.scopes, &c.payload),
            None => (&[], &NoClaims),
        };
        matches!(decide::decide(&self.policy, call, held, payload, &self.required), Verdict::Allow { .. })
    }
}

/// The body of a list request's answer.
pub enum Listed<B> {
    /// Not a success: no list in it, passed as it came.
    Passed(B),
    /// A JSON answer, as read (nothing removed) or filtered, or the lists' errors.
    Full(Full<Bytes>),
    /// An event stream, filtered event by event.
    Events(Box<Events<B>>),
}

/// An event stream being filtered.
pub struct Events<B> {
    inner: B,
    filter: EventFilter,
    lister: Lister,
    done: bool,
}

/// Filters `response`, the MCP server's answer to a request that asked for the lists `lister`
/// holds.
pub async fn answer<B>(response: Response<B>, lister: Lister) -> Response<Listed<B>>
where
    B: Body<Data = Bytes> + Unpin,
{
    let (mut parts, body) = response.into_parts();
    if !parts.status.is_success() || parts.status == StatusCode::ACCEPTED || parts.status == StatusCode::NO_CONTENT {
        return Response::from_parts(parts, Listed::Passed(body));
    }
    // The entries given depend on the caller's token, whether or not any were removed this time.
    mark_private(&mut parts.headers);
    let encoded =
        parts.headers.get(header::CONTENT_ENCODING).is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let bytes = match media_type(&parts.headers) {
        _ if encoded => Bytes::from(lister.lists.errors(&Unfilterable::Opaque)),
        Media::EventStream => {
            parts.headers.remove(header::CONTENT_LENGTH);
            let filter = EventFilter::new(lister.lists.clone(), lister.bound);
            let events = Events { inner: body, filter, lister, done: false };
            return Response::from_parts(parts, Listed::Events(Box::new(events)));
        }
        Media::Json => match read(body, lister.bound, lister.stall).await {
            Ok(bytes) => match std::str::from_utf8(&bytes).map(|text| lists::filter(text, &lister.lists, &lister)) {
                Ok(Ok(Filtered::Unchanged)) => bytes,
                Ok(Ok(Filtered::Rewritten(out))) => Bytes::from(out),
                Ok(Err(reason)) => Bytes::from(lister.lists.errors(&reason)),
                Err(_) => Bytes::from(lister.lists.errors(&Unfilterable::Unreadable)),
            },
            Err(reason) => Bytes::from(lister.lists.errors(&reason)),
        },
        Media::Other => Bytes::from(lister.lists.errors(&Unfilterable::Opaque)),
    };
    let h = &mut parts.headers;
    if encoded || !matches!(media_type(h), Media::Json) {
        h.remove(header::CONTENT_ENCODING);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    h.remove(header::TRANSFER_ENCODING);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Response::from_parts(parts, Listed::Full(Full::new(bytes)))
}

enum Media {
    Json,
    EventStream,
    Other,
}

/// The answer's media type, parameters aside (RFC 9110 §8.3.1: case-insensitive).
fn media_type(headers: &HeaderMap) -> Media {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Media::Other };
    let essence = value.as_bytes().split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
    if essence.eq_ignore_ascii_case(b"application/json") {
        Media::Json
    } else if essence.eq_ignore_ascii_case(b"text/event-stream") {
        Media::EventStream
    } else {
        Media::Other
    }
}

/// `Cache-Control: private` (unless the MCP server said `private` or `no-store` already; its
/// other directives are kept, `public` and `s-maxage` dropped) and `Vary: Authorization`.
pub fn mark_private(h: &mut HeaderMap) {
    let mut directives: Vec<String> = Vec::new();
    for value in h.get_all(header::CACHE_CONTROL) {
        for d in value.to_str().unwrap_or_default().split(',').map(str::trim).filter(|d| !d.is_empty()) {
            directives.push(d.to_string());
        }
    }
    let name = |d: &str| d.split('=').next().unwrap_or_default().trim().to_ascii_lowercase();
    if !directives.iter().any(|d| matches!(name(d).as_str(), "private" | "no-store")) {
        directives.retain(|d| !matches!(name(d).as_str(), "public" | "s-maxage"));
        directives.insert(0, "private".to_string());
        let value = HeaderValue::try_from(directives.join(", ")).unwrap_or(HeaderValue::from_static("private"));
        h.insert(header::CACHE_CONTROL, value);
    }
    let varies = h.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .unwrap_or_default()
            .split(',')
            .any(|f| f.trim() == "*" || f.trim().eq_ignore_ascii_case("authorization"))
    });
    if !varies {
        h.append(header::VARY, HeaderValue::from_static("Authorization"));
    }
}

/// Reads a JSON answer whole, up to `limit` bytes, each pause at most `stall`.
async fn read<B: Body<Data = Bytes> + Unpin>(mut body: B, limit: u64, stall: Duration) -> Result<Bytes, Unfilterable> {
    if body.size_hint().lower() > limit {
        return Err(Unfilterable::TooLarge { bound: limit });
    }
    let mut out = BytesMut::with_capacity(body.size_hint().lower() as usize);
    loop {
        match tokio::time::timeout(stall, body.frame()).await {
            Err(_) | Ok(Some(Err(_))) => return Err(Unfilterable::Unreadable),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if (out.len() + data.len()) as u64 > limit {
                        return Err(Unfilterable::TooLarge { bound: limit });
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

impl<B> Body for Listed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.get_mut() {
            Listed::Passed(body) => Pin::new(body).poll_frame(cx),
            Listed::Full(full) => Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            Listed::Events(events) => events.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Listed::Passed(body) => body.is_end_stream(),
            Listed::Full(full) => full.is_end_stream(),
            Listed::Events(events) => events.done || events.filter.ended(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Listed::Passed(body) => body.size_hint(),
            Listed::Full(full) => full.size_hint(),
            Listed::Events(_) => SizeHint::default(),
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Events<B> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        loop {
            if self.done || self.filter.ended() {
                return Poll::Ready(None);
            }
            let mut out = Vec::new();
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers carry no event; an event stream has none to keep.
                    if let Ok(data) = frame.into_data() {
                        self.filter.push(&data, &self.lister, &mut out);
                    }
                }
                Poll::Ready(None) => {
                    self.done = true;
                    self.filter.finish(&self.lister, &mut out);
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(values: &[(&'static str, &'static str)]) -> (Vec<String>, Vec<String>) {
        let mut h = HeaderMap::new();
        for (name, value) in values {
            h.append(*name, HeaderValue::from_static(value));
        }
        mark_private(&mut h);
        let all = |name| h.get_all(name).iter().map(|v| v.to_str().unwrap().to_string()).collect();
        (all(header::CACHE_CONTROL), all(header::VARY))
    }

    #[test]
    fn answers_are_marked_private_to_the_caller() {
        assert_eq!(marked(&[]), (vec!["private".into()], vec!["Authorization".into()]));
        assert_eq!(
            marked(&[("cache-control", "public, max-age=60, s-maxage=600"), ("vary", "accept")]),
            (vec!["private, max-age=60".into()], vec!["accept".into(), "Authorization".into()])
        );
        assert_eq!(marked(&[("cache-control", "no-cache")]).0, ["private, no-cache"]);
        assert_eq!(marked(&[("cache-control", "no-store")]).0, ["no-store"]);
        assert_eq!(marked(&[("vary", "Accept, authorization")]).1, ["Accept, authorization"]);
        assert_eq!(marked(&[("vary", "*")]).1, ["*"]);
    }
}
