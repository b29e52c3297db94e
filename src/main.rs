//! The `mcp-auth-edge` binary: parse the configuration, bind, run until a signal.

use std::process::ExitCode;

use mcp_auth_edge::app::{self, demo, RunError, Runtime, StartError};
use mcp_auth_edge::config::{Config, ConfigError, Settings, TokenCheck};
use mcp_auth_edge::{error, info, shutdown};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let settings = match Settings::load(args.clone(), |name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(e @ (ConfigError::HelpRequested | ConfigError::VersionRequested)) => {
            println!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return config_error(&e),
    };
    match try_main(settings, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(e)) => config_error(&e),
        Err(Failure::Start(e)) => config_error(&e),
        Err(Failure::Unusable(e)) => config_error(&e),
        Err(Failure::Io(context, e)) => {
            eprintln!("mcp-auth-edge: {context}: {e}");
            ExitCode::from(1)
        }
    }
}

/// A problem with what the operator configured: one line, exit code 2.
fn config_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("mcp-auth-edge: {e}");
    ExitCode::from(2)
}

enum Failure {
    Config(ConfigError),
    /// A file the configuration names cannot be used.
    Start(StartError),
    /// The authorization server cannot support the configured token check.
    Unusable(mcp_auth_edge::gate::tokens::Unusable),
    Io(String, std::io::Error),
}

fn try_main(mut settings: Settings, args: Vec<String>) -> Result<(), Failure> {
    let demo = settings.demo().map_err(Failure::Config)?;
    // The demo's servers must have their ports before the configuration can name them, so
    // they are bound first, on loopback.
    let demo_listeners = if demo {
        let bind = |what: &str| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Failure::Io(what.into(), e))?;
            let addr = listener.local_addr().map_err(|e| Failure::Io(what.into(), e))?;
            Ok::<_, Failure>((listener, addr))
        };
        let (auth_server, auth_addr) = bind("demo authorization server")?;
        let (mcp, mcp_addr) = bind("demo MCP server")?;
        Some(([auth_server, mcp], Demo { auth_addr, mcp_addr }))
    } else {
        None
    };
    let demo_addrs = demo_listeners.as_ref().map(|(_, addrs)| *addrs);
    let demo_listeners = demo_listeners.map(|(listeners, _)| listeners);
    if let Some(addrs) = &demo_addrs {
        addrs.apply(&mut settings).map_err(Failure::Config)?;
    }
    let config = Config::from_settings(&settings).map_err(Failure::Config)?;
    // The files the configuration names are loaded before any port is bound.
    let loaded = Runtime::build(&config).map_err(Failure::Start)?;
    // SIGHUP reads the configuration again the same way: flags, environment, file.
    let reread = move || {
        let mut settings = Settings::load(args.clone(), |name| std::env::var(name).ok())?;
        if let Some(addrs) = &demo_addrs {
            addrs.apply(&mut settings)?;
        }
        Config::from_settings(&settings)
    };

    let admin = match config.admin_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|e| Failure::Io(format!("cannot listen on {addr} (--admin-listen)"), e))?,
        ),
        None => None,
    };

    let threads = config.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
    .map_err(|e| Failure::Io("cannot start the runtime".into(), e))?;
    // In the runtime's context: a tokio listener registers with its reactor when made.
    let entered = runtime.enter();
    let listener = listen(config.listen, config.limits.max_connections)
        .map_err(|e| Failure::Io(format!("cannot listen on {} (--listen)", config.listen), e))?;
    drop(entered);

    runtime.block_on(async move {
        let io = |what: &str| {
            let what = what.to_string();
            move |e| Failure::Io(what, e)
        };
        let demo_refs = demo_listeners.iter().flatten();
        for l in admin.iter().chain(demo_refs) {
            l.set_nonblocking(true).map_err(io("listener"))?;
        }
        let admin = admin.map(tokio::net::TcpListener::from_std).transpose().map_err(io("admin listener"))?;
        let (trigger, shutdown) = shutdown::channel();
        let trigger = std::sync::Arc::new(trigger);

        let mut demo_tasks = Vec::new();
        if let Some([auth_server, mcp]) = demo_listeners {
            let auth_server =
                tokio::net::TcpListener::from_std(auth_server).map_err(io("demo authorization server"))?;
            let mcp = tokio::net::TcpListener::from_std(mcp).map_err(io("demo MCP server"))?;
            let audience = config.resource.url.clone();
            demo_tasks.push(tokio::spawn(demo::run_authorization_server(auth_server, audience, shutdown.clone())));
            demo_tasks.push(tokio::spawn(demo::run_mcp_echo(mcp, shutdown.clone())));
        }

        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let edge = format!("{scheme}://{}", listener.local_addr().map_err(io("listener"))?);
        info!("mcp-auth-edge {} listening on {edge}", env!("CARGO_PKG_VERSION"));
        if let Some(tls) = loaded.tls() {
            info!(
                "TLS 1.2 and 1.3, ALPN h2 and http/1.1, certificate {} and key {}: reloaded on change (checked every {} s) or SIGHUP",
                tls.cert_path().display(),
                tls.key_path().display(),
                tls.poll.as_secs()
            );
        }
        if let Some(admin) = &admin {
            info!("admin endpoints on http://{}", admin.local_addr().map_err(io("admin listener"))?);
        }
        for resource in config.protected() {
            log_resource(resource);
        }
        if demo {
            println!("{}", demo::banner(&edge, &config.issuer.url, &config.resource.path));
        }

        let (reload, reloads) = tokio::sync::watch::channel(None);

        tokio::spawn(signals(trigger.clone(), loaded.tls().cloned(), reload, reread));
        let result = app::run_with_reloads(&config, loaded, listener, admin, shutdown, reloads).await;
        // The edge may stop on its own (an unusable authorization server); the demo servers
        // go with it.
        trigger.fire();
        for task in demo_tasks {
            let _ = task.await;
        }
        info!("stopped");
        match result {
            Ok(()) => Ok(()),
            Err(RunError::Unusable(why)) => Err(Failure::Unusable(why)),
            Err(RunError::Start(e)) => Err(Failure::Start(e)),
            Err(RunError::Io(e)) => Err(Failure::Io("serving".into(), e)),
        }
    })
}

/// Logs what one protected resource is and how its gate checks tokens.
fn log_resource(config: &Config) {
    let resource = &config.resource.url;
    info!("resource {resource} with authorization server {}", config.issuer.url);
    match (&config.upstream, &config.token_check) {
        (None, _) => info!("{resource}: no upstream, only its discovery documents are served"),
        (Some(up), TokenCheck::Jwt) => {
            info!("{resource}: tokens verified at the edge (jwt) before forwarding to {}://{}", up.scheme, up.authority)
        }
        (Some(up), TokenCheck::Introspect { .. }) => info!(
            "{resource}: tokens introspected at the authorization server (RFC 7662) before forwarding to {}://{}",
            up.scheme, up.authority
        ),
        (Some(up), TokenCheck::Presence) => info!(
            "{resource}: tokens checked for presence only; {}://{} must validate them itself",
            up.scheme, up.authority
        ),
    }
}

/// Binds the main listener with a listen backlog sized for `--max-connections`: at that limit
/// the edge stops accepting and new clients wait in this queue (std's `bind` asks for 128).
/// The kernel caps it at `net.core.somaxconn`.
fn listen(addr: std::net::SocketAddr, max_connections: Option<usize>) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As std's bind does on Unix: a restarted edge can bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let backlog = max_connections.map_or(4096, |n| u32::try_from(n).unwrap_or(u32::MAX)).clamp(1024, 65_535);
    socket.listen(backlog)
}

/// Where the demo's own servers listen; the configuration is pointed at them.
#[derive(Clone, Copy)]
struct Demo {
    auth_addr: std::net::SocketAddr,
    mcp_addr: std::net::SocketAddr,
}

impl Demo {
    /// The authorization server is always the demo's; the resource and the MCP server are
    /// unless the operator named others.
    fn apply(&self, settings: &mut Settings) -> Result<(), ConfigError> {
        settings.set("auth_server", format!("http://{}", self.auth_addr));
        if !settings.has("resource") {
            let listen = settings.listen()?;
            let scheme = if settings.has("tls_cert") { "https" } else { "http" };
            settings.set("resource", format!("{scheme}://{listen}/mcp"));
        }
        if !settings.has("upstream") {
            settings.set("upstream", format!("http://{}", self.mcp_addr));
        }
        // The banner's curl lines name 127.0.0.1; a reader may well type localhost instead.
        if !settings.has("host_alias") {
            settings.set("host_alias", "localhost 127.0.0.1 [::1]".to_string());
        }
        // The challenge names the base scope; the policy's admin tool shows a step-up. A policy
        // needs checked tokens, so the demo leaves it out in presence mode.
        if !settings.has("scope") {
            settings.set("scope", "mcp:tools".to_string());
        }
        if !settings.has("policy") && settings.given("token_check") != Some("presence") {
            settings.set_object("policy", demo::policy(), "the demo");
        }
        Ok(())
    }
}

/// Fires shutdown on SIGTERM or SIGINT. SIGHUP reloads the TLS certificate and reads the
/// configuration again (`reread`), handing it to the reloader, which validates and primes it.
async fn signals(
    trigger: std::sync::Arc<shutdown::Trigger>,
    tls: Option<mcp_auth_edge::serve::tls::Tls>,
    reload: tokio::sync::watch::Sender<Option<app::reload::Reload>>,
    reread: impl Fn() -> app::reload::Reload,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        error!("cannot install signal handlers; stop the process with SIGKILL");
        return;
    };
    // Without a handler SIGHUP would end the process; with one it never does.
    let mut hup = signal(SignalKind::hangup()).map_err(|e| error!("cannot handle SIGHUP: {e}")).ok();
    loop {
        tokio::select! {
            _ = term.recv() => {
                info!("SIGTERM: draining");
                break;
            }
            _ = int.recv() => {
                info!("SIGINT: draining");
                break;
            }
            Some(()) = async { hup.as_mut()?.recv().await } => {
                if let Some(tls) = &tls {
                    info!("SIGHUP: reloading the TLS certificate");
                    // The outcome is logged; a failure keeps the certificate in service.
                    let _ = tls.reload().await;
                }
                info!("SIGHUP: reading the configuration again");
                // Read now, so the file as it is at this signal is what gets primed; a newer
                // signal's reading replaces it if it has not been taken yet.
                reload.send_replace(Some(reread()));
            }
        }
    }
    trigger.fire();
}
