//! DPoP at the gate (RFC 9449 §4.3, §7): the checks a request with `Authorization: DPoP` passes
//! once its token is accepted, in the order [`crate::gate::dpop`] gives: one proof, the proof
//! itself (against the public URI the client used, the token, the clock and the nonces), the
//! token's binding to the proof's key, and last the replay cache, so that only requests that
//! passed everything else take room in it.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;

use http::header::HeaderMap;
use http::HeaderName;

use crate::config::{Config, DpopMode};
use crate::gate::dpop::{self, DpopError, ErrorCode, Expect, Proof, SUPPORTED_ALGS};
use crate::gate::keyring::KeyRing;
use crate::gate::nonce::{Nonces, DEFAULT_PERIOD_SECS};
use crate::gate::replay::{self, ReplayCache, Verdict};

/// The proof's header (RFC 9449 §4.1). Bound to the edge's URI, so never forwarded.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The nonce a `use_dpop_nonce` answer asks the client to put in its next proof (§8).
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// One resource's DPoP checks, made once from its configuration (none with `--dpop off`).
#[derive(Debug)]
pub struct Possession {
    pub mode: DpopMode,
    window_secs: u64,
    /// Set when `--dpop-nonce-key` is: every proof must then carry a current nonce.
    nonces: Option<Nonces>,
    /// Shared with the configuration this one replaced, so a reload forgets no proof.
    replay: Arc<ReplayCache>,
    /// The public `scheme://authority` the client calls: what `htu` is built from, never the
    /// edge's own listening address.
    origin: String,
}

/// Why a DPoP request was refused after its token was accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The proof is missing, repeated or fails a check (`invalid_dpop_proof`), or lacks a
    /// current nonce (`use_dpop_nonce`).
    Proof(DpopError),
    /// The proof is good but made with another key than the token's `cnf.jkt` (§4.3 step 12).
    KeyMismatch,
    /// The token has no `cnf.jkt`: nothing to hold its presenter to (`invalid_token`).
    NotBound,
    /// The replay cache has no room and nothing in it has expired: refused, never let through
    /// unrecorded (503; see [`crate::gate::replay`]).
    ReplayCacheFull,
}

impl Refusal {
    /// The RFC 9449 §7.1 error code of a refused proof.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::Proof(e) => e.code(),
            Refusal::KeyMismatch | Refusal::NotBound | Refusal::ReplayCacheFull => ErrorCode::InvalidDpopProof,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Proof(e) => write!(f, "{e}"),
            Refusal::KeyMismatch => f.write_str("DPoP proof key is not the key the token is bound to"),
            Refusal::NotBound => f.write_str("token is not bound to a DPoP key"),
            Refusal::ReplayCacheFull => f.write_str("DPoP replay cache is full"),
        }
    }
}

/// What the request says, as the proof must match it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub headers: &'a HeaderMap,
    pub method: &'a str,
    /// The path the client asked for; a query is dropped.
    pub path: &'a str,
    /// The access token presented with the proof.
    pub token: &'a [u8],
    /// The token's `cnf.jkt`, as its check found it.
    pub jkt: Option<&'a str>,
}

impl Possession {
    /// The checks for this resource, or `None` with `--dpop off`. `carried` is the replay cache
    /// of the configuration this one replaces, if it had one for this resource.
    pub fn new(config: &Config, carried: Option<Arc<ReplayCache>>) -> Option<Possession> {
        if config.dpop.mode == DpopMode::Off {
            return None;
        }
        let keys = &config.dpop.nonce_keys.0;
        let nonces = (!keys.is_empty()).then(|| {
            let ring = KeyRing::new(keys).expect("the configuration refuses nonce keys under 32 bytes");
            Nonces::new(ring, NonZeroU64::new(DEFAULT_PERIOD_SECS).expect("a nonzero constant"))
        });
        Some(Possession {
            mode: config.dpop.mode,
            window_secs: config.dpop.iat_window_secs,
            nonces,
            // SECURITY: a fresh cache after a reload would accept once more every proof still
            // inside its window.
            replay: carried.unwrap_or_else(|| Arc::new(ReplayCache::new(replay::DEFAULT_CAPACITY))),
            origin: config.resource.origin.clone(),
        })
    }

    /// The checks of RFC 9449 §4.3 and §7.1 on a request whose token was accepted; the accepted
    /// proof is recorded against replay, last.
    pub fn check(&self, request: Request<'_>, now: u64) -> Result<Proof, Refusal> {
        let Some(header) = dpop::one_proof(request.headers).map_err(Refusal::Proof)? else {
            return Err(Refusal::Proof(DpopError::Malformed("no DPoP header")));
        };
        let path = request.path.split_once('?').map_or(request.path, |(path, _)| path);
        let htu = dpop::htu(&self.origin, path).ok_or(Refusal::Proof(DpopError::WrongUri))?;
        let expect = Expect {
            method: request.method,
            htu: &htu,
            access_token: Some(request.token),
            window_secs: self.window_secs,
            algs: &SUPPORTED_ALGS,
            nonces: self.nonces.as_ref(),
        };
        let proof = dpop::check_proof(header, &expect, now).map_err(Refusal::Proof)?;
        let jkt = request.jkt.ok_or(Refusal::NotBound)?;
        // SECURITY: the proof shows possession of its own key only; the token's binding is what
        // makes that key the token's.
        if !dpop::bound_matches(jkt, &proof) {
            return Err(Refusal::KeyMismatch);
        }
        match self.replay.check(proof.replay_key(), proof.replayable_until, now) {
            Verdict::Fresh => Ok(proof),
            Verdict::Replayed => Err(Refusal::Proof(DpopError::Replayed)),
            // SECURITY: fail closed; letting it through unrecorded would let it be replayed.
            Verdict::Full => Err(Refusal::ReplayCacheFull),
        }
    }

    /// The replay cache, for the configuration that replaces this one.
    pub fn replay(&self) -> &Arc<ReplayCache> {
        &self.replay
    }

    /// A fresh nonce for a `use_dpop_nonce` answer, when nonces are required.
    pub fn nonce(&self, now: u64) -> Option<String> {
        self.nonces.as_ref().map(|nonces| nonces.issue(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use http::HeaderValue;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    use serde_json::json;

    const NOW: u64 = 1_750_000_000;
    const TOKEN: &[u8] = b"token.for.the.test";

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn possession(more: &[&str]) -> Possession {
        let mut args = vec!["--resource", "https://mcp.example/mcp", "--auth-server", "https://as.example"];
        args.extend(more);
        let settings = Settings::load(args.into_iter().map(String::from), |_| None).unwrap();
        Possession::new(&Config::from_settings(&settings).unwrap(), None).expect("dpop is on")
    }

    fn key(seed: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
    }

    /// The `cnf.jkt` of a key: RFC 7638 over its required members in order.
    fn jkt(key: &Ed25519KeyPair) -> String {
        let jwk = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(key.public_key().as_ref()));
        b64(ring::digest::digest(&ring::digest::SHA256, jwk.as_bytes()).as_ref())
    }

    fn proof(key: &Ed25519KeyPair, jti: &str, nonce: Option<&str>) -> HeaderValue {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().as_ref())});
        let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk});
        let ath = b64(ring::digest::digest(&ring::digest::SHA256, TOKEN).as_ref());
        let mut claims = json!({"jti": jti, "htm": "POST", "htu": "https://mcp.example/mcp", "iat": NOW, "ath": ath});
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let signed = format!("{input}.{}", b64(key.sign(input.as_bytes()).as_ref()));
        HeaderValue::try_from(signed).unwrap()
    }

    fn check(p: &Possession, proofs: &[HeaderValue], path: &str, jkt: Option<&str>) -> Result<Proof, Refusal> {
        let mut headers = HeaderMap::new();
        for proof in proofs {
            headers.append(DPOP, proof.clone());
        }
        p.check(Request { headers: &headers, method: "POST", path, token: TOKEN, jkt }, NOW)
    }

    #[test]
    fn a_proof_of_the_bound_key_passes_once() {
        let p = possession(&["--dpop", "allow"]);
        let (k, jkt) = (key(1), jkt(&key(1)));
        let accepted = check(&p, &[proof(&k, "a", None)], "/mcp?x=1", Some(&jkt)).unwrap();
        assert_eq!(accepted.jkt_base64(), jkt);
        assert_eq!(check(&p, &[proof(&k, "a", None)], "/mcp", Some(&jkt)), Err(Refusal::Proof(DpopError::Replayed)));
        assert!(check(&p, &[proof(&k, "b", None)], "/mcp", Some(&jkt)).is_ok());
    }

    #[test]
    fn each_refusal_in_its_order() {
        let p = possession(&["--dpop", "require"]);
        let (k, jkt) = (key(1), jkt(&key(1)));
        let no_header = Refusal::Proof(DpopError::Malformed("no DPoP header"));
        assert_eq!(check(&p, &[], "/mcp", Some(&jkt)), Err(no_header));
        let two = [proof(&k, "a", None), proof(&k, "b", None)];
        let repeated = Refusal::Proof(DpopError::Malformed("more than one DPoP header"));
        assert_eq!(check(&p, &two, "/mcp", Some(&jkt)), Err(repeated));
        let other = Err(Refusal::Proof(DpopError::WrongUri));
        assert_eq!(check(&p, &[proof(&k, "c", None)], "/other", Some(&jkt)), other);
        assert_eq!(check(&p, &[proof(&k, "d", None)], "/mcp", None), Err(Refusal::NotBound));
        let foreign = jkt_of_another();
        assert_eq!(check(&p, &[proof(&k, "e", None)], "/mcp", Some(&foreign)), Err(Refusal::KeyMismatch));
        // None of the refused proofs was recorded: each passes once it is whole.
        for jti in ["a", "c", "d", "e"] {
            assert!(check(&p, &[proof(&k, jti, None)], "/mcp", Some(&jkt)).is_ok(), "{jti}");
        }
        assert_eq!(Refusal::KeyMismatch.code(), ErrorCode::InvalidDpopProof);
    }

    fn jkt_of_another() -> String {
        jkt(&key(2))
    }

    #[test]
    fn with_a_nonce_key_proofs_need_a_current_nonce() {
        let secret = "n".repeat(32);
        let p = possession(&["--dpop", "allow", "--dpop-nonce-key", &secret]);
        let (k, jkt) = (key(1), jkt(&key(1)));
        let missing = check(&p, &[proof(&k, "a", None)], "/mcp", Some(&jkt)).unwrap_err();
        assert_eq!((missing.code(), &missing), (ErrorCode::UseDpopNonce, &Refusal::Proof(DpopError::NonceMissing)));
        let nonce = p.nonce(NOW).expect("nonces are on");
        assert!(check(&p, &[proof(&k, "a", Some(&nonce))], "/mcp", Some(&jkt)).is_ok());
        let stale = check(&p, &[proof(&k, "b", Some("x"))], "/mcp", Some(&jkt)).unwrap_err();
        assert_eq!(stale.code(), ErrorCode::UseDpopNonce);
        assert_eq!(possession(&["--dpop", "allow"]).nonce(NOW), None);
    }
}
