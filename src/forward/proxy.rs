//! Forwarding authenticated requests to the MCP server, streaming both ways.
//!
//! Bodies are passed through as hyper's `Incoming` streams, never buffered, so an SSE event
//! reaches the client as soon as the upstream sends it and a large upload passes with flat
//! memory. Dropping the client's side (it went away) drops the upstream request with it.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
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
use crate::forward::audit::{Decisions, Pending};
use crate::forward::body::Body;
use crate::forward::deadline::{Deadlines, Slot};
use crate::forward::expiry::{self, Expiring, Revocation, Streams};
use crate::forward::inspect::{self, Enforcer};
use crate::forward::lists::{self, Lister};
use crate::forward::upload::{Inbound, Progress, Upload};
use crate::forward::upstream::{Exchange, Sent, UpstreamClient};
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
    /// The deadlines of the waits for answer heads, `response_timeout` after the upload last
    /// moved.
    deadlines: Deadlines,
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
            deadlines: Deadlines::new(),
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
    /// The client's one `Host` line now says the MCP server's host (see [`Found::scan`]).
    host_set: bool,
    /// What the forwarding headers' rewrite needs to know.
    present: Present,
}

impl Found {
    /// The first value of each field (as `HeaderMap::get` would give it). With `upstream_host`
    /// (the MCP server's `Host`, which the request goes with), the client's `Host` line, noted
    /// first, is given that value in place: setting it later hashed the name and looked it up
    /// again. Only one line is replaced so (the gate refused a request with more); with more,
    /// `host_set` stays false and the whole field is set later.
    fn scan(headers: &mut HeaderMap, upstream_host: Option<&HeaderValue>) -> Found {
        fn first(slot: &mut Option<HeaderValue>, value: &HeaderValue) {
            if slot.is_none() {
                *slot = Some(value.clone());
            }
        }
        let mut found = Found::default();
        let mut hosts = 0;
        for (name, value) in headers.iter_mut() {
            if name == header::ORIGIN {
                first(&mut found.origin, value);
            } else if name == header::HOST {
                hosts += 1;
                first(&mut found.host, value);
                if let Some(host) = upstream_host {
                    value.clone_from(host);
                }
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
        found.host_set = upstream_host.is_some() && hosts == 1;
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

/// A forwarded request's answer, as the main listener's service takes it: the edge's own
/// answer at once (a refused token, a body too large), or the exchange with the MCP server.
/// Everything before the request goes upstream is done before this is made, so on the common
/// path (a cached token, no body to read first) the boxed future holds only the wait for the
/// answer and what handling it needs: small enough for the allocator's per-thread cache, and
/// cheap to move.
pub enum Forwarding {
    Answered(Response<Body>),
    Exchange(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

/// Forwards `request`, which the gate let through with its token as `presented` says, to the upstream
/// and streams its answer back. The request id (the client's or a new one) goes upstream and
/// back to the client; the answer is counted, timed from `started` to its head, and logged.
/// The checks, the headers' rewrite and the send happen now; only the waits are left to the
/// future (a token the cache does not hold and a body a policy reads first are boxed apart).
/// Inlined into the service, so that the request is not copied once more as an argument.
#[inline(always)]
pub fn forward(
    endpoint: Arc<Endpoint>,
    telemetry: Arc<Telemetry>,
    presented: Presented,
    mut request: Request<Incoming>,
    peer_ip: HeaderValue,
    activity: Arc<Activity>,
    started: Instant,
) -> Forwarding {
    let found = Found::scan(request.headers_mut(), endpoint.client.host());
    let id = request_id::request_id(found.request_id.as_ref());
    // The client's one id, kept, is in place already.
    if found.request_ids != 1 || found.request_id.as_ref() != Some(&id) {
        request.headers_mut().insert(X_REQUEST_ID, id.clone());
    }
    let seen = Seen::of(&telemetry, &request);
    let answering = Answering { telemetry, id, seen, peer_ip, started };
    // A token the cache holds is answered without a wait; the full check, which may fetch
    // keys or introspect, is boxed apart with all that follows it.
    let gate = &endpoint.gate;
    let token = found.authorization.as_ref().and_then(|value| credential::token_in(value, presented.span.clone()));
    let cached = match (&gate.check, token) {
        (Check::Tokens(checker), Some(token)) => checker.check_cached(token),
        _ => None,
    };
    // SECURITY: the gate located the token without checking its form. A token the cache holds
    // was checked when it was accepted, and is this one byte for byte; any other is checked
    // now, before anything else is done with it, and refused as the gate would have.
    if cached.is_none() && !token.is_some_and(credential::well_formed) {
        return answering.unforwarded(own(gate.challenged(true, found.origin.as_ref())));
    }
    // From here until the response body ends, the connection is busy, not idle: a slow token
    // check, upload or MCP server must not look like a silent client to the idle watchdog.
    let streaming = Streaming::new(activity);
    // A declared length over the limit is refused before anything else: it would never pass.
    if http_body::Body::size_hint(request.body()).lower() > endpoint.max_body_bytes {
        answering.telemetry.metrics.limit_hit(Limit::Body);
        return answering.now(too_large(gate, found.origin.as_ref()));
    }
    // The request stays here, changed in place, until it goes upstream: each move of it (and
    // of what goes with it) through a function boundary is a copy of some 300 bytes.
    let mut prepared = Prepared {
        streaming,
        held: exchange_of(request.method(), request.headers(), found.listen),
        host_set: found.host_set,
        client_h1: request.version() < http::Version::HTTP_2,
        origin: found.origin,
        claims: None,
        authorization: found.authorization,
        span: presented.span,
        lists: None,
        pending: None,
    };
    let fields =
        Fields { used: presented.scheme, host: found.host, session_ids: found.session_ids, present: found.present };
    let verdict = match (&endpoint.gate.check, cached) {
        (Check::Presence, _) => None,
        (Check::Tokens(_), Some(verdict)) => Some(verdict),
        (Check::Tokens(_), None) => {
            let admitted = Admitted { request, prepared, fields };
            return Forwarding::Exchange(Box::pin(checking(endpoint, answering, admitted)));
        }
    };
    if let Err(response) = authorized(&endpoint, &answering, &mut request, &mut prepared, fields, verdict) {
        return answering.now(response);
    }
    if endpoint.enforcer.is_none() {
        return Forwarding::Exchange(launch(endpoint, answering, prepared, request));
    }
    match inspected(&endpoint, &mut prepared, request) {
        Err(response) => answering.now(response),
        Ok(Inspected::Ready(request)) => Forwarding::Exchange(launch(endpoint, answering, prepared, request)),
        // Boxed apart: the body's read would otherwise grow every exchange's future.
        Ok(Inspected::Read(unread, replays)) => {
            Forwarding::Exchange(Box::pin(reading(endpoint, answering, prepared, unread, replays)))
        }
    }
}

/// What the answer's count, access log line and request id need, from the request's arrival.
struct Answering {
    telemetry: Arc<Telemetry>,
    id: HeaderValue,
    seen: Option<Seen>,
    peer_ip: HeaderValue,
    started: Instant,
}

impl Answering {
    /// The answer, with the request id, counted and logged.
    fn done(self, response: Response<Body>) -> Response<Body> {
        self.done_at(response, Instant::now())
    }

    /// [`Answering::done`], the clock read at `now` already.
    #[inline(always)]
    fn done_at(self, mut response: Response<Body>, now: Instant) -> Response<Body> {
        response.headers_mut().insert(X_REQUEST_ID, self.id.clone());
        let (status, elapsed) = (response.status(), now.saturating_duration_since(self.started));
        access::answered_after(&self.telemetry, Route::Gate, status, elapsed, self.seen, &self.peer_ip, Some(self.id));
        response
    }

    /// The edge's own answer, given at once.
    fn now(self, response: Response<Body>) -> Forwarding {
        Forwarding::Answered(self.done(response))
    }

    /// The gate's answer to a token of the wrong form, given at once as the gate gives it:
    /// without a request id, since nothing was forwarded.
    fn unforwarded(self, response: Response<Body>) -> Forwarding {
        let status = response.status();
        access::answered(&self.telemetry, Route::Gate, status, self.started, self.seen, &self.peer_ip, None);
        Forwarding::Answered(response)
    }
}

/// What handling the MCP server's answer needs of the request, kept from before it went.
struct Prepared {
    /// The connection is busy, not idle, until the response body ends.
    streaming: Streaming,
    origin: Option<HeaderValue>,
    held: Exchange,
    /// The request's `Host` says the MCP server's already.
    host_set: bool,
    client_h1: bool,
    claims: Option<Arc<Claims>>,
    /// The `Authorization` value and where its token is, for rechecks of a stream's token.
    authorization: Option<HeaderValue>,
    span: Range<usize>,
    /// The body's list requests: their answers are filtered.
    lists: Option<Box<Lister>>,
    /// A body allowed from its headers may yet disagree with them: the record of that, readied
    /// while the request is at hand.
    pending: Option<Pending>,
}

/// What the token's check, DPoP, the session binding and the headers' rewrite need of the
/// request's fields, beside what is prepared for its answer.
struct Fields {
    used: Scheme,
    host: Option<HeaderValue>,
    session_ids: usize,
    present: Present,
}

/// A request past the first checks whose token the cache does not hold, for the full check.
struct Admitted {
    request: Request<Incoming>,
    prepared: Prepared,
    fields: Fields,
}

impl Admitted {
    /// The gate read the token and said where it is; it is taken, not parsed, again.
    fn token(&self) -> Option<&[u8]> {
        let span = self.prepared.span.clone();
        self.prepared.authorization.as_ref().and_then(|value| credential::token_in(value, span))
    }
}

/// The token check's outcome: `None` when the gate only asks that one be present.
type Verdict = Option<Result<Arc<Claims>, Rejection>>;

/// The exchange of a request whose token the cache does not hold: the full check first.
async fn checking(endpoint: Arc<Endpoint>, answering: Answering, admitted: Admitted) -> Response<Body> {
    let verdict = match (&endpoint.gate.check, admitted.token()) {
        (Check::Tokens(checker), Some(token)) => Some(checker.check(token).await),
        (Check::Tokens(_), None) => Some(Err(Rejection::Invalid(TokenError::Malformed("no bearer token")))),
        (Check::Presence, _) => None,
    };
    let Admitted { mut request, mut prepared, fields } = admitted;
    if let Err(response) = authorized(&endpoint, &answering, &mut request, &mut prepared, fields, verdict) {
        return answering.done(response);
    }
    if endpoint.enforcer.is_none() {
        return launch(endpoint, answering, prepared, request).await;
    }
    match inspected(&endpoint, &mut prepared, request) {
        Err(response) => answering.done(response),
        Ok(Inspected::Ready(request)) => launch(endpoint, answering, prepared, request).await,
        Ok(Inspected::Read(unread, replays)) => reading(endpoint, answering, prepared, unread, replays).await,
    }
}

/// The exchange of a request whose body the policy reads before deciding: the read started
/// now, then the decision and the wait for the answer, in one allocation (see [`Reading`]).
fn reading(
    endpoint: Arc<Endpoint>,
    answering: Answering,
    prepared: Prepared,
    unread: inspect::Unread,
    replays: bool,
) -> impl Future<Output = Response<Body>> + Send {
    match endpoint.enforcer.as_ref().map(|enforcer| enforcer.start_read(unread)) {
        Some((read, waiting)) => Reading::Read {
            read,
            launch: exchange::<Inbound>,
            replays,
            rest: Some(Rest { endpoint, answering, prepared, waiting }),
        },
        // Only an endpoint with a policy asks for a read.
        None => Reading::Answered { response: Some(answering.done(own(answer::bad_gateway()))) },
    }
}

/// What a [`Reading`] holds beside the read until the body is there.
struct Rest {
    endpoint: Arc<Endpoint>,
    answering: Answering,
    prepared: Prepared,
    waiting: inspect::Waiting,
}

pin_project_lite::pin_project! {
    /// A request's body being read for the policy, then (allowed) its exchange with the MCP
    /// server, one after the other in the same place: one allocation for both, and the exchange
    /// made where it stays rather than moved into a box of its own. `launch` is [`exchange`],
    /// whose future's type can only be named through it.
    #[project = ReadingProj]
    enum Reading<R, F> {
        Read { #[pin] read: R, launch: Launch<F>, replays: bool, rest: Option<Rest> },
        Exchange { #[pin] exchange: Exchanging<F> },
        // The edge's own answer, given on the first poll.
        Answered { response: Option<Response<Body>> },
    }
}

/// [`exchange`] of a request the policy read, as a plain function pointer: called through
/// `Fn` its arguments would be copied into a tuple first, and out of it again.
type Launch<F> = fn(Arc<Endpoint>, Answering, Prepared, Request<Inbound>) -> Exchanging<F>;

impl<R, F> Future for Reading<R, F>
where
    R: Future<Output = Result<bytes::Bytes, inspect::Refusal>>,
    F: Future<Output = Sent>,
{
    type Output = Response<Body>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response<Body>> {
        let (bytes, launch, replays, rest) = match self.as_mut().project() {
            ReadingProj::Exchange { exchange } => return exchange.poll(cx),
            ReadingProj::Answered { response } => {
                return Poll::Ready(response.take().unwrap_or_else(|| own(answer::bad_gateway())))
            }
            ReadingProj::Read { read, launch, replays, rest } => {
                (ready!(read.poll(cx)), *launch, *replays, rest.take())
            }
        };
        // Polled again after its answer (hyper does not).
        let Some(Rest { endpoint, answering, mut prepared, waiting }) = rest else {
            return Poll::Ready(own(answer::bad_gateway()));
        };
        let Some(enforcer) = &endpoint.enforcer else {
            return Poll::Ready(answering.done(own(answer::bad_gateway())));
        };
        let (cors, origin) = (&endpoint.gate.cors, prepared.origin.as_ref());
        // Taken apart in place: each move of the request through a function is a copy.
        let mut request = match enforcer.judge_read(waiting, bytes, prepared.claims.as_deref(), cors, origin) {
            Ok(request) => request,
            Err(answer) => return Poll::Ready(answering.done(own(answer))),
        };
        noted(enforcer, &mut prepared, &mut request, replays);
        self.set(Reading::Exchange { exchange: launch(endpoint, answering, prepared, request) });
        self.poll(cx)
    }
}

/// Where a request stands once the policy has looked at it.
enum Inspected {
    /// Ready to go upstream.
    Ready(Request<Inbound>),
    /// The policy reads its body first; whether it may resume a stream.
    Read(inspect::Unread, bool),
}

/// The token's verdict taken, then DPoP, the session binding and the headers' rewrite, on the
/// request in place: up to the policy, if any, and the send.
// The edge's own answer: boxing it would allocate for every refusal.
#[allow(clippy::result_large_err)]
#[inline(always)]
fn authorized(
    endpoint: &Endpoint,
    answering: &Answering,
    request: &mut Request<Incoming>,
    prepared: &mut Prepared,
    fields: Fields,
    verdict: Verdict,
) -> Result<(), Response<Body>> {
    let gate = &endpoint.gate;
    let metrics = &answering.telemetry.metrics;
    let Fields { used, host, session_ids, present } = fields;
    let origin = prepared.origin.as_ref();
    let claims = match verdict {
        Some(Ok(claims)) => Some(claims),
        Some(Err(rejection)) => {
            metrics.token_rejected(match rejection {
                Rejection::Invalid(_) => TokenRejection::Invalid,
                Rejection::InsufficientScope => TokenRejection::InsufficientScope,
                Rejection::NoKeys => TokenRejection::NoKeys,
                Rejection::IntrospectionFailed => TokenRejection::IntrospectionFailed,
            });
            return Err(own(gate.refuse(origin, used, &rejection)));
        }
        None => None,
    };
    // RFC 9449: a bound token only with a proof of its key, and a DPoP token only with one.
    // What is kept is the thumbprint's header value alone: nothing of the proof is held across
    // the exchange with the MCP server.
    let proven_jkt = match (used, &claims) {
        // SECURITY: a DPoP-bound token as a bearer token would make the binding mean nothing
        // (§7.2); refused whatever the mode.
        (Scheme::Bearer, Some(claims)) if claims.jkt.is_some() => {
            metrics.token_rejected(TokenRejection::Invalid);
            return Err(own(gate.refuse(origin, used, &Rejection::Invalid(TokenError::BoundToKey))));
        }
        (Scheme::Bearer, _) => None,
        (Scheme::Dpop, claims) => {
            let token = prepared.authorization.as_ref().and_then(|v| credential::token_in(v, prepared.span.clone()));
            match prove(gate, metrics, origin, request, (token, claims.as_deref())) {
                Proven::Key(jkt) => Some(jkt),
                Proven::Refused(answer) => return Err(own(answer)),
            }
        }
    };
    // SECURITY: a session id reaches the MCP server only from the caller it was given to.
    if let (Some(binding), Some(claims)) = (&endpoint.sessions, &claims) {
        let (subject, client) = (claims.subject.as_deref(), claims.client_id.as_deref());
        if let Err(refused) = binding.admit(request.headers_mut(), session_ids, subject, client) {
            let answer = match refused {
                session::Refused::Repeated => answer::json_error(http::StatusCode::BAD_REQUEST, BODY_SESSION_400, 3),
                session::Refused::Unknown(_) => answer::json_error(http::StatusCode::NOT_FOUND, BODY_SESSION_404, 3),
            };
            return Err(own(gate.cors.on_error(origin, answer)));
        }
    }
    // The host the client asked for, as the gate's screen read it: the target's authority (HTTP/2
    // :authority, or an HTTP/1.1 absolute-form target) before the Host header (RFC 9112 §3.2.2).
    let authority = request.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let host = authority.or(host);
    // The target goes upstream in origin-form: already so from an HTTP/1.1 client (the URI is
    // then left as it is), made so from an absolute-form target or HTTP/2's pseudo-fields.
    if request.uri().scheme().is_some() || request.uri().authority().is_some() {
        let path = request.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::from(path);
    }
    // The client's HTTP version is its business with the edge; the pool picks the upstream's.
    *request.version_mut() = http::Version::HTTP_11;
    let headers = request.headers_mut();
    rewrite(headers, present, &answering.peer_ip, &endpoint.forwarded_proto, host);
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
    prepared.claims = claims;
    Ok(())
}

/// The policy's look at a request ready to go: decided from its headers, or its body to be
/// read first. SECURITY: with a policy, the body is read and decided (with the headers as they
/// will be forwarded) before anything goes upstream, and exactly the bytes decided on are sent.
// The edge's own answer is smaller than what goes on; boxing it would allocate for every
// refusal.
#[allow(clippy::result_large_err)]
fn inspected(
    endpoint: &Endpoint,
    prepared: &mut Prepared,
    request: Request<Incoming>,
) -> Result<Inspected, Response<Body>> {
    let Some(enforcer) = &endpoint.enforcer else {
        return Ok(Inspected::Ready(request.map(Inbound::Client)));
    };
    // A replayed stream may carry list answers to requests the edge no longer knows.
    let replays = request.method() == Method::GET && request.headers().contains_key(LAST_EVENT_ID);
    let (cors, origin) = (&endpoint.gate.cors, prepared.origin.as_ref());
    match enforcer.inspect(request, prepared.claims.as_deref(), cors, origin) {
        inspect::Step::Decided(Ok(mut request)) => {
            noted(enforcer, prepared, &mut request, replays);
            Ok(Inspected::Ready(request))
        }
        inspect::Step::Decided(Err(answer)) => Err(own(answer)),
        inspect::Step::Read(unread) => Ok(Inspected::Read(unread, replays)),
    }
}

/// What the answer's handling needs of a request the policy allowed, noted in `prepared`; the
/// request is borrowed, not moved, so that it is not copied on its way.
fn noted(enforcer: &Enforcer, prepared: &mut Prepared, request: &mut Request<Inbound>, replays: bool) {
    // The body's list requests, if any: their answers are filtered below.
    let lists = request.extensions_mut().remove::<Lists>().or_else(|| replays.then(Lists::by_shape));
    prepared.lists = lists.map(|lists| Box::new(enforcer.lister(lists, prepared.claims.clone())));
    if let Inbound::Checked(checked) = request.body() {
        prepared.pending = Some(enforcer.pending(request.headers(), checked, prepared.claims.as_deref()));
    }
}

/// Sends the request upstream, now, and makes the future that waits for its answer, boxed
/// where it is made. Inlined, so that the request and what goes with it are not copied once
/// more as arguments.
#[inline(always)]
fn launch<B: Into<Inbound>>(
    endpoint: Arc<Endpoint>,
    answering: Answering,
    prepared: Prepared,
    request: Request<B>,
) -> Pin<Box<Exchanging<impl Future<Output = Sent> + Send>>> {
    Box::pin(exchange(endpoint, answering, prepared, request))
}

/// Sends the request upstream, now, and makes the future that waits for its answer (unboxed,
/// for a future that holds it in place).
#[inline(always)]
fn exchange<B: Into<Inbound>>(
    endpoint: Arc<Endpoint>,
    answering: Answering,
    prepared: Prepared,
    request: Request<B>,
) -> Exchanging<impl Future<Output = Sent> + Send> {
    let progress = Arc::new(Progress::starting());
    let (left, metrics) = (endpoint.max_body_bytes, &answering.telemetry.metrics);
    let request = request.map(|body| Upload::new(body.into(), Arc::clone(&progress), left, Arc::clone(metrics)));
    // The upload's start is when the request goes to the MCP server: its clock reading serves
    // for the upstream latency and the answer's deadline too.
    let sent = progress.started.unwrap_or_else(Instant::now);
    let sending = endpoint.client.send(&endpoint.upstream, request, prepared.held, prepared.host_set, sent);
    Exchanging {
        sending,
        slot: None,
        last: 0,
        endpoint,
        progress,
        sent,
        answering: Some(answering),
        prepared: Some(prepared),
        listing: None,
    }
}

pin_project_lite::pin_project! {
    /// The wait for the MCP server's answer head, until `--upstream-timeout` has passed since
    /// the upload last moved (or ended), then the answer handed on. Written out rather than
    /// `async` so that each part is held once, in place. Dropping it cancels the upstream
    /// request.
    struct Exchanging<F> {
        #[pin]
        sending: F,
        // The place of the answer's deadline in the endpoint's table, once it waits.
        slot: Slot,
        // The upload's mark (milliseconds from `sent`) the deadline was last set from.
        last: u64,
        endpoint: Arc<Endpoint>,
        progress: Arc<Progress>,
        sent: Instant,
        answering: Option<Answering>,
        prepared: Option<Prepared>,
        // A list answer being filtered (boxed: only list answers wait for this).
        listing: Option<Pin<Box<dyn Future<Output = Response<Body>> + Send>>>,
    }
    impl<F> PinnedDrop for Exchanging<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.endpoint.deadlines.forget(this.slot);
        }
    }
}

impl<F: Future<Output = Sent>> Future for Exchanging<F> {
    type Output = Response<Body>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response<Body>> {
        let this = self.project();
        if let Some(listing) = this.listing {
            let response = ready!(listing.as_mut().poll(cx));
            return Poll::Ready(done(this.answering.take(), response));
        }
        let outcome = match this.sending.poll(cx) {
            Poll::Ready(outcome) => Some(outcome),
            Poll::Pending => loop {
                let deadlines = &this.endpoint.deadlines;
                let deadline = *this.sent + this.endpoint.response_timeout;
                ready!(deadlines.poll_passed(this.slot, deadline, cx));
                let last = this.progress.last();
                if last == *this.last {
                    break None;
                }
                *this.last = last;
                deadlines.extend(*this.slot, deadline + Duration::from_millis(last));
            },
        };
        this.endpoint.deadlines.forget(this.slot);
        let (Some(prepared), Some(answering)) = (this.prepared.take(), this.answering.as_ref()) else {
            // Polled again after its answer (hyper does not).
            return Poll::Ready(own(answer::bad_gateway()));
        };
        let metrics = &answering.telemetry.metrics;
        // One clock reading for the upstream's time and the request's.
        let now = Instant::now();
        match settle(this.endpoint, metrics, prepared, this.progress, (*this.sent, now), outcome) {
            Settled::Now(response) => Poll::Ready(match this.answering.take() {
                Some(answering) => answering.done_at(response, now),
                None => response,
            }),
            Settled::Listing(mut listing) => match listing.as_mut().poll(cx) {
                Poll::Ready(response) => Poll::Ready(done(this.answering.take(), response)),
                Poll::Pending => {
                    *this.listing = Some(listing);
                    Poll::Pending
                }
            },
        }
    }
}

/// The answer, with the request id, counted and logged (once).
fn done(answering: Option<Answering>, response: Response<Body>) -> Response<Body> {
    match answering {
        Some(answering) => answering.done(response),
        None => response,
    }
}

/// What the MCP server's answer (or its absence) becomes.
enum Settled {
    Now(Response<Body>),
    /// A list answer, filtered as it is read.
    Listing(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

/// The client's answer from the MCP server's (`None`: it did not come in time), sent at `sent`
/// and here at `now`.
fn settle(
    endpoint: &Endpoint,
    metrics: &Arc<Metrics>,
    prepared: Prepared,
    progress: &Progress,
    (sent, now): (Instant, Instant),
    outcome: Option<Sent>,
) -> Settled {
    let upstream_time = now.saturating_duration_since(sent);
    let gate = &endpoint.gate;
    let Prepared { streaming, origin, held, client_h1, claims, authorization, span, lists, pending, .. } = prepared;
    let origin = origin.as_ref();
    let response = match outcome {
        // SECURITY: a body that disagreed with its Mcp-* headers was cut off before its end; an
        // answer the MCP server gave anyway (before reading it all) is not passed on.
        Some(_) if progress.disagreed().is_some() => {
            if let (Some(enforcer), Some(pending)) = (&endpoint.enforcer, pending) {
                enforcer.disagreed(pending);
            }
            let body = progress.disagreed().cloned().unwrap_or_default();
            own(inspect::disagreed(body, &gate.cors, origin))
        }
        Some(Ok(mut response)) => {
            if let (Some(binding), Some(claims)) = (&endpoint.sessions, &claims) {
                let (subject, client) = (claims.subject.as_deref(), claims.client_id.as_deref());
                if let Err(e) = binding.give(response.headers_mut(), subject, client) {
                    metrics.upstream_failed(false);
                    crate::warn!("upstream answer refused: {e}");
                    return Settled::Now(own(gate.cors.on_error(origin, answer::bad_gateway())));
                }
            }
            strip_hop_by_hop(response.headers_mut());
            gate.cors.forwarded(origin, response.headers_mut());
            if held == Exchange::Held && client_h1 {
                // `X-Request-Id` is added by `Answering::done`.
                compact(response.headers_mut(), 1);
            }
            metrics.upstream(response.status(), upstream_time);
            // A streaming answer ends with the token that opened it, and an event stream at
            // shutdown too; a body of known length ends by itself and costs no clock read here.
            let exact = http_body::Body::size_hint(response.body()).exact();
            if exact.is_some() {
                response.body_mut().ends_about(now);
            }
            let ends = match (expiry::streams(response.headers(), exact), &claims) {
                (Some(kind), Some(claims)) => {
                    let left =
                        expiry::time_left(claims.expires_at, endpoint.token_leeway, std::time::SystemTime::now());
                    let token = authorization.as_ref().and_then(|value| credential::token_in(value, span));
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
                Some(lister) => {
                    return Settled::Listing(Box::pin(async move {
                        lists::answer(response, *lister).await.map(|b| Body::Listed(Box::new(b)))
                    }))
                }
                None => response,
            }
        }
        // The upload went over the limit before the MCP server answered: the upstream request
        // was aborted (and the limit counted), and the client is told why. Had the MCP server
        // answered first, its response breaks off with the upload.
        Some(Err(_)) if progress.too_large.load(Ordering::Relaxed) => too_large(gate, origin),
        Some(Err(e)) => {
            metrics.upstream_failed(false);
            crate::warn!("upstream request failed: {e}");
            own(gate.cors.on_error(origin, answer::bad_gateway()))
        }
        None => {
            metrics.upstream_failed(true);
            own(gate.cors.on_error(origin, answer::gateway_timeout()))
        }
    };
    Settled::Now(response)
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
        let found = Found::scan(&mut h.clone(), None);
        assert_eq!(found.host.as_ref(), h.get(header::HOST));
        assert_eq!(found.present.forwarded_for, 2);
        assert_eq!(found.origin.as_ref(), h.get(header::ORIGIN));
        assert_eq!(found.request_id.as_ref(), Some(&HeaderValue::from_static("a")));
        assert_eq!(found.request_ids, 2);
        assert_eq!(found.authorization.as_ref(), h.get(header::AUTHORIZATION));
        assert!(!found.present.to_strip, "nothing hop-by-hop was sent");
        assert!(!found.host_set, "no upstream host to put in place");
        let role = http::HeaderName::from_static("x-auth-role");
        for name in [header::TE, header::CONNECTION, X_AUTH_SUBJECT, X_AUTH_CLIENT_ID, role] {
            let mut h = h.clone();
            h.insert(name.clone(), HeaderValue::from_static("x"));
            assert!(Found::scan(&mut h, None).present.to_strip, "{name}");
        }
    }
    #[test]
    fn the_upstream_host_takes_the_place_of_the_clients_one_line() {
        let upstream = HeaderValue::from_static("127.0.0.1:9000");
        let mut h = HeaderMap::new();
        h.append(header::HOST, HeaderValue::from_static("mcp.example"));
        h.append(header::ACCEPT, HeaderValue::from_static("application/json"));
        let found = Found::scan(&mut h, Some(&upstream));
        assert!(found.host_set);
        assert_eq!(
            found.host.as_ref(),
            Some(&HeaderValue::from_static("mcp.example")),
            "the client's, for X-Forwarded-Host"
        );
        assert_eq!(h.get_all(header::HOST).iter().collect::<Vec<_>>(), [&upstream]);
        // No line to replace (HTTP/2's :authority), or more than one: the field is set later.
        let mut none = HeaderMap::new();
        assert!(!Found::scan(&mut none, Some(&upstream)).host_set);
        let mut two = HeaderMap::new();
        two.append(header::HOST, HeaderValue::from_static("a.example"));
        two.append(header::HOST, HeaderValue::from_static("b.example"));
        assert!(!Found::scan(&mut two, Some(&upstream)).host_set);
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
        let of = |method: Method, h: &HeaderMap| exchange_of(&method, h, Found::scan(&mut h.clone(), None).listen);
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
