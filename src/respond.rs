//! Responses, built from the snapshots and from header values made at start-up.
//!
//! Nothing here formats or allocates per request beyond the response's own header map: bodies
//! are `Bytes` (static or reference-counted) and header values are static or cloned handles.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::Full;

use crate::conditional::if_none_match;
use crate::gate::{self, Credential};
use crate::route::{self, Route};
use crate::serve::Streaming;
use crate::snapshot::Document;
use crate::State;

/// The response body of every listener: bytes the edge holds, or the upstream's stream.
pub enum Body {
    Full(Full<Bytes>),
    /// A forwarded response, streamed as it arrives. The guard tells the connection's idle
    /// watchdog that a response is still flowing.
    Upstream(crate::pool::Answer, Streaming),
}

impl Body {
    pub fn full(bytes: Bytes) -> Body {
        Body::Full(Full::new(bytes))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Body::Full(full) => Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            Body::Upstream(body, _) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(full) => full.is_end_stream(),
            Body::Upstream(body, _) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Body::Full(full) => full.size_hint(),
            Body::Upstream(body, _) => body.size_hint(),
        }
    }
}

/// What the edge does with a request: answer it here, or forward it past the gate.
pub enum Decision {
    /// The edge's own answer, and the route it was given on (for counting and logging).
    Answer(Response<Body>, Route),
    /// Past the gate.
    Forward(Pass),
}

/// A request the gate lets through: to which resource, and where its bearer token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pass {
    /// The resource's index in [`State::resources`].
    pub index: usize,
    /// The token's place in the `Authorization` value ([`gate::span`]).
    pub token: std::ops::Range<usize>,
}

/// The service future: ready at once for everything the edge answers itself (no boxing on
/// the discovery path), boxed only for requests forwarded upstream.
pub enum Reply {
    Ready(Option<Response<Body>>),
    Forward(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl Future for Reply {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            // hyper polls a service future to completion once; a second poll gets a 500
            // rather than a panic.
            Reply::Ready(response) => {
                Poll::Ready(Ok(response.take().unwrap_or_else(|| plain(StatusCode::INTERNAL_SERVER_ERROR))))
            }
            Reply::Forward(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

fn plain(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::new()));
    *response.status_mut() = status;
    response
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
const DOC_METHODS: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");
/// Asked for when a preflight names no headers; covers what MCP clients send on discovery.
const DEFAULT_ALLOW_HEADERS: HeaderValue = HeaderValue::from_static("Accept, Content-Type, MCP-Protocol-Version");
const PREFLIGHT_MAX_AGE: HeaderValue = HeaderValue::from_static("86400");
const VARY_PREFLIGHT: HeaderValue = HeaderValue::from_static("Access-Control-Request-Headers");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const MCP_METHODS: HeaderValue = HeaderValue::from_static("GET, POST, DELETE, OPTIONS");
const MCP_ALLOW_HEADERS: HeaderValue = HeaderValue::from_static(
    "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID",
);
const MCP_EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static("Mcp-Session-Id, WWW-Authenticate");
const EXPOSE_CHALLENGE: HeaderValue = HeaderValue::from_static("WWW-Authenticate");
const RETRY_AFTER: HeaderValue = HeaderValue::from_static("5");

const BODY_405: &[u8] =
    br#"{"error":"method_not_allowed","error_description":"This endpoint allows only GET, HEAD and OPTIONS"}"#;
const BODY_404: &[u8] = br#"{"error":"not_found","error_description":"No resource is served at this path"}"#;
const BODY_502: &[u8] = br#"{"error":"bad_gateway","error_description":"The MCP server could not be reached"}"#;
const BODY_413: &[u8] =
    br#"{"error":"content_too_large","error_description":"The request body is larger than this server accepts"}"#;
const BODY_504: &[u8] = br#"{"error":"gateway_timeout","error_description":"The MCP server did not answer in time"}"#;
const BODY_503_KEYS: &[u8] = br#"{"error":"temporarily_unavailable","error_description":"The authorization server's signing keys have not been fetched yet"}"#;
const BODY_503_INTROSPECTION: &[u8] = br#"{"error":"temporarily_unavailable","error_description":"The authorization server could not be asked about this token"}"#;
const BODY_503: &[u8] = br#"{"error":"temporarily_unavailable","error_description":"The authorization server metadata has not been fetched yet"}"#;

/// Header values derived from the configuration, made once.
pub struct Headers {
    cache_control: HeaderValue,
}

impl Headers {
    pub fn new(cache_max_age: u32) -> Headers {
        let cache_control = HeaderValue::try_from(format!("public, max-age={cache_max_age}"))
            .expect("digits and ASCII text make a valid header value");
        Headers { cache_control }
    }
}

/// Answers a request on the main listener: the whole of it for discovery, the gate's check
/// for the MCP endpoint. Pure: the caller counts and logs what was answered.
pub fn handle<B>(state: &State, request: &Request<B>) -> Decision {
    let paths = state.resources.iter().map(|r| &r.paths);
    let (index, route) = route::classify_among(paths, request.method(), request.uri().path());
    let Some(protected) = state.resources.get(index) else {
        return Decision::Answer(not_found(), Route::NotFound);
    };
    let response = match route {
        Route::Gate => match guard(protected, request) {
            Guarded::Through(token) => return Decision::Forward(Pass { index, token }),
            Guarded::Answered(response) => response,
        },
        Route::Document { doc, head } => match doc {
            route::Doc::Resource => document(state, protected.snapshots.resource(), head, request.headers()),
            route::Doc::AuthServer => match &*protected.snapshots.auth_server() {
                Some(current) => document(state, current, head, request.headers()),
                None => unavailable(),
            },
        },
        Route::Preflight(_) => preflight(request.headers()),
        Route::MethodNotAllowed(_) => method_not_allowed(),
        Route::NotFound => not_found(),
    };
    Decision::Answer(response, route)
}

/// What the gate did with a request.
enum Guarded {
    /// Let through, with where its bearer token is.
    Through(std::ops::Range<usize>),
    /// Answered here: a preflight, or no usable credential.
    Answered(Response<Body>),
}

/// The gate: a preflight or a request without a usable credential is answered here.
fn guard<B>(protected: &crate::Protected, request: &Request<B>) -> Guarded {
    let Some(gate) = protected.gate.as_ref() else {
        return Guarded::Answered(not_found());
    };
    if request.method() == Method::OPTIONS {
        // Preflights never carry credentials (Fetch standard), so they are answered here.
        let mut response = with_headers(StatusCode::NO_CONTENT, Bytes::new(), 6);
        let h = response.headers_mut();
        gate.cors.apply(request.headers().get(header::ORIGIN), h);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, MCP_METHODS);
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, MCP_ALLOW_HEADERS);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, MCP_EXPOSE_HEADERS);
        h.insert(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE);
        return Guarded::Answered(response);
    }
    let challenges = &gate.challenges;
    let (status, challenge, body) = match gate::located(request.headers()) {
        // The token itself is checked (jwt, introspect) when the request is forwarded.
        (Credential::Bearer(_), Some(span)) => return Guarded::Through(span),
        (Credential::Bearer(_), None) => (StatusCode::BAD_REQUEST, &challenges.malformed, &challenges.malformed_body),
        (Credential::Missing, _) => (StatusCode::UNAUTHORIZED, &challenges.missing, &challenges.missing_body),
        (Credential::Malformed, _) => (StatusCode::BAD_REQUEST, &challenges.malformed, &challenges.malformed_body),
    };
    let mut response = with_headers(status, body.clone(), 6);
    let h = response.headers_mut();
    h.insert(header::WWW_AUTHENTICATE, challenge.clone());
    h.insert(header::CONTENT_TYPE, JSON);
    h.insert(header::CACHE_CONTROL, NO_STORE);
    gate.cors.apply(request.headers().get(header::ORIGIN), h);
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_CHALLENGE);
    Guarded::Answered(response)
}

fn with_headers(status: StatusCode, body: Bytes, capacity: usize) -> Response<Body> {
    let mut response = Response::new(Body::full(body));
    *response.status_mut() = status;
    // One allocation for the map, sized so inserting never grows it.
    *response.headers_mut() = HeaderMap::with_capacity(capacity);
    response
}

fn document(state: &State, doc: &Document, head: bool, request: &HeaderMap) -> Response<Body> {
    let not_modified =
        request.get(header::IF_NONE_MATCH).is_some_and(|v| if_none_match(v.as_bytes(), doc.etag.as_bytes()));
    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else if head {
        (StatusCode::OK, Bytes::new())
    } else {
        (StatusCode::OK, doc.body.clone())
    };
    let mut response = with_headers(status, body, 5);
    let h = response.headers_mut();
    h.insert(header::ETAG, doc.etag.clone());
    h.insert(header::CACHE_CONTROL, state.headers.cache_control.clone());
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    if status == StatusCode::OK {
        h.insert(header::CONTENT_TYPE, JSON);
    }
    if head && !not_modified {
        // HEAD reports the length of the body it leaves out (RFC 9110 §9.3.2); for GET hyper
        // derives it from the body, more cheaply than it re-reads a header set here.
        h.insert(header::CONTENT_LENGTH, doc.content_length.clone());
    }
    response
}

fn preflight(request: &HeaderMap) -> Response<Body> {
    let mut response = with_headers(StatusCode::NO_CONTENT, Bytes::new(), 6);
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, DOC_METHODS);
    // The documents are public and carry no credentials, so any header the client wants to
    // send may be sent: echo the request's list (MCP clients add MCP-Protocol-Version).
    match request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        Some(asked) => {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            h.insert(header::VARY, VARY_PREFLIGHT);
        }
        None => {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, DEFAULT_ALLOW_HEADERS);
        }
    }
    h.insert(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE);
    h.insert(header::ALLOW, DOC_METHODS);
    response
}

fn json_error(status: StatusCode, body: &'static [u8], capacity: usize) -> Response<Body> {
    let mut response = with_headers(status, Bytes::from_static(body), capacity);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, JSON);
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    h.insert(header::CACHE_CONTROL, NO_STORE);
    response
}

fn method_not_allowed() -> Response<Body> {
    let mut response = json_error(StatusCode::METHOD_NOT_ALLOWED, BODY_405, 4);
    response.headers_mut().insert(header::ALLOW, DOC_METHODS);
    response
}

pub(crate) fn not_found() -> Response<Body> {
    json_error(StatusCode::NOT_FOUND, BODY_404, 3)
}

/// The answer to a bearer token the gate refused (RFC 6750 §3.1).
pub(crate) fn rejected(
    gate: &crate::proxy::Gate,
    origin: Option<&HeaderValue>,
    rejection: &crate::token::Rejection,
) -> Response<Body> {
    use crate::token::Rejection;
    let challenges = &gate.challenges;
    let (status, challenge, body) = match rejection {
        Rejection::Invalid(error) => {
            let (challenge, body) = challenges.invalid_token(error);
            (StatusCode::UNAUTHORIZED, challenge, body)
        }
        Rejection::InsufficientScope => {
            (StatusCode::FORBIDDEN, challenges.insufficient.clone(), challenges.insufficient_body.clone())
        }
        Rejection::NoKeys | Rejection::IntrospectionFailed => {
            let body = if *rejection == Rejection::NoKeys { BODY_503_KEYS } else { BODY_503_INTROSPECTION };
            let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, body, 4);
            response.headers_mut().insert(header::RETRY_AFTER, RETRY_AFTER);
            return for_gate(gate, origin, response);
        }
    };
    let mut response = with_headers(status, body, 6);
    let h = response.headers_mut();
    h.insert(header::WWW_AUTHENTICATE, challenge);
    h.insert(header::CONTENT_TYPE, JSON);
    h.insert(header::CACHE_CONTROL, NO_STORE);
    gate.cors.apply(origin, h);
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_CHALLENGE);
    response
}

/// Lets browser clients read a forwarded response (the edge answered their preflight, so the
/// actual response must carry the same policy): the allowed origin, and `Mcp-Session-Id` and
/// `WWW-Authenticate` exposed, unless the MCP server set its own.
pub(crate) fn cors_for_forwarded(gate: &crate::proxy::Gate, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
    gate.cors.apply(origin, response);
    if !response.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS) {
        response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, MCP_EXPOSE_HEADERS);
    }
}

/// One of the edge's own error answers on the MCP endpoint, with that endpoint's CORS policy
/// (`--cors-origin`) in place of the discovery documents' `*`.
pub(crate) fn for_gate(
    gate: &crate::proxy::Gate,
    origin: Option<&HeaderValue>,
    mut response: Response<Body>,
) -> Response<Body> {
    if !gate.cors.allows_any() {
        let h = response.headers_mut();
        h.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        gate.cors.apply(origin, h);
    }
    response
}

pub(crate) fn bad_gateway() -> Response<Body> {
    json_error(StatusCode::BAD_GATEWAY, BODY_502, 3)
}

/// A request body over `--max-body-bytes` (RFC 9110 §15.5.14).
pub(crate) fn content_too_large() -> Response<Body> {
    json_error(StatusCode::PAYLOAD_TOO_LARGE, BODY_413, 3)
}

pub(crate) fn gateway_timeout() -> Response<Body> {
    json_error(StatusCode::GATEWAY_TIMEOUT, BODY_504, 3)
}

fn unavailable() -> Response<Body> {
    let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, BODY_503, 4);
    response.headers_mut().insert(header::RETRY_AFTER, RETRY_AFTER);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Settings};
    use http::Method;

    fn state() -> State {
        let args =
            ["--resource", "https://mcp.example/mcp", "--auth-server", "https://as.example", "--cache-max-age", "60"];
        let settings = Settings::load(args.map(String::from), |_| None).unwrap();
        State::new(&Config::from_settings(&settings).unwrap())
    }

    fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut r = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).unwrap()
    }

    fn handle<B>(state: &State, request: &Request<B>) -> Response<Body> {
        match super::handle(state, request) {
            Decision::Answer(response, _) => response,
            Decision::Forward(_) => panic!("no upstream is configured"),
        }
    }

    fn body(r: &Response<Body>) -> Bytes {
        use http_body::Body as _;
        let Body::Full(full) = r.body() else { panic!("a body the edge made") };
        let mut body = full.clone();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
            std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap(),
            _ => Bytes::new(),
        }
    }

    #[test]
    fn resource_document_with_headers() {
        let s = state();
        let r = handle(&s, &request(Method::GET, "/.well-known/oauth-protected-resource/mcp", &[]));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "public, max-age=60");
        assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let b = body(&r);
        // hyper writes Content-Length for GET from the body's exact size.
        assert_eq!(http_body::Body::size_hint(r.body()).exact(), Some(b.len() as u64));
        assert_eq!(
            &b[..],
            br#"{"resource":"https://mcp.example/mcp","authorization_servers":["https://as.example"],"bearer_methods_supported":["header"]}"#
        );
    }

    #[test]
    fn conditional_and_head() {
        let s = state();
        let path = "/.well-known/oauth-protected-resource";
        let etag = handle(&s, &request(Method::GET, path, &[])).headers()[header::ETAG].clone();
        let r = handle(&s, &request(Method::GET, path, &[("if-none-match", etag.to_str().unwrap())]));
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::ETAG], etag);
        assert!(body(&r).is_empty());
        let r = handle(&s, &request(Method::GET, path, &[("if-none-match", "\"other\"")]));
        assert_eq!(r.status(), StatusCode::OK);
        let r = handle(&s, &request(Method::HEAD, path, &[]));
        assert_eq!(r.status(), StatusCode::OK);
        assert!(body(&r).is_empty());
        assert_eq!(
            r.headers()[header::CONTENT_LENGTH],
            s.resources[0].snapshots.resource().body.len().to_string().as_str()
        );
    }

    #[test]
    fn auth_server_document_is_503_until_loaded() {
        let s = state();
        let path = "/.well-known/oauth-authorization-server";
        let r = handle(&s, &request(Method::GET, path, &[]));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        assert_eq!(&body(&r)[..], BODY_503);
        s.resources[0].snapshots.offer(Bytes::from_static(b"{\"issuer\":\"https://as.example\"}"));
        let r = handle(&s, &request(Method::GET, path, &[]));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(&body(&r)[..], b"{\"issuer\":\"https://as.example\"}");
    }

    #[test]
    fn preflight_echoes_requested_headers() {
        let s = state();
        let path = "/.well-known/oauth-authorization-server";
        let r =
            handle(&s, &request(Method::OPTIONS, path, &[("access-control-request-headers", "mcp-protocol-version")]));
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS], "mcp-protocol-version");
        assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, HEAD, OPTIONS");
        assert_eq!(r.headers()[header::VARY], "Access-Control-Request-Headers");
        let r = handle(&s, &request(Method::OPTIONS, path, &[]));
        assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS], "Accept, Content-Type, MCP-Protocol-Version");
    }

    #[test]
    fn other_methods_and_paths() {
        let s = state();
        let r = handle(&s, &request(Method::POST, "/.well-known/oauth-protected-resource", &[]));
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD, OPTIONS");
        assert_eq!(&body(&r)[..], BODY_405);
        let r = handle(&s, &request(Method::GET, "/mcp", &[]));
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(&body(&r)[..], BODY_404);
    }
}
