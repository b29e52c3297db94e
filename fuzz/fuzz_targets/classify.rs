//! The classifier never panics on any method and request target hyper would accept, and it
//! routes to a document only the exact paths configured for that document.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_auth_edge::common::route::{classify, Paths, Route};

fuzz_target!(|data: &[u8]| {
    let Some(space) = data.iter().position(|&b| b == b' ') else { return };
    let Ok(method) = http::Method::from_bytes(&data[..space]) else { return };
    let Ok(uri) = http::Uri::try_from(&data[space + 1..]) else { return };
    let paths = Paths::new("/tenant", "/mcp");
    if let Route::Document { doc, .. } | Route::Preflight(doc) | Route::MethodNotAllowed(doc) =
        classify(&paths, &method, uri.path())
    {
        assert!(paths.of(doc).iter().any(|p| **p == *uri.path()), "{doc:?} for {:?}", uri.path());
    }
});
