//! Forwarding authenticated requests to the MCP server, streaming both ways.
//!
//! Bodies are passed through as hyper's `Incoming` streams, never buffered, so an SSE event
//! reaches the client as soon as the upstream sends it and a large upload passes with flat
//! memory. Dropping the client's side (it went away) drops the upstream request with it.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri};
use hyper::body::Incoming;

use crate::common::activity::{Activity, Streaming};
use crate::common::answer::{self, Answer};
use crate::common::forwarding::{
    identity_list, identity_value, rewrite, strip_hop_by_hop, Present, X_AUTH_CLIENT_ID, X_AUTH_DPOP_JKT,
    X_AUTH_SCOPES, X_AUTH_SUBJECT,
};
use crate::common::route::Route;
use crate::config::{Config, SessionBinding, TokenCheck, Upstream};
use crate::forward::audit::Decisions;
use crate::forward::body::Body;
use crate::forward::expiry::{self, Expiring, Revocation, Streams};
use crate::forward::inspect::{self, Enforcer};
use crate::forward::lists;
use crate::forward::upload::{Inbound, Progress, Upload};
use crate::forward::upstream::{Exchange, UpstreamClient};
use crate::gate::credential::{self, Scheme};
use crate::gate::dpop::DpopError;
use crate::gate::jwt::{Claims, TokenError};
use crate::gate::keyring::KeyRing;
use crate::gate::possession::{self, Refusal, DPOP};
use crate::gate::replay::ReplayCache;
use crate::gate::session::{self, Binding, MCP_SESSION_ID};
use crate::gate::tokens::{self, Recheck, Rejection};
use crate::gate::{Check, Gate, Presented};
use crate::mcp::headers::MCP_METHOD;
use crate::mcp::lists::Lists;
use crate::telemetry::access::{self, Seen};
use crate::telemetry::metrics::{Limit, Metrics, TokenRejection};
use crate::telemetry::request_id::{self, X_REQUEST_ID};
use crate::telemetry::Telemetry;

/// One resource's MCP endpoint: its gate, and where and how requests that pass it go. Made
/// once per configuration; a request holds the endpoint it started with until it ends.
pub struct Endpoint {
    pub gate: Gate,
    pub upstream: Upstream,
    client: UpstreamClient,
    forwarded_proto: HeaderValue,
    response_timeout: Duration,
    strip_authorization: bool,
    /// `--max-body-bytes`: the largest body forwarded.
    max_body_bytes: u64,
    /// `--session-key`: 2025-11-25 session ids bound to their caller; `None` passes them as
    /// they are.
    sessions: Option<Binding>,
    /// `--token-leeway`: a stream ends this long after its token's `exp`.
    token_leeway: Duration,
    /// `--stream-recheck`, in introspection mode: how often a stream's token is asked about again.
    recheck_every: Option<Duration>,
    /// The resource's MCP policy; `None` forwards bodies unread (boxed: most resources have none).
    enforcer: Option<Box<Enforcer>>,
}

/// The header of a `GET` that resumes an event stream (2025-11-25 transports, "Resumability and
/// Redelivery").
const LAST_EVENT_ID: &str = "last-event-id";

/// The MCP transport's answers for a session id the edge will not pass on, in the JSON-RPC
/// form MCP SDK servers use, so clients treat them as they treat their own server's.
const BODY_SESSION_404: &[u8] = br#"{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}"#;
const BODY_SESSION_400: &[u8] =
    br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: more than one Mcp-Session-Id"},"id":null}"#;

impl Endpoint {
    /// `replay`: the DPoP replay cache of the endpoint this one replaces, if any.
    /// Policy decisions are counted into `telemetry`'s metrics and written to its audit log.
    pub fn new(
        config: &Config,
        upstream: &Upstream,
        replay: Option<Arc<ReplayCache>>,
        telemetry: &Telemetry,
    ) -> Endpoint {
        let proto = if config.resource.origin.starts_with("https:") { "https" } else { "http" };
        Endpoint {
            gate: Gate::new(config, replay),
            upstream: upstream.clone(),
            client: UpstreamClient::new(upstream, config.connect_timeout),
            forwarded_proto: HeaderValue::from_static(proto),
            response_timeout: config.upstream_timeout,
            strip_authorization: config.strip_authorization,
            max_body_bytes: config.limits.max_body_bytes,
            token_leeway: config.token_leeway,
            recheck_every: match config.token_check {
                TokenCheck::Introspect { recheck_every, .. } => recheck_every,
                TokenCheck::Jwt | TokenCheck::Presence => None,
            },
            enforcer: Enforcer::new(config, Decisions::new(telemetry, &config.resource.url)).map(Box::new),
            sessions: match &config.sessions {
                SessionBinding::Off => None,
                SessionBinding::Keyed(secrets) => {
                    let keys = KeyRing::new(&secrets.0).expect("the configuration checked there are keys, long enough");
                    Some(Binding::new(keys, &config.issuer.url))
                }
            },
        }
    }
}

/// What forwarding reads from a request's headers, found in one pass over them: each
/// `HeaderMap` lookup hashes its name, and a request has only a few fields.
#[derive(Default)]
struct Found {
    origin: Option<HeaderValue>,
    host: Option<HeaderValue>,
    authorization: Option<HeaderValue>,
    /// The client's first `X-Request-Id`, and how many it sent.
    request_id: Option<HeaderValue>,
    request_ids: usize,
    /// How many `Mcp-Session-Id` lines the client sent.
    session_ids: usize,
    /// Whether an `Mcp-Method` line names `subscriptions/listen`.
    listen: bool,
    /// What the forwarding headers' rewrite needs to know.
    present: Present,
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
            } else if name == X_REQUEST_ID {
                found.request_ids += 1;
                first(&mut found.request_id, value);
            } else if name == MCP_SESSION_ID {
                found.session_ids += 1;
            } else if name == MCP_METHOD {
                found.listen |= value.as_bytes() == LISTEN;
            } else {
                found.present.note(name);
            }
        }
        found
    }
}

/// The 2026-07-28 request that holds a stream open for notifications.
const LISTEN: &[u8] = b"subscriptions/listen";

/// What the exchange a request opens is expected to be: a stream held open (a `GET` that
/// accepts events, or `subscriptions/listen` by its `Mcp-Method` line), or a call. Only which
/// upstream connections carry it depends on this, never whether or how it is forwarded.
fn exchange_of(method: &Method, headers: &HeaderMap, listen: bool) -> Exchange {
    let events =
        |value: &HeaderValue| value.as_bytes().windows(17).any(|w| w.eq_ignore_ascii_case(b"text/event-stream"));
    if listen || (method == Method::GET && headers.get_all(header::ACCEPT).iter().any(events)) {
        Exchange::Held
    } else {
        Exchange::Call
    }
}

/// Forwards `request`, which the gate let through with its token as `token` says, to the upstream
/// and streams its answer back. The request id (the client's or a new one) goes upstream and
/// back to the client; the answer is counted, timed from `started` to its head, and logged.
pub async fn forward(
    endpoint: Arc<Endpoint>,
    telemetry: Arc<Telemetry>,
    token: Presented,
    mut request: Request<Incoming>,
    peer_ip: HeaderValue,
    activity: Arc<Activity>,
    started: Instant,
) -> Response<Body> {
    let found = Found::scan(request.headers());
    let id = request_id::request_id(found.request_id.as_ref());
    // The client's one id, kept, is in place already.
    if found.request_ids != 1 || found.request_id.as_ref() != Some(&id) {
        request.headers_mut().insert(X_REQUEST_ID, id.clone());
    }
    let seen = Seen::of(&telemetry, &request);
    let mut response = exchange(&endpoint, &telemetry, token, request, found, &peer_ip, activity).await;
    response.headers_mut().insert(X_REQUEST_ID, id.clone());
    access::answered(&telemetry, Route::Gate, response.status(), started, seen, &peer_ip, Some(id));
    response
}

/// Moves `headers` into a map of their own size, with room for `more` fields. hyper reads the
/// MCP server's answer into the map the request went out in, sized for the request's fields,
/// and an HTTP/1.1 connection keeps the map of the last response it sent, emptied, for the
/// next one: for a held stream, as long as it is held (1.2 KiB for a request's dozen fields).
fn compact(headers: &mut HeaderMap, more: usize) {
    let fields = std::mem::take(headers);
    let mut own = HeaderMap::with_capacity(fields.len() + more);
    own.extend(fields);
    *headers = own;
}

/// One of the edge's own answers, as the main listener's body.
fn own(answer: Answer) -> Response<Body> {
    answer.map(Body::Full)
}

/// The gate's token check, then the exchange with the MCP server.
async fn exchange(
    endpoint: &Endpoint,
    telemetry: &Arc<Telemetry>,
    presented: Presented,
    mut request: Request<Incoming>,
    found: Found,
    peer_ip: &HeaderValue,
    activity: Arc<Activity>,
) -> Response<Body> {
    let gate = &endpoint.gate;
    let metrics = &telemetry.metrics;
    let span = presented.span.clone();
    // From here until the response body ends, the connection is busy, not idle: a slow token
    // check, upload or MCP server must not look like a silent client to the idle watchdog.
    let streaming = Streaming::new(activity);
    let origin = found.origin;
    let held = exchange_of(request.method(), request.headers(), found.listen);
    let client_h1 = request.version() < http::Version::HTTP_2;
    // A declared length over the limit is refused before anything else: it would never pass.
    if http_body::Body::size_hint(request.body()).lower() > endpoint.max_body_bytes {
        metrics.limit_hit(Limit::Body);
        return too_large(gate, origin.as_ref());
    }
    let used = presented.scheme;
    // The gate read the token and said where it is; it is taken, not parsed, again.
    let token = found.authorization.as_ref().and_then(|value| credential::token_in(value, presented.span));
    let claims = match &gate.check {
        Check::Tokens(checker) => {
            let checked = match token {
                // A token the cache holds is answered without a wait; the full check, which
                // may fetch keys or introspect, is boxed so that its large future is not part
                // of every forwarded request's.
                Some(token) => match checker.check_cached(token) {
                    Some(verdict) => verdict,
                    None => Box::pin(checker.check(token)).await,
                },
                None => Err(Rejection::Invalid(TokenError::Malformed("no bearer token"))),
            };
            match checked {
                Ok(claims) => Some(claims),
                Err(rejection) => {
                    metrics.token_rejected(match rejection {
                        Rejection::Invalid(_) => TokenRejection::Invalid,
                        Rejection::InsufficientScope => TokenRejection::InsufficientScope,
                        Rejection::NoKeys => TokenRejection::NoKeys,
                        Rejection::IntrospectionFailed => TokenRejection::IntrospectionFailed,
                    });
                    return own(gate.refuse(origin.as_ref(), used, &rejection));
                }
            }
        }
        Check::Presence => None,
    };
    // RFC 9449: a bound token only with a proof of its key, and a DPoP token only with one.
    // What is kept is the thumbprint's header value alone: nothing of the proof is held across
    // the exchange with the MCP server.
    let proven_jkt = match (used, &claims) {
        // SECURITY: a DPoP-bound token as a bearer token would make the binding mean nothing
        // (§7.2); refused whatever the mode.
        (Scheme::Bearer, Some(claims)) if claims.jkt.is_some() => {
            metrics.token_rejected(TokenRejection::Invalid);
            return own(gate.refuse(origin.as_ref(), used, &Rejection::Invalid(TokenError::BoundToKey)));
        }
        (Scheme::Bearer, _) => None,
        (Scheme::Dpop, claims) => match prove(gate, metrics, origin.as_ref(), &request, (token, claims.as_deref())) {
            Proven::Key(jkt) => Some(jkt),
            Proven::Refused(answer) => return own(answer),
        },
    };
    // SECURITY: a session id reaches the MCP server only from the caller it was given to.
    if let (Some(binding), Some(claims)) = (&endpoint.sessions, &claims) {
        let (subject, client) = (claims.subject.as_deref(), claims.client_id.as_deref());
        if let Err(refused) = binding.admit(request.headers_mut(), found.session_ids, subject, client) {
            let answer = match refused {
                session::Refused::Repeated => answer::json_error(http::StatusCode::BAD_REQUEST, BODY_SESSION_400, 3),
                session::Refused::Unknown(_) => answer::json_error(http::StatusCode::NOT_FOUND, BODY_SESSION_404, 3),
            };
            return own(gate.cors.on_error(origin.as_ref(), answer));
        }
    }
    // The host the client asked for, as the gate's screen read it: the target's authority (HTTP/2
    // :authority, or an HTTP/1.1 absolute-form target) before the Host header (RFC 9112 §3.2.2).
    let authority = request.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let host = authority.or(found.host);
    let path = request.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
    // The client's HTTP version is its business with the edge; the pool picks the upstream's.
    *request.version_mut() = http::Version::HTTP_11;
    let headers = request.headers_mut();
    rewrite(headers, found.present, peer_ip, &endpoint.forwarded_proto, host);
    if gate.possession.is_some() {
        // The proof names the edge's URI and was used up here; the MCP server is told that
        // possession was shown, and of which key, instead. `Authorization: DPoP <token>` goes
        // on as it came (unless stripped below).
        headers.remove(DPOP);
        if let Some(jkt) = proven_jkt {
            headers.insert(X_AUTH_DPOP_JKT, jkt);
        }
    }
    if let (true, Some(claims)) = (endpoint.strip_authorization, &claims) {
        headers.remove(header::AUTHORIZATION);
        // Every value reaches the MCP server: one it could not take as it is goes percent-encoded
        // rather than missing, which would read as "no subject".
        if let Some(subject) = claims.subject.as_deref() {
            headers.insert(X_AUTH_SUBJECT, identity_value(subject));
        }
        if let Some(client) = claims.client_id.as_deref() {
            headers.insert(X_AUTH_CLIENT_ID, identity_value(client));
        }
        headers.insert(X_AUTH_SCOPES, identity_list(&claims.scopes));
    }

    // SECURITY: with a policy, the body is read and decided (with the headers as they will be
    // forwarded) before anything goes upstream, and exactly the bytes decided on are sent.
    // Boxed, and before the upload's clock starts; without a policy the body is not touched.
    let (request, lists) = match &endpoint.enforcer {
        None => (request.map(Inbound::Client), None),
        Some(enforcer) => {
            // A replayed stream may carry list answers to requests the edge no longer knows.
            let replays = request.method() == Method::GET && request.headers().contains_key(LAST_EVENT_ID);
            let inspected = match enforcer.inspect(request, claims.as_deref(), &gate.cors, origin.as_ref()) {
                inspect::Step::Decided(decided) => decided,
                // Boxed: the body's read would otherwise grow every exchange's future.
                inspect::Step::Read(unread) => {
                    Box::pin(enforcer.read_body(unread, claims.as_deref(), &gate.cors, origin.as_ref())).await
                }
            };
            match inspected {
                // The body's list requests, if any: their answers are filtered below.
                Ok(mut request) => {
                    let lists = request.extensions_mut().remove::<Lists>().or_else(|| replays.then(Lists::by_shape));
                    (request, lists.map(|lists| Box::new(enforcer.lister(lists, claims.clone()))))
                }
                Err(answer) => return own(answer),
            }
        }
    };
    // A body allowed from its headers may yet disagree with them: the record of that is
    // readied now, while the request is at hand.
    let pending = match (&endpoint.enforcer, request.body()) {
        (Some(enforcer), Inbound::Checked(checked)) => {
            Some(enforcer.pending(request.headers(), checked, claims.as_deref()))
        }
        _ => None,
    };
    let progress = Arc::new(Progress::starting());
    let left = endpoint.max_body_bytes;
    let upload = |body| Upload::new(body, Arc::clone(&progress), left, Arc::clone(metrics));
    let request = request.map(upload);
    // The upload's start is when the request goes to the MCP server: its clock reading serves
    // for the upstream latency too.
    let sent = progress.started.unwrap_or_else(Instant::now);
    let send = std::pin::pin!(endpoint.client.send(&endpoint.upstream, request, held));
    match answer_within(endpoint.response_timeout, &progress, send).await {
        // SECURITY: a body that disagreed with its Mcp-* headers was cut off before its end; an
        // answer the MCP server gave anyway (before reading it all) is not passed on.
        Some(_) if progress.disagreed().is_some() => {
            if let (Some(enforcer), Some(pending)) = (&endpoint.enforcer, pending) {
                enforcer.disagreed(pending);
            }
            let body = progress.disagreed().cloned().unwrap_or_default();
            own(inspect::disagreed(body, &gate.cors, origin.as_ref()))
        }
        Some(Ok(mut response)) => {
            if let (Some(binding), Some(claims)) = (&endpoint.sessions, &claims) {
                let (subject, client) = (claims.subject.as_deref(), claims.client_id.as_deref());
                if let Err(e) = binding.give(response.headers_mut(), subject, client) {
                    metrics.upstream_failed(false);
                    crate::warn!("upstream answer refused: {e}");
                    return own(gate.cors.on_error(origin.as_ref(), answer::bad_gateway()));
                }
            }
            strip_hop_by_hop(response.headers_mut());
            gate.cors.forwarded(origin.as_ref(), response.headers_mut());
            if held == Exchange::Held && client_h1 {
                // `X-Request-Id` is added in `forward`.
                compact(response.headers_mut(), 1);
            }
            metrics.upstream(response.status(), sent.elapsed());
            // A streaming answer ends with the token that opened it, and an event stream at
            // shutdown too; a body of known length ends by itself and costs no clock read here.
            let exact = http_body::Body::size_hint(response.body()).exact();
            let ends = match (expiry::streams(response.headers(), exact), &claims) {
                (Some(kind), Some(claims)) => {
                    let left =
                        expiry::time_left(claims.expires_at, endpoint.token_leeway, std::time::SystemTime::now());
                    let token = found.authorization.as_ref().and_then(|value| credential::token_in(value, span));
                    let revocation = match (&gate.check, endpoint.recheck_every, token) {
                        (Check::Tokens(checker), Some(every), Some(token)) if checker.can_recheck() => {
                            let (checker, token) = (Arc::clone(checker), Arc::<[u8]>::from(token));
                            Some(Revocation::watch(every, move || {
                                let (checker, token) = (Arc::clone(&checker), Arc::clone(&token));
                                async move { checker.recheck(&token).await != Recheck::Refused }
                            }))
                        }
                        _ => None,
                    };
                    let ends = kind == Streams::Events || left.is_some() || revocation.is_some();
                    ends.then_some((kind, left, revocation))
                }
                (Some(Streams::Events), None) => Some((Streams::Events, None, None)),
                _ => None,
            };
            let metrics = Arc::clone(metrics);
            let response = response.map(|body| match ends {
                Some((kind, left, revocation)) => {
                    Body::Expiring(Box::new(Expiring::new(body, streaming, kind, left, revocation, metrics)))
                }
                None => Body::Upstream(body, streaming),
            });
            match lists {
                // Boxed: only list answers wait for this future.
                Some(lister) => Box::pin(lists::answer(response, *lister)).await.map(|b| Body::Listed(Box::new(b))),
                None => response,
            }
        }
        // The upload went over the limit before the MCP server answered: the upstream request
        // was aborted (and the limit counted), and the client is told why. Had the MCP server
        // answered first, its response breaks off with the upload.
        Some(Err(_)) if progress.too_large.load(Ordering::Relaxed) => too_large(gate, origin.as_ref()),
        Some(Err(e)) => {
            metrics.upstream_failed(false);
            crate::warn!("upstream request failed: {e}");
            own(gate.cors.on_error(origin.as_ref(), answer::bad_gateway()))
        }
        None => {
            metrics.upstream_failed(true);
            own(gate.cors.on_error(origin.as_ref(), answer::gateway_timeout()))
        }
    }
}

/// The DPoP checks of a request presented with `Authorization: DPoP` whose token was accepted:
/// the thumbprint of the key it proved possession of, as a header value, or the refusal.
fn prove(
    gate: &Gate,
    metrics: &Metrics,
    origin: Option<&HeaderValue>,
    request: &Request<Incoming>,
    (token, claims): (Option<&[u8]>, Option<&Claims>),
) -> Proven {
    // SECURITY: the gate lets DPoP through only where it checks proofs and tokens; fail closed
    // should that ever not hold.
    let (Some(possession), Some(claims), Some(token)) = (&gate.possession, claims, token) else {
        metrics.token_rejected(TokenRejection::Invalid);
        return Proven::Refused(gate.refuse(origin, Scheme::Dpop, &Rejection::Invalid(TokenError::NotBound)));
    };
    let now = tokens::unix_now();
    let asked = possession::Request {
        headers: request.headers(),
        method: request.method().as_str(),
        path: request.uri().path(),
        token,
        jkt: claims.jkt.as_deref(),
    };
    match possession.check(asked, now) {
        // Base64url text is always a valid header value.
        Ok(proof) => match HeaderValue::try_from(proof.jkt_base64()) {
            Ok(jkt) => Proven::Key(jkt),
            Err(_) => Proven::Refused(gate.refuse_proof(origin, &Refusal::Proof(DpopError::Malformed("jkt")), now)),
        },
        Err(refusal) => {
            metrics.token_rejected(match refusal {
                Refusal::NotBound => TokenRejection::Invalid,
                Refusal::ReplayCacheFull => TokenRejection::DpopReplayFull,
                Refusal::Proof(_) | Refusal::KeyMismatch => TokenRejection::DpopProof,
            });
            Proven::Refused(gate.refuse_proof(origin, &refusal, now))
        }
    }
}

/// What [`prove`] found.
enum Proven {
    /// Possession of the token's key was shown: its thumbprint, as `X-Auth-Dpop-Jkt` says it.
    Key(HeaderValue),
    /// Refused, with the answer.
    Refused(Answer),
}

/// The 413 for a body over `--max-body-bytes`.
fn too_large(gate: &Gate, origin: Option<&HeaderValue>) -> Response<Body> {
    own(gate.cors.on_error(origin, answer::content_too_large()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::forwarding::X_FORWARDED_FOR;

    #[test]
    fn a_compacted_head_keeps_every_field_in_a_map_of_its_size() {
        let mut h = HeaderMap::with_capacity(24);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        let before = h.clone();
        compact(&mut h, 1);
        assert_eq!(h, before);
        let cookies: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"], "repeated fields stay, in order");
        assert!((4..24).contains(&h.capacity()), "room for the fields and one more, no more: {}", h.capacity());
    }

    #[test]
    fn one_scan_finds_the_first_of_each_field() {
        let mut h = HeaderMap::new();
        h.append(header::HOST, HeaderValue::from_static("mcp.example"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        h.append(header::ORIGIN, HeaderValue::from_static("https://app.example"));
        h.append(X_REQUEST_ID, HeaderValue::from_static("a"));
        h.append(X_REQUEST_ID, HeaderValue::from_static("b"));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        let found = Found::scan(&h);
        assert_eq!(found.host.as_ref(), h.get(header::HOST));
        assert_eq!(found.present.forwarded_for, 2);
        assert_eq!(found.origin.as_ref(), h.get(header::ORIGIN));
        assert_eq!(found.request_id.as_ref(), Some(&HeaderValue::from_static("a")));
        assert_eq!(found.request_ids, 2);
        assert_eq!(found.authorization.as_ref(), h.get(header::AUTHORIZATION));
        assert!(!found.present.to_strip, "nothing hop-by-hop was sent");
        let role = http::HeaderName::from_static("x-auth-role");
        for name in [header::TE, header::CONNECTION, X_AUTH_SUBJECT, X_AUTH_CLIENT_ID, role] {
            let mut h = h.clone();
            h.insert(name.clone(), HeaderValue::from_static("x"));
            assert!(Found::scan(&h).present.to_strip, "{name}");
        }
    }
    #[test]
    fn held_streams_are_told_from_calls_by_method_accept_and_mcp_method() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.append(*name, HeaderValue::from_static(value));
            }
            h
        };
        let of = |method: Method, h: &HeaderMap| exchange_of(&method, h, Found::scan(h).listen);
        // 2025-11-25: the GET that opens the server's stream.
        assert_eq!(of(Method::GET, &with(&[("accept", "Text/Event-Stream")])), Exchange::Held);
        assert_eq!(
            of(Method::GET, &with(&[("accept", "application/json"), ("accept", "text/event-stream")])),
            Exchange::Held
        );
        assert_eq!(of(Method::GET, &with(&[("accept", "application/json")])), Exchange::Call);
        assert_eq!(of(Method::GET, &with(&[])), Exchange::Call);
        // A POST accepts events for its own answer: a call.
        let post = [("accept", "application/json, text/event-stream"), ("mcp-method", "tools/call")];
        assert_eq!(of(Method::POST, &with(&post)), Exchange::Call);
        // 2026-07-28: the listen request.
        let listen = [("accept", "application/json, text/event-stream"), ("mcp-method", "subscriptions/listen")];
        assert_eq!(of(Method::POST, &with(&listen)), Exchange::Held);
        assert_eq!(of(Method::POST, &with(&[("mcp-method", "subscriptions/listen2")])), Exchange::Call);
    }
}
