//! The authorization server's metadata: where to look for it, how to check it, how to fetch it.
//!
//! [`discovery_urls`] and [`validate`] are pure; [`Fetcher`] does the network part.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{Config, Issuer};

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

/// Checks an authorization server metadata document before it may be served.
///
/// RFC 8414 §2 requires `issuer` and `response_types_supported`; `authorization_endpoint` unless
/// no grant type uses it; `token_endpoint` unless only the implicit grant is supported. §3.3
/// requires the `issuer` to be identical to the one the client expected, which is what stops a
/// compromised or misrouted upstream from impersonating another server.
pub fn validate(body: &[u8], expected_issuer: &str) -> Result<(), DocumentError> {
    use serde_json::Value;
    let value: Value = serde_json::from_slice(body).map_err(|e| DocumentError::NotJson(e.to_string()))?;
    let Value::Object(doc) = value else {
        return Err(DocumentError::NotObject);
    };
    // SECURITY: JSON parsers disagree on which of two equal keys wins. serde_json keeps the
    // last, another client may keep the first, so a document with two `issuer`s could pass
    // this check and name another issuer to the client. The bytes are relayed verbatim, so
    // such a document is refused outright.
    if let Ok(UniqueKeys(Some(key))) = serde_json::from_slice::<UniqueKeys>(body) {
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
    for field in ["jwks_uri", "registration_endpoint", "introspection_endpoint", "revocation_endpoint"] {
        string(field)?;
    }
    for field in ["scopes_supported", "code_challenge_methods_supported", "token_endpoint_auth_methods_supported"] {
        strings(field)?;
    }
    Ok(())
}

/// Deserializes only to find the first repeated top-level key of a JSON object, if any.
struct UniqueKeys(Option<String>);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
                let mut seen = std::collections::HashSet::new();
                let mut repeated = None;
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    if repeated.is_none() && seen.contains(&key) {
                        repeated = Some(key);
                    } else {
                        seen.insert(key);
                    }
                }
                Ok(UniqueKeys(repeated))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// The configured scopes that the authorization server does not list in its
/// `scopes_supported`, when it lists any. Clients register with the scopes the resource
/// metadata names, and some servers refuse a registration that asks for unknown scopes.
pub fn unlisted_scopes<'a>(body: &[u8], scopes: &'a [String]) -> Vec<&'a str> {
    let Ok(serde_json::Value::Object(doc)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let Some(serde_json::Value::Array(listed)) = doc.get("scopes_supported") else {
        return Vec::new();
    };
    scopes.iter().map(String::as_str).filter(|s| !listed.iter().any(|l| l.as_str() == Some(*s))).collect()
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

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Fetches and validates the metadata document, trying the discovery URLs in order.
#[derive(Clone)]
pub struct Fetcher {
    client: HttpsClient,
    urls: Vec<String>,
    issuer: String,
    timeout: Duration,
    max_bytes: usize,
}

/// Builds the HTTP client used for upstream calls: http and https (with the bundled Mozilla
/// roots, so a minimal container image needs no CA store), HTTP/1.1 and HTTP/2 by ALPN.
pub fn https_client<B>(connect_timeout: Duration) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(https)
}

impl Fetcher {
    pub fn new(config: &Config) -> Fetcher {
        let urls = match &config.metadata_url {
            Some(url) => vec![url.to_string()],
            None => discovery_urls(&config.issuer),
        };
        Fetcher {
            client: https_client(config.connect_timeout),
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
    pub async fn fetch(&self) -> Result<Bytes, FetchError> {
        let mut last = StatusCode::NOT_FOUND;
        for url in &self.urls {
            match self.fetch_one(url).await {
                Ok(body) => {
                    validate(&body, &self.issuer).map_err(|error| FetchError::Invalid { url: url.clone(), error })?;
                    return Ok(body);
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
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::Connect { url: url.to_string(), reason: error_chain(&e) })?;
            let status = response.status();
            if status != StatusCode::OK {
                return Err(FetchError::Status { url: url.to_string(), status });
            }
            if let Some(len) = response.headers().get(header::CONTENT_LENGTH) {
                if len.to_str().ok().and_then(|l| l.parse::<u64>().ok()).is_some_and(|l| l > self.max_bytes as u64) {
                    return Err(FetchError::TooLarge { url: url.to_string(), limit: self.max_bytes });
                }
            }
            let limited = Limited::new(response.into_body(), self.max_bytes);
            match limited.collect().await {
                Ok(collected) => Ok(collected.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    Err(FetchError::TooLarge { url: url.to_string(), limit: self.max_bytes })
                }
                Err(e) => Err(FetchError::Body { url: url.to_string(), reason: e.to_string() }),
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout { url: url.to_string(), after: self.timeout }),
        }
    }
}

/// An error and its causes on one line: hyper's outer errors ("client error (Connect)") say
/// little without the inner ones.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        out.push_str(": ");
        out.push_str(&inner.to_string());
        source = inner.source();
    }
    out
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
    fn accepts_minimal_document() {
        assert_eq!(validate(GOOD.as_bytes(), "https://as.example"), Ok(()));
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
        let doc = br#"{"scopes_supported":["openid","mcp:tools"]}"#;
        let scopes = vec!["mcp:tools".to_string(), "mcp:admin".to_string()];
        assert_eq!(unlisted_scopes(doc, &scopes), ["mcp:admin"]);
        assert!(unlisted_scopes(b"{}", &scopes).is_empty());
    }

    #[test]
    fn grant_types_relax_endpoint_requirements() {
        let client_credentials_only = r#"{"issuer":"https://as.example","response_types_supported":["token"],
            "grant_types_supported":["client_credentials"],"token_endpoint":"t"}"#;
        assert_eq!(validate(client_credentials_only.as_bytes(), "https://as.example"), Ok(()));
        let implicit_only = r#"{"issuer":"https://as.example","response_types_supported":["token"],
            "grant_types_supported":["implicit"],"authorization_endpoint":"a"}"#;
        assert_eq!(validate(implicit_only.as_bytes(), "https://as.example"), Ok(()));
    }
}
