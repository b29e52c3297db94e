//! The `--demo` servers: the built-in authorization server issues tokens that the edge, in its
//! default jwt mode, accepts and forwards to the built-in echo MCP server.

mod support;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use mcp_auth_edge::app::demo;
use mcp_auth_edge::shutdown::channel as shutdown_channel;
use support::{request, Edge, RESOURCE};
use tokio::net::{TcpListener, TcpStream};

/// POSTs a form to `url_path` on `addr` and returns the status and JSON body.
async fn post_form(addr: std::net::SocketAddr, path: &str, form: &'static str) -> (StatusCode, serde_json::Value) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let request = Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(form.as_bytes())))
        .expect("a request");
    let response = sender.send_request(request).await.expect("a response");
    let status = response.status();
    let body = response.into_body().collect().await.expect("a body").to_bytes();
    (status, serde_json::from_slice(&body).expect("a JSON body"))
}

#[tokio::test]
async fn demo_tokens_pass_the_gate_and_reach_the_echo_server() {
    let (_trigger, shutdown) = shutdown_channel();
    let auth = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (auth_addr, echo_addr) = (auth.local_addr().expect("address"), echo.local_addr().expect("address"));
    tokio::spawn(demo::run_authorization_server(auth, RESOURCE.to_string(), shutdown.clone()));
    tokio::spawn(demo::run_mcp_echo(echo, shutdown));

    let (issuer, upstream) = (format!("http://{auth_addr}"), format!("http://{echo_addr}"));
    let edge = Edge::start(&["--resource", RESOURCE, "--auth-server", &issuer, "--upstream", &upstream]).await;
    edge.wait_ready().await;

    let (status, refused) = post_form(auth_addr, "/token", "grant_type=password").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["error"], "unsupported_grant_type");

    let (status, granted) = post_form(auth_addr, "/token", "grant_type=client_credentials&scope=mcp%3Atools").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(granted["token_type"], "Bearer");
    assert_eq!(granted["scope"], "mcp:tools");
    let token = granted["access_token"].as_str().expect("an access token");

    let bearer = format!("Bearer {token}");
    let reply = request(edge.addr, Method::POST, "/mcp", &[("authorization", bearer.as_str())]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["result"]["bearer_token_forwarded"], true);

    let unsigned = request(edge.addr, Method::POST, "/mcp", &[("authorization", "Bearer a.b.c")]).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn demo_tokens_pass_the_gate_by_introspection_too() {
    let (_trigger, shutdown) = shutdown_channel();
    let auth = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (auth_addr, echo_addr) = (auth.local_addr().expect("address"), echo.local_addr().expect("address"));
    tokio::spawn(demo::run_authorization_server(auth, RESOURCE.to_string(), shutdown.clone()));
    tokio::spawn(demo::run_mcp_echo(echo, shutdown));

    let (issuer, upstream) = (format!("http://{auth_addr}"), format!("http://{echo_addr}"));
    let edge = Edge::start(&[
        "--resource",
        RESOURCE,
        "--auth-server",
        &issuer,
        "--upstream",
        &upstream,
        "--token-check",
        "introspect",
        "--introspection-client-id",
        "demo",
        "--introspection-client-secret",
        "demo",
    ])
    .await;
    edge.wait_ready().await;

    let (status, granted) = post_form(auth_addr, "/token", "grant_type=client_credentials").await;
    assert_eq!(status, StatusCode::OK);
    let bearer = format!("Bearer {}", granted["access_token"].as_str().expect("an access token"));
    let reply = request(edge.addr, Method::POST, "/mcp", &[("authorization", bearer.as_str())]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    // The demo server introspects only for a client with credentials, and knows only its tokens.
    let (status, _) = post_form(auth_addr, "/introspect", "token=x").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let forged = request(edge.addr, Method::POST, "/mcp", &[("authorization", "Bearer a.b.c")]).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.json()["error_description"], "token is not active");
}

/// `--demo` as a user runs it, the binary itself: the challenge names the base scope; the demo
/// policy's admin tool is left out of the base token's `tools/list` and shows a step-up: 403
/// naming `mcp:admin` with the demo token, listed and 200 once a token with that scope is
/// asked for.
#[tokio::test]
async fn the_demo_shows_a_step_up() {
    let (port, admin_port) = (support::free_port(), support::free_port());
    let (listen, admin) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{admin_port}"));
    let mut process = support::Process::spawn(&["--demo", "--listen", &listen, "--admin-listen", &admin], &[]);
    let edge: std::net::SocketAddr = listen.parse().expect("an address");
    support::wait_ready(admin.parse().expect("an address")).await;

    let challenge = request(edge, Method::POST, "/mcp", &[]).await;
    assert_eq!(challenge.status, StatusCode::UNAUTHORIZED);
    assert!(challenge.header("www-authenticate").ends_with(", scope=\"mcp:tools\""), "{challenge:?}");
    let prm = request(edge, Method::GET, "/.well-known/oauth-protected-resource/mcp", &[]).await.json();
    assert_eq!(prm["scopes_supported"], serde_json::json!(["mcp:tools", "mcp:admin"]));
    let issuer = prm["authorization_servers"][0].as_str().expect("an issuer").to_string();
    let auth: std::net::SocketAddr = issuer.trim_start_matches("http://").parse().expect("the demo issuer's address");

    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"admin_reset"}}"#;
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let ask_with = |token: &str, body: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {listen}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let ask = |token: &str| ask_with(token, call);
    let (_, base) = post_form(auth, "/token", "grant_type=client_credentials").await;
    let base = base["access_token"].as_str().expect("a token").to_string();
    let listed = support::normalized(&support::raw_exchange(edge, &ask_with(&base, list)).await);
    assert!(listed.starts_with("HTTP/1.1 200 OK\r\n"), "{listed}");
    assert!(listed.contains("\"name\":\"read_notes\""), "the open tool is listed: {listed}");
    assert!(!listed.contains("admin_reset"), "the admin tool is left out for the base scope: {listed}");
    assert!(listed.contains("\"cacheScope\":\"private\""), "a filtered list is private: {listed}");
    let refused = support::normalized(&support::raw_exchange(edge, &ask(&base)).await);
    assert!(refused.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{refused}");
    assert!(
        refused.contains("www-authenticate: Bearer error=\"insufficient_scope\", scope=\"mcp:admin mcp:tools\""),
        "{refused}"
    );
    let (_, admin_token) =
        post_form(auth, "/token", "grant_type=client_credentials&scope=mcp%3Atools+mcp%3Aadmin").await;
    let admin_token = admin_token["access_token"].as_str().expect("a token").to_string();
    let listed = support::normalized(&support::raw_exchange(edge, &ask_with(&admin_token, list)).await);
    assert!(listed.contains("\"name\":\"admin_reset\""), "the admin tool is listed with mcp:admin: {listed}");
    let allowed = support::normalized(&support::raw_exchange(edge, &ask(&admin_token)).await);
    assert!(allowed.starts_with("HTTP/1.1 200 OK\r\n"), "{allowed}");
    assert!(allowed.contains("admin_reset"), "the echo server got the call: {allowed}");

    process.signal("TERM");
    assert!(process.wait_exit(support::PATIENCE).await.success());
}
