//! `If-None-Match` matching never panics on any field or tag, and a field that is exactly a
//! well-formed quoted entity tag (`"..."`, no inner quote) always matches that tag.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_auth_edge::common::conditional::if_none_match;

fuzz_target!(|data: &[u8]| {
    // The first byte says how long the field is; the rest after it is the entity tag.
    let Some((&n, rest)) = data.split_first() else { return };
    let (field, etag) = rest.split_at(usize::from(n).min(rest.len()));
    if_none_match(field, etag);
    let inner = etag.strip_prefix(b"\"").and_then(|t| t.strip_suffix(b"\""));
    if inner.is_some_and(|tag| !tag.contains(&b'"')) {
        assert!(if_none_match(etag, etag), "{etag:?}");
    }
});
