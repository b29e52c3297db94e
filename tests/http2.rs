//! HTTP/2 cleartext with prior knowledge, the way a load balancer or a gRPC-era client talks.

mod support;

use http::{Method, StatusCode, Version};
use support::{try_request, Edge, Reply, Upstream, AS_PATH, PRM_PATH};

async fn h2(edge: &Edge, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    try_request(edge.addr, Version::HTTP_2, method, path, headers).await.unwrap_or_else(|e| panic!("h2 {path}: {e}"))
}

#[tokio::test]
async fn both_documents_over_h2c() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &[]).await;
    for path in [AS_PATH, PRM_PATH] {
        let over_h2 = h2(&edge, Method::GET, path, &[]).await;
        let over_h1 = edge.get(path).await;
        assert_eq!(over_h2.version, Version::HTTP_2);
        assert_eq!(over_h2.status, StatusCode::OK);
        assert_eq!(over_h2.body, over_h1.body, "{path}");
        for name in ["content-type", "access-control-allow-origin", "cache-control", "etag", "content-length"] {
            assert_eq!(over_h2.header(name), over_h1.header(name), "{path} {name}");
        }
    }
    assert_eq!(h2(&edge, Method::GET, AS_PATH, &[]).await.body, upstream.metadata(1));
}

#[tokio::test]
async fn h2c_conditional_head_and_errors() {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &[]).await;
    let etag = edge.get(AS_PATH).await.header("etag").to_string();

    let reply = h2(&edge, Method::GET, AS_PATH, &[("if-none-match", etag.as_str())]).await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
    assert!(reply.body.is_empty());

    let reply = h2(&edge, Method::HEAD, AS_PATH, &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-length"), upstream.metadata(1).len().to_string());
    assert!(reply.body.is_empty());

    let reply =
        h2(&edge, Method::OPTIONS, PRM_PATH, &[("access-control-request-headers", "mcp-protocol-version")]).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("access-control-allow-headers"), "mcp-protocol-version");

    assert_eq!(h2(&edge, Method::POST, PRM_PATH, &[]).await.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h2(&edge, Method::GET, "/nothing", &[]).await.status, StatusCode::NOT_FOUND);
}
