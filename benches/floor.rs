//! `hyper-floor`: the processes the load benchmark (`benches/load.sh`) runs beside the edge.
//! Built with `cargo build --release --features floor --bin hyper-floor`. Each runs on a
//! current_thread runtime (one core, like the edge at `--threads 1` and nginx with one worker)
//! until it is killed.
//!
//! - `hyper-floor ADDR FILE`: the bare hyper floor. Serves FILE's bytes to every request.
//! - `hyper-floor demo-as ADDR AUDIENCE`: the demo authorization server (metadata, JWKS and
//!   client-credentials tokens for AUDIENCE), the issuer of the forwarded requests' tokens.
//! - `hyper-floor echo ADDR`: the demo echo MCP server, the upstream behind the edge and nginx.
//! - `hyper-floor dpop-requests DIR ISSUER RESOURCE COUNT` and `hyper-floor dpop-send ADDR FILE
//!   COUNT`: the DPoP requests of `benches/callgrind.sh`, made ahead and sent (`dpop_load.rs`).
//! - `hyper-floor proxy ADDR UPSTREAM`: the bare hyper forwarding floor (`floor_proxy.rs`),
//!   counted by `benches/callgrind.sh` as the `hfwd` kind.
//! - `hyper-floor sse ADDR` and `hyper-floor hold key=value...`: the event-stream stand-in and
//!   the stream holder of the held-streams benchmark (`benches/streams.sh`; `streams_hold.rs`).

#[path = "dpop_load.rs"]
mod dpop_load;
#[path = "floor_proxy.rs"]
mod floor_proxy;
#[path = "floor_service.rs"]
mod floor_service;
#[path = "streams_hold.rs"]
mod streams_hold;

use std::process::ExitCode;

use mcp_auth_edge::shutdown::channel as shutdown_channel;

const USAGE: &str = "usage: hyper-floor ADDR FILE | hyper-floor demo-as ADDR AUDIENCE | hyper-floor echo ADDR | hyper-floor proxy ADDR UPSTREAM \
                     | hyper-floor dpop-requests DIR ISSUER RESOURCE COUNT | hyper-floor dpop-send ADDR FILE COUNT \
                     | hyper-floor sse ADDR | hyper-floor hold key=value...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The DPoP request maker and sender run no server.
    let done = match args[..] {
        ["dpop-requests", dir, issuer, resource, count] => Some(count_of(count).and_then(|count| {
            dpop_load::generate(std::path::Path::new(dir), issuer, resource, count).map_err(|e| e.to_string())
        })),
        ["dpop-send", addr, file, count] => Some(
            count_of(count)
                .and_then(|count| dpop_load::send(addr, std::path::Path::new(file), count).map_err(|e| e.to_string())),
        ),
        _ => None,
    };
    if let ["hold", rest @ ..] = &args[..] {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime starts");
        return match runtime.block_on(streams_hold::hold(rest)) {
            Ok(figures) => {
                println!("{figures}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hyper-floor hold: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(done) = done {
        return match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hyper-floor {}: {e}", args[0]);
                ExitCode::FAILURE
            }
        };
    }
    let (addr, mode) = match args[..] {
        ["demo-as", addr, audience] => (addr, Mode::AuthServer(audience.to_string())),
        ["echo", addr] => (addr, Mode::Echo),
        ["sse", addr] => (addr, Mode::Events),
        ["proxy", addr, upstream] => match upstream.parse() {
            Ok(upstream) => (addr, Mode::Proxy(upstream)),
            Err(_) => {
                eprintln!("hyper-floor proxy: UPSTREAM must be an address like 127.0.0.1:8080, not {upstream}");
                return ExitCode::from(2);
            }
        },
        [addr, file] => match std::fs::read(file) {
            Ok(bytes) => (addr, Mode::Floor(bytes::Bytes::from(bytes))),
            Err(e) => {
                eprintln!("hyper-floor: cannot read {file}: {e}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime starts");
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("hyper-floor: cannot listen on {addr}: {e}");
                return ExitCode::from(2);
            }
        };
        // Never fired: the process runs until the load script kills it. Held so that the
        // servers do not see a dropped trigger as shutdown.
        let (_trigger, shutdown) = shutdown_channel();
        let served = match mode {
            Mode::Floor(body) => {
                // Ends on SIGINT too, so that a profiler running it writes its profile.
                tokio::select! {
                    () = floor_service::serve(listener, body) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                Ok(())
            }
            Mode::AuthServer(audience) => {
                mcp_auth_edge::app::demo::run_authorization_server(listener, audience, shutdown).await
            }
            Mode::Echo => mcp_auth_edge::app::demo::run_mcp_echo(listener, shutdown).await,
            Mode::Events => {
                streams_hold::serve_events(listener).await;
                Ok(())
            }
            Mode::Proxy(upstream) => {
                // Ends on SIGINT, so that a profiler running it writes its profile.
                tokio::select! {
                    () = floor_proxy::serve(listener, upstream) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                Ok(())
            }
        };
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hyper-floor: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn count_of(count: &str) -> Result<usize, String> {
    count.parse().map_err(|_| format!("COUNT must be a whole number, not {count}"))
}

enum Mode {
    Floor(bytes::Bytes),
    AuthServer(String),
    Echo,
    Events,
    Proxy(std::net::SocketAddr),
}
