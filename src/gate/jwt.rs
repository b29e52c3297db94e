//! JWT access tokens checked at the edge: the authorization server's key set (RFC 7517) and
//! compact JWS verification (RFC 7515, RFC 7519, the RFC 9068 access-token profile).
//!
//! Pure: no I/O and no clock. [`JwkSet::parse`] runs when the JWKS is fetched, [`verify`] per
//! token with the current time passed in. Signatures are checked with ring.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

use crate::common::json::repeated_key;
pub use crate::config::JwtTyp;

/// The longest token looked at. Real access tokens are well under 2 KiB; the cap bounds the
/// work a hostile header can cause before any decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A clock-skew allowance that suits most deployments.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// The signature algorithms accepted. Never `none` and never HMAC: a resource server holds
/// only public keys, so a symmetric algorithm could only be keyed with public material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Ps256,
    Es256,
    EdDsa,
}

impl Algorithm {
    pub(crate) fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "RS256" => Some(Algorithm::Rs256),
            "PS256" => Some(Algorithm::Ps256),
            "ES256" => Some(Algorithm::Es256),
            // RFC 9864 names the same Ed25519 signature "Ed25519" and deprecates "EdDSA".
            "EdDSA" | "Ed25519" => Some(Algorithm::EdDsa),
            _ => None,
        }
    }

    /// The JWS name, as advertised (`dpop_signing_alg_values_supported`, a challenge's `algs`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Ps256 => "PS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

/// The public key material of one JWK, decoded once when the set is parsed (or, for DPoP, when
/// a proof's header is read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Material {
    /// Big-endian modulus without leading zeros, and exponent.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed P-256 point `04 || x || y`, the form ring takes.
    P256([u8; 65]),
    Ed25519([u8; 32]),
}

impl Material {
    /// The key a JWK's `kty`, `crv` and public members describe, when this edge can verify with
    /// it: RSA of 2048 to 8192 bits, P-256, Ed25519. Other members are not looked at.
    pub(crate) fn from_jwk(jwk: &Map<String, Value>) -> Option<Material> {
        let string = |field: &str| jwk.get(field).and_then(Value::as_str);
        let bytes = |field: &str| string(field).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
        let material = match (string("kty")?, string("crv")) {
            ("RSA", _) => {
                // RFC 7518 §6.3.1.1 forbids leading zero octets; some servers send one anyway.
                let n = strip_leading_zeros(bytes("n")?);
                let e = strip_leading_zeros(bytes("e")?);
                // An empty `n` has no bits (and must not underflow the count).
                let bits = (n.len() * 8).saturating_sub(n.first().map_or(0, |b| b.leading_zeros() as usize));
                // The range ring's RSA_*_2048_8192 verifiers accept; smaller keys are too weak.
                if !(2048..=8192).contains(&bits) || e.is_empty() || e.len() > 4 {
                    return None;
                }
                Material::Rsa { n, e }
            }
            ("EC", Some("P-256")) => {
                let x: [u8; 32] = bytes("x")?.try_into().ok()?;
                let y: [u8; 32] = bytes("y")?.try_into().ok()?;
                let mut point = [0x04; 65];
                point[1..33].copy_from_slice(&x);
                point[33..].copy_from_slice(&y);
                Material::P256(point)
            }
            ("OKP", Some("Ed25519")) => Material::Ed25519(bytes("x")?.try_into().ok()?),
            _ => return None,
        };
        Some(material)
    }

    /// The RFC 7638 §3 SHA-256 thumbprint: the key's required members (§3.2: RSA `e`, `kty`,
    /// `n`; EC `crv`, `kty`, `x`, `y`; OKP, per RFC 8037 §2, `crv`, `kty`, `x`) in lexicographic
    /// order, without whitespace, hashed. The members are re-encoded from the decoded key, so
    /// the thumbprint is that of the canonical form (RSA without leading zero octets).
    pub(crate) fn thumbprint(&self) -> [u8; 32] {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        // Every value is base64url or a fixed name: nothing needs JSON escaping.
        let canonical = match self {
            Material::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n)),
            Material::P256(point) => {
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, b64(&point[1..33]), b64(&point[33..]))
            }
            Material::Ed25519(x) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x)),
        };
        let mut out = [0; 32];
        out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref());
        out
    }

    pub(crate) fn supports(&self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (Material::Rsa { .. }, Algorithm::Rs256 | Algorithm::Ps256)
                | (Material::P256(_), Algorithm::Es256)
                | (Material::Ed25519(_), Algorithm::EdDsa)
        )
    }

    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
        match (self, alg) {
            (Material::Rsa { n, e }, Algorithm::Rs256) => {
                RsaPublicKeyComponents { n, e }.verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig).is_ok()
            }
            (Material::Rsa { n, e }, Algorithm::Ps256) => {
                RsaPublicKeyComponents { n, e }.verify(&signature::RSA_PSS_2048_8192_SHA256, message, sig).is_ok()
            }
            (Material::P256(point), Algorithm::Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, sig).is_ok()
            }
            (Material::Ed25519(x), Algorithm::EdDsa) => {
                UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig).is_ok()
            }
            _ => false,
        }
    }
}

/// One usable verification key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    kid: Option<String>,
    /// The JWK's `alg`, when it pins one.
    alg: Option<Algorithm>,
    material: Material,
}

impl Key {
    fn fits(&self, alg: Algorithm) -> bool {
        self.alg.unwrap_or(alg) == alg && self.material.supports(alg)
    }
}

/// The usable signing keys of an authorization server's JWKS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwkSet {
    keys: Vec<Key>,
}

/// Why a JWKS document gave no keys to verify with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksError {
    NotJson(String),
    /// Not an object with a `keys` array (RFC 7517 §5).
    NoKeysArray,
    /// Every key was for encryption, of an unsupported type or curve, or badly encoded.
    NoUsableKeys {
        skipped: usize,
    },
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::NotJson(e) => write!(f, "JWKS is not valid JSON ({e})"),
            JwksError::NoKeysArray => f.write_str("JWKS is not an object with a \"keys\" array"),
            JwksError::NoUsableKeys { skipped } => {
                write!(f, "JWKS has no usable signing key (RS256, PS256, ES256 or EdDSA); {skipped} skipped")
            }
        }
    }
}

impl std::error::Error for JwksError {}

impl JwkSet {
    /// Parses a JWKS, keeping the RSA, P-256 and Ed25519 public keys meant for signatures.
    /// Other keys are skipped rather than refused: a set may carry encryption keys or types
    /// this edge does not use beside the ones it needs.
    pub fn parse(bytes: &[u8]) -> Result<JwkSet, JwksError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| JwksError::NotJson(e.to_string()))?;
        let Some(Value::Array(entries)) = value.get("keys") else {
            return Err(JwksError::NoKeysArray);
        };
        let keys: Vec<Key> = entries.iter().filter_map(|entry| entry.as_object().and_then(usable_key)).collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys { skipped: entries.len() });
        }
        Ok(JwkSet { keys })
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true for a parsed set; here for completeness beside [`JwkSet::len`].
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The key an entry describes, when it is a public signature key this edge can use.
fn usable_key(jwk: &Map<String, Value>) -> Option<Key> {
    let string = |field: &str| jwk.get(field).and_then(Value::as_str);
    // RFC 7517 §4.2 and §4.3: a key marked for encryption, or whose operations exclude
    // verification, must not verify signatures.
    if jwk.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
        return None;
    }
    if let Some(ops) = jwk.get("key_ops") {
        if !ops.as_array().is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify"))) {
            return None;
        }
    }
    let alg = match jwk.get("alg") {
        None => None,
        // A key pinned to an algorithm we do not accept (RS384, RSA-OAEP, ...) is not usable.
        Some(alg) => Some(Algorithm::from_name(alg.as_str()?)?),
    };
    let material = Material::from_jwk(jwk)?;
    let key = Key { kid: string("kid").map(str::to_string), alg, material };
    // A pinned alg of the wrong family (`"alg": "ES256"` on an RSA key) leaves nothing to verify.
    key.alg.iter().all(|alg| key.material.supports(*alg)).then_some(key)
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// What a token must say to be accepted here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectations {
    /// The `iss` claim, exactly (the authorization server's issuer identifier).
    pub issuer: String,
    /// Accepted `aud` values: the resource (RFC 8707), and any configured additions.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// What the header's `typ` must say.
    pub typ: JwtTyp,
}

/// What the edge learns from an accepted token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub subject: Option<String>,
    /// From `scope` (space-separated, RFC 9068 §2.2.3) or, failing that, `scp`.
    pub scopes: Vec<String>,
    /// `exp`, in Unix seconds: how long the verdict may be cached (`u64::MAX` when an
    /// introspection answer gave no `exp`).
    pub expires_at: u64,
    /// From `client_id` (RFC 9068 §2.2) or, failing that, `azp` (OpenID Connect).
    pub client_id: Option<String>,
    /// `cnf.jkt` (RFC 9449 §6.1): the thumbprint of the key the token is bound to. A bound
    /// token is only accepted with a DPoP proof made with that key.
    pub jkt: Option<String>,
    /// Every claim, as the token (or introspection answer) gave it: what a policy's claim
    /// conditions read. Moved in, not copied, on the cold path; a cached verdict shares it.
    pub payload: Map<String, Value>,
}

/// Why a token was refused. `Display` is fit for an RFC 6750 `error_description`: short, and
/// never repeating anything from the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed(&'static str),
    /// The header's `alg` (clipped, for logs only).
    UnsupportedAlgorithm(String),
    /// No key with this `kid`, or, without one, no key for the algorithm. The set may be stale:
    /// the caller may refetch the JWKS (rate-limited) and try again.
    UnknownKey {
        kid: Option<String>,
    },
    /// The key named by `kid` exists but may not be used with the header's `alg`.
    KeyAlgorithmMismatch,
    BadSignature,
    WrongIssuer,
    WrongAudience,
    Expired,
    NotYetValid,
    /// `iat` later than now (beyond the leeway): a clock gone wrong at the issuer, or a token
    /// minted to outlive its keys.
    IssuedInFuture,
    /// The header's `typ` names another kind of JWT than an access token (RFC 9068 §4), or,
    /// with `--require-at-jwt`, is not `at+jwt`.
    WrongType,
    MissingClaim(&'static str),
    /// Introspection (RFC 7662) answered `active: false`: revoked, expired or never issued.
    Inactive,
    /// A DPoP-bound token (`cnf.jkt`) presented as `Bearer` (RFC 9449 §7.2: refused, or the
    /// binding would mean nothing).
    BoundToKey,
    /// A token without `cnf.jkt` presented as `DPoP`: no key to hold it to.
    NotBound,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed(what) => write!(f, "malformed token: {what}"),
            TokenError::UnsupportedAlgorithm(_) => f.write_str("token signing algorithm not accepted"),
            TokenError::UnknownKey { .. } => f.write_str("token signed with an unknown key"),
            TokenError::KeyAlgorithmMismatch => f.write_str("token signing key does not allow its algorithm"),
            TokenError::BadSignature => f.write_str("token signature is invalid"),
            TokenError::WrongIssuer => f.write_str("token issuer not accepted"),
            TokenError::WrongAudience => f.write_str("token audience does not include this resource"),
            TokenError::Expired => f.write_str("token has expired"),
            TokenError::NotYetValid => f.write_str("token is not yet valid"),
            TokenError::IssuedInFuture => f.write_str("token was issued in the future"),
            TokenError::WrongType => f.write_str("token type is not an access token"),
            TokenError::MissingClaim(claim) => write!(f, "token has no {claim} claim"),
            TokenError::Inactive => f.write_str("token is not active"),
            TokenError::BoundToKey => f.write_str("token is bound to a DPoP key and needs the DPoP scheme and a proof"),
            TokenError::NotBound => f.write_str("token is not bound to a DPoP key"),
        }
    }
}

impl std::error::Error for TokenError {}

/// Verifies a compact JWS access token and returns its claims.
///
/// The signature is checked before any claim is read, with a key chosen by the header's `kid`
/// (or, without one, every key that fits the algorithm); then `iss`, `aud`, `exp` and `nbf`.
pub fn verify(token: &str, keys: &JwkSet, expect: &Expectations, now_unix_secs: u64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    // RFC 7515 §7.1: exactly three base64url parts. Five parts would be JWE, not accepted.
    // The signing input is the two encoded parts as sent (RFC 7515 §5.2 step 8).
    let (signing_input, sig_b64) = token.rsplit_once('.').ok_or(TokenError::Malformed("not three parts"))?;
    let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(TokenError::Malformed("not three parts"))?;
    if payload_b64.contains('.') {
        return Err(TokenError::Malformed("not three parts"));
    }
    let header = decode_object(header_b64, "header is not base64url", "header is not a JSON object")?;
    let alg_name = header.get("alg").and_then(Value::as_str).ok_or(TokenError::Malformed("header has no alg"))?;
    let alg = Algorithm::from_name(alg_name).ok_or_else(|| TokenError::UnsupportedAlgorithm(clip(alg_name)))?;
    // RFC 7515 §4.1.11: extensions marked critical must be understood; we understand none.
    if header.contains_key("crit") {
        return Err(TokenError::Malformed("critical header extension"));
    }
    if !typ_accepted(expect.typ, header.get("typ")) {
        return Err(TokenError::WrongType);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(TokenError::Malformed("kid is not a string")),
    };
    // SECURITY: keys come only from the configured JWKS. `jwk`, `jku`, `x5u` and `x5c` in the
    // header are ignored: honouring them would let the token choose the key that checks it.
    let mut candidates = keys.keys.iter().filter(|k| kid.is_none() || k.kid.as_deref() == kid).peekable();
    if candidates.peek().is_none() {
        return Err(TokenError::UnknownKey { kid: kid.map(clip) });
    }
    let mut fitting = candidates.filter(|k| k.fits(alg)).peekable();
    if fitting.peek().is_none() {
        return Err(match kid {
            Some(_) => TokenError::KeyAlgorithmMismatch,
            None => TokenError::UnknownKey { kid: None },
        });
    }
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    // Without a kid, several keys may fit (rotation overlap); at most the set's size are tried.
    if !fitting.any(|k| k.material.verify(alg, signing_input.as_bytes(), &sig)) {
        return Err(TokenError::BadSignature);
    }

    // Only now is the payload trusted enough to read.
    let claims = decode_object(payload_b64, "payload is not base64url", "payload is not a JSON object")?;
    check_claims(claims, expect, now_unix_secs)
}

/// Whether the header's `typ` fits the policy. RFC 7515 §4.1.9: media types compare without
/// regard to case, and `application/` may be left out.
fn typ_accepted(policy: JwtTyp, typ: Option<&Value>) -> bool {
    let typ = match typ {
        None => None,
        Some(Value::String(typ)) => Some(typ.strip_prefix("application/").unwrap_or(typ)),
        Some(_) => return false,
    };
    let at_jwt = typ.is_some_and(|t| t.eq_ignore_ascii_case("at+jwt"));
    match policy {
        JwtTyp::AtJwt => at_jwt,
        // What authorization servers issue for access tokens (absent, `JWT`, `at+jwt`); a
        // `typ` such as `dpop+jwt` or `logout+jwt` says the JWT is something else.
        JwtTyp::Lenient => at_jwt || typ.is_none_or(|t| t.eq_ignore_ascii_case("jwt")),
    }
}

/// Decodes one base64url part into a JSON object. A member name repeated in it is refused:
/// RFC 7515 §5.2 and RFC 7519 §4 allow either refusing or keeping the last, and an MCP server
/// reading the forwarded token with a parser that keeps the first would see other claims than
/// the edge checked. Runs on the cold path only: a cached verdict does not parse the token.
fn decode_object(
    part: &str,
    not_base64: &'static str,
    not_object: &'static str,
) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed(not_base64))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) if repeated_key(&bytes).is_none() => Ok(map),
        Ok(Value::Object(_)) => Err(TokenError::Malformed("a member name is repeated")),
        _ => Err(TokenError::Malformed(not_object)),
    }
}

fn check_claims(claims: Map<String, Value>, expect: &Expectations, now: u64) -> Result<Claims, TokenError> {
    match claims.get("iss") {
        None => return Err(TokenError::MissingClaim("iss")),
        Some(iss) if iss.as_str() == Some(expect.issuer.as_str()) => {}
        Some(_) => return Err(TokenError::WrongIssuer),
    }
    // RFC 7519 §4.1.3: a string or an array of strings; one of them must name this resource.
    let accepted = |aud: &Value| aud.as_str().is_some_and(|aud| expect.audiences.iter().any(|a| a == aud));
    match claims.get("aud") {
        None => return Err(TokenError::MissingClaim("aud")),
        Some(Value::Array(auds)) if auds.iter().any(accepted) => {}
        Some(aud) if accepted(aud) => {}
        Some(_) => return Err(TokenError::WrongAudience),
    }
    let expires_at = numeric_date(&claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    if now > expires_at.saturating_add(expect.leeway_secs) {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = numeric_date(&claims, "nbf")? {
        if now.saturating_add(expect.leeway_secs) < nbf {
            return Err(TokenError::NotYetValid);
        }
    }
    if let Some(iat) = numeric_date(&claims, "iat")? {
        if iat > now.saturating_add(expect.leeway_secs) {
            return Err(TokenError::IssuedInFuture);
        }
    }

    let string = |field: &str| claims.get(field).and_then(Value::as_str).map(str::to_string);
    let scopes = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => split_scopes(s),
        (None, Some(Value::Array(items))) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        (None, None) => Vec::new(),
        _ => return Err(TokenError::Malformed("scope is not a string")),
    };
    let jkt = confirmation(claims.get("cnf")).map_err(TokenError::Malformed)?;
    let (subject, client_id) = (string("sub"), string("client_id").or_else(|| string("azp")));
    Ok(Claims { subject, scopes, expires_at, client_id, jkt, payload: claims })
}

/// The `jkt` of a `cnf` claim (RFC 7800 §3.1, RFC 9449 §6.1), from a JWT or an introspection
/// answer. Other confirmation methods (`x5t#S256`) are not the edge's to check and read as none.
/// SECURITY: a `cnf` or `jkt` of the wrong type is refused, never read as "not bound", which
/// would let a bound token pass as a bearer token.
pub fn confirmation(cnf: Option<&Value>) -> Result<Option<String>, &'static str> {
    match cnf {
        None => Ok(None),
        Some(Value::Object(cnf)) => match cnf.get("jkt") {
            None => Ok(None),
            Some(Value::String(jkt)) => Ok(Some(jkt.clone())),
            Some(_) => Err("cnf.jkt is not a string"),
        },
        Some(_) => Err("cnf is not an object"),
    }
}

/// A NumericDate claim (RFC 7519 §2): seconds, possibly fractional, rounded down here.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, TokenError> {
    let Some(value) = claims.get(name) else { return Ok(None) };
    match value.as_u64().or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)) {
        Some(secs) => Ok(Some(secs)),
        None => Err(TokenError::Malformed(match name {
            "exp" => "exp is not a date",
            "nbf" => "nbf is not a date",
            _ => "iat is not a date",
        })),
    }
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// At most 64 bytes of a token-supplied string, cut on a character boundary, for logs.
fn clip(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
    use serde_json::json;
    use std::sync::OnceLock;

    const ISSUER: &str = "https://as.example.com";
    const RESOURCE: &str = "https://mcp.example.com/mcp";
    const NOW: u64 = 1_750_000_000;

    struct TestKeys {
        rsa: RsaKeyPair,
        ec: EcdsaKeyPair,
        ed: Ed25519KeyPair,
        set: JwkSet,
        /// The RSA modulus, the public bytes an HS256 confusion attack would use as its secret.
        rsa_n: Vec<u8>,
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// One key pair per algorithm, made once per test run: 2048-bit RSA generation is slow.
    fn keys() -> &'static TestKeys {
        static KEYS: OnceLock<TestKeys> = OnceLock::new();
        KEYS.get_or_init(|| {
            use rsa::pkcs8::EncodePrivateKey;
            let rng = SystemRandom::new();
            let rsa_der = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .expect("RSA key generation")
                .to_pkcs8_der()
                .expect("RSA PKCS#8");
            let rsa = RsaKeyPair::from_pkcs8(rsa_der.as_bytes()).expect("ring reads the RSA key");
            let ec_der = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let ec =
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, ec_der.as_ref(), &rng).unwrap();
            let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();

            let public: RsaPublicKeyComponents<Vec<u8>> = rsa.public().into();
            let (n, e) = (b64(&public.n), b64(&public.e));
            let point = ec.public_key().as_ref();
            let jwks = json!({"keys": [
                {"kty": "RSA", "kid": "rsa-rs", "use": "sig", "alg": "RS256", "n": n, "e": e},
                {"kty": "RSA", "kid": "rsa-ps", "alg": "PS256", "n": n, "e": e},
                {"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])},
                {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(ed.public_key().as_ref())},
                // Skipped: symmetric, encryption-only, unsupported curve, unsupported alg.
                {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
                {"kty": "RSA", "kid": "rsa-enc", "use": "enc", "n": n, "e": e},
                {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
                {"kty": "RSA", "kid": "rsa-384", "alg": "RS384", "n": n, "e": e},
            ]});
            let set = JwkSet::parse(jwks.to_string().as_bytes()).expect("test JWKS parses");
            TestKeys { rsa, ec, ed, set, rsa_n: public.n }
        })
    }

    fn expect() -> Expectations {
        Expectations { issuer: ISSUER.into(), audiences: vec![RESOURCE.into()], leeway_secs: 30, typ: JwtTyp::Lenient }
    }

    fn claims() -> Value {
        json!({"iss": ISSUER, "aud": RESOURCE, "sub": "user-1", "exp": NOW + 300, "iat": NOW,
               "scope": "mcp:read  mcp:write", "client_id": "client-9"})
    }

    /// Builds a token with this header, signing it as `alg` says with the test key for it.
    fn token_with(header: Value, claims: &Value) -> String {
        let keys = keys();
        let rng = SystemRandom::new();
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let sig = match header["alg"].as_str().unwrap() {
            "RS256" | "PS256" => {
                let padding: &dyn signature::RsaEncoding =
                    if header["alg"] == "RS256" { &signature::RSA_PKCS1_SHA256 } else { &signature::RSA_PSS_SHA256 };
                let mut sig = vec![0; keys.rsa.public().modulus_len()];
                keys.rsa.sign(padding, &rng, input.as_bytes(), &mut sig).unwrap();
                sig
            }
            "ES256" => keys.ec.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            "EdDSA" => keys.ed.sign(input.as_bytes()).as_ref().to_vec(),
            "HS256" => ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &keys.rsa_n), input.as_bytes())
                .as_ref()
                .to_vec(),
            _ => Vec::new(),
        };
        format!("{input}.{}", b64(&sig))
    }

    /// The key id the test set uses for each algorithm.
    fn kid(alg: &str) -> &'static str {
        match alg {
            "RS256" => "rsa-rs",
            "PS256" => "rsa-ps",
            "ES256" => "ec",
            _ => "ed",
        }
    }

    fn token(alg: &str, claims: &Value) -> String {
        token_with(json!({"alg": alg, "typ": "at+jwt", "kid": kid(alg)}), claims)
    }

    fn check(token: &str) -> Result<Claims, TokenError> {
        verify(token, &keys().set, &expect(), NOW)
    }

    const ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

    fn accepts(alg: &str) {
        let got = check(&token(alg, &claims())).unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert_eq!(
            got,
            Claims {
                subject: Some("user-1".into()),
                scopes: vec!["mcp:read".into(), "mcp:write".into()],
                expires_at: NOW + 300,
                client_id: Some("client-9".into()),
                jkt: None,
                payload: claims().as_object().expect("an object").clone(),
            }
        );
    }

    /// An EdDSA token over these exact JSON texts (which `Value` could not hold: repeated names).
    fn ed_token_raw(header: &str, claims: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        format!("{input}.{}", b64(keys().ed.sign(input.as_bytes()).as_ref()))
    }

    #[test]
    fn repeated_member_names_are_refused() {
        let header = r#"{"alg":"EdDSA","kid":"ed"}"#;
        let ok = format!(r#"{{"iss":"{ISSUER}","aud":"{RESOURCE}","exp":{},"sub":"a"}}"#, NOW + 300);
        assert!(check(&ed_token_raw(header, &ok)).is_ok());
        let twice = format!(r#"{{"iss":"{ISSUER}","aud":"{RESOURCE}","exp":{},"sub":"a","sub":"admin"}}"#, NOW + 300);
        assert_eq!(check(&ed_token_raw(header, &twice)), Err(TokenError::Malformed("a member name is repeated")));
        let nested =
            format!(r#"{{"iss":"{ISSUER}","aud":"{RESOURCE}","exp":{},"act":{{"sub":"a","sub":"b"}}}}"#, NOW + 300);
        assert_eq!(check(&ed_token_raw(header, &nested)), Err(TokenError::Malformed("a member name is repeated")));
        let header_twice = r#"{"alg":"EdDSA","kid":"ed","kid":"ed"}"#;
        assert_eq!(check(&ed_token_raw(header_twice, &ok)), Err(TokenError::Malformed("a member name is repeated")));
    }

    #[test]
    fn typ_is_checked_leniently_or_strictly() {
        let claims = claims();
        let with_typ = |typ: Value| {
            let mut header = json!({"alg": "EdDSA", "kid": "ed"});
            if !typ.is_null() {
                header["typ"] = typ;
            }
            token_with(header, &claims)
        };
        let strict = Expectations { typ: JwtTyp::AtJwt, ..expect() };
        let strictly = |token: &str| verify(token, &keys().set, &strict, NOW);
        for typ in [json!("at+jwt"), json!("application/at+jwt"), json!("AT+JWT")] {
            assert!(check(&with_typ(typ.clone())).is_ok() && strictly(&with_typ(typ.clone())).is_ok(), "{typ}");
        }
        for typ in [Value::Null, json!("JWT"), json!("jwt"), json!("application/jwt")] {
            assert!(check(&with_typ(typ.clone())).is_ok(), "{typ}");
            assert_eq!(strictly(&with_typ(typ.clone())), Err(TokenError::WrongType), "{typ}");
        }
        for typ in [json!("dpop+jwt"), json!("logout+jwt"), json!(7)] {
            assert_eq!(check(&with_typ(typ.clone())), Err(TokenError::WrongType), "{typ}");
        }
    }

    #[test]
    fn iat_in_the_future_is_refused_beyond_the_leeway() {
        let mut claims = claims();
        claims["iat"] = json!(NOW + 30);
        assert!(check(&token("EdDSA", &claims)).is_ok(), "within the leeway");
        claims["iat"] = json!(NOW + 31);
        assert_eq!(check(&token("EdDSA", &claims)), Err(TokenError::IssuedInFuture));
    }

    #[test]
    fn rs256_token_is_accepted() {
        accepts("RS256");
    }

    #[test]
    fn ps256_token_is_accepted() {
        accepts("PS256");
    }

    #[test]
    fn es256_token_is_accepted() {
        accepts("ES256");
    }

    #[test]
    fn eddsa_token_is_accepted() {
        accepts("EdDSA");
    }

    #[test]
    fn an_rsa_key_with_an_empty_modulus_is_skipped_not_a_panic() {
        // Found by the jwt fuzz target: the bit count of an empty `n` underflowed.
        let set = JwkSet::parse(br#"{"keys":[{"kty":"RSA","kid":"rsa","n":"","e":"AQAB"}]}"#);
        assert!(set.is_err() || set.is_ok_and(|s| s.is_empty()));
        let zeros = JwkSet::parse(br#"{"keys":[{"kty":"RSA","kid":"rsa","n":"AAAA","e":"AQAB"}]}"#);
        assert!(zeros.is_err() || zeros.is_ok_and(|s| s.is_empty()));
    }

    #[test]
    fn jwks_keeps_signing_keys_and_skips_the_rest() {
        assert_eq!(keys().set.len(), 4);
        let kids: Vec<_> = keys().set.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, ["rsa-rs", "rsa-ps", "ec", "ed"]);
    }

    #[test]
    fn jwks_errors() {
        assert!(matches!(JwkSet::parse(b"{"), Err(JwksError::NotJson(_))));
        assert_eq!(JwkSet::parse(b"[]"), Err(JwksError::NoKeysArray));
        assert_eq!(JwkSet::parse(br#"{"keys": {}}"#), Err(JwksError::NoKeysArray));
        assert_eq!(JwkSet::parse(br#"{"keys": []}"#), Err(JwksError::NoUsableKeys { skipped: 0 }));
        let unusable = br#"{"keys": [{"kty": "oct", "k": "AA"}, 7, {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "x": "AA"}, {"kty": "OKP", "crv": "X25519", "x": "AA"}]}"#;
        assert_eq!(JwkSet::parse(unusable), Err(JwksError::NoUsableKeys { skipped: 5 }));
    }

    #[test]
    fn jwks_key_ops_without_verify_is_skipped() {
        let x = b64(keys().ed.public_key().as_ref());
        let jwks = |ops: Value| json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "key_ops": ops}]});
        assert!(JwkSet::parse(jwks(json!(["verify"])).to_string().as_bytes()).is_ok());
        assert!(JwkSet::parse(jwks(json!(["encrypt"])).to_string().as_bytes()).is_err());
    }

    #[test]
    fn key_without_kid_is_matched_by_algorithm() {
        let point = keys().ec.public_key().as_ref();
        let jwks = json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": b64(keys().ed.public_key().as_ref())},
            {"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])},
        ]});
        let set = JwkSet::parse(jwks.to_string().as_bytes()).unwrap();
        for alg in ["ES256", "EdDSA"] {
            let token = token_with(json!({"alg": alg}), &claims());
            assert!(verify(&token, &set, &expect(), NOW).is_ok(), "{alg}");
        }
        let rsa = token_with(json!({"alg": "RS256"}), &claims());
        assert_eq!(verify(&rsa, &set, &expect(), NOW), Err(TokenError::UnknownKey { kid: None }));
    }

    #[test]
    fn expired_token_is_refused() {
        let mut c = claims();
        c["exp"] = json!(NOW - 31);
        for alg in ALGS {
            assert_eq!(check(&token(alg, &c)), Err(TokenError::Expired), "{alg}");
        }
    }

    #[test]
    fn not_yet_valid_token_is_refused() {
        let mut c = claims();
        c["nbf"] = json!(NOW + 31);
        assert_eq!(check(&token("ES256", &c)), Err(TokenError::NotYetValid));
    }

    #[test]
    fn times_within_leeway_are_accepted() {
        let mut c = claims();
        c["exp"] = json!(NOW - 30);
        c["nbf"] = json!(NOW + 30);
        assert_eq!(check(&token("EdDSA", &c)).map(|c| c.expires_at), Ok(NOW - 30));
        c["exp"] = json!((NOW + 10) as f64 + 0.5);
        assert_eq!(check(&token("EdDSA", &c)).map(|c| c.expires_at), Ok(NOW + 10));
    }

    #[test]
    fn wrong_audience_is_refused() {
        let mut c = claims();
        c["aud"] = json!("https://other.example.com/mcp");
        assert_eq!(check(&token("RS256", &c)), Err(TokenError::WrongAudience));
        c["aud"] = json!(["https://other.example.com/mcp", 5]);
        assert_eq!(check(&token("RS256", &c)), Err(TokenError::WrongAudience));
    }

    #[test]
    fn audience_array_containing_the_resource_is_accepted() {
        let mut c = claims();
        c["aud"] = json!(["https://other.example.com", RESOURCE]);
        assert!(check(&token("PS256", &c)).is_ok());
        let extra = Expectations { audiences: vec![RESOURCE.into(), "api://mcp".into()], ..expect() };
        c["aud"] = json!("api://mcp");
        assert!(verify(&token("PS256", &c), &keys().set, &extra, NOW).is_ok());
    }

    #[test]
    fn wrong_issuer_is_refused() {
        let mut c = claims();
        c["iss"] = json!("https://as.example.com/");
        assert_eq!(check(&token("ES256", &c)), Err(TokenError::WrongIssuer));
    }

    #[test]
    fn missing_claims_are_named() {
        for (claim, expected) in [("iss", "iss"), ("aud", "aud"), ("exp", "exp")] {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(claim);
            assert_eq!(check(&token("EdDSA", &c)), Err(TokenError::MissingClaim(expected)));
        }
        let mut c = claims();
        c["exp"] = json!("tomorrow");
        assert_eq!(check(&token("EdDSA", &c)), Err(TokenError::Malformed("exp is not a date")));
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let mut c = claims();
        c.as_object_mut().unwrap().remove("scope");
        assert_eq!(check(&token("EdDSA", &c)).unwrap().scopes, Vec::<String>::new());
        c["scp"] = json!(["a", "b"]);
        assert_eq!(check(&token("EdDSA", &c)).unwrap().scopes, ["a", "b"]);
        c["scp"] = json!("c d");
        assert_eq!(check(&token("EdDSA", &c)).unwrap().scopes, ["c", "d"]);
        c["scope"] = json!(["not", "a string"]);
        assert_eq!(check(&token("EdDSA", &c)), Err(TokenError::Malformed("scope is not a string")));
    }

    #[test]
    fn flipped_signature_byte_is_refused() {
        for alg in ALGS {
            let token = token(alg, &claims());
            let (input, sig) = token.rsplit_once('.').unwrap();
            let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            sig[5] ^= 0x01;
            let forged = format!("{input}.{}", b64(&sig));
            assert_eq!(check(&forged), Err(TokenError::BadSignature), "{alg}");
        }
    }

    #[test]
    fn altered_payload_is_refused() {
        let good = token("RS256", &claims());
        let parts: Vec<&str> = good.split('.').collect();
        let mut c = claims();
        c["sub"] = json!("admin");
        let forged = format!("{}.{}.{}", parts[0], b64(c.to_string().as_bytes()), parts[2]);
        assert_eq!(check(&forged), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_is_refused() {
        let unsigned = token_with(json!({"alg": "none", "kid": "rsa-rs"}), &claims());
        assert!(unsigned.ends_with('.'));
        assert_eq!(check(&unsigned), Err(TokenError::UnsupportedAlgorithm("none".into())));
        let unsigned = token_with(json!({"alg": "None"}), &claims());
        assert_eq!(check(&unsigned), Err(TokenError::UnsupportedAlgorithm("None".into())));
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        for kid in ["rsa-rs", "hmac"] {
            let confused = token_with(json!({"alg": "HS256", "kid": kid}), &claims());
            assert_eq!(check(&confused), Err(TokenError::UnsupportedAlgorithm("HS256".into())));
        }
    }

    #[test]
    fn unknown_kid_is_reported_for_a_refetch() {
        let token = token_with(json!({"alg": "ES256", "kid": "rotated"}), &claims());
        assert_eq!(check(&token), Err(TokenError::UnknownKey { kid: Some("rotated".into()) }));
    }

    #[test]
    fn key_pinned_to_another_algorithm_is_refused() {
        // The RSA key published for RS256 may not verify a PS256 signature, even a valid one.
        let token = token_with(json!({"alg": "PS256", "kid": "rsa-rs"}), &claims());
        assert_eq!(check(&token), Err(TokenError::KeyAlgorithmMismatch));
        // Nor may an EC key verify an EdDSA token, whatever its signature.
        let token = token_with(json!({"alg": "EdDSA", "kid": "ec"}), &claims());
        assert_eq!(check(&token), Err(TokenError::KeyAlgorithmMismatch));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = token("ES256", &claims());
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let header = |v: &[u8]| format!("{}.{p}.{s}", b64(v));
        let cases = [
            (String::new(), "not three parts"),
            (format!("{h}.{p}"), "not three parts"),
            (format!("{good}.{s}"), "not three parts"),
            (format!("{h}=.{p}.{s}"), "header is not base64url"),
            (format!("{h}*.{p}.{s}"), "header is not base64url"),
            (format!("{h}.{p}.{s}="), "signature is not base64url"),
            (format!(" {good}"), "header is not base64url"),
            (header(b"alg: ES256"), "header is not a JSON object"),
            (header(b"[\"ES256\"]"), "header is not a JSON object"),
            (header(br#"{"kid": "ec"}"#), "header has no alg"),
            (header(br#"{"alg": "ES256", "kid": 1}"#), "kid is not a string"),
            (header(br#"{"alg": "ES256", "kid": "ec", "crit": ["exp"]}"#), "critical header extension"),
            ("a".repeat(MAX_TOKEN_LEN + 1), "too long"),
        ];
        for (token, why) in cases {
            assert_eq!(check(&token), Err(TokenError::Malformed(why)), "{token:.80}");
        }
        // A signed payload that is not JSON is refused after the signature holds.
        let token = token_with(json!({"alg": "EdDSA", "kid": "ed"}), &json!("just a string"));
        assert_eq!(check(&token), Err(TokenError::Malformed("payload is not a JSON object")));
    }

    #[test]
    fn long_algorithm_names_are_clipped() {
        let alg = "é".repeat(100);
        let token = format!("{}.e30.AA", b64(json!({"alg": alg}).to_string().as_bytes()));
        assert_eq!(check(&token), Err(TokenError::UnsupportedAlgorithm("é".repeat(32))));
    }

    #[test]
    fn messages_fit_an_error_description() {
        // RFC 6750 §3: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
        let errors = [
            TokenError::Malformed("not three parts"),
            TokenError::UnsupportedAlgorithm("\"\\".into()),
            TokenError::UnknownKey { kid: Some("\"".into()) },
            TokenError::KeyAlgorithmMismatch,
            TokenError::BadSignature,
            TokenError::WrongIssuer,
            TokenError::WrongAudience,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::MissingClaim("exp"),
            TokenError::Inactive,
            TokenError::BoundToKey,
            TokenError::NotBound,
        ];
        for error in errors {
            let text = error.to_string();
            assert!(text.bytes().all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)), "{text}");
        }
    }

    #[test]
    fn the_dpop_binding_is_read_from_cnf() {
        let mut bound = claims();
        bound["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
        let got = check(&token("ES256", &bound)).unwrap();
        assert_eq!(got.jkt.as_deref(), Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
        bound["cnf"] = json!({"x5t#S256": "abc"});
        assert_eq!(check(&token("ES256", &bound)).unwrap().jkt, None, "another method is not the edge's");
        // SECURITY: a binding of the wrong shape refuses the token rather than unbinding it.
        for bad in [json!({"jkt": 1}), json!("jkt"), json!(["jkt"])] {
            bound["cnf"] = bad;
            assert!(matches!(check(&token("ES256", &bound)), Err(TokenError::Malformed(_))));
        }
    }
}
