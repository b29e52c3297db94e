//! The admin listener: liveness, readiness and Prometheus metrics, apart from the public port.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::net::TcpListener;

use crate::app::{Live, State};
use crate::serve;
use crate::shutdown::Shutdown;
use crate::telemetry::metrics::Snapshot;

const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const PROMETHEUS: HeaderValue = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");

/// Serves `/healthz`, `/readyz` and `/metrics` until shutdown.
pub async fn run(listener: TcpListener, live: Arc<Live>, shutdown: Shutdown, drain: Duration) -> io::Result<()> {
    serve::serve(listener, shutdown, drain, move |request, _| std::future::ready(Ok(handle(&live.load(), &request))))
        .await
}

/// Answers one admin request.
pub fn handle<B>(state: &State, request: &Request<B>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/healthz" => (StatusCode::OK, TEXT, Bytes::from_static(b"ok\n")),
        "/readyz" if state.ready() => (StatusCode::OK, TEXT, Bytes::from_static(b"ready\n")),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            Bytes::from_static(
                b"not ready: authorization server metadata (or, in jwt mode, its keys) not fetched yet\n",
            ),
        ),
        "/metrics" => {
            let snapshots: Vec<Snapshot<'_>> = state
                .resources
                .iter()
                .map(|r| Snapshot { resource: &r.resource, age: r.snapshots.age(), loaded: r.snapshots.ready() })
                .collect();
            (StatusCode::OK, PROMETHEUS, Bytes::from(state.telemetry.metrics.render(&snapshots)))
        }
        _ => (StatusCode::NOT_FOUND, TEXT, Bytes::from_static(b"not found\n")),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
