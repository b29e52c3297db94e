//! 2025-11-25 sessions bound to their caller, over real sockets: the MCP server stand-in names
//! its session `session-1`; with `--session-key` the client is given a wrapped id bound to the
//! token's issuer, subject and client, and only that caller's requests carry the server's id
//! upstream. Replicas sharing a key accept each other's ids; keys rotate.

mod support;

use http::{Method, StatusCode};
use serde_json::Value;
use support::jwt::{auth_server, claims, Signer};
use support::mcp::McpServer;
use support::{request, Edge, Reply, Upstream};

const KEY_1: &str = "first-session-key-of-at-least-32-bytes";
const KEY_2: &str = "second-session-key-of-at-least-32-bytes";
const NOT_FOUND: &str = r#"{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}"#;

/// One authorization server and MCP server, and edges in front of them with their own keys.
struct Setup {
    auth: Upstream,
    key: Signer,
    mcp: McpServer,
}

impl Setup {
    async fn new() -> Setup {
        let key = Signer::ed25519("k1");
        let auth = auth_server(&[&key]).await;
        Setup { auth, key, mcp: McpServer::start().await }
    }

    /// An edge whose `--session-key`s are `keys` (none: unbound).
    async fn edge(&self, keys: &[&str]) -> Edge {
        let upstream = self.mcp.url();
        let mut args = vec!["--upstream", upstream.as_str(), "--token-check", "jwt"];
        for key in keys {
            args.extend(["--session-key", key]);
        }
        Edge::ready_for(&self.auth, &args).await
    }

    /// A token for `subject`, issued to `client`.
    fn token(&self, subject: &str, client: &str) -> String {
        let mut claims = claims(&self.auth.issuer());
        claims["sub"] = Value::from(subject);
        claims["client_id"] = Value::from(client);
        format!("Bearer {}", self.key.sign(&claims))
    }

    /// The session id the MCP server last received ("" for none).
    fn last_session(&self) -> String {
        self.mcp.requests().last().map(|r| r.header("mcp-session-id").to_string()).unwrap_or_default()
    }
}

/// `wrapped` with one character of its tags changed.
fn forged(wrapped: &str) -> String {
    let mut bytes = wrapped.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

async fn call(edge: &Edge, method: Method, token: &str, session: &[&str]) -> Reply {
    let mut headers = vec![("authorization", token), ("content-type", "application/json")];
    headers.extend(session.iter().map(|id| ("mcp-session-id", *id)));
    request(edge.addr, method, "/mcp", &headers).await
}

#[tokio::test]
async fn a_session_id_reaches_the_mcp_server_only_from_its_caller() {
    let s = Setup::new().await;
    let edge = s.edge(&[KEY_1]).await;
    let (alice, bob) = (s.token("alice", "app"), s.token("bob", "app"));

    let initialize = call(&edge, Method::POST, &alice, &[]).await;
    assert_eq!(initialize.status, StatusCode::OK);
    let wrapped = initialize.header("mcp-session-id").to_string();
    assert!(wrapped.starts_with("s1.") && wrapped.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{wrapped}");
    assert!(!wrapped.contains("session-1"), "the server's id is not shown as it is: {wrapped}");
    assert_eq!(s.last_session(), "", "initialize carried no session");

    // Alice's own requests carry the server's id upstream.
    assert_eq!(call(&edge, Method::POST, &alice, &[&wrapped]).await.status, StatusCode::OK);
    assert_eq!(s.last_session(), "session-1");
    let seen = s.mcp.requests().len();

    // Anyone else's answer as an unknown session, and never reach the MCP server.
    let same_subject_other_client = s.token("alice", "other-app");
    for (who, token, id) in [
        ("another subject", &bob, wrapped.as_str()),
        ("another client", &same_subject_other_client, wrapped.as_str()),
        ("the server's own id", &alice, "session-1"),
        ("a forged tag", &alice, &forged(&wrapped)),
    ] {
        let reply = call(&edge, Method::POST, token, &[id]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{who}");
        assert_eq!(reply.text(), NOT_FOUND, "{who}");
    }
    let reply = call(&edge, Method::POST, &alice, &[&wrapped, &wrapped]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "two session ids");
    assert_eq!(s.mcp.requests().len(), seen, "none of those reached the MCP server");

    // Ending the session is the caller's too.
    assert_eq!(call(&edge, Method::DELETE, &bob, &[&wrapped]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(&edge, Method::DELETE, &alice, &[&wrapped]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.last_session(), "session-1");
}

#[tokio::test]
async fn replicas_sharing_a_key_accept_each_others_sessions_and_keys_rotate() {
    let s = Setup::new().await;
    let (old, rotating, new_only) = (s.edge(&[KEY_1]).await, s.edge(&[KEY_2, KEY_1]).await, s.edge(&[KEY_2]).await);
    let alice = s.token("alice", "app");
    let wrapped = call(&old, Method::POST, &alice, &[]).await.header("mcp-session-id").to_string();
    // A replica that signs with the new key still accepts what the old one signed.
    assert_eq!(call(&rotating, Method::POST, &alice, &[&wrapped]).await.status, StatusCode::OK);
    assert_eq!(s.last_session(), "session-1");
    // Once the old key is dropped, its ids are unknown.
    assert_eq!(call(&new_only, Method::POST, &alice, &[&wrapped]).await.status, StatusCode::NOT_FOUND);
    // What the rotating replica gives out, the new-key-only one accepts.
    let renewed = call(&rotating, Method::POST, &alice, &[]).await.header("mcp-session-id").to_string();
    assert_ne!(renewed, wrapped);
    assert_eq!(call(&new_only, Method::POST, &alice, &[&renewed]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_key_session_ids_pass_as_they_are() {
    let s = Setup::new().await;
    let edge = s.edge(&[]).await;
    let alice = s.token("alice", "app");
    assert_eq!(call(&edge, Method::POST, &alice, &[]).await.header("mcp-session-id"), "session-1");
    assert_eq!(call(&edge, Method::POST, &alice, &["session-1"]).await.status, StatusCode::OK);
    assert_eq!(s.last_session(), "session-1");
}
