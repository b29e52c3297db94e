//! Token checks at the edge (`--token-check jwt`): the authorization server's JWKS kept as a
//! snapshot beside its metadata, and verified tokens remembered until they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};

use crate::jwt::{self, Claims, Expectations, JwkSet, TokenError};

/// Verified tokens kept at most; past this the cache drops expired entries, then everything.
const CACHE_CAPACITY: usize = 10_000;
/// An unknown `kid` refetches the JWKS at most this often, so forged `kid`s cannot make the
/// edge hammer the authorization server.
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Why a request's token was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The token itself is bad: 401 `invalid_token`.
    Invalid(TokenError),
    /// The token lacks a required scope: 403 `insufficient_scope`.
    InsufficientScope,
    /// No JWKS to check against yet (or the metadata names none): 503.
    NoKeys,
}

/// The JWT checker shared by every connection.
pub struct Verifier {
    keys: ArcSwapOption<JwkSet>,
    /// The `jwks_uri` of the metadata in service.
    jwks_uri: ArcSwapOption<String>,
    expect: Expectations,
    required_scopes: Vec<String>,
    cache: Mutex<HashMap<Box<str>, Arc<Claims>>>,
    last_refetch: Mutex<Option<Instant>>,
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Empty<Bytes>,
    >,
    timeout: Duration,
    max_bytes: usize,
}

impl Verifier {
    pub fn new(config: &crate::Config) -> Verifier {
        let mut audiences = vec![config.resource.url.clone()];
        audiences.extend(config.audiences.iter().cloned());
        Verifier {
            keys: ArcSwapOption::empty(),
            jwks_uri: ArcSwapOption::empty(),
            expect: Expectations {
                issuer: config.issuer.url.clone(),
                audiences,
                leeway_secs: jwt::DEFAULT_LEEWAY_SECS,
            },
            required_scopes: config.required_scopes.clone(),
            cache: Mutex::new(HashMap::new()),
            last_refetch: Mutex::new(None),
            client: crate::metadata::https_client(config.connect_timeout),
            timeout: config.fetch_timeout,
            max_bytes: config.max_metadata_bytes,
        }
    }

    /// Whether a key set is in service (readiness, in jwt mode).
    pub fn ready(&self) -> bool {
        self.keys.load().is_some()
    }

    /// Called by the refresh task with each good metadata document: fetches the JWKS it names.
    /// A failure keeps the keys in service.
    pub async fn refresh(&self, metadata: &[u8]) -> Result<usize, String> {
        let uri = jwks_uri(metadata).ok_or("the authorization server metadata names no jwks_uri")?;
        self.jwks_uri.store(Some(Arc::new(uri)));
        self.fetch().await
    }

    async fn fetch(&self) -> Result<usize, String> {
        let Some(uri) = self.jwks_uri.load_full() else {
            return Err("no jwks_uri known yet".into());
        };
        let target: Uri = uri.parse().map_err(|_| format!("jwks_uri {uri:?} is not a URL"))?;
        let request = Request::get(target)
            .header(header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| format!("{uri}: {e}"))?;
            if response.status() != StatusCode::OK {
                return Err(format!("{uri}: answered {}", response.status()));
            }
            let body = Limited::new(response.into_body(), self.max_bytes)
                .collect()
                .await
                .map_err(|e| format!("{uri}: reading the body failed ({e})"))?
                .to_bytes();
            JwkSet::parse(&body).map_err(|e| format!("{uri}: {e}"))
        };
        let set = tokio::time::timeout(self.timeout, exchange).await.map_err(|_| format!("{uri}: timed out"))??;
        let count = set.len();
        self.keys.store(Some(Arc::new(set)));
        Ok(count)
    }

    /// Checks a bearer token: the cache first, then the signature and claims, with one
    /// rate-limited JWKS refetch when the key is unknown (the server may have rotated).
    pub async fn check(&self, token: &str) -> Result<Arc<Claims>, Rejection> {
        let now = unix_now();
        if let Some(claims) = self.cached(token, now) {
            return self.authorize(claims);
        }
        let claims = match self.verify(token, now) {
            Err(Rejection::Invalid(TokenError::UnknownKey { .. })) if self.may_refetch() => {
                if let Err(e) = self.fetch().await {
                    crate::warn!("JWKS refetch for an unknown key failed: {e}");
                }
                self.verify(token, now)?
            }
            other => other?,
        };
        let claims = Arc::new(claims);
        self.remember(token, &claims, now);
        self.authorize(claims)
    }

    fn verify(&self, token: &str, now: u64) -> Result<Claims, Rejection> {
        let keys = self.keys.load();
        let keys = keys.as_ref().ok_or(Rejection::NoKeys)?;
        jwt::verify(token, keys, &self.expect, now).map_err(Rejection::Invalid)
    }

    fn authorize(&self, claims: Arc<Claims>) -> Result<Arc<Claims>, Rejection> {
        if self.required_scopes.iter().all(|needed| claims.scopes.iter().any(|s| s == needed)) {
            Ok(claims)
        } else {
            Err(Rejection::InsufficientScope)
        }
    }

    fn cached(&self, token: &str, now: u64) -> Option<Arc<Claims>> {
        let cache = self.cache.lock().ok()?;
        // SECURITY: a cached verdict never outlives the token's own `exp`.
        cache.get(token).filter(|claims| now <= claims.expires_at).cloned()
    }

    fn remember(&self, token: &str, claims: &Arc<Claims>, now: u64) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, c| now <= c.expires_at);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(token.into(), Arc::clone(claims));
    }

    fn may_refetch(&self) -> bool {
        let Ok(mut last) = self.last_refetch.lock() else {
            return false;
        };
        match *last {
            Some(at) if at.elapsed() < REFETCH_INTERVAL => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }
}

/// The `jwks_uri` of a metadata document (already validated as a string when present).
pub fn jwks_uri(metadata: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(metadata).ok()?;
    doc.get("jwks_uri")?.as_str().map(str::to_string)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_uri_is_read_from_metadata() {
        assert_eq!(jwks_uri(br#"{"jwks_uri":"https://as.example/jwks"}"#).as_deref(), Some("https://as.example/jwks"));
        assert_eq!(jwks_uri(br#"{"issuer":"x"}"#), None);
        assert_eq!(jwks_uri(b"not json"), None);
    }
}
