//! The gate in front of the MCP endpoint: the bearer credential, the challenges, CORS for the
//! endpoint, and the token check (JWT against the JWKS, or introspection). [`Gate::admit`]
//! answers what needs no token check (preflights, missing or malformed credentials); the
//! token itself is checked when the request is forwarded, by [`Gate::check`]'s checker, and so
//! is its form (RFC 6750 §2.1) unless the verdict cache holds it.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::common::answer::{self, Answer};
use crate::config::{Config, DpopMode};

pub mod challenge;
pub mod cors;
pub mod credential;
pub mod dpop;
pub mod introspect;
pub mod jwt;
pub mod keyring;
pub mod nonce;
pub mod possession;
pub mod replay;
pub mod screen;
pub mod session;
pub mod tokens;

use challenge::Challenges;
use cors::Cors;
use credential::{Credential, Scheme, Schemes};
use dpop::ErrorCode;
use jwt::TokenError;
use possession::{Possession, Refusal as ProofRefusal, DPOP_NONCE};
use screen::{BadHost, Fields, Names, Refusal};
use tokens::{Rejection, TokenChecker};

const BODY_503_KEYS: &[u8] = br#"{"error":"temporarily_unavailable","error_description":"The authorization server's signing keys have not been fetched yet"}"#;
const BODY_405: &[u8] =
    br#"{"error":"method_not_allowed","error_description":"This method is not served on the MCP endpoint"}"#;
const BODY_400_TARGET: &[u8] =
    br#"{"error":"invalid_request","error_description":"The request target must be a path, not *"}"#;
const BODY_400_HOST_MISSING: &[u8] =
    br#"{"error":"invalid_request","error_description":"The request names no host: Host is required"}"#;
const BODY_400_HOST_REPEATED: &[u8] =
    br#"{"error":"invalid_request","error_description":"The request has more than one Host field"}"#;
const BODY_400_HOST_MALFORMED: &[u8] =
    br#"{"error":"invalid_request","error_description":"The Host field is not a valid host and port"}"#;
const BODY_400_HOST_CONFLICT: &[u8] =
    br#"{"error":"invalid_request","error_description":"The Host field names another host than :authority"}"#;
const BODY_421: &[u8] = br#"{"error":"misdirected_request","error_description":"This server does not answer for the host the request names"}"#;
const BODY_403_ORIGIN: &[u8] =
    br#"{"error":"forbidden_origin","error_description":"Requests from this origin are not allowed"}"#;
/// What the MCP endpoint serves, for a 405's `Allow`; other methods are passed to the MCP server.
const MCP_ALLOW: HeaderValue = HeaderValue::from_static("GET, POST, DELETE, OPTIONS");
const BODY_503_REPLAY: &[u8] = br#"{"error":"temporarily_unavailable","error_description":"Too many DPoP proofs to remember right now; retry later"}"#;
const BODY_503_INTROSPECTION: &[u8] = br#"{"error":"temporarily_unavailable","error_description":"The authorization server could not be asked about this token"}"#;

/// How a resource's gate checks the bearer token of a request it lets through.
pub enum Check {
    /// Only the form of the header (`--token-check presence`): the MCP server checks tokens.
    Presence,
    /// Signature and claims, or introspection, at the edge.
    Tokens(Arc<TokenChecker>),
}

/// One resource's gate, made once from its configuration.
pub struct Gate {
    pub challenges: Challenges,
    pub cors: Cors,
    pub check: Check,
    /// The DPoP checks (`--dpop allow` or `require`); `None` with `--dpop off`.
    pub possession: Option<Possession>,
    /// The credential schemes read: `DPoP` only where DPoP is on.
    schemes: Schemes,
    /// The names the endpoint answers to.
    names: Names,
    /// The header fields of the 401 and 400 challenges for a request without `Origin` (or for
    /// any, when every origin may read them): cloning a map costs a fraction of building it
    /// field by field, and the challenge is the edge's most frequent answer on the endpoint.
    fixed: Fixed,
}

struct Fixed {
    missing: HeaderMap,
    malformed: HeaderMap,
}

/// A token the gate let through: where it lies in `Authorization`, and its scheme. SECURITY: its
/// form is not checked yet; forwarding checks it ([`credential::well_formed`]) before any use,
/// unless the verdict cache holds it byte for byte (it holds only tokens accepted before).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presented {
    pub span: Range<usize>,
    pub scheme: Scheme,
}

/// What the gate did with a request.
pub enum Admission {
    /// Let through to forwarding, with its token.
    Through(Presented),
    /// Answered here: a preflight, or no usable credential.
    Answered(Answer),
}

impl Gate {
    /// `replay`: the DPoP replay cache to keep using (see [`Possession::new`]).
    pub fn new(config: &Config, replay: Option<Arc<replay::ReplayCache>>) -> Gate {
        let check = match TokenChecker::new(config) {
            Some(checker) => Check::Tokens(Arc::new(checker)),
            None => Check::Presence,
        };
        let (challenges, cors) = (Challenges::new(config), Cors::new(config));
        let headers = |challenge: &[HeaderValue], body: &Bytes| {
            let made = challenge::answer(StatusCode::UNAUTHORIZED, challenge, body.clone(), &cors, None);
            made.headers().clone()
        };
        let fixed = Fixed {
            missing: headers(&challenges.missing, &challenges.missing_body),
            malformed: headers(&challenges.malformed, &challenges.malformed_body),
        };
        let names = Names::new(config.hosts.clone(), &config.resource.origin);
        let schemes = match config.dpop.mode {
            DpopMode::Off => Schemes::Bearer,
            DpopMode::Allow | DpopMode::Require => Schemes::BearerAndDpop,
        };
        Gate { challenges, cors, check, possession: Possession::new(config, replay), schemes, names, fixed }
    }

    /// The checker, outside presence mode.
    pub fn checker(&self) -> Option<&Arc<TokenChecker>> {
        match &self.check {
            Check::Tokens(checker) => Some(checker),
            Check::Presence => None,
        }
    }

    /// Refuses what the endpoint never serves (see [`screen`]), answers a preflight or a
    /// request without a usable credential, and lets the rest through.
    pub fn admit<B>(&self, request: &Request<B>) -> Admission {
        let fields = Fields::of(request.headers());
        let origin = fields.origin;
        let (method, uri, version) = (request.method(), request.uri(), request.version());
        if let Err(refusal) = screen::screen(method, uri, version, &fields, &self.names, &self.cors) {
            return Admission::Answered(self.turn_away(refusal, origin));
        }
        if method == Method::OPTIONS {
            let requested = request.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS);
            return Admission::Answered(self.cors.preflight(origin, requested));
        }
        // The token's form is checked by forwarding, unless the verdict cache holds it (see
        // `credential::located_unchecked`).
        let malformed = match credential::located_unchecked(fields.authorization, fields.authorizations, self.schemes) {
            // The token itself is checked (jwt, introspect) when the request is forwarded,
            // and so is a DPoP proof.
            (Credential::Bearer(_), Some(span)) if !self.requires_dpop() => {
                return Admission::Through(Presented { span, scheme: Scheme::Bearer })
            }
            (Credential::Dpop(_), Some(span)) => return Admission::Through(Presented { span, scheme: Scheme::Dpop }),
            (Credential::Bearer(_) | Credential::Dpop(_), None) | (Credential::Malformed, _) => true,
            // `--dpop require`: a bearer token is no credential here (a malformed one is still
            // malformed).
            (Credential::Bearer(token), _) => !credential::well_formed(token),
            (Credential::Missing, _) => false,
        };
        Admission::Answered(self.challenged(malformed, origin))
    }

    /// The challenge to a request with no usable credential: `malformed`, a 400 for an
    /// `Authorization` value that is not one (RFC 6750 §3.1 `invalid_request`), else the 401.
    pub fn challenged(&self, malformed: bool, origin: Option<&HeaderValue>) -> Answer {
        let c = &self.challenges;
        // The prebuilt fields hold for a request without Origin, or for any when all may read.
        let fixed = (origin.is_none() || self.cors.allows_any()).then_some(&self.fixed);
        let (status, challenge, body, headers) = if malformed {
            (StatusCode::BAD_REQUEST, &c.malformed, &c.malformed_body, fixed.map(|f| &f.malformed))
        } else {
            (StatusCode::UNAUTHORIZED, &c.missing, &c.missing_body, fixed.map(|f| &f.missing))
        };
        match headers {
            Some(headers) => {
                let mut response = Response::new(Full::new(body.clone()));
                *response.status_mut() = status;
                *response.headers_mut() = headers.clone();
                response
            }
            None => challenge::answer(status, challenge, body.clone(), &self.cors, origin),
        }
    }

    fn requires_dpop(&self) -> bool {
        self.possession.as_ref().is_some_and(|p| p.mode == DpopMode::Require)
    }

    /// The answer to a request the screen refused. A refused origin gets no CORS grant.
    fn turn_away(&self, refusal: Refusal, origin: Option<&HeaderValue>) -> Answer {
        let (status, body) = match refusal {
            Refusal::Method => (StatusCode::METHOD_NOT_ALLOWED, BODY_405),
            Refusal::Target => (StatusCode::BAD_REQUEST, BODY_400_TARGET),
            Refusal::BadHost(BadHost::Missing) => (StatusCode::BAD_REQUEST, BODY_400_HOST_MISSING),
            Refusal::BadHost(BadHost::Repeated) => (StatusCode::BAD_REQUEST, BODY_400_HOST_REPEATED),
            Refusal::BadHost(BadHost::Malformed) => (StatusCode::BAD_REQUEST, BODY_400_HOST_MALFORMED),
            Refusal::BadHost(BadHost::Conflict) => (StatusCode::BAD_REQUEST, BODY_400_HOST_CONFLICT),
            Refusal::OtherHost => (StatusCode::MISDIRECTED_REQUEST, BODY_421),
            Refusal::Origin => {
                let mut response = answer::json_error(StatusCode::FORBIDDEN, BODY_403_ORIGIN, 3);
                response.headers_mut().remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
                return response;
            }
        };
        let mut response = self.cors.on_error(origin, answer::json_error(status, body, 5));
        if refusal == Refusal::Method {
            response.headers_mut().insert(header::ALLOW, MCP_ALLOW);
        }
        response
    }

    /// The answer to a token the checker refused (RFC 6750 §3.1), presented with `used`.
    pub fn refuse(&self, origin: Option<&HeaderValue>, used: Scheme, rejection: &Rejection) -> Answer {
        let c = &self.challenges;
        let (status, challenge, body) = match rejection {
            Rejection::Invalid(error) => {
                let (challenge, body) = c.invalid_token(used, error);
                (StatusCode::UNAUTHORIZED, challenge, body)
            }
            Rejection::InsufficientScope => {
                (StatusCode::FORBIDDEN, c.insufficient(used).clone(), c.insufficient_body.clone())
            }
            Rejection::NoKeys => return self.cors.on_error(origin, answer::unavailable(BODY_503_KEYS)),
            Rejection::IntrospectionFailed => {
                return self.cors.on_error(origin, answer::unavailable(BODY_503_INTROSPECTION))
            }
        };
        challenge::answer(status, &challenge, body, &self.cors, origin)
    }

    /// The answer to a DPoP request refused after its token was accepted (RFC 9449 §7.1):
    /// 401 `invalid_dpop_proof`, or `use_dpop_nonce` with a fresh `DPoP-Nonce` (§9).
    pub fn refuse_proof(&self, origin: Option<&HeaderValue>, refusal: &ProofRefusal, now: u64) -> Answer {
        match refusal {
            ProofRefusal::NotBound => {
                return self.refuse(origin, Scheme::Dpop, &Rejection::Invalid(TokenError::NotBound))
            }
            ProofRefusal::ReplayCacheFull => return self.cors.on_error(origin, answer::unavailable(BODY_503_REPLAY)),
            ProofRefusal::Proof(_) | ProofRefusal::KeyMismatch => {}
        }
        let code = refusal.code();
        // Refusals' Display uses only characters RFC 6750 allows in error_description.
        let (challenge, body) = self.challenges.invalid_proof(code.as_str(), &refusal.to_string());
        let mut response = challenge::answer(StatusCode::UNAUTHORIZED, &challenge, body, &self.cors, origin);
        let nonce = self.possession.as_ref().and_then(|p| p.nonce(now));
        if let (ErrorCode::UseDpopNonce, Some(nonce)) = (code, nonce) {
            if let Ok(nonce) = HeaderValue::try_from(nonce) {
                response.headers_mut().insert(DPOP_NONCE, nonce);
            }
        }
        response
    }
}
