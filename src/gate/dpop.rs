//! DPoP proofs (RFC 9449) checked at the edge: the proof's form, key and signature, and that
//! it was made for this request, this token and this moment. Pure: the request's method and
//! public URI, the token and the time are passed in; the replay cache ([`crate::gate::replay`])
//! and the server nonces ([`crate::gate::nonce`]) are separate pieces the caller combines.
//!
//! What a caller does with a request carrying `Authorization: DPoP <token>`:
//! 1. [`one_proof`] (RFC 9449 §4.3 step 1: exactly one `DPoP` header);
//! 2. [`check_proof`] (steps 2 to 11, and the `ath` half of step 12);
//! 3. check the token, then [`bound_matches`] its `cnf.jkt` (the other half of step 12);
//! 4. only then record the proof in the replay cache ([`Proof::replay_key`]), so that only
//!    holders of a valid token can fill it.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::HeaderMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use serde_json::{Map, Number, Value};

use crate::gate::jwt::{Algorithm, Material};
use crate::gate::keyring::constant_time_eq;
use crate::gate::nonce::Nonces;
use crate::gate::replay;

/// The longest proof looked at. A proof with an 8192-bit RSA key is under 5 KiB; P-256 and
/// Ed25519 proofs are under 1 KiB. The cap bounds the work of a hostile header, JWK included.
pub const MAX_PROOF_LEN: usize = 8 * 1024;
/// The longest `jti` accepted. §11.1 asks for 96 bits of randomness; a UUID is 36 characters.
pub const MAX_JTI_LEN: usize = 256;
/// The longest `htu` (claim or built) compared.
pub const MAX_HTU_LEN: usize = 4096;
/// How far `iat` may be from the edge's clock, either way (§11.1 leaves the window to the
/// server; a few minutes absorbs clock skew without keeping proofs useful for long).
pub const DEFAULT_WINDOW_SECS: u64 = 300;
/// The algorithms the edge verifies, in the order advertised. All asymmetric (§4.3 step 5).
pub const SUPPORTED_ALGS: [Algorithm; 4] = [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Ps256, Algorithm::Rs256];
/// A public JWK has at most a dozen members; more is not a key the edge will read.
const MAX_JWK_MEMBERS: usize = 16;
/// A SHA-256 digest in base64url without padding (`ath`, `cnf.jkt`).
const SHA256_B64_LEN: usize = 43;
/// RSA private members (`d`, the CRT values, `oth`) and the symmetric `k` (RFC 7518 §6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A request's target URI as a DPoP proof names it (§4.2 `htu`): absolute `http` or `https`,
/// without query and fragment, normalised as RFC 3986 §6.2.2 (case, percent-encoding, dot
/// segments) and §6.2.3 (default port, empty path) describe, which §4.3 asks of the check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Htu(String);

impl Htu {
    /// The normalised form of an absolute `http(s)` URI, or `None` when it is not one this
    /// edge compares: longer than [`MAX_HTU_LEN`], other than visible ASCII, with user
    /// information, a bad port, a percent sign in the host, or a bad percent-encoding.
    pub fn parse(uri: &str) -> Option<Htu> {
        if uri.len() > MAX_HTU_LEN || !uri.bytes().all(|b| (0x21..=0x7E).contains(&b)) {
            return None;
        }
        let uri = uri.split_once('#').map_or(uri, |(before, _)| before);
        let uri = uri.split_once('?').map_or(uri, |(before, _)| before);
        let (scheme, rest) = uri.split_once("://")?;
        let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => ("http", 80),
            "https" => ("https", 443),
            _ => return None,
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = split_host_port(authority)?;
        let mut out = String::with_capacity(uri.len() + 1);
        out.push_str(scheme);
        out.push_str("://");
        out.extend(host.chars().map(|c| c.to_ascii_lowercase()));
        if let Some(port) = port.filter(|p| *p != default_port) {
            out.push(':');
            out.push_str(&port.to_string());
        }
        normalise_path(path, &mut out)?;
        Some(Htu(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `htu` a request answers to: the public origin the client used (`https://host[:port]`,
/// from the configured resource, never the internal address) and the request's path; a query
/// or fragment on the path is dropped.
pub fn htu(origin: &str, path: &str) -> Option<Htu> {
    let origin = origin.strip_suffix('/').unwrap_or(origin);
    let (_, authority) = origin.split_once("://")?;
    if authority.contains(['/', '?', '#']) || !(path.is_empty() || path.starts_with('/')) {
        return None;
    }
    Htu::parse(&format!("{origin}{path}"))
}

/// The host (lowercase later) and the port, if any, of an authority without user information.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match authority.strip_prefix('[') {
        // An IP literal (RFC 3986 §3.2.2); zone identifiers and IPvFuture are not compared.
        Some(literal) => {
            let (inner, after) = literal.split_once(']')?;
            if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
                return None;
            }
            (authority.get(..inner.len() + 2)?, after)
        }
        None => authority.split_at(authority.find(':').unwrap_or(authority.len())),
    };
    let is_reg_name_char = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b);
    if host.is_empty() || (!host.starts_with('[') && !host.bytes().all(is_reg_name_char)) {
        return None;
    }
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return None,
        // §6.2.3: an empty port is the default one.
        Some("") => None,
        Some(digits) if digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) => Some(digits.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// Appends the normalised path: `/` for an empty one; percent-encodings of unreserved
/// characters decoded and the others in uppercase hex (§6.2.2.2); then dot segments removed
/// (§6.2.2.3, the algorithm of §5.2.4).
fn normalise_path(path: &str, out: &mut String) -> Option<()> {
    let mut decoded = String::with_capacity(path.len());
    let mut rest = path.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        rest = after;
        if byte != b'%' {
            decoded.push(char::from(byte));
            continue;
        }
        let (hex, after) = rest.split_first_chunk::<2>()?;
        rest = after;
        let value = (char::from(hex[0]).to_digit(16)? * 16 + char::from(hex[1]).to_digit(16)?) as u8;
        if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
            decoded.push(char::from(value));
        } else {
            decoded.push('%');
            decoded.push(char::from(hex[0].to_ascii_uppercase()));
            decoded.push(char::from(hex[1].to_ascii_uppercase()));
        }
    }
    let Some(absolute) = decoded.strip_prefix('/') else {
        out.push('/');
        return Some(());
    };
    let mut segments: Vec<&str> = Vec::new();
    let mut all = absolute.split('/').peekable();
    while let Some(segment) = all.next() {
        let last = all.peek().is_none();
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => {
                segments.push(other);
                continue;
            }
        }
        // A trailing dot segment leaves the path ending in a slash.
        if last {
            segments.push("");
        }
    }
    out.push('/');
    out.push_str(&segments.join("/"));
    Some(())
}

/// What the request says a proof must match.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// The request method, compared exactly with `htm` (methods are case-sensitive).
    pub method: &'a str,
    pub htu: &'a Htu,
    /// The access token presented with the proof: its hash must be the proof's `ath`.
    pub access_token: Option<&'a [u8]>,
    /// How far `iat` may be from `now`, either way, in seconds.
    pub window_secs: u64,
    /// The algorithms accepted, a subset of [`SUPPORTED_ALGS`].
    pub algs: &'a [Algorithm],
    /// When set, the proof must carry a current nonce from these (§8, §9).
    pub nonces: Option<&'a Nonces>,
}

/// What an accepted proof establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key: what a bound token's `cnf.jkt`
    /// names (RFC 9449 §6.1).
    pub jkt: [u8; 32],
    pub jti: String,
    pub iat: u64,
    /// The last second at which this proof would still be accepted: how long the replay cache
    /// must remember it.
    pub replayable_until: u64,
}

impl Proof {
    /// The thumbprint as `cnf.jkt` carries it: base64url without padding.
    pub fn jkt_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.jkt)
    }

    /// The replay cache key of this proof: its key and its `jti`.
    pub fn replay_key(&self) -> replay::Key {
        replay::key(&self.jkt, &self.jti)
    }
}

/// Whether a token's `cnf.jkt` names the proof's key (§4.3 step 12, §6.1).
pub fn bound_matches(cnf_jkt: &str, proof: &Proof) -> bool {
    // Anything but a SHA-256 thumbprint's length names no key.
    if cnf_jkt.len() != SHA256_B64_LEN {
        return false;
    }
    URL_SAFE_NO_PAD.decode(cnf_jkt).is_ok_and(|jkt| constant_time_eq(&jkt, &proof.jkt))
}

/// The RFC 9449 §7.1 error code a refusal answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidDpopProof,
    /// With a fresh `DPoP-Nonce` header (§8, §9).
    UseDpopNonce,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

/// Why a proof was refused. `Display` is fit for an `error_description`: short, and never
/// repeating anything from the proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpopError {
    Malformed(&'static str),
    /// A member name appears twice in the header, the payload or the JWK: refused rather than
    /// read one way here and another way elsewhere (RFC 7515 §5.2 allows either).
    DuplicateMember,
    /// `typ` is missing or not `dpop+jwt` (§4.2): an access token or another JWT is not a proof.
    WrongType,
    /// `alg` is not one the edge accepts: never `none`, never HMAC.
    UnsupportedAlgorithm,
    /// The `jwk` carries private or symmetric key material (§4.3 step 7).
    PrivateKey,
    /// The `jwk` is not an RSA (2048 to 8192 bits), P-256 or Ed25519 public key.
    UnsupportedKey,
    /// The `jwk` is of another family than `alg`.
    KeyAlgorithmMismatch,
    BadSignature,
    MissingClaim(&'static str),
    WrongMethod,
    WrongUri,
    /// `iat` is further in the past than the window.
    TooOld,
    /// `iat` is further in the future than the window.
    IssuedInFuture,
    /// `ath` is not the hash of the access token presented with the proof.
    WrongTokenHash,
    /// Nonces are required and the proof has none.
    NonceMissing,
    /// The proof's nonce is not one of the current ones.
    NonceStale,
    /// The replay cache has seen this proof inside its window.
    Replayed,
}

impl DpopError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DpopError::NonceMissing | DpopError::NonceStale => ErrorCode::UseDpopNonce,
            _ => ErrorCode::InvalidDpopProof,
        }
    }
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpopError::Malformed(what) => write!(f, "malformed DPoP proof: {what}"),
            DpopError::DuplicateMember => f.write_str("DPoP proof repeats a member name"),
            DpopError::WrongType => f.write_str("DPoP proof typ is not dpop+jwt"),
            DpopError::UnsupportedAlgorithm => f.write_str("DPoP proof signing algorithm not accepted"),
            DpopError::PrivateKey => f.write_str("DPoP proof jwk holds private key material"),
            DpopError::UnsupportedKey => f.write_str("DPoP proof jwk is not a supported public key"),
            DpopError::KeyAlgorithmMismatch => f.write_str("DPoP proof jwk does not fit its algorithm"),
            DpopError::BadSignature => f.write_str("DPoP proof signature is invalid"),
            DpopError::MissingClaim(claim) => write!(f, "DPoP proof has no {claim} claim"),
            DpopError::WrongMethod => f.write_str("DPoP proof htm does not match the request method"),
            DpopError::WrongUri => f.write_str("DPoP proof htu does not match the request URI"),
            DpopError::TooOld => f.write_str("DPoP proof was issued too long ago"),
            DpopError::IssuedInFuture => f.write_str("DPoP proof is issued in the future"),
            DpopError::WrongTokenHash => f.write_str("DPoP proof ath does not match the access token"),
            DpopError::NonceMissing => f.write_str("resource server requires nonce in DPoP proof"),
            DpopError::NonceStale => f.write_str("DPoP proof nonce is not current"),
            DpopError::Replayed => f.write_str("DPoP proof has been used before"),
        }
    }
}

impl std::error::Error for DpopError {}

/// The one `DPoP` header of a request, if any (§4.3 step 1: more than one is refused).
pub fn one_proof(headers: &HeaderMap) -> Result<Option<&[u8]>, DpopError> {
    let mut values = headers.get_all("dpop").iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => Ok(Some(value.as_bytes())),
        (Some(_), Some(_)) => Err(DpopError::Malformed("more than one DPoP header")),
    }
}

/// Checks a `DPoP` header value against the request, as RFC 9449 §4.3 lists: a compact JWS
/// of `typ` `dpop+jwt`, an accepted asymmetric `alg`, a public `jwk` that verifies the
/// signature; then `jti`, `htm`, `htu`, the nonce when required, `iat` within the window, and
/// `ath` when a token is given. The signature is checked before any claim is read.
pub fn check_proof(proof: &[u8], expect: &Expect, now: u64) -> Result<Proof, DpopError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(DpopError::Malformed("too long"));
    }
    let proof = std::str::from_utf8(proof).map_err(|_| DpopError::Malformed("not base64url"))?;
    // RFC 7515 §7.1: exactly three parts; the signing input is the first two as sent.
    let (signing_input, sig_b64) = proof.rsplit_once('.').ok_or(DpopError::Malformed("not three parts"))?;
    let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(DpopError::Malformed("not three parts"))?;
    if payload_b64.contains('.') {
        return Err(DpopError::Malformed("not three parts"));
    }
    let header = decode_object(header_b64, "header is not base64url", "header is not a JSON object")?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(DpopError::WrongType);
    }
    let alg_name = header.get("alg").and_then(Value::as_str).ok_or(DpopError::Malformed("header has no alg"))?;
    // SECURITY: only names of asymmetric algorithms parse, so `none` and HS256 stop here.
    let alg = Algorithm::from_name(alg_name)
        .filter(|alg| expect.algs.contains(alg))
        .ok_or(DpopError::UnsupportedAlgorithm)?;
    // RFC 7515 §4.1.11: extensions marked critical must be understood; we understand none.
    if header.contains_key("crit") {
        return Err(DpopError::Malformed("critical header extension"));
    }
    let jwk = match header.get("jwk") {
        Some(Value::Object(jwk)) => jwk,
        Some(_) => return Err(DpopError::Malformed("jwk is not an object")),
        None => return Err(DpopError::Malformed("header has no jwk")),
    };
    let key = public_key(jwk)?;
    if !key.supports(alg) {
        return Err(DpopError::KeyAlgorithmMismatch);
    }
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|_| DpopError::Malformed("signature is not base64url"))?;
    // SECURITY: the key is the proof's own; what binds it to anything is `cnf.jkt`, which the
    // caller compares with the thumbprint returned here.
    if !key.verify(alg, signing_input.as_bytes(), &sig) {
        return Err(DpopError::BadSignature);
    }
    let claims = decode_object(payload_b64, "payload is not base64url", "payload is not a JSON object")?;
    check_claims(&claims, expect, now, key.thumbprint())
}

/// The proof's key, when it is a public key of a supported type and nothing else.
fn public_key(jwk: &Map<String, Value>) -> Result<Material, DpopError> {
    if jwk.len() > MAX_JWK_MEMBERS {
        return Err(DpopError::Malformed("jwk has too many members"));
    }
    // SECURITY: a client that sends its private key has lost it; refuse rather than use it.
    if PRIVATE_MEMBERS.iter().any(|member| jwk.contains_key(*member)) {
        return Err(DpopError::PrivateKey);
    }
    // Members are strings, booleans or lists of strings (`key_ops`, `x5c`); nesting is not a key.
    let flat = |value: &Value| !matches!(value, Value::Object(_) | Value::Array(_));
    if !jwk.values().all(|v| flat(v) || v.as_array().is_some_and(|items| items.iter().all(flat))) {
        return Err(DpopError::Malformed("jwk has nested members"));
    }
    Material::from_jwk(jwk).ok_or(DpopError::UnsupportedKey)
}

fn check_claims(claims: &Map<String, Value>, expect: &Expect, now: u64, jkt: [u8; 32]) -> Result<Proof, DpopError> {
    let string = move |name: &'static str, not_string: &'static str| match claims.get(name) {
        None => Err(DpopError::MissingClaim(name)),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(_) => Err(DpopError::Malformed(not_string)),
    };
    let jti = string("jti", "jti is not a string")?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(DpopError::Malformed("jti is empty or too long"));
    }
    if string("htm", "htm is not a string")? != expect.method {
        return Err(DpopError::WrongMethod);
    }
    // §4.3 step 9: compared after the same normalisation as the request's own URI.
    if Htu::parse(string("htu", "htu is not a string")?).as_ref() != Some(expect.htu) {
        return Err(DpopError::WrongUri);
    }
    if let Some(nonces) = expect.nonces {
        match claims.get("nonce") {
            None => return Err(DpopError::NonceMissing),
            Some(Value::String(nonce)) if nonces.accept(nonce, now) => {}
            Some(_) => return Err(DpopError::NonceStale),
        }
    }
    let iat = match claims.get("iat") {
        None => return Err(DpopError::MissingClaim("iat")),
        // A NumericDate (RFC 7519 §2): seconds, possibly fractional, rounded down here.
        Some(value) => value
            .as_u64()
            .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or(DpopError::Malformed("iat is not a date"))?,
    };
    if iat.saturating_add(expect.window_secs) < now {
        return Err(DpopError::TooOld);
    }
    if iat > now.saturating_add(expect.window_secs) {
        return Err(DpopError::IssuedInFuture);
    }
    if let Some(token) = expect.access_token {
        // §4.2: base64url of the SHA-256 of the token's ASCII bytes.
        let ath = string("ath", "ath is not a string")?;
        let expected = ring::digest::digest(&ring::digest::SHA256, token);
        if ath.len() != SHA256_B64_LEN
            || !URL_SAFE_NO_PAD.decode(ath).is_ok_and(|ath| constant_time_eq(&ath, expected.as_ref()))
        {
            return Err(DpopError::WrongTokenHash);
        }
    }
    Ok(Proof { jkt, jti: jti.to_string(), iat, replayable_until: iat.saturating_add(expect.window_secs) })
}

/// Decodes one base64url part into a JSON object whose member names, at every depth, are
/// unique. serde_json's own recursion limit bounds the depth.
fn decode_object(
    part: &str,
    not_base64: &'static str,
    not_object: &'static str,
) -> Result<Map<String, Value>, DpopError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| DpopError::Malformed(not_base64))?;
    match serde_json::from_slice::<Strict>(&bytes) {
        Ok(Strict(Value::Object(map))) => Ok(map),
        Ok(_) => Err(DpopError::Malformed(not_object)),
        // The visitor accepts every JSON type, so its only data error is a repeated name.
        Err(e) if e.classify() == Category::Data => Err(DpopError::DuplicateMember),
        Err(_) => Err(DpopError::Malformed(not_object)),
    }
}

/// A JSON value read with repeated member names refused.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Strict, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        // JSON text has no NaN or infinity; should one appear it reads as null, not an error.
        Ok(Strict(Number::from_f64(v).map_or(Value::Null, Value::Number)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Strict, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let Strict(value) = access.next_value()?;
            if map.insert(name, value).is_some() {
                return Err(de::Error::custom("repeated member name"));
            }
        }
        Ok(Strict(Value::Object(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::keyring::KeyRing;
    use crate::gate::replay::{ReplayCache, Verdict};
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
    use serde_json::json;
    use std::num::NonZeroU64;
    use std::sync::OnceLock;

    const NOW: u64 = 1_750_000_000;
    const ORIGIN: &str = "https://mcp.example.com";
    const URI: &str = "https://mcp.example.com/mcp";
    /// The access token of RFC 9449 §4.2's example, and the `ath` the RFC gives for it.
    const TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    const ATH: &str = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo";

    struct Keys {
        ec: EcdsaKeyPair,
        ed: Ed25519KeyPair,
        /// A second P-256 key, to sign with a key other than the one in the header.
        other_ec: EcdsaKeyPair,
        rsa: RsaKeyPair,
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn keys() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            use rsa::pkcs8::EncodePrivateKey;
            let rng = SystemRandom::new();
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let ec = || {
                let der = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
                EcdsaKeyPair::from_pkcs8(alg, der.as_ref(), &rng).unwrap()
            };
            let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
            let rsa_der = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap().to_pkcs8_der().unwrap();
            let rsa = RsaKeyPair::from_pkcs8(rsa_der.as_bytes()).unwrap();
            Keys { ec: ec(), ed, other_ec: ec(), rsa }
        })
    }

    /// The public JWK of the test key for `alg`.
    fn jwk(alg: &str) -> Value {
        let k = keys();
        match alg {
            "ES256" => {
                let point = k.ec.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            "RS256" | "PS256" => {
                let public: signature::RsaPublicKeyComponents<Vec<u8>> = k.rsa.public().into();
                json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)})
            }
            _ => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.ed.public_key().as_ref())}),
        }
    }

    fn header(alg: &str) -> Value {
        json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk(alg)})
    }

    fn claims() -> Value {
        json!({"jti": "e1j3V_bKic8-LAEB", "htm": "POST", "htu": URI, "iat": NOW, "ath": ATH})
    }

    /// A proof of these exact header and payload texts, signed with the test key `signer` names.
    fn sign_raw(signer: &str, header: &str, payload: &str) -> String {
        let k = keys();
        let rng = SystemRandom::new();
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let sig = match signer {
            "ES256" => k.ec.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            "other ES256" => k.other_ec.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            "RS256" | "PS256" => {
                let padding: &dyn signature::RsaEncoding =
                    if signer == "RS256" { &signature::RSA_PKCS1_SHA256 } else { &signature::RSA_PSS_SHA256 };
                let mut sig = vec![0; k.rsa.public().modulus_len()];
                k.rsa.sign(padding, &rng, input.as_bytes(), &mut sig).unwrap();
                sig
            }
            "HS256" => ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret"), input.as_bytes())
                .as_ref()
                .to_vec(),
            "none" => Vec::new(),
            _ => k.ed.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }

    /// A proof with this header and these claims, signed as the header's `alg` says.
    fn sign(header: &Value, claims: &Value) -> String {
        sign_raw(header["alg"].as_str().unwrap_or("EdDSA"), &header.to_string(), &claims.to_string())
    }

    fn proof(alg: &str) -> String {
        sign(&header(alg), &claims())
    }

    fn the_htu() -> Htu {
        htu(ORIGIN, "/mcp").unwrap()
    }

    fn expect(htu: &Htu) -> Expect<'_> {
        Expect {
            method: "POST",
            htu,
            access_token: Some(TOKEN.as_bytes()),
            window_secs: DEFAULT_WINDOW_SECS,
            algs: &SUPPORTED_ALGS,
            nonces: None,
        }
    }

    fn check(proof: &str) -> Result<Proof, DpopError> {
        check_proof(proof.as_bytes(), &expect(&the_htu()), NOW)
    }

    fn with_claims(alg: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut c = claims();
        edit(c.as_object_mut().unwrap());
        sign(&header(alg), &c)
    }

    fn with_header(alg: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut h = header(alg);
        edit(h.as_object_mut().unwrap());
        sign(&h, &claims())
    }

    fn thumbprint_of(jwk: &Value) -> [u8; 32] {
        Material::from_jwk(jwk.as_object().unwrap()).unwrap().thumbprint()
    }

    #[test]
    fn proofs_of_every_supported_algorithm_are_accepted() {
        for alg in ["ES256", "EdDSA", "RS256", "PS256"] {
            let got = check(&proof(alg)).unwrap_or_else(|e| panic!("{alg}: {e:?}"));
            assert_eq!(
                got,
                Proof {
                    jkt: thumbprint_of(&jwk(alg)),
                    jti: "e1j3V_bKic8-LAEB".into(),
                    iat: NOW,
                    replayable_until: NOW + DEFAULT_WINDOW_SECS
                },
                "{alg}"
            );
            assert!(bound_matches(&got.jkt_base64(), &got), "{alg}");
        }
    }

    #[test]
    fn thumbprints_match_rfc_7638_and_independent_vectors() {
        // RFC 7638 §3.1's example key: the members beyond the required ones do not count.
        let rfc = json!({"kty": "RSA", "alg": "RS256", "kid": "2011-04-29", "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(b64(&thumbprint_of(&rfc)), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        // Computed with python3 hashlib over the canonical JSON of these keys.
        let ec = json!({"y": "fz-r7Y87-nWlLfz_Sc3EzhhrtrdRcE1IoE7P4JuTTM0", "x": "I55gOFh1FuNTDl01m3n5KmoIMvET5L0pDP8iPpPm-OE",
            "kty": "EC", "crv": "P-256", "use": "sig"});
        assert_eq!(b64(&thumbprint_of(&ec)), "x4v4C1hpHYAq7R7B4ABfADlAJCR7ErF7GwGVVPiKG8A");
        let ed = json!({"x": "j6-kofzV4GU3Lx7lUxs2RzGDwTSbussRA8Go3S_5xa8", "crv": "Ed25519", "kty": "OKP"});
        assert_eq!(b64(&thumbprint_of(&ed)), "syUCZ0amTF8kOA9xYraeiDz_HTsNQXOAgu2jXvEg0uY");
    }

    #[test]
    fn bound_matches_compares_the_thumbprint() {
        let got = check(&proof("ES256")).unwrap();
        let other = check(&proof("EdDSA")).unwrap();
        assert!(!bound_matches(&other.jkt_base64(), &got));
        for bad in ["", "x", &format!("{}=", got.jkt_base64()), &got.jkt_base64()[1..], &"*".repeat(43)] {
            assert!(!bound_matches(bad, &got), "{bad}");
        }
    }

    #[test]
    fn ath_is_the_hash_of_the_token() {
        assert_eq!(b64(ring::digest::digest(&ring::digest::SHA256, TOKEN.as_bytes()).as_ref()), ATH);
        let h = the_htu();
        let other = Expect { access_token: Some(b"another-token"), ..expect(&h) };
        assert_eq!(check_proof(proof("ES256").as_bytes(), &other, NOW), Err(DpopError::WrongTokenHash));
        for ath in [json!("fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo="), json!(""), json!(ATH.to_lowercase())] {
            let p = with_claims("EdDSA", |c| drop(c.insert("ath".into(), ath)));
            assert_eq!(check(&p), Err(DpopError::WrongTokenHash));
        }
        let p = with_claims("EdDSA", |c| drop(c.insert("ath".into(), json!(7))));
        assert_eq!(check(&p), Err(DpopError::Malformed("ath is not a string")));
        // Without a token (a token request, not a resource request) ath is not looked at.
        let no_token = Expect { access_token: None, ..expect(&h) };
        let p = with_claims("EdDSA", |c| drop(c.remove("ath")));
        assert!(check_proof(p.as_bytes(), &no_token, NOW).is_ok());
        assert!(check_proof(proof("EdDSA").as_bytes(), &no_token, NOW).is_ok());
    }

    #[test]
    fn every_missing_claim_is_named() {
        for claim in ["jti", "htm", "htu", "iat", "ath"] {
            let p = with_claims("ES256", |c| drop(c.remove(claim)));
            assert_eq!(check(&p), Err(DpopError::MissingClaim(claim)), "{claim}");
        }
    }

    #[test]
    fn claims_of_the_wrong_type_are_refused() {
        let cases = [
            ("jti", json!(5), "jti is not a string"),
            ("jti", json!(""), "jti is empty or too long"),
            ("jti", json!("j".repeat(MAX_JTI_LEN + 1)), "jti is empty or too long"),
            ("htm", json!(["POST"]), "htm is not a string"),
            ("htu", json!({"uri": URI}), "htu is not a string"),
            ("iat", json!("1750000000"), "iat is not a date"),
            ("iat", json!(-1), "iat is not a date"),
        ];
        for (claim, value, why) in cases {
            let p = with_claims("EdDSA", |c| drop(c.insert(claim.into(), value)));
            assert_eq!(check(&p), Err(DpopError::Malformed(why)), "{claim}");
        }
        let p = with_claims("EdDSA", |c| drop(c.insert("jti".into(), json!("j".repeat(MAX_JTI_LEN)))));
        assert!(check(&p).is_ok());
    }

    #[test]
    fn htm_must_be_the_method_exactly() {
        for htm in ["GET", "post", "POST ", ""] {
            let p = with_claims("ES256", |c| drop(c.insert("htm".into(), json!(htm))));
            assert_eq!(check(&p), Err(DpopError::WrongMethod), "{htm}");
        }
        let h = the_htu();
        let get = Expect { method: "GET", ..expect(&h) };
        assert_eq!(check_proof(proof("ES256").as_bytes(), &get, NOW), Err(DpopError::WrongMethod));
    }

    #[test]
    fn htu_is_compared_after_normalisation() {
        let same = [
            "https://mcp.example.com/mcp",
            "HTTPS://MCP.Example.COM/mcp",
            "https://mcp.example.com:443/mcp",
            "https://mcp.example.com:/mcp",
            "https://mcp.example.com/mcp?session=1",
            "https://mcp.example.com/mcp#frag",
            "https://mcp.example.com/%6D%63%70",
            "https://mcp.example.com/a/../mcp",
            "https://mcp.example.com/./mcp",
        ];
        for htu in same {
            let p = with_claims("EdDSA", |c| drop(c.insert("htu".into(), json!(htu))));
            assert!(check(&p).is_ok(), "{htu}");
        }
        let other = [
            "https://mcp.example.com/MCP",
            "https://mcp.example.com/mcp/",
            "http://mcp.example.com/mcp",
            "https://mcp.example.com:8443/mcp",
            "https://other.example.com/mcp",
            "https://user@mcp.example.com/mcp",
            "//mcp.example.com/mcp",
            "/mcp",
            "https://mcp.example.com/mc%",
            "https://mcp.example.com /mcp",
        ];
        for htu in other {
            let p = with_claims("EdDSA", |c| drop(c.insert("htu".into(), json!(htu))));
            assert_eq!(check(&p), Err(DpopError::WrongUri), "{htu}");
        }
    }

    #[test]
    fn htu_normalisation() {
        let cases = [
            ("https://Example.COM", Some("https://example.com/")),
            ("http://example.com:80/a", Some("http://example.com/a")),
            ("http://example.com:443/a", Some("http://example.com:443/a")),
            ("https://example.com:0443/a", Some("https://example.com/a")),
            ("https://example.com:8443", Some("https://example.com:8443/")),
            ("https://example.com/a%2fb%7e%41", Some("https://example.com/a%2Fb~A")),
            ("https://example.com/a/b/c/./../../g", Some("https://example.com/a/g")),
            ("https://example.com/a/b/..", Some("https://example.com/a/")),
            ("https://example.com/..", Some("https://example.com/")),
            ("https://example.com/a//b/", Some("https://example.com/a//b/")),
            ("https://example.com/%2E%2E/x", Some("https://example.com/x")),
            ("https://[2001:DB8::1]:443/mcp", Some("https://[2001:db8::1]/mcp")),
            ("https://[::1]:8080", Some("https://[::1]:8080/")),
            ("https://example.com?q#f", Some("https://example.com/")),
            ("ftp://example.com/", None),
            ("https:/example.com/", None),
            ("https://", None),
            ("https://:443/", None),
            ("https://example.com:65536/", None),
            ("https://example.com:-1/", None),
            ("https://example.com:44a/", None),
            ("https://ex%41mple.com/", None),
            ("https://[]/", None),
            ("https://[::1%25eth0]/", None),
            ("https://[::1/", None),
            ("https://a@example.com/", None),
            ("https://example.com/%zz", None),
            ("https://example.com/%4", None),
            ("https://example.com/é", None),
            ("https://example.com/a b", None),
        ];
        for (uri, want) in cases {
            assert_eq!(Htu::parse(uri).as_ref().map(Htu::as_str), want, "{uri}");
        }
        assert_eq!(Htu::parse(&format!("https://example.com/{}", "a".repeat(MAX_HTU_LEN))), None);
    }

    #[test]
    fn htu_is_built_from_the_public_origin_and_the_path() {
        let built = |origin: &str, path: &str| htu(origin, path).map(|h| h.0);
        assert_eq!(built("https://mcp.example.com", "/mcp").as_deref(), Some(URI));
        assert_eq!(built("https://MCP.example.com:443/", "/mcp?x=1").as_deref(), Some(URI));
        assert_eq!(built("http://127.0.0.1:8080", "").as_deref(), Some("http://127.0.0.1:8080/"));
        assert_eq!(built("https://mcp.example.com/base", "/mcp"), None, "an origin has no path");
        assert_eq!(built("https://mcp.example.com", "mcp"), None);
        assert_eq!(built("https://mcp.example.com", "*"), None);
        assert_eq!(built("mcp.example.com", "/mcp"), None);
    }

    #[test]
    fn iat_must_be_inside_the_window() {
        let at = |iat: Value| with_claims("ES256", |c| drop(c.insert("iat".into(), iat)));
        assert!(check(&at(json!(NOW - 300))).is_ok());
        assert!(check(&at(json!(NOW + 300))).is_ok());
        assert_eq!(check(&at(json!(NOW + 300))).unwrap().replayable_until, NOW + 600);
        assert_eq!(check(&at(json!((NOW - 10) as f64 + 0.75))).map(|p| p.iat), Ok(NOW - 10));
        assert_eq!(check(&at(json!(NOW - 301))), Err(DpopError::TooOld));
        assert_eq!(check(&at(json!(0))), Err(DpopError::TooOld));
        assert_eq!(check(&at(json!(NOW + 301))), Err(DpopError::IssuedInFuture));
        assert_eq!(check(&at(json!(u64::MAX))), Err(DpopError::IssuedInFuture));
        let h = the_htu();
        let tight = Expect { window_secs: 5, ..expect(&h) };
        assert_eq!(check_proof(at(json!(NOW - 6)).as_bytes(), &tight, NOW), Err(DpopError::TooOld));
    }

    #[test]
    fn typ_must_be_dpop_jwt() {
        for typ in [json!("JWT"), json!("at+jwt"), json!("DPOP+JWT"), json!("application/dpop+jwt"), json!(1)] {
            let p = with_header("ES256", |h| drop(h.insert("typ".into(), typ.clone())));
            assert_eq!(check(&p), Err(DpopError::WrongType), "{typ}");
        }
        let p = with_header("ES256", |h| drop(h.remove("typ")));
        assert_eq!(check(&p), Err(DpopError::WrongType));
    }

    #[test]
    fn only_accepted_asymmetric_algorithms_pass() {
        for alg in ["none", "HS256", "ES384", "RS512", "es256", ""] {
            let mut h = header("ES256");
            h["alg"] = json!(alg);
            let p = sign_raw(alg, &h.to_string(), &claims().to_string());
            assert_eq!(check(&p), Err(DpopError::UnsupportedAlgorithm), "{alg}");
        }
        // An HMAC "signature" keyed with the public key's own bytes is refused the same way.
        let h = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
        assert_eq!(check(&sign(&h, &claims())), Err(DpopError::UnsupportedAlgorithm));
        let p = with_header("ES256", |h| drop(h.remove("alg")));
        assert_eq!(check(&p), Err(DpopError::Malformed("header has no alg")));
        // Supported, but not among those this resource accepts.
        let only_ec = [Algorithm::Es256];
        let h = the_htu();
        let e = Expect { algs: &only_ec, ..expect(&h) };
        assert_eq!(check_proof(proof("EdDSA").as_bytes(), &e, NOW), Err(DpopError::UnsupportedAlgorithm));
        assert!(check_proof(proof("ES256").as_bytes(), &e, NOW).is_ok());
    }

    #[test]
    fn the_key_must_fit_the_algorithm() {
        // An Ed25519 key in a header that says ES256, signed by the P-256 key.
        let p = with_header("ES256", |h| drop(h.insert("jwk".into(), jwk("EdDSA"))));
        assert_eq!(check(&p), Err(DpopError::KeyAlgorithmMismatch));
        let p = with_header("EdDSA", |h| drop(h.insert("jwk".into(), jwk("RS256"))));
        assert_eq!(check(&p), Err(DpopError::KeyAlgorithmMismatch));
    }

    #[test]
    fn private_key_material_is_refused() {
        for member in PRIVATE_MEMBERS {
            let p =
                with_header("ES256", |h| drop(h["jwk"].as_object_mut().unwrap().insert(member.into(), json!("AQAB"))));
            assert_eq!(check(&p), Err(DpopError::PrivateKey), "{member}");
        }
        let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
        assert_eq!(check(&sign(&h, &claims())), Err(DpopError::PrivateKey));
    }

    #[test]
    fn unusable_keys_are_refused() {
        let cases = [
            json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}),
            json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
            json!({"kty": "OKP", "crv": "X25519", "x": b64(&[1; 32])}),
            json!({"kty": "OKP", "crv": "Ed25519"}),
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
            json!({"crv": "Ed25519", "x": b64(&[1; 32])}),
        ];
        for jwk in cases {
            let p = with_header("EdDSA", |h| drop(h.insert("jwk".into(), jwk.clone())));
            assert_eq!(check(&p), Err(DpopError::UnsupportedKey), "{jwk}");
        }
        let p = with_header("EdDSA", |h| drop(h.remove("jwk")));
        assert_eq!(check(&p), Err(DpopError::Malformed("header has no jwk")));
        let p = with_header("EdDSA", |h| drop(h.insert("jwk".into(), json!("eyJrdHkiOiJPS1AifQ"))));
        assert_eq!(check(&p), Err(DpopError::Malformed("jwk is not an object")));
    }

    #[test]
    fn huge_or_nested_keys_are_refused() {
        let p = with_header("EdDSA", |h| drop(h["jwk"].as_object_mut().unwrap().insert("ext".into(), json!({"a": 1}))));
        assert_eq!(check(&p), Err(DpopError::Malformed("jwk has nested members")));
        let p = with_header("EdDSA", |h| drop(h["jwk"].as_object_mut().unwrap().insert("x5c".into(), json!([["a"]]))));
        assert_eq!(check(&p), Err(DpopError::Malformed("jwk has nested members")));
        let p = with_header("EdDSA", |h| {
            let jwk = h["jwk"].as_object_mut().unwrap();
            for n in 0..MAX_JWK_MEMBERS {
                jwk.insert(format!("m{n}"), json!(true));
            }
        });
        assert_eq!(check(&p), Err(DpopError::Malformed("jwk has too many members")));
        // Ordinary extra members (WebCrypto's export) are fine.
        let p = with_header("EdDSA", |h| {
            let jwk = h["jwk"].as_object_mut().unwrap();
            jwk.insert("ext".into(), json!(true));
            jwk.insert("key_ops".into(), json!(["verify"]));
            jwk.insert("kid".into(), json!("k1"));
        });
        assert!(check(&p).is_ok());
        // A key padded past the size cap is refused before it is decoded.
        let p = with_header("EdDSA", |h| {
            drop(h["jwk"].as_object_mut().unwrap().insert("kid".into(), json!("k".repeat(MAX_PROOF_LEN))))
        });
        assert_eq!(check(&p), Err(DpopError::Malformed("too long")));
        // Nesting past serde_json's recursion limit is malformed, not a stack overflow.
        let deep = format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","x":{}{}}}"#, "[".repeat(2000), "]".repeat(2000));
        let p = sign_raw("EdDSA", &deep, &claims().to_string());
        assert_eq!(check(&p), Err(DpopError::Malformed("header is not a JSON object")));
    }

    #[test]
    fn repeated_member_names_are_refused() {
        let jwk = jwk("EdDSA").to_string();
        let good_header = format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{jwk}}}"#);
        let good_claims = claims().to_string();
        assert!(check(&sign_raw("EdDSA", &good_header, &good_claims)).is_ok());
        let headers = [
            format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","alg":"EdDSA","jwk":{jwk}}}"#),
            format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{jwk},"jwk":{jwk}}}"#),
            format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{}}}"#, jwk.replacen('{', r#"{"x":"AA","#, 1)),
            format!(r#"{{"typ":"dpop+jwt","\u0074yp":"dpop+jwt","alg":"EdDSA","jwk":{jwk}}}"#),
        ];
        for h in headers {
            assert_eq!(check(&sign_raw("EdDSA", &h, &good_claims)), Err(DpopError::DuplicateMember), "{h}");
        }
        let payload = good_claims.replacen('{', r#"{"htu":"https://evil.example.com/mcp","#, 1);
        assert_eq!(check(&sign_raw("EdDSA", &good_header, &payload)), Err(DpopError::DuplicateMember));
    }

    #[test]
    fn a_signature_by_another_key_is_refused() {
        // The header names one P-256 key; another one signed.
        let h = header("ES256").to_string();
        let p = sign_raw("other ES256", &h, &claims().to_string());
        assert_eq!(check(&p), Err(DpopError::BadSignature));
        for alg in ["ES256", "EdDSA", "PS256"] {
            let good = proof(alg);
            let (input, sig) = good.rsplit_once('.').unwrap();
            let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            sig[7] ^= 1;
            assert_eq!(check(&format!("{input}.{}", b64(&sig))), Err(DpopError::BadSignature), "{alg}");
            // A payload swapped under the same signature.
            let (head, _) = input.split_once('.').unwrap();
            let mut c = claims();
            c["htu"] = json!("https://mcp.example.com/other");
            let swapped = format!("{head}.{}.{}", b64(c.to_string().as_bytes()), good.rsplit_once('.').unwrap().1);
            assert_eq!(check(&swapped), Err(DpopError::BadSignature), "{alg}");
        }
    }

    #[test]
    fn malformed_proofs_are_refused() {
        let good = proof("EdDSA");
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let raw_header = |v: &[u8]| format!("{}.{p}.{s}", b64(v));
        let cases = [
            (String::new(), "not three parts"),
            (format!("{h}.{p}"), "not three parts"),
            (format!("{good}.{s}"), "not three parts"),
            (format!("{h}=.{p}.{s}"), "header is not base64url"),
            (format!(" {good}"), "header is not base64url"),
            (format!("{h}.{p}.{s}="), "signature is not base64url"),
            (raw_header(b"typ: dpop+jwt"), "header is not a JSON object"),
            (raw_header(b"[\"dpop+jwt\"]"), "header is not a JSON object"),
            (raw_header(br#"{"typ":"dpop+jwt","alg":"EdDSA","crit":["exp"]}"#), "critical header extension"),
            ("a".repeat(MAX_PROOF_LEN + 1), "too long"),
        ];
        for (proof, why) in cases {
            assert_eq!(check(&proof), Err(DpopError::Malformed(why)), "{proof:.80}");
        }
        assert_eq!(
            check_proof(b"\xff.\xfe.\xfd", &expect(&the_htu()), NOW),
            Err(DpopError::Malformed("not base64url"))
        );
        let signed_string = sign_raw("EdDSA", &header("EdDSA").to_string(), "\"just a string\"");
        assert_eq!(check(&signed_string), Err(DpopError::Malformed("payload is not a JSON object")));
    }

    #[test]
    fn nonces_when_required() {
        let nonces = Nonces::new(KeyRing::new(&[[5; 32]]).unwrap(), NonZeroU64::new(60).unwrap());
        let foreign = Nonces::new(KeyRing::new(&[[6; 32]]).unwrap(), NonZeroU64::new(60).unwrap());
        let h = the_htu();
        let e = Expect { nonces: Some(&nonces), ..expect(&h) };
        let with_nonce = |nonce: Value| with_claims("ES256", |c| drop(c.insert("nonce".into(), nonce)));
        let run = |p: &str, now: u64| check_proof(p.as_bytes(), &e, now);

        let missing = run(&proof("ES256"), NOW);
        assert_eq!(missing, Err(DpopError::NonceMissing));
        assert_eq!(missing.unwrap_err().code(), ErrorCode::UseDpopNonce);
        assert!(run(&with_nonce(json!(nonces.issue(NOW))), NOW).is_ok(), "current");
        assert!(run(&with_nonce(json!(nonces.issue(NOW - 60))), NOW).is_ok(), "previous");
        let stale = run(&with_nonce(json!(nonces.issue(NOW - 120))), NOW);
        assert_eq!(stale, Err(DpopError::NonceStale), "expired");
        assert_eq!(stale.unwrap_err().code(), ErrorCode::UseDpopNonce);
        assert_eq!(run(&with_nonce(json!(foreign.issue(NOW))), NOW), Err(DpopError::NonceStale), "other key");
        assert_eq!(run(&with_nonce(json!(5)), NOW), Err(DpopError::NonceStale));
        // Without the requirement, a nonce is not looked at.
        assert!(check(&with_nonce(json!("anything"))).is_ok());
    }

    #[test]
    fn a_replayed_proof_has_the_same_key() {
        let cache = ReplayCache::new(1024);
        let p = proof("EdDSA");
        let first = check(&p).unwrap();
        let again = check(&p).unwrap();
        assert_eq!(cache.check(first.replay_key(), first.replayable_until, NOW), Verdict::Fresh);
        assert_eq!(cache.check(again.replay_key(), again.replayable_until, NOW + 10), Verdict::Replayed);
        // The same jti from another key is another proof.
        let other = check(&proof("ES256")).unwrap();
        assert_eq!(cache.check(other.replay_key(), other.replayable_until, NOW), Verdict::Fresh);
    }

    #[test]
    fn one_proof_header_at_most() {
        let mut headers = HeaderMap::new();
        assert_eq!(one_proof(&headers), Ok(None));
        headers.append("dpop", http::HeaderValue::from_static("a.b.c"));
        assert_eq!(one_proof(&headers), Ok(Some(&b"a.b.c"[..])));
        headers.append("DPoP", http::HeaderValue::from_static("d.e.f"));
        assert_eq!(one_proof(&headers), Err(DpopError::Malformed("more than one DPoP header")));
    }

    #[test]
    fn messages_fit_an_error_description_and_codes_are_rfc_9449s() {
        let errors = [
            DpopError::Malformed("not three parts"),
            DpopError::DuplicateMember,
            DpopError::WrongType,
            DpopError::UnsupportedAlgorithm,
            DpopError::PrivateKey,
            DpopError::UnsupportedKey,
            DpopError::KeyAlgorithmMismatch,
            DpopError::BadSignature,
            DpopError::MissingClaim("jti"),
            DpopError::WrongMethod,
            DpopError::WrongUri,
            DpopError::TooOld,
            DpopError::IssuedInFuture,
            DpopError::WrongTokenHash,
            DpopError::NonceMissing,
            DpopError::NonceStale,
            DpopError::Replayed,
        ];
        for error in errors {
            let text = error.to_string();
            assert!(text.bytes().all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)), "{text}");
            let code = error.code().as_str();
            let nonce = matches!(error, DpopError::NonceMissing | DpopError::NonceStale);
            assert_eq!(code, if nonce { "use_dpop_nonce" } else { "invalid_dpop_proof" });
        }
        assert_eq!(SUPPORTED_ALGS.map(Algorithm::name), ["ES256", "EdDSA", "PS256", "RS256"]);
    }
}
