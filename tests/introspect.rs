//! `--token-check introspect`: opaque tokens checked at a real RFC 7662 endpoint over loopback,
//! with the edge's client credentials, its verdict cache, and the authorization server failing.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use support::{request, Edge, AS_PATH, RESOURCE};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const CLIENT_ID: &str = "mcp-edge";
const CLIENT_SECRET: &str = "s3cret:with@odd chars";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// What the authorization server knows and what it has been asked.
#[derive(Default)]
struct Book {
    /// Introspection answers by token; tokens not listed are inactive.
    answers: HashMap<String, Value>,
    /// Every introspection request's token, in order.
    asked: Vec<String>,
    /// Requests refused for bad client credentials or a bad request form.
    refused: usize,
    /// Metadata with or without an `introspection_endpoint`.
    hide_endpoint: bool,
    /// Answer introspection with a 200 that is not JSON.
    garble: bool,
}

/// An authorization server with RFC 8414 metadata and an RFC 7662 endpoint that checks the
/// caller's `client_secret_basic` credentials. [`AuthServer::kill`] closes the port and every
/// open connection, so the edge meets a server that is really gone.
struct AuthServer {
    addr: SocketAddr,
    book: Arc<Mutex<Book>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl AuthServer {
    async fn start(hide_endpoint: bool) -> AuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the authorization server");
        let addr = listener.local_addr().expect("address");
        let book = Arc::new(Mutex::new(Book { hide_endpoint, ..Book::default() }));
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (shared, connections) = (Arc::clone(&book), Arc::clone(&tasks));
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let book = Arc::clone(&shared);
                let service = service_fn(move |r| answer(addr, Arc::clone(&book), r));
                let connection = tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                connections.lock().expect("tasks lock").push(connection);
            }
        });
        tasks.lock().expect("tasks lock").push(accept);
        AuthServer { addr, book, tasks }
    }

    fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn grant(&self, token: &str, answer: Value) {
        self.book.lock().expect("book lock").answers.insert(token.to_string(), answer);
    }

    fn revoke(&self, token: &str) {
        self.book.lock().expect("book lock").answers.remove(token);
    }

    fn asked(&self, token: &str) -> usize {
        self.book.lock().expect("book lock").asked.iter().filter(|t| *t == token).count()
    }

    fn refused(&self) -> usize {
        self.book.lock().expect("book lock").refused
    }

    fn garble(&self) {
        self.book.lock().expect("book lock").garble = true;
    }

    /// An active answer for this resource, as a real server gives for a good token.
    fn active(&self, scope: &str, exp: u64) -> Value {
        json!({
            "active": true, "iss": self.issuer(), "aud": RESOURCE, "sub": "user-7", "client_id": "app",
            "scope": scope, "exp": exp, "iat": now(), "token_type": "Bearer",
        })
    }

    fn kill(&self) {
        for task in self.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn answer(
    addr: SocketAddr,
    book: Arc<Mutex<Book>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let issuer = format!("http://{addr}");
    let reply = |status: u16, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = StatusCode::from_u16(status).expect("a status");
        r.headers_mut().insert("content-type", "application/json".parse().expect("a header value"));
        Ok(r)
    };
    match (request.method().clone(), request.uri().path()) {
        (Method::GET, AS_PATH) => {
            let mut doc = json!({
                "issuer": issuer, "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"), "response_types_supported": ["code"],
                "introspection_endpoint": format!("{issuer}/introspect"),
            });
            if book.lock().expect("book lock").hide_endpoint {
                doc.as_object_mut().expect("an object").remove("introspection_endpoint");
            }
            reply(200, doc.to_string())
        }
        (Method::POST, "/introspect") => {
            let basic = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
            let form = request.headers().get("content-type").is_some_and(|v| v == "application/x-www-form-urlencoded");
            let body = request.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let mut book = book.lock().expect("book lock");
            let Some(token) = token_of(&body).filter(|_| form && basic.as_deref() == Some(expected_basic().as_str()))
            else {
                book.refused += 1;
                return reply(401, r#"{"error":"invalid_client"}"#.into());
            };
            book.asked.push(token.clone());
            // As oidc-provider does: JWTs are refused as a token type, not called inactive.
            if token.matches('.').count() == 2 {
                return reply(400, r#"{"error":"unsupported_token_type"}"#.into());
            }
            if book.garble {
                return reply(200, "<html>maintenance</html>".into());
            }
            let answer = book.answers.get(&token).cloned().unwrap_or_else(|| json!({"active": false}));
            reply(200, answer.to_string())
        }
        _ => reply(404, "{}".into()),
    }
}

/// `client_secret_basic` as RFC 6749 §2.3.1 has it: each part form-encoded, then base64.
fn expected_basic() -> String {
    let pair = format!("{}:{}", form_encode(CLIENT_ID), form_encode(CLIENT_SECRET));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'*' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// The `token` of an introspection form, which must also say `token_type_hint=access_token`.
fn token_of(body: &[u8]) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    let pairs: HashMap<&str, &str> = body.split('&').filter_map(|p| p.split_once('=')).collect();
    (pairs.get("token_type_hint") == Some(&"access_token")).then_some(())?;
    form_decode(pairs.get("token")?)
}

/// The MCP server: echoes which credentials reached it.
async fn mcp_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the MCP stand-in");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|request: Request<Incoming>| async move {
                let seen =
                    |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let body = json!({
                    "authorization": seen("authorization"),
                    "x-auth-subject": seen("x-auth-subject"),
                    "x-auth-scopes": seen("x-auth-scopes"),
                    "x-auth-client-id": seen("x-auth-client-id"),
                });
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    addr
}

/// The edge in introspect mode in front of a fresh MCP server, started but not yet ready.
async fn start_edge(server: &AuthServer, secret: &str, extra: &[&str]) -> Edge {
    let target = format!("http://{}", mcp_server().await);
    let issuer = server.issuer();
    let mut args = vec![
        "--resource",
        RESOURCE,
        "--auth-server",
        &issuer,
        "--upstream",
        &target,
        "--token-check",
        "introspect",
        "--introspection-client-id",
        CLIENT_ID,
        "--introspection-client-secret",
        secret,
    ];
    args.extend_from_slice(extra);
    Edge::start(&args).await
}

async fn edge(server: &AuthServer, extra: &[&str]) -> Edge {
    let edge = start_edge(server, CLIENT_SECRET, extra).await;
    edge.wait_ready().await;
    edge
}

async fn call(edge: &Edge, token: &str) -> support::Reply {
    let bearer = format!("Bearer {token}");
    request(edge.addr, Method::POST, "/mcp", &[("authorization", bearer.as_str())]).await
}

fn challenge(description: &str) -> String {
    format!(
        "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", \
         error=\"invalid_token\", error_description=\"{description}\""
    )
}

#[tokio::test]
async fn an_active_token_is_forwarded_and_its_verdict_reused() {
    let server = AuthServer::start(false).await;
    // b64token characters that need form encoding on the way to the endpoint.
    let token = "opaque+token/with=";
    server.grant(token, server.active("mcp:tools", now() + 600));
    let edge = edge(&server, &[]).await;

    let first = call(&edge, token).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.json()["authorization"], format!("Bearer {token}"));
    let second = call(&edge, token).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(server.asked(token), 1, "the second call is answered from the cache");
    assert_eq!(server.refused(), 0, "the edge authenticated with its client credentials");
}

#[tokio::test]
async fn inactive_and_foreign_tokens_get_invalid_token() {
    let server = AuthServer::start(false).await;
    let mut foreign = server.active("mcp:tools", now() + 600);
    foreign["aud"] = json!(["https://other.example/mcp"]);
    server.grant("foreign", foreign);
    let mut other_issuer = server.active("mcp:tools", now() + 600);
    other_issuer["iss"] = json!("https://evil.example");
    server.grant("other-issuer", other_issuer);
    server.grant("expired", server.active("mcp:tools", now() - 120));
    let edge = edge(&server, &[]).await;

    let cases = [
        ("never-issued", "token is not active"),
        ("a.jwt.shaped", "token is not active"),
        ("foreign", "token audience does not include this resource"),
        ("other-issuer", "token issuer not accepted"),
        ("expired", "token has expired"),
    ];
    for (token, description) in cases {
        let reply = call(&edge, token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(reply.header("www-authenticate"), challenge(description), "{token}");
        assert_eq!(reply.json(), json!({"error": "invalid_token", "error_description": description}));
    }
    // Refusals are not cached: the same bad token is asked about again.
    call(&edge, "never-issued").await;
    assert_eq!(server.asked("never-issued"), 2);
}

#[tokio::test]
async fn the_cache_never_outlives_the_tokens_exp() {
    let server = AuthServer::start(false).await;
    let exp = now() + 1;
    server.grant("short-lived", server.active("mcp:tools", exp));
    let edge = edge(&server, &[]).await;
    assert_eq!(call(&edge, "short-lived").await.status, StatusCode::OK);
    assert_eq!(server.asked("short-lived"), 1);
    // Past exp (and the server, as real ones do, now calls it inactive).
    while now() <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.revoke("short-lived");
    let reply = call(&edge, "short-lived").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.asked("short-lived"), 2, "an expired verdict is not reused");
}

#[tokio::test]
async fn a_revocation_is_seen_once_the_cache_period_is_over() {
    let server = AuthServer::start(false).await;
    server.grant("t1", server.active("mcp:tools", now() + 600));
    let edge = edge(&server, &["--introspection-cache", "0"]).await;
    assert_eq!(call(&edge, "t1").await.status, StatusCode::OK);
    server.revoke("t1");
    let reply = call(&edge, "t1").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error_description"], "token is not active");
}

#[tokio::test]
async fn an_unreachable_or_garbled_server_is_503_never_a_pass() {
    let server = AuthServer::start(false).await;
    server.grant("known", server.active("mcp:tools", now() + 600));
    server.grant("new", server.active("mcp:tools", now() + 600));
    let edge = edge(&server, &[]).await;
    assert_eq!(call(&edge, "known").await.status, StatusCode::OK);

    server.garble();
    let reply = call(&edge, "new").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text());
    assert_eq!(reply.json()["error"], "temporarily_unavailable");
    assert!(reply.header("retry-after").parse::<u32>().is_ok());

    server.kill();
    let reply = call(&edge, "new").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text());
    // A verdict given before the server went away still holds within its cache period.
    assert_eq!(call(&edge, "known").await.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_client_credentials_are_503_not_a_pass() {
    let server = AuthServer::start(false).await;
    server.grant("t1", server.active("mcp:tools", now() + 600));
    let edge = start_edge(&server, "wrong", &[]).await;
    edge.wait_ready().await;
    assert_eq!(call(&edge, "t1").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.refused(), 1);
}

#[tokio::test]
async fn scopes_from_the_answer_gate_and_are_passed_on() {
    let server = AuthServer::start(false).await;
    server.grant("reader", server.active("mcp:read", now() + 600));
    server.grant("admin", server.active("mcp:read mcp:admin", now() + 600));
    let edge = edge(&server, &["--required-scope", "mcp:admin", "--strip-authorization"]).await;
    let reply = call(&edge, "reader").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let challenge = reply.header("www-authenticate");
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"mcp:admin\""),
        "{challenge}"
    );
    let reply = call(&edge, "admin").await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = reply.json();
    assert_eq!(seen["authorization"], "");
    assert_eq!(seen["x-auth-subject"], "user-7");
    assert_eq!(seen["x-auth-scopes"], "mcp:read mcp:admin");
    assert_eq!(seen["x-auth-client-id"], "app");
}

#[tokio::test]
async fn no_introspection_endpoint_stops_the_edge_with_a_reason() {
    let server = AuthServer::start(true).await;
    let error =
        start_edge(&server, CLIENT_SECRET, &[]).await.finished().await.expect_err("the edge cannot check any token");
    assert!(error.to_string().contains("names no introspection_endpoint"), "{error}");
}

/// Asks the edge for an SSE stream with `token`; the answer comes through the handle.
async fn open_stream(addr: SocketAddr, token: &str) -> JoinHandle<hyper::Result<Response<Incoming>>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let request = Request::get("/mcp")
        .header("host", "mcp.example.com")
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/event-stream")
        .body(Full::new(Bytes::new()))
        .expect("a request");
    tokio::spawn(async move { sender.send_request(request).await })
}

/// A stream opened with an opaque token ends, between two events, once the authorization
/// server asked again (`--stream-recheck`) no longer calls the token active; a stream whose
/// token holds is left alone.
#[tokio::test]
async fn a_stream_ends_when_its_token_is_revoked() {
    use support::mcp::McpServer;
    let server = AuthServer::start(false).await;
    let (revoked, kept) = ("stream-token-revoked", "stream-token-kept");
    server.grant(revoked, server.active("mcp:tools", now() + 600));
    server.grant(kept, server.active("mcp:tools", now() + 600));
    let mcp = McpServer::start().await;
    let upstream = mcp.url();
    let edge = edge(&server, &["--upstream", &upstream, "--stream-recheck", "0.3"]).await;
    let first = open_stream(edge.addr, revoked).await;
    let revoked_stream = mcp.next_stream().await;
    let second = open_stream(edge.addr, kept).await;
    let kept_stream = mcp.next_stream().await;
    let event = "data: {}\n\n";
    assert!(revoked_stream.send(event).await && kept_stream.send(event).await);
    let patience = support::PATIENCE;
    let mut revoked_body = tokio::time::timeout(patience, first).await.expect("a head").expect("no panic").expect("ok");
    let mut kept_body = tokio::time::timeout(patience, second).await.expect("a head").expect("no panic").expect("ok");
    let (revoked_body, kept_body) = (revoked_body.body_mut(), kept_body.body_mut());
    for body in [&mut *revoked_body, &mut *kept_body] {
        let frame = tokio::time::timeout(patience, body.frame()).await.expect("a frame");
        assert_eq!(frame.expect("a frame").expect("data").into_data().expect("data"), event);
    }
    server.revoke(revoked);
    let end = tokio::time::timeout(patience, revoked_body.frame()).await.expect("the stream ends");
    assert!(end.is_none(), "a clean end: {end:?}");
    tokio::time::timeout(patience, revoked_stream.closed()).await.expect("the MCP server's stream released");
    // The other stream still flows after several rechecks.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(kept_stream.send(event).await, "still open upstream");
    let frame = tokio::time::timeout(patience, kept_body.frame()).await.expect("a frame");
    assert_eq!(frame.expect("a frame").expect("data").into_data().expect("data"), event);
    assert!(server.asked(kept) >= 3, "asked again on the interval: {}", server.asked(kept));
    assert_eq!(edge.metric("mcp_auth_edge_streams_ended_total{reason=\"revoked\"}").await, 1.0);
}
