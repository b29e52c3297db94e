//! The MCP authorization policy at the MCP endpoint (issue 12): a request's operation decided,
//! and the answer for one the policy refuses.
//!
//! From MCP 2026-07-28 a request announces its operation in `Mcp-Method` and `Mcp-Name`: it is
//! decided from them before any body byte moves, and the body streams to the MCP server while
//! [`crate::mcp::agreement`] checks that it says the same; one that does not is cut off before
//! its end and answered `400` / `-32020`. Before that revision the body is the only source: it
//! is read whole, up to `--max-inspect-bytes`, decided, and the bytes decided on are sent.
//!
//! One simple rule keeps this safe: nothing the policy has not allowed reaches the MCP server
//! whole. A body too large to read, one that is not JSON-RPC, or headers that disagree with it
//! are refused, never passed unchecked. Requests of a resource without a policy never come here.
//!
//! Reading the body and sending the answer are the I/O; [`judge`] and the answers are pure.

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::common::answer::{with_headers, Answer, JSON, NO_STORE};
use crate::common::route::PRM_WELL_KNOWN;
use crate::config::policy::Policy;
use crate::config::{Config, PolicyDenial};
use crate::forward::audit::{Applied, Asker, Decisions, Pending};
use crate::forward::lists::Lister;
use crate::forward::upload::{Checked, Inbound};
use crate::gate::challenge;
use crate::gate::cors::Cors;
use crate::gate::dpop::SUPPORTED_ALGS;
use crate::gate::jwt::Claims as TokenClaims;
use crate::mcp::agreement::{Agreement, Expected};
use crate::mcp::decide::{self, Claims, Denial, NoClaims, Verdict};
use crate::mcp::headers::{self, HeaderError, ProtocolVersion, Source};
use crate::mcp::jsonrpc::{self, Body, Id, Message};
use crate::mcp::lists::{ListKind, Lists};
use crate::telemetry::audit::From;

/// The JSON-RPC error code of a request the policy denies, in the tool-error mode (a
/// server-defined code, JSON-RPC 2.0 §5.1; MCP defines none for authorization).
pub const POLICY_DENIED: i64 = -32003;

/// A resource's policy and how it is applied; made once per configuration.
pub struct Enforcer {
    /// Shared with the filters of list answers, which outlive the request.
    policy: Arc<Policy>,
    denial: PolicyDenial,
    /// The resource's `--required-scope`s: what an operation no rule selects needs under a
    /// default of allow, and what a step-up must keep.
    required: Vec<String>,
    max_inspect_bytes: u64,
    /// How long the client's body may pause before the read gives up.
    stall: Duration,
    /// The RFC 9728 metadata URL the step-up challenge points at.
    metadata: String,
    /// The resource's own `--scope`s: held ones are kept in a step-up like the policy's.
    supported: Vec<String>,
    /// Where decisions are counted and, with `--audit-log`, written.
    decisions: Decisions,
    /// `DPoP algs="…"`: the step-up's scheme for a DPoP-bound token.
    dpop_scheme: String,
}

/// Why a request stops at the edge instead of going to the MCP server.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// The body is (or declares itself) larger than `--max-inspect-bytes`.
    TooLarge,
    /// The client stopped sending its body.
    Stalled,
    /// The client's body broke off (it went away, or broke its framing).
    Broken,
    /// `Mcp-*` headers that are malformed or disagree with the body: the `-32020` answer.
    Headers(Vec<u8>),
    /// The body is not JSON-RPC.
    NotJsonRpc(jsonrpc::ExtractError),
    /// The policy denies an operation (boxed: the largest variant, and the rarest).
    Denied(Box<Denied>),
}

/// What [`Enforcer::inspect`] made of a request from its headers.
pub enum Step {
    /// Decided: the request to forward, or the answer.
    Decided(Result<Request<Inbound>, Answer>),
    /// The body must be read first ([`Enforcer::read_body`]).
    Read(Unread),
}

/// A request whose body must be read before it is decided or answered.
pub struct Unread {
    parts: http::request::Parts,
    body: Incoming,
    why: Why,
}

/// A request whose body is being read: the rest of it, for [`Enforcer::judge_read`].
pub struct Waiting {
    parts: http::request::Parts,
    why: Why,
}

enum Why {
    /// Decided from the body; what the headers said when it borrows nothing from them.
    Decide(Option<Source<'static>>),
    /// Denied from the headers in the tool-error mode: the answer names the body's id.
    Denied { rule: Option<usize>, reason: Denial, tagged: bool },
}

/// A policy's denial, with what its answer names.
#[derive(Debug, PartialEq)]
pub struct Denied {
    pub reason: Denial,
    /// The deciding rule (`None`: the default, or a batch).
    pub rule: Option<usize>,
    /// The request, when the body is exactly one: the tool-error mode answers it by its id.
    pub single: Option<Asked>,
}

/// The one request of a body, as a tool-error answer names it.
#[derive(Debug, PartialEq)]
pub struct Asked {
    pub id: Id,
    pub method: String,
    pub target: Option<String>,
    /// Whether the request's revision (2026-07-28 and later) requires `resultType` on a result.
    pub tagged: bool,
}

impl Enforcer {
    /// The resource's enforcer, when it has a policy.
    pub fn new(config: &Config, decisions: Decisions) -> Option<Enforcer> {
        let policy = Arc::new(config.policy.clone()?);
        Some(Enforcer {
            policy,
            denial: config.policy_denial,
            required: config.required_scopes.clone(),
            max_inspect_bytes: config.limits.max_inspect_bytes,
            stall: config.upstream_timeout,
            metadata: format!("{}{PRM_WELL_KNOWN}{}", config.resource.origin, config.resource.path),
            supported: config.scopes.clone(),
            decisions,
            dpop_scheme: format!("DPoP algs=\"{}\",", SUPPORTED_ALGS.map(|alg| alg.name()).join(" ")),
        })
    }

    /// Decides a request from what its headers say, which from 2026-07-28 is all a decision
    /// needs: on allow, the request with its body handed on under a check. A request decided
    /// from its body, or denied in the tool-error mode (whose answer needs the body's id), is
    /// handed back to be read with [`Enforcer::read_body`]. Synchronous, so that the usual
    /// request allocates no future for it.
    pub fn inspect(
        &self,
        request: Request<Incoming>,
        claims: Option<&TokenClaims>,
        cors: &Cors,
        origin: Option<&HeaderValue>,
    ) -> Step {
        let (mut parts, body) = request.into_parts();
        // Only a body carries an operation: GET (the SSE stream) and DELETE (a session's end)
        // pass as they are. SECURITY: any request with a body, and every POST, is decided; a
        // POST without one is not JSON-RPC.
        let not_post = parts.method != Method::POST;
        if not_post && http_body::Body::is_end_stream(&body) {
            return Step::Decided(Ok(Request::from_parts(parts, Inbound::Client(body))));
        }
        let (held, payload): (&[String], &dyn Claims) = match claims {
            Some(c) => (&c.scopes, &c.payload),
            None => (&[], &NoClaims),
        };
        let asker = Asker { claims, headers: &parts.headers, source: From::Headers };
        let announced = match headers::read(&parts.headers) {
            Err(e) => {
                self.decisions.refused(asker, None, "invalid_headers");
                return Step::Decided(Err(self.answer(&Refusal::Headers(e.answer()), claims, cors, origin)));
            }
            Ok(Source::Headers(announced)) if !not_post => {
                let verdict = decide::decide(&self.policy, announced.call(), held, payload, &self.required);
                let label = self.decisions.decided(asker, announced.call(), &verdict, &self.applied());
                match verdict {
                    Verdict::Allow { .. } => {
                        Ok((Expected::new(&announced), ListKind::of(announced.call().method), label))
                    }
                    Verdict::Deny { rule, reason } => Err((rule, reason, announced.version().tags_results())),
                }
            }
            // What was read is passed on, so that the body's judge does not read it again.
            Ok(Source::Body { version }) => {
                return Step::Read(Unread { parts, body, why: Why::Decide(Some(Source::Body { version })) })
            }
            Ok(Source::Headers(_)) => return Step::Read(Unread { parts, body, why: Why::Decide(None) }),
        };
        match announced {
            // SECURITY: allowed from the headers; the body goes on only as far as it agrees.
            Ok((expected, list, label)) => {
                // A list asked for in the headers: the one answer this body gets is filtered.
                if let Some(kind) = list {
                    parts.headers.remove(header::ACCEPT_ENCODING);
                    parts.extensions.insert(Lists::single(kind));
                }
                let checked = Checked::new(body, Agreement::new(expected), label);
                Step::Decided(Ok(Request::from_parts(parts, Inbound::Checked(Box::new(checked)))))
            }
            // The tool-error mode answers the request by its id, which only the body has.
            Err((rule, reason, tagged)) if self.denial == PolicyDenial::ToolError => {
                Step::Read(Unread { parts, body, why: Why::Denied { rule, reason, tagged } })
            }
            Err((rule, reason, _)) => {
                let denied = Denied { reason, rule, single: None };
                Step::Decided(Err(self.answer(&Refusal::Denied(Box::new(denied)), claims, cors, origin)))
            }
        }
    }

    /// Starts reading the body of a request [`Enforcer::inspect`] handed back: the read, and
    /// the rest of the request for [`Enforcer::judge_read`]. Not an `async fn`: the caller's
    /// future then holds the rest once, beside the read.
    pub fn start_read(
        &self,
        unread: Unread,
    ) -> (impl std::future::Future<Output = Result<Bytes, Refusal>> + Send, Waiting) {
        let Unread { parts, body, why } = unread;
        (read(body, self.max_inspect_bytes, self.stall), Waiting { parts, why })
    }

    /// Decides a request whose body [`Enforcer::start_read`] read (or failed to).
    // The answer is smaller than the request that goes on; boxing it would allocate for every
    // refusal.
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    pub fn judge_read(
        &self,
        waiting: Waiting,
        bytes: Result<Bytes, Refusal>,
        claims: Option<&TokenClaims>,
        cors: &Cors,
        origin: Option<&HeaderValue>,
    ) -> Result<Request<Inbound>, Answer> {
        let Waiting { parts, why } = waiting;
        match why {
            Why::Decide(known) => self
                .decide_body(parts, bytes, known, claims)
                .map_err(|refusal| self.answer(&refusal, claims, cors, origin)),
            Why::Denied { rule, reason, tagged } => {
                let single =
                    bytes.ok().and_then(|bytes| jsonrpc::extract(&bytes).ok().as_ref().and_then(|b| single(b, tagged)));
                let denied = Denied { reason, rule, single };
                Err(self.answer(&Refusal::Denied(Box::new(denied)), claims, cors, origin))
            }
        }
    }

    /// Decides a request from its body (clients before 2026-07-28), read whole; `known` is what
    /// the headers said, when it borrows nothing from them (otherwise they are read again).
    #[inline(always)]
    fn decide_body(
        &self,
        mut parts: http::request::Parts,
        read: Result<Bytes, Refusal>,
        known: Option<Source<'static>>,
        claims: Option<&TokenClaims>,
    ) -> Result<Request<Inbound>, Refusal> {
        let not_post = parts.method != Method::POST;
        let asker = Asker { claims, headers: &parts.headers, source: From::Body };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(refusal) => {
                self.decisions.refused(asker, None, refusal.reason());
                return Err(refusal);
            }
        };
        // An HTTP/2 GET may end its stream with an empty DATA frame rather than its headers.
        if not_post && bytes.is_empty() {
            return Ok(Request::from_parts(parts, Inbound::Inspected(None)));
        }
        let (held, payload): (&[String], &dyn Claims) = match claims {
            Some(c) => (&c.scopes, &c.payload),
            None => (&[], &NoClaims),
        };
        let applied = self.applied();
        let seen = &mut |judged: Judged<'_, '_>| match judged {
            Judged::Decided(body, verdict) => self.decisions.body(asker, body, verdict, &applied, payload),
            Judged::Disagrees(body) => self.decisions.disagrees(asker, body),
            Judged::Unread(reason) => self.decisions.refused(asker, None, reason),
        };
        let source = known.map_or_else(|| headers::read(&parts.headers), Ok);
        let lists = judge(&self.policy, source, &bytes, held, payload, &self.required, seen)?;
        // The answer to a list request is filtered (`crate::forward::lists`): it must come
        // uncompressed, and the response side finds which ids to filter in the extensions.
        if !lists.is_empty() {
            parts.headers.remove(header::ACCEPT_ENCODING);
            parts.extensions.insert(lists);
        }
        // The bytes decided on go as one body of known length, whatever framing the client used;
        // a request that already says exactly that length, and nothing else, keeps its header.
        let mut lengths = parts.headers.get_all(header::CONTENT_LENGTH).iter();
        let said = match (lengths.next(), lengths.next()) {
            (Some(value), None) => value.to_str().ok().and_then(|v| v.parse::<u64>().ok()),
            _ => None,
        };
        if said != Some(bytes.len() as u64) || parts.headers.contains_key(header::TRANSFER_ENCODING) {
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len() as u64));
        }
        Ok(Request::from_parts(parts, Inbound::Inspected(Some(bytes))))
    }

    fn applied(&self) -> Applied<'_> {
        Applied { policy: &self.policy, required: &self.required }
    }

    /// What the audit needs of a request allowed from its headers whose body is streaming
    /// under a check (`headers` as forwarded); see [`Enforcer::disagreed`].
    pub fn pending(&self, headers: &HeaderMap, checked: &Checked, claims: Option<&TokenClaims>) -> Pending {
        self.decisions.pending(Asker { claims, headers, source: From::Headers }, checked.label())
    }

    /// Records that a body allowed from its headers disagreed with them as it streamed.
    pub fn disagreed(&self, pending: Pending) {
        self.decisions.disagreed(pending);
    }

    /// What filters the answer to a request that asked for `lists`, for the caller of `claims`.
    pub fn lister(&self, lists: Lists, claims: Option<Arc<TokenClaims>>) -> Lister {
        Lister {
            policy: Arc::clone(&self.policy),
            claims,
            required: self.required.as_slice().into(),
            lists,
            bound: self.max_inspect_bytes,
            stall: self.stall,
        }
    }

    /// The answer to a refused request, with the endpoint's CORS policy.
    pub fn answer(
        &self,
        refusal: &Refusal,
        claims: Option<&TokenClaims>,
        cors: &Cors,
        origin: Option<&HeaderValue>,
    ) -> Answer {
        let (status, body) = match refusal {
            Refusal::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                oauth_error(
                    "content_too_large",
                    &format!(
                        "The request body is too large to inspect for this resource's MCP policy (over {} bytes)",
                        self.max_inspect_bytes
                    ),
                ),
            ),
            Refusal::Stalled => {
                (StatusCode::REQUEST_TIMEOUT, oauth_error("request_timeout", "The request body stopped arriving"))
            }
            Refusal::Broken => (StatusCode::BAD_REQUEST, oauth_error("invalid_request", "The request body broke off")),
            Refusal::Headers(body) => (StatusCode::BAD_REQUEST, Bytes::from(body.clone())),
            Refusal::NotJsonRpc(e) => (StatusCode::BAD_REQUEST, invalid_request(e)),
            Refusal::Denied(denied) => return self.denied(denied, claims, cors, origin),
        };
        json_answer(status, body, cors, origin)
    }

    fn denied(
        &self,
        denied: &Denied,
        claims: Option<&TokenClaims>,
        cors: &Cors,
        origin: Option<&HeaderValue>,
    ) -> Answer {
        if let (PolicyDenial::ToolError, Some(asked)) = (self.denial, &denied.single) {
            return json_answer(StatusCode::OK, tool_error(asked, &denied.reason), cors, origin);
        }
        match &denied.reason {
            Denial::Scope { needed, missing } => {
                let held = claims.map_or(&[][..], |c| c.scopes.as_slice());
                let scope = self.step_up_scope(needed, held);
                // The scheme the token came with: a DPoP-bound token (only ever accepted with its
                // proof) is challenged as RFC 9449 §7.1 says, naming the proof algorithms.
                let scheme = match claims.is_some_and(|c| c.jkt.is_some()) {
                    true => self.dpop_scheme.as_str(),
                    false => "Bearer",
                };
                let value = format!(
                    "{scheme} error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{}\"",
                    self.metadata
                );
                // Scopes and the URL were validated as header-safe when the configuration was.
                let value = HeaderValue::try_from(value)
                    .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"insufficient_scope\""));
                let body = json!({
                    "error": "insufficient_scope",
                    "error_description": format!("This operation needs the scope {}", missing.join(" ")),
                    "scope": scope,
                });
                let body = Bytes::from(body.to_string());
                challenge::answer(StatusCode::FORBIDDEN, std::slice::from_ref(&value), body, cors, origin)
            }
            other => json_answer(StatusCode::FORBIDDEN, oauth_error("forbidden", &describe(other)), cors, origin),
        }
    }

    /// The challenge's `scope`: everything the operation needs, then the resource's required
    /// scopes and the scopes the token holds that the resource knows (its `--scope`s and the
    /// policy's). A client of 2025-11-25 asks for exactly these and replaces its token, so a
    /// step-up must not cost it what it could already do. Scopes the resource does not name
    /// (another resource's, `openid`) are not echoed.
    fn step_up_scope(&self, needed: &[String], held: &[String]) -> String {
        let mut out: Vec<&str> = Vec::new();
        let known = held.iter().filter(|s| self.policy.index(s).is_some() || self.supported.contains(s));
        for scope in needed.iter().chain(&self.required).chain(known) {
            if !out.contains(&scope.as_str()) {
                out.push(scope);
            }
        }
        out.join(" ")
    }
}

impl Refusal {
    /// How the audit log names a refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::Stalled => "stalled",
            Refusal::Broken => "broken",
            Refusal::Headers(_) => "header_mismatch",
            Refusal::NotJsonRpc(_) => "not_jsonrpc",
            Refusal::Denied(_) => "denied",
        }
    }
}

/// What [`judge`] read and decided, shown to its caller for the record.
pub enum Judged<'a, 'b> {
    /// The body's operations, and the verdict on them together.
    Decided(&'a Body<'b>, &'a Verdict),
    /// The body disagrees with the `Mcp-*` headers.
    Disagrees(&'a Body<'b>),
    /// The headers or the body could not be read: why.
    Unread(&'static str),
}

/// Reads a body whole, refusing one that declares or reaches more than `limit` bytes, or that
/// pauses longer than `stall`.
pub async fn read(mut body: Incoming, limit: u64, stall: Duration) -> Result<Bytes, Refusal> {
    let declared = http_body::Body::size_hint(&body).lower();
    // SECURITY: over the bound the body is refused, never forwarded unread.
    if declared > limit {
        return Err(Refusal::TooLarge);
    }
    // A body that arrives in one piece, as a small one usually does, is kept as it came; a
    // copy is made only once a second piece arrives.
    let mut first: Option<Bytes> = None;
    let mut out: Option<BytesMut> = None;
    let mut total = 0u64;
    loop {
        // A body whose length is reached is over: no round of polling for its end.
        if http_body::Body::is_end_stream(&body) {
            return Ok(out.map(BytesMut::freeze).or(first).unwrap_or_default());
        }
        // A piece already here is taken without arming the stall timer.
        let polled = std::future::poll_fn(|cx| Poll::Ready(http_body::Body::poll_frame(Pin::new(&mut body), cx))).await;
        let next = match polled {
            Poll::Ready(next) => next,
            // Boxed: only a body that is not there yet waits, and the timer would otherwise
            // take room in every read's future.
            Poll::Pending => Box::pin(tokio::time::timeout(stall, body.frame())).await.map_err(|_| Refusal::Stalled)?,
        };
        let frame = match next {
            None => return Ok(out.map(BytesMut::freeze).or(first).unwrap_or_default()),
            Some(Err(_)) => return Err(Refusal::Broken),
            Some(Ok(frame)) => frame,
        };
        // Trailers carry no operation and are not forwarded.
        let Ok(data) = frame.into_data() else { continue };
        total += data.len() as u64;
        if total > limit {
            return Err(Refusal::TooLarge);
        }
        match (&mut out, first.take()) {
            (Some(buffer), _) => buffer.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(earlier)) => {
                let mut buffer = BytesMut::with_capacity(declared.max(total) as usize);
                buffer.extend_from_slice(&earlier);
                buffer.extend_from_slice(&data);
                out = Some(buffer);
            }
        }
    }
}

/// Decides a request's body: its operations, read from it and, from 2026-07-28, checked
/// against the `Mcp-*` headers (`source`, as read from them), all allowed (a batch passes only
/// whole). Pure: what it read and decided is shown to `seen`. On allow, the body's list requests, whose answers are filtered.
pub fn judge(
    policy: &Policy,
    source: Result<Source<'_>, HeaderError>,
    body: &[u8],
    held: &[String],
    claims: &dyn Claims,
    required: &[String],
    seen: &mut dyn FnMut(Judged<'_, '_>),
) -> Result<Lists, Refusal> {
    let source = source.map_err(|e| {
        seen(Judged::Unread("invalid_headers"));
        Refusal::Headers(e.answer())
    })?;
    let messages = jsonrpc::extract(body).map_err(|e| {
        seen(Judged::Unread("not_jsonrpc"));
        Refusal::NotJsonRpc(e)
    })?;
    // SECURITY: headers an intermediary may trust must say what the body says; the MCP server
    // would refuse the request otherwise, and the edge answers as it would, forwarding nothing.
    if let Source::Headers(announced) = &source {
        headers::agree(announced, &messages).map_err(|m| {
            seen(Judged::Disagrees(&messages));
            Refusal::Headers(m.answer(&messages))
        })?;
    }
    let calls = messages.messages().iter().filter_map(Message::operation).map(|o| o.call());
    let verdict = decide::decide_all(policy, calls, held, claims, required);
    seen(Judged::Decided(&messages, &verdict));
    match verdict {
        Verdict::Allow { .. } => Ok(Lists::of(&messages)),
        Verdict::Deny { rule, reason } => {
            let tagged = source.version().is_some_and(ProtocolVersion::tags_results);
            Err(Refusal::Denied(Box::new(Denied { reason, rule, single: single(&messages, tagged) })))
        }
    }
}

/// The body's one request, if it is exactly one.
fn single(body: &Body<'_>, tagged: bool) -> Option<Asked> {
    match body {
        Body::Single(Message::Request { id, operation }) => Some(Asked {
            id: id.clone(),
            method: operation.method().to_string(),
            target: operation.target().map(str::to_string),
            tagged,
        }),
        _ => None,
    }
}

/// What a denial that no step-up fixes says.
fn describe(reason: &Denial) -> String {
    match reason {
        Denial::Scope { missing, .. } => format!("needs the scope {}", missing.join(" ")),
        Denial::Claim { claim } => format!("The token's claim {claim:?} does not allow this operation"),
        Denial::NoRule => "No rule of this resource's policy allows this operation".to_string(),
        Denial::AmbiguousUri => {
            "The resource URI has dot segments or an encoded slash, which this resource's policy refuses".to_string()
        }
    }
}

/// The tool-error mode's answer: a `tools/call` gets a tool result with `isError` naming what
/// is missing (the model sees it), any other request a JSON-RPC error.
fn tool_error(asked: &Asked, reason: &Denial) -> Bytes {
    let id = match &asked.id {
        Id::Number(n) => json!(n),
        Id::String(s) => json!(s),
    };
    let what = match (&asked.target, asked.method.as_str()) {
        (Some(name), "tools/call") => format!("the tool {name:?}"),
        (Some(name), "prompts/get") => format!("the prompt {name:?}"),
        (Some(uri), _) => format!("the resource {uri:?}"),
        (None, method) => method.to_string(),
    };
    let mut text = format!("Not allowed: {what} ");
    match reason {
        Denial::Scope { needed, missing } => {
            let _ = write!(text, "needs scope {}; the token lacks {}", needed.join(" "), missing.join(" "));
        }
        other => {
            let _ = write!(text, "is refused by this server's policy ({})", describe(other));
        }
    }
    let body = if asked.method == "tools/call" {
        let mut result = json!({"content": [{"type": "text", "text": text}], "isError": true});
        // 2026-07-28 clients refuse a result without it (the TypeScript SDK v2 does).
        if asked.tagged {
            result["resultType"] = json!("complete");
        }
        json!({"jsonrpc": "2.0", "id": id, "result": result})
    } else {
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": POLICY_DENIED, "message": text}})
    };
    Bytes::from(body.to_string())
}

/// JSON-RPC's Invalid Request (`-32600`), without an id: the body's could not be read.
fn invalid_request(e: &jsonrpc::ExtractError) -> Bytes {
    let body = json!({"jsonrpc": "2.0", "id": Value::Null, "error": {"code": -32600, "message": format!("Invalid Request: {e}")}});
    Bytes::from(body.to_string())
}

fn oauth_error(error: &str, description: &str) -> Bytes {
    Bytes::from(json!({"error": error, "error_description": description}).to_string())
}

/// The `400` for a body that disagreed with the `Mcp-*` headers it was allowed on, as it
/// streamed (`body` is the JSON-RPC error).
pub fn disagreed(body: Bytes, cors: &Cors, origin: Option<&HeaderValue>) -> Answer {
    json_answer(StatusCode::BAD_REQUEST, body, cors, origin)
}

fn json_answer(status: StatusCode, body: Bytes, cors: &Cors, origin: Option<&HeaderValue>) -> Answer {
    let mut response = with_headers(status, body, 4);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, JSON);
    h.insert(header::CACHE_CONTROL, NO_STORE);
    cors.apply_uncached(origin, h);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn policy() -> Policy {
        let v = json!({"default": "deny",
            "implies": {"mcp:admin": ["mcp:write"]},
            "rules": [
                {"method": "tools/call", "name": "delete_*", "scopes": ["mcp:admin"],
                 "claims": [{"claim": "groups", "contains": "ops"}]},
                {"method": "tools/call", "name": "write_*", "scopes": ["mcp:write"]},
                {"method": "tools/call", "scopes": ["mcp:read"]},
                {"method": "notifications/*"}]});
        Policy::parse(&v, "policy").expect("valid")
    }

    fn held(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn call(name: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#)
    }

    #[test]
    fn a_body_is_decided_whole() {
        let p = policy();
        let h = HeaderMap::new();
        let none = Map::new();
        let judge = |body: &str, scopes: &[&str]| {
            judge(&p, headers::read(&h), body.as_bytes(), &held(scopes), &none, &[], &mut |_| {}).map(|_| ())
        };
        assert_eq!(judge(&call("read_x"), &["mcp:read"]), Ok(()));
        assert_eq!(judge(&call("write_x"), &["mcp:admin"]), Ok(()), "admin implies write");
        let Err(Refusal::Denied(d)) = judge(&call("write_x"), &["mcp:read"]) else { panic!("denied") };
        assert_eq!(d.reason, Denial::Scope { needed: held(&["mcp:write"]), missing: held(&["mcp:write"]) });
        assert_eq!(d.single.map(|a| (a.id, a.target)), Some((Id::Number(7), Some("write_x".into()))));
        let Err(Refusal::Denied(d)) = judge(&call("delete_x"), &["mcp:admin"]) else { panic!("denied") };
        assert_eq!(d.reason, Denial::Claim { claim: "groups".into() }, "no claims: the condition fails");
        let batch = format!("[{},{}]", call("read_x"), call("write_x"));
        assert!(matches!(judge(&batch, &["mcp:read"]), Err(Refusal::Denied(d)) if d.single.is_none()));
        let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        assert!(matches!(judge(ping, &["mcp:admin"]), Err(Refusal::Denied(d)) if d.reason == Denial::NoRule));
        assert!(matches!(judge("{}", &[]), Err(Refusal::NotJsonRpc(_))));
        assert!(matches!(judge("nope", &[]), Err(Refusal::NotJsonRpc(_))));
        // A response to the server's own request asks for nothing.
        assert_eq!(judge(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, &[]), Ok(()));
    }

    #[test]
    fn trusted_headers_must_agree_with_the_body() {
        let p = policy();
        let mut h = HeaderMap::new();
        h.insert(headers::MCP_PROTOCOL_VERSION, HeaderValue::from_static("2026-07-28"));
        h.insert(headers::MCP_METHOD, HeaderValue::from_static("tools/call"));
        h.insert(headers::MCP_NAME, HeaderValue::from_static("read_x"));
        let none = Map::new();
        let scopes = held(&["mcp:admin", "mcp:read"]);
        assert_eq!(
            judge(&p, headers::read(&h), call("read_x").as_bytes(), &scopes, &none, &[], &mut |_| {}),
            Ok(Lists::default())
        );
        let Err(Refusal::Headers(body)) =
            judge(&p, headers::read(&h), call("write_x").as_bytes(), &scopes, &none, &[], &mut |_| {})
        else {
            panic!("a mismatch")
        };
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((body["id"].clone(), body["error"]["code"].clone()), (json!(7), json!(-32020)));
        // Before 2026-07-28 the headers are not trusted, nor compared: the body decides.
        h.insert(headers::MCP_PROTOCOL_VERSION, HeaderValue::from_static("2025-11-25"));
        assert_eq!(
            judge(&p, headers::read(&h), call("write_x").as_bytes(), &scopes, &none, &[], &mut |_| {}),
            Ok(Lists::default())
        );
    }

    #[test]
    fn tool_errors_name_the_missing_scope() {
        let asked = Asked {
            id: Id::String("a".into()),
            method: "tools/call".into(),
            target: Some("write_x".into()),
            tagged: false,
        };
        let reason = Denial::Scope { needed: held(&["mcp:write"]), missing: held(&["mcp:write"]) };
        let body: Value = serde_json::from_slice(&tool_error(&asked, &reason)).unwrap();
        assert_eq!(body["id"], "a");
        assert_eq!(body["result"]["isError"], true);
        assert!(body["result"].get("resultType").is_none(), "a 2025 client does not know the field");
        let tagged = Asked { tagged: true, ..asked };
        let body: Value = serde_json::from_slice(&tool_error(&tagged, &reason)).unwrap();
        assert_eq!(body["result"]["resultType"], "complete");
        let text = body["result"]["content"][0]["text"].as_str().unwrap();
        assert_eq!(text, "Not allowed: the tool \"write_x\" needs scope mcp:write; the token lacks mcp:write");
        let asked = Asked { id: Id::Number(2), method: "prompts/get".into(), target: Some("p".into()), tagged: true };
        let body: Value = serde_json::from_slice(&tool_error(&asked, &Denial::NoRule)).unwrap();
        assert_eq!(body["error"]["code"], POLICY_DENIED);
        assert!(body["result"].is_null());
    }
}
