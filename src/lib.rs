//! mcp-auth-edge: the OAuth discovery edge for MCP servers.
//!
//! Where things live:
//!
//! | module | concern |
//! |---|---|
//! | [`config`] | flags, environment and JSON file, validated into one [`Config`] |
//! | [`route`] | the pure request classifier ([`route::classify`]) |
//! | [`conditional`] | `If-None-Match` matching |
//! | [`metadata`] | discovery order, upstream fetch and document validation |
//! | [`snapshot`] | pre-built documents behind an `ArcSwap` |
//! | [`refresh`] | the background task that keeps the snapshot fresh |
//! | [`respond`] | responses built from snapshots |
//! | [`serve`] | listeners, connections, graceful shutdown |
//! | [`admin`] | health, readiness and metrics |
//! | [`metrics`] | counters and their Prometheus rendering |
//! | [`gate`] | the bearer credential and the 401 challenges |
//! | [`jwt`] | JWKS parsing and JWT access-token verification |
//! | [`token`] | jwt mode: the JWKS snapshot and the verified-token cache |
//! | [`proxy`] | streaming forwarding to the MCP server, hop-by-hop stripping |
//! | [`demo`] | the built-in authorization server behind `--demo` |
#![forbid(unsafe_code)]

pub mod admin;
pub mod conditional;
pub mod config;
pub mod demo;
pub mod gate;
pub mod jwt;
pub mod log;
pub mod metadata;
pub mod metrics;
pub mod proxy;
pub mod refresh;
pub mod respond;
pub mod route;
pub mod serve;
pub mod snapshot;
pub mod token;

pub use config::Config;

/// Everything the request path reads, shared by every connection.
pub struct State {
    pub paths: route::Paths,
    pub snapshots: snapshot::Snapshots,
    pub metrics: metrics::Metrics,
    pub headers: respond::Headers,
    /// Set when an upstream MCP server is configured.
    pub gate: Option<proxy::Gate>,
}

impl State {
    /// Builds the state for a configuration; the resource document is made here, once.
    pub fn new(config: &Config) -> State {
        State {
            paths: route::Paths::from_config(config),
            snapshots: snapshot::Snapshots::new(snapshot::resource_metadata(config)),
            metrics: metrics::Metrics::default(),
            headers: respond::Headers::new(config.cache_max_age),
            gate: config.upstream.as_ref().map(|upstream| proxy::Gate::new(config, upstream)),
        }
    }

    /// Ready to serve: the metadata is loaded and, in jwt mode, so are the keys.
    pub fn ready(&self) -> bool {
        self.snapshots.ready() && self.gate.as_ref().and_then(|g| g.verifier.as_ref()).is_none_or(|v| v.ready())
    }
}

/// Runs the edge on listeners the caller has bound (the binary binds the configured
/// addresses, tests bind `127.0.0.1:0`): the refresh task, the main listener and, when given,
/// the admin listener. Returns once `shutdown` has fired and connections have drained.
pub async fn run(
    config: &Config,
    listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    shutdown: serve::Shutdown,
) -> std::io::Result<()> {
    let state = std::sync::Arc::new(State::new(config));
    let fetcher = metadata::Fetcher::new(config);
    let refresh =
        tokio::spawn(refresh::run(state.clone(), fetcher, config.refresh, config.scopes.clone(), shutdown.clone()));
    let admin =
        admin.map(|listener| tokio::spawn(admin::run(listener, state.clone(), shutdown.clone(), config.drain_timeout)));
    let result = serve::run(listener, state, shutdown, config.drain_timeout).await;
    // Both stop on the same signal; waiting keeps their last log lines before ours.
    let _ = refresh.await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    result
}
