//! What the edge forwards or accepts at the HTTP layer, over real sockets: raw request bytes
//! to the edge (jwt mode, a real signed token), and what the MCP server stand-in received.
//! Each test is a defect an outside attack run found: client-chosen `X-Forwarded-For`, fields
//! named in a non-ASCII `Connection` surviving, client `X-Auth-*` reaching the MCP server,
//! two `Host` lines accepted, TRACE/CONNECT/asterisk forwarded, and no DNS-rebinding defence.

mod support;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use support::jwt::{auth_server, claims, Signer};
use support::mcp::{McpServer, Seen};
use support::{Edge, Upstream, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

/// The edge in jwt mode for `https://mcp.example.com/mcp` (no aliases but the tests' loopback
/// one), in front of a recording MCP server, and a valid token.
struct Setup {
    auth: Upstream,
    key: Signer,
    mcp: McpServer,
    edge: Edge,
    token: String,
}

impl Setup {
    async fn new(extra: &[&str]) -> Setup {
        let mcp = McpServer::start().await;
        let key = Signer::ed25519("k1");
        let auth = auth_server(&[&key]).await;
        let upstream = mcp.url();
        let mut args = vec!["--upstream", upstream.as_str(), "--token-check", "jwt"];
        args.extend_from_slice(extra);
        let edge = Edge::ready_for(&auth, &args).await;
        let token = key.sign(&claims(&auth.issuer()));
        Setup { auth, key, mcp, edge, token }
    }

    /// A POST of [`BODY`] to `/mcp` with the token, `lines` (raw bytes, each ending in CRLF)
    /// in place of the usual Host.
    fn post(&self, target: &str, lines: &[u8]) -> Vec<u8> {
        let mut raw = format!("POST {target} HTTP/1.1\r\nAuthorization: Bearer {}\r\n", self.token).into_bytes();
        raw.extend_from_slice(lines);
        let tail = format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
            BODY.len()
        );
        raw.extend_from_slice(tail.as_bytes());
        raw
    }

    /// The status of the edge's answer to `raw`.
    async fn status(&self, raw: &[u8]) -> u16 {
        let answer = exchange(&self.edge, raw).await;
        let line = answer.split(|&b| b == b'\r').next().unwrap_or_default();
        std::str::from_utf8(line).ok().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    /// The one request the MCP server received.
    fn seen(&self) -> Seen {
        let requests = self.mcp.requests();
        assert_eq!(requests.len(), 1, "exactly one request reaches the MCP server: {requests:?}");
        requests.into_iter().next().expect("one request")
    }
}

/// Writes `raw` and reads until the edge closes the connection.
async fn exchange(edge: &Edge, raw: &[u8]) -> Vec<u8> {
    let talk = async {
        let mut stream = TcpStream::connect(edge.addr).await?;
        stream.write_all(raw).await?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    tokio::time::timeout(PATIENCE, talk).await.expect("the edge answers and closes").expect("an exchange")
}

/// Every line of a field, as bytes.
fn lines<'a>(seen: &'a Seen, name: &str) -> Vec<&'a [u8]> {
    seen.headers.get_all(name).iter().map(|v| v.as_bytes()).collect()
}

const HOST: &[u8] = b"Host: mcp.example.com\r\n";

#[tokio::test]
async fn the_peer_is_last_in_x_forwarded_for_whatever_the_client_sent() {
    let s = Setup::new(&[]).await;
    // An obs-text byte in the first line used to leave both of the client's lines in place.
    let forged = [HOST, b"X-Forwarded-For: 10.0.0.1\xff\r\nX-Forwarded-For: 6.6.6.6\r\n"].concat();
    assert_eq!(s.status(&s.post("/mcp", &forged)).await, 200);
    assert_eq!(lines(&s.seen(), "x-forwarded-for"), [b"127.0.0.1"], "an unreadable chain is replaced by the peer");

    let s = Setup::new(&[]).await;
    let chain = [HOST, b"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 198.51.100.2, 192.0.2.1\r\n"].concat();
    assert_eq!(s.status(&s.post("/mcp", &chain)).await, 200);
    let want: &[u8] = b"203.0.113.9, 198.51.100.2, 192.0.2.1, 127.0.0.1";
    assert_eq!(lines(&s.seen(), "x-forwarded-for"), [want], "every readable line kept, the peer appended");

    // X-Forwarded-Proto and -Host follow the same rule: always the edge's, in one line.
    let s = Setup::new(&[]).await;
    let other =
        [HOST, b"X-Forwarded-Proto: gopher\xff\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: evil.example\r\n"];
    assert_eq!(s.status(&s.post("/mcp", &other.concat())).await, 200);
    let seen = s.seen();
    assert_eq!(lines(&seen, "x-forwarded-proto"), [b"https"]);
    assert_eq!(lines(&seen, "x-forwarded-host"), [b"mcp.example.com"]);
}

#[tokio::test]
async fn a_field_named_in_a_non_ascii_connection_value_is_removed() {
    let s = Setup::new(&[]).await;
    let raw = [HOST, b"Connection: keep-alive, X-Secret-Hop, \xffjunk\r\nX-Secret-Hop: must not pass\r\nX-Kept: 1\r\n"];
    assert_eq!(s.status(&s.post("/mcp", &raw.concat())).await, 200);
    let seen = s.seen();
    assert!(seen.headers.get("x-secret-hop").is_none(), "{:?}", seen.headers);
    assert_eq!(seen.header("x-kept"), "1");
}

#[tokio::test]
async fn no_client_x_auth_field_reaches_the_mcp_server() {
    let s = Setup::new(&["--strip-authorization"]).await;
    let raw = [
        HOST,
        b"X-Auth-User: admin\r\nX-Auth-Role: admin\r\nX-Auth-Groups: ops\r\nX_Auth_Subject: admin\r\n",
        b"X-Auth-Subject: admin\r\nX_Forwarded_For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n",
    ];
    assert_eq!(s.status(&s.post("/mcp", &raw.concat())).await, 200);
    let seen = s.seen();
    let mut auth: Vec<&str> = seen.headers.keys().map(|k| k.as_str()).filter(|k| k.starts_with("x-auth")).collect();
    auth.sort_unstable();
    assert_eq!(auth, ["x-auth-client-id", "x-auth-scopes", "x-auth-subject"], "only the edge's own");
    assert_eq!(seen.header("x-auth-subject"), "user-1", "the token's subject, not the client's");
    for name in ["x_auth_subject", "x_forwarded_for", "forwarded", "x-real-ip"] {
        assert!(seen.headers.get(name).is_none(), "{name}: {:?}", seen.headers);
    }
    assert!(seen.headers.get("authorization").is_none());
}

#[tokio::test]
async fn host_must_be_one_well_formed_line_naming_this_resource() {
    let s = Setup::new(&[]).await;
    for (raw, status) in [
        (s.post("/mcp", b"Host: mcp.example.com\r\nHost: evil.example\r\n"), 400),
        (s.post("/mcp", b"Host: mcp.example.com\r\nHost: mcp.example.com\r\n"), 400),
        (s.post("/mcp", b""), 400),
        (s.post("/mcp", b"Host: mcp.example.com:99999\r\n"), 400),
        (s.post("/mcp", b"Host: evil.example\r\n"), 421),
        (s.post("/mcp", b"Host: mcp.example.com:8443\r\n"), 421),
        (s.post("http://evil.example/mcp", HOST), 421),
    ] {
        assert_eq!(s.status(&raw).await, status, "{}", String::from_utf8_lossy(&raw));
    }
    assert!(s.mcp.requests().is_empty(), "none of these reaches the MCP server");

    // Absolute form: the target's authority wins over Host (RFC 9112 §3.2.2), and is what the
    // MCP server is told the client asked for.
    let raw = s.post("https://MCP.example.com:443/mcp", b"Host: other.example\r\n");
    assert_eq!(s.status(&raw).await, 200);
    assert_eq!(lines(&s.seen(), "x-forwarded-host"), [b"MCP.example.com:443"]);
}

#[tokio::test]
async fn http2_authority_and_host_must_agree() {
    let s = Setup::new(&[]).await;
    let stream = TcpStream::connect(s.edge.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let call = |host: Option<&str>| {
        let mut builder = Request::builder()
            .method(Method::POST)
            .version(Version::HTTP_2)
            .uri("https://mcp.example.com/mcp")
            .header("authorization", format!("Bearer {}", s.token))
            .header("content-type", "application/json");
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        builder.body(Full::new(Bytes::from_static(BODY.as_bytes()))).expect("a request")
    };
    let response = sender.send_request(call(Some("evil.example"))).await.expect("an answer");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "Host differs from :authority");
    assert!(s.mcp.requests().is_empty());
    let response = sender.send_request(call(None)).await.expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.expect("the body");
    assert_eq!(lines(&s.seen(), "x-forwarded-host"), [b"mcp.example.com"]);
}

#[tokio::test]
async fn trace_connect_and_asterisk_are_answered_at_the_edge() {
    let s = Setup::new(&[]).await;
    let token = format!("Authorization: Bearer {}\r\n", s.token);
    let asked = |request_line: &str| {
        format!(
            "{request_line} HTTP/1.1\r\nHost: mcp.example.com\r\n{token}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    for (request_line, status) in [
        ("TRACE /mcp", 405),
        ("TRACK /mcp", 405),
        ("CONNECT mcp.example.com:443", 405),
        ("POST *", 400),
        ("OPTIONS *", 400),
    ] {
        let answer = exchange(&s.edge, asked(request_line).as_bytes()).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{request_line}: {text}");
        assert!(text.contains("content-type: application/json"), "{request_line}: {text}");
        if status == 405 {
            assert!(text.contains("allow: GET, POST, DELETE, OPTIONS"), "{text}");
        }
    }
    assert!(s.mcp.requests().is_empty(), "nothing reaches the MCP server: {:?}", s.mcp.requests());
}

#[tokio::test]
async fn dns_rebinding_is_refused_at_the_edge() {
    let s = Setup::new(&[]).await;
    // The request a rebound name makes a browser send, token and all.
    let rebound = s.post("/mcp", b"Host: evil.example\r\nOrigin: http://evil.example\r\n");
    assert_eq!(s.status(&rebound).await, 421);
    // The right Host, an origin the resource does not allow (default: its own origin only).
    let cross = s.post("/mcp", b"Host: mcp.example.com\r\nOrigin: http://evil.example\r\n");
    let answer = exchange(&s.edge, &cross).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
    assert!(!text.contains("access-control-allow-origin"), "no CORS grant for a refused origin: {text}");
    assert!(text
        .ends_with(r#"{"error":"forbidden_origin","error_description":"Requests from this origin are not allowed"}"#));
    let preflight = b"OPTIONS /mcp HTTP/1.1\r\nHost: mcp.example.com\r\nOrigin: http://evil.example\r\n\
                      Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n";
    assert_eq!(s.status(preflight).await, 403, "preflights included");
    let twice =
        s.post("/mcp", b"Host: mcp.example.com\r\nOrigin: https://mcp.example.com\r\nOrigin: http://evil.example\r\n");
    assert_eq!(s.status(&twice).await, 403, "two origins cannot be judged");
    assert!(s.mcp.requests().is_empty());

    // The resource's own origin passes, and may read the answer.
    let own = s.post("/mcp", b"Host: mcp.example.com\r\nOrigin: https://mcp.example.com\r\n");
    let answer = String::from_utf8_lossy(&exchange(&s.edge, &own).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("access-control-allow-origin: https://mcp.example.com\r\n"), "{answer}");
    assert_eq!(s.mcp.requests().len(), 1);
}

#[tokio::test]
async fn aliases_and_any_origin_are_the_operators_choice() {
    let s = Setup::new(&["--host-alias", "mcp.internal:8080", "--cors-origin", "*"]).await;
    let raw = s.post("/mcp", b"Host: mcp.internal:8080\r\nOrigin: https://app.example\r\n");
    let answer = String::from_utf8_lossy(&exchange(&s.edge, &raw).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("access-control-allow-origin: *\r\n"), "{answer}");
    assert_eq!(lines(&s.seen(), "x-forwarded-host"), [b"mcp.internal:8080"]);
    // An alias with a port answers on that port only.
    assert_eq!(s.status(&s.post("/mcp", b"Host: mcp.internal\r\n")).await, 421);
}

#[tokio::test]
async fn a_token_repeating_a_claim_is_refused() {
    let s = Setup::new(&[]).await;
    // Signed by the right key, with "sub" twice: the MCP server might read the first.
    let mut body = claims(&s.auth.issuer()).to_string();
    body.insert_str(body.len() - 1, r#","sub":"admin""#);
    let header = json!({"alg": s.key.alg(), "kid": "k1", "typ": "at+jwt"}).to_string();
    let token = s.key.sign_raw(&header, &body);
    let raw = format!(
        "POST /mcp HTTP/1.1\r\nHost: mcp.example.com\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    let answer = String::from_utf8_lossy(&exchange(&s.edge, raw.as_bytes()).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
    assert!(answer.contains("a member name is repeated"), "{answer}");
    assert!(s.mcp.requests().is_empty());
}
