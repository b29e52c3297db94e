//! The MCP policy's allow path allocates nothing: a decision from the `Mcp-*` headers (reading
//! them, deciding over the rules with scope implication and a claim condition, and checking the
//! body agrees as it streams) runs per request, so it must cost no more than comparisons.
//!
//! A counting global allocator sees every allocation in the process, so this file holds one
//! test only.

use http::{HeaderMap, HeaderValue};
use mcp_auth_edge::config::policy::Policy;
use mcp_auth_edge::mcp::agreement::{Agreement, Expected};
use mcp_auth_edge::mcp::decide::{decide, Verdict};
use mcp_auth_edge::mcp::headers::{self, Source};
use mcp_auth_edge::mcp::jsonrpc;

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

    let before = counting::allocations();
    for _ in 0..1000 {
        let Ok(Source::Headers(announced)) = headers::read(std::hint::black_box(&map)) else { panic!("from headers") };
        assert!(headers::agree(&announced, &body).is_ok());
        let verdict = decide(&policy, announced.call(), std::hint::black_box(&held), &claims, &[]);
        assert!(matches!(verdict, Verdict::Allow { rule: Some(2) }));
        // What forwarding runs on the allow path: the body checked as it streams, in pieces.
        let mut agreement = Agreement::new(Expected::new(&announced));
        for piece in raw.chunks(40) {
            assert!(agreement.feed(std::hint::black_box(piece)).is_ok());
        }
        assert!(agreement.finish().is_ok());
    }
    assert_eq!(counting::allocations() - before, 0, "allocations on the allow path");
}
