//! The audit log (`--audit-log`) and the policy decision counters over real sockets: an edge
//! with a policy in front of an MCP server stand-in, a line per decision in the file, and
//! `mcp_auth_edge_policy_decisions_total` on the admin listener.

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use support::jwt::{auth_server, claims, Signer};
use support::mcp::McpServer;
use support::{metric, wait_until, Edge, Reply, TempFile, Upstream, PATIENCE};
use tokio::net::TcpStream;

fn policy() -> Value {
    json!({"default": "deny",
        "implies": {"mcp:admin": ["mcp:write"]},
        "rules": [
            {"method": "initialize"},
            {"method": "notifications/*"},
            {"method": "tools/call", "name": "read_*", "scopes": ["mcp:read"]},
            {"method": "tools/call", "name": "write_*", "scopes": ["mcp:write"]}]})
}

struct Setup {
    auth: Upstream,
    key: Signer,
    _mcp: McpServer,
    edge: Edge,
    log: TempFile,
    _file: TempFile,
}

impl Setup {
    /// The audit log named by the `--config` file's `audit_log` key.
    async fn new(name: &str) -> Setup {
        let key = Signer::ed25519("k1");
        let auth = auth_server(&[&key]).await;
        let mcp = McpServer::start().await;
        let log = TempFile::new(&format!("audit-{name}.log"), "");
        let file = json!({"policy": policy(), "max_inspect_bytes": 4096, "audit_log": log.path()});
        let file = TempFile::new(&format!("audit-{name}.json"), &file.to_string());
        let upstream = mcp.url();
        let edge = Edge::ready_for(&auth, &["--upstream", upstream.as_str(), "--config", file.path()]).await;
        Setup { auth, key, _mcp: mcp, edge, log, _file: file }
    }

    fn token(&self, scope: &str) -> String {
        let mut claims = claims(&self.auth.issuer());
        claims["scope"] = Value::from(scope);
        format!("Bearer {}", self.key.sign(&claims))
    }

    async fn post(&self, token: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let exchange = async {
            let stream = TcpStream::connect(self.edge.addr).await.expect("connect");
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
            tokio::spawn(connection);
            let mut builder = Request::post("/mcp")
                .header("host", self.edge.addr.to_string())
                .header("authorization", token)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream");
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            let request = builder.body(Full::new(Bytes::from(body.to_string()))).expect("a request");
            let response = sender.send_request(request).await.expect("a response");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("a body").to_bytes();
            Reply { status: parts.status, version: parts.version, headers: parts.headers, body }
        };
        tokio::time::timeout(PATIENCE, exchange).await.expect("an answer")
    }

    /// The log's lines once there are `n` (bounded wait: the writer is a task of its own).
    async fn lines(&self, n: usize) -> Vec<Value> {
        let read = || std::fs::read_to_string(&self.log.path).expect("the audit log");
        wait_until(&format!("{n} audit lines"), || async move { read().lines().count() >= n }).await;
        let text = read();
        assert!(text.ends_with('\n'), "whole lines: {text}");
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }
}

fn call(id: u32, name: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}}).to_string()
}

/// The fields a line is compared on (time and issuer checked apart).
fn pick(v: &Value) -> Value {
    let mut out = json!({});
    for key in [
        "request_id",
        "subject",
        "client_id",
        "method",
        "name",
        "decision",
        "reason",
        "rule",
        "scopes_required",
        "scopes_held",
        "source",
    ] {
        out[key] = v[key].clone();
    }
    if let Some(index) = v.get("batch_index") {
        out["batch_index"] = index.clone();
    }
    out
}

#[tokio::test]
async fn each_decision_is_a_line_and_counted() {
    let s = Setup::new("decisions").await;
    let read = s.token("mcp:read");
    let id = |id: &'static str| ("x-request-id", id);

    let allowed = s.post(&read, &[id("allow-1")], &call(1, "read_file")).await;
    assert_eq!(allowed.status, StatusCode::OK);
    let denied = s.post(&read, &[id("deny-1")], &call(2, "write_file")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let modern = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "read_file")];
    let headers = [&modern[..], &[id("headers-1")]].concat();
    assert_eq!(s.post(&read, &headers, &call(3, "read_file")).await.status, StatusCode::OK);
    let refused = s.post(&read, &[id("refused-1")], "not json-rpc").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let ping = r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#;
    assert_eq!(s.post(&read, &[id("default-1")], ping).await.status, StatusCode::FORBIDDEN);
    let batch = format!("[{},{}]", call(6, "read_a"), call(7, "write_b"));
    assert_eq!(s.post(&read, &[id("batch-1")], &batch).await.status, StatusCode::FORBIDDEN);
    // Allowed from its headers, then found to disagree with them as it streams.
    let headers = [&modern[..], &[id("mismatch-1")]].concat();
    assert_eq!(s.post(&read, &headers, &call(8, "write_file")).await.status, StatusCode::BAD_REQUEST);
    // A request id the edge made up is the one the line carries.
    let generated = s.post(&read, &[], &call(9, "read_other")).await;
    assert_eq!(generated.status, StatusCode::OK);

    let lines = s.lines(10).await;
    let held = json!(["mcp:read"]);
    let line = |request_id: &str, name: Value, decision: &str, reason: Value, rule: Value, required: Value| {
        json!({"request_id": request_id, "subject": "user-1", "client_id": "app", "method": "tools/call",
               "name": name, "decision": decision, "reason": reason, "rule": rule,
               "scopes_required": required, "scopes_held": held, "source": "body"})
    };
    let from_headers = |mut v: Value| {
        v["source"] = json!("headers");
        v
    };
    let read_scope = json!(["mcp:read"]);
    let write_scope = json!(["mcp:write"]);
    let null = Value::Null;
    let mut batch_a = line("batch-1", json!("read_a"), "deny", json!("batch"), json!(2), read_scope.clone());
    batch_a["batch_index"] = json!(0);
    let mut batch_b =
        line("batch-1", json!("write_b"), "deny", json!("insufficient_scope"), json!(3), write_scope.clone());
    batch_b["batch_index"] = json!(1);
    let mut ping = line("default-1", null.clone(), "deny", json!("no_rule"), json!("default"), json!([]));
    ping["method"] = json!("ping");
    let mut not_jsonrpc = line("refused-1", null.clone(), "refused", json!("not_jsonrpc"), null.clone(), json!([]));
    not_jsonrpc["method"] = null.clone();
    let expected = [
        line("allow-1", json!("read_file"), "allow", null.clone(), json!(2), read_scope.clone()),
        line("deny-1", json!("write_file"), "deny", json!("insufficient_scope"), json!(3), write_scope.clone()),
        from_headers(line("headers-1", json!("read_file"), "allow", null.clone(), json!(2), read_scope.clone())),
        not_jsonrpc,
        ping,
        batch_a,
        batch_b,
        from_headers(line("mismatch-1", json!("read_file"), "allow", null.clone(), json!(2), read_scope.clone())),
        from_headers(line("mismatch-1", json!("read_file"), "refused", json!("header_mismatch"), null, json!([]))),
        line(generated.header("x-request-id"), json!("read_other"), "allow", Value::Null, json!(2), read_scope),
    ];
    let seen: Vec<Value> = lines.iter().map(pick).collect();
    for (i, (seen, expected)) in seen.iter().zip(&expected).enumerate() {
        assert_eq!(seen, expected, "line {i}");
    }
    assert_eq!(seen.len(), expected.len());
    for line in &lines {
        assert_eq!(line["issuer"], s.auth.issuer());
        assert_eq!(line["resource"], "https://mcp.example.com/mcp");
        let time = line["time"].as_str().expect("a time");
        assert!(time.len() == 24 && time.ends_with('Z') && time.starts_with("20"), "{time}");
    }

    let text = s.edge.metrics().await;
    let decisions = |method: &str, decision: &str| {
        let series = format!("mcp_auth_edge_policy_decisions_total{{method=\"{method}\",decision=\"{decision}\"}}");
        metric(&text, &series).unwrap_or(0.0)
    };
    assert_eq!(decisions("tools/call", "allow"), 4.0, "{text}");
    assert_eq!(decisions("tools/call", "deny"), 3.0, "{text}");
    assert_eq!(decisions("tools/call", "refused"), 1.0, "{text}");
    assert_eq!(decisions("ping", "deny"), 1.0, "{text}");
    assert_eq!(decisions("other", "refused"), 1.0, "{text}");
    assert_eq!(metric(&text, "mcp_auth_edge_audit_log_dropped_total"), Some(0.0), "{text}");
}

#[tokio::test]
async fn hostile_values_stay_inside_their_fields_and_labels() {
    let s = Setup::new("hostile").await;
    let token = s.token("mcp:read");
    let name = "read_x\n{\"decision\":\"allow\"}\u{2028}";
    let method = "tools/call\"} 1\nmcp_auth_edge_fake{a=\"";
    let odd = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"name": name}}).to_string();
    assert_eq!(s.post(&token, &[], &odd).await.status, StatusCode::FORBIDDEN);
    assert_eq!(s.post(&token, &[], &call(2, name)).await.status, StatusCode::OK);
    let lines = s.lines(2).await;
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["method"].as_str(), lines[0]["decision"].as_str()), (Some(method), Some("deny")));
    assert_eq!((lines[1]["name"].as_str(), lines[1]["decision"].as_str()), (Some(name), Some("allow")));
    let text = s.edge.metrics().await;
    assert!(!text.contains("mcp_auth_edge_fake"), "{text}");
    assert_eq!(metric(&text, "mcp_auth_edge_policy_decisions_total{method=\"other\",decision=\"deny\"}"), Some(1.0));
}

#[tokio::test]
async fn without_a_policy_nothing_is_written() {
    let key = Signer::ed25519("k1");
    let auth = auth_server(&[&key]).await;
    let mcp = McpServer::start().await;
    let log = TempFile::new("audit-no-policy.log", "");
    let upstream = mcp.url();
    let edge = Edge::ready_for(&auth, &["--upstream", upstream.as_str(), "--audit-log", log.path()]).await;
    let token = format!("Bearer {}", key.sign(&claims(&auth.issuer())));
    let stream = TcpStream::connect(edge.addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = Request::post("/mcp")
        .header("host", edge.addr.to_string())
        .header("authorization", token)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(call(1, "anything"))))
        .unwrap();
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request)).await.expect("in time").unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = edge.metrics().await;
    edge.stop().await.expect("a clean stop");
    assert_eq!(std::fs::read_to_string(&log.path).expect("the file exists"), "");
    assert!(!text.contains("mcp_auth_edge_policy_decisions_total{"), "{text}");
}

#[tokio::test]
async fn an_audit_log_in_a_missing_directory_stops_start_up() {
    let args = ["--resource", "https://mcp.example.com/mcp", "--auth-server", "https://as.example"];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.extend(["--audit-log".into(), "/nonexistent-dir/audit.log".into()]);
    let settings = mcp_auth_edge::config::Settings::load(args, |_| None).expect("flags parse");
    let config = mcp_auth_edge::config::Config::from_settings(&settings).expect("the flags validate");
    let error = mcp_auth_edge::app::Runtime::build(&config).err().expect("refused").to_string();
    assert!(error.contains("--audit-log") && error.contains("cannot be opened for appending"), "{error}");
}

#[tokio::test]
async fn a_body_too_large_to_decide_is_refused_on_the_record() {
    let s = Setup::new("too-large").await;
    let token = s.token("mcp:read");
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "read_file", "arguments": {"pad": "x".repeat(5000)}}})
    .to_string();
    let reply = s.post(&token, &[("x-request-id", "big-1")], &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let lines = s.lines(1).await;
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(
        (line["request_id"].as_str(), line["decision"].as_str(), line["reason"].as_str()),
        (Some("big-1"), Some("refused"), Some("too_large"))
    );
    assert_eq!((line["method"].clone(), line["rule"].clone()), (Value::Null, Value::Null), "never read");
    assert_eq!(line["scopes_held"], json!(["mcp:read"]));
    let series = "mcp_auth_edge_policy_decisions_total{method=\"other\",decision=\"refused\"}";
    assert_eq!(s.edge.metric(series).await, 1.0);
}
