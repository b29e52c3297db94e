//! criterion benches for the pieces of the request path, with adversarial inputs, JWT access
//! token checks (a signature verified, and a verdict from the token cache), DPoP proof checks
//! (ES256 and EdDSA), and a full request over loopback beside the bare hyper floor
//! (`benches/floor_service.rs`).
//!
//! `cargo bench --bench edge` (add `-- NAME` to run a subset). Measurement times are short so
//! that the whole run takes a few minutes; compare figures within one run.

#[path = "floor_service.rs"]
mod floor_service;

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{Method, Request};
use mcp_auth_edge::app::service::{self as respond, Decision};
use mcp_auth_edge::app::{Live, State};
use mcp_auth_edge::common::conditional;
use mcp_auth_edge::common::route::{self, Paths};
use mcp_auth_edge::config::Config;
use mcp_auth_edge::config::Settings;
use mcp_auth_edge::discovery::metadata;
use mcp_auth_edge::gate::credential::{bearer, Credential};
use mcp_auth_edge::gate::{dpop, jwt, tokens as token};
use mcp_auth_edge::shutdown::channel as shutdown_channel;

const ISSUER: &str = "https://auth.example.com/tenant1";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const AS_PATH: &str = "/.well-known/oauth-authorization-server/tenant1";

/// The load benchmark's ~1.3 KB authorization server metadata, issued by [`ISSUER`].
fn document() -> Bytes {
    Bytes::from(include_str!("fixtures/as-metadata.json.in").replace("@ISSUER@", ISSUER))
}

fn config() -> Config {
    let args = ["--resource", RESOURCE, "--auth-server", ISSUER, "--scope", "mcp:tools", "--resource-name", "Example"];
    let settings = Settings::load(args.map(String::from), |_| None).expect("the bench's flags are valid");
    Config::from_settings(&settings).expect("the bench's configuration is valid")
}

/// The edge's state with the document in service, as after the first good fetch.
fn state() -> State {
    let state = State::new(&config());
    state.resources[0].snapshots.offer(document());
    state
}

fn classify(c: &mut Criterion) {
    // An issuer with a path gives the longest list of paths: five for the authorization server.
    let paths = Paths::new("/tenant1", "/mcp");
    let long_miss = format!("/{}", "a".repeat(64 * 1024));
    let long_prefixed = format!("/.well-known/oauth-authorization-server/{}", "tenant1".repeat(8 * 1024));
    let cases: [(&str, &Method, &str); 9] = [
        ("resource", &Method::GET, "/.well-known/oauth-protected-resource/mcp"),
        ("auth_server_last_form", &Method::GET, "/tenant1/.well-known/openid-configuration"),
        ("preflight", &Method::OPTIONS, AS_PATH),
        ("mcp_endpoint_not_found", &Method::POST, "/mcp"),
        ("near_miss_short_by_one", &Method::GET, "/.well-known/oauth-authorization-server/tenant"),
        ("near_miss_one_extra", &Method::GET, "/.well-known/oauth-authorization-server/tenant1/"),
        ("near_miss_case", &Method::GET, "/.well-known/oauth-authorization-server/Tenant1"),
        ("long_64k_miss", &Method::GET, &long_miss),
        ("long_56k_shared_prefix", &Method::GET, &long_prefixed),
    ];
    let mut group = c.benchmark_group("classify");
    for (name, method, path) in cases {
        group.bench_function(name, |b| b.iter(|| route::classify(&paths, black_box(method), black_box(path))));
    }
    group.finish();
}

fn if_none_match(c: &mut Criterion) {
    let state = state();
    let etag = state.resources[0].snapshots.auth_server().as_ref().expect("offered above").etag.clone();
    let matching = format!("W/\"other\", {}", etag.to_str().expect("ASCII"));
    // Tens of kilobytes of near misses (same length, last character differs), then the match.
    let near = format!("{}x\"", &etag.to_str().expect("ASCII")[..etag.len() - 2]);
    let mut long_list = vec![near.as_str(); 2000].join(", ");
    let long_miss = long_list.clone();
    long_list.push_str(", ");
    long_list.push_str(etag.to_str().expect("ASCII"));
    let unterminated = format!("\"{}", "x".repeat(16 * 1024));
    let cases: [(&str, &[u8]); 6] = [
        ("match", etag.as_bytes()),
        ("match_second_weak", matching.as_bytes()),
        ("miss", b"\"0-0000000000000000\""),
        ("long_list_miss", long_miss.as_bytes()),
        ("long_list_match_last", long_list.as_bytes()),
        ("unterminated_16k", unterminated.as_bytes()),
    ];
    let mut group = c.benchmark_group("if_none_match");
    for (name, field) in cases {
        group.bench_function(name, |b| {
            b.iter(|| conditional::if_none_match(black_box(field), black_box(etag.as_bytes())))
        });
    }
    group.finish();
}

fn validate(c: &mut Criterion) {
    let doc = document();
    metadata::validate(&doc, ISSUER).expect("the fixture is a valid document");
    let mut group = c.benchmark_group("metadata");
    group.throughput(Throughput::Bytes(doc.len() as u64));
    group.bench_function("validate", |b| b.iter(|| metadata::validate(black_box(&doc), black_box(ISSUER))));
    group.finish();
}

fn respond(c: &mut Criterion) {
    let state = state();
    let etag = state.resources[0].snapshots.auth_server().as_ref().expect("offered above").etag.clone();
    let request = |method: Method, headers: &[(&str, &str)]| {
        let mut r = Request::builder().method(method).uri(AS_PATH);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).expect("valid request parts")
    };
    let etag_text = etag.to_str().expect("ASCII");
    let cases = [
        ("get_200", request(Method::GET, &[("accept", "application/json")]), 200),
        ("get_304", request(Method::GET, &[("if-none-match", etag_text)]), 304),
        ("head_200", request(Method::HEAD, &[]), 200),
        (
            "preflight_204",
            request(
                Method::OPTIONS,
                &[("origin", "https://app.example"), ("access-control-request-headers", "mcp-protocol-version")],
            ),
            204,
        ),
    ];
    let mut group = c.benchmark_group("respond");
    for (name, request, status) in &cases {
        let answered = match respond::dispatch(&state, request) {
            Decision::Answered(response, _) => response.status(),
            Decision::Forward { .. } => panic!("{name}: no upstream is configured, nothing is forwarded"),
        };
        assert_eq!(answered, *status, "{name}");
        group.bench_function(*name, |b| b.iter(|| respond::dispatch(black_box(&state), black_box(request))));
    }
    // The floor builds the same 200 the plain hyper way.
    let body = document();
    group.bench_function("floor_get_200", |b| b.iter(|| floor_service::response(black_box(&body), black_box(&etag))));
    group.finish();
}

/// One signing key per algorithm the edge accepts, made once (2048-bit RSA generation takes
/// a while), and the JWKS that publishes them.
struct Signers {
    rsa: ring::signature::RsaKeyPair,
    ec: ring::signature::EcdsaKeyPair,
    ed: ring::signature::Ed25519KeyPair,
    jwks: String,
}

const ALGORITHMS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Signers {
    fn new() -> Signers {
        use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents};
        use rsa::pkcs8::EncodePrivateKey;
        let rng = ring::rand::SystemRandom::new();
        let rsa_der = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .expect("RSA key generation")
            .to_pkcs8_der()
            .expect("RSA PKCS#8");
        let rsa = RsaKeyPair::from_pkcs8(rsa_der.as_bytes()).expect("ring reads the RSA key");
        let ec_der =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("P-256 key");
        let ec = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, ec_der.as_ref(), &rng)
            .expect("ring reads the P-256 key");
        let ed_der = Ed25519KeyPair::generate_pkcs8(&rng).expect("Ed25519 key");
        let ed = Ed25519KeyPair::from_pkcs8(ed_der.as_ref()).expect("ring reads the Ed25519 key");
        let public: RsaPublicKeyComponents<Vec<u8>> = rsa.public().into();
        let point = ec.public_key().as_ref();
        // Pinned algorithms and use, as real authorization servers publish them.
        let jwks = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "RS256", "use": "sig", "alg": "RS256", "n": b64(&public.n), "e": b64(&public.e)},
            {"kty": "RSA", "kid": "PS256", "use": "sig", "alg": "PS256", "n": b64(&public.n), "e": b64(&public.e)},
            {"kty": "EC", "kid": "ES256", "use": "sig", "alg": "ES256", "crv": "P-256",
             "x": b64(&point[1..33]), "y": b64(&point[33..])},
            {"kty": "OKP", "kid": "EdDSA", "use": "sig", "alg": "EdDSA", "crv": "Ed25519", "x": b64(ed.public_key().as_ref())},
        ]});
        Signers { rsa, ec, ed, jwks: jwks.to_string() }
    }

    /// A compact JWS access token signed with `alg` (the key's `kid` is the algorithm name).
    fn token(&self, alg: &str, claims: &serde_json::Value) -> String {
        use ring::signature;
        let rng = ring::rand::SystemRandom::new();
        let header = serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": alg});
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let sig = match alg {
            "RS256" | "PS256" => {
                let padding: &dyn signature::RsaEncoding =
                    if alg == "RS256" { &signature::RSA_PKCS1_SHA256 } else { &signature::RSA_PSS_SHA256 };
                let mut sig = vec![0; self.rsa.public().modulus_len()];
                self.rsa.sign(padding, &rng, input.as_bytes(), &mut sig).expect("RSA signing");
                sig
            }
            "ES256" => self.ec.sign(&rng, input.as_bytes()).expect("ECDSA signing").as_ref().to_vec(),
            _ => self.ed.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs()
}

/// RFC 9068 claims of a typical access token for the bench's resource, valid for an hour.
fn claims(issuer: &str, audience: &str) -> serde_json::Value {
    let now = unix_now();
    serde_json::json!({
        "iss": issuer, "aud": audience, "sub": "user-8f3a2c", "client_id": "mcp-client-7",
        "scope": "mcp:tools mcp:resources", "iat": now, "exp": now + 3600, "jti": "b1f0d7c4-3e2a-4f59-9a61-2c8e5d7f0a13",
    })
}

/// `jwt::verify` of a token never seen before: the signature check and the claims, what a
/// cache miss costs.
fn jwt_verify(c: &mut Criterion, signers: &Signers) {
    let keys = jwt::JwkSet::parse(signers.jwks.as_bytes()).expect("the bench's JWKS parses");
    let expect = jwt::Expectations {
        issuer: ISSUER.into(),
        audiences: vec![RESOURCE.into()],
        leeway_secs: jwt::DEFAULT_LEEWAY_SECS,
        typ: jwt::JwtTyp::Lenient,
    };
    let claims = claims(ISSUER, RESOURCE);
    let mut group = c.benchmark_group("jwt_verify");
    for alg in ALGORITHMS {
        let token = signers.token(alg, &claims);
        let now = unix_now();
        jwt::verify(&token, &keys, &expect, now).unwrap_or_else(|e| panic!("{alg}: {e}"));
        group.bench_function(alg, |b| b.iter(|| jwt::verify(black_box(&token), &keys, &expect, now)));
    }
    group.finish();
}

/// `token::TokenChecker::check` of a token it has already accepted, the forwarding path's cost
/// once a client's token is known: the cache lookup, keyed by the whole token, and the scope
/// check. The JWKS is fetched the way the edge does, from a loopback server.
fn jwt_cached(c: &mut Criterion, signers: &Signers) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let settings = Settings::load(
        ["--resource", RESOURCE, "--auth-server", ISSUER, "--upstream", "http://127.0.0.1:9"].map(String::from),
        |_| None,
    )
    .expect("the bench's flags are valid");
    let config = Config::from_settings(&settings).expect("the bench's configuration is valid");
    let checker = token::TokenChecker::new(&config).expect("jwt mode is the default");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let jwks_uri = format!("http://{}/jwks", listener.local_addr().expect("a bound address"));
        // The floor serves its one body at any path: here, the JWKS.
        tokio::spawn(floor_service::serve(listener, Bytes::from(signers.jwks.clone())));
        let offered = token::Offered { jwks_uri: Some(&jwks_uri), introspection_endpoint: None };
        checker.refresh(offered).await.expect("the JWKS loads");
    });
    let claims = claims(&config.issuer.url, &config.resource.url);
    let mut group = c.benchmark_group("jwt_cached");
    // The token length matters: a hit compares the whole token. An EdDSA token like the
    // demo's is about 400 characters, an RS256 one about 650.
    for alg in ["EdDSA", "RS256"] {
        let token = signers.token(alg, &claims);
        runtime.block_on(checker.check(token.as_bytes())).unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        let name = format!("{alg}_{}_chars", token.len());
        group.bench_function(name, |b| {
            b.iter(|| ready(checker.check(black_box(token.as_bytes()))).expect("a cached token passes"))
        });
    }
    group.finish();
}

/// Polls a future that must complete without waiting (a cache hit never does I/O), without
/// the cost of a runtime.
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("a cached check waited"),
    }
}

/// `gate::bearer`, the `Authorization` header's form check, which the forwarding path runs on
/// every request before the cache is consulted: linear in the token's length.
fn jwt_bearer(c: &mut Criterion, signers: &Signers) {
    let claims = claims(ISSUER, RESOURCE);
    let mut group = c.benchmark_group("jwt_bearer_header");
    for alg in ["EdDSA", "RS256"] {
        let header = format!("Bearer {}", signers.token(alg, &claims));
        assert!(matches!(bearer(header.as_bytes()), Credential::Bearer(_)));
        let name = format!("{alg}_{}_bytes", header.len());
        group.bench_function(name, |b| b.iter(|| bearer(black_box(header.as_bytes()))));
    }
    group.finish();
}

/// A DPoP proof for a POST to the bench's resource with `token`, signed with the `alg` key and
/// carrying its public JWK, as a client library makes one per request.
fn dpop_proof(signers: &Signers, alg: &str, token: &str, now: u64) -> String {
    use ring::signature::KeyPair;
    let rng = ring::rand::SystemRandom::new();
    let jwk = match alg {
        "ES256" => {
            let point = signers.ec.public_key().as_ref();
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
        }
        _ => serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(signers.ed.public_key().as_ref())}),
    };
    let header = serde_json::json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
    let ath = b64(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    let claims = serde_json::json!({"jti": "f1c2a9e0-6b3d-4e57-8a21-93c0d4b5e6f7", "htm": "POST", "htu": RESOURCE,
        "iat": now, "ath": ath});
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let sig = match alg {
        "ES256" => signers.ec.sign(&rng, input.as_bytes()).expect("ECDSA signing").as_ref().to_vec(),
        _ => signers.ed.sign(input.as_bytes()).as_ref().to_vec(),
    };
    format!("{input}.{}", b64(&sig))
}

/// `dpop::check_proof`, run on every DPoP request (a proof is unique per request, so no cache
/// serves it): parsing, the thumbprint, the signature and the claims, `ath` included. The
/// adversarial cases: a bad signature (all the work, then refused) and an oversized header.
fn dpop_check(c: &mut Criterion, signers: &Signers) {
    let now = unix_now();
    let token = signers.token("ES256", &claims(ISSUER, RESOURCE));
    let htu = dpop::htu("https://mcp.example.com", "/mcp").expect("the bench's resource is an htu");
    let expect = dpop::Expect {
        method: "POST",
        htu: &htu,
        access_token: Some(token.as_bytes()),
        window_secs: dpop::DEFAULT_WINDOW_SECS,
        algs: &dpop::SUPPORTED_ALGS,
        nonces: None,
    };
    let mut group = c.benchmark_group("dpop_check_proof");
    for alg in ["ES256", "EdDSA"] {
        let proof = dpop_proof(signers, alg, &token, now);
        dpop::check_proof(proof.as_bytes(), &expect, now).unwrap_or_else(|e| panic!("{alg}: {e}"));
        group.bench_function(alg, |b| b.iter(|| dpop::check_proof(black_box(proof.as_bytes()), &expect, now)));
    }
    let good = dpop_proof(signers, "ES256", &token, now);
    let (input, _) = good.rsplit_once('.').expect("three parts");
    let forged = format!("{input}.{}", b64(&[7; 64]));
    assert_eq!(dpop::check_proof(forged.as_bytes(), &expect, now), Err(dpop::DpopError::BadSignature));
    group.bench_function("ES256_bad_signature", |b| {
        b.iter(|| dpop::check_proof(black_box(forged.as_bytes()), &expect, now))
    });
    let oversized = "A".repeat(dpop::MAX_PROOF_LEN * 8);
    group.bench_function("oversized_64KiB", |b| {
        b.iter(|| dpop::check_proof(black_box(oversized.as_bytes()), &expect, now))
    });
    group.finish();
}

fn jwt(c: &mut Criterion) {
    let signers = Signers::new();
    jwt_verify(c, &signers);
    jwt_cached(c, &signers);
    jwt_bearer(c, &signers);
    dpop_check(c, &signers);
}

/// A server on its own thread and current_thread runtime, stopped when dropped.
struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn edge() -> Server {
        Server::start(|listener, stop| async move {
            let (trigger, shutdown) = shutdown_channel();
            let state = Arc::new(state());
            let limits = mcp_auth_edge::config::Limits::default();
            let server = tokio::spawn(async move {
                mcp_auth_edge::app::serve(
                    listener,
                    Arc::new(Live::new(state)),
                    &limits,
                    None,
                    shutdown,
                    Duration::from_secs(1),
                )
                .await
            });
            let _ = stop.await;
            trigger.fire();
            let _ = server.await;
        })
    }

    fn floor() -> Server {
        Server::start(|listener, stop| async move {
            tokio::select! {
                _ = floor_service::serve(listener, document()) => {}
                _ = stop => {}
            }
        })
    }

    fn start<F, Fut>(serve: F) -> Server
    where
        F: FnOnce(tokio::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                serve(listener, stopped).await;
            });
        });
        Server { addr, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A keep-alive HTTP/1.1 client on a raw socket that reads each response whole.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the bench server");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
        Client { stream, buf: Vec::with_capacity(4096) }
    }

    /// Sends `request` and returns the length of the response body.
    fn round_trip(&mut self, request: &[u8]) -> usize {
        self.stream.write_all(request).expect("send the request");
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut chunk).expect("read the response");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let length = content_length(&self.buf[..end]);
                if self.buf.len() >= end + 4 + length {
                    assert!(self.buf.starts_with(b"HTTP/1.1 200 "), "status 200");
                    return length;
                }
            }
        }
    }
}

fn content_length(head: &[u8]) -> usize {
    let head = std::str::from_utf8(head).expect("ASCII response head");
    head.split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok()).flatten()
        })
        .expect("a content-length header")
}

fn loopback(c: &mut Criterion) {
    let request = format!(
        "GET {AS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nMCP-Protocol-Version: 2025-06-18\r\n\r\n"
    );
    let expected = document().len();
    let mut group = c.benchmark_group("loopback_keepalive_get");
    for (name, server) in [("edge", Server::edge()), ("floor", Server::floor())] {
        let mut client = Client::connect(server.addr);
        assert_eq!(client.round_trip(request.as_bytes()), expected, "{name} serves the document");
        group.bench_function(name, |b| b.iter(|| client.round_trip(black_box(request.as_bytes()))));
        drop(client);
        drop(server);
    }
    group.finish();
}

/// A ~1 KiB `tools/call` as the 2026-07-28 SDKs send it: `_meta` with the per-request protocol
/// fields, a few arguments.
fn tools_call_body() -> Vec<u8> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": {
        "name": "search_issues",
        "arguments": {"query": "label:bug state:open sort:updated-desc", "repository": "example/service",
            "limit": 50, "include_closed": false, "fields": ["title", "labels", "assignees", "updated_at"],
            "context": "The user asked for the open bugs touched this week, newest first, to plan the triage."},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "progressToken": "p-42",
            "io.modelcontextprotocol/clientInfo": {"name": "ExampleClient", "version": "2.4.0"},
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}, "sampling": {},
                "roots": {"listChanged": true}, "extensions": {"io.modelcontextprotocol/ui":
                    {"mimeTypes": ["text/html;profile=mcp-app"]}}},
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"}}});
    let mut bytes = serde_json::to_vec_pretty(&body).expect("serialisable");
    bytes.resize(bytes.len().max(1024), b' ');
    bytes
}

/// The MCP operation extractor on a real body and on hostile ones, and the policy's decision
/// over 20 rules (the deciding rule last, a scope shortfall, a default).
fn mcp(c: &mut Criterion) {
    use mcp_auth_edge::config::policy::Policy;
    use mcp_auth_edge::mcp::agreement::{Agreement, Expected};
    use mcp_auth_edge::mcp::decide::{decide, Verdict};
    use mcp_auth_edge::mcp::{headers, jsonrpc, Call};

    let body = tools_call_body();
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","arguments":{}{}}}}}"#,
        "[".repeat(64 * 1024),
        "]".repeat(64 * 1024)
    );
    let many_keys: String = (0..4096).map(|i| format!(r#""k{i}":{i},"#)).collect();
    let many_keys = format!(r#"{{"jsonrpc":"2.0","method":"ping","params":{{{many_keys}"k0":0}}}}"#);
    let batch = format!(
        "[{}]",
        vec![r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#; 1000].join(",")
    );
    let cases: [(&str, &[u8]); 4] = [
        ("tools_call_1k", &body),
        ("deep_arguments_128k", deep.as_bytes()),
        ("duplicate_after_4096_keys", many_keys.as_bytes()),
        ("batch_1000", batch.as_bytes()),
    ];
    let mut group = c.benchmark_group("mcp_extract");
    for (name, bytes) in cases {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| b.iter(|| jsonrpc::extract(black_box(bytes)).map(|b| b.messages().len())));
    }
    // The same body read by serde alone: what the one-pass reader saves.
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("tools_call_1k_by_serde", |b| {
        b.iter(|| jsonrpc::extract_by_serde(black_box(&body)).map(|b| b.messages().len()))
    });
    group.finish();

    let extracted = jsonrpc::extract(&body).expect("the body is a tools/call");
    let operation = extracted.messages()[0].operation().expect("a request");
    let mirrored = headers::mirror(operation).expect("a 2026-07-28 request");
    let mut group = c.benchmark_group("mcp_headers");
    group.bench_function("read_and_agree", |b| {
        b.iter(|| match headers::read(black_box(&mirrored)) {
            Ok(headers::Source::Headers(announced)) => headers::agree(&announced, black_box(&extracted)).is_ok(),
            _ => false,
        })
    });
    group.finish();

    // The streaming check on the same bodies, fed whole and in 1 KiB pieces as they arrive.
    let Ok(headers::Source::Headers(announced)) = headers::read(&mirrored) else { panic!("from headers") };
    let mut group = c.benchmark_group("mcp_agreement");
    for (name, bytes, piece) in [
        ("tools_call_1k_whole", &body[..], body.len()),
        ("tools_call_1k_pieces", &body[..], 1024),
        ("deep_arguments_128k_pieces", deep.as_bytes(), 1024),
    ] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut agreement = Agreement::new(Expected::new(&announced));
                let fed = black_box(bytes).chunks(piece).try_for_each(|p| agreement.feed(p));
                fed.and_then(|()| agreement.finish())
            })
        });
    }
    // A body that arrives whole in one piece, as the edge checks it (one pass, no byte machine).
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("tools_call_1k_checked_whole", |b| {
        b.iter(|| Agreement::new(Expected::new(&announced)).whole(black_box(&body)))
    });
    group.finish();

    let mut rules: Vec<serde_json::Value> = (0..19)
        .map(|i| serde_json::json!({"method": "tools/call", "name": format!("tool_{i}_*"), "scopes": [format!("mcp:t{i}")]}))
        .collect();
    rules.push(serde_json::json!({"method": "tools/call", "name": "search_*", "scopes": ["mcp:read"],
        "claims": [{"claim": "groups", "contains": "dev"}]}));
    let policy = serde_json::json!({"default": "deny", "rules": rules,
        "implies": {"mcp:admin": ["mcp:write"], "mcp:write": ["mcp:read"]}});
    let policy = Policy::parse(&policy, "policy").expect("the bench policy is valid");
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"sub":"u1","groups":["ops","dev"]}"#).expect("claims");
    let held = vec!["openid".to_string(), "mcp:admin".to_string()];
    let search = Call { method: "tools/call", target: Some("search_issues") };
    assert_eq!(decide(&policy, search, &held, &claims, &[]), Verdict::Allow { rule: Some(19) });
    let cases = [
        ("allow_by_rule_20_implied", search, held.clone()),
        ("deny_scope_rule_1", Call { method: "tools/call", target: Some("tool_0_x") }, held.clone()),
        ("deny_default", Call { method: "tools/list", target: None }, held),
    ];
    let mut group = c.benchmark_group("mcp_decide_20_rules");
    for (name, call, held) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| decide(black_box(&policy), black_box(*call), black_box(held), &claims, &[]))
        });
    }
    group.finish();
}

fn short() -> Criterion {
    Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = short();
    targets = classify, if_none_match, validate, respond, jwt, loopback, mcp
}
criterion_main!(benches);
