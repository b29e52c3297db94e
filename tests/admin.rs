//! The admin listener: liveness, readiness and Prometheus metrics.

mod support;

/// The snapshot gauges of the one resource these tests configure.
const LOADED: &str = "mcp_auth_edge_snapshot_loaded{resource=\"https://mcp.example.com/mcp\"}";
const AGE: &str = "mcp_auth_edge_snapshot_age_seconds{resource=\"https://mcp.example.com/mcp\"}";

use http::{Method, StatusCode};
use support::{free_port, metric, request, Canned, Edge, Upstream, AS_PATH, PRM_PATH, RESOURCE};

#[tokio::test]
async fn healthz_is_always_200() {
    // Even with no upstream at all.
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let edge = Edge::start(&["--resource", RESOURCE, "--auth-server", &issuer]).await;
    let reply = edge.admin_get("/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), "no-store");
    assert_eq!(edge.admin_get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(edge.admin_get("/nothing").await.status, StatusCode::NOT_FOUND);
    // The admin paths are not on the public listener.
    assert_eq!(edge.get("/healthz").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &[]).await;
    for _ in 0..3 {
        edge.get(AS_PATH).await;
    }
    edge.get(PRM_PATH).await;
    edge.get("/nowhere").await;
    request(edge.addr, Method::POST, PRM_PATH, &[]).await;
    request(edge.addr, Method::OPTIONS, AS_PATH, &[]).await;

    let text = edge.metrics().await;
    let count = |route: &str, status: &str| {
        metric(&text, &format!("mcp_auth_edge_requests_total{{route=\"{route}\",status=\"{status}\"}}"))
    };
    assert_eq!(count("auth_server_metadata", "200"), Some(3.0), "{text}");
    assert_eq!(count("auth_server_metadata", "204"), Some(1.0), "{text}");
    assert_eq!(count("resource_metadata", "200"), Some(1.0), "{text}");
    assert_eq!(count("resource_metadata", "405"), Some(1.0), "{text}");
    assert_eq!(count("other", "404"), Some(1.0), "{text}");
    assert!(metric(&text, "mcp_auth_edge_refresh_success_total").is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(metric(&text, "mcp_auth_edge_refresh_failure_total"), Some(0.0), "{text}");
    assert_eq!(metric(&text, LOADED), Some(1.0), "{text}");
    let age = metric(&text, AGE).expect("snapshot age once loaded");
    assert!((0.0..60.0).contains(&age), "{age}");
}

#[tokio::test]
async fn metrics_count_refresh_failures_and_leave_out_age_before_the_first_load() {
    let upstream = Upstream::start().await;
    upstream.set(AS_PATH, Canned::status(502));
    let edge = Edge::for_upstream(&upstream, &[]).await;
    edge.wait_metric_above("mcp_auth_edge_refresh_failure_total", 1.0).await;
    let reply = edge.admin_get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("content-type").starts_with("text/plain"));
    let text = reply.text();
    assert_eq!(metric(&text, "mcp_auth_edge_refresh_success_total"), Some(0.0), "{text}");
    assert_eq!(metric(&text, LOADED), Some(0.0), "{text}");
    assert_eq!(metric(&text, AGE), None, "{text}");

    upstream.set(AS_PATH, Canned::ok(upstream.metadata(1)));
    edge.wait_ready().await;
    let text = edge.metrics().await;
    assert!(metric(&text, AGE).is_some(), "{text}");
    assert_eq!(metric(&text, LOADED), Some(1.0), "{text}");
}
