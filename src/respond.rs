//! Responses, built from the snapshots and from header values made at start-up.
//!
//! Nothing here formats or allocates per request beyond the response's own header map: bodies
//! are `Bytes` (static or reference-counted) and header values are static or cloned handles.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;

use crate::conditional::if_none_match;
use crate::route::{self, Route};
use crate::snapshot::Document;
use crate::State;

/// The response body type of the main listener. A seam: forwarding to the MCP server will
/// add a streaming variant.
pub type Body = Full<Bytes>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
const DOC_METHODS: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");
/// Asked for when a preflight names no headers; covers what MCP clients send on discovery.
const DEFAULT_ALLOW_HEADERS: HeaderValue = HeaderValue::from_static("Accept, Content-Type, MCP-Protocol-Version");
const PREFLIGHT_MAX_AGE: HeaderValue = HeaderValue::from_static("86400");
const VARY_PREFLIGHT: HeaderValue = HeaderValue::from_static("Access-Control-Request-Headers");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const RETRY_AFTER: HeaderValue = HeaderValue::from_static("5");

const BODY_405: &[u8] =
    br#"{"error":"method_not_allowed","error_description":"This endpoint allows only GET, HEAD and OPTIONS"}"#;
const BODY_404: &[u8] = br#"{"error":"not_found","error_description":"No resource is served at this path"}"#;
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

/// Answers a request on the main listener and counts it.
pub fn handle<B>(state: &State, request: &Request<B>) -> Response<Body> {
    let route = route::classify(&state.paths, request.method(), request.uri().path());
    let response = match route {
        Route::Document { doc, head } => match doc {
            route::Doc::Resource => document(state, state.snapshots.resource(), head, request.headers()),
            route::Doc::AuthServer => match &*state.snapshots.auth_server() {
                Some(current) => document(state, current, head, request.headers()),
                None => unavailable(),
            },
        },
        Route::Preflight(_) => preflight(request.headers()),
        Route::MethodNotAllowed(_) => method_not_allowed(),
        Route::NotFound => not_found(),
    };
    state.metrics.request(route, response.status());
    response
}

fn with_headers(status: StatusCode, body: Bytes, capacity: usize) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
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

fn not_found() -> Response<Body> {
    json_error(StatusCode::NOT_FOUND, BODY_404, 3)
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

    fn body(r: &Response<Body>) -> Bytes {
        use http_body::Body as _;
        let mut body = r.body().clone();
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
        assert_eq!(r.headers()[header::CONTENT_LENGTH], s.snapshots.resource().body.len().to_string().as_str());
    }

    #[test]
    fn auth_server_document_is_503_until_loaded() {
        let s = state();
        let path = "/.well-known/oauth-authorization-server";
        let r = handle(&s, &request(Method::GET, path, &[]));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        assert_eq!(&body(&r)[..], BODY_503);
        s.snapshots.offer(Bytes::from_static(b"{\"issuer\":\"https://as.example\"}"));
        let r = handle(&s, &request(Method::GET, path, &[]));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(&body(&r)[..], b"{\"issuer\":\"https://as.example\"}");
        assert_eq!(s.metrics.requests(Route::Document { doc: route::Doc::AuthServer, head: false }, StatusCode::OK), 1);
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
