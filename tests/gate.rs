//! The gate in front of the MCP endpoint (`--upstream`, `--token-check presence`): the 401
//! challenge, the browser preflight, and streaming forwarding to a real MCP-like server.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::{request, Edge, Upstream, RESOURCE};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "Bearer opaque-token.abc_~+/=";
const SSE_GAP: Duration = Duration::from_millis(600);

type TestBody = http_body_util::Either<Full<Bytes>, Frames>;

/// A body fed by a channel, so a handler can space its chunks in time or stream a large one.
struct Frames(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// The MCP server stand-in: `POST /mcp` answers a JSON-RPC result echoing what it received
/// (body and the headers the edge is responsible for); `GET /mcp/sse` sends one event at once
/// and a second after [`SSE_GAP`]; `POST /mcp/count` streams the body in and reports its size;
/// `GET /mcp/slow` answers after five seconds.
async fn mcp_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the MCP stand-in");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(answer);
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

async fn answer(request: Request<Incoming>) -> Result<Response<TestBody>, Infallible> {
    let full = |bytes: Vec<u8>| http_body_util::Either::Left(Full::new(Bytes::from(bytes)));
    let response = match (request.method().clone(), request.uri().path()) {
        (Method::POST, "/mcp") => {
            let seen = |name: &str| {
                request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string).unwrap_or_default()
            };
            let headers = serde_json::json!({
                "authorization": seen("authorization"),
                "x-forwarded-for": seen("x-forwarded-for"),
                "x-forwarded-proto": seen("x-forwarded-proto"),
                "x-forwarded-host": seen("x-forwarded-host"),
                "x-hop": seen("x-hop"),
                "mcp-session-id": seen("mcp-session-id"),
                "x-auth-subject": seen("x-auth-subject"),
                "x-auth-scopes": seen("x-auth-scopes"),
                "x-auth-client-id": seen("x-auth-client-id"),
                "path": request.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default(),
            });
            let body = request.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let echo: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let result =
                serde_json::json!({"jsonrpc": "2.0", "id": echo["id"], "result": {"echo": echo, "headers": headers}});
            let mut r = Response::new(full(result.to_string().into_bytes()));
            r.headers_mut().insert("mcp-session-id", "session-1".parse().expect("a header value"));
            r.headers_mut().insert("connection", "x-upstream-hop".parse().expect("a header value"));
            r.headers_mut().insert("x-upstream-hop", "secret".parse().expect("a header value"));
            r
        }
        (Method::GET, "/mcp/sse") => {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"event: message\ndata: {\"n\":1}\n\n")).await;
                tokio::time::sleep(SSE_GAP).await;
                let _ = tx.send(Bytes::from_static(b"event: message\ndata: {\"n\":2}\n\n")).await;
            });
            let mut r = Response::new(http_body_util::Either::Right(Frames(rx)));
            r.headers_mut().insert("content-type", "text/event-stream".parse().expect("a header value"));
            r
        }
        (Method::POST, "/mcp/count") => {
            let mut body = request.into_body();
            let mut total = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                total += frame.data_ref().map_or(0, |d| d.len());
            }
            Response::new(full(total.to_string().into_bytes()))
        }
        (Method::GET, "/mcp/slow") => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Response::new(full(b"late".to_vec()))
        }
        _ => {
            let mut r = Response::new(full(b"{}".to_vec()));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    Ok(response)
}

async fn gated_edge(mcp: SocketAddr, extra: &[&str]) -> (Upstream, Edge) {
    let auth_server = Upstream::serving().await;
    let target = format!("http://{mcp}");
    let mut args = vec!["--upstream", target.as_str(), "--token-check", "presence", "--scope", "mcp:tools"];
    // Every origin allowed, as the answers below are written, unless the test lists its own; the
    // default (the resource's own origin) is tested in tests/harden.rs.
    if !extra.contains(&"--cors-origin") {
        args.extend(["--cors-origin", "*"]);
    }
    args.extend_from_slice(extra);
    let edge = Edge::ready_for(&auth_server, &args).await;
    (auth_server, edge)
}

#[tokio::test]
async fn no_token_gets_the_challenge_byte_for_byte() {
    let (_as, edge) = gated_edge(mcp_server().await, &[]).await;
    let reply = request(edge.addr, Method::POST, "/mcp", &[("content-type", "application/json")]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header("www-authenticate"),
        "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\""
    );
    assert_eq!(
        &reply.body[..],
        br#"{"error":"invalid_token","error_description":"This resource needs an OAuth bearer token; see WWW-Authenticate for where to get one"}"#
    );
    assert_eq!(reply.header("access-control-allow-origin"), "*");
    assert_eq!(reply.header("access-control-expose-headers"), "WWW-Authenticate");
    assert_eq!(reply.header("content-type"), "application/json");
    // Other schemes are "no bearer credential" too (RFC 6750 §3.1).
    let basic = request(edge.addr, Method::GET, "/mcp", &[("authorization", "Basic dXNlcjpwYXNz")]).await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    // The documents stay public behind the gate.
    assert_eq!(edge.get(support::PRM_PATH).await.status, StatusCode::OK);
    assert!(edge.metrics().await.contains("mcp_auth_edge_requests_total{route=\"mcp\",status=\"401\"} 2"));
}

#[tokio::test]
async fn malformed_authorization_is_a_bad_request() {
    let (_as, edge) = gated_edge(mcp_server().await, &[]).await;
    for value in ["Bearer", "Bearer two words", "Bearer bad\"quote"] {
        let reply = request(edge.addr, Method::POST, "/mcp", &[("authorization", value)]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{value}");
        assert!(reply.header("www-authenticate").contains("error=\"invalid_request\""), "{value}");
        assert_eq!(reply.json()["error"], "invalid_request");
    }
}

#[tokio::test]
async fn preflight_is_answered_without_a_token() {
    let (_as, edge) = gated_edge(mcp_server().await, &[]).await;
    let reply = request(
        edge.addr,
        Method::OPTIONS,
        "/mcp",
        &[("origin", "https://app.example"), ("access-control-request-method", "POST")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("access-control-allow-methods"), "GET, POST, DELETE, OPTIONS");
    let allowed = reply.header("access-control-allow-headers").to_ascii_lowercase();
    for name in ["authorization", "content-type", "accept", "mcp-session-id", "mcp-protocol-version", "last-event-id"] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }
    assert_eq!(reply.header("access-control-expose-headers"), "Mcp-Session-Id, WWW-Authenticate");
}

#[tokio::test]
async fn a_bearer_request_is_forwarded_with_proxy_headers() {
    let (_as, edge) = gated_edge(mcp_server().await, &[]).await;
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;
    let stream = TcpStream::connect(edge.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let request = Request::post("/mcp?x=1")
        .header("host", "mcp.example.com")
        .header("authorization", TOKEN)
        .header("content-type", "application/json")
        .header("connection", "x-hop")
        .header("x-hop", "must not pass")
        .header("mcp-session-id", "session-1")
        .body(Full::new(Bytes::from(body)))
        .expect("a request");
    let response = sender.send_request(request).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["mcp-session-id"], "session-1");
    assert!(response.headers().get("x-upstream-hop").is_none(), "the upstream's hop-by-hop field is removed");
    // No Origin: no browser reads it across origins, so no CORS fields (the test below
    // sends one).
    assert!(response.headers().get("access-control-allow-origin").is_none());
    assert_eq!(response.headers()["vary"], "Origin");
    let bytes = response.into_body().collect().await.expect("a body").to_bytes();
    let reply: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(reply["id"], 7);
    assert_eq!(reply["result"]["echo"]["method"], "tools/list");
    let seen = &reply["result"]["headers"];
    assert_eq!(seen["authorization"], TOKEN);
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "https", "the public scheme of {RESOURCE}");
    assert_eq!(seen["x-forwarded-host"], "mcp.example.com");
    assert_eq!(seen["x-hop"], "", "a field named by Connection is hop-by-hop");
    assert_eq!(seen["path"], "/mcp?x=1");
    let metrics = edge.metrics().await;
    assert!(metrics.contains("mcp_auth_edge_upstream_responses_total{class=\"2xx\"} 1"), "{metrics}");
    // From a browser (with Origin), the answer and its session id can be read.
    let headers = [("origin", "https://app.example"), ("authorization", TOKEN)];
    let from_app = support::request(edge.addr, Method::POST, "/mcp", &headers).await;
    assert_eq!(from_app.status, StatusCode::OK);
    assert_eq!(from_app.header("access-control-allow-origin"), "*");
    assert_eq!(from_app.header("access-control-expose-headers"), "Mcp-Session-Id, WWW-Authenticate");
}

#[tokio::test]
async fn listed_cors_origins_only() {
    let (_as, edge) = gated_edge(mcp_server().await, &["--cors-origin", "https://app.example"]).await;
    let preflight = |origin: &'static str| {
        let addr = edge.addr;
        async move {
            request(addr, Method::OPTIONS, "/mcp", &[("origin", origin), ("access-control-request-method", "POST")])
                .await
        }
    };
    let allowed = preflight("https://app.example").await;
    assert_eq!(allowed.header("access-control-allow-origin"), "https://app.example");
    assert_eq!(allowed.header("vary"), "Origin");
    // An unlisted origin is refused, preflight or not, with no CORS grant.
    let other = preflight("https://evil.example").await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(other.headers.get("access-control-allow-origin").is_none());
    let other =
        request(edge.addr, Method::POST, "/mcp", &[("origin", "https://evil.example"), ("authorization", TOKEN)]);
    assert_eq!(other.await.status, StatusCode::FORBIDDEN);
    let challenge = request(edge.addr, Method::POST, "/mcp", &[("origin", "https://app.example")]).await;
    assert_eq!(challenge.status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.header("access-control-allow-origin"), "https://app.example");
    let forwarded =
        request(edge.addr, Method::POST, "/mcp", &[("origin", "https://app.example"), ("authorization", TOKEN)]).await;
    assert_eq!(forwarded.status, StatusCode::OK);
    assert_eq!(forwarded.header("access-control-allow-origin"), "https://app.example");
}

#[tokio::test]
async fn sse_events_stream_through_as_they_come() {
    let (_as, edge) = gated_edge(mcp_server().await, &[]).await;
    let stream = TcpStream::connect(edge.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let request = Request::get("/mcp/sse")
        .header("host", "mcp.example.com")
        .header("authorization", TOKEN)
        .header("accept", "text/event-stream")
        .body(Full::new(Bytes::new()))
        .expect("a request");
    let started = Instant::now();
    let response = sender.send_request(request).await.expect("a response");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let first = body.frame().await.expect("a first frame").expect("no error").into_data().expect("data");
    let first_at = started.elapsed();
    assert!(first.starts_with(b"event: message\ndata: {\"n\":1}"), "{first:?}");
    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("no error").into_data() {
            rest.extend_from_slice(&data);
        }
    }
    let ended_at = started.elapsed();
    assert!(rest.starts_with(b"event: message\ndata: {\"n\":2}"));
    // The first event was not held back until the stream ended.
    assert!(ended_at >= first_at + SSE_GAP / 2, "first at {first_at:?}, end at {ended_at:?}");
}

#[tokio::test]
async fn a_large_upload_streams_through() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 320; // 20 MiB
                               // Over the default --max-body-bytes (16 MiB), so the limit is raised to fit.
    let (_as, edge) = gated_edge(mcp_server().await, &["--max-body-bytes", "20971520"]).await;
    let stream = TcpStream::connect(edge.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'x'; CHUNK]);
        for _ in 0..CHUNKS {
            if tx.send(chunk.clone()).await.is_err() {
                break;
            }
        }
    });
    let request = Request::post("/mcp/count")
        .header("host", "mcp.example.com")
        .header("authorization", TOKEN)
        .body(Frames(rx))
        .expect("a request");
    let response = sender.send_request(request).await.expect("a response");
    let bytes = response.into_body().collect().await.expect("a body").to_bytes();
    assert_eq!(bytes, (CHUNK * CHUNKS).to_string());
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_is_504() {
    // A port that was free a moment ago: nothing listens there.
    let down = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let (_as, edge) = gated_edge(down, &[]).await;
    let reply = request(edge.addr, Method::POST, "/mcp", &[("authorization", TOKEN)]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.json()["error"], "bad_gateway");
    assert!(edge.metrics().await.contains("mcp_auth_edge_upstream_errors_total 1"));

    let (_as2, slow_edge) = gated_edge(mcp_server().await, &["--upstream-timeout", "0.3"]).await;
    let reply = request(slow_edge.addr, Method::GET, "/mcp/slow", &[("authorization", TOKEN)]).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.json()["error"], "gateway_timeout");
    assert!(slow_edge.metrics().await.contains("mcp_auth_edge_upstream_timeouts_total 1"));
}

// ---------------------------------------------------------------------------------------------
// jwt mode: tokens checked at the edge against the authorization server's JWKS

mod jwt_mode {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    use std::time::{SystemTime, UNIX_EPOCH};
    use support::{Canned, AS_PATH};

    /// An Ed25519 signing key generated for the test, with its `kid`.
    struct Signer {
        kid: &'static str,
        pair: Ed25519KeyPair,
    }

    impl Signer {
        fn new(kid: &'static str) -> Signer {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("an Ed25519 key");
            Signer { kid, pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("the key reads back") }
        }

        fn jwk(&self) -> serde_json::Value {
            let x = URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref());
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "use": "sig", "alg": "EdDSA"})
        }

        fn sign(&self, claims: &serde_json::Value) -> String {
            let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid});
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = self.pair.sign(input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
        }
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
    }

    fn jwks(signers: &[&Signer]) -> Vec<u8> {
        serde_json::json!({"keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>()}).to_string().into_bytes()
    }

    /// An authorization server stand-in publishing metadata with a `jwks_uri` and `keys`.
    async fn auth_server(keys: &[&Signer]) -> Upstream {
        let server = Upstream::start().await;
        let issuer = server.issuer();
        let metadata = serde_json::json!({
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

    fn claims(issuer: &str) -> serde_json::Value {
        serde_json::json!({
            "iss": issuer, "aud": RESOURCE, "sub": "user-1", "scope": "mcp:tools mcp:read",
            "exp": now() + 600, "iat": now(), "client_id": "app",
        })
    }

    async fn edge(server: &Upstream, extra: &[&str]) -> Edge {
        let target = format!("http://{}", mcp_server().await);
        let mut args = vec!["--upstream", target.as_str(), "--token-check", "jwt", "--cors-origin", "*"];
        args.extend_from_slice(extra);
        Edge::ready_for(server, &args).await
    }

    async fn call(edge: &Edge, token: &str) -> support::Reply {
        let bearer = format!("Bearer {token}");
        request(edge.addr, Method::POST, "/mcp", &[("authorization", bearer.as_str())]).await
    }

    #[tokio::test]
    async fn a_valid_token_is_forwarded_and_bad_ones_get_invalid_token() {
        let key = Signer::new("k1");
        let server = auth_server(&[&key]).await;
        let edge = edge(&server, &[]).await;
        let issuer = server.issuer();

        let good = call(&edge, &key.sign(&claims(&issuer))).await;
        assert_eq!(good.status, StatusCode::OK, "{}", good.text());

        let mut expired = claims(&issuer);
        expired["exp"] = (now() - 600).into();
        let mut wrong_audience = claims(&issuer);
        wrong_audience["aud"] = "https://other.example/mcp".into();
        let mut wrong_issuer = claims(&issuer);
        wrong_issuer["iss"] = "https://evil.example".into();
        let mut later = claims(&issuer);
        later["nbf"] = (now() + 600).into();
        let forged = Signer::new("k1").sign(&claims(&issuer));
        let header_none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#);
        let unsigned = format!("{header_none}.{}.", URL_SAFE_NO_PAD.encode(claims(&issuer).to_string()));
        let cases = [
            (key.sign(&expired), "token has expired"),
            (key.sign(&wrong_audience), "token audience does not include this resource"),
            (key.sign(&wrong_issuer), "token issuer not accepted"),
            (key.sign(&later), "token is not yet valid"),
            (forged, "token signature is invalid"),
            (unsigned, "token signing algorithm not accepted"),
        ];
        for (token, description) in cases {
            let reply = call(&edge, &token).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{description}");
            assert_eq!(
                reply.header("www-authenticate"),
                format!(
                    "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", \
                     error=\"invalid_token\", error_description=\"{description}\""
                )
            );
            assert_eq!(reply.json(), serde_json::json!({"error": "invalid_token", "error_description": description}));
        }
    }

    #[tokio::test]
    async fn a_token_without_a_required_scope_is_forbidden() {
        let key = Signer::new("k1");
        let server = auth_server(&[&key]).await;
        let edge = edge(&server, &["--required-scope", "mcp:admin"]).await;
        let reply = call(&edge, &key.sign(&claims(&server.issuer()))).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert!(reply.header("www-authenticate").contains("error=\"insufficient_scope\""));
        assert!(reply.header("www-authenticate").contains("scope=\"mcp:admin\""));
        assert_eq!(reply.json()["error"], "insufficient_scope");
    }

    #[tokio::test]
    async fn strip_authorization_passes_the_verified_subject_and_scopes_instead() {
        let key = Signer::new("k1");
        let server = auth_server(&[&key]).await;
        let edge = edge(&server, &["--strip-authorization"]).await;
        let bearer = format!("Bearer {}", key.sign(&claims(&server.issuer())));
        let headers = [
            ("authorization", bearer.as_str()),
            ("x-auth-subject", "admin"),
            ("x-auth-scopes", "all"),
            ("x-auth-client-id", "trusted"),
        ];
        let reply = request(edge.addr, Method::POST, "/mcp", &headers).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let seen = &reply.json()["result"]["headers"];
        assert_eq!(seen["authorization"], "");
        assert_eq!(seen["x-auth-subject"], "user-1");
        assert_eq!(seen["x-auth-scopes"], "mcp:tools mcp:read");
        assert_eq!(seen["x-auth-client-id"], "app");
    }

    #[tokio::test]
    async fn an_extra_audience_is_accepted() {
        let key = Signer::new("k1");
        let server = auth_server(&[&key]).await;
        let edge = edge(&server, &["--audience", "api://mcp"]).await;
        let mut c = claims(&server.issuer());
        c["aud"] = serde_json::json!(["api://mcp"]);
        assert_eq!(call(&edge, &key.sign(&c)).await.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_the_keys_once() {
        let old = Signer::new("old");
        let new = Signer::new("new");
        let server = auth_server(&[&old]).await;
        // A long refresh period: only the on-demand refetch can bring the new key.
        let edge = edge(&server, &["--refresh", "300"]).await;
        let token = new.sign(&claims(&server.issuer()));
        let before = server.hits("/jwks");
        server.set("/jwks", Canned::ok(jwks(&[&old, &new])));
        let reply = call(&edge, &token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(server.hits("/jwks"), before + 1, "exactly one refetch");
        // Another unknown kid within the rate limit gets no further fetch.
        let stranger = Signer::new("stranger").sign(&claims(&server.issuer()));
        assert_eq!(call(&edge, &stranger).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(server.hits("/jwks"), before + 1, "rate-limited");
    }

    #[tokio::test]
    async fn a_rotated_key_is_picked_up_by_the_periodic_refresh() {
        let old = Signer::new("old");
        let new = Signer::new("new");
        let server = auth_server(&[&old]).await;
        let edge = edge(&server, &[]).await;
        // Use up the on-demand refetch while the new key is not published yet.
        let token = new.sign(&claims(&server.issuer()));
        assert_eq!(call(&edge, &token).await.status, StatusCode::UNAUTHORIZED);
        server.set("/jwks", Canned::ok(jwks(&[&new])));
        support::wait_until("the rotated key is accepted", || async {
            call(&edge, &token).await.status == StatusCode::OK
        })
        .await;
        assert_eq!(call(&edge, &old.sign(&claims(&server.issuer()))).await.status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn no_jwks_uri_stops_the_edge_with_a_reason() {
        let server = Upstream::serving().await;
        let edge = Edge::for_upstream(
            &server,
            &["--upstream", &format!("http://{}", mcp_server().await), "--token-check", "jwt"],
        )
        .await;
        let error = edge.finished().await.expect_err("the edge cannot check any token, so it stops");
        assert!(error.to_string().contains("names no jwks_uri"), "{error}");
    }

    #[tokio::test]
    async fn a_later_document_without_jwks_uri_is_refused_and_the_keys_stay() {
        let key = Signer::new("k1");
        let server = auth_server(&[&key]).await;
        let edge = edge(&server, &[]).await;
        let served = edge.get(AS_PATH).await.text();
        server.set(AS_PATH, Canned::ok(server.metadata(2)));
        edge.wait_metric_above("mcp_auth_edge_refresh_failure_total", 0.0).await;
        assert_eq!(edge.get(AS_PATH).await.text(), served, "the last good document stays in service");
        assert_eq!(call(&edge, &key.sign(&claims(&server.issuer()))).await.status, StatusCode::OK);
        assert_eq!(edge.admin_get("/readyz").await.status, StatusCode::OK);
    }
}
