//! `--demo`: a small built-in authorization server and an echo MCP server on loopback ports,
//! so the whole flow (challenge, discovery, forwarded call) can be tried with nothing else
//! running. The authorization server serves RFC 8414 metadata naming itself as issuer, and
//! can answer RFC 7662 introspection, so `--token-check introspect` can be tried too.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::net::TcpListener;

use crate::gate::jwt;
use crate::serve;
use crate::shutdown::Shutdown;

type Body = Full<Bytes>;
/// The demo servers' answers: ready, or made by a task that reads the request's body.
type Reply = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// The metadata document of the demo authorization server at `issuer`.
pub fn metadata(issuer: &str) -> Bytes {
    let doc = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "response_types_supported": ["code"],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "none"],
        "scopes_supported": ["mcp:tools", "mcp:resources", "mcp:admin"],
        "service_documentation": "https://modelcontextprotocol.io/specification/draft/basic/authorization",
    });
    Bytes::from(doc.to_string())
}

/// The demo authorization server: its metadata, a signing key made at start and published as
/// its JWKS, a token endpoint that grants `client_credentials` to anyone and an introspection
/// endpoint that answers any client with Basic credentials (it is a demo).
struct AuthServer {
    issuer: String,
    /// The `aud` of the tokens it issues: the edge's resource.
    audience: String,
    document: Bytes,
    jwks: Bytes,
    /// The same key set, parsed, for checking its own tokens at introspection.
    keys: jwt::JwkSet,
    key: ring::signature::Ed25519KeyPair,
}

const DEMO_KID: &str = "demo-1";

/// The demo's MCP policy: every operation open to the resource's tokens, except the tools named
/// `admin_*`, which need `mcp:admin`; so `--demo` shows a step-up with curl.
pub fn policy() -> serde_json::Value {
    serde_json::json!({
        "default": "allow",
        "rules": [{"method": "tools/call", "name": "admin_*", "scopes": ["mcp:admin"]}],
    })
}

/// Serves the demo authorization server on `listener` until shutdown. Its tokens are issued
/// for `audience` (the resource URL) and signed with a fresh Ed25519 key.
pub async fn run_authorization_server(listener: TcpListener, audience: String, shutdown: Shutdown) -> io::Result<()> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let issuer = format!("http://{}", listener.local_addr()?);
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| io::Error::other("cannot make a demo signing key"))?;
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| io::Error::other("cannot read the demo key"))?;
    let x = URL_SAFE_NO_PAD.encode(key.public_key().as_ref());
    let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": DEMO_KID, "use": "sig", "alg": "EdDSA"}]});
    let jwks = Bytes::from(jwks.to_string());
    let keys = jwt::JwkSet::parse(&jwks).map_err(|e| io::Error::other(format!("demo JWKS: {e}")))?;
    let server = Arc::new(AuthServer { document: metadata(&issuer), jwks, keys, issuer, audience, key });
    serve::serve(listener, shutdown, Duration::from_secs(1), move |request, _| -> Reply {
        let server = Arc::clone(&server);
        Box::pin(async move {
            Ok(match request.uri().path() {
                "/token" => token(server, request).await,
                "/introspect" => introspect(server, request).await,
                _ => answer(&server, &request),
            })
        })
    })
    .await
}

fn answer<B>(server: &AuthServer, request: &Request<B>) -> Response<Body> {
    match request.uri().path() {
        "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration" => {
            json(StatusCode::OK, server.document.clone())
        }
        "/jwks" => json(StatusCode::OK, server.jwks.clone()),
        "/authorize" => json(
            StatusCode::BAD_REQUEST,
            Bytes::from_static(br#"{"error":"unsupported_response_type","error_description":"the demo authorization server grants client_credentials only"}"#),
        ),
        _ => json(StatusCode::NOT_FOUND, Bytes::from_static(br#"{"error":"not_found"}"#)),
    }
}

/// `POST /token` with `grant_type=client_credentials`: a signed JWT access token for the
/// resource, valid for an hour, with the scopes asked for (or all).
async fn token(server: Arc<AuthServer>, request: Request<hyper::body::Incoming>) -> Response<Body> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let form = read_form(request).await;
    let field = |name: &str| form_field(&form, name);
    if field("grant_type").as_deref() != Some("client_credentials") {
        return json(
            StatusCode::BAD_REQUEST,
            Bytes::from_static(
                br#"{"error":"unsupported_grant_type","error_description":"use grant_type=client_credentials"}"#,
            ),
        );
    }
    let scope = field("scope").unwrap_or_else(|| "mcp:tools mcp:resources".to_string());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let client = field("client_id").unwrap_or_else(|| "demo-client".to_string());
    let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": DEMO_KID});
    let claims = serde_json::json!({
        "iss": server.issuer, "aud": server.audience, "sub": client, "client_id": client,
        "scope": scope, "iat": now, "exp": now + 3600,
    });
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = server.key.sign(input.as_bytes());
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
    let body = serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": scope});
    json(StatusCode::OK, Bytes::from(body.to_string()))
}

/// `POST /introspect` (RFC 7662): `active` with the token's claims when it is one of this
/// server's own unexpired tokens, `{"active":false}` otherwise. The caller must send Basic
/// credentials, any will do.
async fn introspect(server: Arc<AuthServer>, request: Request<hyper::body::Incoming>) -> Response<Body> {
    let basic = request.headers().get(header::AUTHORIZATION).is_some_and(|v| v.as_bytes().starts_with(b"Basic "));
    if !basic {
        return json(StatusCode::UNAUTHORIZED, Bytes::from_static(br#"{"error":"invalid_client"}"#));
    }
    let form = read_form(request).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let expect = jwt::Expectations {
        issuer: server.issuer.clone(),
        audiences: vec![server.audience.clone()],
        leeway_secs: 0,
        typ: jwt::JwtTyp::AtJwt,
    };
    let verdict = form_field(&form, "token").map(|token| jwt::verify(&token, &server.keys, &expect, now));
    let body = match verdict {
        Some(Ok(claims)) => serde_json::json!({
            "active": true, "iss": server.issuer, "aud": server.audience, "sub": claims.subject,
            "client_id": claims.client_id, "scope": claims.scopes.join(" "), "exp": claims.expires_at,
            "token_type": "Bearer",
        }),
        _ => serde_json::json!({"active": false}),
    };
    json(StatusCode::OK, Bytes::from(body.to_string()))
}

/// A small form body (8 KiB at most; a larger or broken one reads as empty).
async fn read_form(request: Request<hyper::body::Incoming>) -> Bytes {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(request.into_body(), 8 * 1024).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

/// One field of an `application/x-www-form-urlencoded` body, decoded (`+` and `%XX`).
fn form_field(form: &[u8], name: &str) -> Option<String> {
    let form = std::str::from_utf8(form).ok()?;
    let value = form.split('&').find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))?;
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
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

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Serves the demo MCP server until shutdown: every `POST` gets a JSON-RPC result echoing the
/// request, so a forwarded call is visible end to end.
pub async fn run_mcp_echo(listener: TcpListener, shutdown: Shutdown) -> io::Result<()> {
    serve::serve(listener, shutdown, Duration::from_secs(1), |request, _| -> Reply {
        Box::pin(async move { Ok(echo(request).await) })
    })
    .await
}

async fn echo(request: Request<hyper::body::Incoming>) -> Response<Body> {
    use http_body_util::BodyExt;
    let bearer = request.headers().contains_key(header::AUTHORIZATION);
    let body = match http_body_util::Limited::new(request.into_body(), 1 << 20).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let call: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let id = call.get("id").cloned().unwrap_or(serde_json::Value::Null);
    // A real list for `tools/list`, so that the edge's filtering by the demo policy shows: a
    // token without `mcp:admin` does not see `admin_reset`. Anything else is echoed back.
    let result = if call.get("method").and_then(serde_json::Value::as_str) == Some("tools/list") {
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "result": {
                "tools": [
                    {"name": "read_notes", "description": "Reads the demo's notes", "inputSchema": {"type": "object"}},
                    {"name": "admin_reset", "description": "Resets the demo (needs mcp:admin)", "inputSchema": {"type": "object"}},
                ],
                "server": "mcp-auth-edge demo echo",
                "bearer_token_forwarded": bearer,
            },
        })
    } else {
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "result": { "server": "mcp-auth-edge demo echo", "received": call, "bearer_token_forwarded": bearer },
        })
    };
    let mut response = Response::new(Full::new(Bytes::from(result.to_string())));
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
         the gate, in front of the demo MCP server (admin_reset is listed only for mcp:admin):\n\
         \x20 curl -i -X POST {edge}{resource_path} -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}'\n\
         \x20 TOKEN=$(curl -s -d grant_type=client_credentials {issuer}/token | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')\n\
         \x20 curl -i -X POST -H \"Authorization: Bearer $TOKEN\" {edge}{resource_path} \\\n\
         \x20      -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}'\n\
         \x20 curl -i -X POST -H 'Authorization: Bearer not-a-real-token' {edge}{resource_path} -d '{{}}'\n\n\
         a step-up (the demo policy: tools named admin_* need mcp:admin; the first call gets 403):\n\
         \x20 CALL='{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{{\"name\":\"admin_reset\"}}}}'\n\
         \x20 curl -i -X POST -H \"Authorization: Bearer $TOKEN\" {edge}{resource_path} -d \"$CALL\"\n\
         \x20 TOKEN=$(curl -s -d grant_type=client_credentials -d 'scope=mcp:tools mcp:admin' {issuer}/token \\\n\
         \x20      | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')\n\
         \x20 curl -i -X POST -H \"Authorization: Bearer $TOKEN\" {edge}{resource_path} -d \"$CALL\"\n\n\
         the same gate with introspection (RFC 7662) instead of local JWT checks: restart with\n\
         \x20 --demo --token-check introspect --introspection-client-id demo --introspection-client-secret demo\n\n\
         Ctrl-C stops it.\n"
    )
}
