//! Configuration reload: a new configuration swapped in under load with no failed request, a
//! stream opened before the swap finishing on the configuration it started with, and bad
//! configurations refused while the running one keeps serving. In-process through the reload
//! channel, and through the binary with SIGHUP and a `--config` file.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mcp_auth_edge::config::Config;
use mcp_auth_edge::config::Settings;
use support::mcp::McpServer;
use support::{
    config, free_port, get, metric, try_request, wait_ready, wait_until, Edge, Process, TempFile, Upstream, AS_PATH,
    PATIENCE, PRM_PATH, RESOURCE,
};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

const BEARER: &str = "Bearer opaque.token";

/// Clients asking for the resource document and posting to the MCP endpoint, each on a fresh
/// connection, until stopped; every answer that is not 200 is a failure.
struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, workers: usize) -> Load {
        let (stop, done, failures) = (Arc::default(), Arc::default(), Arc::default());
        let workers = (0..workers)
            .map(|_| {
                let (stop, done, failures): (Arc<AtomicBool>, Arc<AtomicU64>, Arc<Mutex<Vec<String>>>) =
                    (Arc::clone(&stop), Arc::clone(&done), Arc::clone(&failures));
                tokio::spawn(async move {
                    let prm = format!("{PRM_PATH}/mcp");
                    while !stop.load(Ordering::Relaxed) {
                        for (method, path, headers) in [
                            (Method::GET, prm.as_str(), &[][..]),
                            (Method::POST, "/mcp", &[("authorization", BEARER)][..]),
                        ] {
                            match try_request(addr, Version::HTTP_11, method, path, headers).await {
                                Ok(reply) if reply.status == StatusCode::OK => {}
                                Ok(reply) => failures.lock().unwrap().push(format!("{path}: {}", reply.status)),
                                Err(e) => failures.lock().unwrap().push(format!("{path}: {e}")),
                            }
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Load { stop, done, failures, workers }
    }

    /// Stops the clients and returns how many requests they made, failing the test on any
    /// failure.
    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.expect("a load worker did not panic");
        }
        let failures = self.failures.lock().unwrap().clone();
        assert!(failures.is_empty(), "failed requests under reload: {failures:?}");
        self.done.load(Ordering::Relaxed)
    }
}

fn gated(auth: &Upstream, scope: &str, mcp: &McpServer, token_check: &str) -> Config {
    let issuer = auth.issuer();
    let upstream = mcp.url();
    let args = ["--resource", RESOURCE, "--auth-server", &issuer, "--scope", scope, "--upstream", &upstream];
    let mut args = args.to_vec();
    args.extend(["--token-check", token_check]);
    config(&args)
}

async fn scopes(addr: SocketAddr) -> serde_json::Value {
    get(addr, &format!("{PRM_PATH}/mcp")).await.json()["scopes_supported"].clone()
}

/// Opens an SSE stream through the edge and returns its body once the MCP server holds it.
async fn open_stream(addr: SocketAddr) -> (hyper::body::Incoming, JoinHandle<()>) {
    let stream = TcpStream::connect(addr).await.expect("connect to the edge");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::get("/mcp")
        .header("host", "mcp.example.com")
        .header("authorization", BEARER)
        .header("accept", "text/event-stream")
        .body(Empty::<Bytes>::new())
        .expect("a request");
    let response = sender.send_request(request).await.expect("the stream's head");
    assert_eq!(response.status(), StatusCode::OK);
    (response.into_body(), task)
}

async fn next_data(body: &mut hyper::body::Incoming) -> Bytes {
    let frame = tokio::time::timeout(PATIENCE, body.frame()).await.expect("an event in time");
    frame.expect("the stream is open").expect("no error").into_data().expect("a data frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_configuration_is_swapped_in_under_load_and_streams_keep_theirs() {
    let (first_as, second_as) = (Upstream::serving().await, Upstream::serving().await);
    let (first_mcp, second_mcp) = (McpServer::start().await, McpServer::start().await);
    let (edge, reload) = Edge::start_reloadable(gated(&first_as, "first", &first_mcp, "presence")).await;
    edge.wait_ready().await;
    assert_eq!(scopes(edge.addr).await, serde_json::json!(["first"]));

    // A stream begun on the first configuration.
    let (mut events, _connection) = open_stream(edge.addr).await;
    let stream = first_mcp.next_stream().await;
    assert!(stream.send("data: before\n\n").await);
    assert_eq!(next_data(&mut events).await, "data: before\n\n");

    let load = Load::start(edge.addr, 3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    reload.send_replace(Some(Ok(gated(&second_as, "second", &second_mcp, "presence"))));
    wait_until("the second configuration in service", || async {
        scopes(edge.addr).await == serde_json::json!(["second"])
    })
    .await;
    // Discovery relays the new authorization server, and calls reach the new MCP server.
    let relayed = get(edge.addr, AS_PATH).await.json();
    assert_eq!(relayed["issuer"], second_as.issuer());
    wait_until("a call forwarded to the second MCP server", || async { !second_mcp.requests().is_empty() }).await;
    let first_calls = first_mcp.requests().len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Only the stream is left on the first MCP server; no new call went there.
    assert_eq!(first_mcp.requests().len(), first_calls);
    // ... and it still flows, on the configuration it started with.
    assert!(stream.send("data: after\n\n").await, "the stream outlived the reload");
    assert_eq!(next_data(&mut events).await, "data: after\n\n");

    // An authorization server that cannot support jwt checks (no jwks_uri): refused at once.
    reload.send_replace(Some(Ok(gated(&first_as, "third", &first_mcp, "jwt"))));
    edge.wait_metric_above("mcp_auth_edge_config_reloads_total{outcome=\"refused\"}", 0.0).await;
    // A configuration that does not validate.
    let invalid = Config::from_settings(
        &Settings::load(["--resource", "not a url", "--auth-server", "https://as.example"].map(String::from), |_| None)
            .expect("flags parse"),
    );
    assert!(invalid.is_err());
    reload.send_replace(Some(invalid));
    edge.wait_metric_above("mcp_auth_edge_config_reloads_total{outcome=\"refused\"}", 1.0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let made = load.finish().await;
    assert!(made > 20, "the load made only {made} requests");
    assert_eq!(scopes(edge.addr).await, serde_json::json!(["second"]), "the running configuration stayed");
    let text = edge.metrics().await;
    assert_eq!(metric(&text, "mcp_auth_edge_config_reloads_total{outcome=\"applied\"}"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "mcp_auth_edge_config_reloads_total{outcome=\"refused\"}"), Some(2.0), "{text}");
    edge.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn an_unreachable_authorization_server_is_refused_after_the_fetch_timeout() {
    let auth = Upstream::serving().await;
    let mcp = McpServer::start().await;
    let (edge, reload) = Edge::start_reloadable(gated(&auth, "first", &mcp, "presence")).await;
    edge.wait_ready().await;
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let upstream = mcp.url();
    let unreachable = config(&[
        "--resource",
        RESOURCE,
        "--auth-server",
        &nowhere,
        "--upstream",
        &upstream,
        "--token-check",
        "presence",
        "--scope",
        "second",
        "--fetch-timeout",
        "0.3",
    ]);
    reload.send_replace(Some(Ok(unreachable)));
    edge.wait_metric_above("mcp_auth_edge_config_reloads_total{outcome=\"refused\"}", 0.0).await;
    assert_eq!(scopes(edge.addr).await, serde_json::json!(["first"]));
    assert_eq!(get(edge.addr, AS_PATH).await.json()["issuer"], auth.issuer());
    assert_eq!(edge.metric("mcp_auth_edge_config_reloads_total{outcome=\"applied\"}").await, 0.0);
    edge.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_config_file_refusing_a_bad_one() {
    let auth = Upstream::serving().await;
    let (first_mcp, second_mcp) = (McpServer::start().await, McpServer::start().await);
    let (port, admin_port) = (free_port(), free_port());
    let file_for = |scope: &str, mcp: &McpServer| {
        serde_json::json!({
            "listen": format!("127.0.0.1:{port}"),
            "admin_listen": format!("127.0.0.1:{admin_port}"),
            "resource": RESOURCE,
            "auth_server": auth.issuer(),
            "scope": [scope],
            "upstream": mcp.url(),
            "token_check": "presence",
            "refresh": 0.5,
            "fetch_timeout": 2,
            // The load below names the loopback address in Host.
            "host_alias": ["127.0.0.1"],
        })
        .to_string()
    };
    let file = TempFile::new("reload.json", &file_for("first", &first_mcp));
    let mut process = Process::spawn(&["--config", file.path()], &[]);
    let (addr, admin): (SocketAddr, SocketAddr) = (([127, 0, 0, 1], port).into(), ([127, 0, 0, 1], admin_port).into());
    wait_ready(admin).await;
    let refused = || async move {
        let text = get(admin, "/metrics").await.text();
        metric(&text, "mcp_auth_edge_config_reloads_total{outcome=\"refused\"}").unwrap_or(0.0)
    };
    let load = Load::start(addr, 2);

    // A value of the wrong form: refused, naming the key and the file.
    let mut bad: serde_json::Value = serde_json::from_str(&file_for("second", &second_mcp)).expect("JSON");
    bad["refresh"] = "soon".into();
    std::fs::write(&file.path, bad.to_string()).expect("write");
    process.signal("HUP");
    wait_until("the bad file refused", || async { refused().await >= 1.0 }).await;
    assert_eq!(scopes(addr).await, serde_json::json!(["first"]));

    std::fs::write(&file.path, file_for("second", &second_mcp)).expect("write");
    process.signal("HUP");
    wait_until("the new file in service", || async { scopes(addr).await == serde_json::json!(["second"]) }).await;
    wait_until("a call forwarded to the second MCP server", || async { !second_mcp.requests().is_empty() }).await;

    let made = load.finish().await;
    assert!(made > 10, "the load made only {made} requests");
    assert_eq!(refused().await, 1.0);
    process.signal("TERM");
    assert!(process.wait_exit(PATIENCE).await.success());
    let log = process.stderr();
    assert!(log.contains("configuration reload refused"), "{log}");
    assert!(log.contains("\"refresh\""), "the refusal names the key: {log}");
    assert!(log.contains("configuration reloaded: resource https://mcp.example.com/mcp"), "{log}");
    // The new configuration's own fetches say whose they are while it is primed.
    assert!(log.contains("INFO  [new configuration] authorization server metadata loaded"), "{log}");
}
