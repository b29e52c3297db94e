//! Several protected resources behind one edge (`resources` in `--config`): each with its own
//! authorization server, keys, scopes and MCP server, its own metadata documents and
//! challenges, and tokens of one never let into another.

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use mcp_auth_edge::config::Config;
use mcp_auth_edge::config::Settings;
use serde_json::json;
use support::jwt::{auth_server, claims, now, Signer};
use support::mcp::McpServer;
use support::{config, get, metric, request, Edge, TempFile, AS_PATH, PRM_PATH, RESOURCE};

const SECOND: &str = "https://mcp.example.com/b/mcp";
const ORIGIN: &str = "https://mcp.example.com";

#[tokio::test]
async fn two_resources_each_with_their_own_authorization_server_and_mcp_server() {
    let (key_a, key_b) = (Signer::ed25519("key-a"), Signer::p256("key-b"));
    let (as_a, as_b) = (auth_server(&[&key_a]).await, auth_server(&[&key_b]).await);
    let (mcp_a, mcp_b) = (McpServer::start().await, McpServer::start().await);
    let file = TempFile::new(
        "resources.json",
        &json!({
            "resource": RESOURCE, "auth_server": as_a.issuer(), "upstream": mcp_a.url(), "scope": ["a:tools"],
            "resources": [{
                "resource": SECOND, "auth_server": as_b.issuer(), "upstream": mcp_b.url(),
                "scope": ["b:tools"], "required_scope": ["b:tools"], "resource_name": "Second",
            }],
        })
        .to_string(),
    );
    let edge = Edge::start_config(config(&["--config", file.path()])).await;
    edge.wait_ready().await;

    // Each resource's own metadata document (RFC 9728 §3.1, path inserted).
    let prm_a = get(edge.addr, &format!("{PRM_PATH}/mcp")).await.json();
    assert_eq!(prm_a["resource"], RESOURCE);
    assert_eq!(prm_a["authorization_servers"], json!([as_a.issuer()]));
    assert_eq!(prm_a["scopes_supported"], json!(["a:tools"]));
    let prm_b = get(edge.addr, &format!("{PRM_PATH}/b/mcp")).await.json();
    assert_eq!(prm_b["resource"], SECOND);
    assert_eq!(prm_b["authorization_servers"], json!([as_b.issuer()]));
    assert_eq!(prm_b["scopes_supported"], json!(["b:tools"]));
    assert_eq!(prm_b["resource_name"], "Second");
    // The root documents are the first resource's; each relays its authorization server's
    // metadata path-inserted with its own path.
    assert_eq!(get(edge.addr, PRM_PATH).await.json()["resource"], RESOURCE);
    assert_eq!(get(edge.addr, AS_PATH).await.json()["issuer"], as_a.issuer());
    assert_eq!(get(edge.addr, &format!("{AS_PATH}/mcp")).await.json()["issuer"], as_a.issuer());
    assert_eq!(get(edge.addr, &format!("{AS_PATH}/b/mcp")).await.json()["issuer"], as_b.issuer());

    // Each challenge names its own document and scopes.
    let challenge = |path: &'static str| {
        let addr = edge.addr;
        async move {
            let reply = request(addr, Method::POST, path, &[]).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            reply.header("www-authenticate").to_string()
        }
    };
    assert_eq!(
        challenge("/mcp").await,
        format!("Bearer resource_metadata=\"{ORIGIN}{PRM_PATH}/mcp\", scope=\"a:tools\"")
    );
    assert_eq!(
        challenge("/b/mcp").await,
        format!("Bearer resource_metadata=\"{ORIGIN}{PRM_PATH}/b/mcp\", scope=\"b:tools\"")
    );

    // Tokens from each authorization server, for its own resource.
    let token_a = format!("Bearer {}", key_a.sign(&claims(&as_a.issuer())));
    let claims_b = json!({"iss": as_b.issuer(), "aud": SECOND, "sub": "user-b", "scope": "b:tools",
                          "exp": now() + 600, "iat": now()});
    let token_b = format!("Bearer {}", key_b.sign(&claims_b));
    let call = |path: &'static str, token: &str| {
        let (addr, token) = (edge.addr, token.to_string());
        async move { request(addr, Method::POST, path, &[("authorization", token.as_str())]).await.status }
    };
    assert_eq!(call("/mcp", &token_a).await, StatusCode::OK);
    // The MCP stand-in answers only `/mcp`, so its 404 is what shows the call got through.
    assert_eq!(call("/b/mcp", &token_b).await, StatusCode::NOT_FOUND);
    assert_eq!(call("/b/mcp/sub", &token_b).await, StatusCode::NOT_FOUND);
    // Crossed over: the other server's key, issuer and audience.
    assert_eq!(call("/b/mcp", &token_a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(call("/mcp", &token_b).await, StatusCode::UNAUTHORIZED);
    let seen_a: Vec<String> = mcp_a.requests().iter().map(|r| r.target.clone()).collect();
    let seen_b: Vec<String> = mcp_b.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(seen_a, ["/mcp"]);
    assert_eq!(seen_b, ["/b/mcp", "/b/mcp/sub"]);

    let text = edge.metrics().await;
    for resource in [RESOURCE, SECOND] {
        let loaded = format!("mcp_auth_edge_snapshot_loaded{{resource=\"{resource}\"}}");
        assert_eq!(metric(&text, &loaded), Some(1.0), "{text}");
    }
    assert!(as_b.hits("/jwks") >= 1 && as_a.hits("/jwks") >= 1);
}

#[tokio::test]
async fn readiness_waits_for_every_resource() {
    let key = Signer::ed25519("k");
    let ready_as = auth_server(&[&key]).await;
    let late_as = support::Upstream::start().await;
    let file = TempFile::new(
        "late.json",
        &json!({
            "resource": RESOURCE, "auth_server": ready_as.issuer(),
            "resources": [{"resource": SECOND, "auth_server": late_as.issuer()}],
        })
        .to_string(),
    );
    let edge = Edge::start_config(config(&["--config", file.path()])).await;
    support::wait_until("the first resource's document", || async {
        get(edge.addr, AS_PATH).await.status == StatusCode::OK
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(edge.admin_get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(edge.addr, &format!("{AS_PATH}/b/mcp")).await.status, StatusCode::SERVICE_UNAVAILABLE);
    late_as.set(AS_PATH, support::Canned::ok(late_as.metadata(1)));
    edge.wait_ready().await;
    assert_eq!(get(edge.addr, &format!("{AS_PATH}/b/mcp")).await.json()["issuer"], late_as.issuer());
}

fn load(name: &str, file: &serde_json::Value) -> Result<Config, String> {
    let file = TempFile::new(name, &file.to_string());
    let settings =
        Settings::load(["--config".to_string(), file.path().to_string()], |_| None).map_err(|e| e.to_string())?;
    Config::from_settings(&settings).map_err(|e| e.to_string())
}

#[test]
fn bad_resource_entries_are_refused_by_name() {
    let top = |resources: serde_json::Value| json!({"resource": RESOURCE, "auth_server": "https://as.example", "resources": resources});
    let error = load("entries-1.json", &top(json!([{"resource": RESOURCE, "auth_server": "https://other.example"}])))
        .unwrap_err();
    assert!(error.contains("resources[0]") && error.contains("same path as another resource"), "{error}");
    let error = load(
        "entries-2.json",
        &top(json!([{"resource": SECOND, "auth_server": "https://b.example", "listen": "0.0.0.0:1"}])),
    )
    .unwrap_err();
    assert!(error.contains("resources[0]") && error.contains("\"listen\" is not a per-resource setting"), "{error}");
    let error = load("entries-3.json", &top(json!([{"resource": SECOND}]))).unwrap_err();
    assert!(error.contains("resources[0]") && error.contains("needs \"auth_server\""), "{error}");
    let error = load(
        "entries-4.json",
        &top(json!([{"resource": SECOND, "auth_server": "https://b.example", "scope": "bad\"scope"}])),
    )
    .unwrap_err();
    assert!(error.contains("\"scope\" in") && error.contains("resources[0]"), "{error}");
    let error = load("entries-5.json", &top(json!({"resource": SECOND}))).unwrap_err();
    assert!(error.contains("\"resources\"") && error.contains("an array of objects"), "{error}");
}

#[test]
fn entries_inherit_timings_and_nothing_that_names_a_resource() {
    let config = load(
        "entries-6.json",
        &json!({
            "resource": RESOURCE, "auth_server": "https://as.example", "refresh": 42, "fetch_timeout": 3,
            "scope": ["top"], "upstream": "http://127.0.0.1:9",
            "resources": [{"resource": SECOND, "auth_server": "https://b.example", "refresh": 7}],
        }),
    )
    .expect("a valid configuration");
    let second = &config.resources[0];
    assert_eq!(second.refresh, Duration::from_secs(7));
    assert_eq!(second.fetch_timeout, Duration::from_secs(3));
    assert!(second.scopes.is_empty());
    assert!(second.upstream.is_none());
    assert_eq!(config.protected().count(), 2);
}
