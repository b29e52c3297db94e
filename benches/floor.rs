//! `hyper-floor ADDR FILE`: the bare hyper floor of the load benchmark. Serves FILE's bytes to
//! every request on ADDR, on a current_thread runtime (one core, like the edge at `--threads 1`
//! and nginx with one worker). Built with `cargo build --release --features floor --bin hyper-floor`.

#[path = "floor_service.rs"]
mod floor_service;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, file] = &args[..] else {
        eprintln!("usage: hyper-floor ADDR FILE");
        return ExitCode::from(2);
    };
    let body = match std::fs::read(file) {
        Ok(bytes) => bytes::Bytes::from(bytes),
        Err(e) => {
            eprintln!("hyper-floor: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime starts");
    runtime.block_on(async {
        match tokio::net::TcpListener::bind(addr.as_str()).await {
            Ok(listener) => {
                floor_service::serve(listener, body).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hyper-floor: cannot listen on {addr}: {e}");
                ExitCode::from(2)
            }
        }
    })
}
