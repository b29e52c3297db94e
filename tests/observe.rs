//! What operators see of single requests: `X-Request-Id` kept or made and passed on, latency
//! histograms and token counters in `/metrics`, and the `--access-log` JSON lines.

mod support;

use http::{Method, StatusCode};
use serde_json::{json, Value};
use support::jwt::{auth_server, claims, Signer};
use support::mcp::McpServer;
use support::{metric, request, Edge, TempFile, PRM_PATH};

/// The edge in jwt mode in front of a fresh MCP server, with a signer whose tokens it accepts.
struct Setup {
    _auth: support::Upstream,
    mcp: McpServer,
    edge: Edge,
    token: String,
}

impl Setup {
    async fn new(extra: &[&str]) -> Setup {
        let signer = Signer::ed25519("k1");
        let auth = auth_server(&[&signer]).await;
        let mcp = McpServer::start().await;
        let upstream = mcp.url();
        let mut args = vec!["--upstream", upstream.as_str(), "--token-check", "jwt"];
        args.extend_from_slice(extra);
        let edge = Edge::ready_for(&auth, &args).await;
        let token = format!("Bearer {}", signer.sign(&claims(&auth.issuer())));
        Setup { _auth: auth, mcp, edge, token }
    }

    async fn call(&self, headers: &[(&str, &str)]) -> support::Reply {
        request(self.edge.addr, Method::POST, "/mcp?session=secret", headers).await
    }
}

fn is_generated_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_passed_on() {
    let s = Setup::new(&[]).await;
    // Kept: the client's id reaches the MCP server and comes back.
    let reply = s.call(&[("authorization", &s.token), ("x-request-id", "client-id-1")]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-request-id"), "client-id-1");
    assert_eq!(s.mcp.requests().last().expect("forwarded").header("x-request-id"), "client-id-1");
    // Made: one new id, the same upstream and back.
    let reply = s.call(&[("authorization", &s.token)]).await;
    let made = reply.header("x-request-id").to_string();
    assert!(is_generated_id(&made), "{made:?}");
    assert_eq!(s.mcp.requests().last().expect("forwarded").header("x-request-id"), made);
    // Replaced: an id with a space in it is not passed on.
    let reply = s.call(&[("authorization", &s.token), ("x-request-id", "two words")]).await;
    assert!(is_generated_id(reply.header("x-request-id")));
    assert_eq!(s.mcp.requests().last().expect("forwarded").header("x-request-id"), reply.header("x-request-id"));
    // Refused by the token check: a fresh id each time.
    let first = s.call(&[("authorization", "Bearer not.a.jwt")]).await;
    let second = s.call(&[("authorization", "Bearer not.a.jwt")]).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    assert!(is_generated_id(first.header("x-request-id")));
    assert_ne!(first.header("x-request-id"), second.header("x-request-id"));
    // Answered before any check (a challenge, a document): no id made or echoed.
    let challenged = s.call(&[("x-request-id", "no-token-1")]).await;
    assert_eq!(challenged.status, StatusCode::UNAUTHORIZED);
    assert!(challenged.headers.get("x-request-id").is_none());
    let prm = format!("{PRM_PATH}/mcp");
    let document = request(s.edge.addr, Method::GET, &prm, &[("x-request-id", "doc-7")]).await;
    assert_eq!(document.status, StatusCode::OK);
    assert!(document.headers.get("x-request-id").is_none());
}

#[tokio::test]
async fn metrics_have_latency_histograms_and_token_counters() {
    let s = Setup::new(&["--required-scope", "mcp:admin"]).await;
    let signer_less = s.call(&[("authorization", "Bearer not.a.jwt")]).await;
    assert_eq!(signer_less.status, StatusCode::UNAUTHORIZED);
    // The test's token has no mcp:admin: 403.
    assert_eq!(s.call(&[("authorization", &s.token)]).await.status, StatusCode::FORBIDDEN);
    for _ in 0..3 {
        assert_eq!(request(s.edge.addr, Method::GET, &format!("{PRM_PATH}/mcp"), &[]).await.status, StatusCode::OK);
    }
    let text = s.edge.metrics().await;
    let series = "mcp_auth_edge_request_duration_seconds";
    assert_eq!(metric(&text, &format!("{series}_count{{route=\"resource_metadata\",class=\"2xx\"}}")), Some(3.0));
    assert_eq!(
        metric(&text, &format!("{series}_bucket{{route=\"resource_metadata\",class=\"2xx\",le=\"+Inf\"}}")),
        Some(3.0)
    );
    assert_eq!(metric(&text, &format!("{series}_count{{route=\"mcp\",class=\"4xx\"}}")), Some(2.0), "{text}");
    assert_eq!(metric(&text, "mcp_auth_edge_token_rejections_total{reason=\"invalid\"}"), Some(1.0));
    assert_eq!(metric(&text, "mcp_auth_edge_token_rejections_total{reason=\"insufficient_scope\"}"), Some(1.0));
    assert!(metric(&text, "mcp_auth_edge_jwks_refresh_success_total").unwrap_or(0.0) >= 1.0, "{text}");
    assert_eq!(metric(&text, "mcp_auth_edge_jwks_refresh_failure_total"), Some(0.0));
    // Nothing reached the MCP server, so the upstream histogram is empty.
    assert_eq!(metric(&text, "mcp_auth_edge_upstream_duration_seconds_count"), Some(0.0));
}

#[tokio::test]
async fn forwarded_calls_are_timed_upstream() {
    let s = Setup::new(&[]).await;
    for _ in 0..4 {
        assert_eq!(s.call(&[("authorization", &s.token)]).await.status, StatusCode::OK);
    }
    let text = s.edge.metrics().await;
    assert_eq!(metric(&text, "mcp_auth_edge_upstream_duration_seconds_count"), Some(4.0), "{text}");
    assert_eq!(metric(&text, "mcp_auth_edge_request_duration_seconds_count{route=\"mcp\",class=\"2xx\"}"), Some(4.0));
    let sum = metric(&text, "mcp_auth_edge_upstream_duration_seconds_sum").expect("a sum");
    assert!(sum > 0.0 && sum < 4.0, "{sum}");
}

#[tokio::test]
async fn the_access_log_has_a_json_line_per_request() {
    let log = TempFile::new("access.log", "");
    let s = Setup::new(&["--access-log", log.path()]).await;
    let prm = format!("{PRM_PATH}/mcp");
    request(s.edge.addr, Method::GET, &prm, &[("x-request-id", "doc-1")]).await;
    let refused = s.call(&[("authorization", "Bearer not.a.jwt")]).await;
    let forwarded = s.call(&[("authorization", &s.token)]).await;
    s.edge.stop().await.expect("a clean stop");

    let text = std::fs::read_to_string(&log.path).expect("the access log");
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    let pick = |v: &Value| {
        json!({"request_id": v["request_id"], "client": v["client"], "method": v["method"], "path": v["path"],
               "version": v["version"], "status": v["status"], "route": v["route"]})
    };
    let mut seen: Vec<Value> = lines.iter().map(pick).collect();
    seen.sort_by_key(|v| v["status"].as_u64());
    assert_eq!(
        seen,
        [
            json!({"request_id": null, "client": "127.0.0.1", "method": "GET", "path": prm,
                   "version": "HTTP/1.1", "status": 200, "route": "resource_metadata"}),
            json!({"request_id": forwarded.header("x-request-id"), "client": "127.0.0.1", "method": "POST",
                   "path": "/mcp", "version": "HTTP/1.1", "status": 200, "route": "mcp"}),
            json!({"request_id": refused.header("x-request-id"), "client": "127.0.0.1", "method": "POST",
                   "path": "/mcp", "version": "HTTP/1.1", "status": 401, "route": "mcp"}),
        ]
    );
    for line in &lines {
        let time = line["time"].as_str().expect("a time");
        assert!(time.len() == 24 && time.ends_with('Z'), "{time}");
        let ms = line["duration_ms"].as_f64().expect("a duration");
        assert!((0.0..10_000.0).contains(&ms), "{ms}");
    }
    assert!(!text.contains("secret"), "the query is left out: {text}");
}

#[tokio::test]
async fn an_access_log_in_a_missing_directory_stops_start_up() {
    let args = ["--resource", "https://mcp.example.com/mcp", "--auth-server", "https://as.example"];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.extend(["--access-log".into(), "/nonexistent-dir/access.log".into()]);
    let settings = mcp_auth_edge::config::Settings::load(args, |_| None).expect("flags parse");
    // The configuration only names the file; the application opens it, before any port is bound.
    let config = mcp_auth_edge::config::Config::from_settings(&settings).expect("the flags validate");
    let error = mcp_auth_edge::app::Runtime::build(&config).err().expect("refused").to_string();
    assert!(error.contains("--access-log") && error.contains("cannot be opened for appending"), "{error}");
}
