//! Token checks at the edge: `--token-check jwt` (the authorization server's JWKS kept as a
//! snapshot beside its metadata) and `--token-check introspect` (RFC 7662, asked per new
//! token). Either way an accepted token is remembered, so a client's repeated calls are
//! answered from memory, never past the token's `exp`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::Full;

use crate::common::client::{self, FetchFailure, HttpsClient};
use crate::config::{Config, TokenCheck};
use crate::gate::introspect;
use crate::gate::jwt::{self, Claims, Expectations, JwkSet, JwksError, TokenError};

/// Accepted tokens kept at most; past this the cache drops expired entries, then everything.
const CACHE_CAPACITY: usize = 10_000;
/// An unknown `kid` refetches the JWKS at most this often, so forged `kid`s cannot make the
/// edge hammer the authorization server.
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
const FORM: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Why a request's token was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The token itself is bad: 401 `invalid_token`.
    Invalid(TokenError),
    /// The token lacks a required scope: 403 `insufficient_scope`.
    InsufficientScope,
    /// No JWKS to check against yet (or the metadata names none): 503.
    NoKeys,
    /// The introspection endpoint gave no usable answer (unknown yet, unreachable, timed out,
    /// an error status or a malformed body): 503. Never a pass.
    IntrospectionFailed,
}

/// What the authorization server's metadata offers a token check.
#[derive(Clone, Copy, Debug, Default)]
pub struct Offered<'a> {
    pub jwks_uri: Option<&'a str>,
    pub introspection_endpoint: Option<&'a str>,
}

/// Why an authorization server cannot support the configured token check, or policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unusable {
    NoJwksUri,
    NoIntrospectionEndpoint,
    IntrospectionEndpointNotAbsolute,
    /// Scopes the MCP policy's rules require that the server's `scopes_supported` does not
    /// list: no client could obtain them, so what needs them could never be allowed.
    UnlistedPolicyScopes(Vec<String>),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unusable::NoJwksUri => "the authorization server metadata names no jwks_uri, which --token-check jwt needs",
            Unusable::NoIntrospectionEndpoint => {
                "the authorization server metadata names no introspection_endpoint, which --token-check introspect needs"
            }
            Unusable::IntrospectionEndpointNotAbsolute => {
                "the authorization server's introspection_endpoint is not an absolute URL"
            }
            Unusable::UnlistedPolicyScopes(scopes) => {
                return write!(
                    f,
                    "the policy's rules require the scopes {scopes:?}, which the authorization server's \
                     scopes_supported does not list: no client could obtain them"
                );
            }
        })
    }
}

impl std::error::Error for Unusable {}

/// Why the key set (or the introspection endpoint) was not taken from a metadata document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeysError {
    Unusable(Unusable),
    BadUri(String),
    Fetch { uri: String, failure: FetchFailure },
    Status { uri: String, status: StatusCode },
    Keys { uri: String, error: JwksError },
}

impl std::fmt::Display for KeysError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeysError::Unusable(why) => write!(f, "{why}"),
            KeysError::BadUri(uri) => write!(f, "jwks_uri {uri:?} is not a URL"),
            KeysError::Fetch { uri, failure } => write!(f, "{uri}: {failure}"),
            KeysError::Status { uri, status } => write!(f, "{uri}: answered {status}"),
            KeysError::Keys { uri, error } => write!(f, "{uri}: {error}"),
        }
    }
}

impl std::error::Error for KeysError {}

/// The token checker shared by every connection.
pub struct TokenChecker {
    source: Source,
    expect: Expectations,
    required_scopes: Vec<String>,
    /// Keyed by the token's tail (see [`cache_key`]); the entry holds the whole token.
    cache: Mutex<HashMap<Box<[u8]>, Cached, TailHash>>,
    client: HttpsClient<Full<Bytes>>,
    timeout: Duration,
    max_bytes: usize,
}

/// An accepted token's claims and the Unix second from which the verdict is stale.
struct Cached {
    token: Box<[u8]>,
    until: u64,
    claims: Arc<Claims>,
}

/// Where verdicts come from, with the state that needs: the key set the edge checks
/// signatures against, or the endpoint it asks.
enum Source {
    KeySet(Jwks),
    Introspection(Introspection),
}

struct Jwks {
    keys: ArcSwapOption<JwkSet>,
    /// The `jwks_uri` of the metadata in service.
    uri: ArcSwapOption<String>,
    last_refetch: Mutex<Option<Instant>>,
    /// Held across an unknown-key refetch, so tokens arriving meanwhile wait for its keys
    /// instead of being refused against the old set.
    refetching: tokio::sync::Mutex<()>,
}

struct Introspection {
    /// The `introspection_endpoint` of the metadata in service.
    endpoint: ArcSwapOption<Uri>,
    /// `Basic` client credentials, made once.
    authorization: HeaderValue,
    /// How long an active answer is trusted, even when the token lives longer: the bound on
    /// how late a revocation is noticed.
    cache_for: u64,
    /// Set while the endpoint fails, so that the failure is logged once, not per request.
    failing: AtomicBool,
}

/// What the authorization server says, asked again, of a token a stream was opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recheck {
    /// Still active, with the scopes the resource requires.
    Good,
    /// No longer active (revoked, expired) or no longer enough: the stream ends.
    Refused,
    /// No answer that says anything of the token (the server unreachable, or a bad answer):
    /// asked again at the next interval. An outage of the authorization server does not cut
    /// every stream; it cannot open new ones either.
    Unknown,
}

impl TokenChecker {
    /// The checker for the configured mode; `None` in presence mode, the one mode that checks
    /// no token at the edge.
    pub fn new(config: &Config) -> Option<TokenChecker> {
        let source = match &config.token_check {
            TokenCheck::Jwt => Source::KeySet(Jwks {
                keys: ArcSwapOption::empty(),
                uri: ArcSwapOption::empty(),
                last_refetch: Mutex::new(None),
                refetching: tokio::sync::Mutex::new(()),
            }),
            TokenCheck::Introspect { client, cache_for, .. } => Source::Introspection(Introspection {
                endpoint: ArcSwapOption::empty(),
                // Base64 text is always a valid header value.
                authorization: HeaderValue::try_from(introspect::basic_authorization(&client.id, &client.secret))
                    .unwrap_or(HeaderValue::from_static("")),
                cache_for: cache_for.as_secs(),
                failing: AtomicBool::new(false),
            }),
            TokenCheck::Presence => return None,
        };
        let mut audiences = vec![config.resource.url.clone()];
        audiences.extend(config.audiences.iter().cloned());
        Some(TokenChecker {
            source,
            expect: Expectations {
                issuer: config.issuer.url.clone(),
                audiences,
                leeway_secs: config.token_leeway.as_secs(),
                typ: config.jwt_typ,
            },
            required_scopes: config.required_scopes.clone(),
            cache: Mutex::new(HashMap::with_hasher(TailHash::new())),
            client: client::https_client(config.connect_timeout),
            timeout: config.fetch_timeout,
            max_bytes: config.max_metadata_bytes,
        })
    }

    /// What this mode needs from the authorization server, for log lines.
    pub fn needs(&self) -> &'static str {
        match self.source {
            Source::KeySet(_) => "JWKS",
            Source::Introspection(_) => "introspection endpoint",
        }
    }

    /// Whether this checker checks signatures against a key set (jwt mode).
    pub fn uses_keys(&self) -> bool {
        matches!(self.source, Source::KeySet(_))
    }

    /// Whether tokens can be checked: the JWKS is loaded, or the introspection endpoint known.
    pub fn ready(&self) -> bool {
        match &self.source {
            Source::KeySet(jwks) => jwks.keys.load().is_some(),
            Source::Introspection(i) => i.endpoint.load().is_some(),
        }
    }

    /// Whether the authorization server offers what this mode needs; metadata that does not
    /// is refused (at start-up, the edge stops: it could never check a token).
    pub fn requirement(&self, offered: Offered<'_>) -> Result<(), Unusable> {
        match self.source {
            Source::KeySet(_) => offered.jwks_uri.map(|_| ()).ok_or(Unusable::NoJwksUri),
            Source::Introspection(_) => match offered.introspection_endpoint.map(str::parse::<Uri>) {
                Some(Ok(uri)) if uri.scheme().is_some() && uri.authority().is_some() => Ok(()),
                Some(_) => Err(Unusable::IntrospectionEndpointNotAbsolute),
                None => Err(Unusable::NoIntrospectionEndpoint),
            },
        }
    }

    /// Called by the refresh task with each good metadata document that meets
    /// [`TokenChecker::requirement`]: fetches the JWKS it names, or takes its introspection
    /// endpoint. A failure keeps what is in service.
    pub async fn refresh(&self, offered: Offered<'_>) -> Result<(), KeysError> {
        match &self.source {
            Source::KeySet(jwks) => {
                let uri = offered.jwks_uri.ok_or(KeysError::Unusable(Unusable::NoJwksUri))?;
                jwks.uri.store(Some(Arc::new(uri.to_string())));
                self.fetch_keys(jwks).await
            }
            Source::Introspection(i) => {
                let endpoint = offered
                    .introspection_endpoint
                    .and_then(|u| u.parse::<Uri>().ok())
                    .ok_or(KeysError::Unusable(Unusable::NoIntrospectionEndpoint))?;
                if i.endpoint.load().as_deref() != Some(&endpoint) {
                    i.endpoint.store(Some(Arc::new(endpoint)));
                }
                Ok(())
            }
        }
    }

    async fn fetch_keys(&self, jwks: &Jwks) -> Result<(), KeysError> {
        let Some(uri) = jwks.uri.load_full() else {
            return Err(KeysError::Unusable(Unusable::NoJwksUri));
        };
        let target: Uri = uri.parse().map_err(|_| KeysError::BadUri(uri.to_string()))?;
        let request = Request::get(target)
            .header(header::ACCEPT, JSON)
            .body(Full::default())
            .map_err(|_| KeysError::BadUri(uri.to_string()))?;
        let body = match self.fetch(request, |status| status == StatusCode::OK).await {
            Ok((StatusCode::OK, body)) => body,
            Ok((status, _)) => return Err(KeysError::Status { uri: uri.to_string(), status }),
            Err(failure) => return Err(KeysError::Fetch { uri: uri.to_string(), failure }),
        };
        let set = JwkSet::parse(&body).map_err(|error| KeysError::Keys { uri: uri.to_string(), error })?;
        jwks.keys.store(Some(Arc::new(set)));
        Ok(())
    }

    /// One request to the authorization server, bounded in time and size.
    async fn fetch(
        &self,
        request: Request<Full<Bytes>>,
        wanted: impl FnOnce(StatusCode) -> bool,
    ) -> Result<(StatusCode, Bytes), FetchFailure> {
        client::fetch(&self.client, request, self.timeout, self.max_bytes, wanted).await
    }

    /// Whether the authorization server can be asked again about a token (introspection mode),
    /// so that a long stream ends when its token is revoked.
    pub fn can_recheck(&self) -> bool {
        matches!(self.source, Source::Introspection(_))
    }

    /// Asks the introspection endpoint again, past the verdict cache, whether a token a stream
    /// was opened with is still good. A JWT (no introspection) is taken as it was checked: its
    /// `exp` is what ends its streams.
    pub async fn recheck(&self, token: &[u8]) -> Recheck {
        let Source::Introspection(i) = &self.source else { return Recheck::Good };
        let Ok(token) = std::str::from_utf8(token) else { return Recheck::Refused };
        match self.introspect(i, token, unix_now()).await.map(|claims| self.authorize(Arc::new(claims))) {
            Ok(Ok(_)) => Recheck::Good,
            Ok(Err(_)) | Err(Rejection::Invalid(_)) | Err(Rejection::InsufficientScope) => Recheck::Refused,
            Err(Rejection::NoKeys) | Err(Rejection::IntrospectionFailed) => Recheck::Unknown,
        }
    }

    /// The verdict on a token the cache holds, without waiting; `None` when it needs [`check`].
    ///
    /// [`check`]: TokenChecker::check
    pub fn check_cached(&self, token: &[u8]) -> Option<Result<Arc<Claims>, Rejection>> {
        self.cached(token, unix_now()).map(|claims| self.authorize(claims))
    }

    /// Checks a bearer token (as [`crate::gate::credential::bearer`] took it from the header): the cache
    /// first, then the mode's own check.
    pub async fn check(&self, token: &[u8]) -> Result<Arc<Claims>, Rejection> {
        let now = unix_now();
        if let Some(claims) = self.cached(token, now) {
            return self.authorize(claims);
        }
        let token = std::str::from_utf8(token)
            .map_err(|_| Rejection::Invalid(TokenError::Malformed("the token is not ASCII")))?;
        let (claims, until) = match &self.source {
            Source::KeySet(jwks) => {
                let claims = self.verify_jwt(jwks, token, now).await?;
                let until = claims.expires_at;
                (claims, until)
            }
            Source::Introspection(i) => {
                let claims = self.introspect(i, token, now).await?;
                let until = claims.expires_at.min(now.saturating_add(i.cache_for));
                (claims, until)
            }
        };
        let claims = Arc::new(claims);
        if until > now {
            self.remember(token.as_bytes(), &claims, until, now);
        }
        self.authorize(claims)
    }

    /// Signature and claims, with one rate-limited JWKS refetch when the key is unknown (the
    /// server may have rotated).
    async fn verify_jwt(&self, jwks: &Jwks, token: &str, now: u64) -> Result<Claims, Rejection> {
        let verify = || {
            let keys = jwks.keys.load();
            let keys = keys.as_ref().ok_or(Rejection::NoKeys)?;
            jwt::verify(token, keys, &self.expect, now).map_err(Rejection::Invalid)
        };
        let unknown = |verdict: &Result<Claims, Rejection>| {
            matches!(verdict, Err(Rejection::Invalid(TokenError::UnknownKey { .. })))
        };
        let verdict = verify();
        if !unknown(&verdict) {
            return verdict;
        }
        let _turn = jwks.refetching.lock().await;
        // Another request's refetch may have brought the key while this one waited.
        let verdict = verify();
        if !unknown(&verdict) || !may_refetch(&jwks.last_refetch) {
            return verdict;
        }
        if let Err(e) = self.fetch_keys(jwks).await {
            crate::warn!("JWKS refetch for an unknown key failed: {e}");
        }
        verify()
    }

    /// Asks the introspection endpoint (RFC 7662 §2.1) and judges its answer.
    async fn introspect(&self, i: &Introspection, token: &str, now: u64) -> Result<Claims, Rejection> {
        let Some(endpoint) = i.endpoint.load_full() else {
            return Err(Rejection::IntrospectionFailed);
        };
        let request = Request::post(Uri::clone(&endpoint))
            .header(header::CONTENT_TYPE, FORM)
            .header(header::ACCEPT, JSON)
            .header(header::AUTHORIZATION, i.authorization.clone())
            .body(Full::new(Bytes::from(introspect::request_body(token))));
        let answer = match request {
            Ok(request) => self.fetch(request, |_| true).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let judged = answer.and_then(|(status, body)| match introspect::judge(status, &body, &self.expect, now) {
            Ok(claims) => Ok(Ok(claims)),
            Err(introspect::Invalid::Token(e)) => Ok(Err(Rejection::Invalid(e))),
            Err(introspect::Invalid::Response(what)) => Err(format!("answered {status}: {what}")),
        });
        match judged {
            Ok(verdict) => {
                if i.failing.swap(false, Ordering::Relaxed) {
                    crate::info!("introspection at {endpoint} answers again");
                }
                verdict
            }
            Err(e) => {
                if !i.failing.swap(true, Ordering::Relaxed) {
                    crate::warn!("introspection at {endpoint} failed, new tokens get 503 until it answers: {e}");
                }
                Err(Rejection::IntrospectionFailed)
            }
        }
    }

    fn authorize(&self, claims: Arc<Claims>) -> Result<Arc<Claims>, Rejection> {
        if self.required_scopes.iter().all(|needed| claims.scopes.iter().any(|s| s == needed)) {
            Ok(claims)
        } else {
            Err(Rejection::InsufficientScope)
        }
    }

    fn cached(&self, token: &[u8], now: u64) -> Option<Arc<Claims>> {
        let cache = self.cache.lock().ok()?;
        // SECURITY: `until` is never past the token's own `exp`.
        cache.get(cache_key(token)).filter(|c| now < c.until && *c.token == *token).map(|c| Arc::clone(&c.claims))
    }

    fn remember(&self, token: &[u8], claims: &Arc<Claims>, until: u64, now: u64) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, c| now < c.until);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(cache_key(token).into(), Cached { token: token.into(), until, claims: Arc::clone(claims) });
    }
}

/// The part of a token the cache hashes: its last 32 bytes, which for a JWT are signature
/// bytes and for an opaque token its random tail. Hashing all of a token (hundreds of bytes)
/// on every request cost more than the rest of the lookup. Only accepted tokens are stored,
/// so a client cannot fill a bucket with colliding tails, and a hit still compares the whole
/// token.
fn cache_key(token: &[u8]) -> &[u8] {
    token.get(token.len().saturating_sub(32)..).unwrap_or(token)
}

/// Hashes cache keys ([`cache_key`]) by folding their bytes into one word: they are signature
/// or random bytes already, and SipHash over them was a tenth of a cached check. The seed is
/// drawn per process, so where a key lands stays unpredictable.
#[derive(Clone)]
struct TailHash(u64);

impl TailHash {
    fn new() -> TailHash {
        use std::hash::BuildHasher;
        TailHash(std::collections::hash_map::RandomState::new().hash_one(0x6d63_7061_7574_6865_u64))
    }
}

impl std::hash::BuildHasher for TailHash {
    type Hasher = Fold;

    fn build_hasher(&self) -> Fold {
        Fold(self.0)
    }
}

/// The [`TailHash`] state.
struct Fold(u64);

impl std::hash::Hasher for Fold {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).rotate_left(29).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Whether an unknown-key refetch may go out now; records it if so.
fn may_refetch(last: &Mutex<Option<Instant>>) -> bool {
    let Ok(mut last) = last.lock() else {
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

/// The Unix time in seconds, the clock of token and proof checks.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_matches_whole_tokens_and_forgets_them_at_until() {
        let flags = ["--resource", "https://mcp.example/mcp", "--auth-server", "https://as.example"];
        let settings = crate::config::Settings::load(flags.map(String::from), |_| None).expect("valid flags");
        let config = Config::from_settings(&settings).expect("a valid configuration");
        let checker = TokenChecker::new(&config).expect("jwt mode is the default");
        let tail = "s".repeat(40);
        let (token, twin) = (format!("head.body.{tail}"), format!("other.body.{tail}"));
        let claims = Arc::new(Claims {
            subject: Some("u1".into()),
            scopes: vec![],
            expires_at: 100,
            client_id: None,
            jkt: None,
            payload: serde_json::Map::new(),
        });
        checker.remember(token.as_bytes(), &claims, 100, 50);
        let hit = checker.cached(token.as_bytes(), 99).expect("a remembered token is a hit");
        assert_eq!(hit.subject.as_deref(), Some("u1"));
        // The hash covers the tail only; the whole token must still match.
        assert!(checker.cached(twin.as_bytes(), 99).is_none());
        assert!(checker.cached(token.as_bytes(), 100).is_none(), "kept past `until`");
        // A short token is its own key.
        checker.remember(b"short", &claims, 100, 50);
        assert!(checker.cached(b"short", 60).is_some());
        assert!(checker.cached(b"shor", 60).is_none());
    }
}
