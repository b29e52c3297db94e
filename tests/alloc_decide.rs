//! The MCP policy's allow path allocates nothing: a decision from the `Mcp-*` headers (reading
//! them, checking the body agrees, deciding over the rules with scope implication and a claim
//! condition) runs per request, so it must cost no more than comparisons.
//!
//! A counting global allocator sees every allocation in the process, so this file holds one
//! test only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderValue};
use mcp_auth_edge::config::policy::Policy;
use mcp_auth_edge::mcp::decide::{decide, Verdict};
use mcp_auth_edge::mcp::headers::{self, Source};
use mcp_auth_edge::mcp::jsonrpc;

/// Counts allocations and reallocations, then hands every call to the system allocator.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the only addition is a relaxed atomic increment, which neither
// allocates nor touches the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues"}}"#;
    let body = jsonrpc::extract(body).expect("a tools/call");

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..1000 {
        let Ok(Source::Headers(announced)) = headers::read(std::hint::black_box(&map)) else { panic!("from headers") };
        assert!(headers::agree(&announced, &body).is_ok());
        let verdict = decide(&policy, announced.call(), std::hint::black_box(&held), &claims, &[]);
        assert!(matches!(verdict, Verdict::Allow { rule: Some(2) }));
    }
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed) - before, 0, "allocations on the allow path");
}
