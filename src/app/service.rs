//! The main listener's service: each request routed to discovery, the gate or forwarding.
//! [`dispatch`] is pure; [`edge`] counts and logs what it answered and starts forwarding.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::{Live, State};
use crate::common::answer::{self, Answer};
use crate::common::route::{self, Doc, Route};
use crate::discovery::respond;
use crate::forward::body::Body;
use crate::forward::proxy::{self, Endpoint, Forwarding};
use crate::gate::{Admission, Presented};
use crate::serve::Connection;
use crate::telemetry::access::{self, Seen};

/// What the edge does with a request: answer it here, or forward it past the gate.
pub enum Decision {
    /// The edge's own answer, and the route it was given on (for counting and logging).
    Answered(Answer, Route),
    /// Past the gate: to this endpoint, with the token where and as `token` says.
    Forward { endpoint: Arc<Endpoint>, token: Presented },
}

/// Decides what to do with a request on the main listener: the whole answer for discovery,
/// the gate's admission for the MCP endpoint. Pure: the caller counts and logs.
pub fn dispatch<B>(state: &State, request: &Request<B>) -> Decision {
    let paths = state.resources.iter().map(|r| &r.paths);
    let (index, route) = route::classify_among(paths, request.method(), request.uri().path());
    let Some(protected) = state.resources.get(index) else {
        return Decision::Answered(answer::not_found(), Route::NotFound);
    };
    let response = match route {
        Route::Gate => match &protected.endpoint {
            None => answer::not_found(),
            Some(endpoint) => match endpoint.gate.admit(request) {
                Admission::Through(token) => return Decision::Forward { endpoint: Arc::clone(endpoint), token },
                Admission::Answered(response) => response,
            },
        },
        Route::Document { doc, head } => {
            let headers = request.headers();
            match doc {
                Doc::Resource => respond::document(&state.headers, protected.snapshots.resource(), head, headers),
                Doc::AuthServer => match &*protected.snapshots.auth_server() {
                    Some(current) => respond::document(&state.headers, current, head, headers),
                    None => respond::unavailable(),
                },
            }
        }
        Route::Preflight(_) => respond::preflight(request.headers()),
        Route::MethodNotAllowed(_) => respond::method_not_allowed(),
        Route::NotFound => answer::not_found(),
    };
    Decision::Answered(response, route)
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
            Reply::Ready(response) => Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                let mut response = Response::new(Body::full(Bytes::new()));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                response
            }))),
            Reply::Forward(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

/// The main listener's handler: answered here, or forwarded past the gate. A forwarded
/// request keeps the endpoint it started with until it ends, whatever reloads happen
/// meanwhile.
pub fn edge(live: Arc<Live>) -> impl Fn(Request<Incoming>, &Connection) -> Reply + Send + Sync + 'static {
    move |request, connection| {
        // A guard, not a counted reference: nothing is allocated or contended for answers
        // the edge makes itself.
        let started = Instant::now();
        let state = live.load();
        match dispatch(&state, &request) {
            Decision::Answered(response, route) => {
                // Answered before any token check (documents, challenges, preflights): nothing
                // here reaches the MCP server, so no request id is made or echoed and these
                // answers cost what they did. Requests that reach the token check get one in
                // `forward`.
                let seen = Seen::of(&state.telemetry, &request);
                access::answered(&state.telemetry, route, response.status(), started, seen, &connection.peer_ip, None);
                Reply::Ready(Some(response.map(Body::Full)))
            }
            Decision::Forward { endpoint, token } => match proxy::forward(
                endpoint,
                Arc::clone(&state.telemetry),
                token,
                request,
                connection.peer_ip.clone(),
                Arc::clone(&connection.activity),
                started,
            ) {
                Forwarding::Answered(response) => Reply::Ready(Some(response)),
                Forwarding::Exchange(future) => Reply::Forward(future),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Settings};
    use crate::discovery::respond::{BODY_405, BODY_503};
    use http::header;
    use http::{Method, StatusCode};

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

    fn handle<B>(state: &State, request: &Request<B>) -> Answer {
        match dispatch(state, request) {
            Decision::Answered(response, _) => response,
            Decision::Forward { .. } => panic!("no upstream is configured"),
        }
    }

    fn body(r: &Answer) -> Bytes {
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
        assert_eq!(&body(&r)[..], &body(&crate::common::answer::not_found())[..]);
    }
}
