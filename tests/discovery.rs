//! Discovery over real sockets: the relayed RFC 8414 document, the RFC 9728 document, and the
//! order in which the edge looks for the upstream metadata.

mod support;

use http::StatusCode;
use support::{metadata_for, Canned, Edge, Reply, Upstream, AS_PATH, OIDC_PATH, PRM_PATH, RESOURCE};

/// The headers every discovery document carries.
fn assert_document_headers(reply: &Reply, max_age: u32) {
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "application/json");
    assert_eq!(reply.header("access-control-allow-origin"), "*");
    assert_eq!(reply.header("cache-control"), format!("public, max-age={max_age}"));
    assert_eq!(reply.header("content-length"), reply.body.len().to_string());
    let etag = reply.header("etag");
    assert!(etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'), "a strong entity tag: {etag}");
}

#[tokio::test]
async fn relays_the_upstream_document_byte_for_byte() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &["--cache-max-age", "120"]).await;
    for path in [AS_PATH, OIDC_PATH] {
        let reply = edge.get(path).await;
        assert_document_headers(&reply, 120);
        assert_eq!(reply.body, upstream.metadata(1), "{path}");
    }
}

#[tokio::test]
async fn serves_the_resource_document_at_both_paths() {
    let upstream = Upstream::serving().await;
    let edge = Edge::for_upstream(
        &upstream,
        &[
            "--scope",
            "mcp:tools",
            "--scope",
            "mcp:resources",
            "--resource-name",
            "Example \"MCP\" server",
            "--resource-documentation",
            "https://docs.example.com/mcp",
        ],
    )
    .await;
    let expected = format!(
        r#"{{"resource":"{RESOURCE}","authorization_servers":["{}"],"scopes_supported":["mcp:tools","mcp:resources"],"bearer_methods_supported":["header"],"resource_name":"Example \"MCP\" server","resource_documentation":"https://docs.example.com/mcp"}}"#,
        upstream.issuer()
    );
    let with_path = edge.get(&format!("{PRM_PATH}/mcp")).await;
    let bare = edge.get(PRM_PATH).await;
    for reply in [&with_path, &bare] {
        assert_document_headers(reply, 300);
        assert_eq!(reply.text(), expected);
    }
    assert_eq!(with_path.header("etag"), bare.header("etag"));
    // Another resource path is not this resource's document.
    assert_eq!(edge.get(&format!("{PRM_PATH}/other")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn resource_document_leaves_out_what_is_not_configured() {
    let upstream = Upstream::start().await;
    let issuer = upstream.issuer();
    let edge = Edge::start(&["--resource", "https://mcp.example.com", "--auth-server", &issuer]).await;
    let reply = edge.get(PRM_PATH).await;
    assert_eq!(
        reply.text(),
        format!(
            r#"{{"resource":"https://mcp.example.com","authorization_servers":["{issuer}"],"bearer_methods_supported":["header"]}}"#
        )
    );
}

/// Runs discovery against a stand-in where only `serving` (of `order`) has the document and
/// the paths before it answer `refusal`; checks the document is served and the paths were
/// asked for in order, and that nothing after `serving` was asked for.
async fn discovery_finds(issuer_path: &str, order: &[&str], serving: usize, refusal: u16) {
    let upstream = Upstream::start().await;
    let issuer = format!("{}{issuer_path}", upstream.issuer());
    let document = metadata_for(&issuer, 7, "");
    for path in &order[..serving] {
        upstream.set(path, Canned::status(refusal));
    }
    upstream.set(order[serving], Canned::ok(document.clone()));
    let edge = Edge::start(&["--resource", RESOURCE, "--auth-server", &issuer]).await;
    edge.wait_ready().await;
    assert_eq!(edge.get(AS_PATH).await.body, document);
    let log = upstream.log();
    assert_eq!(&log[..=serving], &order[..=serving], "first pass of the discovery order");
    for later in &order[serving + 1..] {
        assert_eq!(upstream.hits(later), 0, "{later} asked for after {} answered", order[serving]);
    }
}

#[tokio::test]
async fn issuer_without_path_tries_rfc8414_then_openid() {
    let order = [AS_PATH, OIDC_PATH];
    discovery_finds("", &order, 0, 404).await;
    discovery_finds("", &order, 1, 404).await;
    discovery_finds("", &order, 1, 403).await;
}

#[tokio::test]
async fn issuer_with_path_tries_the_three_urls_in_order() {
    let order = [
        "/.well-known/oauth-authorization-server/tenant",
        "/.well-known/openid-configuration/tenant",
        "/tenant/.well-known/openid-configuration",
    ];
    for serving in 0..order.len() {
        discovery_finds("/tenant", &order, serving, 404).await;
    }
    discovery_finds("/tenant", &order, 2, 410).await;
}

#[tokio::test]
async fn a_server_error_does_not_move_on() {
    let upstream = Upstream::start().await;
    upstream.set(AS_PATH, Canned::status(500));
    upstream.set(OIDC_PATH, Canned::ok(upstream.metadata(1)));
    let edge = Edge::for_upstream(&upstream, &[]).await;
    // Two failed attempts: the retry happened, and neither went on to the second URL.
    edge.wait_metric_above("mcp_auth_edge_refresh_failure_total", 1.0).await;
    assert_eq!(upstream.hits(OIDC_PATH), 0, "log: {:?}", upstream.log());
    assert_eq!(edge.get(AS_PATH).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(edge.admin_get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn every_url_refused_leaves_the_edge_unready() {
    let upstream = Upstream::start().await;
    let edge = Edge::for_upstream(&upstream, &[]).await;
    edge.wait_metric_above("mcp_auth_edge_refresh_failure_total", 1.0).await;
    assert!(upstream.hits(AS_PATH) >= 2 && upstream.hits(OIDC_PATH) >= 2, "log: {:?}", upstream.log());
    assert_eq!(edge.get(AS_PATH).await.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn explicit_metadata_url_skips_discovery() {
    let upstream = Upstream::start().await;
    upstream.set("/custom/metadata.json", Canned::ok(upstream.metadata(3)));
    upstream.set(AS_PATH, Canned::ok(upstream.metadata(1)));
    let url = format!("{}/custom/metadata.json", upstream.issuer());
    let edge = Edge::ready_for(&upstream, &["--auth-server-metadata", &url]).await;
    assert_eq!(edge.get(AS_PATH).await.body, upstream.metadata(3));
    let log = upstream.log();
    assert!(log.iter().all(|p| p == "/custom/metadata.json"), "only the explicit URL is fetched: {log:?}");
}

#[tokio::test]
async fn issuer_with_path_is_served_at_every_discovery_form() {
    let upstream = Upstream::start().await;
    let issuer = format!("{}/tenant", upstream.issuer());
    let document = metadata_for(&issuer, 1, "");
    upstream.set("/.well-known/oauth-authorization-server/tenant", Canned::ok(document.clone()));
    let edge = Edge::start(&["--resource", RESOURCE, "--auth-server", &issuer]).await;
    edge.wait_ready().await;
    for path in [
        AS_PATH,
        OIDC_PATH,
        "/.well-known/oauth-authorization-server/tenant",
        "/.well-known/openid-configuration/tenant",
        "/tenant/.well-known/openid-configuration",
    ] {
        let reply = edge.get(path).await;
        assert_document_headers(&reply, 300);
        assert_eq!(reply.body, document, "{path}");
    }
}

#[tokio::test]
async fn issuer_without_path_has_no_path_inserted_forms() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &[]).await;
    for path in ["/.well-known/oauth-authorization-server/tenant", "/tenant/.well-known/openid-configuration"] {
        assert_eq!(edge.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
}
