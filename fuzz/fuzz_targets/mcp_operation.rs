//! For any body: extraction never panics; the fast reader of plain single messages reads
//! exactly what the serde reader reads (or leaves the body to it); each method and target it reads is what serde_json
//! reads from the same bytes (no parser disagreement to exploit); and the headers a conforming
//! client sends for a single extracted operation are read back and agree with the body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_auth_edge::mcp::headers::{agree, mirror, read, Source};
use mcp_auth_edge::mcp::jsonrpc::{extract, extract_by_serde};

fuzz_target!(|data: &[u8]| {
    assert_eq!(extract(data), extract_by_serde(data), "the fast reader disagrees with serde");
    let (Ok(body), Ok(value)) = (extract(data), serde_json::from_slice::<serde_json::Value>(data)) else { return };
    let values = value.as_array().map_or(std::slice::from_ref(&value), Vec::as_slice);
    for (op, v) in body.messages().iter().zip(values).filter_map(|(m, v)| Some((m.operation()?, v))) {
        let field = if op.method() == "resources/read" { "uri" } else { "name" };
        assert_eq!(
            (Some(op.method()), op.target()),
            (v["method"].as_str(), op.target().and(v["params"][field].as_str()))
        );
        let Some(map) = mirror(op).filter(|_| body.messages().len() == 1 && value.is_object()) else { continue };
        let Ok(Source::Headers(announced)) = read(&map) else { panic!("mirrored headers unread: {map:?}") };
        assert_eq!(agree(&announced, &body), Ok(()));
    }
});
