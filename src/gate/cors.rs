//! CORS on the MCP endpoint: which browser origins may read its responses, the preflight the
//! edge answers for it, and the policy put on forwarded responses and the edge's own errors.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

use crate::common::answer::{with_headers, Answer, PREFLIGHT_MAX_AGE};
use crate::config::{Config, DpopMode, Origins};

const MCP_METHODS: HeaderValue = HeaderValue::from_static("GET, POST, DELETE, OPTIONS");
/// What an MCP client of 2025-11-25 or 2026-07-28 sends (`Mcp-Method` and `Mcp-Name`: 2026-07-28
/// streamable-http.mdx, "Standard Request Headers"). `Mcp-Param-*` names are the tool's own and
/// are echoed from the preflight's request ([`allow_headers`]).
const MCP_ALLOW_HEADERS_TEXT: &str =
    "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name";
const MCP_ALLOW_HEADERS: HeaderValue = HeaderValue::from_static(MCP_ALLOW_HEADERS_TEXT);
/// With DPoP, a browser client also sends its proof (RFC 9449 §4.1).
const MCP_ALLOW_HEADERS_DPOP_TEXT: &str = "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, \
     Last-Event-ID, Mcp-Method, Mcp-Name, DPoP";
const MCP_ALLOW_HEADERS_DPOP: HeaderValue = HeaderValue::from_static(MCP_ALLOW_HEADERS_DPOP_TEXT);
const PARAM: &[u8] = b"mcp-param-";
/// The `Mcp-Param-*` headers one preflight may have echoed; a tool has a few at most.
const MAX_PARAM_HEADERS: usize = 32;
const MCP_EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static("Mcp-Session-Id, WWW-Authenticate");
/// What a browser must read of a challenge.
const EXPOSE_CHALLENGE: HeaderValue = HeaderValue::from_static("WWW-Authenticate");
/// With DPoP, a browser client must also read the nonce it is asked to use (RFC 9449 §8).
const EXPOSE_CHALLENGE_DPOP: HeaderValue = HeaderValue::from_static("WWW-Authenticate, DPoP-Nonce");

/// Which browser origins may call the MCP endpoint and read its responses.
#[derive(Clone, Debug)]
pub struct Cors {
    allowed: Allowed,
    /// Whether the endpoint takes DPoP: its header is then allowed and its nonce exposed.
    dpop: DpopMode,
}

#[derive(Clone, Debug)]
enum Allowed {
    Any,
    /// Compared byte for byte with `Origin`: the configuration holds them as browsers send them.
    Listed(Vec<HeaderValue>),
}

const ANY: HeaderValue = HeaderValue::from_static("*");
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

impl Cors {
    pub fn new(config: &Config) -> Cors {
        let allowed = match &config.cors_origins {
            Origins::Any => Allowed::Any,
            Origins::Listed(origins) => {
                Allowed::Listed(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect())
            }
        };
        Cors { allowed, dpop: config.dpop.mode }
    }

    /// A policy for these origins, as browsers send them (unit tests).
    #[cfg(test)]
    pub(crate) fn listing(origins: &[&'static str]) -> Cors {
        let allowed = Allowed::Listed(origins.iter().map(|o| HeaderValue::from_static(o)).collect());
        Cors { allowed, dpop: DpopMode::Off }
    }

    /// Every origin allowed (unit tests).
    #[cfg(test)]
    pub(crate) fn any() -> Cors {
        Cors { allowed: Allowed::Any, dpop: DpopMode::Off }
    }

    /// What a browser may read of a challenge: `WWW-Authenticate`, and `DPoP-Nonce` with DPoP.
    pub fn expose_challenge(&self) -> HeaderValue {
        match self.dpop {
            DpopMode::Off => EXPOSE_CHALLENGE,
            DpopMode::Allow | DpopMode::Require => EXPOSE_CHALLENGE_DPOP,
        }
    }

    /// Whether every origin may call and read (`--cors-origin '*'`).
    pub fn allows_any(&self) -> bool {
        matches!(self.allowed, Allowed::Any)
    }

    /// Whether a request with this `Origin` may be served at all. The MCP transport asks
    /// servers to refuse an origin they do not expect (DNS rebinding); behind the edge the MCP
    /// server cannot tell, so the edge does it.
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        match &self.allowed {
            Allowed::Any => true,
            Allowed::Listed(origins) => origins.contains(origin),
        }
    }

    /// Sets `Access-Control-Allow-Origin` for a request's `Origin` unless the response already
    /// has one (a forwarded MCP server's own policy wins). With a list, an unlisted origin gets
    /// none, and caches are told the answer varies by `Origin`.
    pub fn apply(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        if response.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            return;
        }
        if let Allowed::Listed(_) = self.allowed {
            response.append(header::VARY, VARY_ORIGIN);
        }
        self.apply_uncached(origin, response);
    }

    /// [`Cors::apply`] for an answer no cache keeps (`Cache-Control: no-store`: challenges and
    /// the edge's errors), where `Vary` would tell a cache nothing.
    pub fn apply_uncached(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        let Allowed::Listed(origins) = &self.allowed else {
            response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY);
            return;
        };
        if let Some(origin) = origin.filter(|o| origins.contains(o)) {
            response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
    }
}

impl Cors {
    /// The answer to a preflight on the MCP endpoint. Preflights never carry credentials
    /// (Fetch standard), so they are answered here, before the gate.
    /// `requested` is the preflight's `Access-Control-Request-Headers`.
    pub fn preflight(&self, origin: Option<&HeaderValue>, requested: Option<&HeaderValue>) -> Answer {
        let mut response = with_headers(StatusCode::NO_CONTENT, Bytes::new(), 6);
        let h = response.headers_mut();
        self.apply(origin, h);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, MCP_METHODS);
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers(requested, self.dpop));
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, MCP_EXPOSE_HEADERS);
        h.insert(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE);
        response
    }

    /// Lets browser clients read a forwarded response (the edge answered their preflight, so
    /// the actual response must carry the same policy): the allowed origin, and
    /// `Mcp-Session-Id` and `WWW-Authenticate` exposed, unless the MCP server set its own.
    /// A request without `Origin` gets no CORS fields: a browser sends `Origin` on every
    /// cross-origin request, so no one would read them (and writing them was about 600
    /// instructions of every forwarded call). Its answer says `Vary: Origin` instead, so that a
    /// cache keeping it does not hand it to a browser's cross-origin request, which needs them.
    pub fn forwarded(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        if origin.is_none() {
            response.append(header::VARY, VARY_ORIGIN);
            return;
        }
        self.apply(origin, response);
        if !response.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS) {
            response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, MCP_EXPOSE_HEADERS);
        }
    }

    /// One of the edge's own error answers on the MCP endpoint, with this endpoint's policy
    /// (`--cors-origin`) in place of the discovery documents' `*`.
    pub fn on_error(&self, origin: Option<&HeaderValue>, mut response: Answer) -> Answer {
        if !self.allows_any() {
            let h = response.headers_mut();
            h.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
            self.apply_uncached(origin, h);
        }
        response
    }
}

/// `Access-Control-Allow-Headers` for a preflight: the fixed list, and each `Mcp-Param-*` the
/// browser asks for (2026-07-28 mirrors annotated tool arguments into them, under names the
/// edge cannot know in advance). Anything else requested is left out, so the browser refuses
/// it. Pure; allocates only when a `Mcp-Param-*` is asked for.
pub fn allow_headers(requested: Option<&HeaderValue>, dpop: DpopMode) -> HeaderValue {
    let (base_text, base) = match dpop {
        DpopMode::Off => (MCP_ALLOW_HEADERS_TEXT, MCP_ALLOW_HEADERS),
        DpopMode::Allow | DpopMode::Require => (MCP_ALLOW_HEADERS_DPOP_TEXT, MCP_ALLOW_HEADERS_DPOP),
    };
    let Some(text) = requested.and_then(|v| v.to_str().ok()) else { return base };
    let is_token = |name: &str| name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let params: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|name| name.len() > PARAM.len() && name.as_bytes()[..PARAM.len()].eq_ignore_ascii_case(PARAM))
        .filter(|name| is_token(name))
        .take(MAX_PARAM_HEADERS)
        .collect();
    if params.is_empty() {
        return base;
    }
    let value = format!("{base_text}, {}", params.join(", "));
    // Only token characters were added to a valid value.
    HeaderValue::try_from(value).unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preflight_allows_the_mcp_headers_and_echoes_mcp_params() {
        assert_eq!(allow_headers(None, DpopMode::Off), MCP_ALLOW_HEADERS);
        let asked = HeaderValue::from_static("mcp-method,mcp-name,authorization,content-type");
        assert_eq!(allow_headers(Some(&asked), DpopMode::Off), MCP_ALLOW_HEADERS);
        assert!(MCP_ALLOW_HEADERS_TEXT.contains("Mcp-Method, Mcp-Name"));
        let asked = HeaderValue::from_static("mcp-method, Mcp-Param-Region ,x-secret,mcp-param-,mcp-param-a b");
        assert_eq!(allow_headers(Some(&asked), DpopMode::Off), format!("{MCP_ALLOW_HEADERS_TEXT}, Mcp-Param-Region"));
        let many: Vec<String> = (0..40).map(|i| format!("mcp-param-p{i}")).collect();
        let asked = HeaderValue::try_from(many.join(",")).unwrap();
        let allowed = allow_headers(Some(&asked), DpopMode::Off);
        assert_eq!(allowed.to_str().unwrap().matches("mcp-param-").count(), MAX_PARAM_HEADERS);
    }

    #[test]
    fn cors_any_or_listed_origins() {
        let any = Cors::any();
        let listed = Cors::listing(&["https://app.example"]);
        let app = HeaderValue::from_static("https://app.example");
        let evil = HeaderValue::from_static("https://evil.example");
        let mut response = HeaderMap::new();
        any.apply(Some(&app), &mut response);
        assert_eq!(response[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let mut response = HeaderMap::new();
        listed.apply(Some(&app), &mut response);
        assert_eq!(response[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert_eq!(response[header::VARY], "Origin");
        let mut response = HeaderMap::new();
        listed.apply(Some(&evil), &mut response);
        assert!(response.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        let mut upstream_set = HeaderMap::new();
        upstream_set.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("https://own.example"));
        any.apply(Some(&app), &mut upstream_set);
        assert!(any.allows(&evil) && listed.allows(&app) && !listed.allows(&evil));
        assert_eq!(upstream_set[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://own.example");
    }

    #[test]
    fn a_forwarded_answer_has_cors_fields_only_for_a_request_with_origin() {
        let app = HeaderValue::from_static("https://app.example");
        for cors in [Cors::any(), Cors::listing(&["https://app.example"])] {
            let mut response = HeaderMap::new();
            response.insert(header::VARY, HeaderValue::from_static("Accept"));
            cors.forwarded(None, &mut response);
            assert!(response.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{cors:?}");
            assert!(response.get(header::ACCESS_CONTROL_EXPOSE_HEADERS).is_none(), "{cors:?}");
            let vary: Vec<_> = response.get_all(header::VARY).iter().collect();
            assert_eq!(vary, ["Accept", "Origin"], "the server's own Vary is kept: {cors:?}");
            let mut response = HeaderMap::new();
            cors.forwarded(Some(&app), &mut response);
            let allowed = if cors.allows_any() { "*" } else { "https://app.example" };
            assert_eq!(response[header::ACCESS_CONTROL_ALLOW_ORIGIN], allowed);
            assert_eq!(response[header::ACCESS_CONTROL_EXPOSE_HEADERS], "Mcp-Session-Id, WWW-Authenticate");
        }
    }
}
