//! The RFC 6750 / RFC 9728 / RFC 9449 challenges of the MCP endpoint, built once from the
//! configuration, and the one way a challenge is answered.
//!
//! Each scheme the resource takes is offered on a `WWW-Authenticate` line of its own, `Bearer`
//! first (RFC 9110 §11.6.1 allows several lines or one comma-joined list; a client that reads
//! only the first line, or splits the first word off, still finds the bearer challenge it
//! knows). With `--dpop allow` both lines are sent, with `require` only `DPoP`, with `off`
//! only `Bearer`. An error (`invalid_token`, `invalid_dpop_proof`, ...) goes on the line of
//! the scheme the request used; the other line stays as it is, so the client still learns
//! what else it could use.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::StatusCode;

use crate::common::answer::{with_headers, Answer, JSON, NO_STORE};
use crate::common::route::PRM_WELL_KNOWN;
use crate::config::{Config, DpopMode};
use crate::gate::cors::Cors;
use crate::gate::credential::Scheme;
use crate::gate::dpop::SUPPORTED_ALGS;
use crate::gate::jwt::TokenError;

/// The `WWW-Authenticate` lines of one answer.
pub type Lines = Vec<HeaderValue>;

/// The gate's answers that never change while the configuration holds.
#[derive(Clone, Debug)]
pub struct Challenges {
    /// `WWW-Authenticate` for a request without credentials.
    pub missing: Lines,
    /// `WWW-Authenticate` for a malformed `Authorization` header.
    pub malformed: Lines,
    pub missing_body: Bytes,
    pub malformed_body: Bytes,
    /// `WWW-Authenticate` for a token without a required scope (RFC 6750 §3.1), by the scheme
    /// the token came with (`[Bearer, DPoP]`).
    insufficient: [Lines; 2],
    pub insufficient_body: Bytes,
    /// Each offered scheme with its challenge's common part, which an error is appended to.
    offered: Vec<(Scheme, String)>,
}

impl Challenges {
    pub fn new(config: &Config) -> Challenges {
        // RFC 9728 §5.1: point the client at the resource's metadata; MCP clients need it to
        // find the authorization server at all.
        let metadata = format!("{}{PRM_WELL_KNOWN}{}", config.resource.origin, config.resource.path);
        let params = |scopes: &[String]| {
            let mut params = format!("resource_metadata=\"{metadata}\"");
            if !scopes.is_empty() {
                params.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
            }
            params
        };
        // RFC 9449 §7.1: `algs` lists the proof algorithms accepted, space-separated.
        let algs: Vec<&str> = SUPPORTED_ALGS.iter().map(|alg| alg.name()).collect();
        let dpop_prefix = format!("DPoP algs=\"{}\", ", algs.join(" "));
        let schemes: &[Scheme] = match config.dpop.mode {
            DpopMode::Off => &[Scheme::Bearer],
            DpopMode::Allow => &[Scheme::Bearer, Scheme::Dpop],
            DpopMode::Require => &[Scheme::Dpop],
        };
        let prefix = |scheme| match scheme {
            Scheme::Bearer => "Bearer ",
            Scheme::Dpop => dpop_prefix.as_str(),
        };
        let base = |scopes: &[String]| -> Vec<(Scheme, String)> {
            schemes.iter().map(|&s| (s, format!("{}{}", prefix(s), params(scopes)))).collect()
        };
        let offered = base(&config.scopes);
        let insufficient_error =
            ", error=\"insufficient_scope\", error_description=\"The token lacks a scope this resource requires\"";
        // The line of the scheme used names the scopes required rather than those supported.
        let insufficient = |used: Scheme| -> Lines {
            let required = base(&config.required_scopes);
            offered
                .iter()
                .zip(required)
                .map(|((scheme, plain), (_, required))| match *scheme == used {
                    true => value(format!("{required}{insufficient_error}")),
                    false => value(plain.clone()),
                })
                .collect()
        };
        // Where DPoP is taken the header may have meant either scheme.
        let (malformed_error, malformed_body): (&str, &'static [u8]) = match config.dpop.mode {
            DpopMode::Off => (
                ", error=\"invalid_request\", error_description=\"The Authorization header is not a valid Bearer credential\"",
                br#"{"error":"invalid_request","error_description":"The Authorization header is not a valid Bearer credential"}"#,
            ),
            DpopMode::Allow | DpopMode::Require => (
                ", error=\"invalid_request\", error_description=\"The Authorization header is not a valid Bearer or DPoP credential\"",
                br#"{"error":"invalid_request","error_description":"The Authorization header is not a valid Bearer or DPoP credential"}"#,
            ),
        };
        Challenges {
            missing: offered.iter().map(|(_, plain)| value(plain.clone())).collect(),
            // The scheme of a malformed header is not known: every line says what is wrong.
            malformed: offered.iter().map(|(_, plain)| value(format!("{plain}{malformed_error}"))).collect(),
            insufficient: [insufficient(Scheme::Bearer), insufficient(Scheme::Dpop)],
            insufficient_body: Bytes::from_static(
                br#"{"error":"insufficient_scope","error_description":"The token lacks a scope this resource requires"}"#,
            ),
            missing_body: Bytes::from_static(
                br#"{"error":"invalid_token","error_description":"This resource needs an OAuth bearer token; see WWW-Authenticate for where to get one"}"#,
            ),
            malformed_body: Bytes::from_static(malformed_body),
            offered,
        }
    }
}

/// A header value from text made of validated URLs, scopes and fixed words.
fn value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("URLs and scopes were validated as header-safe ASCII")
}

impl Challenges {
    /// The challenge for a token without a required scope, presented with `used`.
    pub fn insufficient(&self, used: Scheme) -> &Lines {
        match used {
            Scheme::Bearer => &self.insufficient[0],
            Scheme::Dpop => &self.insufficient[1],
        }
    }

    /// The challenge and body for a rejected token. Made on the rejection path only: the
    /// description depends on why the token failed.
    pub fn invalid_token(&self, used: Scheme, error: &TokenError) -> (Lines, Bytes) {
        // TokenError's Display uses only characters RFC 6750 allows in error_description.
        self.refused(used, "invalid_token", &error.to_string())
    }

    /// The challenge and body for a refused DPoP proof (RFC 9449 §7.1): `code` is
    /// `invalid_dpop_proof` or `use_dpop_nonce`.
    pub fn invalid_proof(&self, code: &str, description: &str) -> (Lines, Bytes) {
        self.refused(Scheme::Dpop, code, description)
    }

    /// Every offered line, the one of `used` with the error; `description` must hold only the
    /// characters RFC 6750 §3 allows (no quote, no backslash).
    fn refused(&self, used: Scheme, code: &str, description: &str) -> (Lines, Bytes) {
        let lines = self
            .offered
            .iter()
            .map(|(scheme, plain)| {
                let text = match *scheme == used {
                    true => format!("{plain}, error=\"{code}\", error_description=\"{description}\""),
                    false => plain.clone(),
                };
                HeaderValue::try_from(text)
                    .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""))
            })
            .collect();
        let body = serde_json::json!({"error": code, "error_description": description}).to_string();
        (lines, Bytes::from(body))
    }
}

/// A challenge answer: `status` with `WWW-Authenticate`, a JSON body, and the endpoint's CORS
/// policy with the challenge exposed to browsers.
pub fn answer(
    status: StatusCode,
    challenge: &[HeaderValue],
    body: Bytes,
    cors: &Cors,
    origin: Option<&HeaderValue>,
) -> Answer {
    let mut response = with_headers(status, body, 6);
    let h = response.headers_mut();
    for line in challenge {
        h.append(header::WWW_AUTHENTICATE, line.clone());
    }
    h.insert(header::CONTENT_TYPE, JSON);
    h.insert(header::CACHE_CONTROL, NO_STORE);
    cors.apply_uncached(origin, h);
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, cors.expose_challenge());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn challenges(more: &[&str]) -> Challenges {
        let mut args = vec![
            "--resource",
            "https://mcp.example/mcp",
            "--auth-server",
            "https://as.example",
            "--scope",
            "a",
            "--scope",
            "b",
            "--required-scope",
            "a",
        ];
        args.extend(more);
        let settings = Settings::load(args.into_iter().map(String::from), |_| None).unwrap();
        Challenges::new(&Config::from_settings(&settings).unwrap())
    }

    const META: &str = "resource_metadata=\"https://mcp.example/.well-known/oauth-protected-resource/mcp\"";

    #[test]
    fn challenges_name_the_resource_metadata_and_scopes() {
        let c = challenges(&[]);
        assert_eq!(c.missing, [format!("Bearer {META}, scope=\"a b\"")]);
        assert_eq!(c.malformed.len(), 1);
        assert!(c.malformed[0].to_str().unwrap().contains(", error=\"invalid_request\", error_description="));
    }

    #[test]
    fn dpop_modes_offer_their_schemes_bearer_first() {
        let dpop = format!("DPoP algs=\"ES256 EdDSA PS256 RS256\", {META}, scope=\"a b\"");
        let bearer = format!("Bearer {META}, scope=\"a b\"");
        let allow = challenges(&["--dpop", "allow"]);
        assert_eq!(allow.missing, [bearer.clone(), dpop.clone()]);
        let require = challenges(&["--dpop", "require"]);
        assert_eq!(require.missing, std::slice::from_ref(&dpop));
        // The error goes on the line of the scheme used; the other is offered as it is.
        let (lines, body) = allow.invalid_proof("use_dpop_nonce", "resource server requires nonce in DPoP proof");
        let error = ", error=\"use_dpop_nonce\", error_description=\"resource server requires nonce in DPoP proof\"";
        assert_eq!(lines, [bearer.clone(), format!("{dpop}{error}")]);
        assert_eq!(
            body,
            r#"{"error":"use_dpop_nonce","error_description":"resource server requires nonce in DPoP proof"}"#
        );
        let (lines, _) = allow.invalid_token(Scheme::Bearer, &TokenError::BoundToKey);
        assert!(lines[0].to_str().unwrap().starts_with(&format!("{bearer}, error=\"invalid_token\"")));
        assert_eq!(lines[1], dpop);
        let insufficient = allow.insufficient(Scheme::Dpop);
        assert_eq!(insufficient[0], bearer);
        let want = format!("DPoP algs=\"ES256 EdDSA PS256 RS256\", {META}, scope=\"a\", error=\"insufficient_scope\"");
        assert!(insufficient[1].to_str().unwrap().starts_with(&want), "{:?}", insufficient[1]);
    }
}
