//! For any answer, as JSON and as an event stream: filtering never panics; no list answer it
//! lets through (changed or not) keeps an entry the policy refuses or is not a list; and a
//! stream cut anywhere into two pieces is filtered exactly as it is whole.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_auth_edge::mcp::lists::{filter, EventFilter, Filtered, ListKind, Lists};
use mcp_auth_edge::mcp::Call;
use serde_json::Value;

/// Tools whose names have an even length.
fn permits(call: Call<'_>) -> bool {
    call.target.is_some_and(|t| t.chars().count() % 2 == 0)
}

/// Every answer in `text` (all of them answer the list: its id is not known) is a list of
/// permitted entries, or an error.
fn safe(text: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(text) else { return };
    for m in value.as_array().map_or(std::slice::from_ref(&value), Vec::as_slice) {
        let Some(result) = m.get("result").filter(|_| m.get("method").is_none()) else { continue };
        let tools = result["tools"].as_array().expect("a list result has its array");
        assert!(tools
            .iter()
            .all(|t| t["name"].as_str().is_some_and(|n| permits(Call { method: "", target: Some(n) }))));
    }
}

fn stream(pieces: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut f = EventFilter::new(Lists::single(ListKind::Tools), 512);
    let mut out = Vec::new();
    for piece in pieces {
        f.push(piece, &permits, &mut out);
    }
    f.finish(&permits, &mut out);
    (out, f.ended())
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else { return };
    let lists = Lists::single(ListKind::Tools);
    if let Ok(text) = std::str::from_utf8(data) {
        match filter(text, &lists, &permits) {
            Ok(Filtered::Unchanged) => safe(data),
            Ok(Filtered::Rewritten(out)) => safe(&out),
            Err(_) => {}
        }
    }
    let at = cut as usize % (data.len() + 1);
    assert_eq!(stream(&[data]), stream(&[&data[..at], &data[at..]]));
});
