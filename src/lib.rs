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
//! | [`tls`] | TLS on the main listener: the certificate store and its reloading |
//! | [`admin`] | health, readiness and metrics |
//! | [`metrics`] | counters and their Prometheus rendering |
//! | [`gate`] | the bearer credential and the 401 challenges |
//! | [`jwt`] | JWKS parsing and JWT access-token verification |
//! | [`introspect`] | token introspection requests and the judgement of answers |
//! | [`token`] | the token checker: JWKS snapshot or introspection, and the verdict cache |
//! | [`proxy`] | streaming forwarding to the MCP server, hop-by-hop stripping |
//! | [`pool`] | kept-alive HTTP/1.1 connections to a plain-http MCP server |
//! | [`demo`] | the built-in authorization server behind `--demo` |
#![forbid(unsafe_code)]

pub mod admin;
pub mod conditional;
pub mod config;
pub mod demo;
pub mod gate;
pub mod introspect;
pub mod jwt;
pub mod log;
pub mod metadata;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod refresh;
pub mod respond;
pub mod route;
pub mod serve;
pub mod snapshot;
pub mod tls;
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
    /// What the main listener allows its clients.
    pub limits: serve::Limits,
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
            limits: config.limits.clone(),
        }
    }

    /// Ready to serve: the metadata is loaded and tokens can be checked (jwt mode: the keys
    /// are loaded; introspect mode: the endpoint is known).
    pub fn ready(&self) -> bool {
        self.snapshots.ready() && self.gate.as_ref().and_then(|g| g.verifier.as_ref()).is_none_or(|v| v.ready())
    }
}

/// Runs the edge on listeners the caller has bound (the binary binds the configured
/// addresses, tests bind `127.0.0.1:0`): the refresh task, the main listener and, when given,
/// the admin listener. Returns once `shutdown` has fired and connections have drained, or
/// with an error when the authorization server turns out unable to support the configured
/// token check (no `jwks_uri` in jwt mode, no `introspection_endpoint` in introspect mode).
pub async fn run(
    config: &Config,
    listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    mut shutdown: serve::Shutdown,
) -> std::io::Result<()> {
    let state = std::sync::Arc::new(State::new(config));
    let fetcher = metadata::Fetcher::new(config);
    // Our own signal: the caller's, or the refresh task finding the configuration unusable.
    let (trigger, stop) = serve::shutdown_channel();
    let trigger = std::sync::Arc::new(trigger);
    let relay = {
        let trigger = trigger.clone();
        tokio::spawn(async move {
            shutdown.wait().await;
            trigger.fire();
        })
    };
    let refresh = {
        let task = refresh::run(state.clone(), fetcher, config.refresh, config.scopes.clone(), stop.clone());
        tokio::spawn(async move {
            let outcome = task.await;
            if outcome.is_err() {
                trigger.fire();
            }
            outcome
        })
    };
    let admin =
        admin.map(|listener| tokio::spawn(admin::run(listener, state.clone(), stop.clone(), config.drain_timeout)));
    let result = match &config.tls {
        None => serve::run(listener, state, stop, config.drain_timeout).await,
        Some(tls) => {
            tokio::spawn(tls.clone().watch(stop.clone()));
            serve::run_tls(listener, state, stop, config.drain_timeout, tls).await
        }
    };
    relay.abort();
    // Both stop on the same signal; waiting keeps their last log lines before ours.
    let fatal = refresh.await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    match fatal {
        Ok(Err(refresh::Unusable(reason))) => Err(std::io::Error::other(reason)),
        _ => result,
    }
}
