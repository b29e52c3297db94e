//! Real signed tokens for the jwt-mode tests: signing keys generated in the test (Ed25519 and
//! P-256 with ring per test; RSA with the `rsa` crate, once per test binary because a 2048-bit
//! key takes seconds in a debug build) and an authorization server stand-in that publishes
//! them as its JWKS.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};

use super::{Canned, Upstream, AS_PATH, RESOURCE};

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// The test RSA key: ring signs with it, the `rsa` crate gives its public forms.
pub struct Rsa {
    pub pair: RsaKeyPair,
    pub public: rsa::RsaPublicKey,
}

/// The RSA key of this test binary, made on first use.
pub fn rsa_key() -> &'static Rsa {
    static KEY: OnceLock<Rsa> = OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs8::EncodePrivateKey;
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key generation");
        let der = private.to_pkcs8_der().expect("RSA PKCS#8");
        let pair = RsaKeyPair::from_pkcs8(der.as_bytes()).expect("ring reads the RSA key");
        Rsa { pair, public: private.to_public_key() }
    })
}

enum Material {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
    Rsa(&'static Rsa),
}

/// A signing key with its `kid`.
pub struct Signer {
    pub kid: String,
    material: Material,
}

impl Signer {
    pub fn ed25519(kid: &str) -> Signer {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("an Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("the key reads back");
        Signer { kid: kid.to_string(), material: Material::Ed25519(pair) }
    }

    pub fn p256(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("the key reads back");
        Signer { kid: kid.to_string(), material: Material::P256(pair) }
    }

    /// The binary's RSA key (see [`rsa_key`]) under this `kid`.
    pub fn rsa(kid: &str) -> Signer {
        Signer { kid: kid.to_string(), material: Material::Rsa(rsa_key()) }
    }

    /// The algorithm [`Signer::sign`] uses.
    pub fn alg(&self) -> &'static str {
        match self.material {
            Material::Ed25519(_) => "EdDSA",
            Material::P256(_) => "ES256",
            Material::Rsa(_) => "RS256",
        }
    }

    /// The public key as a JWK (no `alg`, so an RSA key serves RS256 and PS256 alike).
    pub fn jwk(&self) -> Value {
        match &self.material {
            Material::Ed25519(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key()), "kid": self.kid, "use": "sig"})
            }
            Material::P256(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]),
                       "kid": self.kid, "use": "sig"})
            }
            Material::Rsa(key) => {
                use rsa::traits::PublicKeyParts;
                let (n, e) = (key.public.n().to_bytes_be(), key.public.e().to_bytes_be());
                json!({"kty": "RSA", "n": b64(n), "e": b64(e), "kid": self.kid, "use": "sig"})
            }
        }
    }

    /// A token with the usual header (`alg`, `typ: at+jwt`, `kid`).
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(&json!({"alg": self.alg(), "typ": "at+jwt", "kid": self.kid}), claims)
    }

    /// A token with this header, signed with this key as the header's `alg` says (RS256 or
    /// PS256 for the RSA key).
    pub fn sign_with(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }

    /// A token over these exact JSON texts (which a `Value` could not hold, such as a name
    /// given twice), signed as the header's `alg` says.
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let alg = serde_json::from_str::<Value>(header).ok().and_then(|h| h["alg"].as_str().map(str::to_string));
        let input = format!("{}.{}", b64(header), b64(claims));
        let rng = SystemRandom::new();
        let signature = match &self.material {
            Material::Ed25519(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
            Material::P256(pair) => pair.sign(&rng, input.as_bytes()).expect("ECDSA signing").as_ref().to_vec(),
            Material::Rsa(key) => {
                let padding: &dyn signature::RsaEncoding = match alg.as_deref() {
                    Some("PS256") => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; key.pair.public().modulus_len()];
                key.pair.sign(padding, &rng, input.as_bytes(), &mut sig).expect("RSA signing");
                sig
            }
        };
        format!("{input}.{}", b64(signature))
    }
}

/// A token whose signature part is `signature` as given, whatever the header says.
pub fn with_signature(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(header.to_string()), b64(claims.to_string()))
}

/// An HS256 token keyed with `secret`.
pub fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", b64(tag))
}

pub fn jwks(signers: &[&Signer]) -> Vec<u8> {
    json!({"keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>()}).to_string().into_bytes()
}

/// Claims the edge accepts for [`RESOURCE`] from `issuer`, for ten minutes.
pub fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer, "aud": RESOURCE, "sub": "user-1", "scope": "mcp:tools mcp:read",
        "exp": now() + 600, "iat": now(), "client_id": "app",
    })
}

/// An authorization server stand-in whose metadata names a `jwks_uri` (`/jwks`) publishing
/// `keys`.
pub async fn auth_server(keys: &[&Signer]) -> Upstream {
    let server = Upstream::start().await;
    let issuer = server.issuer();
    let metadata = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
    });
    server.set(AS_PATH, Canned::ok(metadata.to_string().into_bytes()));
    server.set("/jwks", Canned::ok(jwks(keys)));
    server
}
