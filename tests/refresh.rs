//! The background refresh: changes are picked up, failures keep the last good document in
//! service byte-for-byte, and an upstream that is down at start is waited for.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::{free_port, metadata_for, wait_until, Canned, Edge, Upstream, AS_PATH, PRM_PATH, RESOURCE};

const SUCCESSES: &str = "mcp_auth_edge_refresh_success_total";
const FAILURES: &str = "mcp_auth_edge_refresh_failure_total";

#[tokio::test]
async fn a_changed_document_is_picked_up_with_a_new_etag() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &[]).await;
    let first = edge.get(AS_PATH).await;
    assert_eq!(first.body, upstream.metadata(1));

    upstream.set(AS_PATH, Canned::ok(upstream.metadata(2)));
    let revised = upstream.metadata(2);
    let (edge_ref, revised_ref) = (&edge, &revised);
    wait_until("the revised document", || async move { edge_ref.get(AS_PATH).await.body == *revised_ref }).await;
    let second = edge.get(AS_PATH).await;
    assert_ne!(second.header("etag"), first.header("etag"));
    assert_eq!(second.header("content-length"), revised.len().to_string());
    assert!(edge.metric("mcp_auth_edge_refresh_changed_total").await >= 1.0);
}

#[tokio::test]
async fn an_unchanged_refresh_keeps_the_etag() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &[]).await;
    let before = edge.get(AS_PATH).await;
    let successes = edge.metric(SUCCESSES).await;
    edge.wait_metric_above(SUCCESSES, successes + 1.0).await;
    let after = edge.get(AS_PATH).await;
    assert_eq!(after.header("etag"), before.header("etag"));
    assert_eq!(after.body, before.body);
    assert_eq!(edge.metric("mcp_auth_edge_refresh_changed_total").await, 1.0, "only the first load changed it");
}

#[tokio::test]
async fn upstream_down_at_start_answers_503_then_recovers() {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let edge = Edge::start(&["--resource", RESOURCE, "--auth-server", &issuer]).await;
    edge.wait_metric_above(FAILURES, 0.0).await;

    let reply = edge.get(AS_PATH).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u32 = reply.header("retry-after").parse().expect("Retry-After in seconds");
    assert!(retry_after > 0);
    assert_eq!(reply.header("content-type"), "application/json");
    assert_eq!(reply.json()["error"], "temporarily_unavailable");
    assert_eq!(edge.admin_get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    // The resource document is built from the configuration and never waits for upstream.
    assert_eq!(edge.get(PRM_PATH).await.status, StatusCode::OK);

    let upstream = Upstream::start_on(port).await;
    upstream.set(AS_PATH, Canned::ok(upstream.metadata(1)));
    edge.wait_ready().await;
    let reply = edge.get(AS_PATH).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, upstream.metadata(1));
}

/// After a good load, the upstream starts answering `failure`: the edge counts failed
/// refreshes and keeps serving the document it had, with the same entity tag.
async fn keeps_the_last_good_document(failure: impl FnOnce(&Upstream) -> Canned, extra: &[&str]) {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, extra).await;
    let good = edge.get(AS_PATH).await;
    assert_eq!(good.body, upstream.metadata(1));

    let failures = edge.metric(FAILURES).await;
    upstream.set(AS_PATH, failure(&upstream));
    edge.wait_metric_above(FAILURES, failures + 1.0).await;

    let now = edge.get(AS_PATH).await;
    assert_eq!(now.status, StatusCode::OK);
    assert_eq!(now.body, good.body);
    assert_eq!(now.header("etag"), good.header("etag"));
    assert_eq!(edge.admin_get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn upstream_500_keeps_the_last_good_document() {
    keeps_the_last_good_document(|_| Canned::status(500), &[]).await;
}

#[tokio::test]
async fn invalid_json_keeps_the_last_good_document() {
    keeps_the_last_good_document(|_| Canned::ok(&b"{\"issuer\": \"http://127.0.0.1"[..]), &[]).await;
}

#[tokio::test]
async fn a_document_missing_required_fields_keeps_the_last_good_document() {
    keeps_the_last_good_document(|up| Canned::ok(format!("{{\"issuer\":\"{}\"}}", up.issuer())), &[]).await;
}

#[tokio::test]
async fn wrong_issuer_keeps_the_last_good_document() {
    keeps_the_last_good_document(|up| Canned::ok(metadata_for(&format!("{}/", up.issuer()), 2, "")), &[]).await;
}

/// A valid document for the stand-in, but of 2 KiB, against a 1 KiB cap.
fn oversized(up: &Upstream) -> Canned {
    Canned::ok(metadata_for(&up.issuer(), 2, &"x".repeat(2048)))
}

#[tokio::test]
async fn an_oversized_document_keeps_the_last_good_document() {
    keeps_the_last_good_document(oversized, &["--max-metadata-bytes", "1024"]).await;
}

#[tokio::test]
async fn an_oversized_chunked_document_keeps_the_last_good_document() {
    keeps_the_last_good_document(|up| oversized(up).chunked(), &["--max-metadata-bytes", "1024"]).await;
}

#[tokio::test]
async fn a_slow_upstream_keeps_the_last_good_document() {
    // The stand-in waits longer than the fetch timeout before it answers.
    let slow = |up: &Upstream| Canned::ok(up.metadata(2)).delayed(Duration::from_secs(3));
    keeps_the_last_good_document(slow, &["--fetch-timeout", "0.5"]).await;
}

#[tokio::test]
async fn a_document_at_the_size_cap_is_accepted() {
    let upstream = Upstream::start().await;
    let base = metadata_for(&upstream.issuer(), 1, "").len();
    let document = metadata_for(&upstream.issuer(), 1, &"x".repeat(1024 - base));
    assert_eq!(document.len(), 1024);
    upstream.set(AS_PATH, Canned::ok(document.clone()).chunked());
    let edge = Edge::ready_for(&upstream, &["--max-metadata-bytes", "1024"]).await;
    assert_eq!(edge.get(AS_PATH).await.body, document);
}
