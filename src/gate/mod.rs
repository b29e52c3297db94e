//! The gate in front of the MCP endpoint: the bearer credential, the challenges, CORS for the
//! endpoint, and the token check (JWT against the JWKS, or introspection). [`Gate::admit`]
//! answers what needs no token check (preflights, missing or malformed credentials); the
//! token itself is checked when the request is forwarded, by [`Gate::check`]'s checker.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::common::answer::{self, Answer};
use crate::config::Config;

pub mod challenge;
pub mod cors;
pub mod credential;
pub mod dpop;
pub mod introspect;
pub mod jwt;
pub mod keyring;
pub mod nonce;
pub mod replay;
pub mod session;
pub mod tokens;

use challenge::Challenges;
use cors::Cors;
use credential::Credential;
use tokens::{Rejection, TokenChecker};

const BODY_503_KEYS: &[u8] = br#"{"error":"temporarily_unavailable","error_description":"The authorization server's signing keys have not been fetched yet"}"#;
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
    /// The header fields of the 401 and 400 challenges, made once when they do not depend on
    /// the request (any origin may read them): cloning a map costs a fraction of building it
    /// field by field, and the challenge is the edge's most frequent answer on the endpoint.
    fixed: Option<Fixed>,
}

struct Fixed {
    missing: HeaderMap,
    malformed: HeaderMap,
}

/// What the gate did with a request.
pub enum Admission {
    /// Let through to forwarding, with where its bearer token lies in `Authorization`.
    Through(Range<usize>),
    /// Answered here: a preflight, or no usable credential.
    Answered(Answer),
}

impl Gate {
    pub fn new(config: &Config) -> Gate {
        let check = match TokenChecker::new(config) {
            Some(checker) => Check::Tokens(Arc::new(checker)),
            None => Check::Presence,
        };
        let (challenges, cors) = (Challenges::new(config), Cors::new(config));
        let fixed = cors.allows_any().then(|| {
            let headers = |challenge: &HeaderValue, body: &Bytes| {
                let made = challenge::answer(StatusCode::UNAUTHORIZED, challenge.clone(), body.clone(), &cors, None);
                made.headers().clone()
            };
            Fixed {
                missing: headers(&challenges.missing, &challenges.missing_body),
                malformed: headers(&challenges.malformed, &challenges.malformed_body),
            }
        });
        Gate { challenges, cors, check, fixed }
    }

    /// The checker, outside presence mode.
    pub fn checker(&self) -> Option<&Arc<TokenChecker>> {
        match &self.check {
            Check::Tokens(checker) => Some(checker),
            Check::Presence => None,
        }
    }

    /// Answers a preflight, or a request without a usable credential; lets the rest through.
    pub fn admit<B>(&self, request: &Request<B>) -> Admission {
        // `Origin` is read only for what is answered here: forwarding finds it in its own pass.
        let origin = || request.headers().get(header::ORIGIN);
        if request.method() == Method::OPTIONS {
            return Admission::Answered(self.cors.preflight(origin()));
        }
        let c = &self.challenges;
        let fixed = self.fixed.as_ref();
        let (status, challenge, body, headers) = match credential::located(request.headers()) {
            // The token itself is checked (jwt, introspect) when the request is forwarded.
            (Credential::Bearer(_), Some(span)) => return Admission::Through(span),
            (Credential::Bearer(_), None) | (Credential::Malformed, _) => {
                (StatusCode::BAD_REQUEST, &c.malformed, &c.malformed_body, fixed.map(|f| &f.malformed))
            }
            (Credential::Missing, _) => {
                (StatusCode::UNAUTHORIZED, &c.missing, &c.missing_body, fixed.map(|f| &f.missing))
            }
        };
        match headers {
            Some(headers) => {
                let mut response = Response::new(Full::new(body.clone()));
                *response.status_mut() = status;
                *response.headers_mut() = headers.clone();
                Admission::Answered(response)
            }
            None => {
                Admission::Answered(challenge::answer(status, challenge.clone(), body.clone(), &self.cors, origin()))
            }
        }
    }

    /// The answer to a bearer token the checker refused (RFC 6750 §3.1).
    pub fn refuse(&self, origin: Option<&HeaderValue>, rejection: &Rejection) -> Answer {
        let c = &self.challenges;
        let (status, challenge, body) = match rejection {
            Rejection::Invalid(error) => {
                let (challenge, body) = c.invalid_token(error);
                (StatusCode::UNAUTHORIZED, challenge, body)
            }
            Rejection::InsufficientScope => {
                (StatusCode::FORBIDDEN, c.insufficient.clone(), c.insufficient_body.clone())
            }
            Rejection::NoKeys => return self.cors.on_error(origin, answer::unavailable(BODY_503_KEYS)),
            Rejection::IntrospectionFailed => {
                return self.cors.on_error(origin, answer::unavailable(BODY_503_INTROSPECTION))
            }
        };
        challenge::answer(status, challenge, body, &self.cors, origin)
    }
}
