//! Validation never panics on any bytes, and a document it accepts is a JSON object whose
//! `issuer` is exactly the configured issuer (RFC 8414 §3.3).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_auth_edge::discovery::metadata::validate;

const ISSUER: &str = "https://as.example";

fuzz_target!(|data: &[u8]| {
    if validate(data, ISSUER).is_ok() {
        let doc: serde_json::Value = serde_json::from_slice(data).expect("accepted documents are JSON");
        assert_eq!(doc.as_object().and_then(|o| o.get("issuer")).and_then(|i| i.as_str()), Some(ISSUER));
    }
});
