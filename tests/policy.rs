//! The per-resource MCP policy (issue 12) over real sockets: a POST body is read whole and
//! decided before anything reaches the MCP server; what the policy refuses never arrives there.
//! The MCP server stand-in records every request it receives.

mod support;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use support::jwt::{auth_server, claims, Signer};
use support::mcp::McpServer;
use support::{raw_exchange, split_head, Edge, Reply, TempFile, Upstream, PATIENCE, PRM_PATH};
use tokio::net::TcpStream;

const CHALLENGE: &str = "Bearer error=\"insufficient_scope\", scope=\"mcp:write mcp:read\", \
                         resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\"";

fn policy() -> Value {
    json!({"default": "deny",
        "implies": {"mcp:admin": ["mcp:write"]},
        "rules": [
            {"method": "initialize"},
            {"method": "notifications/*"},
            {"method": "tools/call", "name": "read_*", "scopes": ["mcp:read"]},
            {"method": "tools/call", "name": "write_*", "scopes": ["mcp:write"]},
            {"method": "tools/call", "name": "deploy", "scopes": ["mcp:read"],
             "claims": [{"claim": "groups", "contains": "ops"}]},
            {"method": "prompts/get", "scopes": ["mcp:write"]}]})
}

/// An authorization server, an MCP server, and an edge in front of them whose `--config` file
/// holds `file`.
struct Setup {
    auth: Upstream,
    key: Signer,
    mcp: McpServer,
    edge: Edge,
    _file: TempFile,
}

impl Setup {
    async fn new(name: &str, file: Value) -> Setup {
        let key = Signer::ed25519("k1");
        let auth = auth_server(&[&key]).await;
        let mcp = McpServer::start().await;
        let file = TempFile::new(&format!("policy-{name}.json"), &file.to_string());
        let upstream = mcp.url();
        let edge = Edge::ready_for(&auth, &["--upstream", upstream.as_str(), "--config", file.path()]).await;
        Setup { auth, key, mcp, edge, _file: file }
    }

    async fn with_policy(name: &str) -> Setup {
        Setup::new(name, json!({"policy": policy(), "max_inspect_bytes": 2048})).await
    }

    /// A token with `scope`, and the claims in `extra`.
    fn token(&self, scope: &str, extra: Value) -> String {
        let mut claims = claims(&self.auth.issuer());
        claims["scope"] = Value::from(scope);
        for (k, v) in extra.as_object().expect("an object") {
            claims[k] = v.clone();
        }
        format!("Bearer {}", self.key.sign(&claims))
    }

    async fn post(&self, token: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        post(&self.edge, token, headers, body.to_string()).await
    }

    /// How many requests reached the MCP server.
    fn upstream_count(&self) -> usize {
        self.mcp.requests().len()
    }
}

/// One POST to `/mcp` on a fresh HTTP/1.1 connection, with a `Content-Length` body.
async fn post(edge: &Edge, token: &str, headers: &[(&str, &str)], body: String) -> Reply {
    let exchange = async {
        let stream = TcpStream::connect(edge.addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let mut builder = Request::post("/mcp")
            .header("host", edge.addr.to_string())
            .header("authorization", token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = sender.send_request(builder.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("a body").to_bytes();
        Reply { status: parts.status, version: parts.version, headers: parts.headers, body }
    };
    tokio::time::timeout(PATIENCE, exchange).await.expect("an answer")
}

fn call(id: u32, name: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {"x": 1}}})
        .to_string()
}

#[tokio::test]
async fn an_allowed_call_reaches_the_mcp_server_as_sent() {
    let s = Setup::with_policy("allowed").await;
    let token = s.token("mcp:read", json!({}));
    let body = call(1, "read_file");
    let reply = s.post(&token, &[], &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["result"]["echo"], serde_json::from_str::<Value>(&body).unwrap());
    let seen = s.mcp.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("content-length"), body.len().to_string());
    // A batch passes when every element does; a response to the server's own request asks nothing.
    let batch = format!("[{},{}]", call(2, "read_a"), call(3, "read_b"));
    assert_eq!(s.post(&token, &[], &batch).await.status, StatusCode::OK);
    let response = r#"{"jsonrpc":"2.0","id":"s-1","result":{}}"#;
    assert_eq!(s.post(&token, &[], response).await.status, StatusCode::OK);
    assert_eq!(s.upstream_count(), 3);
}

#[tokio::test]
async fn a_call_needing_more_scope_gets_the_step_up_challenge() {
    let s = Setup::with_policy("step-up").await;
    let token = s.token("mcp:tools mcp:read", json!({}));
    let reply = s.post(&token, &[("origin", "https://mcp.example.com")], &call(1, "write_file")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.header("www-authenticate"), CHALLENGE);
    assert_eq!(reply.header("content-type"), "application/json");
    assert_eq!(reply.header("access-control-allow-origin"), "https://mcp.example.com");
    assert_eq!(reply.header("access-control-expose-headers"), "WWW-Authenticate");
    assert_eq!(
        reply.json(),
        json!({"error": "insufficient_scope", "error_description": "This operation needs the scope mcp:write",
               "scope": "mcp:write mcp:read"})
    );
    // A batch with one denied element is refused whole.
    let batch = format!("[{},{}]", call(2, "read_a"), call(3, "write_b"));
    assert_eq!(s.post(&token, &[], &batch).await.status, StatusCode::FORBIDDEN);
    assert_eq!(s.upstream_count(), 0, "nothing reached the MCP server");
    // A broader scope implies the narrower one.
    let admin = s.token("mcp:admin", json!({}));
    assert_eq!(s.post(&admin, &[], &call(4, "write_file")).await.status, StatusCode::OK);
    assert_eq!(s.upstream_count(), 1);
}

#[tokio::test]
async fn what_no_rule_allows_is_denied_and_claims_are_checked() {
    let s = Setup::with_policy("deny").await;
    let token = s.token("mcp:read mcp:admin", json!({"groups": ["dev"]}));
    let reply = s.post(&token, &[], r#"{"jsonrpc":"2.0","id":1,"method":"resources/list"}"#).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.headers.get("www-authenticate").is_none(), "no step-up can fix it");
    assert_eq!(reply.json()["error"], "forbidden");
    let reply = s.post(&token, &[], &call(2, "deploy")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error_description"], "The token's claim \"groups\" does not allow this operation");
    assert_eq!(s.upstream_count(), 0);
    let ops = s.token("mcp:read", json!({"groups": ["dev", "ops"]}));
    assert_eq!(s.post(&ops, &[], &call(3, "deploy")).await.status, StatusCode::OK);
    let notification = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(s.post(&ops, &[], notification).await.status, StatusCode::OK);
    assert_eq!(s.upstream_count(), 2);
}

#[tokio::test]
async fn headers_of_2026_07_28_must_agree_with_the_body() {
    let s = Setup::with_policy("headers").await;
    let token = s.token("mcp:admin mcp:read", json!({}));
    let announced = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "read_file")];
    let reply = s.post(&token, &announced, &call(9, "write_file")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["id"], 9);
    assert_eq!(reply.json()["error"]["code"], -32020);
    let missing = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call")];
    let reply = s.post(&token, &missing, &call(9, "read_file")).await;
    assert_eq!((reply.status, reply.json()["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!(-32020)));
    assert_eq!(s.upstream_count(), 0, "nothing reached the MCP server");
    assert_eq!(s.post(&token, &announced, &call(10, "read_file")).await.status, StatusCode::OK);
    assert_eq!(s.upstream_count(), 1);
}

#[tokio::test]
async fn a_body_over_the_bound_or_not_json_rpc_is_refused() {
    let s = Setup::with_policy("bound").await;
    let token = s.token("mcp:read", json!({}));
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "read_file", "arguments": {"pad": "x".repeat(3000)}}})
    .to_string();
    let reply = s.post(&token, &[], &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json()["error"], "content_too_large");
    assert!(reply.json()["error_description"].as_str().unwrap().contains("too large to inspect"));
    // Of unknown length, it is refused when it grows past the bound.
    let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
    let raw = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\nauthorization: {token}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n{}{}0\r\n\r\n",
        s.edge.addr,
        chunk(&big[..1500]),
        chunk(&big[1500..]),
    );
    let (head, _) = split_head(&raw_exchange(s.edge.addr, &raw).await).clone();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let reply = s.post(&token, &[], "this is not JSON").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["code"], -32600);
    assert_eq!(s.post(&token, &[], r#"{"id":1,"method":"tools/call"}"#).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.upstream_count(), 0);
    // A chunked body within the bound goes upstream with its length.
    let small = call(1, "read_file");
    let raw = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\nauthorization: {token}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n{}{}0\r\n\r\n",
        s.edge.addr,
        chunk(&small[..10]),
        chunk(&small[10..]),
    );
    let (head, _) = split_head(&raw_exchange(s.edge.addr, &raw).await).clone();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = s.mcp.requests();
    assert_eq!(
        (seen[0].header("content-length"), seen[0].header("transfer-encoding")),
        (&*small.len().to_string(), "")
    );
}

#[tokio::test]
async fn the_tool_error_mode_answers_in_json_rpc() {
    let file = json!({"policy": policy(), "policy_denial": "tool_error"});
    let s = Setup::new("tool-error", file).await;
    let token = s.token("mcp:read", json!({}));
    let reply = s.post(&token, &[], &call(5, "write_file")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"jsonrpc": "2.0", "id": 5, "result": {"content": [{"type": "text",
            "text": "Not allowed: the tool \"write_file\" needs scope mcp:write; the token lacks mcp:write"}],
            "isError": true}})
    );
    let prompt = r#"{"jsonrpc":"2.0","id":"p","method":"prompts/get","params":{"name":"summary"}}"#;
    let reply = s.post(&token, &[], prompt).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["id"], "p");
    assert_eq!(reply.json()["error"]["code"], -32003);
    // A notification cannot be answered in JSON-RPC: it gets the 403.
    let notification = r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"write_file"}}"#;
    assert_eq!(s.post(&token, &[], notification).await.status, StatusCode::FORBIDDEN);
    assert_eq!(s.upstream_count(), 0);
}

/// Found end to end (tests/e2e, policy rounds): the TypeScript SDK v2 at 2026-07-28 refuses a
/// result without `resultType`, which that revision requires; earlier revisions do not know it.
#[tokio::test]
async fn a_tool_error_at_2026_07_28_carries_its_result_type() {
    let file = json!({"policy": policy(), "policy_denial": "tool_error"});
    let s = Setup::new("tool-error-2026", file).await;
    let token = s.token("mcp:read", json!({}));
    let modern = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "write_file")];
    let reply = s.post(&token, &modern, &call(6, "write_file")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"jsonrpc": "2.0", "id": 6, "result": {"content": [{"type": "text",
            "text": "Not allowed: the tool \"write_file\" needs scope mcp:write; the token lacks mcp:write"}],
            "isError": true, "resultType": "complete"}})
    );
    let legacy = [("mcp-protocol-version", "2025-11-25")];
    let reply = s.post(&token, &legacy, &call(7, "write_file")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.json()["result"].get("resultType").is_none(), "{}", reply.json());
    assert_eq!(s.upstream_count(), 0);
}

#[tokio::test]
async fn get_and_delete_pass_as_before_and_the_metadata_lists_the_policy_scopes() {
    let s = Setup::with_policy("get").await;
    let token = s.token("mcp:tools", json!({}));
    let reply = support::request(
        s.edge.addr,
        Method::DELETE,
        "/mcp",
        &[("authorization", &token), ("mcp-session-id", "session-1")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    // One with a body is read and decided like a POST.
    let raw = format!(
        "DELETE /mcp HTTP/1.1\r\nhost: {}\r\nauthorization: {token}\r\ncontent-length: 3\r\n\
         connection: close\r\n\r\nabc",
        s.edge.addr
    );
    let (head, _) = split_head(&raw_exchange(s.edge.addr, &raw).await).clone();
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(s.upstream_count(), 1);
    // An SSE stream opens and its events flow.
    let (addr, token2) = (s.edge.addr, token.clone());
    let pending = tokio::spawn(async move {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let request = Request::get("/mcp")
            .header("host", addr.to_string())
            .header("authorization", token2)
            .header("accept", "text/event-stream")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let mut body = response.into_body();
        body.frame().await.expect("a frame").expect("data").into_data().expect("data")
    });
    let stream = s.mcp.next_stream().await;
    assert!(stream.send("data: 1\n\n").await);
    let first = tokio::time::timeout(PATIENCE, pending).await.expect("in time").expect("no panic");
    assert_eq!(first, "data: 1\n\n");
    assert_eq!(s.upstream_count(), 2);
    let prm = s.edge.get(&format!("{PRM_PATH}/mcp")).await.json();
    assert_eq!(prm["scopes_supported"], json!(["mcp:read", "mcp:write"]));
}

#[tokio::test]
async fn a_resource_without_a_policy_forwards_unread() {
    let s = Setup::new("none", json!({"max_inspect_bytes": 16})).await;
    let token = s.token("mcp:read", json!({}));
    let reply = s.post(&token, &[], &call(1, "write_file")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = s.post(&token, &[], "not JSON, and longer than the inspection bound").await;
    assert_eq!(reply.status, StatusCode::OK, "the MCP server judges its own bodies");
    assert_eq!(s.upstream_count(), 2);
}

#[tokio::test]
async fn a_browser_preflight_may_send_the_mcp_headers_of_2026_07_28() {
    let s = Setup::with_policy("cors").await;
    let asked = "authorization, content-type, mcp-method, mcp-name, mcp-param-region, x-other";
    let reply = support::request(
        s.edge.addr,
        Method::OPTIONS,
        "/mcp",
        &[
            ("origin", "https://mcp.example.com"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", asked),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        reply.header("access-control-allow-headers"),
        "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Mcp-Method, \
         Mcp-Name, mcp-param-region"
    );
    assert_eq!(reply.header("access-control-expose-headers"), "Mcp-Session-Id, WWW-Authenticate");
}

#[tokio::test]
async fn a_reload_brings_a_new_policy() {
    let key = Signer::ed25519("k1");
    let auth = auth_server(&[&key]).await;
    let mcp = McpServer::start().await;
    let (issuer, upstream) = (auth.issuer(), mcp.url());
    let build = |name: &str, policy: Value| {
        let file = TempFile::new(&format!("policy-reload-{name}.json"), &json!({"policy": policy}).to_string());
        let args = ["--resource", support::RESOURCE, "--auth-server", &issuer, "--upstream", &upstream];
        let config = support::config(&[&args[..], &["--config", file.path()]].concat());
        (config, file)
    };
    let (first, _first_file) = build("first", policy());
    let (edge, reload) = Edge::start_reloadable(first).await;
    edge.wait_ready().await;
    let mut claims = claims(&issuer);
    claims["scope"] = Value::from("mcp:read");
    let token = format!("Bearer {}", key.sign(&claims));
    assert_eq!(post(&edge, &token, &[], call(1, "write_file")).await.status, StatusCode::FORBIDDEN);
    let (second, _second_file) = build("second", json!({"default": "allow"}));
    reload.send_replace(Some(Ok(second)));
    support::wait_until("the new policy in service", || async {
        post(&edge, &token, &[], call(2, "write_file")).await.status == StatusCode::OK
    })
    .await;
    assert_eq!(mcp.requests().len(), 1, "only the call the new policy allows arrived");
}

/// A tools/call at 2026-07-28 whose name comes after `pad` bytes of arguments.
fn late_named_call(id: u32, name: &str, pad: usize) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"arguments":{{"pad":"{}"}},"name":"{name}","_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}}}}"#,
        "x".repeat(pad)
    )
}

const READ_FILE_HEADERS: [(&str, &str); 3] =
    [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "read_file")];

#[tokio::test]
async fn a_call_decided_from_its_headers_streams_past_the_inspection_bound() {
    // --max-inspect-bytes is 2048 here: a 2025-11-25 body that size is refused, while at
    // 2026-07-28 the headers decide and the body is checked as it streams, needing no buffer.
    let s = Setup::with_policy("streamed").await;
    let token = s.token("mcp:read", json!({}));
    let body = late_named_call(3, "read_file", 100_000);
    let reply = s.post(&token, &READ_FILE_HEADERS, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let seen = s.mcp.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("content-length"), body.len().to_string());
    // Denied from the headers alone: nothing is read or sent, and the step-up names the scope.
    let write = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "write_file")];
    let reply = s.post(&token, &write, &late_named_call(4, "write_file", 100_000)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(s.upstream_count(), 1);
}

#[tokio::test]
async fn a_streamed_body_that_disagrees_never_reaches_the_mcp_server_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = Signer::ed25519("k1");
    let auth = auth_server(&[&key]).await;
    // An MCP server that records the bytes it gets and never answers.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream_addr = upstream.local_addr().expect("addr");
    let received = tokio::spawn(async move {
        let (mut conn, _) = upstream.accept().await.expect("the edge connects");
        let mut got = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            match tokio::time::timeout(PATIENCE, conn.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return got,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    let file = TempFile::new("policy-cutoff.json", &json!({"policy": policy(), "max_inspect_bytes": 2048}).to_string());
    let url = format!("http://{upstream_addr}");
    let edge = Edge::ready_for(&auth, &["--upstream", url.as_str(), "--config", file.path()]).await;
    let mut claims = claims(&auth.issuer());
    claims["scope"] = Value::from("mcp:read mcp:write");
    let token = key.sign(&claims);

    // Announced as read_file, named write_file at the end, after 64 KiB the edge streams on.
    let body = late_named_call(5, "write_file", 64 * 1024);
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\nmcp-protocol-version: 2026-07-28\r\n\
         mcp-method: tools/call\r\nmcp-name: read_file\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        edge.addr,
        body.len()
    );
    let mut client = TcpStream::connect(edge.addr).await.expect("connect");
    client.write_all(head.as_bytes()).await.expect("head");
    client.write_all(&body.as_bytes()[..60 * 1024]).await.expect("first part");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    client.write_all(&body.as_bytes()[60 * 1024..]).await.expect("rest");
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, client.read_to_end(&mut answer)).await.expect("an answer").expect("read");
    let (head, reply) = split_head(&answer);
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let reply: Value = serde_json::from_slice(reply).expect("JSON");
    assert_eq!((reply["id"].clone(), reply["error"]["code"].clone()), (json!(5), json!(-32020)));

    let got = tokio::time::timeout(PATIENCE, received).await.expect("the upstream exchange ends").expect("recorder");
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("the request head went up") + 4;
    let sent = got.len() - end;
    assert!(sent > 0, "the body was streaming before its end arrived");
    assert!(sent < body.len(), "the MCP server never got the whole body: {sent} of {}", body.len());
    assert!(!got.ends_with(b"}}}"), "nor its last bytes");
}

#[tokio::test]
async fn a_policy_needing_scopes_the_server_does_not_list_stops_start_up_and_reloads() {
    let key = Signer::ed25519("k1");
    let auth = auth_server(&[&key]).await;
    let mcp = McpServer::start().await;
    let (issuer, upstream) = (auth.issuer(), mcp.url());
    let metadata = json!({"issuer": issuer, "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"], "scopes_supported": ["openid", "mcp:read"]});
    auth.set(support::AS_PATH, support::Canned::ok(metadata.to_string().into_bytes()));

    // policy() needs mcp:write too, which no client of this server could obtain.
    let file = TempFile::new("policy-unlisted.json", &json!({"policy": policy()}).to_string());
    let edge = Edge::for_upstream(&auth, &["--upstream", upstream.as_str(), "--config", file.path()]).await;
    let error = edge.finished().await.expect_err("the edge stops rather than deny forever");
    let error = error.to_string();
    assert!(error.contains("[\"mcp:write\"]") && error.contains("scopes_supported"), "{error}");

    // A reload to such a policy is refused, and the policy in service stays.
    let build = |name: &str, policy: Value| {
        let file = TempFile::new(&format!("policy-unlisted-{name}.json"), &json!({"policy": policy}).to_string());
        let args = ["--resource", support::RESOURCE, "--auth-server", &issuer, "--upstream", &upstream];
        (support::config(&[&args[..], &["--config", file.path()]].concat()), file)
    };
    let listed =
        json!({"default": "deny", "rules": [{"method": "tools/call", "name": "read_*", "scopes": ["mcp:read"]}]});
    let (first, _first_file) = build("first", listed);
    let (edge, reload) = Edge::start_reloadable(first).await;
    edge.wait_ready().await;
    let mut claims = claims(&issuer);
    claims["scope"] = Value::from("mcp:read mcp:write");
    let token = format!("Bearer {}", key.sign(&claims));
    assert_eq!(post(&edge, &token, &[], call(1, "write_file")).await.status, StatusCode::FORBIDDEN);
    let (second, _second_file) = build("second", policy());
    reload.send_replace(Some(Ok(second)));
    edge.wait_metric_above("mcp_auth_edge_config_reloads_total{outcome=\"refused\"}", 0.0).await;
    assert_eq!(post(&edge, &token, &[], call(2, "write_file")).await.status, StatusCode::FORBIDDEN, "still the first");
    assert_eq!(post(&edge, &token, &[], call(3, "read_file")).await.status, StatusCode::OK);
}
