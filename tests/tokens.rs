//! jwt mode (`--token-check jwt`, the default) over real sockets: real tokens signed with keys
//! made in the test and published by an authorization server stand-in as its JWKS, a real
//! MCP server stand-in behind the edge, and every answer the gate gives compared byte for byte
//! (only the `date` value is masked). A refused request must never reach the MCP server.

mod support;

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};
use support::jwt::{self, auth_server, claims, now, Signer};
use support::mcp::McpServer;
use support::{normalized, raw_exchange, request, Canned, Edge, Upstream, AS_PATH, RESOURCE};

/// The `resource_metadata` every challenge here names (RFC 9728 §5.1).
const PRM: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

/// The edge in jwt mode in front of a fresh MCP server, with `--scope mcp:tools` and `extra`.
struct Setup {
    auth: Upstream,
    mcp: McpServer,
    edge: Edge,
}

impl Setup {
    async fn new(keys: &[&Signer], extra: &[&str]) -> Setup {
        let auth = auth_server(keys).await;
        let mcp = McpServer::start().await;
        let upstream = mcp.url();
        // Every origin allowed, as the byte-for-byte answers below are written; the default
        // (the resource's own origin) is tested in tests/harden.rs.
        let mut args =
            vec!["--upstream", upstream.as_str(), "--token-check", "jwt", "--scope", "mcp:tools", "--cors-origin", "*"];
        args.extend_from_slice(extra);
        let edge = Edge::ready_for(&auth, &args).await;
        Setup { auth, mcp, edge }
    }

    fn issuer(&self) -> String {
        self.auth.issuer()
    }

    /// The whole response to a JSON-RPC `POST /mcp` carrying `headers` (whole lines), as
    /// text with the date masked.
    async fn raw_post(&self, headers: &str) -> String {
        raw_post(&self.edge, headers).await
    }

    /// The whole response to a `POST /mcp` with this bearer token.
    async fn raw_call(&self, token: &str) -> String {
        self.raw_post(&format!("Authorization: Bearer {token}\r\n")).await
    }

    /// The status of a `POST /mcp` with this bearer token.
    async fn call(&self, token: &str) -> StatusCode {
        let bearer = format!("Bearer {token}");
        request(self.edge.addr, Method::POST, "/mcp", &[("authorization", bearer.as_str())]).await.status
    }

    fn forwarded(&self) -> usize {
        self.mcp.requests().len()
    }
}

async fn raw_post(edge: &Edge, headers: &str) -> String {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: mcp.example.com\r\n{headers}Content-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    normalized(&raw_exchange(edge.addr, &request).await)
}

/// An answer of the gate, as hyper writes it for a client that sent `Connection: close`.
fn gate_answer(status: &str, challenge: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nwww-authenticate: {challenge}\r\ncontent-type: application/json\r\n\
         cache-control: no-store\r\naccess-control-allow-origin: *\r\n\
         access-control-expose-headers: WWW-Authenticate\r\nconnection: close\r\n\
         content-length: {}\r\ndate: <date>\r\n\r\n{body}",
        body.len()
    )
}

/// An answer of the token check: as [`gate_answer`], with the request id the edge made.
fn checked_answer(status: &str, challenge: &str, body: &str) -> String {
    gate_answer(status, challenge, body).replacen("connection: close", "x-request-id: <id>\r\nconnection: close", 1)
}

/// The exact `401` for a token refused for `description`.
fn refused(description: &str) -> String {
    checked_answer(
        "401 Unauthorized",
        &format!(
            "Bearer resource_metadata=\"{PRM}\", scope=\"mcp:tools\", error=\"invalid_token\", \
             error_description=\"{description}\""
        ),
        &format!(r#"{{"error":"invalid_token","error_description":"{description}"}}"#),
    )
}

#[tokio::test]
async fn requests_without_a_usable_credential_get_the_challenge_byte_for_byte() {
    let key = Signer::ed25519("k1");
    let s = Setup::new(&[&key], &[]).await;
    let missing = gate_answer(
        "401 Unauthorized",
        &format!("Bearer resource_metadata=\"{PRM}\", scope=\"mcp:tools\""),
        r#"{"error":"invalid_token","error_description":"This resource needs an OAuth bearer token; see WWW-Authenticate for where to get one"}"#,
    );
    let malformed = gate_answer(
        "400 Bad Request",
        &format!(
            "Bearer resource_metadata=\"{PRM}\", scope=\"mcp:tools\", error=\"invalid_request\", \
             error_description=\"The Authorization header is not a valid Bearer credential\""
        ),
        r#"{"error":"invalid_request","error_description":"The Authorization header is not a valid Bearer credential"}"#,
    );
    let good = format!("Authorization: Bearer {}\r\n", key.sign(&claims(&s.issuer())));
    let cases = [
        ("no Authorization", String::new(), &missing),
        ("another scheme (RFC 6750 §3.1)", "Authorization: Basic dXNlcjpwYXNz\r\n".to_string(), &missing),
        ("an empty Authorization", "Authorization: \r\n".to_string(), &missing),
        ("Bearer without a token", "Authorization: Bearer\r\n".to_string(), &malformed),
        ("Bearer with spaces in the token", "Authorization: Bearer a b\r\n".to_string(), &malformed),
        ("Bearer with a quote", "Authorization: Bearer a\"b\r\n".to_string(), &malformed),
        ("two Authorization headers", format!("{good}{good}"), &malformed),
    ];
    for (what, headers, expected) in cases {
        assert_eq!(&s.raw_post(&headers).await, expected, "{what}");
    }
    assert_eq!(s.forwarded(), 0, "nothing reached the MCP server");
    let metrics = s.edge.metrics().await;
    assert!(metrics.contains("mcp_auth_edge_requests_total{route=\"mcp\",status=\"401\"} 3\n"), "{metrics}");
    assert!(metrics.contains("mcp_auth_edge_requests_total{route=\"mcp\",status=\"400\"} 4\n"), "{metrics}");
}

#[tokio::test]
async fn the_challenge_follows_the_configured_resource_and_scopes() {
    let key = Signer::ed25519("k1");
    let auth = auth_server(&[&key]).await;
    let mcp = McpServer::start().await;
    let (issuer, upstream) = (auth.issuer(), mcp.url());
    let cases: [(&[&str], &str); 3] = [
        // A resource at the origin's root: no path after the well-known suffix (RFC 9728 §3.1).
        (
            &["--resource", "https://mcp.example.com"],
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource\"",
        ),
        (&["--resource", RESOURCE], &format!("Bearer resource_metadata=\"{PRM}\"")),
        (
            &["--resource", "https://mcp.example.com/tenant/mcp", "--scope", "mcp:tools", "--scope", "mcp:read"],
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/tenant/mcp\", \
             scope=\"mcp:tools mcp:read\"",
        ),
    ];
    for (flags, challenge) in cases {
        let mut args = vec!["--auth-server", issuer.as_str(), "--upstream", upstream.as_str(), "--cors-origin", "*"];
        args.extend_from_slice(flags);
        let edge = Edge::start(&args).await;
        edge.wait_ready().await;
        let expected = gate_answer(
            "401 Unauthorized",
            challenge,
            r#"{"error":"invalid_token","error_description":"This resource needs an OAuth bearer token; see WWW-Authenticate for where to get one"}"#,
        );
        assert_eq!(raw_post(&edge, "").await, expected, "{flags:?}");
    }
    assert!(mcp.requests().is_empty());
}

#[tokio::test]
async fn a_preflight_is_answered_at_the_edge_byte_for_byte() {
    let key = Signer::ed25519("k1");
    let s = Setup::new(&[&key], &[]).await;
    let preflight = "OPTIONS /mcp HTTP/1.1\r\nHost: mcp.example.com\r\nOrigin: https://app.example\r\n\
                     Access-Control-Request-Method: POST\r\n\
                     Access-Control-Request-Headers: authorization, content-type, mcp-protocol-version\r\n\
                     Connection: close\r\n\r\n";
    let expected = "HTTP/1.1 204 No Content\r\naccess-control-allow-origin: *\r\n\
                    access-control-allow-methods: GET, POST, DELETE, OPTIONS\r\n\
                    access-control-allow-headers: Authorization, Content-Type, Accept, Mcp-Session-Id, \
                    MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name\r\n\
                    access-control-expose-headers: Mcp-Session-Id, WWW-Authenticate\r\n\
                    access-control-max-age: 86400\r\nconnection: close\r\ndate: <date>\r\n\r\n";
    assert_eq!(normalized(&raw_exchange(s.edge.addr, preflight).await), expected);

    // With a list of origins, a listed one is echoed and caches are told the answer varies.
    let mcp = McpServer::start().await;
    let upstream = mcp.url();
    let listed = Edge::ready_for(
        &s.auth,
        &["--upstream", &upstream, "--token-check", "jwt", "--cors-origin", "https://app.example"],
    )
    .await;
    let expected = expected.replace(
        "access-control-allow-origin: *\r\n",
        "vary: Origin\r\naccess-control-allow-origin: https://app.example\r\n",
    );
    assert_eq!(normalized(&raw_exchange(listed.addr, preflight).await), expected);
    let other = preflight.replace("https://app.example", "https://evil.example");
    // An origin not listed is refused outright, with no CORS grant (the MCP transport's
    // DNS-rebinding defence, done at the edge).
    let refused = normalized(&raw_exchange(listed.addr, &other).await);
    assert!(refused.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{refused}");
    assert!(!refused.contains("access-control-allow"), "{refused}");
    assert_eq!(s.forwarded() + mcp.requests().len(), 0, "preflights never reach the MCP server");
}

#[tokio::test]
async fn refused_tokens_get_401_invalid_token_byte_for_byte() {
    let key = Signer::ed25519("k1");
    let other_es = Signer::p256("es");
    let s = Setup::new(&[&key, &other_es], &[]).await;
    let issuer = s.issuer();
    let good = || claims(&issuer);
    let with = |name: &str, value: Value| {
        let mut c = good();
        c[name] = value;
        c
    };
    let without = |name: &str| {
        let mut c = good();
        c.as_object_mut().expect("an object").remove(name);
        c
    };
    let valid = key.sign(&good());
    let (input, signature) = valid.rsplit_once('.').expect("three parts");
    let mut flipped = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
        .expect("a base64url signature");
    flipped[7] ^= 0x20;
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"});
    let mut altered = good();
    altered["sub"] = "admin".into();

    let cases = [
        ("token has expired", key.sign(&with("exp", (now() - 600).into()))),
        ("token has expired", key.sign(&with("exp", (now() - 90).into()))),
        ("token is not yet valid", key.sign(&with("nbf", (now() + 600).into()))),
        ("token audience does not include this resource", key.sign(&with("aud", "https://other.example/mcp".into()))),
        ("token audience does not include this resource", key.sign(&with("aud", json!(["https://other.example"])))),
        // The resource's origin alone is not the resource (RFC 8707 names the exact URL).
        ("token audience does not include this resource", key.sign(&with("aud", "https://mcp.example.com".into()))),
        ("token issuer not accepted", key.sign(&with("iss", "https://evil.example".into()))),
        ("token issuer not accepted", key.sign(&with("iss", format!("{issuer}/").into()))),
        ("token has no iss claim", key.sign(&without("iss"))),
        ("token has no aud claim", key.sign(&without("aud"))),
        ("token has no exp claim", key.sign(&without("exp"))),
        // Another key under the published kid: the signature does not verify.
        ("token signature is invalid", Signer::ed25519("k1").sign(&good())),
        ("token signature is invalid", format!("{input}.{}", jwt::b64(&flipped))),
        ("token signature is invalid", jwt::with_signature(&header, &altered, signature)),
        // The published P-256 key may not check an EdDSA signature.
        ("token signing key does not allow its algorithm", {
            let header = json!({"alg": "EdDSA", "kid": "es"});
            jwt::with_signature(&header, &good(), signature)
        }),
        ("token signing algorithm not accepted", jwt::with_signature(&json!({"alg": "none"}), &good(), "")),
        (
            "token signing algorithm not accepted",
            jwt::with_signature(&json!({"alg": "none", "kid": "k1"}), &good(), ""),
        ),
        ("token signing algorithm not accepted", jwt::with_signature(&json!({"alg": "None"}), &good(), "")),
        ("token signing algorithm not accepted", jwt::with_signature(&json!({"alg": "NONE"}), &good(), "")),
        // alg none with a genuine signature attached changes nothing.
        ("token signing algorithm not accepted", jwt::with_signature(&json!({"alg": "none"}), &good(), signature)),
        ("malformed token: not three parts", format!("{input}.{signature}.AAAA.BBBB")),
        ("malformed token: not three parts", input.to_string()),
        ("malformed token: header has no alg", jwt::with_signature(&json!({"kid": "k1"}), &good(), signature)),
        (
            "malformed token: critical header extension",
            jwt::with_signature(&json!({"alg": "EdDSA", "kid": "k1", "crit": ["exp"]}), &good(), signature),
        ),
    ];
    for (description, token) in &cases {
        assert_eq!(s.raw_call(token).await, refused(description), "{description}: {token:.60}");
    }
    assert_eq!(s.forwarded(), 0, "no refused token reached the MCP server");
    assert_eq!(s.call(&valid).await, StatusCode::OK, "the same key and claims, untouched, pass");
    assert_eq!(s.forwarded(), 1);
    let metrics = s.edge.metrics().await;
    let series = format!("mcp_auth_edge_requests_total{{route=\"mcp\",status=\"401\"}} {}\n", cases.len());
    assert!(metrics.contains(&series), "{metrics}");
}

#[tokio::test]
async fn times_are_checked_with_a_minute_of_leeway() {
    let key = Signer::ed25519("k1");
    let s = Setup::new(&[&key], &[]).await;
    let at = |name: &str, when: u64| {
        let mut c = claims(&s.issuer());
        c[name] = when.into();
        key.sign(&c)
    };
    assert_eq!(s.call(&at("exp", now() - 20)).await, StatusCode::OK, "expired within the leeway");
    assert_eq!(s.call(&at("nbf", now() + 20)).await, StatusCode::OK, "not yet valid within the leeway");
    assert_eq!(s.raw_call(&at("exp", now() - 100)).await, refused("token has expired"));
    assert_eq!(s.raw_call(&at("nbf", now() + 100)).await, refused("token is not yet valid"));
    assert_eq!(s.forwarded(), 2);
}

#[tokio::test]
async fn tokens_of_every_accepted_algorithm_pass() {
    let (ed, es) = (Signer::ed25519("ed"), Signer::p256("es"));
    let rs = tokio::task::spawn_blocking(|| Signer::rsa("rs")).await.expect("an RSA key");
    let s = Setup::new(&[&ed, &es, &rs], &[]).await;
    let c = claims(&s.issuer());
    let ps = rs.sign_with(&json!({"alg": "PS256", "kid": "rs"}), &c);
    let without_kid = es.sign_with(&json!({"alg": "ES256", "typ": "at+jwt"}), &c);
    for (alg, token) in [
        ("EdDSA", ed.sign(&c)),
        ("ES256", es.sign(&c)),
        ("RS256", rs.sign(&c)),
        ("PS256", ps),
        ("ES256 without a kid", without_kid),
    ] {
        assert_eq!(s.call(&token).await, StatusCode::OK, "{alg}");
        let seen = s.mcp.requests().pop().expect("forwarded");
        assert_eq!(seen.header("authorization"), format!("Bearer {token}"), "{alg}: the token is passed on");
    }
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let lower = format!("bearer {}", ed.sign(&c));
    let reply = request(s.edge.addr, Method::POST, "/mcp", &[("authorization", lower.as_str())]).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn hs256_keyed_with_the_public_key_is_refused() {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let rs = tokio::task::spawn_blocking(|| Signer::rsa("rs")).await.expect("an RSA key");
    let s = Setup::new(&[&rs], &[]).await;
    let c = claims(&s.issuer());
    assert_eq!(s.call(&rs.sign(&c)).await, StatusCode::OK, "the key verifies RS256");

    // The classic confusion: a verifier that lets the token pick HMAC would key it with the
    // public key it holds, in whichever encoding it keeps. Every one of them is refused.
    let public = &jwt::rsa_key().public;
    let spki_pem = public.to_public_key_pem(LineEnding::LF).expect("SPKI PEM");
    let pkcs1_pem = public.to_pkcs1_pem(LineEnding::LF).expect("PKCS#1 PEM");
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("SPKI PEM", spki_pem.clone().into_bytes()),
        ("SPKI PEM, CRLF", public.to_public_key_pem(LineEnding::CRLF).expect("SPKI PEM").into_bytes()),
        ("SPKI PEM without the final newline", spki_pem.trim_end().as_bytes().to_vec()),
        ("PKCS#1 PEM", pkcs1_pem.into_bytes()),
        ("SPKI DER", public.to_public_key_der().expect("SPKI DER").into_vec()),
        ("PKCS#1 DER", public.to_pkcs1_der().expect("PKCS#1 DER").into_vec()),
        ("the JWK's JSON", rs.jwk().to_string().into_bytes()),
        (
            "the JWK's n",
            base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                rs.jwk()["n"].as_str().expect("n"),
            )
            .expect("n decodes"),
        ),
    ];
    for (encoding, secret) in &secrets {
        for header in [
            json!({"alg": "HS256", "typ": "at+jwt", "kid": "rs"}),
            json!({"alg": "HS256"}),
            json!({"alg": "HS512", "kid": "rs"}),
        ] {
            let token = jwt::hs256(&header, &c, secret);
            assert_eq!(
                s.raw_call(&token).await,
                refused("token signing algorithm not accepted"),
                "{encoding} {header}"
            );
        }
    }
    assert_eq!(s.forwarded(), 1, "only the RS256 call reached the MCP server");
}

#[tokio::test]
async fn a_token_without_a_required_scope_gets_403_byte_for_byte() {
    let key = Signer::ed25519("k1");
    let s = Setup::new(&[&key], &["--required-scope", "mcp:admin", "--required-scope", "mcp:tools"]).await;
    let expected = checked_answer(
        "403 Forbidden",
        &format!(
            "Bearer resource_metadata=\"{PRM}\", scope=\"mcp:admin mcp:tools\", error=\"insufficient_scope\", \
             error_description=\"The token lacks a scope this resource requires\""
        ),
        r#"{"error":"insufficient_scope","error_description":"The token lacks a scope this resource requires"}"#,
    );
    assert_eq!(s.raw_call(&key.sign(&claims(&s.issuer()))).await, expected);
    // The verdict is cached; the scope check is not skipped on a repeat.
    assert_eq!(s.raw_call(&key.sign(&claims(&s.issuer()))).await, expected);
    let mut both = claims(&s.issuer());
    both["scope"] = "mcp:tools mcp:admin".into();
    assert_eq!(s.call(&key.sign(&both)).await, StatusCode::OK);
    assert_eq!(s.forwarded(), 1);
}

#[tokio::test]
async fn no_keys_yet_means_503_byte_for_byte_never_a_pass() {
    let key = Signer::ed25519("k1");
    let auth = auth_server(&[&key]).await;
    auth.set("/jwks", Canned::status(404));
    let mcp = McpServer::start().await;
    let upstream = mcp.url();
    let edge =
        Edge::for_upstream(&auth, &["--upstream", &upstream, "--token-check", "jwt", "--cors-origin", "*"]).await;
    support::wait_until("the JWKS was asked for", || async { auth.hits("/jwks") > 0 }).await;
    let body = r#"{"error":"temporarily_unavailable","error_description":"The authorization server's signing keys have not been fetched yet"}"#;
    let expected = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\naccess-control-allow-origin: *\r\n\
         cache-control: no-store\r\nretry-after: 5\r\nx-request-id: <id>\r\nconnection: close\r\n\
         content-length: {}\r\ndate: <date>\r\n\r\n{body}",
        body.len()
    );
    let token = key.sign(&claims(&auth.issuer()));
    assert_eq!(raw_post(&edge, &format!("Authorization: Bearer {token}\r\n")).await, expected);
    assert_eq!(edge.admin_get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(mcp.requests().is_empty());
    // Once the keys come, the same token passes.
    auth.set("/jwks", Canned::ok(jwt::jwks(&[&key])));
    edge.wait_ready().await;
    let bearer = format!("Bearer {token}");
    assert_eq!(request(edge.addr, Method::POST, "/mcp", &[("authorization", &bearer)]).await.status, StatusCode::OK);
}

/// The periodic refresh is set to five minutes in these tests, so only the on-demand refetch
/// can bring a new key; none of them waits out the 10 s refetch interval.
const SLOW_REFRESH: &[&str] = &["--refresh", "300"];

#[tokio::test]
async fn an_unknown_kid_refetches_once_and_the_rotation_is_picked_up() {
    let (old, new) = (Signer::ed25519("old"), Signer::ed25519("new"));
    let s = Setup::new(&[&old], SLOW_REFRESH).await;
    let issuer = s.issuer();
    let fetched = s.auth.hits("/jwks");

    // The authorization server rotates: the old key is withdrawn, the new one published.
    s.auth.set("/jwks", Canned::ok(jwt::jwks(&[&new])));
    let started = Instant::now();
    assert_eq!(s.call(&new.sign(&claims(&issuer))).await, StatusCode::OK, "the first unknown kid refetches");
    assert!(started.elapsed() < Duration::from_secs(5), "no waiting for a refresh: {:?}", started.elapsed());
    assert_eq!(s.auth.hits("/jwks"), fetched + 1, "exactly one refetch");

    // A token of the withdrawn key (never seen before, so not cached) is now unknown, and
    // within 10 s of the last refetch it causes no further fetch.
    assert_eq!(s.raw_call(&old.sign(&claims(&issuer))).await, refused("token signed with an unknown key"));
    // Nor does a burst of made-up kids: forged kids cannot make the edge hammer the server.
    let strangers: Vec<String> = (0..8).map(|i| Signer::ed25519(&format!("x{i}")).sign(&claims(&issuer))).collect();
    let replies = futures_join(strangers.iter().map(|t| s.raw_call(t))).await;
    for reply in replies {
        assert_eq!(reply, refused("token signed with an unknown key"));
    }
    assert_eq!(s.auth.hits("/jwks"), fetched + 1, "rate-limited: no fetch for the withdrawn key or the strangers");
    assert_eq!(s.call(&new.sign(&claims(&issuer))).await, StatusCode::OK, "the new key stays in service");
    assert_eq!(s.forwarded(), 2);
}

#[tokio::test]
async fn a_failed_refetch_keeps_the_keys_in_service() {
    let old = Signer::ed25519("old");
    let s = Setup::new(&[&old], SLOW_REFRESH).await;
    let issuer = s.issuer();
    let fetched = s.auth.hits("/jwks");
    s.auth.set("/jwks", Canned::status(500));
    let stranger = Signer::ed25519("new").sign(&claims(&issuer));
    assert_eq!(s.raw_call(&stranger).await, refused("token signed with an unknown key"));
    assert_eq!(s.auth.hits("/jwks"), fetched + 1, "the refetch was tried");
    assert_eq!(s.call(&old.sign(&claims(&issuer))).await, StatusCode::OK, "the keys in service were kept");
}

/// Tokens of a freshly rotated key that arrive together: the first starts the refetch, and the
/// others must not be refused while it is in flight.
#[tokio::test]
async fn tokens_arriving_during_the_refetch_wait_for_it() {
    let (old, new) = (Signer::ed25519("old"), Signer::ed25519("new"));
    let s = Setup::new(&[&old], SLOW_REFRESH).await;
    let issuer = s.issuer();
    // A slow JWKS answer widens the window in which the others arrive.
    s.auth.set("/jwks", Canned::ok(jwt::jwks(&[&old, &new])).delayed(Duration::from_millis(500)));
    let tokens: Vec<String> = (0..4)
        .map(|i| {
            let mut c = claims(&issuer);
            c["jti"] = format!("t{i}").into();
            new.sign(&c)
        })
        .collect();
    let statuses = futures_join(tokens.iter().map(|t| s.call(t))).await;
    assert_eq!(statuses, vec![StatusCode::OK; 4]);
}

/// Runs the futures concurrently on this task and returns their outputs in order.
async fn futures_join<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in set.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future finished")).collect()
}

#[tokio::test]
async fn the_documents_stay_public_in_jwt_mode() {
    let key = Signer::ed25519("k1");
    let s = Setup::new(&[&key], &[]).await;
    assert_eq!(s.edge.get(AS_PATH).await.status, StatusCode::OK);
    assert_eq!(s.edge.get(support::PRM_PATH).await.status, StatusCode::OK);
    assert_eq!(s.forwarded(), 0);
}
