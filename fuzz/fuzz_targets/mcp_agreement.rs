//! The streaming checker and the whole-body reader agree on every body, whatever pieces it
//! arrives in: a body the checker lets through is one `extract` + `agree` accept (the security
//! direction), and one they accept the checker lets through (no false refusals), except for the
//! two documented differences (a repeated member the edge does not read; nesting past the bound).
//! A body checked whole (`Agreement::whole`, its one-pass reading of a plain message) gets
//! exactly the verdict, and the request id, of the checker fed it in one piece.
#![no_main]
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mcp_auth_edge::mcp::agreement::{Agreement, Disagreement, Expected};
use mcp_auth_edge::mcp::headers::{self, agree, mirror, read, Source};
use mcp_auth_edge::mcp::jsonrpc::{extract, Body, ExtractError};

const READ: [&str; 10] = [
    "jsonrpc",
    "id",
    "method",
    "params",
    "result",
    "error",
    "name",
    "uri",
    "_meta",
    "io.modelcontextprotocol/protocolVersion",
];

fn fixed() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(headers::MCP_PROTOCOL_VERSION, HeaderValue::from_static("2026-07-28"));
    h.insert(headers::MCP_METHOD, HeaderValue::from_static("tools/call"));
    h.insert(headers::MCP_NAME, HeaderValue::from_static("read_file"));
    h
}

fuzz_target!(|data: &[u8]| {
    let Some((&piece, body)) = data.split_first() else { return };
    let piece = usize::from(piece % 16) + 1;
    let extracted = extract(body);
    let map = match &extracted {
        Ok(Body::Single(m)) => m.operation().and_then(mirror).unwrap_or_else(fixed),
        _ => fixed(),
    };
    let Ok(Source::Headers(announced)) = read(&map) else { return };
    let reference = extracted
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|b| agree(&announced, b).map_err(|_| ExtractError::NotJsonRpc { why: "mismatch" }));
    let mut checker = Agreement::new(Expected::new(&announced));
    let mine = body.chunks(piece).try_for_each(|c| checker.feed(c)).and_then(|()| checker.finish());
    let mut at_once = Agreement::new(Expected::new(&announced));
    let whole = at_once.whole(body);
    let mut fed = Agreement::new(Expected::new(&announced));
    let one_piece = fed.feed(body).and_then(|()| fed.finish());
    assert_eq!(whole, one_piece, "whole and fed disagree on {:?}", String::from_utf8_lossy(body));
    if whole.is_err() {
        assert_eq!(at_once.id(), fed.id());
    }
    match (&reference, &mine) {
        (Ok(()), Ok(())) | (Err(_), Err(_)) => {}
        (Ok(()), Err(Disagreement::TooDeep)) => {}
        (Err(ExtractError::DuplicateKey { key }), Ok(())) if !READ.contains(&key.as_str()) => {}
        _ => panic!("reference {reference:?}, checker {mine:?}, body {:?}", String::from_utf8_lossy(body)),
    }
});
