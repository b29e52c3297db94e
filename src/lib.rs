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
//! | [`reload`] | a new configuration primed beside the running one, then swapped in |
//! | [`respond`] | responses built from snapshots |
//! | [`serve`] | listeners, connections, graceful shutdown |
//! | [`tls`] | TLS on the main listener: the certificate store and its reloading |
//! | [`admin`] | health, readiness and metrics |
//! | [`metrics`] | counters and latency histograms, and their Prometheus rendering |
//! | [`observe`] | request ids and the access log |
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
pub mod observe;
pub mod pool;
pub mod proxy;
pub mod refresh;
pub mod reload;
pub mod respond;
pub mod route;
pub mod serve;
pub mod snapshot;
pub mod tls;
pub mod token;

pub use config::Config;

/// One protected resource: the paths that lead to it, its documents and its gate.
pub struct Protected {
    /// The resource URL, for logs and metric labels.
    pub resource: String,
    pub paths: route::Paths,
    pub snapshots: snapshot::Snapshots,
    /// Set when an upstream MCP server is configured.
    pub gate: Option<proxy::Gate>,
}

impl Protected {
    /// The resource's part of the state; its metadata document is made here, once.
    fn new(config: &Config) -> Protected {
        Protected {
            resource: config.resource.url.clone(),
            paths: route::Paths::from_config(config),
            snapshots: snapshot::Snapshots::new(snapshot::resource_metadata(config)),
            gate: config.upstream.as_ref().map(|upstream| proxy::Gate::new(config, upstream)),
        }
    }

    /// Ready to serve: the metadata is loaded and tokens can be checked (jwt mode: the keys
    /// are loaded; introspect mode: the endpoint is known).
    pub fn ready(&self) -> bool {
        self.snapshots.ready() && self.gate.as_ref().and_then(|g| g.verifier.as_ref()).is_none_or(|v| v.ready())
    }
}

/// Everything the request path reads, shared by every connection. A configuration reload
/// builds a new one and swaps it in whole (see [`Live`]); only the metrics carry over.
pub struct State {
    /// The protected resources, the default (the top level's) first; never empty.
    pub resources: Vec<Protected>,
    pub metrics: std::sync::Arc<metrics::Metrics>,
    /// The access log, when `--access-log` is set; like the metrics, kept across reloads.
    pub access: Option<std::sync::Arc<observe::AccessLog>>,
    pub headers: respond::Headers,
    /// What the main listener allows its clients.
    pub limits: serve::Limits,
}

/// The state in service. Requests load it as they arrive; a reload stores a new one.
pub type Live = arc_swap::ArcSwap<State>;

impl State {
    /// Builds the state for a configuration, with metrics of its own; the resource document
    /// is made here, once.
    pub fn new(config: &Config) -> State {
        State::with_metrics(config, std::sync::Arc::default(), None)
    }

    /// Builds the state for a configuration that counts into `metrics` and logs into `access`
    /// (both kept across reloads).
    pub fn with_metrics(
        config: &Config,
        metrics: std::sync::Arc<metrics::Metrics>,
        access: Option<std::sync::Arc<observe::AccessLog>>,
    ) -> State {
        State {
            access,
            resources: config.protected().map(Protected::new).collect(),
            metrics,
            headers: respond::Headers::new(config.cache_max_age),
            limits: config.limits.clone(),
        }
    }

    /// Ready to serve: every resource is.
    pub fn ready(&self) -> bool {
        self.resources.iter().all(Protected::ready)
    }
}

/// Runs the edge on listeners the caller has bound (the binary binds the configured
/// addresses, tests bind `127.0.0.1:0`), without reloads. See [`run_with_reloads`].
pub async fn run(
    config: &Config,
    listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    shutdown: serve::Shutdown,
) -> std::io::Result<()> {
    let (_keep, reloads) = tokio::sync::watch::channel(None);
    run_with_reloads(config, listener, admin, shutdown, reloads).await
}

/// Runs the edge: the refresh task, the main listener, the admin listener when given, and
/// the reloader taking new configurations from `reloads`. Returns once `shutdown` has fired
/// and connections have drained, or with an error when the first authorization server turns
/// out unable to support the configured token check (no `jwks_uri` in jwt mode, no
/// `introspection_endpoint` in introspect mode).
pub async fn run_with_reloads(
    config: &Config,
    listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    mut shutdown: serve::Shutdown,
    reloads: tokio::sync::watch::Receiver<Option<reload::Reload>>,
) -> std::io::Result<()> {
    use std::sync::Arc;
    let metrics = Arc::new(metrics::Metrics::default());
    let (access, writer) = match &config.access_log {
        Some(target) => {
            let (log, writer) = observe::AccessLog::open(target, Arc::clone(&metrics)).await?;
            (Some(Arc::new(log)), Some(tokio::spawn(writer)))
        }
        None => (None, None),
    };
    let state = Arc::new(State::with_metrics(config, metrics, access));
    let live = Arc::new(Live::new(Arc::clone(&state)));
    // Our own signal: the caller's, or the refresh task finding the configuration unusable.
    let (trigger, stop) = serve::shutdown_channel();
    let trigger = Arc::new(trigger);
    let relay = {
        let trigger = trigger.clone();
        tokio::spawn(async move {
            shutdown.wait().await;
            trigger.fire();
        })
    };
    let fatal = Arc::new(reload::Fatal::new());
    let first = reload::Generation::start(state, config, Some((trigger, Arc::clone(&fatal))));
    let reloader = tokio::spawn(reload::run(live.clone(), first, config.clone(), reloads, stop.clone()));
    let admin =
        admin.map(|listener| tokio::spawn(admin::run(listener, live.clone(), stop.clone(), config.drain_timeout)));
    let result = match &config.tls {
        None => serve::run(listener, Arc::clone(&live), stop, config.drain_timeout).await,
        Some(tls) => {
            tokio::spawn(tls.clone().watch(stop.clone()));
            serve::run_tls(listener, Arc::clone(&live), stop, config.drain_timeout, tls).await
        }
    };
    relay.abort();
    // Both stop on the same signal; waiting keeps their last log lines before ours.
    let _ = reloader.await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    // The last state goes with `live`, and with it the last sender to the access log, whose
    // writer then writes out what is queued and ends.
    drop(live);
    if let Some(writer) = writer {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    }
    match fatal.get() {
        Some(reason) => Err(std::io::Error::other(*reason)),
        None => result,
    }
}
