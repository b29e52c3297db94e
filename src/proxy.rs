//! Forwarding authenticated requests to the MCP server, streaming both ways.
//!
//! Bodies are passed through as hyper's `Incoming` streams, never buffered, so an SSE event
//! reaches the client as soon as the upstream sends it and a large upload passes with flat
//! memory. Dropping the client's side (it went away) drops the upstream request with it.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use crate::metrics::TokenRejection;
use crate::pool::{Answer, Pool};
use crate::respond::Body;
use crate::route::Route;
use crate::serve::{Activity, Streaming};
use crate::token::{Rejection, Verifier};
use crate::State;

/// Where authenticated requests go, parsed once.
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
}

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
    Pool(crate::pool::Error),
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
    fn new(config: &crate::Config, upstream: &Upstream) -> UpstreamClient {
        if upstream.scheme == Scheme::HTTP {
            UpstreamClient::Plain(Pool::new(&upstream.authority, config.connect_timeout))
        } else {
            UpstreamClient::Tls(Box::new(crate::metadata::https_client(config.connect_timeout)))
        }
    }

    /// Sends `request`, its URI in origin-form, to `upstream`; the response head, or why not.
    async fn send(&self, upstream: &Upstream, mut request: Request<Upload>) -> Result<Response<Answer>, UpstreamError> {
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
                Ok(response.map(Answer::unpooled))
            }
        }
    }
}

/// A client's request body on its way upstream, noting when it last moved: the wait for the
/// MCP server's answer starts when the upload ends or stalls, so a long upload is not cut off
/// by `--upstream-timeout`. A body that grows past `--max-body-bytes` ends in an error, which
/// makes the client abort the upstream request.
pub struct Upload {
    body: Incoming,
    progress: Arc<Progress>,
    /// Bytes the body may still bring.
    left: u64,
    /// Where a body cut off for its size is counted, whether or not the MCP server had
    /// answered by then.
    state: Arc<State>,
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
struct Progress {
    started: Option<Instant>,
    last_ms: AtomicU64,
    too_large: AtomicBool,
}

impl Progress {
    fn mark(&self) {
        if let Some(started) = self.started {
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last_ms.store(ms, Ordering::Relaxed);
        }
    }

    fn last(&self) -> u64 {
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
                        self.state.metrics.limit_hit(crate::metrics::Limit::Body);
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

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// With `--strip-authorization`: who the verified token names, and its scopes.
const X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
const X_AUTH_SCOPES: HeaderName = HeaderName::from_static("x-auth-scopes");
/// The client the token was issued to: tokens from a client-credentials grant may have no subject.
const X_AUTH_CLIENT_ID: HeaderName = HeaderName::from_static("x-auth-client-id");

/// The fields the edge sets with `--strip-authorization`.
const AUTH_HEADERS: [HeaderName; 3] = [X_AUTH_SUBJECT, X_AUTH_SCOPES, X_AUTH_CLIENT_ID];

/// Fields that are hop-by-hop whether or not `Connection` names them.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop fields (RFC 9110 §7.6.1): `Connection` and every field it names, and
/// the fields defined as hop-by-hop whether or not `Connection` names them.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Usually none is there: a look over the few names present is cheaper than nine removals,
    // each of which hashes its name.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Sets the `X-Forwarded-*` fields: the client's address appended to the chain it brought
/// (`previous`, its first `X-Forwarded-For`), the public scheme of the resource, and the host
/// the client asked for.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    previous: Option<&HeaderValue>,
    peer_ip: &HeaderValue,
    proto: &HeaderValue,
    host: Option<HeaderValue>,
) {
    // Formatted only when the client brought a chain; otherwise the connection's value is shared.
    let chain = match previous.map(|v| (v.to_str(), peer_ip.to_str())) {
        Some((Ok(previous), Ok(ip))) => HeaderValue::try_from(format!("{previous}, {ip}")).ok(),
        Some(_) => None,
        None => Some(peer_ip.clone()),
    };
    if let Some(chain) = chain {
        headers.insert(X_FORWARDED_FOR, chain);
    }
    headers.insert(X_FORWARDED_PROTO, proto.clone());
    match host {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
}

/// What forwarding reads from a request's headers, found in one pass over them: each
/// `HeaderMap` lookup hashes its name, and a request has only a few fields.
#[derive(Default)]
struct Found {
    origin: Option<HeaderValue>,
    host: Option<HeaderValue>,
    authorization: Option<HeaderValue>,
    forwarded_for: Option<HeaderValue>,
    /// The client's first `X-Request-Id`, and how many it sent.
    request_id: Option<HeaderValue>,
    request_ids: usize,
    /// A hop-by-hop field, or one of the `X-Auth-*` fields the edge sets, is present.
    to_strip: bool,
}

impl Found {
    /// The first value of each field (as `HeaderMap::get` would give it).
    fn scan(headers: &HeaderMap) -> Found {
        fn first(slot: &mut Option<HeaderValue>, value: &HeaderValue) {
            if slot.is_none() {
                *slot = Some(value.clone());
            }
        }
        let mut found = Found::default();
        for (name, value) in headers {
            if name == header::ORIGIN {
                first(&mut found.origin, value);
            } else if name == header::HOST {
                first(&mut found.host, value);
            } else if name == header::AUTHORIZATION {
                first(&mut found.authorization, value);
            } else if name == X_FORWARDED_FOR {
                first(&mut found.forwarded_for, value);
            } else if name == crate::observe::X_REQUEST_ID {
                found.request_ids += 1;
                first(&mut found.request_id, value);
            } else if HOP_BY_HOP.contains(name) || AUTH_HEADERS.contains(name) {
                found.to_strip = true;
            }
        }
        found
    }
}

/// Forwards `request` to the upstream and streams its answer back. The request id (the
/// client's or a new one) goes upstream and back to the client; the answer is counted, timed
/// from `started` to its head, and logged.
pub async fn forward(
    state: Arc<State>,
    pass: crate::respond::Pass,
    mut request: Request<Incoming>,
    peer_ip: HeaderValue,
    activity: Arc<Activity>,
    started: std::time::Instant,
) -> Response<Body> {
    let found = Found::scan(request.headers());
    let id = crate::observe::request_id(found.request_id.as_ref());
    // The client's one id, kept, is in place already.
    if found.request_ids != 1 || found.request_id.as_ref() != Some(&id) {
        request.headers_mut().insert(crate::observe::X_REQUEST_ID, id.clone());
    }
    let seen = crate::observe::Seen::of(&state, &request);
    let mut response = exchange(&state, pass, request, found, &peer_ip, activity).await;
    response.headers_mut().insert(crate::observe::X_REQUEST_ID, id.clone());
    crate::observe::answered(&state, Route::Gate, response.status(), started, seen, &peer_ip, Some(id));
    response
}

/// The gate's token check, then the exchange with the MCP server.
async fn exchange(
    state: &Arc<State>,
    pass: crate::respond::Pass,
    mut request: Request<Incoming>,
    found: Found,
    peer_ip: &HeaderValue,
    activity: Arc<Activity>,
) -> Response<Body> {
    let Some(gate) = state.resources.get(pass.index).and_then(|r| r.gate.as_ref()) else {
        return crate::respond::not_found();
    };
    // From here until the response body ends, the connection is busy, not idle: a slow token
    // check, upload or MCP server must not look like a silent client to the idle watchdog.
    let streaming = Streaming::new(activity);
    let origin = found.origin;
    // A declared length over the limit is refused before anything else: it would never pass.
    if http_body::Body::size_hint(request.body()).lower() > gate.max_body_bytes {
        state.metrics.limit_hit(crate::metrics::Limit::Body);
        return too_large(gate, origin.as_ref());
    }
    let claims = match &gate.verifier {
        Some(verifier) => {
            // The gate read the token and said where it is; it is taken, not parsed, again.
            let token = found.authorization.as_ref().and_then(|value| crate::gate::token_in(value, pass.token));
            let checked = match token {
                // A token the cache holds is answered without a wait; the full check, which
                // may fetch keys or introspect, is boxed so that its large future is not part
                // of every forwarded request's.
                Some(token) => match verifier.check_cached(token) {
                    Some(verdict) => verdict,
                    None => Box::pin(verifier.check(token)).await,
                },
                None => Err(Rejection::Invalid(crate::jwt::TokenError::Malformed("no bearer token"))),
            };
            match checked {
                Ok(claims) => Some(claims),
                Err(rejection) => {
                    state.metrics.token_rejected(match rejection {
                        Rejection::Invalid(_) => TokenRejection::Invalid,
                        Rejection::InsufficientScope => TokenRejection::InsufficientScope,
                        Rejection::NoKeys => TokenRejection::NoKeys,
                        Rejection::IntrospectionFailed => TokenRejection::IntrospectionFailed,
                    });
                    return crate::respond::rejected(gate, origin.as_ref(), &rejection);
                }
            }
        }
        None => None,
    };
    // The host the client asked for: the Host header (HTTP/1.1) or the :authority (HTTP/2).
    let host = found.host.or_else(|| request.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
    let path = request.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
    // The client's HTTP version is its business with the edge; the pool picks the upstream's.
    *request.version_mut() = http::Version::HTTP_11;
    let headers = request.headers_mut();
    if found.to_strip {
        strip_hop_by_hop(headers);
        // SECURITY: these say who the edge verified; a client must never supply them.
        for name in AUTH_HEADERS {
            headers.remove(name);
        }
    }
    set_forwarded(headers, found.forwarded_for.as_ref(), peer_ip, &gate.forwarded_proto, host);
    if let (true, Some(claims)) = (gate.strip_authorization, &claims) {
        headers.remove(header::AUTHORIZATION);
        if let Some(subject) = claims.subject.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
            headers.insert(X_AUTH_SUBJECT, subject);
        }
        if let Some(client) = claims.client_id.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
            headers.insert(X_AUTH_CLIENT_ID, client);
        }
        if let Ok(scopes) = HeaderValue::from_str(&claims.scopes.join(" ")) {
            headers.insert(X_AUTH_SCOPES, scopes);
        }
    }

    let progress = Arc::new(Progress { started: Some(Instant::now()), ..Progress::default() });
    let left = gate.max_body_bytes;
    let upload = |body| Upload { body, progress: Arc::clone(&progress), left, state: Arc::clone(state) };
    let request = request.map(upload);
    // The upload's start is when the request goes to the MCP server: its clock reading serves
    // for the upstream latency too.
    let sent = progress.started.unwrap_or_else(Instant::now);
    let send = std::pin::pin!(gate.client.send(&gate.upstream, request));
    match answer_within(gate.response_timeout, &progress, send).await {
        Some(Ok(mut response)) => {
            strip_hop_by_hop(response.headers_mut());
            crate::respond::cors_for_forwarded(gate, origin.as_ref(), response.headers_mut());
            state.metrics.upstream(response.status(), sent.elapsed());
            response.map(|body| Body::Upstream(body, streaming))
        }
        // The upload went over the limit before the MCP server answered: the upstream request
        // was aborted (and the limit counted), and the client is told why. Had the MCP server
        // answered first, its response breaks off with the upload.
        Some(Err(_)) if progress.too_large.load(Ordering::Relaxed) => too_large(gate, origin.as_ref()),
        Some(Err(e)) => {
            state.metrics.upstream_failed(false);
            crate::warn!("upstream request failed: {e}");
            crate::respond::for_gate(gate, origin.as_ref(), crate::respond::bad_gateway())
        }
        None => {
            state.metrics.upstream_failed(true);
            crate::respond::for_gate(gate, origin.as_ref(), crate::respond::gateway_timeout())
        }
    }
}

/// The 413 for a body over `--max-body-bytes`.
fn too_large(gate: &Gate, origin: Option<&HeaderValue>) -> Response<Body> {
    crate::respond::for_gate(gate, origin, crate::respond::content_too_large())
}

/// Waits for the MCP server's response head until `timeout` has passed since the upload last
/// moved (or ended); `None` when it has. Dropping the exchange cancels the upstream request.
/// (The exchange is pinned by the caller: moved in, it would be one more copy of a large future.)
async fn answer_within<F: std::future::Future>(
    timeout: Duration,
    progress: &Progress,
    mut exchange: Pin<&mut F>,
) -> Option<F::Output> {
    let started = progress.started.unwrap_or_else(Instant::now);
    loop {
        let last = progress.last();
        let deadline = started + Duration::from_millis(last) + timeout;
        match tokio::time::timeout_at(deadline.into(), exchange.as_mut()).await {
            Ok(output) => return Some(output),
            Err(_) if progress.last() == last => return None,
            Err(_) => {}
        }
    }
}

/// What the gate needs, made once at start when `--upstream` is set.
pub struct Gate {
    pub upstream: Upstream,
    pub client: UpstreamClient,
    pub challenges: crate::gate::Challenges,
    pub forwarded_proto: HeaderValue,
    pub response_timeout: Duration,
    /// Set in jwt and introspect modes; `None` checks presence only.
    pub verifier: Option<Verifier>,
    pub cors: crate::gate::Cors,
    pub strip_authorization: bool,
    /// `--max-body-bytes`: the largest body forwarded.
    pub max_body_bytes: u64,
}

impl Gate {
    pub fn new(config: &crate::Config, upstream: &Upstream) -> Gate {
        let proto = if config.resource.origin.starts_with("https:") { "https" } else { "http" };
        Gate {
            upstream: upstream.clone(),
            client: UpstreamClient::new(config, upstream),
            challenges: crate::gate::Challenges::new(config),
            forwarded_proto: HeaderValue::from_static(proto),
            response_timeout: config.upstream_timeout,
            verifier: Verifier::new(config),
            cors: crate::gate::Cors::new(config),
            strip_authorization: config.strip_authorization,
            max_body_bytes: config.limits.max_body_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Secret-Hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(KEEP_ALIVE, HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::PROXY_AUTHORIZATION, HeaderValue::from_static("Basic x"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert("mcp-session-id", HeaderValue::from_static("s1"));
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "mcp-session-id"]);
    }

    #[test]
    fn one_scan_finds_the_first_of_each_field() {
        let mut h = HeaderMap::new();
        h.append(header::HOST, HeaderValue::from_static("mcp.example"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        h.append(crate::observe::X_REQUEST_ID, HeaderValue::from_static("a"));
        h.append(crate::observe::X_REQUEST_ID, HeaderValue::from_static("b"));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        let found = Found::scan(&h);
        assert_eq!(found.host.as_ref(), h.get(header::HOST));
        assert_eq!(found.forwarded_for.as_ref(), h.get(X_FORWARDED_FOR));
        assert_eq!(found.request_id.as_ref(), Some(&HeaderValue::from_static("a")));
        assert_eq!(found.request_ids, 2);
        assert_eq!(found.authorization.as_ref(), h.get(header::AUTHORIZATION));
        assert!(found.origin.is_none());
        assert!(!found.to_strip, "nothing hop-by-hop was sent");
        for name in [header::TE, header::CONNECTION, X_AUTH_SUBJECT, X_AUTH_CLIENT_ID] {
            let mut h = h.clone();
            h.insert(name.clone(), HeaderValue::from_static("x"));
            assert!(Found::scan(&h).to_strip, "{name}");
        }
    }

    #[test]
    fn forwarded_chain_is_appended() {
        let mut h = HeaderMap::new();
        let proto = HeaderValue::from_static("https");
        set_forwarded(
            &mut h,
            None,
            &HeaderValue::from_static("10.0.0.7"),
            &proto,
            Some(HeaderValue::from_static("mcp.example")),
        );
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.7");
        let previous = h.get(X_FORWARDED_FOR).cloned();
        set_forwarded(&mut h, previous.as_ref(), &HeaderValue::from_static("::1"), &proto, None);
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.7, ::1");
        assert_eq!(h[X_FORWARDED_PROTO], "https");
        assert!(h.get(X_FORWARDED_HOST).is_none());
    }
}
