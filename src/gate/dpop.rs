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
    // A SHA-256 thumbprint is 43 base64url characters; anything else names no key.
    if cnf_jkt.len() != 43 {
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
        if ath.len() != 43 || !URL_SAFE_NO_PAD.decode(ath).is_ok_and(|ath| constant_time_eq(&ath, expected.as_ref())) {
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
