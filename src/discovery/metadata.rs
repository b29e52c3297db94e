//! The authorization server's metadata: where to look for it, how to check it, how to fetch it.
//!
//! [`discovery_urls`] and [`validate`] are pure; [`Fetcher`] does the network part.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::Empty;

use crate::common::client::{self, FetchFailure, HttpsClient};
use crate::common::json::repeated_key;
use crate::config::{Config, Issuer};
use crate::gate::tokens::Offered;

/// The URLs to try, in order, for an issuer (RFC 8414 §3.1, OpenID Connect Discovery §4), the
/// way the MCP clients try them.
pub fn discovery_urls(issuer: &Issuer) -> Vec<String> {
    let (o, p) = (&issuer.origin, &issuer.path);
    if p.is_empty() {
        vec![format!("{o}/.well-known/oauth-authorization-server"), format!("{o}/.well-known/openid-configuration")]
    } else {
        vec![
            format!("{o}/.well-known/oauth-authorization-server{p}"),
            format!("{o}/.well-known/openid-configuration{p}"),
            format!("{o}{p}/.well-known/openid-configuration"),
        ]
    }
}

/// Why an upstream document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DocumentError {
    NotJson(String),
    NotObject,
    DuplicateField(String),
    MissingField(&'static str),
    WrongType { field: &'static str, expected: &'static str },
    IssuerMismatch { expected: String, found: String },
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocumentError::NotJson(e) => write!(f, "not valid JSON ({e})"),
            DocumentError::NotObject => f.write_str("not a JSON object"),
            DocumentError::DuplicateField(field) => write!(f, "field {field:?} appears more than once"),
            DocumentError::MissingField(field) => write!(f, "required field \"{field}\" is missing"),
            DocumentError::WrongType { field, expected } => write!(f, "field \"{field}\" must be {expected}"),
            DocumentError::IssuerMismatch { expected, found } => {
                write!(f, "issuer {found:?} is not the configured issuer {expected:?}")
            }
        }
    }
}

impl std::error::Error for DocumentError {}

/// What the edge reads of a valid authorization server metadata document, taken when it is
/// validated so that nothing parses it again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub jwks_uri: Option<String>,
    pub introspection_endpoint: Option<String>,
    /// `None` when the server does not list its scopes.
    pub scopes_supported: Option<Vec<String>>,
}

impl Metadata {
    /// What the document offers the token check.
    pub fn offered(&self) -> Offered<'_> {
        Offered { jwks_uri: self.jwks_uri.as_deref(), introspection_endpoint: self.introspection_endpoint.as_deref() }
    }

    /// The configured scopes that the authorization server does not list in its
    /// `scopes_supported`, when it lists any. Clients register with the scopes the resource
    /// metadata names, and some servers refuse a registration that asks for unknown scopes.
    pub fn unlisted_scopes<'a>(&self, scopes: &'a [String]) -> Vec<&'a str> {
        let Some(listed) = &self.scopes_supported else {
            return Vec::new();
        };
        scopes.iter().map(String::as_str).filter(|s| !listed.iter().any(|l| l == s)).collect()
    }
}

/// A fetched document: its bytes, relayed verbatim, and what was read from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub body: Bytes,
    pub metadata: Metadata,
}

/// Checks an authorization server metadata document before it may be served, and returns
/// what the edge needs of it.
///
/// RFC 8414 §2 requires `issuer` and `response_types_supported`; `authorization_endpoint` unless
/// no grant type uses it; `token_endpoint` unless only the implicit grant is supported. §3.3
/// requires the `issuer` to be identical to the one the client expected, which is what stops a
/// compromised or misrouted upstream from impersonating another server.
pub fn validate(body: &[u8], expected_issuer: &str) -> Result<Metadata, DocumentError> {
    use serde_json::Value;
    let value: Value = serde_json::from_slice(body).map_err(|e| DocumentError::NotJson(e.to_string()))?;
    let Value::Object(doc) = value else {
        return Err(DocumentError::NotObject);
    };
    // SECURITY: JSON parsers disagree on which of two equal keys wins. serde_json keeps the
    // last, another client may keep the first, so a document with two `issuer`s could pass
    // this check and name another issuer to the client. The bytes are relayed verbatim, so
    // such a document is refused outright.
    if let Some(key) = repeated_key(body) {
        return Err(DocumentError::DuplicateField(key));
    }
    let string = |field: &'static str| match doc.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(DocumentError::WrongType { field, expected: "a string" }),
    };
    let strings = |field: &'static str| match doc.get(field) {
        None => Ok(None),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>()))
        }
        Some(_) => Err(DocumentError::WrongType { field, expected: "an array of strings" }),
    };

    let issuer = string("issuer")?.ok_or(DocumentError::MissingField("issuer"))?;
    if issuer != expected_issuer {
        return Err(DocumentError::IssuerMismatch { expected: expected_issuer.to_string(), found: issuer.to_string() });
    }
    match strings("response_types_supported")? {
        Some(list) if !list.is_empty() => {}
        Some(_) => {
            return Err(DocumentError::WrongType {
                field: "response_types_supported",
                expected: "a non-empty array of strings",
            })
        }
        None => return Err(DocumentError::MissingField("response_types_supported")),
    }
    // RFC 8414 §2: grant_types_supported defaults to authorization_code and implicit.
    let grants = strings("grant_types_supported")?.unwrap_or_else(|| vec!["authorization_code", "implicit"]);
    let authorization_endpoint = string("authorization_endpoint")?;
    if authorization_endpoint.is_none() && grants.iter().any(|g| *g == "authorization_code" || *g == "implicit") {
        return Err(DocumentError::MissingField("authorization_endpoint"));
    }
    let token_endpoint = string("token_endpoint")?;
    if token_endpoint.is_none() && grants.iter().any(|g| *g != "implicit") {
        return Err(DocumentError::MissingField("token_endpoint"));
    }
    for field in ["registration_endpoint", "revocation_endpoint"] {
        string(field)?;
    }
    for field in ["code_challenge_methods_supported", "token_endpoint_auth_methods_supported"] {
        strings(field)?;
    }
    let owned = |s: Option<&str>| s.map(str::to_string);
    Ok(Metadata {
        jwks_uri: owned(string("jwks_uri")?),
        introspection_endpoint: owned(string("introspection_endpoint")?),
        scopes_supported: strings("scopes_supported")?.map(|list| list.into_iter().map(str::to_string).collect()),
    })
}

/// Why a fetch of the metadata failed. The last good snapshot stays in service whatever it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    Connect {
        url: String,
        reason: String,
    },
    Timeout {
        url: String,
        after: Duration,
    },
    Status {
        url: String,
        status: StatusCode,
    },
    TooLarge {
        url: String,
        limit: usize,
    },
    Body {
        url: String,
        reason: String,
    },
    Invalid {
        url: String,
        error: DocumentError,
    },
    /// Every URL in the discovery order answered with a 4xx.
    NotFound {
        tried: usize,
        last: StatusCode,
    },
    BadUrl(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Connect { url, reason } => write!(f, "{url}: cannot connect ({reason})"),
            FetchError::Timeout { url, after } => write!(f, "{url}: no complete answer within {after:?}"),
            FetchError::Status { url, status } => write!(f, "{url}: answered {status}"),
            FetchError::TooLarge { url, limit } => write!(f, "{url}: document larger than {limit} bytes"),
            FetchError::Body { url, reason } => write!(f, "{url}: reading the body failed ({reason})"),
            FetchError::Invalid { url, error } => write!(f, "{url}: document refused: {error}"),
            FetchError::NotFound { tried, last } => {
                write!(f, "no metadata at any of the {tried} discovery URLs (last answered {last})")
            }
            FetchError::BadUrl(url) => write!(f, "{url}: not a usable URL"),
        }
    }
}

impl std::error::Error for FetchError {}

/// Fetches and validates the metadata document, trying the discovery URLs in order.
#[derive(Clone)]
pub struct Fetcher {
    client: HttpsClient<Empty<Bytes>>,
    urls: Vec<String>,
    issuer: String,
    timeout: Duration,
    max_bytes: usize,
}

impl Fetcher {
    pub fn new(config: &Config) -> Fetcher {
        let urls = match &config.metadata_url {
            Some(url) => vec![url.to_string()],
            None => discovery_urls(&config.issuer),
        };
        Fetcher {
            client: client::https_client(config.connect_timeout),
            urls,
            issuer: config.issuer.url.clone(),
            timeout: config.fetch_timeout,
            max_bytes: config.max_metadata_bytes,
        }
    }

    /// The URLs this fetcher tries, in order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Fetches the first document in the discovery order that answers 200 and validates it.
    /// A 4xx moves on to the next URL; anything else ends the attempt.
    pub async fn fetch(&self) -> Result<Fetched, FetchError> {
        let mut last = StatusCode::NOT_FOUND;
        for url in &self.urls {
            match self.fetch_one(url).await {
                Ok(body) => {
                    let metadata = validate(&body, &self.issuer)
                        .map_err(|error| FetchError::Invalid { url: url.clone(), error })?;
                    return Ok(Fetched { body, metadata });
                }
                Err(FetchError::Status { status, .. }) if status.is_client_error() => last = status,
                Err(e) => return Err(e),
            }
        }
        Err(FetchError::NotFound { tried: self.urls.len(), last })
    }

    async fn fetch_one(&self, url: &str) -> Result<Bytes, FetchError> {
        let uri: Uri = url.parse().map_err(|_| FetchError::BadUrl(url.to_string()))?;
        let request = Request::get(uri)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, concat!("mcp-auth-edge/", env!("CARGO_PKG_VERSION")))
            .body(Empty::new())
            .map_err(|_| FetchError::BadUrl(url.to_string()))?;
        let url = url.to_string();
        match client::fetch(&self.client, request, self.timeout, self.max_bytes, |s| s == StatusCode::OK).await {
            Ok((StatusCode::OK, body)) => Ok(body),
            Ok((status, _)) => Err(FetchError::Status { url, status }),
            Err(FetchFailure::Connect(reason)) => Err(FetchError::Connect { url, reason }),
            Err(FetchFailure::Timeout(after)) => Err(FetchError::Timeout { url, after }),
            Err(FetchFailure::TooLarge(limit)) => Err(FetchError::TooLarge { url, limit }),
            Err(FetchFailure::Body(reason)) => Err(FetchError::Body { url, reason }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(url: &str, origin: &str, path: &str) -> Issuer {
        Issuer { url: url.into(), origin: origin.into(), path: path.into() }
    }

    #[test]
    fn discovery_order_without_path() {
        let urls = discovery_urls(&issuer("https://as.example", "https://as.example", ""));
        assert_eq!(
            urls,
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn discovery_order_with_path() {
        let urls = discovery_urls(&issuer("https://as.example/t/1/", "https://as.example", "/t/1"));
        assert_eq!(
            urls,
            [
                "https://as.example/.well-known/oauth-authorization-server/t/1",
                "https://as.example/.well-known/openid-configuration/t/1",
                "https://as.example/t/1/.well-known/openid-configuration",
            ]
        );
    }

    const GOOD: &str = r#"{"issuer":"https://as.example","authorization_endpoint":"https://as.example/authorize",
        "token_endpoint":"https://as.example/token","response_types_supported":["code"]}"#;

    #[test]
    fn what_the_edge_needs_is_read_once() {
        let doc = r#"{"issuer":"https://as.example","authorization_endpoint":"a","token_endpoint":"t",
            "response_types_supported":["code"],"jwks_uri":"https://as.example/jwks",
            "introspection_endpoint":"https://as.example/introspect"}"#;
        let metadata = validate(doc.as_bytes(), "https://as.example").expect("a valid document");
        assert_eq!(metadata.offered().jwks_uri, Some("https://as.example/jwks"));
        assert_eq!(metadata.offered().introspection_endpoint, Some("https://as.example/introspect"));
        assert_eq!(metadata.scopes_supported, None);
    }

    #[test]
    fn accepts_minimal_document() {
        assert_eq!(validate(GOOD.as_bytes(), "https://as.example"), Ok(Metadata::default()));
    }

    #[test]
    fn issuer_must_be_identical() {
        // RFC 8414 §3.3: identical, so even a trailing slash is a mismatch.
        assert_eq!(
            validate(GOOD.as_bytes(), "https://as.example/"),
            Err(DocumentError::IssuerMismatch {
                expected: "https://as.example/".into(),
                found: "https://as.example".into()
            })
        );
    }

    #[test]
    fn refusals_say_why() {
        let v = |s: &str| validate(s.as_bytes(), "https://as.example");
        assert!(matches!(v("{"), Err(DocumentError::NotJson(_))));
        assert_eq!(v("[]"), Err(DocumentError::NotObject));
        assert_eq!(v("{}"), Err(DocumentError::MissingField("issuer")));
        assert_eq!(v(r#"{"issuer":1}"#), Err(DocumentError::WrongType { field: "issuer", expected: "a string" }));
        assert_eq!(
            v(r#"{"issuer":"https://as.example"}"#),
            Err(DocumentError::MissingField("response_types_supported"))
        );
        assert_eq!(
            v(r#"{"issuer":"https://as.example","response_types_supported":["code"],"token_endpoint":"t"}"#),
            Err(DocumentError::MissingField("authorization_endpoint"))
        );
        assert_eq!(
            v(r#"{"issuer":"https://as.example","response_types_supported":["code"],"authorization_endpoint":"a"}"#),
            Err(DocumentError::MissingField("token_endpoint"))
        );
        assert_eq!(
            v(
                r#"{"issuer":"https://as.example","response_types_supported":[],"authorization_endpoint":"a","token_endpoint":"t"}"#
            ),
            Err(DocumentError::WrongType {
                field: "response_types_supported",
                expected: "a non-empty array of strings"
            })
        );
        assert_eq!(
            v(
                r#"{"issuer":"https://as.example","response_types_supported":["code"],"authorization_endpoint":"a","token_endpoint":"t","jwks_uri":5}"#
            ),
            Err(DocumentError::WrongType { field: "jwks_uri", expected: "a string" })
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let twice = r#"{"issuer":"https://evil.example","authorization_endpoint":"a","token_endpoint":"t",
            "response_types_supported":["code"],"issuer":"https://as.example"}"#;
        assert_eq!(
            validate(twice.as_bytes(), "https://as.example"),
            Err(DocumentError::DuplicateField("issuer".into()))
        );
    }

    #[test]
    fn unlisted_scopes_are_named() {
        let doc = r#"{"issuer":"https://as.example","authorization_endpoint":"a","token_endpoint":"t",
            "response_types_supported":["code"],"scopes_supported":["openid","mcp:tools"]}"#;
        let metadata = validate(doc.as_bytes(), "https://as.example").expect("a valid document");
        let scopes = vec!["mcp:tools".to_string(), "mcp:admin".to_string()];
        assert_eq!(metadata.unlisted_scopes(&scopes), ["mcp:admin"]);
        assert!(Metadata::default().unlisted_scopes(&scopes).is_empty());
    }

    #[test]
    fn grant_types_relax_endpoint_requirements() {
        let client_credentials_only = r#"{"issuer":"https://as.example","response_types_supported":["token"],
            "grant_types_supported":["client_credentials"],"token_endpoint":"t"}"#;
        assert_eq!(validate(client_credentials_only.as_bytes(), "https://as.example"), Ok(Metadata::default()));
        let implicit_only = r#"{"issuer":"https://as.example","response_types_supported":["token"],
            "grant_types_supported":["implicit"],"authorization_endpoint":"a"}"#;
        assert_eq!(validate(implicit_only.as_bytes(), "https://as.example"), Ok(Metadata::default()));
    }
}
