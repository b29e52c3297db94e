//! The answers around the documents: CORS preflight, 405, HEAD, conditional requests and 404.

mod support;

use http::{Method, StatusCode};
use support::{head_value, raw_exchange, request, split_head, Edge, Reply, Upstream, AS_PATH, PRM_PATH};

/// Both documents' paths, on an edge whose upstream document is loaded.
async fn edge() -> (Upstream, Edge) {
    let upstream = Upstream::serving().await;
    let edge = Edge::ready_for(&upstream, &[]).await;
    (upstream, edge)
}

const DOCUMENTS: [&str; 3] = [AS_PATH, PRM_PATH, "/.well-known/oauth-protected-resource/mcp"];

fn assert_json_error(reply: &Reply, status: StatusCode, error: &str) {
    assert_eq!(reply.status, status);
    assert_eq!(reply.header("content-type"), "application/json");
    let body = reply.json();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
}

#[tokio::test]
async fn preflight_allows_the_document_methods_and_the_requested_headers() {
    let (_upstream, edge) = edge().await;
    for path in DOCUMENTS {
        let reply = request(
            edge.addr,
            Method::OPTIONS,
            path,
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "mcp-protocol-version"),
            ],
        )
        .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(reply.header("access-control-allow-origin"), "*");
        assert_eq!(reply.header("access-control-allow-methods"), "GET, HEAD, OPTIONS");
        assert_eq!(reply.header("access-control-allow-headers"), "mcp-protocol-version");
        let max_age: u32 = reply.header("access-control-max-age").parse().expect("Max-Age in seconds");
        assert!(max_age > 0);
        assert!(reply.body.is_empty());
    }
}

#[tokio::test]
async fn preflight_without_requested_headers_still_allows_mcp_protocol_version() {
    let (_upstream, edge) = edge().await;
    let reply = request(edge.addr, Method::OPTIONS, AS_PATH, &[("access-control-request-method", "GET")]).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let allowed = reply.header("access-control-allow-headers").to_ascii_lowercase();
    assert!(allowed.split(", ").any(|h| h == "mcp-protocol-version"), "{allowed}");
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let (_upstream, edge) = edge().await;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        for path in DOCUMENTS {
            let reply = request(edge.addr, method.clone(), path, &[]).await;
            assert_json_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            assert_eq!(reply.header("allow"), "GET, HEAD, OPTIONS", "{method} {path}");
        }
    }
}

#[tokio::test]
async fn head_sends_the_length_and_no_body() {
    let (_upstream, edge) = edge().await;
    for path in DOCUMENTS {
        let document = edge.get(path).await;
        let raw =
            raw_exchange(edge.addr, &format!("HEAD {path} HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n"))
                .await;
        let (head, rest) = split_head(&raw);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert_eq!(head_value(&head, "content-length"), Some(document.body.len().to_string().as_str()));
        assert_eq!(head_value(&head, "etag"), Some(document.header("etag")));
        assert_eq!(head_value(&head, "content-type"), Some("application/json"));
        assert!(rest.is_empty(), "{} bytes followed the HEAD response: {:?}", rest.len(), rest);
    }
}

#[tokio::test]
async fn keep_alive_get_after_head_reads_cleanly() {
    // If HEAD leaked body bytes, the second response on the connection would be misparsed.
    let (upstream, edge) = edge().await;
    let raw = raw_exchange(
        edge.addr,
        &format!(
            "HEAD {AS_PATH} HTTP/1.1\r\nHost: edge.test\r\n\r\nGET {AS_PATH} HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    let (first, rest) = split_head(&raw);
    assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
    let (second, body) = split_head(rest);
    assert!(second.starts_with("HTTP/1.1 200 "), "{second}");
    assert_eq!(body, &upstream.metadata(1)[..]);
}

#[tokio::test]
async fn if_none_match_gives_304_when_it_matches() {
    let (_upstream, edge) = edge().await;
    for path in DOCUMENTS {
        let etag = edge.get(path).await.header("etag").to_string();
        for field in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".to_string()] {
            let reply = request(edge.addr, Method::GET, path, &[("if-none-match", field.as_str())]).await;
            assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{path} If-None-Match: {field}");
            assert_eq!(reply.header("etag"), etag);
            assert_eq!(reply.header("cache-control"), "public, max-age=300");
            assert!(reply.body.is_empty());
        }
        let reply = request(edge.addr, Method::HEAD, path, &[("if-none-match", etag.as_str())]).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "HEAD {path}");
    }
}

#[tokio::test]
async fn if_none_match_gives_200_when_it_does_not_match() {
    let (upstream, edge) = edge().await;
    let etag = edge.get(AS_PATH).await.header("etag").to_string();
    let near_miss = format!("{}x\"", &etag[..etag.len() - 1]);
    for field in ["\"other\"", "W/\"other\", \"another\"", etag.trim_matches('"'), near_miss.as_str()] {
        let reply = request(edge.addr, Method::GET, AS_PATH, &[("if-none-match", field)]).await;
        assert_eq!(reply.status, StatusCode::OK, "If-None-Match: {field}");
        assert_eq!(reply.body, upstream.metadata(1));
    }
}

#[tokio::test]
async fn other_paths_get_404_json() {
    let (_upstream, edge) = edge().await;
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/mcp"),
        (Method::POST, "/mcp"),
        (Method::GET, "/.well-known/oauth-protected-resource/other"),
        (Method::GET, "/.well-known/oauth-authorization-server/"),
        (Method::GET, "/.WELL-KNOWN/oauth-authorization-server"),
    ] {
        let reply = request(edge.addr, method, path, &[]).await;
        assert_json_error(&reply, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn a_query_string_does_not_change_the_route() {
    let (upstream, edge) = edge().await;
    let reply = edge.get(&format!("{AS_PATH}?x=1")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, upstream.metadata(1));
}
