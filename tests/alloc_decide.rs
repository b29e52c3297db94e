//! The MCP policy's allow path allocates nothing: a decision from the `Mcp-*` headers (reading
//! them, deciding over the rules with scope implication and a claim condition, checking that the
//! body agrees as it streams or, when it came whole, in one pass, and counting the decision)
//! runs per request, so it must cost no more than comparisons.
//!
//! A counting global allocator sees every allocation in the process, so this file holds one
//! test only; it counts this thread's, since the test harness's own thread prints the test's
//! name (which allocates) while the loop may already run.

use http::{HeaderMap, HeaderValue};
use mcp_auth_edge::config::policy::Policy;
use mcp_auth_edge::forward::audit::{Applied, Asker, Decisions};
use mcp_auth_edge::mcp::agreement::{Agreement, Expected};
use mcp_auth_edge::mcp::decide::{decide, Verdict};
use mcp_auth_edge::mcp::headers::{self, Source};
use mcp_auth_edge::mcp::jsonrpc;
use mcp_auth_edge::telemetry::audit::From;
use mcp_auth_edge::telemetry::Telemetry;

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

#[test]
fn deciding_from_headers_allocates_nothing_when_it_allows() {
    let policy = serde_json::json!({"default": "deny",
        "implies": {"mcp:admin": ["mcp:write"], "mcp:write": ["mcp:read"]},
        "rules": [
            {"method": "tools/call", "name": "delete_*", "scopes": ["mcp:admin"]},
            {"method": "resources/read", "uri_prefix": "file:///public/", "scopes": ["mcp:read"]},
            {"method": "tools/call", "name": "search_*", "scopes": ["mcp:read"],
             "claims": [{"claim": "groups", "contains": "dev"}]}]});
    let policy = Policy::parse(&policy, "policy").expect("valid policy");
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"groups": "ops dev"}"#).expect("claims");
    let held = vec!["openid".to_string(), "mcp:admin".to_string()];
    let mut map = HeaderMap::new();
    map.insert(headers::MCP_PROTOCOL_VERSION, HeaderValue::from_static("2026-07-28"));
    map.insert(headers::MCP_METHOD, HeaderValue::from_static("tools/call"));
    map.insert(headers::MCP_NAME, HeaderValue::from_static("search_issues"));
    let raw: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues","arguments":{"q":"is:open label:\"bug\""},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    let body = jsonrpc::extract(raw).expect("a tools/call");
    // The decision is counted (no audit log: no line is built).
    let telemetry = Telemetry::counting();
    let decisions = Decisions::new(&telemetry, "https://mcp.example.com/mcp");
    let applied = Applied { policy: &policy, required: &[] };

    let before = counting::thread_allocations();
    for _ in 0..1000 {
        let Ok(Source::Headers(announced)) = headers::read(std::hint::black_box(&map)) else { panic!("from headers") };
        assert!(headers::agree(&announced, &body).is_ok());
        let verdict = decide(&policy, announced.call(), std::hint::black_box(&held), &claims, &[]);
        assert!(matches!(verdict, Verdict::Allow { rule: Some(2) }));
        let asker = Asker { claims: None, headers: &map, source: From::Headers };
        let label = decisions.decided(asker, announced.call(), &verdict, &applied);
        let pending = decisions.pending(asker, label);
        // What forwarding runs on the allow path: the body checked as it streams, in pieces.
        let mut agreement = Agreement::new(Expected::new(&announced));
        for piece in raw.chunks(40) {
            assert!(agreement.feed(std::hint::black_box(piece)).is_ok());
        }
        assert!(agreement.finish().is_ok());
        // And as it runs when the body came whole in one piece: the one-pass comparison.
        let mut whole = Agreement::new(Expected::new(&announced));
        assert!(whole.whole(std::hint::black_box(raw)).is_ok());
        drop(pending);
    }
    assert_eq!(counting::thread_allocations() - before, 0, "allocations on the allow path");
}
