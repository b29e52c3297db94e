//! DPoP at the edge (RFC 9449) over real sockets: a client key made here (Ed25519 or P-256,
//! with ring), a JWT access token bound to it by `cnf.jkt`, and proofs made per request. Each
//! refusal of §4.3 and §7 in turn, replay, nonces, the challenges byte for byte, the PRM fields,
//! and what the MCP server receives.

mod support;

use http::{Method, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use support::jwt::{auth_server, b64, claims, now, Signer};
use support::mcp::McpServer;
use support::{normalized, raw_exchange, request, Edge, Reply, Upstream, PRM_PATH};

/// The URI the client calls, as the proof names it: the public resource, not the edge's
/// loopback address.
const HTU: &str = "https://mcp.example.com/mcp";
const NONCE_KEY: &str = "a nonce key of at least thirty-two bytes";

/// A client's DPoP key.
enum Holder {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

impl Holder {
    fn ed25519() -> Holder {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("an Ed25519 key");
        Holder::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("the key reads back"))
    }

    fn p256() -> Holder {
        let (rng, alg) = (SystemRandom::new(), &signature::ECDSA_P256_SHA256_FIXED_SIGNING);
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("a P-256 key");
        Holder::P256(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("the key reads back"))
    }

    fn alg(&self) -> &'static str {
        match self {
            Holder::Ed25519(_) => "EdDSA",
            Holder::P256(_) => "ES256",
        }
    }

    /// The public JWK, members in the lexicographic order RFC 7638 hashes them in.
    fn jwk(&self) -> String {
        match self {
            Holder::Ed25519(pair) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(pair.public_key())),
            Holder::P256(pair) => {
                let point = pair.public_key().as_ref();
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, b64(&point[1..33]), b64(&point[33..]))
            }
        }
    }

    /// The RFC 7638 thumbprint: what the token's `cnf.jkt` says.
    fn jkt(&self) -> String {
        b64(ring::digest::digest(&ring::digest::SHA256, self.jwk().as_bytes()))
    }

    /// A proof with these claims.
    fn sign(&self, claims: &Value) -> String {
        let jwk: Value = serde_json::from_str(&self.jwk()).expect("a JWK");
        let header = json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": jwk});
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = match self {
            Holder::Ed25519(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
            Holder::P256(pair) => pair.sign(&SystemRandom::new(), input.as_bytes()).expect("signing").as_ref().to_vec(),
        };
        format!("{input}.{}", b64(signature))
    }

    /// A fresh proof for `POST /mcp` with `token`.
    fn proof(&self, token: &str) -> String {
        self.sign(&proof_claims(token))
    }
}

fn ath(token: &str) -> String {
    b64(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()))
}

/// The claims of a good proof for `POST /mcp` with `token`, with a fresh `jti`.
fn proof_claims(token: &str) -> Value {
    let mut jti = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut jti).expect("randomness");
    json!({"jti": b64(jti), "htm": "POST", "htu": HTU, "iat": now(), "ath": ath(token)})
}

/// The edge for [`support::RESOURCE`] in front of a recording MCP server, with `--dpop mode`
/// and `extra`; a client key, and a token bound to it.
struct Setup {
    auth: Upstream,
    signer: Signer,
    mcp: McpServer,
    edge: Edge,
    holder: Holder,
    /// Bound to `holder`'s key.
    token: String,
}

impl Setup {
    async fn new(mode: &str, extra: &[&str]) -> Setup {
        Setup::with_holder(mode, extra, Holder::ed25519()).await
    }

    async fn with_holder(mode: &str, extra: &[&str], holder: Holder) -> Setup {
        let mcp = McpServer::start().await;
        let signer = Signer::ed25519("k1");
        let auth = auth_server(&[&signer]).await;
        let upstream = mcp.url();
        let mut args = vec!["--upstream", upstream.as_str(), "--scope", "mcp:tools", "--dpop", mode];
        args.extend_from_slice(extra);
        let edge = Edge::ready_for(&auth, &args).await;
        let token = bound(&signer, &auth, &holder.jkt());
        Setup { auth, signer, mcp, edge, holder, token }
    }

    /// A token not bound to any key.
    fn bearer_token(&self) -> String {
        self.signer.sign(&claims(&self.auth.issuer()))
    }

    /// `POST /mcp` with these headers.
    async fn post(&self, headers: &[(&str, &str)]) -> Reply {
        request(self.edge.addr, Method::POST, "/mcp", headers).await
    }

    /// `POST /mcp` with `Authorization: DPoP <token>` and these proofs.
    async fn dpop(&self, token: &str, proofs: &[&str]) -> Reply {
        let authorization = format!("DPoP {token}");
        let mut headers = vec![("authorization", authorization.as_str())];
        headers.extend(proofs.iter().map(|p| ("dpop", *p)));
        self.post(&headers).await
    }
}

/// A token from `auth` bound to the key of thumbprint `jkt`.
fn bound(signer: &Signer, auth: &Upstream, jkt: &str) -> String {
    let mut claims = claims(&auth.issuer());
    claims["cnf"] = json!({ "jkt": jkt });
    signer.sign(&claims)
}

/// The `WWW-Authenticate` lines of a reply.
fn challenges(reply: &Reply) -> Vec<&str> {
    reply.headers.get_all("www-authenticate").iter().map(|v| v.to_str().expect("text")).collect()
}

fn assert_refused(reply: &Reply, code: &str, description: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    assert_eq!(reply.json()["error"], code, "{:?}", reply.body);
    assert_eq!(reply.json()["error_description"], description);
    let lines = challenges(reply);
    let last = lines.last().expect("a challenge");
    assert!(last.contains(&format!("error=\"{code}\"")), "{lines:?}");
}

#[tokio::test]
async fn a_valid_proof_passes_and_the_proof_stops_at_the_edge() {
    for holder in [Holder::ed25519(), Holder::p256()] {
        let s = Setup::with_holder("allow", &[], holder).await;
        let reply = s.dpop(&s.token, &[&s.holder.proof(&s.token)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}: {:?}", s.holder.alg(), reply.body);
        let seen = s.mcp.requests().pop().expect("the request reached the MCP server");
        assert!(seen.headers.get("dpop").is_none(), "the proof is bound to the edge's URI: not forwarded");
        assert_eq!(seen.header("authorization"), format!("DPoP {}", s.token), "the credential goes on as sent");
        assert_eq!(seen.header("x-auth-dpop-jkt"), s.holder.jkt(), "the key the edge saw possession of");
    }
}

#[tokio::test]
async fn allow_still_takes_plain_bearer_tokens_but_not_bound_ones() {
    let s = Setup::new("allow", &[]).await;
    let plain = format!("Bearer {}", s.bearer_token());
    let forged = "x".repeat(43);
    // A client-sent X-Auth-Dpop-Jkt never reaches the MCP server.
    let reply = s.post(&[("authorization", &plain), ("x-auth-dpop-jkt", &forged)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(s.mcp.requests().pop().expect("forwarded").headers.get("x-auth-dpop-jkt").is_none());
    // SECURITY: a bound token as a bearer token, even with its proof, is refused (RFC 9449 §7.2).
    let as_bearer = format!("Bearer {}", s.token);
    let reply = s.post(&[("authorization", &as_bearer), ("dpop", &s.holder.proof(&s.token))]).await;
    let description = "token is bound to a DPoP key and needs the DPoP scheme and a proof";
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_token");
    assert_eq!(reply.json()["error_description"], description);
    let lines = challenges(&reply);
    assert!(lines[0].starts_with("Bearer ") && lines[0].contains("error=\"invalid_token\""), "{lines:?}");
    assert!(lines[1].starts_with("DPoP algs=") && !lines[1].contains("error="), "{lines:?}");
    // And an unbound token as DPoP has no key to hold its presenter to.
    let unbound = s.bearer_token();
    let reply = s.dpop(&unbound, &[&s.holder.proof(&unbound)]).await;
    assert_eq!((reply.status, &reply.json()["error"]), (StatusCode::UNAUTHORIZED, &json!("invalid_token")));
    assert_eq!(s.mcp.requests().len(), 1, "only the plain bearer request was forwarded");
}

#[tokio::test]
async fn bound_tokens_as_bearer_are_refused_with_dpop_off_too() {
    let s = Setup::new("off", &[]).await;
    let reply = s.post(&[("authorization", &format!("Bearer {}", s.token))]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_token");
    // With DPoP off the scheme is no credential, as today: the plain challenge.
    let reply = s.dpop(&s.token, &[&s.holder.proof(&s.token)]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenges(&reply).len(), 1);
    assert!(!challenges(&reply)[0].contains("error="));
    assert!(s.mcp.requests().is_empty());
}

#[tokio::test]
async fn require_answers_bearer_with_the_dpop_challenge() {
    let s = Setup::new("require", &[]).await;
    let reply = s.post(&[("authorization", &format!("Bearer {}", s.bearer_token()))]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenges(&reply),
        ["DPoP algs=\"ES256 EdDSA PS256 RS256\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\""]
    );
    assert_eq!(s.dpop(&s.token, &[&s.holder.proof(&s.token)]).await.status, StatusCode::OK);
}

/// A change to a proof's claims.
type Edit = dyn Fn(&mut Value);

#[tokio::test]
async fn proofs_for_another_request_or_moment_are_refused() {
    let s = Setup::new("require", &[]).await;
    let token = s.token.as_str();
    let cases: [(&str, &Edit, &str); 6] = [
        ("htm", &|c| c["htm"] = json!("GET"), "DPoP proof htm does not match the request method"),
        (
            "htu",
            &|c| c["htu"] = json!("https://mcp.example.com/other"),
            "DPoP proof htu does not match the request URI",
        ),
        // The edge's own address is not the URI the client called.
        ("internal", &|c| c["htu"] = json!("http://127.0.0.1/mcp"), "DPoP proof htu does not match the request URI"),
        ("ath", &|c| c["ath"] = json!(ath("another token")), "DPoP proof ath does not match the access token"),
        ("old", &|c| c["iat"] = json!(now() - 301), "DPoP proof was issued too long ago"),
        ("future", &|c| c["iat"] = json!(now() + 301), "DPoP proof is issued in the future"),
    ];
    for (what, edit, description) in cases {
        let mut claims = proof_claims(token);
        edit(&mut claims);
        let reply = s.dpop(token, &[&s.holder.sign(&claims)]).await;
        assert_refused(&reply, "invalid_dpop_proof", description);
        assert!(reply.headers.get("dpop-nonce").is_none(), "{what}");
    }
    let reply = s.dpop(token, &[]).await;
    assert_refused(&reply, "invalid_dpop_proof", "malformed DPoP proof: no DPoP header");
    let two = [s.holder.proof(token), s.holder.proof(token)];
    let reply = s.dpop(token, &[&two[0], &two[1]]).await;
    assert_refused(&reply, "invalid_dpop_proof", "malformed DPoP proof: more than one DPoP header");
    // A good proof of another key than the token's.
    let reply = s.dpop(token, &[&Holder::p256().proof(token)]).await;
    assert_refused(&reply, "invalid_dpop_proof", "DPoP proof key is not the key the token is bound to");
    assert!(s.mcp.requests().is_empty());
    assert!(s.edge.metrics().await.contains("mcp_auth_edge_token_rejections_total{reason=\"dpop_proof\"} 9"));
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let s = Setup::new("allow", &["--dpop-iat-window", "60"]).await;
    let proof = s.holder.proof(&s.token);
    assert_eq!(s.dpop(&s.token, &[&proof]).await.status, StatusCode::OK);
    assert_refused(&s.dpop(&s.token, &[&proof]).await, "invalid_dpop_proof", "DPoP proof has been used before");
    // The window is the flag's: a proof 61 s old is refused on its iat.
    let mut claims = proof_claims(&s.token);
    claims["iat"] = json!(now() - 61);
    let reply = s.dpop(&s.token, &[&s.holder.sign(&claims)]).await;
    assert_refused(&reply, "invalid_dpop_proof", "DPoP proof was issued too long ago");
    assert_eq!(s.mcp.requests().len(), 1);
}

#[tokio::test]
async fn with_a_nonce_key_the_client_is_asked_for_a_nonce_first() {
    let s = Setup::new("require", &["--dpop-nonce-key", NONCE_KEY]).await;
    let reply = s.dpop(&s.token, &[&s.holder.proof(&s.token)]).await;
    assert_refused(&reply, "use_dpop_nonce", "resource server requires nonce in DPoP proof");
    assert_eq!(reply.header("access-control-expose-headers"), "WWW-Authenticate, DPoP-Nonce");
    let nonce = reply.header("dpop-nonce").to_string();
    let mut claims = proof_claims(&s.token);
    claims["nonce"] = json!(nonce);
    let reply = s.dpop(&s.token, &[&s.holder.sign(&claims)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    // A nonce the edge did not issue is answered with a current one.
    let mut claims = proof_claims(&s.token);
    claims["nonce"] = json!("A".repeat(32));
    let reply = s.dpop(&s.token, &[&s.holder.sign(&claims)]).await;
    assert_refused(&reply, "use_dpop_nonce", "DPoP proof nonce is not current");
    assert_eq!(reply.header("dpop-nonce"), nonce);

    // Another edge with the same key accepts this edge's nonce: nothing is shared but the key.
    let other = Setup::new("require", &["--dpop-nonce-key", NONCE_KEY]).await;
    let token = bound(&other.signer, &other.auth, &s.holder.jkt());
    let mut claims = proof_claims(&token);
    claims["nonce"] = json!(nonce);
    assert_eq!(other.dpop(&token, &[&s.holder.sign(&claims)]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_resource_metadata_says_what_dpop_the_resource_takes() {
    for (mode, required) in [("allow", Some(false)), ("require", Some(true)), ("off", None)] {
        let s = Setup::new(mode, &[]).await;
        let document = s.edge.get(&format!("{PRM_PATH}/mcp")).await.json();
        match required {
            Some(required) => {
                assert_eq!(document["dpop_signing_alg_values_supported"], json!(["ES256", "EdDSA", "PS256", "RS256"]));
                assert_eq!(document["dpop_bound_access_tokens_required"], json!(required), "{mode}");
            }
            None => {
                assert!(document.get("dpop_signing_alg_values_supported").is_none(), "{document}");
                assert!(document.get("dpop_bound_access_tokens_required").is_none(), "{document}");
            }
        }
    }
}

/// The raw answer to a `POST /mcp` without credentials, with a browser origin.
async fn raw_challenge(edge: &Edge) -> String {
    let request = "POST /mcp HTTP/1.1\r\nHost: mcp.example.com\r\nOrigin: https://mcp.example.com\r\n\
                   Content-Length: 0\r\nConnection: close\r\n\r\n";
    normalized(&raw_exchange(edge.addr, request).await)
}

#[tokio::test]
async fn the_challenges_byte_for_byte() {
    let allow = Setup::new("allow", &[]).await;
    let body = r#"{"error":"invalid_token","error_description":"This resource needs an OAuth bearer token; see WWW-Authenticate for where to get one"}"#;
    let metadata =
        "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\"";
    let head = |lines: &str| {
        format!(
            "HTTP/1.1 401 Unauthorized\r\n{lines}content-type: application/json\r\ncache-control: no-store\r\n\
             access-control-allow-origin: https://mcp.example.com\r\n\
             access-control-expose-headers: WWW-Authenticate, DPoP-Nonce\r\nconnection: close\r\n\
             content-length: {}\r\ndate: <date>\r\n\r\n{body}",
            body.len()
        )
    };
    let bearer = format!("www-authenticate: Bearer {metadata}\r\n");
    let dpop = format!("www-authenticate: DPoP algs=\"ES256 EdDSA PS256 RS256\", {metadata}\r\n");
    assert_eq!(raw_challenge(&allow.edge).await, head(&format!("{bearer}{dpop}")));
    let require = Setup::new("require", &[]).await;
    assert_eq!(raw_challenge(&require.edge).await, head(&dpop));
}

#[tokio::test]
async fn a_browser_may_send_a_proof() {
    let s = Setup::new("allow", &[]).await;
    let preflight = request(
        s.edge.addr,
        Method::OPTIONS,
        "/mcp",
        &[("origin", "https://mcp.example.com"), ("access-control-request-method", "POST")],
    )
    .await;
    assert!(preflight.header("access-control-allow-headers").ends_with(", DPoP"));
}

#[tokio::test]
async fn a_reload_forgets_no_proof() {
    let mcp = McpServer::start().await;
    let signer = Signer::ed25519("k1");
    let auth = auth_server(&[&signer]).await;
    let (upstream, issuer) = (mcp.url(), auth.issuer());
    let config = |scope: &str| {
        let args = ["--resource", support::RESOURCE, "--auth-server", &issuer, "--upstream", &upstream];
        support::config(&[&args[..], &["--scope", scope, "--dpop", "allow"]].concat())
    };
    let (edge, reload) = Edge::start_reloadable(config("first")).await;
    edge.wait_ready().await;
    let holder = Holder::ed25519();
    let token = bound(&signer, &auth, &holder.jkt());
    let proof = holder.proof(&token);
    let call = || async {
        let authorization = format!("DPoP {token}");
        request(edge.addr, Method::POST, "/mcp", &[("authorization", &authorization), ("dpop", &proof)]).await
    };
    assert_eq!(call().await.status, StatusCode::OK);
    reload.send_replace(Some(Ok(config("second"))));
    support::wait_until("the second configuration in service", || async {
        edge.get(&format!("{PRM_PATH}/mcp")).await.json()["scopes_supported"] == json!(["second"])
    })
    .await;
    // SECURITY: the new configuration kept the replay cache.
    assert_refused(&call().await, "invalid_dpop_proof", "DPoP proof has been used before");
}

#[tokio::test]
async fn a_malformed_dpop_credential_is_a_bad_request() {
    let s = Setup::new("allow", &[]).await;
    for value in ["DPoP", "DPoP two words", "DPoP bad\"quote"] {
        let reply = s.post(&[("authorization", value)]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{value}");
        let lines = challenges(&reply);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.contains("error=\"invalid_request\"")), "{lines:?}");
        assert!(reply.json()["error_description"].as_str().unwrap().contains("Bearer or DPoP"));
    }
}

#[tokio::test]
async fn a_policy_step_up_for_a_bound_token_names_the_dpop_scheme() {
    let policy = json!({"policy": {"default": "allow",
        "rules": [{"method": "tools/call", "name": "admin_*", "scopes": ["mcp:admin"]}]}});
    let file = support::TempFile::new("dpop-policy.json", &policy.to_string());
    let s = Setup::new("require", &["--config", file.path()]).await;
    let call = |name: &str| {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {}}});
        let body = body.to_string();
        format!(
            "POST /mcp HTTP/1.1\r\nhost: {}\r\nauthorization: DPoP {}\r\ndpop: {}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            s.edge.addr,
            s.token,
            s.holder.proof(&s.token),
            body.len()
        )
    };
    let (head, _) = support::split_head(&raw_exchange(s.edge.addr, &call("read_notes")).await).clone();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let raw = raw_exchange(s.edge.addr, &call("admin_reset")).await;
    let (head, _) = support::split_head(&raw);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let challenge = head
        .lines()
        .find_map(|l| l.strip_prefix("www-authenticate: "))
        .unwrap_or_else(|| panic!("a challenge in {head}"));
    assert!(
        challenge.starts_with("DPoP algs=\"ES256 EdDSA PS256 RS256\", error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp:admin mcp:tools\""), "{challenge}");
    assert_eq!(s.mcp.requests().len(), 1, "the admin call never arrived");
}
