//! Configuration through the binary: bad values stop start-up with exit code 2 and one line
//! naming the flag, variable or file key; good file values are used.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use support::{free_port, get, wait_ready, Process, TempFile, Upstream, AS_PATH, PRM_PATH};

const GOOD: &[&str] = &["--resource", "https://mcp.example.com/mcp", "--auth-server", "https://auth.example.com"];

/// Runs the binary to its exit, which a bad configuration must bring at once, and checks it
/// is code 2 with exactly one line on standard error that contains `names`.
async fn refuses(args: &[&str], env: &[(&str, &str)], names: &str) {
    let mut process = Process::spawn(args, env);
    let status = process.wait_exit(Duration::from_secs(10)).await;
    let stderr = process.stderr();
    assert_eq!(status.code(), Some(2), "args {args:?} env {env:?}: stderr {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.contains(names), "{stderr:?} should name {names}");
}

fn with_good<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    GOOD.iter().chain(extra).copied().collect()
}

#[tokio::test]
async fn missing_resource() {
    refuses(&["--auth-server", "https://auth.example.com"], &[], "--resource").await;
}

#[tokio::test]
async fn malformed_listen_address() {
    refuses(&with_good(&["--listen", "localhost:http"]), &[], "--listen").await;
}

#[tokio::test]
async fn unknown_flag() {
    refuses(&with_good(&["--refresh-every", "3"]), &[], "--refresh-every").await;
}

#[tokio::test]
async fn bad_environment_variable() {
    refuses(GOOD, &[("MCP_AUTH_EDGE_REFRESH", "abc")], "MCP_AUTH_EDGE_REFRESH").await;
}

#[tokio::test]
async fn required_value_from_the_environment_is_validated() {
    refuses(
        &["--auth-server", "https://auth.example.com"],
        &[("MCP_AUTH_EDGE_RESOURCE", "mcp.example.com")],
        "MCP_AUTH_EDGE_RESOURCE",
    )
    .await;
}

#[tokio::test]
async fn config_file_with_an_unknown_key() {
    let file = TempFile::new("unknown-key.json", r#"{"resource":"https://mcp.example.com/mcp","lisen":"127.0.0.1:1"}"#);
    refuses(&with_good(&["--config", file.path()]), &[], "\"lisen\"").await;
}

#[tokio::test]
async fn config_file_with_invalid_json() {
    let file = TempFile::new("invalid.json", r#"{"resource": "https://mcp.example.com/mcp","#);
    let args = ["--auth-server", "https://auth.example.com", "--config", file.path()];
    refuses(&args, &[], file.path()).await;
}

#[tokio::test]
async fn config_file_with_a_bad_value_names_the_key() {
    let file = TempFile::new("bad-value.json", r#"{"refresh":"soon"}"#);
    refuses(&with_good(&["--config", file.path()]), &[], "\"refresh\" in").await;
}

#[tokio::test]
async fn missing_config_file() {
    refuses(&with_good(&["--config", "/nonexistent/mcp-auth-edge.json"]), &[], "/nonexistent/mcp-auth-edge.json").await;
}

#[tokio::test]
async fn config_file_values_are_used() {
    let upstream = Upstream::serving().await;
    let (port, admin_port) = (free_port(), free_port());
    let file = TempFile::new(
        "good.json",
        &serde_json::json!({
            "listen": format!("127.0.0.1:{port}"),
            "admin_listen": format!("127.0.0.1:{admin_port}"),
            "resource": "https://mcp.example.com/tools",
            "auth_server": upstream.issuer(),
            "scope": ["mcp:tools", "mcp:prompts"],
            "resource_name": "From the file",
            "refresh": 0.2,
            "cache_max_age": 42,
        })
        .to_string(),
    );
    let _process = Process::spawn(&["--config", file.path()], &[]);
    let (addr, admin): (SocketAddr, SocketAddr) = (([127, 0, 0, 1], port).into(), ([127, 0, 0, 1], admin_port).into());
    wait_ready(admin).await;

    let reply = get(addr, &format!("{PRM_PATH}/tools")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), "public, max-age=42");
    assert_eq!(
        reply.text(),
        format!(
            r#"{{"resource":"https://mcp.example.com/tools","authorization_servers":["{}"],"scopes_supported":["mcp:tools","mcp:prompts"],"bearer_methods_supported":["header"],"resource_name":"From the file"}}"#,
            upstream.issuer()
        )
    );
    assert_eq!(get(addr, AS_PATH).await.body, upstream.metadata(1));
}
