//! `--demo`: a small built-in authorization server and an echo MCP server on loopback ports,
//! so the whole flow (challenge, discovery, forwarded call) can be tried with nothing else
//! running. The authorization server serves RFC 8414 metadata naming itself as issuer.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::respond::{Body, Reply};
use crate::serve::{self, Shutdown};

/// The metadata document of the demo authorization server at `issuer`.
pub fn metadata(issuer: &str) -> Bytes {
    let doc = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": ["mcp:tools", "mcp:resources"],
        "service_documentation": "https://modelcontextprotocol.io/specification/draft/basic/authorization",
    });
    Bytes::from(doc.to_string())
}

/// Serves the demo authorization server on `listener` until shutdown.
pub async fn run_authorization_server(listener: TcpListener, shutdown: Shutdown) -> io::Result<()> {
    let issuer = format!("http://{}", listener.local_addr()?);
    let document = Arc::new(metadata(&issuer));
    serve::serve(listener, shutdown, Duration::from_secs(1), move |request, _| {
        Reply::Ready(Some(answer(&document, &request)))
    })
    .await
}

fn answer<B>(document: &Bytes, request: &Request<B>) -> Response<Body> {
    let json = HeaderValue::from_static("application/json");
    let (status, body) = match request.uri().path() {
        "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration" => (StatusCode::OK, document.clone()),
        "/authorize" | "/token" | "/register" => (
            StatusCode::NOT_IMPLEMENTED,
            Bytes::from_static(br#"{"error":"temporarily_unavailable","error_description":"the demo authorization server only publishes metadata"}"#),
        ),
        _ => (StatusCode::NOT_FOUND, Bytes::from_static(br#"{"error":"not_found"}"#)),
    };
    let mut response = Response::new(Body::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, json);
    response
}

/// Serves the demo MCP server until shutdown: every `POST` gets a JSON-RPC result echoing the
/// request, so a forwarded call is visible end to end.
pub async fn run_mcp_echo(listener: TcpListener, shutdown: Shutdown) -> io::Result<()> {
    serve::serve(listener, shutdown, Duration::from_secs(1), |request, _| Reply::Forward(Box::pin(echo(request)))).await
}

async fn echo(request: Request<hyper::body::Incoming>) -> Response<Body> {
    use http_body_util::BodyExt;
    let bearer = request.headers().contains_key(header::AUTHORIZATION);
    let body = match http_body_util::Limited::new(request.into_body(), 1 << 20).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let call: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let result = serde_json::json!({
        "jsonrpc": "2.0",
        "id": call.get("id").cloned().unwrap_or(serde_json::Value::Null),
        "result": { "server": "mcp-auth-edge demo echo", "received": call, "bearer_token_forwarded": bearer },
    });
    let mut response = Response::new(Body::full(Bytes::from(result.to_string())));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The lines printed when the demo starts.
pub fn banner(edge: &str, issuer: &str, resource_path: &str) -> String {
    format!(
        "\nmcp-auth-edge demo\n\
         \x20 edge:                        {edge}\n\
         \x20 authorization server (demo): {issuer}\n\n\
         try:\n\
         \x20 curl -i {edge}/.well-known/oauth-protected-resource{resource_path}\n\
         \x20 curl -i {edge}/.well-known/oauth-authorization-server\n\
         \x20 curl -i -H 'If-None-Match: \"<etag from above>\"' {edge}/.well-known/oauth-authorization-server\n\
         \x20 curl -i -X OPTIONS -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: GET' \\\n\
         \x20      -H 'Access-Control-Request-Headers: mcp-protocol-version' {edge}/.well-known/oauth-authorization-server\n\
         \x20 curl -i -X POST {edge}/.well-known/oauth-authorization-server\n\n\
         the gate, in front of the demo MCP server (this build checks tokens for presence only):\n\
         \x20 curl -i -X POST {edge}{resource_path} -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}'\n\
         \x20 curl -i -X POST -H 'Authorization: Bearer demo-token' {edge}{resource_path} \\\n\
         \x20      -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}'\n\n\
         Ctrl-C stops it.\n"
    )
}
