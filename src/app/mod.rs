//! The application: the state the request path reads, the service that ties routes to
//! discovery, the gate and forwarding, and the run of it all (refresh tasks, listeners,
//! reloads), with the admin listener and the demo.
//!
//! The runtime objects the configuration only names (the TLS certificate store, the access
//! log's file) are made here by [`Runtime::build`], before any port is bound, so a bad file
//! still stops start-up with a configuration error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::common::route::Paths;
use crate::config::{Config, Limits, LogSink, Origin};
use crate::discovery::respond::Headers;
use crate::discovery::snapshot::{self, Snapshots};
use crate::forward::proxy::Endpoint;
use crate::gate::tokens::{TokenChecker, Unusable};
use crate::serve::tls::{PemFile, Tls, TlsError};
use crate::shutdown::{self, Shutdown};
use crate::telemetry::access::{self, AccessLog};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::Telemetry;

pub mod admin;
pub mod demo;
pub mod reload;
pub mod service;

/// One protected resource: the paths that lead to it, its documents and its MCP endpoint.
pub struct Protected {
    /// The resource URL, for logs and metric labels.
    pub resource: String,
    pub paths: Paths,
    pub snapshots: Arc<Snapshots>,
    /// Set when an upstream MCP server is configured.
    pub endpoint: Option<Arc<Endpoint>>,
}

impl Protected {
    /// The resource's part of the state; its metadata document is made here, once. The DPoP
    /// replay cache of the same resource in `before` (the state a reload replaces) is kept.
    fn new(config: &Config, before: Option<&State>) -> Protected {
        let replay = before
            .and_then(|state| state.resources.iter().find(|r| r.resource == config.resource.url))
            .and_then(|protected| protected.endpoint.as_ref())
            .and_then(|endpoint| endpoint.gate.possession.as_ref())
            .map(|possession| Arc::clone(possession.replay()));
        Protected {
            resource: config.resource.url.clone(),
            paths: Paths::from_config(config),
            snapshots: Arc::new(Snapshots::new(snapshot::resource_metadata(config))),
            endpoint: config.upstream.as_ref().map(|upstream| Arc::new(Endpoint::new(config, upstream, replay))),
        }
    }

    /// The token check, outside presence mode.
    pub fn checker(&self) -> Option<&Arc<TokenChecker>> {
        self.endpoint.as_ref().and_then(|e| e.gate.checker())
    }

    /// Ready to serve: the metadata is loaded and tokens can be checked (jwt mode: the keys
    /// are loaded; introspect mode: the endpoint is known).
    pub fn ready(&self) -> bool {
        self.snapshots.ready() && self.checker().is_none_or(|v| v.ready())
    }
}

/// Everything the request path reads, shared by every connection. A configuration reload
/// builds a new one and swaps it in whole (see [`Live`]); only the telemetry carries over.
pub struct State {
    /// The protected resources, the default (the top level's) first; never empty.
    pub resources: Vec<Protected>,
    pub telemetry: Arc<Telemetry>,
    pub headers: Headers,
}

/// The state in service. Requests load it as they arrive; a reload stores a new one.
pub type Live = arc_swap::ArcSwap<State>;

impl State {
    /// Builds the state for a configuration, with telemetry of its own (no access log).
    pub fn new(config: &Config) -> State {
        State::with_telemetry(config, Arc::new(Telemetry::counting()))
    }

    /// Builds the state for a configuration that counts and logs into `telemetry`.
    pub fn with_telemetry(config: &Config, telemetry: Arc<Telemetry>) -> State {
        State::after(config, telemetry, None)
    }

    /// Builds the state for a configuration, keeping from `before` (the state it replaces)
    /// what must outlive a reload: the DPoP replay caches.
    pub fn after(config: &Config, telemetry: Arc<Telemetry>, before: Option<&State>) -> State {
        State {
            resources: config.protected().map(|resource| Protected::new(resource, before)).collect(),
            telemetry,
            headers: Headers::new(config.cache_max_age),
        }
    }

    /// Ready to serve: every resource is.
    pub fn ready(&self) -> bool {
        self.resources.iter().all(Protected::ready)
    }
}

/// Why the edge cannot start with a configuration that validated: a file it names cannot be
/// used. A configuration error (the binary exits 2), naming the setting to fix.
#[derive(Debug)]
pub enum StartError {
    Tls { source: Origin, path: String, error: TlsError },
    AccessLog { source: Origin, path: String, error: String },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Tls { source, path, error } => write!(f, "cannot use {source} {path:?}: {error}"),
            StartError::AccessLog { source, path, error } => write!(
                f,
                "invalid {source} {path:?}: cannot be opened for appending (does its directory exist, is it writable?): {error}"
            ),
        }
    }
}

impl std::error::Error for StartError {}

/// Why the edge stopped other than by being asked to.
#[derive(Debug)]
pub enum RunError {
    /// The first authorization server cannot support the configured token check (a
    /// configuration problem: the binary exits 2).
    Unusable(Unusable),
    /// A file the configuration names cannot be used (a configuration problem too).
    Start(StartError),
    /// A listener failed.
    Io(std::io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Unusable(why) => write!(f, "{why}"),
            RunError::Start(e) => write!(f, "{e}"),
            RunError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// The runtime objects a configuration names, made once at start and kept across reloads.
pub struct Runtime {
    tls: Option<Tls>,
    access: Option<access::Sink>,
}

impl Runtime {
    /// Loads the TLS pair and opens (or creates) the access log's file.
    pub fn build(config: &Config) -> Result<Runtime, StartError> {
        let tls = match &config.tls {
            None => None,
            Some(files) => Some(Tls::load(files).map_err(|error| {
                let (source, path) = match error.file() {
                    PemFile::Cert => (&files.cert_from, &files.cert),
                    PemFile::Key => (&files.key_from, &files.key),
                };
                StartError::Tls { source: source.clone(), path: path.display().to_string(), error }
            })?),
        };
        let access = match &config.access_log {
            None => None,
            Some(target) => Some(match &target.sink {
                LogSink::Stdout => access::Sink::Stdout,
                LogSink::File(path) => {
                    let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
                        StartError::AccessLog {
                            source: target.from.clone(),
                            path: path.display().to_string(),
                            error: e.to_string(),
                        }
                    })?;
                    access::Sink::File(file)
                }
            }),
        };
        Ok(Runtime { tls, access })
    }

    /// The certificate store the main listener serves from (shared: reloading it here reloads
    /// the listener's).
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }
}

/// Serves the main listener: every request answered by the state in service when it arrives,
/// with `limits` (those at start), counting into the state's metrics, until `shutdown`; then
/// drains for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    live: Arc<Live>,
    limits: &Limits,
    tls: Option<&Tls>,
    shutdown: Shutdown,
    drain: Duration,
) -> std::io::Result<()> {
    let metrics = Some(Arc::clone(&live.load().telemetry.metrics));
    let options = crate::serve::Options { limits, metrics, tls, drain };
    crate::serve::run(listener, shutdown, options, service::edge(live)).await
}

/// Runs the edge on listeners the caller has bound (the binary binds the configured
/// addresses, tests bind `127.0.0.1:0`), without reloads. See [`run_with_reloads`].
pub async fn run(
    config: &Config,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let runtime = Runtime::build(config).map_err(RunError::Start)?;
    let (_keep, reloads) = tokio::sync::watch::channel(None);
    run_with_reloads(config, runtime, listener, admin, shutdown, reloads).await
}

/// Runs the edge: the refresh tasks, the main listener, the admin listener when given, and
/// the reloader taking new configurations from `reloads`. Returns once `shutdown` has fired
/// and connections have drained, or with [`RunError::Unusable`] when the first authorization
/// server turns out unable to support the configured token check.
pub async fn run_with_reloads(
    config: &Config,
    runtime: Runtime,
    listener: TcpListener,
    admin: Option<TcpListener>,
    mut shutdown: Shutdown,
    reloads: tokio::sync::watch::Receiver<Option<reload::Reload>>,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    let (access, writer) = match runtime.access {
        Some(sink) => {
            let (log, writer) = AccessLog::new(sink, Arc::clone(&metrics));
            (Some(log), Some(tokio::spawn(writer)))
        }
        None => (None, None),
    };
    let telemetry = Arc::new(Telemetry { metrics, access });
    let state = Arc::new(State::with_telemetry(config, telemetry));
    let live = Arc::new(Live::new(Arc::clone(&state)));
    // Our own signal: the caller's, or the refresh task finding the configuration unusable.
    let (trigger, stop) = shutdown::channel();
    let trigger = Arc::new(trigger);
    let relay = {
        let trigger = trigger.clone();
        tokio::spawn(async move {
            shutdown.wait().await;
            trigger.fire();
        })
    };
    let fatal = Arc::new(reload::Fatal::new());
    let first = reload::Generation::start(&state, config, Some((trigger, Arc::clone(&fatal))));
    let reloader = tokio::spawn(reload::run(live.clone(), first, config.clone(), reloads, stop.clone()));
    let admin =
        admin.map(|listener| tokio::spawn(admin::run(listener, live.clone(), stop.clone(), config.drain_timeout)));
    if let Some(tls) = &runtime.tls {
        tokio::spawn(tls.clone().watch(stop.clone()));
    }
    let result =
        serve(listener, Arc::clone(&live), &config.limits, runtime.tls.as_ref(), stop, config.drain_timeout).await;
    relay.abort();
    // Both stop on the same signal; waiting keeps their last log lines before ours.
    let _ = reloader.await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    // The last state goes with `live`, and with it the last sender to the access log, whose
    // writer then writes out what is queued and ends.
    drop(state);
    drop(live);
    if let Some(writer) = writer {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    }
    match fatal.get() {
        Some(reason) => Err(RunError::Unusable(reason.clone())),
        None => result.map_err(RunError::Io),
    }
}
