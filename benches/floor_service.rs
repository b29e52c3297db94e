//! The bare hyper floor: a static `Bytes` body with the headers the edge sends for a discovery
//! document, built the plain hyper way. The load benchmark (`benches/floor.rs`) and the
//! allocation test (`tests/alloc.rs`) compare mcp-auth-edge against it, so it must stay the
//! smallest honest hyper service: no precomputed header map, nothing clever.

// Each includer uses part of this file.
#![allow(dead_code)]

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::Response;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A 200 carrying `body` with the edge's discovery headers; hyper adds `content-length` from
/// the body.
pub fn response(body: &Bytes, etag: &HeaderValue) -> Response<Full<Bytes>> {
    Response::builder()
        .header(header::ETAG, etag.clone())
        .header(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"))
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"))
        .header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(Full::new(body.clone()))
        .expect("static header names and values make a valid response")
}

/// Serves `body` to every request on every connection accepted from `listener`, until the
/// task running this future is dropped.
pub async fn serve(listener: TcpListener, body: Bytes) {
    let etag = entity_tag(&body);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        let etag = etag.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request| std::future::ready(Ok::<_, Infallible>(response(&body, &etag))));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// The same strong entity tag the edge gives these bytes (`"<length hex>-<FNV-1a 64 hex>"`),
/// made once, so the floor's response headers match the edge's byte for byte.
fn entity_tag(body: &[u8]) -> HeaderValue {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in body {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    HeaderValue::from_str(&format!("\"{:x}-{:016x}\"", body.len(), hash)).expect("hex digits, a dash and quotes")
}
