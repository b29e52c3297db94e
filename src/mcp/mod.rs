//! MCP-aware authorization, its pure core (issue 12): the operations a request asks for, read
//! from the JSON-RPC body ([`jsonrpc`]) or from the `Mcp-*` headers of revision 2026-07-28 and
//! checked against the body ([`headers`]), the policy's verdict on them ([`decide`]), and the
//! list answers filtered by that verdict ([`lists`]).
//!
//! No I/O, clock or logging here; the policy itself is a configuration value
//! ([`crate::config::policy`]). Forwarding applies it: `crate::forward::inspect` on the way in,
//! `crate::forward::lists` on the way back.

pub mod agreement;
pub mod decide;
pub mod headers;
pub mod json;
pub mod jsonrpc;
pub mod lists;

/// One operation as the policy sees it: the JSON-RPC method and, for `tools/call` and
/// `prompts/get`, the tool or prompt name, for `resources/read` the resource URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call<'a> {
    pub method: &'a str,
    pub target: Option<&'a str>,
}
