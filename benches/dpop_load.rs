//! The `dpop` kind of `benches/callgrind.sh`: forwarded requests with a DPoP-bound JWT and a
//! fresh proof each. h2load repeats one request, and a proof may be used once, so the requests
//! are made ahead by `hyper-floor dpop-requests` and sent by `hyper-floor dpop-send`.
//!
//! - `dpop-requests DIR ISSUER RESOURCE COUNT` writes `DIR/jwks.json` (the public half of the
//!   bench's signing key, for the edge to fetch), and `DIR/requests` (COUNT raw HTTP/1.1 `POST`s
//!   to RESOURCE, each with the same token and a proof of its own: its own `jti`, `iat` = now).
//!   The token is an EdDSA `at+jwt` from ISSUER for RESOURCE, valid for an hour, bound by
//!   `cnf.jkt` to a P-256 key made for the run; the proofs are ES256, as most clients make them.
//!   Each `iat` is the moment of generation, so the requests must reach the edge within its
//!   `--dpop-iat-window` (300 s by default): the script makes them just before it sends them.
//! - `dpop-send ADDR FILE COUNT` sends the first COUNT requests of FILE over one keep-alive
//!   connection, one at a time, and fails unless each is answered 200.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// The bench's token signing key (Ed25519, a fixed seed so every run signs the same token
/// bytes for the same moment). Not a secret: it signs tokens for a loopback bench only.
const SIGNING_SEED: [u8; 32] = *b"mcp-auth-edge bench signing seed";
const KID: &str = "bench-dpop-1";
/// The JSON-RPC call each request carries, the same as the `fwd` kind's.
const BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn io_error(what: &str) -> io::Error {
    io::Error::other(what.to_string())
}

/// Writes the JWKS and COUNT requests into `dir`.
pub fn generate(dir: &Path, issuer: &str, resource: &str, count: usize) -> io::Result<()> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| io_error("clock before 1970"))?.as_secs();
    let signer = Ed25519KeyPair::from_seed_unchecked(&SIGNING_SEED).map_err(|_| io_error("the bench seed"))?;
    let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": KID, "use": "sig", "alg": "EdDSA",
        "x": b64(signer.public_key().as_ref())}]});
    std::fs::write(dir.join("jwks.json"), jwks.to_string())?;

    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| io_error("P-256 key"))?;
    let client = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| io_error("P-256 key"))?;
    let point = client.public_key().as_ref();
    let (x, y) = (b64(&point[1..33]), b64(&point[33..]));
    // RFC 7638: the required members, in lexicographic order, no spaces.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let jkt = b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref());

    let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": KID});
    let claims = serde_json::json!({"iss": issuer, "aud": resource, "sub": "bench-client", "client_id": "bench-client",
        "scope": "mcp:tools mcp:resources", "iat": now, "exp": now + 3600, "cnf": {"jkt": jkt}});
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let token = format!("{input}.{}", b64(signer.sign(input.as_bytes()).as_ref()));
    let ath = b64(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());

    let (authority, path) = split_url(resource).ok_or_else(|| io_error("RESOURCE must be http://host:port/path"))?;
    let proof_header =
        serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256", "x": x, "y": y}});
    let proof_header = b64(proof_header.to_string().as_bytes());
    let mut out = Vec::with_capacity(count * 1400);
    for i in 0..count {
        // A jti of the same length for every request, so that no request is dearer than another.
        let jti = format!("bench-{i:012}");
        let claims = serde_json::json!({"jti": jti, "htm": "POST", "htu": resource, "iat": now, "ath": ath});
        let input = format!("{proof_header}.{}", b64(claims.to_string().as_bytes()));
        let signature = client.sign(&rng, input.as_bytes()).map_err(|_| io_error("ECDSA signing"))?;
        write!(
            out,
            "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
             authorization: DPoP {token}\r\ndpop: {input}.{}\r\ncontent-length: {}\r\n\r\n{BODY}",
            b64(signature.as_ref()),
            BODY.len()
        )?;
    }
    std::fs::write(dir.join("requests"), out)
}

/// `http://authority/path` into its authority and path.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://")?;
    let slash = rest.find('/')?;
    Some((&rest[..slash], &rest[slash..]))
}

/// Sends the first `count` requests of `file` to `addr` over one connection, each answered
/// before the next is sent; an error unless every answer is 200.
pub fn send(addr: &str, file: &Path, count: usize) -> io::Result<()> {
    let requests = std::fs::read(file)?;
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut rest = &requests[..];
    let mut line = String::new();
    for i in 0..count {
        let length = request_length(rest)
            .ok_or_else(|| io_error(&format!("{} holds fewer than {count} requests", file.display())))?;
        writer.write_all(&rest[..length])?;
        rest = &rest[length..];
        // The answer: a status line, fields up to an empty line, a body of Content-Length.
        line.clear();
        reader.read_line(&mut line)?;
        if !line.starts_with("HTTP/1.1 200 ") {
            return Err(io_error(&format!("request {i}: {}", line.trim_end())));
        }
        let mut body = None;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Err(io_error("the connection closed mid-answer"));
            }
            let field = line.trim_end();
            if field.is_empty() {
                break;
            }
            if let Some((name, value)) = field.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    body = value.trim().parse::<u64>().ok();
                }
            }
        }
        let body = body.ok_or_else(|| io_error("an answer without Content-Length"))?;
        io::copy(&mut (&mut reader).take(body), &mut io::sink())?;
    }
    Ok(())
}

/// The length of the first request in `bytes` (its head and its Content-Length body).
fn request_length(bytes: &[u8]) -> Option<usize> {
    let head = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = std::str::from_utf8(&bytes[..head]).ok()?;
    let body = text.lines().find_map(|l| l.strip_prefix("content-length: "))?.trim().parse::<usize>().ok()?;
    (head + body <= bytes.len()).then_some(head + body)
}
