//! Whatever fields a client sends (one per line, `name:value`), after forwarding's rewrite the
//! peer's address ends the one `X-Forwarded-For` line, no field named in `Connection` survives
//! (save those the edge sets itself), and no client `X-Auth-*` or other field only the edge may
//! say survives.
#![no_main]
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION};
use libfuzzer_sys::fuzz_target;
use mcp_auth_edge::common::forwarding::{self as f, Present};

fuzz_target!(|data: &[u8]| {
    let mut h = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(&line[colon + 1..]))
        {
            h.append(name, value);
        }
    }
    let named: Vec<HeaderName> = h
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| f::connection_tokens(v.as_bytes()))
        .filter_map(|n| HeaderName::from_bytes(n).ok())
        .collect();
    let peer = HeaderValue::from_static("192.0.2.1");
    let present = Present::of(&h);
    f::rewrite(&mut h, present, &peer, &HeaderValue::from_static("https"), None);
    let chain: Vec<&[u8]> = h.get_all(f::X_FORWARDED_FOR).iter().map(|v| v.as_bytes()).collect();
    assert!(chain.len() == 1 && (chain[0] == b"192.0.2.1" || chain[0].ends_with(b", 192.0.2.1")), "{chain:?}");
    let set_by_edge = [f::X_FORWARDED_FOR, f::X_FORWARDED_PROTO];
    assert!(named.iter().all(|n| set_by_edge.contains(n) || !h.contains_key(n)), "{named:?} in {h:?}");
    assert!(!h.keys().any(f::is_edge_asserted), "{h:?}");
});
