//! mcp-auth-edge: the OAuth edge for MCP servers.
//!
//! The crate is layered; each layer imports only the layers above it in this list's reverse
//! (lowest first), and `tests/layers.rs` keeps it so:
//!
//! | layer | module | concern |
//! |---|---|---|
//! | 0 | [`config`] | flags, environment and JSON file, validated into one [`config::Config`] of plain values |
//! | 1 | [`common`] | route classification, conditional requests, JSON answers, forwarding headers, connection activity, the date, the outbound client |
//! | 1 | [`mcp`] | MCP operations from the JSON-RPC body or the `Mcp-*` headers, their agreement, the policy's verdict (pure) |
//! | 1 | [`shutdown`] | the shutdown signal everything that stops waits on |
//! | 2 | [`telemetry`] | log lines, metrics, request ids, the access log |
//! | 3 | [`serve`] | listeners, the accept loop and its limits, the watchdog, TLS |
//! | 3 | [`gate`] | the bearer credential, challenges, CORS for the MCP endpoint, JWT and introspection checks |
//! | 4 | [`discovery`] | authorization server metadata, snapshots, their refresh, the discovery answers |
//! | 4 | [`forward`] | the MCP endpoint, the MCP policy's reading of a body, the streaming exchange, uploads, upstream clients and pool |
//! | 5 | [`app`] | the state, the service tying routes to the layers below, run, reload, admin, demo |
#![forbid(unsafe_code)]

pub mod app;
pub mod common;
pub mod config;
pub mod discovery;
pub mod forward;
pub mod gate;
pub mod mcp;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
