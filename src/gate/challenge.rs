//! The RFC 6750 / RFC 9728 challenges of the MCP endpoint, built once from the configuration,
//! and the one way a challenge is answered.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::StatusCode;

use crate::common::answer::{with_headers, Answer, JSON, NO_STORE};
use crate::common::route::PRM_WELL_KNOWN;
use crate::config::Config;
use crate::gate::cors::{Cors, EXPOSE_CHALLENGE};
use crate::gate::jwt::TokenError;

/// The gate's answers that never change while the configuration holds.
#[derive(Clone, Debug)]
pub struct Challenges {
    /// `WWW-Authenticate` for a request without credentials.
    pub missing: HeaderValue,
    /// `WWW-Authenticate` for a malformed `Authorization` header.
    pub malformed: HeaderValue,
    pub missing_body: Bytes,
    pub malformed_body: Bytes,
    /// `WWW-Authenticate` for a token without a required scope (RFC 6750 §3.1).
    pub insufficient: HeaderValue,
    pub insufficient_body: Bytes,
    /// The challenge's common part, which a rejected token's error is appended to.
    base: String,
}

impl Challenges {
    pub fn new(config: &Config) -> Challenges {
        // RFC 9728 §5.1: point the client at the resource's metadata; MCP clients need it to
        // find the authorization server at all.
        let metadata = format!("{}{PRM_WELL_KNOWN}{}", config.resource.origin, config.resource.path);
        let mut base = format!("Bearer resource_metadata=\"{metadata}\"");
        if !config.scopes.is_empty() {
            base.push_str(&format!(", scope=\"{}\"", config.scopes.join(" ")));
        }
        let malformed = format!(
            "{base}, error=\"invalid_request\", error_description=\"The Authorization header is not a valid Bearer credential\""
        );
        let value = |s: String| HeaderValue::try_from(s).expect("URLs and scopes were validated as header-safe ASCII");
        let insufficient = format!(
            "Bearer resource_metadata=\"{metadata}\", scope=\"{}\", error=\"insufficient_scope\", \
             error_description=\"The token lacks a scope this resource requires\"",
            config.required_scopes.join(" ")
        );
        Challenges {
            insufficient: value(insufficient),
            insufficient_body: Bytes::from_static(
                br#"{"error":"insufficient_scope","error_description":"The token lacks a scope this resource requires"}"#,
            ),
            base: base.clone(),
            missing: value(base),
            malformed: value(malformed),
            missing_body: Bytes::from_static(
                br#"{"error":"invalid_token","error_description":"This resource needs an OAuth bearer token; see WWW-Authenticate for where to get one"}"#,
            ),
            malformed_body: Bytes::from_static(
                br#"{"error":"invalid_request","error_description":"The Authorization header is not a valid Bearer credential"}"#,
            ),
        }
    }
}

impl Challenges {
    /// The challenge and body for a rejected token. Made on the rejection path only: the
    /// description depends on why the token failed.
    pub fn invalid_token(&self, error: &TokenError) -> (HeaderValue, Bytes) {
        // TokenError's Display uses only characters RFC 6750 allows in error_description.
        let header = format!("{}, error=\"invalid_token\", error_description=\"{error}\"", self.base);
        let body = serde_json::json!({"error": "invalid_token", "error_description": error.to_string()}).to_string();
        let header = HeaderValue::try_from(header)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""));
        (header, Bytes::from(body))
    }
}

/// A challenge answer: `status` with `WWW-Authenticate`, a JSON body, and the endpoint's CORS
/// policy with the challenge exposed to browsers.
pub fn answer(
    status: StatusCode,
    challenge: HeaderValue,
    body: Bytes,
    cors: &Cors,
    origin: Option<&HeaderValue>,
) -> Answer {
    let mut response = with_headers(status, body, 6);
    let h = response.headers_mut();
    h.insert(header::WWW_AUTHENTICATE, challenge);
    h.insert(header::CONTENT_TYPE, JSON);
    h.insert(header::CACHE_CONTROL, NO_STORE);
    cors.apply_uncached(origin, h);
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_CHALLENGE);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn challenges_name_the_resource_metadata_and_scopes() {
        let args = [
            "--resource",
            "https://mcp.example/mcp",
            "--auth-server",
            "https://as.example",
            "--scope",
            "a",
            "--scope",
            "b",
        ];
        let config = Config::from_settings(&Settings::load(args.map(String::from), |_| None).unwrap()).unwrap();
        let c = Challenges::new(&config);
        assert_eq!(
            c.missing,
            "Bearer resource_metadata=\"https://mcp.example/.well-known/oauth-protected-resource/mcp\", scope=\"a b\""
        );
        assert!(c.malformed.to_str().unwrap().contains(", error=\"invalid_request\", error_description="));
    }
}
